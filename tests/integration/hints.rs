//! Every hint names a next step that works: each test follows the hint it gets, with the real
//! binary against the sandbox, and checks that it leads somewhere.

use crate::common::*;
use gcupload::ExitStatus;
use serde_json::Value;

fn hint_of(out: &std::process::Output) -> String {
    records(&out.stdout)[0]["error"]["hint"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_type_hint_suggests_only_what_works() {
    let env = Env::new();
    // An extension gcupload cannot verify: --allow-type cannot take it, so it is not suggested.
    let md = env.file("notes.md", b"# notes\n");
    let out = env.cmd().arg(&md).finish(ExitStatus::Validation);
    let hint = hint_of(&out);
    assert!(!hint.contains("--allow-type"), "{hint}");
    env.cmd()
        .args(["--allow-type", "text/markdown"])
        .arg(&md)
        .finish(ExitStatus::Usage);
    // The hint's way out: rename to the real extension (it is plain text).
    let txt = env.file("notes.txt", b"# notes\n");
    env.cmd().arg(&txt).finish(ExitStatus::Success);

    // A known type outside --allow-type: the hint says to add it, and adding it works.
    let png = env.file("a.png", &png(200));
    let out = env
        .cmd()
        .args(["--allow-type", "application/pdf"])
        .arg(&png)
        .finish(ExitStatus::Validation);
    assert!(hint_of(&out).contains("--allow-type"), "{}", hint_of(&out));
    env.cmd()
        .args(["--allow-type", "application/pdf,image/png"])
        .arg(&png)
        .finish(ExitStatus::Success);

    // The guest deployment's own type list: no local flag changes it, so none is suggested.
    let zip = env.file("a.zip", &zip(300));
    let out = env.guest_cmd().arg(&zip).finish(ExitStatus::Validation);
    let hint = hint_of(&out);
    assert!(
        hint.contains("deployment") && !hint.contains("--allow-type"),
        "{hint}"
    );
}

#[test]
fn a_configuration_hint_names_the_flag_the_variable_and_doctor() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .cmd()
        .env_remove("GENESYS_CLIENT_SECRET")
        .arg(&f)
        .finish(ExitStatus::Usage);
    let r = &records(&out.stdout)[0];
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--client-secret") && message.contains("GENESYS_CLIENT_SECRET"),
        "{message}"
    );
    let hint = hint_of(&out);
    assert!(
        hint.contains("gcupload doctor") && !hint.contains(".env.example"),
        "{hint}"
    );
    // Nothing was checked: the record does not claim an audit.
    assert_eq!(r["complianceStatus"], "NOT_AUDITED");
    // Following it: doctor names the unset setting with its flag and variable.
    let out = env
        .cmd()
        .env_remove("GENESYS_CLIENT_SECRET")
        .arg("doctor")
        .output()
        .unwrap();
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("client_secret"))
        .unwrap_or_else(|| panic!("no client_secret line:\n{err}"));
    assert!(
        line.contains("unset") && line.contains("--client-secret or GENESYS_CLIENT_SECRET"),
        "{line}"
    );
}

