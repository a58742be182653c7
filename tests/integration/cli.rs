//! The real binary against the in-process sandbox over loopback: end states, not just exit codes.

use crate::common::*;
use gcupload::ExitStatus;
use serde_json::Value;

#[test]
fn pdf_png_zip_are_stored_byte_exact_with_records_and_webhooks() {
    let env = Env::new();
    let pdf = env.file("report.pdf", &pdf(700_000));
    let png = env.file("photo.png", &png(300_000));
    let zip = env.file("bundle.zip", &zip(50_000));

    let out = env.cmd().arg(&pdf).arg(&png).arg(&zip).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 3);

    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 3, "one object per file: {objects:?}");
    for (path, ct) in [
        (&pdf, "application/pdf"),
        (&png, "image/png"),
        (&zip, "application/zip"),
    ] {
        let name = path.file_name().unwrap().to_str().unwrap();
        let r = by_name(&recs, name);
        let hash = sha256_file(path);
        assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED");
        assert_eq!(r["route"], "external-contact");
        assert_eq!(r["contentType"], ct);
        assert_eq!(r["integrityHash"], hash);
        assert_eq!(r["size"], std::fs::metadata(path).unwrap().len());
        assert_eq!(r["virusScanStatus"], "passed");
        assert_eq!(r["complianceStatus"], "AUDITED");
        assert_eq!(r["webhook"]["delivered"], true);
        // The store holds exactly these bytes, under this file's id.
        let id = r["fileId"].as_str().unwrap();
        let obj = objects
            .iter()
            .find(|o| o.key.contains(id))
            .expect("object for the file id");
        assert_eq!(obj.sha256, hash);
    }

    // Each completed record reached the webhook once, with the specified envelope.
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 3);
    for r in &recs {
        let mut expected = r.clone();
        expected.as_object_mut().unwrap().remove("webhook");
        let h = hooks
            .iter()
            .find(|h| h["body"]["payload"]["eventId"] == r["eventId"])
            .expect("webhook for the record");
        assert_eq!(h["body"]["event"], "genesys.file.uploaded");
        assert_eq!(h["body"]["payload"], expected);
        assert_eq!(h["idempotencyKey"], r["eventId"]);
    }

    // The bearer token never went to the storage host.
    let reqs = env.sandbox.requests();
    let puts: Vec<_> = reqs.iter().filter(|r| r.surface == "store").collect();
    assert_eq!(puts.len(), 3);
    assert!(
        puts.iter()
            .all(|r| r.method == "PUT" && !r.authorization && r.status == 200)
    );
    // One token for the whole run.
    assert_eq!(reqs.iter().filter(|r| r.path == "/oauth/token").count(), 1);
}

#[test]
fn every_validation_rule_rejects_before_any_request() {
    let env = Env::new();
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend(noise(200, 1));
    let mut eicar = b"harmless text, then ".to_vec();
    eicar.extend_from_slice(gcupload::validate::EICAR);
    std::fs::create_dir(env.dir.path().join("folder.pdf")).unwrap();
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("missing.pdf", None, "not-found"),
        ("folder.pdf", None, "directory"),
        ("empty.pdf", Some(vec![]), "empty"),
        ("big.pdf", Some(pdf(2_000)), "too-large"),
        ("notes.docx", Some(b"hello".to_vec()), "unknown-type"),
        (
            "picture.gif",
            Some(b"GIF89a\x01\0\x01\0\0\0\0;".to_vec()),
            "type-not-allowed",
        ),
        ("fake.pdf", Some(png(100)), "magic-mismatch"),
        (
            "setup.pdf",
            Some(b"MZ\x90\0\x03\0\0\0\x04\0".to_vec()),
            "executable",
        ),
        ("tool.png", Some(elf), "executable"),
        ("archive.pdf", Some(zip(100)), "zip-signature"),
        ("eicar.txt", Some(eicar), "content-safety"),
        ("binary.txt", Some(b"abc\0def".to_vec()), "magic-mismatch"),
    ];
    let mut cmd = env.cmd();
    cmd.args([
        "--max-size",
        "1000",
        "--allow-type",
        "application/pdf,image/png,text/plain",
    ]);
    for (name, bytes, _) in &cases {
        if let Some(b) = bytes {
            env.file(name, b);
        }
        cmd.arg(name);
    }
    let out = cmd.finish(ExitStatus::Validation);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), cases.len(), "one record per file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (name, _, rule) in &cases {
        let r = by_name(&recs, name);
        assert_eq!(r["action"], "FILE_UPLOAD_FAILED", "{name}");
        assert_eq!(r["error"]["kind"], "validation", "{name}");
        assert_eq!(r["error"]["rule"], *rule, "{name}: {r}");
        assert!(r["error"]["hint"].is_string(), "{name}");
        // The human message names the file, the stage and the rule.
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(name) && l.contains("[validate]") && l.contains(rule)),
            "{name} missing from stderr:\n{stderr}"
        );
    }
    assert!(
        env.sandbox.requests().is_empty(),
        "no request may precede validation"
    );
}

