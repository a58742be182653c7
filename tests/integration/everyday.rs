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
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_COMPLETED");
    // The issue's own example: an empty base URL is no base URL (the default region), not
    // "`` is not a URL"; a dry run that makes no call shows the run is configured.
    env.cmd()
        .env("GENESYS_BASE_URL", "")
        .args(["--dry-run", "--offline"])
        .arg(&f)
        .finish(ExitStatus::Success);
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

/// `gcupload history ARGS` in the test's directory: its exit code, rows and stderr.
fn history(env: &Env, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let out = env.bare_cmd().arg("history").args(args).output().unwrap();
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code(), rows, stderr(&out))
}

#[test]
fn reading_commands_never_create_a_store_and_say_there_is_none() {
    let env = Env::new();
    let typo = env.dir.path().join("stat");
    let (code, rows, err) = history(&env, &["--state-dir", typo.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(rows.is_empty());
    assert!(
        err.contains("no journal in") && err.contains("stat"),
        "{err}"
    );
    assert!(!typo.exists(), "history created {}", typo.display());
    let out = env
        .bare_cmd()
        .args(["webhook", "flush", "--state-dir", typo.to_str().unwrap()])
        .finish(ExitStatus::Success);
    assert!(stderr(&out).contains("no journal in"), "{}", stderr(&out));
    assert!(!typo.exists(), "webhook flush created {}", typo.display());
}

#[test]
fn history_failed_shows_only_files_whose_last_attempt_failed_and_finds_moved_files() {
    let env = Env::new();
    let inbox = env.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let fixed = inbox.join("fixed.pdf");
    let broken = inbox.join("broken.pdf");
    // Both refused by the platform (journaled failures) ...
    std::fs::write(&fixed, pdf(100)).unwrap();
    std::fs::write(&broken, pdf(200)).unwrap();
    env.sandbox.faults().inject = vec![gcupload::sandbox::Inject {
        times: 2,
        ..gcupload::sandbox::Inject::new("request-url", 500, None)
    }];
    env.cmd()
        .args(["--max-attempts", "1"])
        .arg(&fixed)
        .arg(&broken)
        .finish(ExitStatus::Remote);
    // ... then one is corrected (new content) and sent, and moved away.
    std::fs::write(&fixed, pdf(300)).unwrap();
    env.cmd()
        .arg("--move-to")
        .arg(env.dir.path().join("sent"))
        .arg(&fixed)
        .finish(ExitStatus::Success);
    assert!(!fixed.exists());

    let (code, rows, err) = history(&env, &["--failed"]);
    assert_eq!(code, Some(0), "{err}");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["fileName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken.pdf"], "{rows:?}");
    // The moved file, by the relative path it was uploaded from (history runs in env.dir).
    let (_, rows, _) = history(&env, &["--path", "inbox/fixed.pdf"]);
    assert!(
        rows.iter().any(|r| r["step"] == "completed"),
        "the moved file's upload is found: {rows:?}"
    );
}

#[test]
fn a_flag_the_route_does_not_use_is_refused_not_ignored() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    for (cmd, flag, value) in [
        (env.cmd(), "--message", "hello"),
        (env.cmd(), "--no-send", ""),
        (
            env.conversation_cmd(),
            "--origin",
            "https://www.example.com",
        ),
        (env.guest_cmd(), "--name", "b.pdf"),
    ] {
        let mut cmd = cmd;
        cmd.arg(flag);
        if !value.is_empty() {
            cmd.arg(value);
        }
        let out = cmd.arg(&f).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(ExitStatus::Usage.code()),
            "{flag}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&format!("{flag} is not used by route")),
            "{}",
            stderr(&out)
        );
        assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_FAILED");
    }
    assert!(env.sandbox.objects().is_empty(), "nothing was uploaded");
    // The same settings in the environment are fine: it may hold every route's settings.
    env.cmd()
        .env("GENESYS_ORIGIN", "https://www.example.com")
        .arg(&f)
        .finish(ExitStatus::Success);
}

#[test]
fn usage_errors_name_no_option_as_required_and_contradictions_are_refused() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .cmd()
        .args(["--output", "text", "--pretty"])
        .arg(&f)
        .finish(ExitStatus::Usage);
    let err = stderr(&out);
    assert!(err.contains("--pretty"), "{err}");
    // The environment sets --external-contact and --client-id: the usage line does not list
    // them as if they had to be typed.
    assert!(err.contains("Usage: gcupload [OPTIONS] <FILE>..."), "{err}");
    assert!(
        !err.contains("--external-contact <ID>") && !err.contains("--client-id"),
        "{err}"
    );
    assert!(env.sandbox.requests().is_empty());
}

/// A TLS server on loopback whose certificate nobody trusts (self-signed, `openssl s_server`).
struct UntrustedTls {
    child: std::process::Child,
    port: u16,
}

impl UntrustedTls {
    fn start(dir: &std::path::Path) -> UntrustedTls {
        let (key, cert) = (dir.join("k.pem"), dir.join("c.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl(1) is installed (.ci/run installs it)");
        assert!(made.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s_server did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        UntrustedTls { child, port }
    }
}

impl Drop for UntrustedTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_untrusted_certificate_is_not_retried_and_says_what_to_do() {
    let env = Env::new();
    let tls = UntrustedTls::start(env.dir.path());
    let f = env.file("a.pdf", &pdf(100));
    let base = format!("https://127.0.0.1:{}", tls.port);
    for (cmd, verbose) in [(env.cmd(), env.cmd()), (env.guest_cmd(), env.guest_cmd())] {
        let (mut cmd, mut verbose) = (cmd, verbose);
        let out = cmd
            .env("GENESYS_BASE_URL", &base)
            .arg("-q")
            .arg(&f)
            .finish(ExitStatus::Network);
        let r = &records(&out.stdout)[0];
        assert_eq!(r["error"]["kind"], "tls", "{r}");
        assert!(
            r["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("SSL_CERT_FILE"),
            "{r}"
        );
        // -q: the error line, and no raw log line of the TLS stack.
        let err = stderr(&out);
        assert!(!err.contains("ERROR"), "{err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{err}"
        );
        // Not retried: the first try's answer is final (it was tried 6 times, ~9 s).
        let out = verbose
            .env("GENESYS_BASE_URL", &base)
            .arg("-v")
            .arg(&f)
            .finish(ExitStatus::Network);
        assert!(!stderr(&out).contains("retrying"), "{}", stderr(&out));
    }
}

#[test]
fn an_unreachable_platform_stops_the_batch_early_with_a_record_for_every_file() {
    let env = Env::new();
    // A platform that cannot be reached: nothing listens on its port (connection refused).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let files: Vec<_> = (0..10)
        .map(|i| env.file(&format!("f{i}.pdf"), &pdf(100 + i)))
        .collect();
    let out = env
        .cmd()
        .env("GENESYS_BASE_URL", format!("http://127.0.0.1:{port}"))
        .args(["--jobs", "1", "--max-attempts", "2"])
        .args(&files)
        .finish(ExitStatus::Network);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 10, "every file has its record");
    assert!(
        recs.iter().all(|r| r["error"]["kind"] == "network"),
        "{recs:?}"
    );
    let skipped = recs
        .iter()
        .filter(|r| {
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not attempted")
        })
        .count();
    assert_eq!(skipped, 7, "three files tried, the rest not: {recs:?}");
    assert!(
        stderr(&out).contains("files in a row could not reach"),
        "{}",
        stderr(&out)
    );
}
