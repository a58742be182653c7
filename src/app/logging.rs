//! Logs on stderr, every line of them fit for a person and a log file: field values from outside
//! (server answers, file names) lose their control characters, and each whole formatted line is
//! redacted before it is written, whoever logged it (our code, hyper, or the embedded sandbox's
//! S3 library, which logs whole pre-signed request URLs at debug).

use std::fmt;
use std::io::Write;

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;

use crate::{colour, redact};

/// Logs go to stderr; stdout is reserved for JSON. `RUST_LOG` overrides the flags.
pub fn init(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    // Dependencies stay at warn: their traces can carry request details we do not control.
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| format!("warn,gcupload={level}"));
    // Even with RUST_LOG: the WebSocket crates trace whole frames, and frames carry pre-signed
    // URLs. These caps come last, so they win over the user's directives for those targets.
    // The certificate verifier logs a rejected certificate at ERROR, raw, on every try: the
    // record and the error line already say it, with what to do.
    const CAPS: &str = "tungstenite=info,tokio_tungstenite=info,rustls_platform_verifier=off";
    let filter = EnvFilter::try_new(format!("{base},{CAPS}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,gcupload={level},{CAPS}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(tracing_subscriber::fmt::format::debug_fn(format_field).delimited(" "))
        .with_writer(RedactedStderr)
        .with_ansi(colour::stderr())
        .with_target(false)
        .try_init();
}

/// One field as the default formatter writes it (`name=value`, the message bare), with the
/// value's control characters made visible: the formatter's own colours are the only escape
/// sequences a log line may carry.
fn format_field(w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let name = field.name();
    // `log` records bridged into tracing carry their metadata as fields; the line shows it.
    if name.starts_with("log.") {
        return Ok(());
    }
    let value = format!("{value:?}");
    let value = redact::for_terminal(&value);
    if name == "message" {
        return w.write_str(&value);
    }
    let name = name.strip_prefix("r#").unwrap_or(name);
    if w.has_ansi_escapes() {
        write!(w, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m{value}")
    } else {
        write!(w, "{name}={value}")
    }
}

/// Hands the formatter one buffer per event and writes it, redacted, when the event is done.
struct RedactedStderr;

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = RedactedLine;

    fn make_writer(&'a self) -> RedactedLine {
        RedactedLine(Vec::with_capacity(256))
    }
}

/// One formatted event (the formatter may write it in pieces, so it is redacted as a whole).
struct RedactedLine(Vec<u8>);

impl Write for RedactedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let line = redact::secrets(&text);
        // One write per event, so lines from concurrent tasks do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