#[test]
fn wrong_credentials_give_the_auth_exit_code_and_hint() {
    let env = Env::new();
    let a = env.file("a.pdf", &pdf(100));
    let b = env.file("b.pdf", &pdf(100));
    let out = env
        .cmd()
        .env("GENESYS_CLIENT_SECRET", "not-the-secret")
        .arg(&a)
        .arg(&b)
        .finish(ExitStatus::Auth);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["error"]["kind"], "auth");
        assert_eq!(r["error"]["httpStatus"], 401);
        assert_eq!(r["error"]["code"], "invalid_client");
        assert!(
            r["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("GENESYS_CLIENT_SECRET")
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid_client") && stderr.contains("hint:"),
        "{stderr}"
    );
    // Refused credentials are not retried for every file, and nothing reached the store.
    let reqs = env.sandbox.requests();
    assert_eq!(reqs.iter().filter(|r| r.path == "/oauth/token").count(), 1);
    assert!(env.sandbox.objects().is_empty());
}

#[test]
fn a_revoked_token_is_refreshed_once_then_reported() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    env.sandbox.faults().reject_tokens = 1;
    let out = env.cmd().arg(&f).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = env.sandbox.requests();
    assert_eq!(reqs.iter().filter(|r| r.path == "/oauth/token").count(), 2);
    assert_eq!(env.sandbox.objects().len(), 1);

    env.sandbox.faults().reject_tokens = 10;
    let out = env.cmd().arg("--force").arg(&f).finish(ExitStatus::Auth);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["error"]["stage"], "request-url");
    assert_eq!(r["error"]["httpStatus"], 401);
    assert!(r["error"]["correlationId"].is_string());
}

#[test]
fn an_expired_url_is_replaced_then_reported_when_attempts_run_out() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(5_000));
    env.sandbox.faults().expired_urls = 1;
    let out = env.cmd().arg(&f).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 1, "stored exactly once");
    assert_eq!(objects[0].sha256, sha256_file(&f));
    let stores: Vec<u16> = env
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.surface == "store")
        .map(|r| r.status)
        .collect();
    assert_eq!(stores, vec![403, 200]);

    env.sandbox.faults().expired_urls = 100;
    let out = env.cmd().arg("--force").arg(&f).finish(ExitStatus::Remote);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["error"]["stage"], "transfer");
    assert_eq!(r["error"]["httpStatus"], 403);
    assert_eq!(r["error"]["code"], "AccessDenied");
    assert!(r["error"]["hint"].as_str().unwrap().contains("expired"));
    assert_eq!(env.sandbox.objects().len(), 1, "nothing more stored");
    // The default policy: 6 attempts, each with a fresh URL.
    let refused = env
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.surface == "store" && r.status == 403)
        .count();
    assert_eq!(refused, 1 + 6);
}

