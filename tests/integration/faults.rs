//! The fault matrix: every fault the sandbox can inject, on every route it applies to, with the
//! end state checked: stored exactly once and byte-exact, the right record, the webhook event
//! delivered exactly once (possibly in a later run), the documented exit code.

use std::process::Output;

use crate::common::*;
use gcupload::ExitStatus;
use gcupload::sandbox::{Faults, Inject};
use serde_json::Value;

const ROUTES: [&str; 3] = ["external-contact", "guest", "conversation"];
const OAUTH_ROUTES: [&str; 2] = ["external-contact", "conversation"];

fn cmd(env: &Env, route: &str) -> assert_cmd::Command {
    match route {
        "guest" => env.guest_cmd(),
        "conversation" => env.conversation_cmd(),
        _ => env.cmd(),
    }
}

fn upload(env: &Env, route: &str, args: &[&str], bytes: &[u8]) -> (Output, Vec<Value>) {
    let f = env.file(&format!("{}.pdf", uuid::Uuid::new_v4().simple()), bytes);
    let out = cmd(env, route).args(args).arg(&f).output().unwrap();
    let recs = records(&out.stdout);
    assert_eq!(
        recs.len(),
        1,
        "one record ({:?}): {}",
        out.status,
        stderr(&out)
    );
    (out, recs)
}

/// The file is stored exactly once, byte-exact, confirmed, and its event delivered once.
fn assert_uploaded_once(env: &Env, route: &str, out: &Output, r: &Value, bytes: &[u8], what: &str) {
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{route} {what}: {}",
        stderr(out)
    );
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{route} {what}");
    let id = r["fileId"].as_str().unwrap();
    let objects = env.sandbox.objects();
    let mine: Vec<_> = objects.iter().filter(|o| o.key.contains(id)).collect();
    assert_eq!(mine.len(), 1, "{route} {what}: {objects:?}");
    assert_eq!(mine[0].sha256, sha256(bytes), "{route} {what}");
    assert_eq!(r["integrityHash"], sha256(bytes));
    let hooks: Vec<_> = env
        .sandbox
        .webhooks()
        .into_iter()
        .filter(|h| h["idempotencyKey"] == r["eventId"])
        .collect();
    assert_eq!(hooks.len(), 1, "{route} {what}: webhook delivered once");
    if route != "external-contact" {
        let sent: Vec<_> = env
            .sandbox
            .messages()
            .into_iter()
            .filter(|m| m["id"] == r["messageId"])
            .collect();
        assert_eq!(sent.len(), 1, "{route} {what}: sent once");
    }
}

fn recovers(route: &str, what: &str, set: impl FnOnce(&mut gcupload::sandbox::Faults)) {
    let env = Env::new();
    set(&mut env.sandbox.faults());
    let bytes = pdf(200_000);
    let (out, recs) = upload(&env, route, &[], &bytes);
    assert_uploaded_once(&env, route, &out, &recs[0], &bytes, what);
    assert_eq!(
        env.sandbox.objects().len(),
        1,
        "{route} {what}: no second copy"
    );
    if route == "guest" {
        // A reconnect finds the session this run created: the record still says it is new.
        assert_eq!(recs[0]["newSession"], true, "{what}");
    }
    assert!(
        stderr(&out).is_empty() || !stderr(&out).contains("error:"),
        "{route} {what}: {}",
        stderr(&out)
    );
}

#[test]
fn token_endpoint_429_and_503_are_retried() {
    for route in OAUTH_ROUTES {
        recovers(route, "token 429", |f| {
            f.inject.push(Inject::new("token", 429, Some(1)))
        });
        recovers(route, "token 503", |f| {
            f.inject.push(Inject::new("token", 503, None))
        });
    }
}

#[test]
fn url_request_429_and_503_are_retried() {
    for route in OAUTH_ROUTES {
        recovers(route, "request-url 429", |f| {
            f.inject.push(Inject::new("request-url", 429, Some(1)))
        });
        recovers(route, "request-url 503", |f| {
            f.inject.push(Inject::new("request-url", 503, None))
        });
    }
}

