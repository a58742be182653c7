//! gcupload against the alternatives, on loopback against the embedded sandbox, in one run:
//!
//! 1. one 10 MiB upload: gcupload vs the same four calls made by `curl` as separate processes;
//! 2. 500 files of 64 KiB: `--jobs 16` vs `--jobs 1` vs a shell loop of single-file runs
//!    (with no added latency, and with 20 ms of emulated API latency, closer to a real tenant);
//! 3. the state store: the same batch (`--jobs 16`) with the journal on (a fresh `--state-dir`
//!    each run) vs `--no-state`, and a re-run of the sent files (all skipped) vs sending them;
//! 4. one 1 GiB file: PUT throughput (measured by the store, from first byte to answer) vs
//!    `curl --upload-file` to a pre-signed URL of the same sandbox, and gcupload's peak RSS;
//! 5. throughput of the validation stage (SHA-256 + XXH3 + EICAR scan) and of SHA-256 alone;
//! 6. limits met without being refused: a guest batch under 2 messages per second per session,
//!    and a batch under a Platform API limit (`support/limits.rs`).
//! 7. `gcupload watch` (see `compare/watch.rs`): latency from a rename to its record, 1,000
//!    files dropped at once vs `gcupload -r`, memory across 10,000 files, CPU while idle.
//!
//! Sections 1, 2 and 4 run gcupload with its state store on (the default) and `--force`, so
//! every run sends its files (a re-run would otherwise skip them: section 3 measures that).
//!
//! `cargo bench --bench compare`. Sizes: GCUPLOAD_BENCH_BIG_MIB (1024), GCUPLOAD_BENCH_FILES
//! (500). GCUPLOAD_BENCH_ONLY=state,batch (any of single, batch, state, postgres, big, hashing, limits, watch) runs only
//! those sections. Files, state directories and the sandbox's store live under $TMPDIR. Results:
//! a table on stdout and JSON in target/bench-results.json (GCUPLOAD_BENCH_OUT to change). GCUPLOAD_BENCH_BIN measures another build of gcupload.

// A benchmark reports on stdout.
#![allow(clippy::disallowed_macros)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gcupload::sandbox::{Sandbox, SandboxConfig};

#[path = "support/limits.rs"]
mod limits;
#[path = "compare/postgres.rs"]
mod postgres;
#[path = "compare/state.rs"]
mod state;
use state::{Journal, local_journal, state_store};
#[path = "compare/watch.rs"]
mod watch;
use serde_json::{Value, json};

/// The binary measured: this build's, or GCUPLOAD_BENCH_BIN (another build, for an A/B run of
/// two versions on the same machine, interleaved).
static BIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("GCUPLOAD_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gcupload").into())
});

