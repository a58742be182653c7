//! Drop folders and long runs: `--move-to`, `--remove-source-files`, a reader that closes stdout,
//! `--rate`.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use gcupload::ExitStatus;

#[test]
fn moves_happen_only_after_a_confirmed_and_journaled_upload() {
    let env = Env::new();
    let inbox = env.dir.path().join("inbox");
    let sent = env.dir.path().join("sent");
    std::fs::create_dir_all(&inbox).unwrap();
    let good = pdf(2000);
    std::fs::write(inbox.join("good.pdf"), &good).unwrap();
    std::fs::write(inbox.join("bad.pdf"), png(100)).unwrap(); // refused: not a PDF
    // A file of that name is already in the destination: nothing is overwritten.
    std::fs::create_dir_all(&sent).unwrap();
    std::fs::write(sent.join("good.pdf"), b"an older file").unwrap();

    let out = env
        .cmd()
        .args(["--recursive", "--move-to"])
        .arg(&sent)
        .arg(&inbox)
        .finish(ExitStatus::Validation);
    let recs = records(&out.stdout);
    let ok = by_name(&recs, "good.pdf");
    assert_eq!(ok["action"], "FILE_UPLOAD_COMPLETED");
    let moved = std::path::PathBuf::from(ok["movedTo"].as_str().unwrap());
    assert_eq!(moved, sent.join("good (1).pdf"));
    assert_eq!(std::fs::read(&moved).unwrap(), good, "moved byte-exact");
    assert_eq!(
        std::fs::read(sent.join("good.pdf")).unwrap(),
        b"an older file"
    );
    assert!(!inbox.join("good.pdf").exists());
    // The failed file stays where it was.
    assert_eq!(by_name(&recs, "bad.pdf")["action"], "FILE_UPLOAD_FAILED");
    assert!(inbox.join("bad.pdf").exists());
    assert!(by_name(&recs, "bad.pdf").get("movedTo").is_none());

    // --remove-source-files: the confirmed file is deleted, and only it.
    let other = env.file("other.pdf", &pdf(3000));
    let out = env
        .cmd()
        .arg("--remove-source-files")
        .arg(&other)
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["removed"], true);
    assert!(!other.exists());
    assert_eq!(env.sandbox.objects().len(), 2);
}

#[test]
fn a_file_skipped_as_already_uploaded_is_moved_a_claimed_one_is_not() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(1000));
    let sent = env.dir.path().join("sent");
    // Uploaded without a move (say the mover was added later) ...
    env.cmd().arg(&f).finish(ExitStatus::Success);
    // ... then a run with --move-to skips the upload and moves it: it is confirmed and journaled.
    let out = env
        .cmd()
        .arg("--move-to")
        .arg(&sent)
        .arg(&f)
        .finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_SKIPPED");
    assert_eq!(r["movedTo"], sent.join("a.pdf").display().to_string());
    assert!(!f.exists());
    assert_eq!(env.sandbox.objects().len(), 1);

    // A file another run is uploading is skipped and left in place.
    let g = env.file("b.pdf", &pdf(5000));
    env.sandbox
        .faults()
        .pause
        .push(gcupload::sandbox::Pause::new("put-start", 4000));
    let mut holder = env.spawn(&[g.as_os_str()]);
    wait_paused(&env, "put-start", Duration::from_secs(30));
    let out = env
        .cmd()
        .arg("--move-to")
        .arg(&sent)
        .arg(&g)
        .finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["skipReason"], "claimed-by-another-run");
    assert!(r.get("movedTo").is_none());
    assert!(g.exists(), "a claimed file is never moved");
    assert!(holder.wait().unwrap().success());
    assert_eq!(env.sandbox.objects().len(), 2);
}

#[test]
fn a_move_into_the_input_tree_is_refused_before_anything_is_sent() {
    let env = Env::new();
    let inbox = env.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("a.pdf"), pdf(100)).unwrap();
    let out = env
        .cmd()
        .args(["-r", "--move-to"])
        .arg(inbox.join("sent"))
        .arg(&inbox)
        .finish(ExitStatus::Usage);
    assert!(
        stderr(&out).contains("inside the input"),
        "{}",
        stderr(&out)
    );
    assert!(env.sandbox.objects().is_empty());
}