#[test]
fn store_slowdown_and_429_are_retried_from_the_start_of_the_file() {
    for route in ROUTES {
        recovers(route, "put 503 SlowDown", |f| {
            f.inject.push(Inject::new("put", 503, None))
        });
        recovers(route, "put 429", |f| {
            f.inject.push(Inject::new("put", 429, Some(1)))
        });
    }
}

#[test]
fn a_connection_dropped_mid_put_is_retried_from_the_start() {
    for route in ROUTES {
        recovers(route, "dropped PUT", |f| f.drop_puts = 2);
    }
}

#[test]
fn an_expired_url_is_replaced() {
    for route in ROUTES {
        recovers(route, "expired URL", |f| f.expired_urls = 1);
    }
}

#[test]
fn a_url_that_expires_while_waiting_out_a_rate_limit_is_replaced() {
    for route in ROUTES {
        recovers(route, "URL expired during Retry-After", |f| {
            f.url_ttl_secs = 1;
            f.inject.push(Inject::new("put", 429, Some(2)));
        });
    }
}

#[test]
fn confirm_429_and_503_are_retried() {
    for route in OAUTH_ROUTES {
        recovers(route, "confirm 429", |f| {
            f.inject.push(Inject::new("confirm", 429, Some(1)))
        });
        recovers(route, "confirm 503", |f| {
            f.inject.push(Inject::new("confirm", 503, None))
        });
    }
}

#[test]
fn a_lost_confirm_answer_is_asked_again_and_counts_once() {
    for route in OAUTH_ROUTES {
        recovers(route, "lost confirm answer", |f| f.lose_confirms = 1);
    }
}

#[test]
fn send_429_and_503_are_retried() {
    recovers("conversation", "send 429", |f| {
        f.inject.push(Inject::new("send", 429, Some(1)))
    });
    recovers("conversation", "send 503", |f| {
        f.inject.push(Inject::new("send", 503, None))
    });
}

#[test]
fn a_revoked_token_is_refreshed() {
    for route in OAUTH_ROUTES {
        recovers(route, "revoked token", |f| f.reject_tokens = 1);
    }
}

#[test]
fn an_expiring_token_is_refreshed_before_it_expires() {
    let env = Env::new();
    env.sandbox.faults().token_ttl_secs = 1;
    env.sandbox.faults().put_delay_ms = 700;
    let a = env.file("a.pdf", &pdf(100));
    let b = env.file("b.pdf", &pdf(100));
    env.cmd().arg(&a).arg(&b).finish(ExitStatus::Success);
    let tokens = env
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth/token")
        .count();
    assert!(tokens >= 2, "the token was renewed ({tokens} requests)");
    assert!(
        env.sandbox.requests().iter().all(|r| r.status != 401),
        "no call was made with an expired token"
    );
}

#[test]
fn a_guest_socket_that_drops_is_resumed_without_uploading_twice() {
    // Frames: 1 SessionResponse, 2 PresignedUrlResponse.
    for after in [1, 2] {
        recovers(
            "guest",
            &format!("socket closed after frame {after}"),
            |f| f.close_guest_after_frames = after,
        );
    }
}

#[test]
fn a_guest_socket_that_drops_around_the_send_never_sends_twice() {
    // Frame 3 is the UploadSuccessEvent: the server closes just as the client sends onMessage.
    // Either the write fails (resent on a new socket) or it went out unanswered: then the
    // session history says whether it arrived (issue 13 item 10), so the file always completes
    // with exactly one message.
    for _ in 0..3 {
        let env = Env::new();
        env.sandbox.faults().close_guest_after_frames = 3;
        let bytes = pdf(5000);
        let (out, recs) = upload(&env, "guest", &[], &bytes);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(env.sandbox.messages().len(), 1, "sent exactly once");
        assert_eq!(env.sandbox.objects().len(), 1, "uploaded once");
        assert_uploaded_once(&env, "guest", &out, &recs[0], &bytes, "frame 3");
    }
}

/// The store's PUTs (requests the sandbox saw on the store origin).
fn puts(env: &Env) -> usize {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| r.surface == "store" && r.method == "PUT")
        .count()
}

