//! The sandbox as a new user runs it: `--sandbox` keeps out of the real journal and says
//! nothing under `-q`; `gcupload sandbox` cleans its store up however it stops, and with
//! `--state DIR` keeps its tenant across restarts so skip can be tried locally.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::*;
use gcupload::ExitStatus;

/// `gcupload sandbox` with its temporary files under `tmp`, and its settings line.
fn standalone(tmp: &Path, extra: &[&str]) -> (Child, Value) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("gcupload"))
        .arg("sandbox")
        .args(extra)
        .env_clear()
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, serde_json::from_str(&line).unwrap())
}

fn stores_in(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gcupload-sandbox-"))
        .collect()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

#[test]
fn a_standalone_sandbox_removes_its_store_on_sigterm_and_after_a_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, _) = standalone(tmp.path(), &[]);
    assert_eq!(stores_in(tmp.path()).len(), 1, "its store is in TMPDIR");
    signal(&child, "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(
        stores_in(tmp.path()),
        Vec::<String>::new(),
        "SIGTERM cleans up"
    );

    // kill -9 leaves the store behind; the next sandbox to start removes it.
    let (mut killed, _) = standalone(tmp.path(), &[]);
    let left = stores_in(tmp.path());
    signal(&killed, "-KILL");
    killed.wait().unwrap();
    assert_eq!(stores_in(tmp.path()), left, "nothing could clean up");
    let (mut next, _) = standalone(tmp.path(), &[]);
    let now = stores_in(tmp.path());
    assert_eq!(now.len(), 1);
    assert!(!now.contains(&left[0]), "the dead sandbox's store is gone");
    signal(&next, "-TERM");
    assert_eq!(next.wait().unwrap().code(), Some(0));
}

/// A run against a standalone sandbox, configured from its settings line.
fn upload(settings: &Value, state: &Path, file: &Path) -> std::process::Output {
    let get = |k: &str| settings[k].as_str().unwrap().to_string();
    assert_cmd::Command::cargo_bin("gcupload")
        .unwrap()
        .env_clear()
        .env("GENESYS_BASE_URL", get("baseUrl"))
        .env("GENESYS_CLIENT_ID", get("clientId"))
        .env("GENESYS_CLIENT_SECRET", get("clientSecret"))
        .env("EXTERNAL_CONTACT_ID", get("externalContactId"))
        .env("GCUPLOAD_STATE_DIR", state)
        .arg(file)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
}

#[test]
fn a_sandbox_with_a_state_directory_keeps_its_tenant_so_a_rerun_skips() {
    let env = Env::new();
    let kept = env.dir.path().join("sandbox-state");
    let journal = env.dir.path().join("journal");
    let f = env.file("a.pdf", &pdf(500));
    let (mut first, settings) = standalone(env.dir.path(), &["--state", kept.to_str().unwrap()]);
    let out = upload(&settings, &journal, &f);
    expect_status(&out, ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_COMPLETED");
    signal(&first, "-TERM");
    first.wait().unwrap();

    let (mut second, again) = standalone(env.dir.path(), &["--state", kept.to_str().unwrap()]);
    let mut same = again.clone();
    same["storeUrl"] = settings["storeUrl"].clone(); // the store's port is free to change
    assert_eq!(same, settings, "same credentials, ids and API port");
    let out = upload(&again, &journal, &f);
    expect_status(&out, ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_SKIPPED");
    // Its objects were kept too.
    assert!(kept.join("store").is_dir());
    signal(&second, "-TERM");
    second.wait().unwrap();
}

#[test]
fn a_sandbox_run_keeps_out_of_the_real_journal_and_is_quiet_with_q() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .bare_cmd()
        .args(["--sandbox", "-q"])
        .arg(&f)
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_COMPLETED");
    assert_eq!(stderr(&out), "", "-q: only errors on stderr");
    assert!(
        !env.outbox().join("state.db").exists(),
        "the user's state directory (GCUPLOAD_STATE_DIR) was not written"
    );
    // Asked for on the command line, a journal is kept where it was asked for.
    env.bare_cmd()
        .args(["--sandbox", "--state-dir"])
        .arg(env.outbox())
        .arg(&f)
        .finish(ExitStatus::Success);
    assert!(env.outbox().join("state.db").exists());
}
