//! Configuration a new user can predict: an empty variable is unset, a flag wins over the
//! environment.

use crate::common::*;
use gcupload::ExitStatus;

#[test]
fn an_empty_variable_counts_as_unset() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    // Every variable gcupload reads, set empty, over a working sandbox configuration: each one
    // is as if unset (before, `GENESYS_REGION=` was "an unknown region" and
    // `GENESYS_SESSION_TOKEN=` "not a UUID").
    let out = env
        .cmd()
        .env("GENESYS_REGION", "")
        .env("GENESYS_SESSION_TOKEN", "")
        .env("GENESYS_ORIGIN", "")
        .env("GENESYS_DEPLOYMENT_ID", "")
        .env("WEBHOOK_SECRET", "")
        .env("GCUPLOAD_OUTBOX", "")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        stderr(&out)
    );
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_COMPLETED");
    // The issue's own example: an empty base URL is no base URL (the default region), not
    // "`` is not a URL"; a dry run that makes no call shows the run is configured.
    let out = env
        .cmd()
        .env("GENESYS_BASE_URL", "")
        .args(["--dry-run", "--offline"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn region_on_the_command_line_wins_over_a_base_url_from_the_environment() {
    let env = Env::new();
    let out = env
        .cmd()
        .args(["doctor", "--region", "eu_west_1"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let details = report["checks"].to_string();
    assert!(details.contains("login.mypurecloud.ie"), "{details}");
    assert!(
        env.sandbox.requests().is_empty(),
        "the sandbox named by GENESYS_BASE_URL was not asked"
    );
}