/// Issue 13 item 11: S3 asks for `500 InternalError`, `503 SlowDown` and `400 RequestTimeout`
/// to be tried again (the AWS SDKs' standard retry mode does); each is retried, the file stored
/// once, byte-exact. Before, a 500 was final (exit 5).
#[test]
fn store_internal_error_slowdown_and_request_timeout_are_retried() {
    for route in ROUTES {
        for (status, code) in [
            (500, "InternalError"),
            (503, "SlowDown"),
            (400, "RequestTimeout"),
        ] {
            let what = format!("put {status} {code}");
            let env = Env::new();
            env.sandbox.faults().inject = vec![Inject {
                times: 2,
                ..Inject::s3(status, code)
            }];
            let bytes = pdf(200_000);
            let (out, recs) = upload(&env, route, &[], &bytes);
            assert_uploaded_once(&env, route, &out, &recs[0], &bytes, &what);
            assert_eq!(env.sandbox.objects().len(), 1, "{route} {what}");
            assert_eq!(puts(&env), 3, "{route} {what}: two refused, then stored");
        }
    }
}

/// Any other 4xx from the store is final: one PUT, nothing stored, exit 5.
#[test]
fn a_store_400_other_than_request_timeout_is_final() {
    for route in ROUTES {
        for code in ["InvalidArgument", "BadDigest"] {
            let env = Env::new();
            env.sandbox.faults().inject = vec![Inject::s3(400, code)];
            let (out, recs) = upload(&env, route, &[], &pdf(1000));
            assert_eq!(
                out.status.code(),
                Some(ExitStatus::Remote.code()),
                "{route} {code}"
            );
            let e = &recs[0]["error"];
            assert_eq!((&e["httpStatus"], &e["code"]), (&400.into(), &code.into()));
            assert_eq!(puts(&env), 1, "{route} {code}: never retried");
            assert!(env.sandbox.objects().is_empty());
            assert!(env.sandbox.webhooks().is_empty());
        }
    }
}

#[test]
fn a_rate_limit_longer_than_the_budget_gives_up_at_once() {
    let env = Env::new();
    env.sandbox
        .faults()
        .inject
        .push(Inject::new("request-url", 429, Some(600)));
    let (out, recs) = upload(
        &env,
        "external-contact",
        &["--retry-budget", "30"],
        &pdf(1000),
    );
    assert_eq!(out.status.code(), Some(ExitStatus::Remote.code()));
    assert_eq!(recs[0]["error"]["httpStatus"], 429);
    assert!(
        recs[0]["latencyMs"].as_u64().unwrap() < 10_000,
        "it did not wait"
    );
    assert!(stderr(&out).contains("rate limited"));
}

/// Issue 13 item 10: the platform performed both sends (media, caption) but their answers were
/// lost. The client finds each in the conversation and reports it sent, with its id, instead of
/// exit 6 "may have been sent". Nothing is posted twice.
/// Issue 19: under both platform variants, the deprecated `media`/`textBody` fields filled or
/// left empty (the default): the check reads the messages by id (`useNormalizedMessage=true`).
#[test]
fn a_lost_send_answer_is_checked_in_the_conversation_and_reported_sent() {
    for deprecated in [false, true] {
        let env = Env::new();
        env.sandbox.faults().lose_sends = 2;
        env.sandbox.faults().fill_deprecated_fields = deprecated;
        let bytes = pdf(1000);
        let (out, recs) = upload(&env, "conversation", &["--message", "Signed copy"], &bytes);
        let r = &recs[0];
        let what = format!("lost send answers, deprecated fields filled: {deprecated}");
        assert_uploaded_once(&env, "conversation", &out, r, &bytes, &what);
        assert_eq!(r["sendChecked"], true, "{what}: {r}");
        let messages = env.sandbox.messages();
        assert_eq!(
            messages.len(),
            2,
            "{what}: never posted twice: {messages:?}"
        );
        assert_eq!(messages[0]["mediaIds"][0], r["fileId"]);
        assert_eq!(r["messageId"], messages[0]["id"]);
        assert_eq!(r["textMessageId"], messages[1]["id"]);
        assert_eq!(messages[1]["text"], "Signed copy");
        let bulk = env.sandbox.requests();
        assert!(
            bulk.iter().any(|q| q.path.ends_with("/messages/bulk")),
            "{what}: read by id"
        );
    }
}

