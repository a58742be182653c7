//! URL settings with user info (`user:password@`). The platform's base URL refuses it before any
//! request: the OAuth client has settings of its own, and user info there would go out as Basic
//! auth. A webhook URL sends it as the receiver's Basic auth, but never in clear text to a host
//! that is not loopback.

use std::process::Output;

use base64::Engine;

use crate::common::*;
use gcupload::ExitStatus;

/// The password is in no output, stdout or stderr.
fn assert_not_shown(out: &Output, password: &str) {
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    assert!(!all.contains(password), "{password} shown:\n{all}");
}

/// A configuration failure (exit 2) whose record and error line name `setting`.
fn assert_refused(out: &Output, setting: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Usage.code()),
        "{}",
        stderr(out)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["error"]["kind"], "config", "{}", recs[0]);
    let message = recs[0]["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains(setting), "{message}");
    assert!(stderr(out).contains(setting), "{}", stderr(out));
    message
}

fn with_user_info(url: &url::Url, user: &str, password: &str) -> url::Url {
    let mut u = url.clone();
    u.set_username(user).unwrap();
    u.set_password(Some(password)).unwrap();
    u
}

#[test]
fn a_base_url_with_user_info_is_refused_before_any_request() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(1000));
    let base = with_user_info(&env.sandbox.base_url, "tokuser", "Base-Pa55");
    let from_env = env
        .cmd()
        .env("GENESYS_BASE_URL", base.as_str())
        .arg(&f)
        .output()
        .unwrap();
    let from_flag = env
        .cmd()
        .args(["--base-url", base.as_str()])
        .arg(&f)
        .output()
        .unwrap();
    for out in [from_env, from_flag] {
        let message = assert_refused(&out, "GENESYS_BASE_URL");
        assert!(
            message.contains("GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET"),
            "{message}"
        );
        assert_not_shown(&out, "Base-Pa55");
    }
    // doctor says the same and probes nothing.
    let out = env
        .cmd()
        .env("GENESYS_BASE_URL", base.as_str())
        .arg("doctor")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        all.contains("GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET"),
        "{all}"
    );
    assert_not_shown(&out, "Base-Pa55");
    // Not even a token request: no user info reached the platform.
    assert!(
        env.sandbox.requests().is_empty(),
        "{:?}",
        env.sandbox.requests()
    );
    assert!(env.sandbox.objects().is_empty());
}

#[test]
fn a_webhook_url_with_user_info_is_the_receivers_basic_auth() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(1000));
    let hook = with_user_info(&env.sandbox.webhook_url(), "hookuser", "Hook-Pa55");
    let out = env
        .cmd()
        .env("WEBHOOK_SYNC_URL", hook.as_str())
        .arg("-vv")
        .arg(&f)
        .finish(ExitStatus::Success);
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 1);
    let basic = base64::engine::general_purpose::STANDARD.encode("hookuser:Hook-Pa55");
    assert_eq!(hooks[0]["authorization"], format!("Basic {basic}"));
    assert_not_shown(&out, "Hook-Pa55");
}

#[test]
fn a_webhook_url_with_user_info_in_clear_text_to_another_host_is_refused() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(1000));
    let hook = "http://hookuser:Hook-Pa55@receiver.invalid/hook";
    let out = env
        .cmd()
        .env("WEBHOOK_SYNC_URL", hook)
        .arg(&f)
        .output()
        .unwrap();
    let message = assert_refused(&out, "WEBHOOK_SYNC_URL");
    assert!(message.contains("https"), "{message}");
    assert_not_shown(&out, "Hook-Pa55");
    assert!(
        env.sandbox.requests().is_empty(),
        "{:?}",
        env.sandbox.requests()
    );

    // `webhook flush` reads the same setting the same way.
    let flush = |url: &str| {
        env.bare_cmd()
            .args(["webhook", "flush", "--webhook-url", url])
            .output()
            .unwrap()
    };
    let out = flush(hook);
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Usage.code()),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("WEBHOOK_SYNC_URL"),
        "{}",
        stderr(&out)
    );
    assert_not_shown(&out, "Hook-Pa55");
    // Over https the same user info is accepted (nothing is queued: no request is made).
    let out = flush("https://hookuser:Hook-Pa55@receiver.invalid/hook");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_not_shown(&out, "Hook-Pa55");
}
