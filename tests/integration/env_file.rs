//! The `.env` file as an attacker would use it: planted in a parent directory, writable by
//! others, carrying a proxy, a CA bundle or a log level, or broken half-way.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use gcupload::ExitStatus;
use serde_json::Value;

/// Uploads `file` from the test's directory, with `text` as its private `./.env`.
fn upload_with_dotenv(env: &Env, text: &str, file: &Path) -> std::process::Output {
    env_file(&env.dir.path().join(".env"), text, 0o600);
    env.bare_cmd().arg(file).output().unwrap()
}

/// A listener that only counts who connects to it: the attacker's server.
fn hostile_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (url, hits)
}

/// Writes a settings file with the given mode (never the umask's).
fn env_file(path: &Path, text: &str, mode: u32) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// The sandbox's settings as `.env` lines.
fn sandbox_settings(env: &Env) -> String {
    format!(
        "GENESYS_BASE_URL={}\nGENESYS_CLIENT_ID={}\nGENESYS_CLIENT_SECRET={}\nEXTERNAL_CONTACT_ID={}\n",
        env.sandbox.base_url,
        env.sandbox.client_id(),
        env.sandbox.client_secret(),
        env.sandbox.external_contact_id()
    )
}

/// Another user's `shared/.env` must not steer a job run in `shared/job`: not its API host, not
/// its webhook (which would receive every record).
#[test]
fn a_dotenv_in_a_parent_directory_is_not_read() {
    let env = Env::new();
    let (hostile, hits) = hostile_listener();
    let shared = env.dir.path().join("shared");
    env_file(
        &shared.join(".env"),
        &format!("GENESYS_BASE_URL={hostile}\nWEBHOOK_SYNC_URL={hostile}/hook\n"),
        0o600,
    );
    let job = shared.join("job");
    std::fs::create_dir_all(&job).unwrap();
    let f = env.file("a.pdf", &pdf(1000));
    let out = env
        .cmd()
        .env_remove("WEBHOOK_SYNC_URL")
        .current_dir(&job)
        .arg(&f)
        .finish(ExitStatus::Success);
    let recs = records(&out.stdout);
    assert_eq!(recs[0]["action"], "FILE_UPLOAD_COMPLETED", "{recs:?}");
    assert!(
        recs[0].get("webhook").is_none_or(Value::is_null),
        "{recs:?}"
    );
    assert_eq!(
        env.sandbox.objects().len(),
        1,
        "uploaded to the real setting"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the parent's host"
    );

    // With no API host in the environment (the region's hosts are meant), the parent's is not
    // taken either: a dry run shows where the credentials would go, without calling anyone.
    let out = env
        .bare_cmd()
        .env("GENESYS_REGION", "eu_west_1")
        .env("GENESYS_CLIENT_ID", env.sandbox.client_id())
        .env("GENESYS_CLIENT_SECRET", env.sandbox.client_secret())
        .env("EXTERNAL_CONTACT_ID", env.sandbox.external_contact_id())
        .current_dir(&job)
        .args(["--dry-run", "--offline"])
        .arg(&f)
        .finish(ExitStatus::Success);
    let plan = &records(&out.stdout)[0];
    for host in ["loginHost", "apiHost"] {
        let shown = plan[host].as_str().unwrap_or_else(|| panic!("{plan}"));
        assert!(shown.contains("mypurecloud.ie"), "{host}: {shown}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the parent's host"
    );
}

#[test]
fn a_dotenv_that_others_can_write_or_another_user_owns_is_refused() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(1000));
    let dotenv = env_file(&env.dir.path().join(".env"), &sandbox_settings(&env), 0o664);
    let out = env.bare_cmd().arg(&f).output().unwrap();
    let err = expect_status(&out, ExitStatus::Usage);
    assert!(err.contains(".env") && err.contains("chmod go-w"), "{err}");
    // Its own next step, not the generic one for a missing setting.
    assert!(err.contains("--no-env-file"), "{err}");
    assert!(!err.contains("set it with the flag or variable"), "{err}");
    // Every file still gets its record, and nothing was sent.
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["action"], "FILE_UPLOAD_FAILED");
    assert!(
        recs[0]["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("nothing of the .env file was used")),
        "{}",
        recs[0]
    );
    assert!(env.sandbox.requests().is_empty());

    // Made private, the same file is read.
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.bare_cmd().arg(&f).finish(ExitStatus::Success);

    // As root the owner check can be seen: a file owned by someone else is refused.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&dotenv, Some(65534), None).unwrap();
        let out = env.bare_cmd().arg("--force").arg(&f).output().unwrap();
        let err = expect_status(&out, ExitStatus::Usage);
        assert!(
            err.contains("owned by user 65534") && err.contains("chown"),
            "{err}"
        );
    }
}