/// Issue 19: a send the platform answers with `status: "failed"` did not go out: the file fails
/// at the send stage (exit 5, with the hint), instead of being reported sent.
#[test]
fn a_send_answered_failed_is_not_a_success() {
    let env = Env::new();
    env.sandbox.faults().fail_sends = 1;
    let (out, recs) = upload(&env, "conversation", &[], &pdf(1000));
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Remote.code()),
        "{}",
        stderr(&out)
    );
    let r = &recs[0];
    assert_eq!(r["action"], "FILE_UPLOAD_FAILED", "{r}");
    let e = &r["error"];
    assert_eq!(e["stage"], "send", "{r}");
    assert!(e["message"].as_str().unwrap().contains("failed"), "{r}");
    assert!(e["hint"].as_str().unwrap().contains("--force"), "{r}");
    let messages = env.sandbox.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["status"], "failed");
    assert!(env.sandbox.webhooks().is_empty(), "no completion event");
}

/// Four files in flight with the same caption, the first answers lost: each check waits for
/// the run's sends in flight and skips the messages already known to be other files', so no
/// caption is taken by two files, and nothing is posted twice. A file whose caption cannot be
/// told apart says "may have been sent" rather than guess.
#[test]
fn concurrent_lost_captions_with_the_same_text_are_never_claimed_twice() {
    let env = Env::new();
    env.sandbox.faults().lose_sends = 3;
    let files: Vec<_> = (0..4)
        .map(|i| env.file(&format!("f{i}.pdf"), &pdf(2000 + i)))
        .collect();
    let out = env
        .conversation_cmd()
        .args(["--jobs", "4", "--message", "Same text"])
        .args(&files)
        .output()
        .unwrap();
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 4, "{}", stderr(&out));
    let messages = env.sandbox.messages();
    assert_eq!(
        messages.len(),
        8,
        "each file's two messages, once: {messages:?}"
    );
    let mut claimed = std::collections::HashSet::new();
    for r in &recs {
        if r["action"] == "FILE_UPLOAD_COMPLETED" {
            for k in ["messageId", "textMessageId"] {
                assert!(claimed.insert(r[k].clone()), "{k} taken twice: {recs:?}");
            }
            let media = messages.iter().find(|m| m["id"] == r["messageId"]).unwrap();
            assert_eq!(media["mediaIds"][0], r["fileId"]);
        } else {
            let e = &r["error"];
            assert_eq!(e["stage"], "send", "{r}");
            assert!(
                e["message"]
                    .as_str()
                    .unwrap()
                    .contains("may have been sent")
            );
        }
    }
}

/// A send lost on its way (the platform never performed it), or answered by a gateway error:
/// the check finds nothing, and the message is sent, once.
#[test]
fn a_send_that_never_arrived_is_sent_after_the_check() {
    for (what, set) in [
        (
            "dropped",
            Box::new(|f: &mut Faults| f.drop_sends = 1) as Box<dyn Fn(&mut Faults)>,
        ),
        (
            "502",
            Box::new(|f: &mut Faults| f.inject.push(Inject::new("send", 502, None))),
        ),
    ] {
        let env = Env::new();
        set(&mut env.sandbox.faults());
        let bytes = pdf(1000);
        let (out, recs) = upload(&env, "conversation", &[], &bytes);
        let r = &recs[0];
        assert_uploaded_once(&env, "conversation", &out, r, &bytes, what);
        assert_eq!(r["sendChecked"], true, "{what}: {r}");
        let messages = env.sandbox.messages();
        assert_eq!(messages.len(), 1, "{what}: {messages:?}");
        assert_eq!(r["messageId"], messages[0]["id"], "{what}");
        let checks = env
            .sandbox
            .requests()
            .iter()
            .filter(|q| q.method == "GET" && q.path.ends_with(env.sandbox.conversation_id()))
            .count();
        assert_eq!(
            checks, 2,
            "{what}: looked twice (a settle apart) before sending again"
        );
    }
}

