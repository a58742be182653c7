//! Section `watch`: `gcupload watch` on a real folder with real file events, against the same
//! sandbox. Latency from a rename into the folder to its record; 1,000 files dropped at once
//! against `gcupload -r` over the same files; resident memory across 10,000 files; CPU while
//! idle (GCUPLOAD_BENCH_IDLE_SECS, default 10 s to keep the bench short; 60 for a real minute).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{BIN, Bench, env_num, like_gcupload, median, ms, pdf_bytes};

/// A running `gcupload watch`, its records counted as they arrive.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<Instant>,
    seen: usize,
}

impl Watching {
    fn start(b: &Bench, state: &Path, args: &[&str], dir: &Path) -> Watching {
        let mut child = like_gcupload(b, &BIN)
            .env("GCUPLOAD_STATE_DIR", state)
            .arg("watch")
            .args(args)
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gcupload watch starts");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for _ in std::io::BufReader::new(out).lines() {
                let _ = tx.send(Instant::now());
            }
        });
        let (ready_tx, ready) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if line.starts_with("gcupload watch: watching") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(60))
            .expect("gcupload watch is ready");
        Watching {
            child,
            lines,
            seen: 0,
        }
    }

    /// Waits for the `n`-th record since the start; when it came.
    fn record(&mut self, n: usize) -> Instant {
        let mut at = Instant::now();
        while self.seen < n {
            at = self
                .lines
                .recv_timeout(Duration::from_secs(300))
                .expect("a record within 300 s");
            self.seen += 1;
        }
        at
    }

    fn proc_status(&self, field: &str) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = s.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// User + system CPU time so far.
    fn cpu(&self) -> Duration {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces): utime is the 12th, stime 13th.
        let rest = &s[s.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Duration::from_secs_f64((f[11] + f[12]) as f64 / tick)
    }

    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "gcupload watch exits 0 on SIGTERM");
    }
}

/// Writes `n` files of `len` bytes into a staging directory, to be renamed in at once.
fn stage(b: &Bench, name: &str, n: usize, len: usize, seed: u64) -> Vec<PathBuf> {
    let dir = b.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    (0..n)
        .map(|i| {
            let p = dir.join(format!("w{i:05}.pdf"));
            std::fs::write(&p, pdf_bytes(len, seed + i as u64)).unwrap();
            p
        })
        .collect()
}

fn drop_all(files: &[PathBuf], into: &Path) {
    for f in files {
        std::fs::rename(f, into.join(f.file_name().unwrap())).unwrap();
    }
}

