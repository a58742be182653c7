//! `gcupload watch`: the real binary on real folders with real file events, against the
//! sandbox. Each test reads the records as they stream, with generous deadlines (never a timed
//! assertion), then stops the watcher as a service manager would and checks what was stored.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// Long enough for a loaded machine; a healthy run takes a fraction of it.
const DEADLINE: Duration = Duration::from_secs(120);

/// A distinct small PDF per seed.
fn doc(seed: u64, len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.extend(noise(len, seed));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

/// A running `gcupload watch`, its stdout read line by line as it comes.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    records: Vec<Value>,
}

impl Watching {
    fn start(env: &Env, args: &[&str], dirs: &[&Path], vars: &[(&str, &str)]) -> Watching {
        let mut cmd = env.spawn_cmd();
        cmd.arg("watch")
            .args(args)
            .args(dirs)
            .envs(vars.iter().copied());
        let mut child = cmd.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                if tx.send(line.expect("stdout is UTF-8")).is_err() {
                    break;
                }
            }
        });
        // Files are dropped only once the watches are in place (the line that says so).
        let (ready_tx, ready) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if line.starts_with("gcupload watch: watching") {
                    let _ = ready_tx.send(());
                }
                s.push_str(&line);
                s.push('\n');
            }
            s
        });
        assert!(
            ready.recv_timeout(DEADLINE).is_ok(),
            "gcupload watch never said it was watching"
        );
        Watching {
            child,
            lines,
            stderr,
            records: Vec::new(),
        }
    }

    fn take(&mut self, line: String) {
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not whole JSON ({e}): {line}"));
        check_schema(&v);
        self.records.push(v);
    }

    /// Reads records until `done` says enough (or the deadline fails the test).
    fn until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let end = Instant::now() + DEADLINE;
        while !done(&self.records) {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.take(line),
                Err(_) => panic!(
                    "waited {DEADLINE:?} for {what}; records so far: {:#?}",
                    self.records
                ),
            }
        }
    }

    /// Records of completed uploads, by file name.
    fn completed(&self) -> BTreeMap<String, usize> {
        count(&self.records, "FILE_UPLOAD_COMPLETED")
    }

    /// SIGTERM, as systemd stops a service: the exit code, every record, stderr.
    fn term(mut self) -> (Option<i32>, Vec<Value>, String) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = self.wait();
        while let Ok(line) = self.lines.recv_timeout(DEADLINE) {
            self.take(line);
        }
        (status, self.records, self.stderr.join().unwrap())
    }

    /// kill -9: no chance to finish anything.
    fn kill9(mut self) -> Vec<Value> {
        self.child.kill().unwrap();
        self.wait();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            // The last line may be cut off by the kill: only whole ones count.
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                self.records.push(v);
            }
        }
        self.records
    }

    fn wait(&mut self) -> Option<i32> {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < end, "gcupload watch did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn count(records: &[Value], action: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records.iter().filter(|r| r["action"] == action) {
        *out.entry(r["fileName"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

/// Every file stored exactly once and byte-exact: as many objects as files, one per content.
fn assert_stored_once(env: &Env, files: &[(String, Vec<u8>)]) {
    let objects = env.sandbox.objects();
    let stored: BTreeMap<&str, usize> = objects.iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(o.sha256.as_str()).or_default() += 1;
        m
    });
    for (name, bytes) in files {
        assert_eq!(
            stored.get(sha256(bytes).as_str()),
            Some(&1),
            "{name}: stored once, whole ({} objects in all)",
            objects.len()
        );
    }
    assert_eq!(objects.len(), files.len(), "nothing else stored");
}

fn inbox(env: &Env) -> PathBuf {
    let dir = env.dir.path().join("inbox");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a file outside the folder, then renames it in: how careful writers deliver.
fn drop_in(env: &Env, dir: &Path, name: &str, bytes: &[u8]) {
    let staged = env.dir.path().join(format!(".staged-{name}"));
    std::fs::write(&staged, bytes).unwrap();
    std::fs::rename(&staged, dir.join(name)).unwrap();
}

/// Writes `bytes` into `path` in `chunks` pieces, pausing between them.
fn write_slowly(path: &Path, bytes: &[u8], chunks: usize, pause: Duration) {
    let mut f = std::fs::File::create(path).unwrap();
    for piece in bytes.chunks(bytes.len().div_ceil(chunks)) {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
        std::thread::sleep(pause);
    }
}

#[test]
fn watch_sends_what_is_there_then_what_is_renamed_in_and_exits_0_on_sigterm() {
    let env = Env::new();
    let dir = inbox(&env);
    let mut files = Vec::new();
    for i in 0..3 {
        let (name, bytes) = (format!("early{i}.pdf"), doc(i, 3000));
        std::fs::write(dir.join(&name), &bytes).unwrap();
        files.push((name, bytes));
    }
    let mut w = Watching::start(&env, &[], &[&dir], &[]);
    w.until("the files present at the start", |r| r.len() >= 3);
    for i in 10..15 {
        let (name, bytes) = (format!("renamed{i}.pdf"), doc(i, 5000));
        drop_in(&env, &dir, &name, &bytes);
        files.push((name, bytes));
    }
    w.until("the renamed files", |r| r.len() >= 8);
    let (status, records, stderr) = w.term();
    assert_eq!(status, Some(0), "SIGTERM ends a watch with 0: {stderr}");
    assert_eq!(records.len(), 8, "one record per file: {records:#?}");
    assert!(
        count(&records, "FILE_UPLOAD_COMPLETED")
            .values()
            .all(|&n| n == 1)
    );
    assert_stored_once(&env, &files);
}

#[test]
fn watch_waits_for_a_slow_writer_and_a_chunked_copy() {
    let env = Env::new();
    let dir = inbox(&env);
    let mut w = Watching::start(&env, &[], &[&dir], &[]);
    // Pauses shorter than the settle time (1 s): the file is taken only once it is whole.
    let slow = doc(1, 400_000);
    write_slowly(&dir.join("slow.pdf"), &slow, 6, Duration::from_millis(400));
    let copied = doc(2, 2_000_000);
    write_slowly(
        &dir.join("copied.pdf"),
        &copied,
        32,
        Duration::from_millis(10),
    );
    w.until("both files", |r| r.len() >= 2);
    // Nothing more arrives for them: no second record, no second object.
    std::thread::sleep(Duration::from_secs(2));
    let (status, records, _) = Watching::term(w);
    assert_eq!(status, Some(0));
    assert_eq!(records.len(), 2, "{records:#?}");
    let done = count(&records, "FILE_UPLOAD_COMPLETED");
    assert_eq!(done.get("slow.pdf"), Some(&1));
    assert_eq!(done.get("copied.pdf"), Some(&1));
    assert_stored_once(
        &env,
        &[("slow.pdf".into(), slow), ("copied.pdf".into(), copied)],
    );
}

#[test]
fn watch_takes_three_hundred_files_dropped_at_once_each_once() {
    let env = Env::new();
    let dir = inbox(&env);
    let mut w = Watching::start(&env, &["--settle", "200ms", "-j", "8"], &[&dir], &[]);
    let files: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("f{i:03}.pdf"), doc(100 + i, 500)))
        .collect();
    for (name, bytes) in &files {
        drop_in(&env, &dir, name, bytes);
    }
    w.until("300 records", |r| r.len() >= 300);
    let completed = w.completed();
    let (status, records, _) = w.term();
    assert_eq!(status, Some(0));
    assert_eq!(records.len(), 300);
    assert_eq!(completed.len(), 300);
    assert_stored_once(&env, &files);
}