#[test]
fn an_infected_file_fails_after_the_platform_scan() {
    let env = Env::new();
    let mut bytes = b"quarterly numbers\n".to_vec();
    bytes.extend_from_slice(gcupload::validate::EICAR);
    let f = env.file("eicar.txt", &bytes);
    let out = env
        .cmd()
        .arg("--no-local-scan")
        .arg(&f)
        .finish(ExitStatus::Infected);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_FAILED");
    assert_eq!(r["virusScanStatus"], "infected");
    assert_eq!(r["error"]["kind"], "infected");
    assert_eq!(r["integrityHash"], sha256(&bytes));
    assert!(
        env.sandbox.webhooks().is_empty(),
        "no uploaded event for a failed upload"
    );
}

#[test]
fn a_webhook_receiver_that_is_down_does_not_fail_the_upload() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let out = env
        .cmd()
        .args(["--webhook-url", &url])
        .arg(&f)
        .finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED");
    assert_eq!(r["webhook"]["delivered"], false);
    assert!(
        r["webhook"]["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );

    // Queued in the outbox for a later run: the body only, never the URL it was meant for.
    assert_eq!(r["webhook"]["queued"], true);
    assert_eq!(env.queued().len(), 1);
    assert_eq!(env.queued()[0]["eventId"], r["eventId"]);
    assert_eq!(env.queued()[0]["body"]["payload"]["eventId"], r["eventId"]);
    let first = r["eventId"].clone();

    // The next run delivers the queued event to the webhook configured now (the sandbox's),
    // then its own.
    let g = env.file("b.pdf", &pdf(101));
    let out = env.cmd().arg(&g).finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["webhook"]["delivered"], true);
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0]["idempotencyKey"], first);
    assert_eq!(hooks[1]["idempotencyKey"], r["eventId"]);
    assert!(env.queued().is_empty());

    // A receiver that fails once gets the event on the next attempt, once.
    env.sandbox.faults().webhook_fail = 1;
    let h = env.file("c.pdf", &pdf(102));
    let out = env.cmd().arg(&h).finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["webhook"]["delivered"], true);
    assert_eq!(r["webhook"]["attempts"], 2);
    assert_eq!(env.sandbox.webhooks().len(), 3);
    assert_eq!(env.sandbox.objects().len(), 3);
}

#[test]
fn platform_refusals_carry_status_correlation_id_and_hint() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .cmd()
        .args(["--external-contact", "no-such-contact"])
        .arg(&f)
        .finish(ExitStatus::Remote);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["error"]["httpStatus"], 404);
    assert!(r["error"]["correlationId"].is_string());
    let hint = r["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("guest or conversation") && hint.contains("original specification"),
        "{hint}"
    );

    env.sandbox.faults().max_upload_bytes = 50;
    let out = env.cmd().arg(&f).finish(ExitStatus::Remote);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["error"]["httpStatus"], 413);
    assert!(r["error"]["hint"].as_str().unwrap().contains("limit"));
    assert!(env.sandbox.objects().is_empty());
}

#[test]
fn configuration_errors_still_give_one_record_per_file() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .cmd()
        .env_remove("EXTERNAL_CONTACT_ID")
        .arg(&f)
        .arg("b.pdf")
        .finish(ExitStatus::Usage);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r["error"]["kind"] == "config"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--external-contact"));

    let out = env
        .cmd()
        .args(["--base-url", "http://example.com"])
        .arg(&f)
        .finish(ExitStatus::Usage);
    assert!(String::from_utf8_lossy(&out.stderr).contains("https"));

    let out = env
        .cmd()
        .env_remove("GENESYS_BASE_URL")
        .args(["--region", "mars-1"])
        .arg(&f)
        .finish(ExitStatus::Usage);
    assert!(String::from_utf8_lossy(&out.stderr).contains("eu_west_1"));

    // A usage error from the parser itself.
    let out = env.cmd().finish(ExitStatus::Usage);
    assert!(out.stdout.is_empty());
    assert!(env.sandbox.requests().is_empty());
}