/// Where no check is possible (the conversation cannot be read), the lost answer is reported
/// as before: exit 6, "may have been sent", not posted twice.
#[test]
fn a_lost_send_answer_that_cannot_be_checked_is_reported_not_repeated() {
    let env = Env::new();
    env.sandbox.faults().lose_sends = 1;
    env.sandbox.faults().inject = vec![Inject {
        times: 10,
        ..Inject::new("check", 403, None)
    }];
    let (out, recs) = upload(&env, "conversation", &[], &pdf(1000));
    assert_eq!(out.status.code(), Some(ExitStatus::Network.code()));
    let e = &recs[0]["error"];
    assert_eq!(e["stage"], "send");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("may have been sent") && message.contains("HTTP 403"),
        "{message}"
    );
    assert!(
        e["hint"]
            .as_str()
            .unwrap()
            .contains("check it before sending")
    );
    // The platform has exactly one message: it was not posted twice.
    assert_eq!(env.sandbox.messages().len(), 1);
    assert!(env.sandbox.webhooks().is_empty());
}

#[test]
fn undelivered_webhooks_wait_in_the_outbox_and_arrive_once_later() {
    for route in ROUTES {
        let env = Env::new();
        env.sandbox.faults().webhook_fail = 3;
        let first = pdf(1000);
        let (out, recs) = upload(&env, route, &["--webhook-secret", "s3cret"], &first);
        assert_eq!(
            out.status.code(),
            Some(ExitStatus::Success.code()),
            "{route}: {}",
            stderr(&out)
        );
        let r = &recs[0];
        assert_eq!(r["webhook"]["delivered"], false);
        assert_eq!(r["webhook"]["attempts"], 3);
        assert_eq!(r["webhook"]["queued"], true);
        assert_eq!(env.queued().len(), 1);
        assert!(env.sandbox.webhooks().is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(env.outbox()), 0o700);
            assert_eq!(mode(env.outbox().join("state.db")), 0o600);
        }

        // The next run delivers the queued event first, then its own.
        let second = png(1000);
        let f = env.file("next.png", &second);
        let out = cmd(&env, route)
            .args(["--webhook-secret", "s3cret"])
            .arg(&f)
            .finish(ExitStatus::Success);
        let r2 = &records(&out.stdout)[0];
        let hooks = env.sandbox.webhooks();
        assert_eq!(hooks.len(), 2, "{route}");
        assert_eq!(hooks[0]["idempotencyKey"], r["eventId"]);
        assert_eq!(hooks[1]["idempotencyKey"], r2["eventId"]);
        assert!(env.queued().is_empty(), "delivered entries are removed");
        // Signed with the secret, over the exact body.
        for h in &hooks {
            let body = serde_json::to_vec(&h["body"]).unwrap();
            let expected =
                gcupload::webhook::signature(&gcupload::secret::Secret::new("s3cret"), &body);
            assert_eq!(h["signature"], expected.as_str());
        }

        // Nothing left: `webhook flush` says so and succeeds.
        let out = env
            .bare_cmd()
            .args(["webhook", "flush"])
            .finish(ExitStatus::Success);
        assert!(stderr(&out).contains("none pending"));
    }
}

#[test]
fn webhook_flush_delivers_what_is_queued() {
    let env = Env::new();
    env.sandbox.faults().webhook_fail = 3;
    let (out, recs) = upload(&env, "external-contact", &[], &pdf(100));
    assert_eq!(out.status.code(), Some(ExitStatus::Success.code()));
    assert_eq!(env.queued().len(), 1);
    env.sandbox.faults().webhook_fail = 1;
    // Without a webhook URL, a flush cannot know where the events go: it says so.
    let out = env
        .bare_cmd()
        .args(["webhook", "flush"])
        .finish(ExitStatus::Usage);
    assert!(stderr(&out).contains("--webhook-url"), "{}", stderr(&out));
    let hook = env.sandbox.webhook_url();
    let flush = || {
        env.bare_cmd()
            .env("WEBHOOK_SYNC_URL", hook.as_str())
            .args(["webhook", "flush"])
            .output()
            .unwrap()
    };
    let out = flush();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Network.code()),
        "still failing: kept"
    );
    assert_eq!(env.queued().len(), 1);
    let out = flush();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        stderr(&out)
    );
    assert!(env.queued().is_empty());
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["idempotencyKey"], recs[0]["eventId"]);
}