#[test]
fn a_closed_stdout_stops_new_files_and_the_journal_keeps_every_outcome() {
    let env = Env::new();
    let dir = env.dir.path().join("many");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..50 {
        std::fs::write(dir.join(format!("f{i:02}.pdf")), pdf(1000 + i)).unwrap();
    }
    env.sandbox.faults().put_delay_ms = 50;
    // `gcupload … | head -1`: the reader takes one line and goes away.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("gcupload"))
        .env_clear()
        .env("GENESYS_BASE_URL", env.sandbox.base_url.as_str())
        .env("GENESYS_CLIENT_ID", env.sandbox.client_id())
        .env("GENESYS_CLIENT_SECRET", env.sandbox.client_secret())
        .env("EXTERNAL_CONTACT_ID", env.sandbox.external_contact_id())
        .env("GCUPLOAD_STATE_DIR", env.outbox())
        .args(["--jobs", "2", "-r"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(ExitStatus::StdoutClosed.code()),
        "{err}"
    );
    assert!(
        !err.contains("cannot write"),
        "a closed pipe is not an error: {err}"
    );
    let stored = env.sandbox.objects().len();
    assert!(stored < 50, "new files stopped: {stored} stored");

    // Every file that was sent is in the journal as completed; the rest were never claimed.
    let rows = env.store().history(&Default::default()).unwrap();
    let completed = rows.iter().filter(|r| r["step"] == "completed").count();
    assert_eq!(completed, stored, "{rows:?}");
    // The next run sends exactly the rest.
    env.cmd().arg("-r").arg(&dir).finish(ExitStatus::Success);
    assert_eq!(env.sandbox.objects().len(), 50);
}

#[test]
fn rate_paces_the_api_calls_of_a_run() {
    let env = Env::new();
    let files: Vec<_> = (0..6)
        .map(|i| env.file(&format!("r{i}.pdf"), &pdf(100 + i)))
        .collect();
    // 1 token + 6 upload URLs + 6 confirms = 13 calls; 60/min allows a burst of 6 then one a
    // second, so the run cannot take less than about 7 s.
    let started = Instant::now();
    let out = env
        .cmd()
        .args(["--rate", "60/min", "--jobs", "6"])
        .args(&files)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Success.code()),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.sandbox.objects().len(), 6);
    assert!(took >= Duration::from_secs(6), "paced: {took:?}");

    env.cmd()
        .args(["--rate", "fast"])
        .arg(&files[0])
        .finish(ExitStatus::Usage);
}

/// Sixty files of one name from sixty folders, moved into one folder sixteen at a time: each
/// lands under its own name, byte-exact, and every record's `movedTo` is that file.
#[test]
fn files_of_one_name_moved_into_one_folder_at_once_all_survive() {
    let env = Env::new();
    let inbox = env.dir.path().join("in");
    let sent = env.dir.path().join("sent");
    let mut sources = std::collections::HashMap::new();
    for i in 0..60 {
        let src = inbox.join(format!("d{i:02}/report.pdf"));
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        let body = pdf(1000 + i);
        std::fs::write(&src, &body).unwrap();
        sources.insert(src.display().to_string(), body);
    }
    // Named one by one: a file named on the command line has no walked folder to keep, so all
    // sixty go into `sent` itself at once.
    let out = env
        .cmd()
        .args(["--jobs", "16", "--move-to"])
        .arg(&sent)
        .args(sources.keys())
        .finish(ExitStatus::Success);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 60);
    let mut targets = std::collections::HashSet::new();
    for r in &recs {
        let to = std::path::PathBuf::from(r["movedTo"].as_str().unwrap_or_else(|| panic!("{r}")));
        let body = &sources[r["path"].as_str().unwrap()];
        assert_eq!(&std::fs::read(&to).unwrap(), body, "{}", to.display());
        assert!(targets.insert(to), "two records name one file");
        assert!(!std::path::Path::new(r["path"].as_str().unwrap()).exists());
    }
    assert_eq!(std::fs::read_dir(&sent).unwrap().count(), 60);
}

/// A same-size rewrite during the confirm, with its modification time put back, is not the
/// uploaded file: `--remove-source-files` leaves it (its change time moved).
#[test]
fn a_same_size_rewrite_during_the_confirm_is_not_removed() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(5000));
    env.sandbox.faults().pause = vec![gcupload::sandbox::Pause::new("confirm", 1500)];
    let child = env.spawn(&["--remove-source-files".as_ref(), f.as_os_str()]);
    wait_paused(&env, "confirm", Duration::from_secs(30));
    let modified = std::fs::metadata(&f).unwrap().modified().unwrap();
    let mut rewritten = pdf(5000);
    rewritten[4000] ^= 0xff;
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    std::io::Write::write_all(&mut &file, &rewritten).unwrap();
    file.set_modified(modified).unwrap();
    drop(file);
    let out = child.wait_with_output().unwrap();
    expect_status(&out, ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED");
    assert!(r.get("removed").is_none(), "{r}");
    assert!(r["moveError"].as_str().unwrap().contains("changed"), "{r}");
    assert_eq!(
        std::fs::read(&f).unwrap(),
        rewritten,
        "the rewrite is still there"
    );
}