fn fresh(b: &Bench, name: &str) -> PathBuf {
    let p = b.dir.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

pub fn run(b: &Bench) -> Value {
    b.sandbox.faults().api_latency_ms = 20;
    let latency = latency(b);
    let throughput = throughput(b);
    b.sandbox.faults().api_latency_ms = 0;
    let memory = memory_and_idle(b);
    json!({ "latency": latency, "throughput": throughput, "memory_idle": memory })
}

/// A rename into the watched folder → its record, at 20 ms API latency, default settle (1 s).
fn latency(b: &Bench) -> Value {
    let dir = fresh(b, "watch-latency");
    let mut w = Watching::start(b, &fresh(b, "state-watch-latency"), &["-j", "4"], &dir);
    let mut took = Vec::new();
    for i in 0..7 {
        let f = stage(
            b,
            &format!("stage-latency-{i}"),
            1,
            64 << 10,
            9000 + i as u64,
        );
        let t = Instant::now();
        drop_all(&f, &dir);
        took.push(w.record(i + 1) - t);
    }
    w.stop();
    let med = median(took.clone());
    println!(
        "6a. watch latency, rename → record, 20 ms API latency, settle 1 s (median of 7): {:.0} ms (settle + {:.0} ms)",
        ms(med),
        ms(med) - 1000.0
    );
    json!({"median_ms": ms(med), "over_settle_ms": ms(med) - 1000.0, "target_over_settle_ms": 200,
        "all_ms": took.iter().map(|d| ms(*d)).collect::<Vec<_>>()})
}

/// 1,000 files dropped at once: watch (from the drop to the last record) vs `gcupload -r`.
fn throughput(b: &Bench) -> Value {
    let n = env_num("GCUPLOAD_BENCH_WATCH_FILES", 1000) as usize;
    let jobs = ["-j", "16"];
    let files = stage(b, "stage-batch", n, 64 << 10, 20_000);
    let batch_dir = fresh(b, "watch-batch-r");
    drop_all(&files, &batch_dir);
    let mut c = b.gcupload();
    c.env("GCUPLOAD_STATE_DIR", fresh(b, "state-batch-r"))
        .args(jobs)
        .arg("-r")
        .arg(&batch_dir);
    let one_shot = b.run_ok(c);
    // The same files, moved back to be dropped into the watched folder.
    let files: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            let from = batch_dir.join(f.file_name().unwrap());
            std::fs::rename(&from, f).unwrap();
            f.clone()
        })
        .collect();
    let dir = fresh(b, "watch-batch");
    let settle = Duration::from_millis(200);
    let mut w = Watching::start(
        b,
        &fresh(b, "state-watch-batch"),
        &["-j", "16", "--settle", "200ms"],
        &dir,
    );
    let t = Instant::now();
    drop_all(&files, &dir);
    let watched = w.record(n) - t;
    w.stop();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "6b. {n} x 64 KiB dropped at once, 20 ms API latency, -j 16: watch (settle 200 ms) {:.0} files/s ({:.0} ms, {:.0} ms without the settle), gcupload -r {:.0} files/s ({:.0} ms); watch/-r {:.2}",
        rate(watched),
        ms(watched),
        ms(watched - settle),
        rate(one_shot),
        ms(one_shot),
        one_shot.as_secs_f64() / watched.as_secs_f64()
    );
    json!({"files": n, "watch_ms": ms(watched), "watch_settle_ms": ms(settle), "one_shot_ms": ms(one_shot),
        "watch_files_per_s": rate(watched), "one_shot_files_per_s": rate(one_shot),
        "watch_over_one_shot": one_shot.as_secs_f64() / watched.as_secs_f64()})
}

/// Resident memory after each 1,000 of 10,000 small files, then CPU while idle.
fn memory_and_idle(b: &Bench) -> Value {
    let n = env_num("GCUPLOAD_BENCH_WATCH_MANY", 10_000) as usize;
    let dir = fresh(b, "watch-many");
    let mut w = Watching::start(
        b,
        &fresh(b, "state-watch-many"),
        &["-j", "16", "--settle", "200ms"],
        &dir,
    );
    let mut rss_kib = Vec::new();
    for round in 0..n / 1000 {
        let files = stage(
            b,
            &format!("stage-many-{round}"),
            1000,
            1024,
            100_000 * (round as u64 + 1),
        );
        drop_all(&files, &dir);
        w.record((round + 1) * 1000);
        rss_kib.push(w.proc_status("VmRSS:").unwrap_or(0));
    }
    let peak = w.proc_status("VmHWM:").unwrap_or(0);
    let secs = env_num("GCUPLOAD_BENCH_IDLE_SECS", 10);
    std::thread::sleep(Duration::from_secs(2));
    let before = w.cpu();
    std::thread::sleep(Duration::from_secs(secs));
    let idle = w.cpu() - before;
    w.stop();
    let pct = 100.0 * idle.as_secs_f64() / secs as f64;
    let mb = |k: u64| k as f64 / 1024.0;
    println!(
        "6c. watch, {n} files: RSS after each 1,000 {:?} MB, peak {:.1} MB; idle CPU over {secs} s: {:.0} ms ({pct:.2}%)",
        rss_kib
            .iter()
            .map(|k| (mb(*k) * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        mb(peak),
        ms(idle)
    );
    json!({"files": n, "rss_kib_per_1000": rss_kib, "peak_rss_kib": peak, "target_rss_mb": 30,
        "idle_secs": secs, "idle_cpu_ms": ms(idle), "idle_cpu_pct": pct, "target_idle_cpu_pct": 1.0})
}