#[test]
fn settings_come_from_flags_then_env_then_dotenv() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let dotenv = format!(
        "GENESYS_BASE_URL={}\nGENESYS_CLIENT_ID={}\nGENESYS_CLIENT_SECRET={}\nEXTERNAL_CONTACT_ID={}\n",
        env.sandbox.base_url,
        env.sandbox.client_id(),
        env.sandbox.client_secret(),
        env.sandbox.external_contact_id()
    );
    let dotenv = env.file(".env", dotenv.as_bytes());
    // Owner-only, whatever the umask: a .env others can write is refused.
    std::fs::set_permissions(&dotenv, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = env.bare_cmd().arg(&f).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The environment beats .env ...
    env.bare_cmd()
        .arg("--force")
        .env("GENESYS_CLIENT_SECRET", "wrong")
        .arg(&f)
        .finish(ExitStatus::Auth);
    // ... and a flag beats the environment.
    env.bare_cmd()
        .arg("--force")
        .env("GENESYS_CLIENT_SECRET", "wrong")
        .args(["--client-secret", env.sandbox.client_secret()])
        .arg(&f)
        .finish(ExitStatus::Success);
}

#[test]
fn no_output_contains_the_secret_token_or_signature_even_at_trace() {
    let env = Env::new();
    let ok = env.file("a.pdf", &pdf(100));
    let mut eicar = b"x".to_vec();
    eicar.extend_from_slice(gcupload::validate::EICAR);
    let bad = env.file("b.txt", &eicar);
    env.sandbox.faults().expired_urls = 1;
    let out = env
        .cmd()
        .args(["-vvv", "--no-local-scan", "--pretty"])
        .arg(&ok)
        .arg(&bad)
        .finish(ExitStatus::Infected);
    let wrong = env
        .cmd()
        .env("RUST_LOG", "trace")
        .env("GENESYS_CLIENT_SECRET", "wrong-secret-value")
        .arg(&ok)
        .output()
        .unwrap();
    let mut all = String::new();
    for o in [&out, &wrong] {
        all.push_str(&String::from_utf8_lossy(&o.stdout));
        all.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    assert!(all.contains("uploading"), "trace output was produced");
    assert!(!all.contains(env.sandbox.client_secret()));
    assert!(!all.contains("wrong-secret-value"));
    let tokens = env.sandbox.issued_tokens();
    assert!(!tokens.is_empty());
    for t in tokens {
        assert!(!all.contains(&t), "a bearer token leaked");
    }
    assert!(!all.contains("X-Amz-Signature"), "a URL signature leaked");
    assert!(!all.contains("X-Amz-Credential"));
}

#[test]
fn pretty_prints_indented_records() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .cmd()
        .arg("--pretty")
        .arg(&f)
        .finish(ExitStatus::Success);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("{\n  \""));
    let v: Value = serde_json::from_str(&text).unwrap();
    check_schema(&v);
}

#[test]
fn sandbox_flag_runs_the_whole_flow_with_no_account() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env.bare_cmd().arg("--sandbox").arg(&f).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED");
    assert_eq!(r["webhook"]["delivered"], true);
    assert_eq!(r["integrityHash"], sha256_file(&f));
}

#[test]
fn sandbox_command_prints_its_settings_as_one_json_line() {
    let (mut child, info) = sandbox_process();
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .bare_cmd()
        .env("GENESYS_BASE_URL", info["baseUrl"].as_str().unwrap())
        .env("GENESYS_CLIENT_ID", info["clientId"].as_str().unwrap())
        .env(
            "GENESYS_CLIENT_SECRET",
            info["clientSecret"].as_str().unwrap(),
        )
        .env(
            "EXTERNAL_CONTACT_ID",
            info["externalContactId"].as_str().unwrap(),
        )
        .env("WEBHOOK_SYNC_URL", info["webhookUrl"].as_str().unwrap())
        .arg(&f)
        .output()
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(records(&out.stdout)[0]["webhook"]["delivered"], true);
    assert!(
        env.sandbox.objects().is_empty(),
        "it went to the standalone sandbox"
    );
}
