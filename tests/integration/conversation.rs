//! Route `conversation` (Platform API media upload) against the sandbox, and route selection.

use crate::common::*;
use gcupload::ExitStatus;

#[test]
fn conversation_uploads_byte_exact_polls_until_valid_and_sends() {
    let env = Env::new();
    let pdf = env.file("contract.pdf", &pdf(300_000));
    let png = env.file("scan.png", &png(90_000));
    let out = env
        .conversation_cmd()
        .args(["--message", "Signed copy attached"])
        .arg(&pdf)
        .arg(&png)
        .finish(ExitStatus::Success);
    let recs = records(&out.stdout);
    let objects = env.sandbox.objects();
    let messages = env.sandbox.messages();
    assert_eq!(objects.len(), 2);
    // Per file: the media message, then the caption as its own text message.
    assert_eq!(messages.len(), 4);
    for (path, r) in [
        (&pdf, by_name(&recs, "contract.pdf")),
        (&png, by_name(&recs, "scan.png")),
    ] {
        assert_eq!(r["route"], "conversation");
        assert_eq!(r["conversationId"], env.sandbox.conversation_id());
        let id = r["fileId"].as_str().unwrap();
        assert_eq!(
            objects.iter().find(|o| o.key.contains(id)).unwrap().sha256,
            sha256_file(path)
        );
        let m = messages.iter().find(|m| m["id"] == r["messageId"]).unwrap();
        assert_eq!(m["mediaIds"][0], id);
        assert!(m["text"].is_null());
        let t = messages
            .iter()
            .find(|m| m["id"] == r["textMessageId"])
            .unwrap();
        assert_eq!(t["text"], "Signed copy attached");
        assert!(r["mediaUrl"].as_str().unwrap().contains(id));
    }
    assert_eq!(by_name(&recs, "scan.png")["mediaType"], "image/png");
    assert!(
        env.sandbox
            .media_statuses()
            .iter()
            .all(|(_, s)| s == "valid")
    );
    // The media was polled: at least one GET saw it still `uploading` (300 ms delay).
    let polls = env
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/messages/media/"))
        .count();
    assert!(polls >= 3, "polled {polls} times");
}

#[test]
fn no_send_uploads_without_a_message() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .conversation_cmd()
        .arg("--no-send")
        .arg(&f)
        .finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert!(r.get("messageId").is_none());
    assert!(env.sandbox.messages().is_empty());
    assert_eq!(env.sandbox.objects().len(), 1);
}

#[test]
fn forbidden_file_names_are_refused_or_renamed() {
    let env = Env::new();
    let f = env.file("my report#1.pdf", &pdf(100));
    let out = env
        .conversation_cmd()
        .arg(&f)
        .finish(ExitStatus::Validation);
    let e = &records(&out.stdout)[0]["error"];
    assert_eq!(e["rule"], "file-name");
    assert!(e["hint"].as_str().unwrap().contains("--name"));
    assert!(
        env.sandbox
            .requests()
            .iter()
            .all(|r| !r.path.contains("/media/uploads"))
    );

    let out = env
        .conversation_cmd()
        .args(["--name", "my-report-1.pdf"])
        .arg(&f)
        .finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["uploadedAs"], "my-report-1.pdf");
    assert!(env.sandbox.objects()[0].key.ends_with("/my-report-1.pdf"));

    let g = env.file("other.pdf", &pdf(100));
    env.conversation_cmd()
        .args(["--name", "x.pdf"])
        .arg(&f)
        .arg(&g)
        .finish(ExitStatus::Usage);
}

