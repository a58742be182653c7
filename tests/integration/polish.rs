//! The CLI around the uploads: completions, man page, dry runs, progress, doctor, output modes.

use crate::common::*;
use gcupload::ExitStatus;
use serde_json::Value;

#[test]
fn completions_and_man_page_generate() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = env
            .bare_cmd()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("gcupload") && text.contains("--dry-run"),
            "{shell}"
        );
    }
    let out = env.bare_cmd().arg("man").finish(ExitStatus::Success);
    let man = String::from_utf8(out.stdout).unwrap();
    assert!(
        man.contains(".TH gcupload 1") && man.contains("external\\-contact"),
        "{man}"
    );
}

#[test]
fn version_names_the_commit_and_help_has_examples() {
    let env = Env::new();
    let v = env.bare_cmd().arg("--version").output().unwrap();
    assert!(String::from_utf8(v.stdout).unwrap().contains("(commit "));
    let h = String::from_utf8(env.bare_cmd().arg("--help").output().unwrap().stdout).unwrap();
    for needle in ["--deployment", "--conversation", "jq", "--sandbox"] {
        assert!(h.contains(needle), "{needle} in --help");
    }
}

/// external-contact is named for what it is wherever a user reads about it: a contract from the
/// original specification, not a published Genesys API; never "the brief", which means nothing
/// to a user.
#[test]
fn external_contact_is_named_for_what_it_is_wherever_a_user_reads() {
    let env = Env::new();
    let out = |args: &[&str]| {
        String::from_utf8(env.bare_cmd().args(args).output().unwrap().stdout).unwrap()
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let mut texts = vec![
        ("--help".to_string(), out(&["--help"])),
        ("man".to_string(), out(&["man"])),
        (".env.example".to_string(), read(&root.join(".env.example"))),
        ("README.md".to_string(), read(&root.join("README.md"))),
    ];
    for (what, text) in &texts {
        assert!(text.contains("original specification"), "{what}");
    }
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            texts.push((path.display().to_string(), read(&path)));
        }
    }
    assert!(texts.len() > 4, "the docs/ pages are read too");
    for (what, text) in &texts {
        assert!(
            !text.to_lowercase().contains("brief"),
            "{what} says \"brief\""
        );
    }
}

#[test]
fn a_dry_run_checks_everything_and_uploads_nothing() {
    let env = Env::new();
    let a = env.file("a.pdf", &pdf(1000));
    let bad = env.file("b.pdf", &png(100));
    let out = env
        .cmd()
        .arg("--dry-run")
        .arg(&a)
        .arg(&bad)
        .finish(ExitStatus::Validation);
    let recs = records(&out.stdout);
    let r = by_name(&recs, "a.pdf");
    assert_eq!(r["action"], "FILE_UPLOAD_PLANNED");
    assert_eq!(r["integrityHash"], sha256_file(&a));
    assert!(
        r["apiHost"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1")
    );
    assert_eq!(by_name(&recs, "b.pdf")["error"]["rule"], "magic-mismatch");
    assert!(env.sandbox.objects().is_empty(), "the store stays empty");
    let reqs = env.sandbox.requests();
    assert_eq!(reqs.len(), 1, "only the token request: {reqs:?}");
    assert_eq!(reqs[0].path, "/oauth/token");
    assert!(env.sandbox.webhooks().is_empty());

    // Wrong credentials are found by a dry run too.
    let out = env
        .cmd()
        .env("GENESYS_CLIENT_SECRET", "nope")
        .args(["--dry-run"])
        .arg(&a)
        .finish(ExitStatus::Auth);
    assert_eq!(records(&out.stdout)[0]["error"]["kind"], "auth");

    // --offline makes no call at all.
    let before = env.sandbox.requests().len();
    let out = env
        .cmd()
        .args(["--dry-run", "--offline"])
        .arg(&a)
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_PLANNED");
    assert_eq!(env.sandbox.requests().len(), before);

    // A guest dry run opens the session (deployment rules apply) but sends no attachment.
    let zip = env.file("c.zip", &zip(100));
    let out = env
        .guest_cmd()
        .arg("--dry-run")
        .arg(&a)
        .arg(&zip)
        .output()
        .unwrap();
    let recs = records(&out.stdout);
    assert_eq!(by_name(&recs, "a.pdf")["action"], "FILE_UPLOAD_PLANNED");
    assert_eq!(by_name(&recs, "c.zip")["error"]["rule"], "type-not-allowed");
    assert!(env.sandbox.objects().is_empty());
    assert!(env.sandbox.messages().is_empty());
}

#[test]
fn text_output_is_one_line_per_file() {
    let env = Env::new();
    let a = env.file("a.pdf", &pdf(1000));
    let out = env
        .cmd()
        .args(["--output", "text"])
        .arg(&a)
        .arg("missing.pdf")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ok ") && l.contains("a.pdf"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("failed ") && l.contains("missing.pdf"))
    );
}

