//! Files still being written (issue 18, item 1): found by a walk or glob, a file some process
//! holds open for writing, that changes while it is read, or that is younger than `--min-age` is
//! deferred — not sent, not journaled, not moved, exit 0 — and a later run sends it whole, once.
//! Named explicitly, it is an error naming the writer.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::common::*;
use gcupload::ExitStatus;
use serde_json::Value;

/// Journal rows for a file name: a deferred file must have none.
fn journal_rows(env: &Env, name: &str) -> usize {
    env.store()
        .history(&gcupload::state::HistoryFilter::default())
        .unwrap()
        .iter()
        .filter(|r| r["fileName"] == name || r["file_name"] == name)
        .count()
}

/// A child process that opens `path` for appending, writes `head`, and sleeps holding it.
fn slow_writer(path: &Path, head: &[u8]) -> Child {
    std::fs::write(path, b"").unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3>>"$0"; cat >&3; exec sleep 60"#)
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(head).unwrap();
    drop(stdin);
    // The head is in the file once `cat` has copied it.
    while std::fs::metadata(path).unwrap().len() < head.len() as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

#[test]
fn a_file_held_open_by_a_writer_is_deferred_then_sent_whole_once_and_moved_only_then() {
    let env = Env::new();
    let inbox = env.dir.path().join("inbox");
    let sent = env.dir.path().join("sent");
    std::fs::create_dir_all(&inbox).unwrap();
    let done = pdf(3000);
    std::fs::write(inbox.join("done.pdf"), &done).unwrap();
    let whole = pdf(30_000);
    let (head, tail) = whole.split_at(whole.len() / 2);
    // The writer is this test process: a handle open for appending, half written.
    let mut writer = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(inbox.join("half.pdf"))
        .unwrap();
    writer.write_all(head).unwrap();
    writer.flush().unwrap();

    let run = || {
        env.cmd()
            .args(["-r", "--move-to"])
            .arg(&sent)
            .arg(&inbox)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recs = records(&out.stdout);
    assert_eq!(
        by_name(&recs, "done.pdf")["action"],
        "FILE_UPLOAD_COMPLETED"
    );
    let half = by_name(&recs, "half.pdf");
    assert_eq!(half["action"], "FILE_UPLOAD_DEFERRED", "{half}");
    assert_eq!(half["deferReason"], "open-for-writing");
    assert_eq!(half["writerPid"], std::process::id());
    assert!(half.get("movedTo").is_none());
    assert!(
        inbox.join("half.pdf").exists(),
        "nothing moved before it is complete"
    );
    assert_eq!(
        env.sandbox.objects().len(),
        1,
        "only the complete file stored"
    );
    assert_eq!(
        journal_rows(&env, "half.pdf"),
        0,
        "nothing journaled for it"
    );
    assert!(stderr(&out).contains("1 deferred"), "{}", stderr(&out));

    // The writer finishes and closes: the next run sends it once, byte-exact, then moves it.
    writer.write_all(tail).unwrap();
    drop(writer);
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1, "done.pdf was moved away by the first run");
    assert_eq!(recs[0]["action"], "FILE_UPLOAD_COMPLETED");
    assert_eq!(recs[0]["integrityHash"], sha256(&whole));
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 2);
    assert!(objects.iter().any(|o| o.sha256 == sha256(&whole)));
    assert_eq!(std::fs::read(sent.join("half.pdf")).unwrap(), whole);
    assert!(!inbox.join("half.pdf").exists());
    let out = run();
    assert_eq!(out.status.code(), Some(0));
    assert!(records(&out.stdout).is_empty());
    assert_eq!(env.sandbox.objects().len(), 2, "sent once");
}

#[test]
fn another_process_writing_is_deferred_in_a_glob_and_named_when_given_explicitly() {
    let env = Env::new();
    let inbox = env.dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    let path = inbox.join("scan.pdf");
    let mut child = slow_writer(&path, &pdf(5000)[..2000]);

    let glob = format!("{}/*.pdf", inbox.display());
    let out = env.cmd().arg(&glob).finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_DEFERRED");
    assert_eq!(r["writerPid"], child.id());
    assert_eq!(r["writerProgram"], "sleep");

    // Named on the command line: a clear error naming the writer, exit 8.
    let out = env.cmd().arg(&path).finish(ExitStatus::FileChanged);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_FAILED");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("sleep (pid {})", child.id())),
        "{message}"
    );
    assert!(
        stderr(&out).contains("still being written"),
        "{}",
        stderr(&out)
    );
    assert!(env.sandbox.objects().is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn min_age_defers_a_fresh_file_until_it_is_old_enough() {
    let env = Env::new();
    let inbox = env.dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    let p = inbox.join("fresh.pdf");
    std::fs::write(&p, pdf(1000)).unwrap();
    let run = || {
        env.cmd()
            .args(["-r", "--min-age", "1h"])
            .arg(&inbox)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_DEFERRED");
    assert_eq!(r["deferReason"], "too-young");
    assert!(env.sandbox.objects().is_empty());
    // Two hours old: taken.
    let old = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_COMPLETED");
    assert_eq!(env.sandbox.objects().len(), 1);
}

#[test]
fn a_file_growing_while_it_is_read_is_deferred_not_sent() {
    let env = Env::new();
    let inbox = env.dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    let p = inbox.join("growing.pdf");
    std::fs::write(&p, pdf(6 << 20)).unwrap();
    // A writer that opens, appends a byte and closes, over and over: between its opens no
    // descriptor is open for writing, so only the size/time rule can see it.
    let stop = Arc::new(AtomicBool::new(false));
    let grower = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                f.write_all(b"\n").unwrap();
                drop(f);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let out = env
        .cmd()
        .args(["-r", "--max-size", "20MiB"])
        .arg(&inbox)
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    grower.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: &Value = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_DEFERRED", "{r}");
    assert!(
        env.sandbox.objects().is_empty(),
        "nothing half-written stored"
    );
    assert_eq!(journal_rows(&env, "growing.pdf"), 0);
}