fn env_num(k: &str, default: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Bench {
    rt: tokio::runtime::Runtime,
    sandbox: Sandbox,
    dir: tempfile::TempDir,
}

impl Bench {
    fn gcupload(&self) -> Command {
        let mut c = Command::new(&*BIN);
        c.env_clear()
            .env("GENESYS_BASE_URL", self.sandbox.base_url.as_str())
            .env("GENESYS_CLIENT_ID", self.sandbox.client_id())
            .env("GENESYS_CLIENT_SECRET", self.sandbox.client_secret())
            .env("EXTERNAL_CONTACT_ID", self.sandbox.external_contact_id())
            .env("GCUPLOAD_STATE_DIR", self.dir.path().join("state"))
            .arg("--quiet")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// gcupload with the state store on that sends every file, even one journaled as sent.
    fn sending(&self) -> Command {
        let mut c = self.gcupload();
        c.arg("--force");
        c
    }

    fn run_ok(&self, c: Command) -> Duration {
        self.run_out(c).0
    }

    /// Runs `c`, which must succeed: its wall time and stdout.
    fn run_out(&self, mut c: Command) -> (Duration, Vec<u8>) {
        let t = Instant::now();
        let out = c.output().expect("runs");
        let d = t.elapsed();
        assert!(
            out.status.success(),
            "{:?}: {}",
            c,
            String::from_utf8_lossy(&out.stderr)
        );
        (d, out.stdout)
    }

    fn base(&self) -> String {
        self.sandbox
            .base_url
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }
}

fn curl(args: &[&str]) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The external-contact flow as four curl processes: token, URL, PUT, confirm.
fn curl_chain(b: &Bench, file: &Path, size: u64) -> Duration {
    let base = b.base();
    let t = Instant::now();
    let tok = curl(&[
        "-u",
        &format!("{}:{}", b.sandbox.client_id(), b.sandbox.client_secret()),
        "-d",
        "grant_type=client_credentials",
        &format!("{base}/oauth/token"),
    ]);
    let auth = format!(
        "Authorization: Bearer {}",
        tok["access_token"].as_str().unwrap()
    );
    let files = format!(
        "{base}/api/v2/externalcontacts/contacts/{}/files",
        b.sandbox.external_contact_id()
    );
    let body =
        json!({"fileName": "big.pdf", "contentType": "application/pdf", "size": size}).to_string();
    let u = curl(&[
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        &files,
    ]);
    let put_url = u["uploadUrl"].as_str().unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "content-type: application/pdf",
        "--upload-file",
        file.to_str().unwrap(),
        put_url,
    ]);
    let id = u["id"].as_str().unwrap();
    curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
        "-d",
        "{}",
        &format!("{files}/{id}/upload-complete"),
    ]);
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pdf_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    let mut x = seed | 1;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn write_big(path: &Path, len: u64) {
    use std::io::Write;
    let block = pdf_bytes(1 << 20, 42);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut left = len;
    let mut first = true;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        let chunk = if first {
            &block[..n]
        } else {
            &block[9..9 + n.min(block.len() - 9)]
        };
        f.write_all(chunk).unwrap();
        left -= chunk.len() as u64;
        first = false;
    }
}

/// Store-side duration of the last PUT: from its first byte to its answer.
fn last_put_ms(b: &Bench) -> f64 {
    b.sandbox
        .requests()
        .iter()
        .rev()
        .find(|r| r.surface == "store" && r.method == "PUT" && r.status == 200)
        .map(|r| r.ms)
        .expect("a PUT")
}

