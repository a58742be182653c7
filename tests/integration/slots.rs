//! `--jobs N` slots: a file holds one only while it works with the platform. Its stamp check is
//! made while it waits for a slot (and trusted only if the file still has that stamp when its
//! turn comes); its completion (journal, webhook, move) runs after it gave the slot back.

use std::time::{Duration, Instant};

use gcupload::ExitStatus;
use gcupload::sandbox::Pause;

use crate::common::*;

/// Polls `done` every 5 ms until it holds; the test fails if it does not within `within`.
fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn uploads_go_on_while_the_webhooks_of_finished_files_are_held() {
    let env = Env::new();
    let dir = env.dir.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..4u64 {
        std::fs::write(dir.join(format!("f{i}.pdf")), pdf(2000 + i as usize)).unwrap();
    }
    // The first two deliveries are held 3 s (under the sender's 5 s timeout); a receiver
    // records an event only once its hold is over.
    let mut hold = Pause::new("webhook", 3000);
    hold.times = 2;
    env.sandbox.faults().pause = vec![hold];
    let mut cmd = env.spawn_cmd();
    cmd.args(["--jobs", "2", "--recursive"]).arg(&dir);
    let child = cmd.spawn().unwrap();

    // With both first files in their webhook, the other two still get slots and upload.
    wait_until(Duration::from_secs(20), "two held webhooks", || {
        env.sandbox.paused("webhook") == 2
    });
    let mut held_when_stored = usize::MAX;
    wait_until(Duration::from_secs(20), "all four stored", || {
        let stored = env.sandbox.objects().len();
        // Read after the objects: the deliveries recorded by then, at the latest.
        held_when_stored = env.sandbox.webhooks().len();
        stored == 4
    });
    assert!(
        held_when_stored < 2,
        "the last two files were stored only after the held deliveries were answered"
    );

    let out = output_within(child, Duration::from_secs(60));
    expect_status(&out, ExitStatus::Success);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 4);
    for r in &recs {
        assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
        assert_eq!(r["webhook"]["delivered"], true, "{r}");
    }
    assert_eq!(env.sandbox.webhooks().len(), 4);
}

#[test]
fn a_file_changed_while_it_waits_for_its_slot_is_read_and_sent_again() {
    let env = Env::new();
    let dir = env.dir.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    let (old, kept) = (dir.join("b3.pdf"), dir.join("b4.pdf"));
    std::fs::write(&old, pdf(3000)).unwrap();
    std::fs::write(&kept, pdf(3001)).unwrap();
    let mut first = env.cmd();
    first.args(["--recursive"]).arg(&dir);
    first.finish(ExitStatus::Success);

    // Two new files, first in the walk's order, hold both slots at their upload requests;
    // the two sent ones wait behind them with their stamp checks made.
    std::fs::write(dir.join("a1.pdf"), pdf(3002)).unwrap();
    std::fs::write(dir.join("a2.pdf"), pdf(3003)).unwrap();
    let mut hold = Pause::new("request-url", 1500);
    hold.times = 2;
    env.sandbox.faults().pause = vec![hold];
    let mut cmd = env.spawn_cmd();
    cmd.args(["--jobs", "2", "-vv", "--recursive"]).arg(&dir);
    let child = cmd.spawn().unwrap();
    wait_until(Duration::from_secs(20), "both slots held", || {
        env.sandbox.paused("request-url") == 2
    });
    // Rewritten while it waits: its stamp, and its content, are no longer the journaled ones.
    let mut bytes = pdf(3000);
    bytes.extend_from_slice(b"\n% revised\n");
    std::fs::write(&old, &bytes).unwrap();

    let out = output_within(child, Duration::from_secs(60));
    let err = expect_status(&out, ExitStatus::Success);
    let asked = |name: &str| {
        err.lines().any(|l| {
            l.contains(name) && l.contains("its stamp names a completed upload (asked while")
        })
    };
    assert!(
        asked("b3.pdf") && asked("b4.pdf"),
        "both were asked ahead: {err}"
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 4);
    let b3 = by_name(&recs, "b3.pdf");
    assert_eq!(b3["action"], "FILE_UPLOAD_COMPLETED", "{b3}");
    assert_eq!(b3["integrityHash"], sha256(&bytes));
    assert_eq!(by_name(&recs, "b4.pdf")["action"], "FILE_UPLOAD_SKIPPED");
    let stored = env.sandbox.objects();
    assert_eq!(stored.len(), 5, "b3, b4, then a1, a2 and the new b3");
    assert!(stored.iter().any(|o| o.sha256 == sha256(&bytes)));
}