/// A proxy, a CA bundle and a log level in `.env` are not gcupload's settings: not applied.
#[test]
fn foreign_keys_in_a_dotenv_are_not_applied() {
    let env = Env::new();
    let (hostile, hits) = hostile_listener();
    let f = env.file("a.pdf", &pdf(1000));
    let text = format!(
        "{}HTTPS_PROXY={hostile}\nHTTP_PROXY={hostile}\nALL_PROXY={hostile}\nSSL_CERT_FILE=/nonexistent/ca.pem\nRUST_LOG=trace\n",
        sandbox_settings(&env)
    );
    let out = upload_with_dotenv(&env, &text, &f);
    let err = expect_status(&out, ExitStatus::Success);
    for key in [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "RUST_LOG",
    ] {
        assert!(
            err.contains(&format!("{key} is not a gcupload setting")),
            "{key}: {err}"
        );
    }
    assert!(
        !err.contains("TRACE") && !err.contains("DEBUG"),
        "RUST_LOG applied: {err}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the proxy was used");
    assert_eq!(env.sandbox.objects().len(), 1);
}

/// A broken line is an error naming it, not a silent stop there.
#[test]
fn a_dotenv_syntax_error_names_the_line() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(1000));
    let text = format!(
        "# settings\nGENESYS_REGION=us_east_1\nTHIS IS NOT A SETTING\n{}",
        sandbox_settings(&env)
    );
    let out = upload_with_dotenv(&env, &text, &f);
    let err = expect_status(&out, ExitStatus::Usage);
    assert!(err.contains(".env line 3"), "{err}");
    assert!(env.sandbox.requests().is_empty());
}

#[test]
fn doctor_names_the_dotenv_read_and_each_key_it_set() {
    let env = Env::new();
    env_file(&env.dir.path().join(".env"), &sandbox_settings(&env), 0o600);
    let out = env
        .bare_cmd()
        .env("EXTERNAL_CONTACT_ID", env.sandbox.external_contact_id())
        .arg("doctor")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "env file")
        .unwrap_or_else(|| panic!("{report}"));
    let detail = check["detail"].as_str().unwrap();
    let file = env.dir.path().join(".env");
    assert!(detail.contains(&file.display().to_string()), "{detail}");
    for key in [
        "GENESYS_BASE_URL",
        "GENESYS_CLIENT_ID",
        "GENESYS_CLIENT_SECRET",
    ] {
        assert!(detail.contains(key), "{key}: {detail}");
    }
    // The environment had this one: .env did not set it.
    assert!(!detail.contains("EXTERNAL_CONTACT_ID"), "{detail}");
    assert!(stderr(&out).contains("env file"));
}

#[test]
fn env_file_names_the_file_and_no_env_file_skips_it() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(1000));
    let named = env_file(
        &env.dir.path().join("conf/gcupload.env"),
        &sandbox_settings(&env),
        0o600,
    );
    env.bare_cmd()
        .arg("--env-file")
        .arg(&named)
        .arg(&f)
        .finish(ExitStatus::Success);
    assert_eq!(env.sandbox.objects().len(), 1);

    // The same checks apply to a named file.
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o646)).unwrap();
    let out = env
        .bare_cmd()
        .arg("--env-file")
        .arg(&named)
        .arg(&f)
        .finish(ExitStatus::Usage);
    assert!(stderr(&out).contains("chmod go-w"));

    // A named file that is missing is an error, not an empty configuration.
    let missing = env.dir.path().join("nope.env");
    let out = env
        .bare_cmd()
        .arg("--env-file")
        .arg(&missing)
        .arg(&f)
        .finish(ExitStatus::Usage);
    assert!(
        stderr(&out).contains("nope.env: no such file"),
        "{}",
        stderr(&out)
    );

    // --no-env-file (or GCUPLOAD_NO_DOTENV) reads no ./.env: no route is configured then.
    env_file(&env.dir.path().join(".env"), &sandbox_settings(&env), 0o600);
    for skip in [&["--no-env-file"][..], &[]] {
        let mut cmd = env.bare_cmd();
        if skip.is_empty() {
            cmd.env("GCUPLOAD_NO_DOTENV", "1");
        }
        let out = cmd
            .args(skip)
            .arg("--force")
            .arg(&f)
            .finish(ExitStatus::Usage);
        assert!(
            stderr(&out).contains("no route selected"),
            "{}",
            stderr(&out)
        );
    }
}
