//! Section 3: the batch with the journal on vs off, and a re-run of what was sent; for the
//! SQLite journal here and PostgreSQL's in `postgres.rs`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Bench, actions, median, ms};

/// Which journal section 3 measures and what it must reach.
pub struct Journal<'a> {
    /// The store: "SQLite" or "PostgreSQL".
    pub name: &'a str,
    /// The flags for a fresh, empty store named `name` (one per measured run).
    pub fresh: &'a dyn Fn(&str) -> Vec<String>,
    pub overhead_target_pct: f64,
    pub speedup_target: f64,
}

/// The state directory a run keeps its journal in: fresh, on the same disk as the files.
pub fn local_journal(b: &Bench) -> impl Fn(&str) -> Vec<String> + '_ {
    |name| {
        let dir = b.dir.path().join(name);
        vec!["--state-dir".into(), dir.display().to_string()]
    }
}

/// Section 3, at one API latency: the batch with the state store on vs off (median of `reps`,
/// alternating which goes first, after a warm-up run of each), and a re-run of what each state-on
/// run sent. Overhead is the extra wall time: median on / median off - 1.
pub fn state_store(
    b: &Bench,
    small_dir: &Path,
    n_files: usize,
    latency: u64,
    reps: usize,
    journal: &Journal<'_>,
) -> Value {
    b.sandbox.faults().api_latency_ms = latency;
    let batch = |c: &mut Command| {
        c.args(["--jobs", "16", "--recursive"]).arg(small_dir);
    };
    let (mut on, mut off, mut rerun) = (Vec::new(), Vec::new(), Vec::new());
    // Requests the sandbox saw during each re-run (none is needed to skip).
    let mut api_calls = Vec::new();
    // One run of each kind not counted, so that the measured runs start from a warm page cache,
    // sandbox and store (without it, the first journaled run of a PostgreSQL bench often read
    // 10-30% slower than the later ones).
    let mut warm = b.gcupload();
    warm.arg("--no-state");
    batch(&mut warm);
    b.run_ok(warm);
    let mut warm = b.gcupload();
    warm.args((journal.fresh)(&format!("warm_{latency}ms")));
    batch(&mut warm);
    b.run_ok(warm);
    for rep in 0..reps {
        // Fresh: nothing in it to skip.
        let state = (journal.fresh)(&format!("state_{latency}ms_{rep}"));
        let run_on = || {
            let mut c = b.gcupload();
            c.args(&state);
            batch(&mut c);
            let (d, out) = b.run_out(c);
            let n = actions(&out);
            assert_eq!(n.get("FILE_UPLOAD_COMPLETED"), Some(&n_files), "{n:?}");
            d
        };
        let run_off = || {
            let mut c = b.gcupload();
            c.arg("--no-state");
            batch(&mut c);
            let (d, out) = b.run_out(c);
            let n = actions(&out);
            assert_eq!(n.get("FILE_UPLOAD_COMPLETED"), Some(&n_files), "{n:?}");
            d
        };
        if rep % 2 == 0 {
            on.push(run_on());
            off.push(run_off());
        } else {
            off.push(run_off());
            on.push(run_on());
        }
        // The same files again, with the state-on run's journal: every one is skipped.
        let objects = b.sandbox.objects().len();
        let requests = b.sandbox.requests().len();
        let mut c = b.gcupload();
        c.args(&state);
        batch(&mut c);
        let (d, out) = b.run_out(c);
        let n = actions(&out);
        assert_eq!(n.get("FILE_UPLOAD_SKIPPED"), Some(&n_files), "{n:?}");
        assert_eq!(n.len(), 1, "only skips: {n:?}");
        assert_eq!(b.sandbox.objects().len(), objects, "a skip stores nothing");
        api_calls.push(b.sandbox.requests().len() - requests);
        rerun.push(d);
    }
    // What a re-run cannot avoid without trusting file metadata: start, walk the tree, validate
    // (read and hash) every file and print its record. No network, no state store.
    let mut floor = Vec::new();
    for _ in 0..reps {
        let mut c = b.gcupload();
        c.args(["--no-state", "--dry-run", "--offline"]);
        batch(&mut c);
        let (d, out) = b.run_out(c);
        assert_eq!(actions(&out).get("FILE_UPLOAD_PLANNED"), Some(&n_files));
        floor.push(d);
    }
    b.sandbox.faults().api_latency_ms = 0;

    let rate = |d: Duration| n_files as f64 / d.as_secs_f64();
    let (m_on, m_off, m_rerun, m_floor) = (
        median(on.clone()),
        median(off.clone()),
        median(rerun.clone()),
        median(floor.clone()),
    );
    let overhead = 100.0 * (m_on.as_secs_f64() / m_off.as_secs_f64() - 1.0);
    let speedup = m_on.as_secs_f64() / m_rerun.as_secs_f64();
    let list = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join("/")
    };
    println!(
        "3. {n_files} x 64 KiB, --jobs 16, API latency {latency} ms (median of {reps}), journal in {}: state on {:.0} files/s, --no-state {:.0} files/s, overhead {overhead:+.1}% (target <= {}%); re-run, all skipped: {:.0} ms vs {:.0} ms sending, {speedup:.1}x faster (target >= {}x)",
        journal.name,
        rate(m_on),
        rate(m_off),
        journal.overhead_target_pct,
        ms(m_rerun),
        ms(m_on),
        journal.speedup_target,
    );
    println!(
        "   runs (ms): on {}, off {}, re-run {} (sandbox requests {api_calls:?}); floor (--dry-run --offline --no-state: validate and print only) {:.0} ms",
        list(&on),
        list(&off),
        list(&rerun),
        ms(m_floor)
    );
    let all = |v: &[Duration]| v.iter().map(|d| ms(*d)).collect::<Vec<_>>();
    json!({
        "files": n_files, "jobs": 16, "api_latency_ms": latency, "runs": reps,
        "state_on_ms": all(&on), "state_off_ms": all(&off), "rerun_skipped_ms": all(&rerun),
        "dry_run_offline_ms": all(&floor),
        "state_on_files_per_s": rate(m_on), "state_off_files_per_s": rate(m_off),
        "journal": journal.name, "overhead_pct": overhead, "overhead_target_pct": journal.overhead_target_pct,
        "rerun_median_ms": ms(m_rerun), "sending_median_ms": ms(m_on),
        "rerun_speedup": speedup, "rerun_speedup_target": journal.speedup_target,
        "dry_run_offline_median_ms": ms(m_floor), "rerun_sandbox_requests": api_calls,
    })
}
