//! The process's own environment (issue 21): no CA certificates, a broken stderr, a locked
//! database, an open-file limit, a state directory that is not ours.

use std::time::Duration;

use crate::common::{Env, output_within, records, signal, stderr};

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
        let mut c = env.std_cmd();
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

/// Another process holds the state database locked (`BEGIN EXCLUSIVE`, as `sqlite3` left in a
/// transaction would) for as long as the returned connection lives.
fn lock_database(env: &Env) -> rusqlite::Connection {
    drop(env.store()); // creates it, with its schema
    let c = rusqlite::Connection::open(env.outbox().join("state.db")).unwrap();
    c.execute_batch("BEGIN EXCLUSIVE").unwrap();
    c
}

/// A second interrupt while another process holds the database: the run's journal writes wait
/// only a moment after it (they used to wait 30 s each: 60 s before the process exited), and the
/// file still gets its interrupted record.
#[test]
fn second_interrupt_with_the_database_locked_exits_promptly() {
    let env = Env::new();
    let f = env.file("a.txt", b"hello");
    let _lock = lock_database(&env);
    let child = env.spawn(&[f.as_os_str()]);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    // Well under the 30 s one locked write used to wait.
    let out = output_within(child, Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["error"]["kind"], "interrupted");
}

/// A database another process holds locked: the run says on stderr that it is waiting, for
/// which file and why, and goes on once the lock is released.
#[test]
fn a_locked_database_says_what_the_run_waits_for() {
    let env = Env::new();
    let f = env.file("a.txt", b"hello");
    let lock = lock_database(&env);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2500));
        lock.execute_batch("COMMIT").unwrap();
    });
    let out = output_within(env.spawn(&[f.as_os_str()]), Duration::from_secs(60));
    release.join().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("waiting for the state database"), "{err}");
    assert!(err.contains("state.db"), "{err}");
    assert!(err.contains("locked by another process"), "{err}");
    assert_eq!(records(&out.stdout)[0]["status"], "completed");
}

/// A state directory that someone else set up (here its lock file is another user's): the
/// message names the directory the user chose, and the lock file only as the reason. Run as
/// root (as CI does), the binary as uid 65534 against a directory of root's.
#[test]
fn a_state_directory_of_someone_else_is_named_in_the_message() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run the binary as another user");
        return;
    }
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = env.file("a.txt", b"hello");
    let dir = env.outbox();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("open.lock"), b"").unwrap();
    std::fs::set_permissions(
        dir.join("open.lock"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let mut c = env.std_cmd();
    // SAFETY: setgid/setuid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c.arg(&f).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let message = records(&out.stdout)[0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let named = format!("the state directory {} cannot be used", dir.display());
    assert!(message.contains(&named), "{message}");
    assert!(
        message.contains("open.lock"),
        "the reason names the file: {message}"
    );
}

/// `--jobs` beyond what the open-file limit allows (soft and hard limit 48 here): the run caps
/// its jobs and says so, naming the limit, instead of failing files with "Too many open files".
#[test]
fn jobs_beyond_the_open_file_limit_are_capped_with_a_warning() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let files: Vec<_> = (0..30)
        .map(|i| env.file(&format!("f{i}.txt"), format!("file {i}").as_bytes()))
        .collect();
    let mut c = env.std_cmd();
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 48,
                rlim_max: 48,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c
        .args(["--no-state", "--jobs", "32"])
        .args(&files)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 30);
    assert!(recs.iter().all(|r| r["status"] == "completed"), "{err}");
    assert!(err.contains("open-file limit (ulimit -n) is 48"), "{err}");
}
