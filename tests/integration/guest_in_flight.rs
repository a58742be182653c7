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
    {
        let mut f = env.sandbox.faults();
        f.guest_scan_delay_ms = 600;
        f.put_delay_ms = 100;
    }
    let files: Vec<_> = (0..12)
        .map(|i| env.file(&format!("f{i:02}.pdf"), &pdf(2000 + i)))
        .collect();
    let out = env
        .guest_cmd()
        .args(["--jobs", "4"])
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
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
    let overlapping = env.sandbox.guest_uploads_during_scans();
    assert!(
        overlapping >= 3,
        "only {overlapping} upload(s) started while another was being scanned"
    );
}