/// `prog args...` with gcupload's environment for this sandbox.
fn like_gcupload(b: &Bench, prog: &str) -> Command {
    let mut c = Command::new(prog);
    c.env_clear();
    for (k, v) in b.gcupload().get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

fn peak_rss_kib(b: &Bench, args: &[&std::ffi::OsStr]) -> Option<u64> {
    let out_file = b.dir.path().join("rss.txt");
    let status = like_gcupload(b, "/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&out_file)
        .args([BIN.as_str(), "--quiet", "--force"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    std::fs::read_to_string(out_file).ok()?.trim().parse().ok()
}

/// How many records of each `action` a run printed (one JSON object per line).
fn actions(stdout: &[u8]) -> std::collections::BTreeMap<String, usize> {
    let mut n = std::collections::BTreeMap::new();
    for line in stdout.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).expect("a JSON record per line");
        let action = v["action"].as_str().unwrap_or("?").to_string();
        *n.entry(action).or_insert(0) += 1;
    }
    n
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

const SECTIONS: &[&str] = &[
    "single", "batch", "state", "postgres", "big", "hashing", "limits", "watch",
];

/// The sections GCUPLOAD_BENCH_ONLY names (comma-separated), or all of them.
fn selected() -> Vec<&'static str> {
    let Ok(only) = std::env::var("GCUPLOAD_BENCH_ONLY") else {
        return SECTIONS.to_vec();
    };
    let names: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    for n in &names {
        assert!(
            SECTIONS.contains(n),
            "GCUPLOAD_BENCH_ONLY: unknown section `{n}`; known: {}",
            SECTIONS.join(", ")
        );
    }
    SECTIONS
        .iter()
        .copied()
        .filter(|s| names.contains(s))
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sections = selected();
    let run = |s: &str| sections.contains(&s);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt
        .block_on(Sandbox::start(SandboxConfig::default()))
        .unwrap();
    let b = Bench {
        rt,
        sandbox,
        dir: tempfile::tempdir().unwrap(),
    };
    let big_mib = env_num("GCUPLOAD_BENCH_BIG_MIB", 1024);
    let n_files = env_num("GCUPLOAD_BENCH_FILES", 500) as usize;
    let mut results = serde_json::Map::new();
    println!(
        "gcupload benchmark (sandbox on loopback, {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // 1. One 10 MiB upload.
    if run("single") {
        let ten = b.dir.path().join("ten.pdf");
        std::fs::write(&ten, pdf_bytes(10 << 20, 7)).unwrap();
        let reps = 7;
        let ours = median(
            (0..reps)
                .map(|_| {
                    let mut c = b.sending();
                    c.arg(&ten);
                    b.run_ok(c)
                })
                .collect(),
        );
        let theirs = median((0..reps).map(|_| curl_chain(&b, &ten, 10 << 20)).collect());
        println!(
            "1. 10 MiB upload (median of {reps}): gcupload {:.1} ms, curl chain {:.1} ms, ratio curl/gcupload {:.2}",
            ours.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
        results.insert(
            "single_10mib".into(),
            json!({
                "gcupload_ms": ours.as_secs_f64() * 1e3, "curl_chain_ms": theirs.as_secs_f64() * 1e3,
                "speedup": theirs.as_secs_f64() / ours.as_secs_f64(),
            }),
        );
    }

    // 2. Many small files.
    let small_dir = b.dir.path().join("small");
    if run("batch") || run("state") || run("postgres") {
        std::fs::create_dir_all(&small_dir).unwrap();
        for i in 0..n_files {
            std::fs::write(
                small_dir.join(format!("f{i:04}.pdf")),
                pdf_bytes(64 << 10, i as u64 + 1),
            )
            .unwrap();
        }
    }
    for latency in [0u64, 20] {
        if !run("batch") {
            break;
        }
        b.sandbox.faults().api_latency_ms = latency;
        let jobs = |n: &str| {
            let mut c = b.sending();
            c.args(["--jobs", n, "--recursive"]).arg(&small_dir);
            b.run_ok(c)
        };
        let j16 = jobs("16");
        let j1 = jobs("1");
        let script = format!(
            "for f in {}/*.pdf; do \"$0\" --quiet --force \"$f\" >/dev/null || exit 1; done",
            small_dir.display()
        );
        let mut shell = like_gcupload(&b, "sh");
        shell.args(["-c", &script, BIN.as_str()]);
        let lp = b.run_ok(shell);
        let rate = |d: Duration| n_files as f64 / d.as_secs_f64();
        println!(
            "2. {n_files} x 64 KiB, API latency {latency} ms: --jobs 16 {:.0} files/s, --jobs 1 {:.0} files/s, shell loop {:.0} files/s; jobs16/jobs1 {:.1}x, jobs16/loop {:.1}x",
            rate(j16),
            rate(j1),
            rate(lp),
            j1.as_secs_f64() / j16.as_secs_f64(),
            lp.as_secs_f64() / j16.as_secs_f64()
        );
        results.insert(format!("batch_latency_{latency}ms"), json!({
            "files": n_files, "jobs16_files_per_s": rate(j16), "jobs1_files_per_s": rate(j1),
            "shell_loop_files_per_s": rate(lp), "jobs16_over_jobs1": j1.as_secs_f64() / j16.as_secs_f64(),
            "jobs16_over_loop": lp.as_secs_f64() / j16.as_secs_f64(),
        }));
    }
    b.sandbox.faults().api_latency_ms = 0;

    // 3. The state store (before the big file: it counts the sandbox's objects, hashing each).
    if run("state") {
        let mut by_latency = serde_json::Map::new();
        let fresh = local_journal(&b);
        let journal = Journal {
            name: "SQLite",
            fresh: &fresh,
            overhead_target_pct: 5.0,
            speedup_target: 20.0,
        };
        for latency in [20u64, 0] {
            let r = state_store(&b, &small_dir, n_files, latency, 3, &journal);
            by_latency.insert(format!("latency_{latency}ms"), r);
        }
        results.insert("state_store".into(), Value::Object(by_latency));
    }

    // 3b. The same with the journal in PostgreSQL on loopback (GCUPLOAD_TEST_PG_URL).
    if run("postgres") {
        results.insert(
            "state_store_postgres".into(),
            postgres::run(&b, &small_dir, n_files),
        );
    }

    // 4. One big file.
    let big = b.dir.path().join("big.pdf");
    let big_len = big_mib << 20;
    if run("big") || run("hashing") {
        write_big(&big, big_len);
    }
    if run("big") {
        b.sandbox.faults().max_upload_bytes = big_len + 1;
        let max = format!("{}", big_len + 1);
        let mut puts_ours = Vec::new();
        let mut puts_curl = Vec::new();
        for _ in 0..3 {
            let mut c = b.sending();
            c.args(["--max-size", &max]).arg(&big);
            b.run_ok(c);
            puts_ours.push(last_put_ms(&b));
            curl_chain(&b, &big, big_len);
            puts_curl.push(last_put_ms(&b));
        }
        let med = |mut v: Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let (ours_ms, curl_ms) = (med(puts_ours), med(puts_curl));
        let gbps = |ms: f64| big_len as f64 / (ms / 1e3) / 1e9;
        let rss = peak_rss_kib(&b, &["--max-size".as_ref(), max.as_ref(), big.as_os_str()]);
        println!(
            "4. {big_mib} MiB PUT (median of 3): gcupload {:.2} GB/s, curl {:.2} GB/s, gcupload/curl {:.0}%; gcupload peak RSS {}",
            gbps(ours_ms),
            gbps(curl_ms),
            100.0 * curl_ms / ours_ms,
            rss.map(|k| format!("{:.1} MB", k as f64 / 1024.0))
                .unwrap_or("n/a".into())
        );
        results.insert(
            "big_put".into(),
            json!({
                "mib": big_mib, "gcupload_gb_per_s": gbps(ours_ms), "curl_gb_per_s": gbps(curl_ms),
                "gcupload_over_curl": curl_ms / ours_ms, "peak_rss_kib": rss,
            }),
        );
    }

    // 5. Hashing.
    if run("hashing") {
        let policy = gcupload::validate::Policy {
            max_size: big_len + 1,
            allowed_types: vec!["application/pdf".into()],
            local_scan: true,
            md5: false,
        };
        let _ =
            b.rt.block_on(gcupload::validate::validate(&big, &policy))
                .unwrap();
        let t = Instant::now();
        let _ =
            b.rt.block_on(gcupload::validate::validate(&big, &policy))
                .unwrap();
        let stage = big_len as f64 / t.elapsed().as_secs_f64() / 1e9;
        let data = pdf_bytes(256 << 20, 3);
        let t = Instant::now();
        {
            use sha2::Digest;
            std::hint::black_box(sha2::Sha256::digest(&data));
        }
        let sha = data.len() as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!(
            "5. validation stage {stage:.2} GB/s (SHA-256 + XXH3 + EICAR scan, file in page cache); SHA-256 alone {sha:.2} GB/s"
        );
        results.insert(
            "hashing".into(),
            json!({"validation_gb_per_s": stage, "sha256_gb_per_s": sha}),
        );
    }
    if run("limits") {
        results.insert("limits".into(), limits::run(&b));
    }
    // 7. Watch.
    if run("watch") {
        results.insert("watch".into(), watch::run(&b));
    }
    results.insert("sections".into(), json!(sections));

    let out = std::env::var("GCUPLOAD_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-results.json")
        });
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&Value::Object(results)).unwrap(),
    )
    .unwrap();
    println!("results: {}", out.display());
}
