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