#[test]
fn watch_recovers_from_an_event_queue_overflow_by_a_rescan() {
    let env = Env::new();
    let dir = inbox(&env);
    // A one-event queue: a burst of files overflows it at once.
    let mut w = Watching::start(
        &env,
        &["--settle", "200ms"],
        &[&dir],
        &[("GCUPLOAD_WATCH_QUEUE", "1")],
    );
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("burst{i:03}.pdf"), doc(1000 + i, 300)))
        .collect();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    w.until("200 records", |r| r.len() >= 200);
    let (status, records, stderr) = w.term();
    assert_eq!(status, Some(0));
    assert!(
        stderr.contains("rescanning"),
        "the overflow was noticed: {stderr}"
    );
    assert_eq!(records.len(), 200, "each file once");
    assert_stored_once(&env, &files);
}

#[test]
fn watch_killed_and_restarted_loses_nothing_and_sends_nothing_twice() {
    let env = Env::new();
    let dir = inbox(&env);
    let mut files = Vec::new();
    let mut w = Watching::start(&env, &["--settle", "100ms"], &[&dir], &[]);
    for i in 0..40 {
        let (name, bytes) = (format!("a{i:02}.pdf"), doc(2000 + i, 20_000));
        drop_in(&env, &dir, &name, &bytes);
        files.push((name, bytes));
        if i == 20 {
            w.until("some records", |r| !r.is_empty());
        }
    }
    // kill -9 while files arrive and uploads run.
    let before = w.kill9();
    for i in 40..60 {
        let (name, bytes) = (format!("b{i:02}.pdf"), doc(2000 + i, 20_000));
        drop_in(&env, &dir, &name, &bytes);
        files.push((name, bytes));
    }
    let mut w = Watching::start(&env, &["--settle", "100ms"], &[&dir], &[]);
    // The restart looks at every file: the ones sent before are skipped, the rest sent.
    w.until("a record for each of the 60 files", |r| {
        let names: std::collections::BTreeSet<&str> =
            r.iter().filter_map(|r| r["fileName"].as_str()).collect();
        names.len() >= 60
    });
    let (status, after, _) = w.term();
    assert_eq!(status, Some(0));
    assert!(
        after.iter().all(|r| r["action"] != "FILE_UPLOAD_FAILED"),
        "{after:#?}"
    );
    let sent_before = count(&before, "FILE_UPLOAD_COMPLETED");
    for (name, n) in count(&after, "FILE_UPLOAD_COMPLETED") {
        assert_eq!(n, 1);
        assert!(!sent_before.contains_key(&name), "{name} sent twice");
    }
    assert_stored_once(&env, &files);
}