#[test]
fn doctor_lists_every_setting_suggests_the_sandbox_and_ticks_only_what_passed() {
    let env = Env::new();
    // No route and no credentials; only where the platform is (the sandbox, which answers 404 at /).
    let out = env
        .bare_cmd()
        .env("GENESYS_BASE_URL", env.sandbox.base_url.as_str())
        .arg("doctor")
        .finish(ExitStatus::Usage);
    let err = stderr(&out);
    for id in [
        "route",
        "external_contact",
        "deployment",
        "conversation",
        "communication",
        "region",
        "base_url",
        "client_id",
        "client_secret",
        "webhook_url",
        "state_dir",
    ] {
        assert!(
            err.lines().any(|l| l.trim_start().starts_with(id)),
            "{id} not listed:\n{err}"
        );
    }
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["settings"].as_array().unwrap().len() >= 11);
    let config = &report["checks"][0];
    assert_eq!(config["outcome"], "fail");
    assert!(
        config["detail"]
            .as_str()
            .unwrap()
            .contains("gcupload --sandbox FILE"),
        "{config}"
    );
    // A host that answers 404 is reachable, not a pass: no check mark.
    for host in ["login host", "API host", "socket host"] {
        let line = err.lines().find(|l| l.contains(host)).unwrap();
        assert!(line.contains("HTTP 404"), "{line}");
        assert!(!line.starts_with('✓'), "a 404 is shown as passed: {line}");
    }
    let checks = report["checks"].as_array().unwrap();
    for c in checks.iter().filter(|c| c["outcome"] == "pass") {
        assert!(!c["detail"].as_str().unwrap().contains("HTTP 404"), "{c}");
    }
    // The suggestion works as written.
    let f = env.file("a.pdf", &pdf(100));
    env.bare_cmd()
        .arg("--sandbox")
        .arg(&f)
        .finish(ExitStatus::Success);
}

#[test]
fn a_wrong_deployment_says_to_check_the_deployment_id() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(100));
    let out = env
        .guest_cmd()
        .env("GENESYS_DEPLOYMENT_ID", "not-a-deployment")
        .arg(&f)
        .finish(ExitStatus::Remote);
    let e = &records(&out.stdout)[0]["error"];
    let message = e["message"].as_str().unwrap();
    assert!(
        !message.contains("400 400") && !message.contains("(string)"),
        "{message}"
    );
    let hint = hint_of(&out);
    assert!(
        hint.contains("--deployment") && hint.contains("GENESYS_DEPLOYMENT_ID"),
        "{hint}"
    );
    // The check it names tells a wrong id from a right one.
    let wrong = env
        .guest_cmd()
        .args(["doctor", "--deployment", "not-a-deployment"])
        .output()
        .unwrap();
    assert_ne!(wrong.status.code(), Some(0), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("--deployment"),
        "{}",
        stderr(&wrong)
    );
    env.guest_cmd()
        .args(["doctor", "--deployment", env.sandbox.deployment_id()])
        .finish(ExitStatus::Success);
}