/// Item 9 of issue 13: the platform caps `textBody` at 2000 characters. A longer `--message` is a
/// usage error before any request; before, the media message went out and the caption got a 400.
#[test]
fn a_message_over_the_textbody_limit_is_refused_before_any_upload() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    // 1001 emoji: 1001 code points but 2002 UTF-16 units, as the platform counts.
    for long in ["x".repeat(2001), "\u{1F600}".repeat(1001)] {
        let out = env
            .conversation_cmd()
            .args(["--message", &long])
            .arg(&f)
            .finish(ExitStatus::Usage);
        let err = stderr(&out);
        assert!(err.contains("--message") && err.contains("2000"), "{err}");
        let e = &records(&out.stdout)[0]["error"];
        assert_eq!(
            (&e["kind"], &e["stage"]),
            (&"config".into(), &"config".into())
        );
    }
    assert!(env.sandbox.requests().is_empty(), "nothing was asked");
    assert!(env.sandbox.objects().is_empty() && env.sandbox.messages().is_empty());

    // At the limit exactly, both the file and the caption go out.
    let at_limit = format!("{}{}", "\u{1F600}".repeat(500), "é".repeat(1000));
    let out = env
        .conversation_cmd()
        .args(["--message", &at_limit])
        .arg(&f)
        .finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    let sent = env.sandbox.messages();
    let t = sent.iter().find(|m| m["id"] == r["textMessageId"]).unwrap();
    assert_eq!(t["text"], at_limit.as_str());
}

#[test]
fn invalid_media_fails_and_is_not_sent() {
    let env = Env::new();
    let f = env.file("eicar.txt", &eicar_text());
    let out = env
        .conversation_cmd()
        .arg("--no-local-scan")
        .arg(&f)
        .finish(ExitStatus::Remote);
    let e = &records(&out.stdout)[0]["error"];
    assert_eq!(e["code"], "media.invalid");
    assert_eq!(e["stage"], "confirm");
    assert!(env.sandbox.messages().is_empty());
}

#[test]
fn media_that_stays_uploading_times_out() {
    let env = Env::new();
    env.sandbox.faults().media_delay_ms = 10_000;
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .conversation_cmd()
        .args(["--confirm-timeout", "1"])
        .arg(&f)
        .finish(ExitStatus::Remote);
    let e = &records(&out.stdout)[0]["error"];
    assert_eq!(e["stage"], "confirm");
    assert!(e["message"].as_str().unwrap().contains("uploading"));
    assert!(env.sandbox.messages().is_empty());
}

#[test]
fn an_unknown_conversation_is_a_404_and_a_missing_communication_a_usage_error() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .conversation_cmd()
        .args(["--conversation", "nope"])
        .arg(&f)
        .finish(ExitStatus::Remote);
    assert_eq!(records(&out.stdout)[0]["error"]["httpStatus"], 404);

    let out = env
        .conversation_cmd()
        .env_remove("GENESYS_COMMUNICATION_ID")
        .arg(&f)
        .finish(ExitStatus::Usage);
    assert!(stderr(&out).contains("--communication"));
}

#[test]
fn exactly_one_route_per_run() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    // The environment names two routes and no flag picks one.
    let both = || {
        let mut c = env.cmd();
        c.env("GENESYS_DEPLOYMENT_ID", env.sandbox.deployment_id());
        c
    };
    let out = both().arg(&f).finish(ExitStatus::Usage);
    let err = stderr(&out);
    assert!(
        err.contains("external-contact") && err.contains("guest"),
        "{err}"
    );
    assert!(env.sandbox.requests().is_empty());

    // A route flag wins over the environment ...
    let out = both()
        .args(["--deployment", env.sandbox.deployment_id()])
        .arg(&f)
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["route"], "guest");
    // ... and so does --route.
    let out = both()
        .args(["--route", "external-contact"])
        .arg(&f)
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["route"], "external-contact");
    // Flags for two routes at once are refused.
    env.bare_cmd()
        .args(["--deployment", "d", "--external-contact", "e"])
        .arg(&f)
        .finish(ExitStatus::Usage);
}

#[test]
fn sandbox_flag_serves_every_route() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    for route in ["guest", "conversation", "external-contact"] {
        let out = env
            .bare_cmd()
            .args(["--sandbox", "--route", route])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(ExitStatus::Success.code()),
            "{route}: {}",
            stderr(&out)
        );
        let r = &records(&out.stdout)[0];
        assert_eq!(r["route"], route);
        assert_eq!(r["webhook"]["delivered"], true);
    }
}