/// Runs `gcupload args` under a pseudo-terminal (util-linux `script`), returning all it printed.
fn under_pty(env: &Env, vars: &[(&str, String)], args: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("gcupload");
    let mut c = std::process::Command::new("script");
    c.env_clear()
        .env("TERM", "xterm")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(env.dir.path())
        .args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"]);
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().expect("script(1) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sandbox_vars(env: &Env) -> Vec<(&'static str, String)> {
    vec![
        ("GENESYS_BASE_URL", env.sandbox.base_url.to_string()),
        ("GENESYS_CLIENT_ID", env.sandbox.client_id().to_string()),
        (
            "GENESYS_CLIENT_SECRET",
            env.sandbox.client_secret().to_string(),
        ),
        (
            "EXTERNAL_CONTACT_ID",
            env.sandbox.external_contact_id().to_string(),
        ),
        ("GCUPLOAD_STATE_DIR", env.outbox().display().to_string()),
    ]
}

#[cfg(unix)]
#[test]
fn progress_bars_appear_on_a_terminal_and_never_on_a_pipe() {
    let env = Env::new();
    env.sandbox.faults().put_delay_ms = 600;
    env.file("a.pdf", &pdf(3 << 20));
    env.file("b.pdf", &pdf(3 << 20));
    let tty = under_pty(&env, &sandbox_vars(&env), "--jobs 1 a.pdf b.pdf");
    assert!(
        tty.contains("upload") && tty.contains("ETA"),
        "a file bar: {tty}"
    );
    assert!(tty.contains("files"), "the overall bar");
    assert!(tty.contains("FILE_UPLOAD_COMPLETED"));
    // stdout is a terminal: a short human table closes the run.
    assert!(
        tty.contains("ok      a.pdf") && tty.contains("ok      b.pdf"),
        "{tty}"
    );

    // On a pipe: no bar, and stdout is only JSON.
    let out = env
        .cmd()
        .args(["--force", "a.pdf", "b.pdf"])
        .finish(ExitStatus::Success);
    assert!(!stderr(&out).contains("ETA"));
    assert!(
        !stderr(&out).contains("ok      a.pdf"),
        "no table when stdout is a pipe"
    );
    assert_eq!(records(&out.stdout).len(), 2);
    // --progress always draws even on a pipe, on stderr only; --quiet and never stay silent.
    let out = env
        .cmd()
        .args(["--force", "--progress", "always", "a.pdf"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("ETA"), "{}", stderr(&out));
    assert_eq!(records(&out.stdout).len(), 1);
    let tty = under_pty(&env, &sandbox_vars(&env), "--force --progress never a.pdf");
    assert!(!tty.contains("ETA"));
    let tty = under_pty(&env, &sandbox_vars(&env), "--force --quiet a.pdf");
    assert!(!tty.contains("ETA"));
}

#[cfg(unix)]
#[test]
fn colours_only_on_terminals_and_never_with_no_color() {
    let env = Env::new();
    let vars = sandbox_vars(&env);
    let tty = under_pty(&env, &vars, "missing.pdf");
    assert!(tty.contains("\x1b[31merror:"), "{tty:?}");
    let mut no = vars.clone();
    no.push(("NO_COLOR", "1".into()));
    let tty = under_pty(&env, &no, "missing.pdf");
    assert!(!tty.contains('\x1b'), "{tty:?}");
    let out = env.cmd().arg("missing.pdf").output().unwrap();
    assert!(!stderr(&out).contains('\x1b'));
}

#[test]
fn doctor_reports_a_healthy_setup_a_wrong_secret_and_a_wrong_region() {
    let env = Env::new();
    let out = env.cmd().arg("doctor").finish(ExitStatus::Success);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let err = stderr(&out);
    assert!(err.contains("from env") && err.contains("hidden"), "{err}");
    assert!(
        !err.contains(env.sandbox.client_secret()),
        "the secret is masked"
    );

    let out = env
        .cmd()
        .env("GENESYS_CLIENT_SECRET", "Zq9-not-the-secret")
        .arg("doctor")
        .finish(ExitStatus::Auth);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cred = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "credentials")
        .unwrap();
    assert_eq!(cred["ok"], false);
    assert!(
        cred["fix"]
            .as_str()
            .unwrap()
            .contains("GENESYS_CLIENT_SECRET")
    );
    assert!(
        !stderr(&out).contains("Zq9"),
        "not even a wrong secret is printed"
    );

    let out = env
        .cmd()
        .env_remove("GENESYS_BASE_URL")
        .args(["doctor", "--region", "atlantis-1"])
        .finish(ExitStatus::Usage);
    assert!(stderr(&out).contains("unknown region") && stderr(&out).contains("from flag"));

    // The guest route: what the deployment accepts.
    let out = env.guest_cmd().arg("doctor").finish(ExitStatus::Success);
    assert!(stderr(&out).contains("image/*") && stderr(&out).contains("10240 KB"));

    // .env is told apart from the environment.
    env.file(
        ".env",
        format!(
            "EXTERNAL_CONTACT_ID={}\n",
            env.sandbox.external_contact_id()
        )
        .as_bytes(),
    );
    let out = env
        .cmd()
        .env_remove("EXTERNAL_CONTACT_ID")
        .arg("doctor")
        .output()
        .unwrap();
    assert!(stderr(&out).contains("from .env"), "{}", stderr(&out));
}

#[test]
fn doctor_shows_no_url_credential_and_no_secret_length() {
    let env = Env::new();
    let base = env.sandbox.base_url.as_str();
    let with_password = base.replacen("://", "://admin:pa55w0rd-Xy@", 1);
    let hook = format!("{}?token=hooktok-Qw3rty&v=2", env.sandbox.webhook_url());
    for base_url in [with_password.clone(), format!("{with_password}:99999x")] {
        let out = env
            .cmd()
            .env("GENESYS_BASE_URL", &base_url)
            .env("WEBHOOK_SYNC_URL", &hook)
            .env("WEBHOOK_SECRET", "whsec-value-123")
            .arg("doctor")
            .output()
            .unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        for leak in ["pa55w0rd", "hooktok-Qw3rty", "whsec-value", "characters"] {
            assert!(!all.contains(leak), "{leak} shown:\n{all}");
        }
        assert!(!all.contains(env.sandbox.client_secret()));
        for line in all.lines().filter(|l| l.contains("secret ")) {
            assert!(
                !line.chars().any(|c| c.is_ascii_digit()),
                "a secret's length is shown: {line}"
            );
            assert!(line.contains("hidden"), "{line}");
        }
        let hook_line = all.lines().find(|l| l.contains("webhook_url")).unwrap();
        assert!(hook_line.contains("/_sandbox/webhook"), "{hook_line}");
    }
}

/// What a person's terminal shows at the end: the pty's bytes through a terminal emulator.
fn screen(raw: &str) -> String {
    let size = |n| std::num::NonZeroU16::new(n).unwrap();
    let mut parser = vt100::Parser::new(size(50), size(80), 0);
    // 80 columns: what a pty without a size reports, and so what the bars are drawn for.
    // script(1) hands over bare line feeds as the terminal would get them after the tty's
    // output processing (onlcr): a line feed is a new line.
    parser.process(raw.replace('\n', "\r\n").as_bytes());
    parser.screen().contents()
}

#[cfg(unix)]
#[test]
fn text_results_stay_on_screen_above_the_progress_bars() {
    let env = Env::new();
    env.sandbox.faults().put_delay_ms = 300;
    let names: Vec<String> = (0..6).map(|i| format!("f{i}.pdf")).collect();
    for (i, n) in names.iter().enumerate() {
        env.file(n, &pdf((1 << 20) + i));
    }
    let tty = under_pty(
        &env,
        &sandbox_vars(&env),
        &format!("--jobs 2 --output text {}", names.join(" ")),
    );
    let shown = screen(&tty);
    for n in &names {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(n.as_str())),
            "{n}'s result line is not on the screen:\n{shown}"
        );
    }
    assert!(!shown.contains("ETA"), "no stale bar left behind:\n{shown}");
}

/// A reader that closed stdout before the JSON was written (`gcupload doctor | true`) makes no
/// panic: the report is dropped, the checks' status is the exit code.
#[test]
fn doctor_and_the_sandbox_survive_a_closed_stdout() {
    let env = Env::new();
    for args in [&["doctor"][..], &["sandbox", "--listen", "127.0.0.1:0"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child = env
            .std_cmd()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap())) {
            let line = line.unwrap();
            err.push_str(&line);
            err.push('\n');
            if line.starts_with("sandbox: serving") {
                // It keeps serving: stop it as a user would.
                signal(&child, libc::SIGTERM);
            }
        }
        let status = child.wait().unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            status.code().is_some(),
            "{args:?} ended by a signal: {status:?}"
        );
    }
}