#[test]
fn watch_with_recursive_watches_new_subdirectories() {
    let env = Env::new();
    let dir = inbox(&env);
    let mut w = Watching::start(&env, &["-r", "--settle", "200ms"], &[&dir], &[]);
    // A directory made inside, written into at once (before its watch may exist)...
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let first = doc(1, 1000);
    std::fs::write(sub.join("first.pdf"), &first).unwrap();
    // ...and a whole tree renamed in.
    let tree = env.dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    let deep = doc(2, 1000);
    std::fs::write(tree.join("a/b/deep.pdf"), &deep).unwrap();
    std::fs::rename(&tree, dir.join("tree")).unwrap();
    w.until("both files", |r| r.len() >= 2);
    // Files arriving later in the new directories are seen too.
    std::thread::sleep(Duration::from_millis(500));
    let later = doc(3, 1000);
    drop_in(&env, &dir.join("tree/a/b"), "later.pdf", &later);
    w.until("the later file", |r| r.len() >= 3);
    let (status, records, _) = w.term();
    assert_eq!(status, Some(0));
    assert_eq!(records.len(), 3, "{records:#?}");
    assert_stored_once(
        &env,
        &[
            ("first.pdf".into(), first),
            ("deep.pdf".into(), deep),
            ("later.pdf".into(), later),
        ],
    );
}

#[test]
fn watch_refuses_what_is_not_a_directory() {
    let env = Env::new();
    let file = env.file("a.pdf", &doc(1, 100));
    let out = env.cmd().arg("watch").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(gcupload::ExitStatus::Usage.code()));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn watch_stopped_mid_upload_exits_0_with_whole_records_and_a_restart_sends_the_rest() {
    let env = Env::with_faults(gcupload::sandbox::Faults {
        api_latency_ms: 300,
        ..Default::default()
    });
    let dir = inbox(&env);
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("m{i:02}.pdf"), doc(3000 + i, 50_000)))
        .collect();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let mut w = Watching::start(&env, &["-j", "2"], &[&dir], &[]);
    w.until("the first record", |r| !r.is_empty());
    // `term` checks every line is whole JSON that meets the schema.
    let (status, first, stderr) = w.term();
    assert_eq!(status, Some(0), "{stderr}");
    assert!(first.len() < files.len(), "stopped before the end");
    let mut w = Watching::start(&env, &["-j", "4"], &[&dir], &[]);
    // The restart looks at every file again: skipped if sent, sent if not.
    w.until("a record for each file", |r| r.len() >= files.len());
    let (status, second, _) = w.term();
    assert_eq!(status, Some(0));
    let sent_first = count(&first, "FILE_UPLOAD_COMPLETED");
    let sent_second = count(&second, "FILE_UPLOAD_COMPLETED");
    assert_eq!(
        sent_first.len() + sent_second.len(),
        files.len(),
        "{second:#?}"
    );
    assert_stored_once(&env, &files);
}

