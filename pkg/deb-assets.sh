#!/usr/bin/env bash
# The .deb's generated assets, from the built binary itself (as ripgrep does): the man page
# (gzipped without a name or time stamp, so the same binary gives the same bytes) and the bash,
# zsh and fish completions. They go next to the binary, in deb-assets/, where the asset paths in
# Cargo.toml ("target/release/deb-assets/...") point once cargo-deb maps them to the build's
# directory (profile, --target and CARGO_TARGET_DIR included).
#
#   cargo build --locked --release && pkg/deb-assets.sh target/release/gcupload && cargo deb --no-build
set -euo pipefail
bin=${1:?usage: pkg/deb-assets.sh <path to the built gcupload binary>}
out="$(dirname "$bin")/deb-assets"
mkdir -p "$out"
"$bin" man | gzip -9n > "$out/gcupload.1.gz"
"$bin" completions bash > "$out/gcupload.bash"
"$bin" completions zsh > "$out/_gcupload"
"$bin" completions fish > "$out/gcupload.fish"
echo "deb assets in $out"
