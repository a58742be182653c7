//! Limits met without being refused (issue 19): the run paces its Platform API calls under the
//! platform's limit (adaptive, from its 429s and `Retry-After`), and says so in its summary.

use crate::common::*;
use gcupload::ExitStatus;

/// 60 files against a per-token limit of 20 calls per 10 s (the platform's 300 per minute,
/// shortened): every file completes, and at most 5% of the calls are refused (before: 35%).
#[test]
fn sixty_files_under_an_api_limit_are_paced_not_refused() {
    let env = Env::new();
    {
        let mut f = env.sandbox.faults();
        f.api_limit_calls = 20;
        f.api_limit_window_ms = 10_000;
    }
    let files: Vec<_> = (0..60)
        .map(|i| env.file(&format!("f{i:02}.pdf"), &pdf(1000 + i)))
        .collect();
    let mut cmd = env.cmd();
    cmd.timeout(std::time::Duration::from_secs(240));
    let out = cmd
        .args(["--jobs", "4"])
        .args(&files)
        .finish(ExitStatus::Success);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 60);
    assert!(
        recs.iter().all(|r| r["action"] == "FILE_UPLOAD_COMPLETED"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.sandbox.objects().len(), 60, "each stored once");
    let calls = env
        .sandbox
        .requests()
        .iter()
        .filter(|q| q.path.starts_with("/api/") || q.path == "/oauth/token")
        .count();
    let refused = env.sandbox.refused("api") as usize;
    assert!(
        refused * 20 <= calls,
        "{refused} of {calls} calls refused (more than 5%)"
    );
    let summary = stderr(&out);
    assert!(
        summary.contains(&format!("{refused} call"))
            && summary.contains("throttled (429)")
            && summary.contains("waited for the API's pace"),
        "{summary}"
    );
}
