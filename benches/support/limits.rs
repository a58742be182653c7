//! Section 6, limits met without being refused (issue 19): a guest batch on one session under
//! the platform's 2 onMessage per second, and an external-contact batch under a Platform API
//! limit (20 calls per 10 s: the platform's 300 per minute, shortened), each at 20 ms of API
//! latency. What is measured: files per second and refusals (4029, 429) as the sandbox counts
//! them; for the API limit, the calls it admitted per second against the limit's rate.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{BIN, Bench, pdf_bytes};

/// Writes `n` small PDFs into a fresh directory named `name`.
fn files(b: &Bench, name: &str, n: usize) -> std::path::PathBuf {
    let dir = b.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        let bytes = pdf_bytes(16 << 10, 1000 + i as u64);
        std::fs::write(dir.join(format!("f{i:04}.pdf")), bytes).unwrap();
    }
    dir
}

fn guest(b: &Bench) -> Command {
    let mut c = Command::new(&*BIN);
    c.env_clear()
        .env("GENESYS_BASE_URL", b.sandbox.base_url.as_str())
        .env("GENESYS_DEPLOYMENT_ID", b.sandbox.deployment_id())
        .env("GCUPLOAD_STATE_DIR", b.dir.path().join("state"))
        .args(["--quiet", "--force"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

pub(super) fn run(b: &Bench) -> Value {
    b.sandbox.faults().api_latency_ms = 20;
    let n = 100;
    let dir = files(b, "guest-limit", n);
    let refused = b.sandbox.refused("guest");
    let mut c = guest(b);
    c.args(["--jobs", "8", "--recursive"]).arg(&dir);
    let wall = b.run_ok(c);
    let guest_rate = n as f64 / wall.as_secs_f64();
    let guest_refused = b.sandbox.refused("guest") - refused;
    println!(
        "6a. guest, {n} files on one session (2 messages/s allowed), API latency 20 ms: {guest_rate:.2} files/s, {guest_refused} refused (4029)"
    );

    let (calls, window) = (20u32, Duration::from_secs(10));
    {
        let mut f = b.sandbox.faults();
        f.api_limit_calls = calls;
        f.api_limit_window_ms = window.as_millis() as u64;
    }
    let n = 60;
    let dir = files(b, "api-limit", n);
    let seen = b.sandbox.requests().len();
    let refused = b.sandbox.refused("api");
    let mut c = b.sending();
    c.args(["--jobs", "4", "--recursive"]).arg(&dir);
    let t = Instant::now();
    b.run_ok(c);
    let wall = t.elapsed();
    b.sandbox.faults().api_limit_calls = 0;
    b.sandbox.faults().api_latency_ms = 0;
    let sent = b.sandbox.requests()[seen..]
        .iter()
        .filter(|q| q.path.starts_with("/api/") || q.path == "/oauth/token")
        .count();
    let api_refused = (b.sandbox.refused("api") - refused) as usize;
    let admitted_per_s = (sent - api_refused) as f64 / wall.as_secs_f64();
    let limit_per_s = f64::from(calls) / window.as_secs_f64();
    println!(
        "6b. {n} files under an API limit of {calls} calls per {} s, API latency 20 ms: {:.2} files/s, {admitted_per_s:.2} calls/s admitted ({:.0}% of the limit), {api_refused} of {sent} calls refused ({:.1}%)",
        window.as_secs(),
        n as f64 / wall.as_secs_f64(),
        100.0 * admitted_per_s / limit_per_s,
        100.0 * api_refused as f64 / sent as f64
    );
    json!({
        "guest_files_per_s": guest_rate, "guest_refused": guest_refused,
        "api_files_per_s": n as f64 / wall.as_secs_f64(), "api_calls": sent,
        "api_refused": api_refused, "api_admitted_per_s": admitted_per_s,
        "api_share_of_limit": admitted_per_s / limit_per_s,
    })
}