#[test]
fn watch_defers_a_file_held_open_past_the_settle_time_and_sends_it_whole_once() {
    let env = Env::new();
    let dir = inbox(&env);
    let mut w = Watching::start(&env, &["--settle", "200ms"], &[&dir], &[]);
    // A writer that pauses far longer than the settle time with the file open.
    let bytes = doc(7, 300_000);
    let path = dir.join("held.pdf");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&bytes[..100_000]).unwrap();
    f.flush().unwrap();
    w.until("the deferral", |r| {
        r.iter().any(|r| r["action"] == "FILE_UPLOAD_DEFERRED")
    });
    std::thread::sleep(Duration::from_secs(2));
    f.write_all(&bytes[100_000..]).unwrap();
    drop(f);
    w.until("the upload", |r| {
        r.iter().any(|r| r["action"] == "FILE_UPLOAD_COMPLETED")
    });
    std::thread::sleep(Duration::from_secs(1));
    let (status, records, _) = w.term();
    assert_eq!(status, Some(0));
    // Retried while it was open, but said once.
    assert_eq!(
        count(&records, "FILE_UPLOAD_DEFERRED").get("held.pdf"),
        Some(&1)
    );
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_stored_once(&env, &[("held.pdf".into(), bytes)]);
}

#[test]
fn watch_with_poll_finds_files_without_events() {
    let env = Env::new();
    let dir = inbox(&env);
    let mut w = Watching::start(
        &env,
        &["--poll", "200ms", "--settle", "100ms"],
        &[&dir],
        &[],
    );
    let bytes = doc(5, 2000);
    drop_in(&env, &dir, "polled.pdf", &bytes);
    w.until("the polled file", |r| !r.is_empty());
    let (status, records, stderr) = w.term();
    assert_eq!(status, Some(0));
    assert!(stderr.contains("polling every"), "{stderr}");
    assert_eq!(
        count(&records, "FILE_UPLOAD_COMPLETED").get("polled.pdf"),
        Some(&1)
    );
    assert_stored_once(&env, &[("polled.pdf".into(), bytes)]);
}

/// A watched drop folder with `--move-to` and `--failed-to`: what was sent lands in `sent`, a
/// file that can never be sent in `failed`, each below the folder it arrived in; the drop folder
/// is left empty, and a file dropped again under a moved file's name is a new file.
#[test]
fn watch_moves_what_it_sent_and_sets_aside_what_it_never_can() {
    let env = Env::new();
    let dir = inbox(&env);
    let (sent, failed) = (env.dir.path().join("sent"), env.dir.path().join("failed"));
    std::fs::create_dir_all(dir.join("a")).unwrap();
    let mut args = vec!["-r", "--settle", "200ms", "--move-to"];
    args.push(sent.to_str().unwrap());
    args.extend(["--failed-to", failed.to_str().unwrap()]);
    let mut w = Watching::start(&env, &args, &[&dir], &[]);
    let (good, bad) = (doc(1, 2000), png(200));
    drop_in(&env, &dir.join("a"), "good.pdf", &good);
    drop_in(&env, &dir.join("a"), "bad.pdf", &bad);
    w.until("both files", |r| r.len() >= 2);
    let again = doc(2, 2000);
    drop_in(&env, &dir.join("a"), "good.pdf", &again);
    w.until("the file dropped again", |r| r.len() >= 3);
    let (status, records, stderr) = w.term();
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(records.len(), 3, "{records:#?}");
    assert_eq!(std::fs::read(sent.join("a/good.pdf")).unwrap(), good);
    assert_eq!(std::fs::read(sent.join("a/good (1).pdf")).unwrap(), again);
    assert_eq!(std::fs::read(failed.join("a/bad.pdf")).unwrap(), bad);
    assert!(failed.join("a/bad.pdf.gcupload.json").exists());
    assert_eq!(std::fs::read_dir(dir.join("a")).unwrap().count(), 0);
}
