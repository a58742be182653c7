//! Leases and the state database's own file (issue 21): a holder is identified by host, boot,
//! PID namespace and start time, so a pid is asked about (`kill(pid, 0)`) only in its own
//! namespace; `state.db` is never reached through a link, and is ours.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::common::{Env, Finish, pdf, records, sha256, stderr};
use crate::state::{Route, killed_at, now_ms};
use gcupload::ExitStatus;

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_string()
}

/// This machine and PID namespace as gcupload writes a holder (`lease_host`), without the start.
fn our_machine() -> String {
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    format!(
        "{} boot={} pidns={ns}",
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/random/boot_id")
    )
}

/// A pid no process has now (a child that was reaped).
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// A journal row for `name`, left by a run killed before its PUT.
fn journaled(env: &Env, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = env.file(name, bytes);
    killed_at(env, "put-start", || {
        Route::External.spawn(env, &[path.as_os_str()])
    });
    path
}

/// Rewrites the lease of the only journal row.
pub(crate) fn set_lease(env: &Env, pid: u32, holder: &str, until_ms: i64) {
    let db = rusqlite::Connection::open(env.outbox().join("state.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let n = db
        .execute(
            "UPDATE uploads SET lease_pid = ?1, lease_host = ?2, lease_until = ?3",
            rusqlite::params![pid, holder, until_ms],
        )
        .unwrap();
    assert_eq!(n, 1);
}

/// A run in another PID namespace with the same host name (a container with host networking,
/// `PrivatePIDs=`): its pid means nothing here, so its lease holds until it expires, even when
/// no process here has that pid. The bare host name is what a holder wrote before (and what
/// today's code still judged by `kill`); the full form names another namespace.
#[test]
fn a_lease_from_another_pid_namespace_is_respected_until_it_expires() {
    let env = Env::new();
    let bytes = pdf(30_000);
    let path = journaled(&env, "ns.pdf", &bytes);
    let host = read("/proc/sys/kernel/hostname");
    let elsewhere = our_machine().replace(" pidns=", " pidns=1") + " start=42";
    let pid = dead_pid();
    for holder in [host.as_str(), elsewhere.as_str()] {
        set_lease(&env, pid, holder, now_ms() + 60_000);
        let out = env.cmd().arg(&path).finish(ExitStatus::Success);
        let r = &records(&out.stdout)[0];
        assert_eq!(r["skipReason"], "claimed-by-another-run", "{holder}: {r}");
        assert_eq!(r["claimedBy"], format!("pid {pid} on {host}"), "{r}");
        assert!(
            env.sandbox.objects().is_empty(),
            "{holder}: sent while held"
        );
    }
    set_lease(&env, pid, &elsewhere, now_ms() - 1);
    let out = env.cmd().arg(&path).output().unwrap();
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
    assert_eq!(env.sandbox.objects().len(), 1);
    assert_eq!(env.sandbox.objects()[0].sha256, sha256(&bytes));
}

/// In our own namespace a holder that is gone is taken over at once, and so is one whose pid
/// now belongs to another process (a live pid with another start time: the pid was reused).
#[test]
fn a_dead_or_reused_holder_in_our_namespace_is_taken_over() {
    let env = Env::new();
    let bytes = pdf(30_000);
    let path = journaled(&env, "gone.pdf", &bytes);
    let ours = our_machine();
    for (pid, start) in [(dead_pid(), "42"), (std::process::id(), "1")] {
        set_lease(
            &env,
            pid,
            &format!("{ours} start={start}"),
            now_ms() + 60_000,
        );
        let out = env.cmd().arg(&path).finish(ExitStatus::Success);
        let r = &records(&out.stdout)[0];
        assert!(
            r["action"] == "FILE_UPLOAD_COMPLETED" || r["skipReason"] == "already-uploaded",
            "pid {pid}: {r}"
        );
    }
    assert_eq!(env.sandbox.objects().len(), 1, "sent once");
}

/// The run's refusal: exit 2, a `state` record, a message naming `name`.
fn refused(env: &Env, f: &Path, name: &str) -> String {
    let out = env.cmd().arg(f).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let r = &records(&out.stdout)[0];
    assert_eq!(r["error"]["kind"], "state", "{r}");
    let message = r["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains(name), "{message}");
    message
}

/// `state.db` a symbolic link, dangling or to someone else's file, or a file of someone else:
/// never opened, never created through the link, and the message names it.
#[test]
fn a_state_db_that_is_a_link_or_not_ours_is_refused() {
    let env = Env::new();
    let f = env.file("a.txt", b"hello");
    let dir = env.outbox();
    drop(env.store());
    let db = dir.join("state.db");
    std::fs::remove_file(&db).unwrap();
    let _ = std::fs::remove_file(dir.join("state.db-wal"));
    let _ = std::fs::remove_file(dir.join("state.db-shm"));

    // Dangling: SQLite would create the journal at the target.
    let target = env.dir.path().join("elsewhere.db");
    std::os::unix::fs::symlink(&target, &db).unwrap();
    let m = refused(&env, &f, "state.db");
    assert!(m.contains("symbolic link"), "{m}");
    assert!(!target.exists(), "nothing created through the link");

    // To another user's file (as root, as CI runs: a file of uid 65534).
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    std::fs::write(&target, b"theirs").unwrap();
    if root {
        std::os::unix::fs::chown(&target, Some(65534), None).unwrap();
    }
    refused(&env, &f, "state.db");
    assert_eq!(std::fs::read(&target).unwrap(), b"theirs");

    // A file of another user, or one others may write.
    std::fs::remove_file(&db).unwrap();
    std::fs::copy(&target, &db).unwrap();
    if root {
        std::os::unix::fs::chown(&db, Some(65534), None).unwrap();
        let m = refused(&env, &f, "state.db");
        assert!(m.contains("belongs to user 65534"), "{m}");
        std::os::unix::fs::chown(&db, Some(0), None).unwrap();
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
    let m = refused(&env, &f, "state.db");
    assert!(m.contains("chmod 600"), "{m}");
    assert!(env.sandbox.objects().is_empty());
}
