//! Hostile files: the file between its validation and its PUT. A file swapped for another (or
//! for a symlink to one) is refused before any byte is sent; a FIFO never blocks a run; a file
//! rewritten during the PUT never lands as a whole object with other bytes.

#![cfg(unix)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::Duration;

use crate::common::*;
use gcupload::ExitStatus;
use gcupload::sandbox::Pause;

/// Long enough for any of these runs, short enough that a hang fails the test, not the suite.
const LIMIT: Duration = Duration::from_secs(30);

/// Waits for the run, killing it (SIGKILL, by its pid) if it overruns `limit`: a hang fails.
fn finish(child: Child, limit: Duration) -> Output {
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "gcupload did not end within {limit:?} (killed); stderr: {}",
                stderr(&out)
            );
        }
    }
}

/// Puts what `make` creates at a temporary name in place of `path`, in one rename.
fn replace(path: &Path, make: impl FnOnce(&Path)) {
    let temp = path.with_extension("swap");
    make(&temp);
    std::fs::rename(&temp, path).unwrap();
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Bytes of the same length as `bytes` that differ from them.
fn other_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    for b in &mut v[bytes.len() / 2..] {
        *b = b.wrapping_add(1);
    }
    v
}

/// Uploads `path` with the sandbox holding the URL's answer, runs `swap` during the hold, and
/// returns how the run ended.
fn swap_after_validation(env: &Env, path: &Path, swap: impl FnOnce()) -> Output {
    env.sandbox.faults().pause = vec![Pause::new("request-url", 1000)];
    let child = env.spawn(&[path.as_os_str()]);
    wait_paused(env, "request-url", LIMIT);
    swap();
    finish(child, LIMIT)
}

/// The run failed on this file as `file-changed`, exit 8, and nothing was confirmed.
fn assert_file_changed(env: &Env, out: &Output, validated: &[u8]) {
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::FileChanged.code()),
        "{}",
        stderr(out)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["error"]["kind"], "file-changed", "{}", recs[0]);
    assert_eq!(recs[0]["integrityHash"], sha256(validated));
    assert!(env.sandbox.webhooks().is_empty(), "never confirmed");
}

/// Every object in the store has exactly the validated bytes (or there is none).
fn assert_no_wrong_object(env: &Env, validated: &[u8]) {
    let want = sha256(validated);
    for o in env.sandbox.objects() {
        assert_eq!(o.sha256, want, "an object with other bytes landed: {o:?}");
    }
}

fn puts(env: &Env) -> usize {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count()
}

#[test]
fn a_file_swapped_for_another_of_its_size_after_validation_is_not_sent() {
    let env = Env::new();
    let bytes = pdf(5000);
    let other = other_bytes(&bytes);
    let f = env.file("a.pdf", &bytes);
    let out = swap_after_validation(&env, &f, || {
        replace(&f, |t| std::fs::write(t, &other).unwrap())
    });
    assert_file_changed(&env, &out, &bytes);
    assert!(
        env.sandbox
            .objects()
            .iter()
            .all(|o| o.sha256 != sha256(&other)),
        "the other file's bytes were stored"
    );
    assert!(env.sandbox.objects().is_empty());
    assert_eq!(puts(&env), 0, "no byte of the other file was sent");
}

#[test]
fn a_file_swapped_for_a_symlink_after_validation_is_not_sent() {
    let env = Env::new();
    let bytes = pdf(5000);
    // The secret a hostile swap points at: same size, so a blind PUT would store all of it.
    let secret = env.file("shadow", &other_bytes(&bytes));
    let f = env.file("a.pdf", &bytes);
    let out = swap_after_validation(&env, &f, || {
        replace(&f, |t| std::os::unix::fs::symlink(&secret, t).unwrap())
    });
    assert_file_changed(&env, &out, &bytes);
    assert!(env.sandbox.objects().is_empty(), "the secret was stored");
    assert_eq!(puts(&env), 0, "no byte of the secret was sent");
}

#[test]
fn a_fifo_given_as_input_is_refused_without_blocking() {
    let env = Env::new();
    let fifo = env.dir.path().join("pipe.pdf");
    mkfifo(&fifo);
    let link = env.dir.path().join("link.pdf");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let child = env.spawn(&[fifo.as_os_str(), link.as_os_str()]);
    let out = finish(child, Duration::from_secs(15));
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Validation.code()),
        "{}",
        stderr(&out)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["error"]["rule"], "not-regular-file", "{r}");
        // The hint says the actual fix, not "check the path and its permissions".
        let hint = r["error"]["hint"].as_str().unwrap_or_default();
        assert!(hint.contains("only regular files"), "{r}");
    }
}

#[test]
fn a_file_replaced_by_a_fifo_after_validation_ends_the_run_with_a_record() {
    let env = Env::new();
    let bytes = pdf(5000);
    let f = env.file("a.pdf", &bytes);
    let out = swap_after_validation(&env, &f, || replace(&f, mkfifo));
    assert_file_changed(&env, &out, &bytes);
    assert!(env.sandbox.objects().is_empty());
}

/// A 24 MiB upload held by the store before it reads the body, so the client has read at most a
/// few MiB of the file when `during` runs.
fn during_a_held_put(env: &Env, bytes: &[u8], during: impl FnOnce(&Path)) -> Output {
    env.sandbox.faults().max_upload_bytes = 64 << 20;
    env.sandbox.faults().pause = vec![Pause::new("put-start", 1500)];
    let f = env.file("big.pdf", bytes);
    let args: [&OsStr; 3] = ["--max-size".as_ref(), "64MiB".as_ref(), f.as_os_str()];
    let child = env.spawn(&args);
    wait_paused(env, "put-start", LIMIT);
    during(&f);
    finish(child, LIMIT)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
}

#[test]
fn a_file_rewritten_in_place_during_the_put_never_lands_whole() {
    let env = Env::new();
    let bytes = pdf(24 << 20);
    let half = bytes.len() as u64 / 2;
    let out = during_a_held_put(&env, &bytes, |f| {
        write_at(f, half, &other_bytes(&bytes[half as usize..]))
    });
    assert_file_changed(&env, &out, &bytes);
    assert_no_wrong_object(&env, &bytes);
    assert!(env.sandbox.objects().is_empty());
}

#[test]
fn a_file_that_grows_during_the_put_lands_as_validated() {
    let env = Env::new();
    let bytes = pdf(24 << 20);
    let out = during_a_held_put(&env, &bytes, |f| {
        use std::io::Write;
        let mut a = std::fs::OpenOptions::new().append(true).open(f).unwrap();
        a.write_all(&vec![b'x'; 1 << 20]).unwrap();
    });
    assert_no_wrong_object(&env, &bytes);
    // The first `size` bytes are the validated ones: what is stored is what was audited.
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.sandbox.objects().len(), 1);
}

#[test]
fn a_file_rewritten_in_place_with_its_mtime_restored_is_not_stored() {
    let env = Env::new();
    let bytes = pdf(5000);
    let f: PathBuf = env.file("a.pdf", &bytes);
    let out = swap_after_validation(&env, &f, || {
        // Same inode, same size, same mtime: only the bytes tell.
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        write_at(&f, 0, &other_bytes(&bytes));
        let h = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        h.set_modified(mtime).unwrap();
    });
    assert_file_changed(&env, &out, &bytes);
    assert_no_wrong_object(&env, &bytes);
    assert!(env.sandbox.objects().is_empty());
}
