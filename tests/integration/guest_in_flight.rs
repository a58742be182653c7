//! Issue 19: several attachments in flight on one guest session, as the transport SDK allows.
//! The session is held for one frame exchange at a time, never while a file waits for the
//! platform's verdict on its upload (the scan), so the batch's other files go on meanwhile.

use crate::common::*;

/// With a scan that takes a while and slow PUTs, later files ask for their upload URLs while
/// earlier ones are still being scanned; every file completes, byte-exact, one record and one
/// message each, and no message is refused. Before, a file waiting for its verdict held the
/// session, and no other file asked for a URL during any scan (0).
#[test]
fn uploads_overlap_the_scans_of_others_on_one_session() {
    let env = Env::new();
    let files = twelve_files_with_slow_scans(&env);
    let out = env
        .guest_cmd()
        .args(["--jobs", "4"])
        .args(&files)
        .output()
        .unwrap();
    assert_each_stored_and_sent_once(&env, &out, &files);
    let overlapping = env.sandbox.guest_uploads_during_scans();
    assert!(
        overlapping >= 3,
        "only {overlapping} upload(s) started while another was being scanned"
    );
}

/// The socket drops while several files wait for their verdicts: each waiter finds its event
/// on the reopened socket or asks for its attachment there, and no file is uploaded or sent
/// twice.
#[test]
fn a_socket_that_drops_while_several_files_await_their_verdicts_loses_none() {
    let env = Env::new();
    let files = twelve_files_with_slow_scans(&env);
    env.sandbox.faults().close_guest_on_upload = 2;
    let out = env
        .guest_cmd()
        .args(["--jobs", "4"])
        .args(&files)
        .output()
        .unwrap();
    assert_each_stored_and_sent_once(&env, &out, &files);
}

/// Twelve small PDFs; the sandbox's scan takes 600 ms and its PUTs 100 ms.
fn twelve_files_with_slow_scans(env: &Env) -> Vec<std::path::PathBuf> {
    {
        let mut f = env.sandbox.faults();
        f.guest_scan_delay_ms = 600;
        f.put_delay_ms = 100;
    }
    (0..12)
        .map(|i| env.file(&format!("f{i:02}.pdf"), &pdf(2000 + i)))
        .collect()
}

/// Exit 0, one completed record, one byte-exact object and one message per file, no 4029.
fn assert_each_stored_and_sent_once(
    env: &Env,
    out: &std::process::Output,
    files: &[std::path::PathBuf],
) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), files.len(), "one record per file");
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), files.len());
    assert_eq!(
        env.sandbox.messages().len(),
        files.len(),
        "one message each"
    );
    for (i, path) in files.iter().enumerate() {
        let r = by_name(&recs, &format!("f{i:02}.pdf"));
        assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
        let id = r["fileId"].as_str().unwrap();
        let obj = objects.iter().find(|o| o.key.contains(id)).unwrap();
        assert_eq!(obj.sha256, sha256_file(path));
    }
    assert_eq!(env.sandbox.refused("guest"), 0, "no 4029");
}