#[test]
fn a_file_that_changes_during_the_upload_is_not_confirmed() {
    let env = Env::new();
    env.sandbox.faults().put_delay_ms = 1500;
    let bytes = pdf(8 << 20);
    let path = env.file("growing.pdf", &bytes);
    let child = env.spawn(&["--max-size".as_ref(), "20MiB".as_ref(), path.as_os_str()]);
    // Once the URL is issued the PUT is under way (the store holds it for 1.5 s): rewrite the tail.
    wait_for(&env, |r| r.path.ends_with("/files") && r.method == "POST");
    std::thread::sleep(std::time::Duration::from_millis(300));
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(6 << 20)).unwrap();
        f.write_all(&vec![b'x'; 1 << 20]).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::FileChanged.code()),
        "{}",
        stderr(&out)
    );
    let r = &records(&out.stdout)[0];
    assert_eq!(r["error"]["kind"], "file-changed");
    assert_eq!(
        r["integrityHash"],
        sha256(&bytes),
        "the record names what was validated"
    );
    assert!(
        env.sandbox
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/upload-complete")),
        "never confirmed"
    );
    assert!(env.sandbox.webhooks().is_empty());
}

fn wait_for(env: &Env, pred: impl Fn(&gcupload::sandbox::SeenRequest) -> bool) {
    for _ in 0..500 {
        if env.sandbox.requests().iter().any(&pred) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the expected request never came");
}

fn spawn_batch(env: &Env, files: &[std::path::PathBuf]) -> std::process::Child {
    // One at a time, so that a file is in flight while the others wait.
    let mut args: Vec<&std::ffi::OsStr> = vec!["--jobs".as_ref(), "1".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    env.spawn(&args)
}

fn sigterm(child: &std::process::Child) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[cfg(unix)]
#[test]
fn an_interrupt_finishes_the_file_in_flight_and_reports_the_rest() {
    let env = Env::new();
    env.sandbox.faults().put_delay_ms = 1000;
    let files: Vec<_> = (0..3)
        .map(|i| env.file(&format!("f{i}.pdf"), &pdf(1000 + i)))
        .collect();
    let child = spawn_batch(&env, &files);
    wait_for(&env, |r| r.path.ends_with("/files"));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Interrupted.code()),
        "{}",
        stderr(&out)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 3, "every file has its record");
    assert_eq!(recs[0]["action"], "FILE_UPLOAD_COMPLETED");
    assert_eq!(recs[0]["webhook"]["delivered"], true);
    for r in &recs[1..] {
        assert_eq!(r["error"]["kind"], "interrupted");
    }
    // Files never started are not counted as failures.
    assert!(
        stderr(&out).contains("3 files, 1 uploaded, 0 failed, 2 interrupted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.sandbox.objects().len(), 1);
    assert_eq!(env.sandbox.webhooks().len(), 1);
}

#[cfg(unix)]
#[test]
fn a_second_interrupt_abandons_the_file_in_flight() {
    let env = Env::new();
    env.sandbox.faults().put_delay_ms = 3000;
    let files: Vec<_> = (0..2)
        .map(|i| env.file(&format!("f{i}.pdf"), &pdf(1000 + i)))
        .collect();
    let child = spawn_batch(&env, &files);
    wait_for(&env, |r| r.path.ends_with("/files"));
    sigterm(&child);
    std::thread::sleep(std::time::Duration::from_millis(200));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(ExitStatus::Interrupted.code()));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(text.ends_with('\n'), "no partial line");
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r["error"]["kind"] == "interrupted"));
    assert!(env.sandbox.webhooks().is_empty());
}