/// A completion the journal cannot keep (here a write refused by the database, as a full disk
/// or a lock held past its timeout would) leaves the file where it is; the next run finishes it
/// under the same event id, so the receiver sees one event (one idempotency key), then moves it.
#[test]
fn a_file_is_moved_only_once_its_completion_is_journaled() {
    let env = Env::new();
    let f = env.file("a.pdf", &pdf(3000));
    let sent = env.dir.path().join("sent");
    env.sandbox.faults().pause = vec![gcupload::sandbox::Pause::new("confirm", 1000)];
    let child = env.spawn(&["--move-to".as_ref(), sent.as_os_str(), f.as_os_str()]);
    wait_paused(&env, "confirm", Duration::from_secs(30));
    let db = rusqlite::Connection::open(env.outbox().join("state.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_completed BEFORE UPDATE OF step ON uploads \
         WHEN NEW.step = 'completed' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(ExitStatus::Success.code()));
    let first = &records(&out.stdout)[0];
    assert_eq!(first["action"], "FILE_UPLOAD_COMPLETED", "{first}");
    assert!(first.get("movedTo").is_none(), "{first}");
    let why = first["moveError"].as_str().unwrap();
    assert!(why.contains("could not be journaled"), "{why}");
    assert!(f.exists() && !sent.exists(), "the file stays in place");

    db.execute_batch("DROP TRIGGER refuse_completed").unwrap();
    env.sandbox.faults().pause.clear();
    let out = env
        .cmd()
        .arg("--move-to")
        .arg(&sent)
        .arg(&f)
        .finish(ExitStatus::Success);
    let second = &records(&out.stdout)[0];
    assert_eq!(second["eventId"], first["eventId"], "{second}");
    assert_eq!(second["fileId"], first["fileId"]);
    assert_eq!(second["movedTo"], sent.join("a.pdf").display().to_string());
    assert!(!f.exists());
    assert_eq!(env.sandbox.objects().len(), 1, "uploaded once");
    let keys: std::collections::HashSet<_> = env
        .sandbox
        .webhooks()
        .iter()
        .map(|w| w["idempotencyKey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 1, "one event for one upload: {keys:?}");
}

/// Inputs that feed themselves are refused before anything is sent: a `--move-to` folder that a
/// glob reaches, a state directory inside the walked tree. A glob that cannot reach the folder
/// is fine.
#[test]
fn a_move_to_or_state_dir_the_inputs_reach_is_refused() {
    let env = Env::new();
    let inbox = env.dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("a.pdf"), pdf(100)).unwrap();
    let refused = |out: std::process::Output, what: &str| {
        expect_status(&out, ExitStatus::Usage);
        let err = stderr(&out);
        assert!(
            err.contains(what) && err.contains("inside the input"),
            "{err}"
        );
        let recs = records(&out.stdout);
        assert_eq!(recs.len(), 1, "every file still gets its record");
        assert_eq!(recs[0]["action"], "FILE_UPLOAD_FAILED");
    };
    let out = env
        .cmd()
        .args(["-r", "i[n]", "--move-to", "in/sent"])
        .output()
        .unwrap();
    refused(out, "--move-to in/sent");
    env.cmd()
        .args(["in/*/*.pdf", "in/a.pdf", "--move-to", "in/sent"])
        .finish(ExitStatus::Usage);
    let out = env
        .cmd()
        .env("GCUPLOAD_STATE_DIR", inbox.join("state"))
        .args(["-r", "in"])
        .output()
        .unwrap();
    refused(out, "state directory");
    // A hidden state directory is reached only by a walk that enters hidden folders.
    let out = env
        .cmd()
        .env("GCUPLOAD_STATE_DIR", inbox.join(".state"))
        .args(["-r", "--hidden", "in"])
        .output()
        .unwrap();
    refused(out, "state directory");
    assert!(env.sandbox.objects().is_empty());
    let out = env
        .cmd()
        .env("GCUPLOAD_STATE_DIR", inbox.join(".state"))
        .args(["-r", "in"])
        .finish(ExitStatus::Success);
    assert_eq!(
        records(&out.stdout).len(),
        1,
        "a.pdf alone, none of the store's files"
    );
    assert!(inbox.join(".state/state.db").exists());

    // A pattern that matches only the folder's own files does not reach into a subfolder.
    env.cmd()
        .args(["in/*.pdf", "--move-to", "in/sent"])
        .finish(ExitStatus::Success);
    assert!(inbox.join("sent/a.pdf").exists());
}
