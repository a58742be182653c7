//! The process's own environment (issue 21): no CA certificates, a broken stderr, a locked
//! database, an open-file limit, a state directory that is not ours.

use crate::common::{Env, records};

/// No CA certificates anywhere (`SSL_CERT_FILE` and `SSL_CERT_DIR` pointing nowhere, as in a
/// minimal container): the run falls back to the bundled roots instead of panicking, and a
/// loopback run goes through.
#[test]
fn no_ca_certificates_is_no_panic() {
    let env = Env::new();
    let f = env.file("a.txt", b"hello");
    let out = env
        .cmd()
        .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
        .env("SSL_CERT_DIR", "/nonexistent/certs")
        .arg(&f)
        .output()
        .unwrap();
    let err = crate::common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], "completed");
    assert!(err.contains("bundled web-PKI roots"), "{err}");
}

/// The binary on the external-contact route against `env`'s sandbox, as a plain std command (its
/// stdio is the test's to choose).
fn std_cmd(env: &Env) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("gcupload"));
    c.env_clear()
        .current_dir(env.dir.path())
        .env("GENESYS_BASE_URL", env.sandbox.base_url.as_str())
        .env("GENESYS_CLIENT_ID", env.sandbox.client_id())
        .env("GENESYS_CLIENT_SECRET", env.sandbox.client_secret())
        .env("EXTERNAL_CONTACT_ID", env.sandbox.external_contact_id())
        .env("WEBHOOK_SYNC_URL", env.sandbox.webhook_url().as_str())
        .env("GCUPLOAD_STATE_DIR", env.outbox());
    c
}

/// stderr a pipe whose reader is gone (a log forwarder that died): every human line, the
/// summary and the per-file error lines, fails to write; the run neither panics nor loses a
/// record, with and without `-q`, with and without a failing file.
#[test]
fn broken_stderr_is_no_panic() {
    let env = Env::new();
    let good = env.file("a.txt", b"hello");
    let bad = env.file("b.exe", b"MZ\x90\x00 not allowed");
    for quiet in [false, true] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = std_cmd(&env);
        c.arg(if quiet { "-q" } else { "-v" }).arg(&good).arg(&bad);
        let out = c
            .stdin(std::process::Stdio::null())
            .stderr(writer)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(101), "panicked (quiet={quiet})");
        assert_eq!(out.status.code(), Some(4), "quiet={quiet}");
        let recs = records(&out.stdout);
        assert_eq!(recs.len(), 2, "quiet={quiet}");
    }
}