#[test]
fn no_output_or_outbox_holds_a_secret_token_or_signature_on_any_route() {
    let env = Env::new();
    env.sandbox.faults().webhook_fail = 100;
    let mut all = String::new();
    for route in ROUTES {
        env.sandbox.faults().expired_urls = 1;
        env.sandbox.faults().reject_tokens = 1;
        let f = env.file("a.pdf", &pdf(5000));
        let out = cmd(&env, route)
            .env("RUST_LOG", "trace")
            .args(["-vvv", "--webhook-secret", "hook-secret-value"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(ExitStatus::Success.code()),
            "{route}: {}",
            stderr(&out)
        );
        all.push_str(&String::from_utf8_lossy(&out.stdout));
        all.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(env.queued().len(), 3);
    for f in ["state.db", "state.db-wal"] {
        if let Ok(bytes) = std::fs::read(env.outbox().join(f)) {
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    assert!(all.contains("retrying"), "trace output was produced");
    for secret in [env.sandbox.client_secret(), "hook-secret-value"] {
        assert!(!all.contains(secret));
    }
    for t in env.sandbox.issued_tokens() {
        assert!(!all.contains(&t), "a bearer token leaked");
    }
    for s in ["X-Amz-Signature", "X-Amz-Credential", "x-amz-signature"] {
        assert!(!all.contains(s), "a URL signature leaked");
    }
}

#[test]
fn an_event_that_can_be_neither_delivered_nor_kept_says_so_and_fails_the_run() {
    let env = Env::new();
    env.sandbox.faults().webhook_fail = 100;
    // The outbox refuses every event, as a full disk would.
    drop(env.store());
    let db = rusqlite::Connection::open(env.outbox().join("state.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER full BEFORE INSERT ON outbox BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
    )
    .unwrap();
    drop(db);
    let f = env.file("a.pdf", &pdf(100));
    let out = env.cmd().arg(&f).finish(ExitStatus::WebhookLost);
    let r = &records(&out.stdout)[0];
    assert_eq!(
        r["action"], "FILE_UPLOAD_COMPLETED",
        "the upload itself succeeded"
    );
    assert_eq!(r["webhook"]["delivered"], false);
    assert!(r["webhook"].get("queued").is_none());
    assert!(
        r["webhook"]["queueError"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{r}"
    );
    assert!(stderr(&out).contains("webhook event is lost"));

    // Without a state store there is no outbox: the same, said plainly.
    let g = env.file("b.pdf", &pdf(101));
    let out = env
        .cmd()
        .arg("--no-state")
        .arg(&g)
        .finish(ExitStatus::WebhookLost);
    let r = &records(&out.stdout)[0];
    assert!(
        r["webhook"]["queueError"]
            .as_str()
            .unwrap()
            .contains("--no-state")
    );
}

#[test]
fn the_outbox_signs_only_what_gcupload_queued() {
    let env = Env::new();
    env.sandbox.faults().webhook_fail = 3;
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .cmd()
        .args(["--webhook-secret", "s3cret"])
        .arg(&f)
        .finish(ExitStatus::Success);
    let genuine = records(&out.stdout)[0]["eventId"].clone();
    assert_eq!(env.queued().len(), 1);

    // Someone who can write the state directory plants an event (no tag, or a made-up one).
    drop(env.store());
    let db = rusqlite::Connection::open(env.outbox().join("state.db")).unwrap();
    for (id, mac) in [("forged-1", None), ("forged-2", Some("sha256=00ff"))] {
        db.execute(
            "INSERT INTO outbox (event_id, body, queued_at, last_error, attempts, mac) VALUES (?1, ?2, '2026-01-01T00:00:00Z', '', 1, ?3)",
            rusqlite::params![id, r#"{"event":"genesys.file.uploaded","payload":{"evil":true}}"#, mac],
        )
        .unwrap();
    }
    drop(db);

    env.bare_cmd()
        .env("WEBHOOK_SYNC_URL", env.sandbox.webhook_url().as_str())
        .args(["webhook", "flush", "--webhook-secret", "s3cret"])
        .finish(ExitStatus::Success);
    let hooks = env.sandbox.webhooks();
    assert_eq!(
        hooks.len(),
        1,
        "only gcupload's own event is signed and sent: {hooks:?}"
    );
    assert_eq!(hooks[0]["idempotencyKey"], genuine);
    assert!(env.queued().is_empty());
    assert_eq!(
        env.store().quarantined().unwrap(),
        2,
        "the planted events are kept aside"
    );
}

#[cfg(unix)]
#[test]
fn a_state_directory_others_could_tamper_with_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let shared = env.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let link = env.dir.path().join("link");
    std::os::unix::fs::symlink(env.outbox(), &link).unwrap();
    std::fs::create_dir_all(env.outbox()).unwrap();
    for (dir, fix) in [(&shared, "chmod 700"), (&link, "symbolic link")] {
        let out = env
            .cmd()
            .env("GCUPLOAD_STATE_DIR", dir)
            .arg(&f)
            .finish(ExitStatus::Usage);
        let r = &records(&out.stdout)[0];
        assert_eq!(r["error"]["kind"], "state");
        assert!(r["error"]["message"].as_str().unwrap().contains(fix), "{r}");
        assert!(
            r["error"]["hint"].as_str().unwrap().contains("--state-dir"),
            "{r}"
        );
    }
    // Nothing was written into the shared directory, nor through the link.
    assert!(std::fs::read_dir(&shared).unwrap().next().is_none());
    assert!(
        !env.outbox().join("state.db").exists(),
        "never written through the link"
    );
    assert!(env.sandbox.objects().is_empty());
}

/// Whether `needle` (any case) is followed, past quotes, `=`, `:` and spaces, by at least `n`
/// characters that satisfy `is_secret`: a value where only a mask may stand.
fn followed_by(text: &str, needle: &str, n: usize, is_secret: fn(char) -> bool) -> bool {
    let lower = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    lower.match_indices(&needle).any(|(i, _)| {
        let rest = text[i + needle.len()..].trim_start_matches(['"', '\'', '=', ':', ' ']);
        rest.chars().take_while(|c| is_secret(*c)).count() >= n
    })
}

/// The embedded sandbox logs into the client's own stderr (its S3 library logs whole request
/// URLs at debug): every line must still come out without a signature, a token or a secret.
#[test]
fn no_log_line_of_the_embedded_sandbox_holds_a_signature_token_or_secret() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(5000));
    let mut all = String::new();
    for level in ["trace", "debug"] {
        for route in ROUTES {
            let out = env
                .bare_cmd()
                .env("RUST_LOG", level)
                .args(["--sandbox", "--route", route, "--force"])
                .args(["--webhook-secret", "hook-secret-value"])
                .arg(&f)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(ExitStatus::Success.code()),
                "{level} {route}: {}",
                stderr(&out)
            );
            all.push_str(&String::from_utf8_lossy(&out.stdout));
            all.push_str(&String::from_utf8_lossy(&out.stderr));
        }
    }
    // The check means something only if the store's own request log was there to leak.
    assert!(
        all.contains("checked signature v4"),
        "the S3 library logged"
    );
    assert!(!all.contains("hook-secret-value"));
    let hex = |c: char| c.is_ascii_hexdigit();
    let b64 = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
    let word = |c: char| c.is_ascii_alphanumeric() || "-_.~%".contains(c);
    for (needle, n, what) in [
        ("X-Amz-Signature", 16, hex as fn(char) -> bool),
        ("Signature", 16, hex),
        ("X-Amz-Credential", 1, word),
        ("X-Amz-Security-Token", 1, word),
        // The sandbox issues 32-hex tokens and secrets (the test cannot read those of an
        // embedded sandbox, so it looks for their shape where they would stand).
        ("Bearer ", 32, hex),
        ("access_token", 32, hex),
        ("client_secret", 32, hex),
        ("Basic ", 16, b64),
    ] {
        assert!(
            !followed_by(&all, needle, n, what),
            "{needle} is followed by its value"
        );
    }
}