/// The README's standalone-sandbox block, run as written: each `VAR=$(jq -r .key sandbox.json)`
/// it exports, then each `gcupload` line after it.
#[test]
fn the_readme_standalone_sandbox_block_reaches_every_route() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .find(|b| b.starts_with("gcupload sandbox --listen"))
        .and_then(|b| b.split("```").next())
        .expect("the README has the standalone-sandbox block");
    let pieces: Vec<&str> = block.split("=$(jq -r .").collect();
    let exports: Vec<(&str, &str)> = pieces
        .windows(2)
        .map(|w| {
            let var = w[0].rsplit(char::is_whitespace).next().unwrap();
            (var, w[1].split_whitespace().next().unwrap())
        })
        .collect();
    assert!(exports.len() >= 8, "{exports:?}");

    let (mut child, info) = sandbox_process();
    let env = Env::new();
    std::fs::create_dir_all(env.dir.path().join("tests/fixtures")).unwrap();
    env.file("tests/fixtures/sample.pdf", &pdf(300));
    let runs: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("gcupload ") && !l.starts_with("gcupload sandbox"))
        .collect();
    assert!(runs.len() >= 3, "{runs:?}");
    let mut results = Vec::new();
    for run in &runs {
        let mut cmd = env.bare_cmd();
        for (var, key) in &exports {
            cmd.env(var, info[*key].as_str().unwrap_or_default());
        }
        let args = run.split('#').next().unwrap().split_whitespace().skip(1);
        results.push((run.to_string(), cmd.args(args).output().unwrap()));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let mut routes = Vec::new();
    for (run, out) in results {
        assert_eq!(out.status.code(), Some(0), "{run}: {}", stderr(&out));
        routes.push(
            records(&out.stdout)[0]["route"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for route in ["external-contact", "guest", "conversation"] {
        assert!(
            routes.iter().any(|r| r == route),
            "{route} not reached: {routes:?}"
        );
    }
}

/// `… | head -1` in a real shell pipeline: the exit status of gcupload, not of head.
fn piped(env: &Env, args: &str) -> (i32, String) {
    let bin = assert_cmd::cargo::cargo_bin("gcupload");
    let script = format!(
        "'{}' {args} 2>err.txt | head -1; exit ${{PIPESTATUS[0]}}",
        bin.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GCUPLOAD_STATE_DIR", env.outbox())
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let err = std::fs::read_to_string(env.dir.path().join("err.txt")).unwrap_or_default();
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn a_closed_pipe_is_not_a_usage_error() {
    let env = Env::new();
    for args in ["man", "completions bash", "--help"] {
        let (code, err) = piped(&env, args);
        assert_eq!(code, 0, "{args}: {err}");
    }
    std::fs::create_dir_all(env.dir.path().join("many")).unwrap();
    for i in 0..40 {
        env.file(&format!("many/f{i:02}.pdf"), &pdf(500 + i));
    }
    let (code, err) = piped(&env, "--sandbox --jobs 1 -r many");
    assert_eq!(code, ExitStatus::StdoutClosed.code(), "{err}");
}

#[test]
fn the_smaller_wording_fixes() {
    let env = Env::new();
    // "1 file", not "1 files"; sizes in the unit that fits.
    let f = env.file("big.pdf", &pdf(2_000_000));
    let out = env
        .cmd()
        .args(["--output", "text"])
        .arg(&f)
        .finish(ExitStatus::Success);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2.0 MB") && !text.contains("kB"), "{text}");
    assert!(
        stderr(&out).contains("gcupload: 1 file, "),
        "{}",
        stderr(&out)
    );

    // One space after the colon, even when there is no HTTP status.
    let eicar = env.file("eicar.txt", &eicar_text());
    let out = env
        .conversation_cmd()
        .arg("--no-local-scan")
        .arg(&eicar)
        .output()
        .unwrap();
    let message = records(&out.stdout)[0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("media.invalid") && !message.contains("  "),
        "{message}"
    );

    // A flag wrong for every route is refused before a sandbox starts for it.
    let out = env
        .bare_cmd()
        .args(["--sandbox", "--jobs", "0"])
        .arg(&f)
        .finish(ExitStatus::Usage);
    assert!(
        !stderr(&out).contains("sandbox: serving"),
        "{}",
        stderr(&out)
    );
    assert_eq!(records(&out.stdout)[0]["complianceStatus"], "NOT_AUDITED");

    // A file a rule refused says so.
    let out = env.cmd().arg(env.file("empty.pdf", b"")).output().unwrap();
    assert_eq!(records(&out.stdout)[0]["complianceStatus"], "REJECTED");
}

#[test]
fn the_help_examples_run_as_written() {
    let env = Env::new();
    let help = String::from_utf8(env.bare_cmd().arg("--help").output().unwrap().stdout).unwrap();
    let examples: Vec<&str> = help
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("gcupload --sandbox"))
        .collect();
    assert!(!examples.is_empty(), "{help}");
    env.file("report.pdf", &pdf(400));
    for example in examples {
        // The command is what comes before the two-space gap and its description.
        let command = example.split("  ").next().unwrap();
        let out = env
            .bare_cmd()
            .args(command.split_whitespace().skip(1))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{command}: {}", stderr(&out));
    }
}

#[test]
fn the_soak_duration_is_the_same_in_the_readme_and_the_test() {
    let root = env!("CARGO_MANIFEST_DIR");
    let soak = std::fs::read_to_string(format!("{root}/tests/integration/soak.rs")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let reason = soak
        .split("#[ignore = \"soak: ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .expect("the soak test says why it is ignored");
    let said = readme
        .split("soak -- --ignored`, run by CI, ")
        .nth(1)
        .expect("the README says how long the soak test takes");
    let duration = reason.split(" (").next().unwrap();
    assert!(
        said.starts_with(duration),
        "test: {reason:?}; README: {:?}",
        &said[..40]
    );
}
