//! The state store ("Runs remember"): the journal makes a re-run skip what was sent, a killed
//! run resume without sending twice, overlapping runs share the files, and the webhook outbox
//! lives in the same SQLite file. Every test runs the real binary against the sandbox and checks
//! the end state: objects stored (with their SHA-256), records, webhooks, messages, exit codes,
//! and what `gcupload history` says.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use gcupload::ExitStatus;
use gcupload::sandbox::{Inject, Pause};
use serde_json::Value;

/// How long a pause holds a request: the client is killed well before it ends.
pub(crate) const HOLD_MS: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Route {
    External,
    Conversation,
}

impl Route {
    fn cmd(self, env: &Env) -> assert_cmd::Command {
        match self {
            Route::External => env.cmd(),
            Route::Conversation => env.conversation_cmd(),
        }
    }

    /// The route's environment on a plain `std::process::Command` (for background runs), the
    /// same as [`Route::cmd`]'s: nothing inherited, the test's directory and state directory.
    fn background(self, env: &Env) -> std::process::Command {
        let mut c = env.std_cmd();
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self == Route::Conversation {
            c.env_remove("EXTERNAL_CONTACT_ID")
                .env("GENESYS_CONVERSATION_ID", env.sandbox.conversation_id())
                .env("GENESYS_COMMUNICATION_ID", env.sandbox.communication_id());
        }
        c
    }

    pub(crate) fn spawn(self, env: &Env, args: &[&OsStr]) -> Child {
        self.background(env).args(args).spawn().unwrap()
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// `gcupload history ARGS`: exit 0 and one JSON object per line.
fn history(env: &Env, args: &[&OsStr]) -> Vec<Value> {
    let out = env.bare_cmd().arg("history").args(args).output().unwrap();
    assert_eq!(code(&out), Some(0), "history {args:?}: {}", stderr(&out));
    std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn history_str(env: &Env, args: &[&str]) -> Vec<Value> {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    history(env, &args)
}

/// The path as the journal keeps it (absolute, canonical).
fn journaled(p: &Path) -> String {
    std::fs::canonicalize(p).unwrap().display().to_string()
}

/// Waits until a pause at `point` has begun, then kills the client (SIGKILL) and reaps it: a
/// zombie would still answer `kill(pid, 0)`. Returns the killed run's output.
pub(crate) fn kill_when_paused(env: &Env, point: &str, mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.sandbox.paused(point) == 0 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the client ended ({:?}) before {point}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            );
        }
        assert!(Instant::now() < deadline, "no pause at {point} began");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(env.sandbox.paused(point), 1);
    out
}

/// Holds the sandbox at `point`, runs `spawn`'s client into it and kills it there (kill -9);
/// the pause is lifted for what follows. The killed run's output.
pub(crate) fn killed_at(env: &Env, point: &str, spawn: impl FnOnce() -> Child) -> Output {
    env.sandbox.faults().pause = vec![Pause::new(point, HOLD_MS)];
    let out = kill_when_paused(env, point, spawn());
    env.sandbox.faults().pause.clear();
    out
}

/// Requests the sandbox answered whose path ends with `suffix` (and method), with the status.
fn seen(env: &Env, method: &str, suffix: &str) -> Vec<(String, u16)> {
    env.sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .map(|r| (r.path, r.status))
        .collect()
}

/// The file id in an object key: `external/{contact}/{id}/{name}`, `conversation/{conv}/{id}/{name}`.
fn key_id(key: &str) -> String {
    key.split('/').nth(2).unwrap().to_string()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 1. Re-running over what was sent
// ---------------------------------------------------------------------------------------------

/// `in/` with three files; their paths and contents.
fn three_files(env: &Env) -> Vec<(PathBuf, Vec<u8>)> {
    let root = env.dir.path().join("in");
    let files = vec![
        (root.join("a.pdf"), pdf(4000)),
        (root.join("b.png"), png(5000)),
        (root.join("sub/c.pdf"), pdf(6000)),
    ];
    for (p, b) in &files {
        write(p, b);
    }
    files
}

fn run_dir(env: &Env, extra: &[&str]) -> (Output, Vec<Value>) {
    let out = env
        .cmd()
        .args(extra)
        .args(["--recursive", "in"])
        .output()
        .unwrap();
    let recs = records(&out.stdout);
    (out, recs)
}

/// The first run: all three completed, stored byte-exact, one webhook each.
fn first_run(env: &Env, files: &[(PathBuf, Vec<u8>)]) -> Vec<Value> {
    let (out, recs) = run_dir(env, &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(recs.len(), 3);
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 3);
    for (p, bytes) in files {
        let name = p.file_name().unwrap().to_str().unwrap();
        let r = by_name(&recs, name);
        assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
        let o = objects
            .iter()
            .find(|o| key_id(&o.key) == r["fileId"].as_str().unwrap())
            .unwrap();
        assert_eq!((o.size, &o.sha256), (bytes.len() as u64, &sha256(bytes)));
    }
    assert_eq!(env.sandbox.webhooks().len(), 3);
    recs
}

#[test]
fn a_rerun_of_a_directory_skips_every_file_with_the_earlier_upload() {
    let env = Env::new();
    let files = three_files(&env);
    let first = first_run(&env, &files);
    let urls_before = seen(&env, "POST", "/files").len();

    let (out, recs) = run_dir(&env, &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(recs.len(), 3, "one record per file");
    for f in &first {
        let name = f["fileName"].as_str().unwrap();
        let r = by_name(&recs, name);
        assert_eq!(r["action"], "FILE_UPLOAD_SKIPPED", "{r}");
        assert_eq!(r["skipReason"], "already-uploaded", "{r}");
        assert_eq!(r["fileId"], f["fileId"], "{r}");
        assert_eq!(r["uploadedEventId"], f["eventId"], "{r}");
        assert_eq!(r["integrityHash"], f["integrityHash"]);
        let at = r["uploadedAt"].as_str().expect("uploadedAt");
        assert!(
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
            "uploadedAt is RFC 3339: {at}"
        );
        assert_ne!(r["eventId"], f["eventId"], "a skip is an event of its own");
        assert!(r.get("webhook").is_none(), "no webhook for a skip: {r}");
    }
    assert_eq!(env.sandbox.objects().len(), 3, "nothing stored again");
    assert_eq!(
        seen(&env, "POST", "/files").len(),
        urls_before,
        "no URL asked"
    );
    assert_eq!(env.sandbox.webhooks().len(), 3, "no webhook sent");

    // A dry run over the sent directory says each would be skipped, and uploads nothing.
    let (out, recs) = run_dir(&env, &["--dry-run"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r["action"], "FILE_UPLOAD_PLANNED", "{r}");
        assert_eq!(r["wouldSkip"], true, "{r}");
    }
    assert_eq!(env.sandbox.objects().len(), 3);
    assert_eq!(seen(&env, "POST", "/files").len(), urls_before);
    assert_eq!(env.sandbox.webhooks().len(), 3);
}

#[test]
fn force_and_a_changed_file_upload_again_and_only_what_changed() {
    let env = Env::new();
    let mut files = three_files(&env);
    let first = first_run(&env, &files);

    // b.png gets new content: only it is uploaded; a dry run says so first.
    let changed = png(7000);
    write(&files[1].0, &changed);
    files[1].1 = changed.clone();
    let (out, recs) = run_dir(&env, &["--dry-run"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(by_name(&recs, "a.pdf")["wouldSkip"], true);
    assert!(by_name(&recs, "b.png").get("wouldSkip").is_none());
    assert_eq!(env.sandbox.objects().len(), 3);

    let (out, recs) = run_dir(&env, &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(by_name(&recs, "a.pdf")["action"], "FILE_UPLOAD_SKIPPED");
    assert_eq!(by_name(&recs, "c.pdf")["action"], "FILE_UPLOAD_SKIPPED");
    let b = by_name(&recs, "b.png");
    assert_eq!(b["action"], "FILE_UPLOAD_COMPLETED", "{b}");
    assert_ne!(b["fileId"], by_name(&first, "b.png")["fileId"]);
    assert!(
        b.get("resumed").is_none(),
        "new content is a new upload: {b}"
    );
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 4);
    let new = objects
        .iter()
        .find(|o| key_id(&o.key) == b["fileId"].as_str().unwrap())
        .unwrap();
    assert_eq!(new.sha256, sha256(&changed));
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 4);
    assert_eq!(hooks[3]["idempotencyKey"], b["eventId"]);

    // --force sends all three again: three new objects, three new events.
    let (out, recs) = run_dir(&env, &["--force"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(recs.len(), 3);
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 7);
    for (p, bytes) in &files {
        let r = by_name(&recs, p.file_name().unwrap().to_str().unwrap());
        assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
        let o = objects
            .iter()
            .find(|o| key_id(&o.key) == r["fileId"].as_str().unwrap())
            .expect("a new object");
        assert_eq!(o.sha256, sha256(bytes));
    }
    assert_eq!(env.sandbox.webhooks().len(), 7);

    // After --force, a plain re-run skips again, naming the forced upload.
    let (out, again) = run_dir(&env, &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    for r in &again {
        assert_eq!(r["action"], "FILE_UPLOAD_SKIPPED", "{r}");
        let forced = by_name(&recs, r["fileName"].as_str().unwrap());
        assert_eq!(r["fileId"], forced["fileId"]);
        assert_eq!(r["uploadedEventId"], forced["eventId"]);
    }
    assert_eq!(env.sandbox.objects().len(), 7);
}

/// How many files a `-vv` run skipped by their stamp, without reading them.
fn skipped_unread(out: &Output) -> usize {
    stderr(out).matches("skipped without reading it").count()
}

#[test]
fn an_unchanged_file_is_skipped_unread_and_a_rewrite_with_its_time_restored_is_read() {
    let env = Env::new();
    let files = three_files(&env);
    let first = first_run(&env, &files);

    // Nothing changed: all three are known by their stamp and none is read.
    let (out, recs) = run_dir(&env, &["-vv"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(skipped_unread(&out), 3, "{}", stderr(&out));
    for r in &recs {
        let f = by_name(&first, r["fileName"].as_str().unwrap());
        assert_eq!(r["action"], "FILE_UPLOAD_SKIPPED", "{r}");
        assert_eq!(r["fileId"], f["fileId"]);
        assert_eq!(r["uploadedEventId"], f["eventId"]);
        assert_eq!(r["integrityHash"], f["integrityHash"]);
        assert_eq!(r["size"], f["size"]);
        assert_eq!(r["contentType"], f["contentType"]);
    }

    // a.pdf rewritten in place, same size, its modification time put back: its change time
    // still moved, so it is read, and its new content is uploaded.
    let a = &files[0].0;
    let mtime = std::fs::metadata(a).unwrap().modified().unwrap();
    let rewritten = flipped(&files[0].1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(a)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &rewritten))
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(a)
        .and_then(|f| f.set_modified(mtime))
        .unwrap();
    assert_eq!(std::fs::metadata(a).unwrap().modified().unwrap(), mtime);
    // c.pdf touched, content unchanged: read again, still skipped as uploaded.
    let c = &files[2].0;
    std::fs::File::options()
        .write(true)
        .open(c)
        .and_then(|f| f.set_modified(mtime + Duration::from_secs(5)))
        .unwrap();
    let (out, recs) = run_dir(&env, &["-vv"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(skipped_unread(&out), 1, "only b.png: {}", stderr(&out));
    let new_a = by_name(&recs, "a.pdf");
    assert_eq!(new_a["action"], "FILE_UPLOAD_COMPLETED", "{new_a}");
    assert_eq!(new_a["integrityHash"], sha256(&rewritten));
    assert!(
        env.sandbox
            .objects()
            .iter()
            .any(|o| o.sha256 == sha256(&rewritten))
    );
    assert_eq!(by_name(&recs, "c.pdf")["skipReason"], "already-uploaded");
    assert_eq!(env.sandbox.objects().len(), 4);

    // Each read refreshed what the journal knows: the next run reads nothing.
    let (out, recs) = run_dir(&env, &["-vv"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(skipped_unread(&out), 3, "{}", stderr(&out));
    assert_eq!(by_name(&recs, "a.pdf")["fileId"], new_a["fileId"]);
    assert_eq!(env.sandbox.objects().len(), 4);
}

/// The same bytes with one in the middle changed (same length, same type).
fn flipped(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[bytes.len() / 2] ^= 0x55;
    v
}

#[test]
fn no_state_sends_again_and_journals_nothing() {
    let env = Env::new();
    let files = three_files(&env);
    first_run(&env, &files);
    let rows = history_str(&env, &[]).len();
    assert_eq!(rows, 3);

    let (out, recs) = run_dir(&env, &["--no-state"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(recs.len(), 3);
    assert!(recs.iter().all(|r| r["action"] == "FILE_UPLOAD_COMPLETED"));
    assert_eq!(env.sandbox.objects().len(), 6);
    assert_eq!(env.sandbox.webhooks().len(), 6);
    assert_eq!(
        history_str(&env, &[]).len(),
        rows,
        "--no-state journals nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. kill -9 at each step, then re-run
// ---------------------------------------------------------------------------------------------

/// What the journal may say after a kill at `point`: the row's step. "confirm sent" is queued,
/// not waited for (`Store::passed`): a kill can beat its commit and leave the row at
/// "url-issued", from which the re-run asks the platform whether the upload landed (the rest of
/// the test checks that the end state is the same).
fn steps_after_kill(point: &str) -> &'static [&'static str] {
    match point {
        "token" | "request-url" => &["claimed"],
        "put-start" | "put-mid" | "put-stored" => &["url-issued"],
        "confirm" => &["confirm-sent", "url-issued"],
        "send-start" | "send" => &["send-started"],
        "webhook" => &["completed"],
        _ => unreachable!("{point}"),
    }
}

/// Uploads one file on `route`, kills the client (SIGKILL) while the sandbox holds `point`,
/// checks `history --pending`, re-runs normally and checks the end state.
fn killed_then_rerun(route: Route, point: &str) {
    killed_then_rerun_in(&Env::new(), route, point);
}

fn killed_then_rerun_in(env: &Env, route: Route, point: &str) {
    let bytes = pdf(if point == "put-mid" { 2 << 20 } else { 300_000 });
    let path = env.file("held.pdf", &bytes);
    let killed = killed_at(env, point, || route.spawn(env, &[path.as_os_str()]));
    assert!(
        records(&killed.stdout).is_empty(),
        "{point}: killed before its record"
    );

    // Between the kill and the re-run, the journal says what a re-run will do.
    let pending = history_str(env, &["--pending"]);
    assert_eq!(pending.len(), 1, "{point}: {pending:?}");
    let row = &pending[0];
    assert_eq!(row["path"], journaled(&path), "{point}: {row}");
    let step = row["step"].as_str().unwrap_or_default();
    assert!(steps_after_kill(point).contains(&step), "{point}: {row}");
    assert_eq!(row["pending"], true);
    assert!(
        row["next"].as_str().is_some_and(|n| !n.is_empty()),
        "{point}: {row}"
    );
    assert_eq!(row["sha256"], sha256(&bytes));

    let started = Instant::now();
    let out = route.cmd(env).arg(&path).output().unwrap();
    let took = started.elapsed();
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1, "{point}: {}", stderr(&out));
    let r = &recs[0];

    // Stored exactly once, byte-exact.
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 1, "{point}: {objects:?}");
    assert_eq!(
        (objects[0].size, &objects[0].sha256),
        (bytes.len() as u64, &sha256(&bytes)),
        "{point}"
    );
    let stored_id = key_id(&objects[0].key);

    assert_eq!(code(&out), Some(0), "{point}: {}", stderr(&out));
    // Well under the 60 s lease: a dead claimant is not waited for.
    assert!(
        took < Duration::from_secs(20),
        "{point}: re-run took {took:?}"
    );
    let hooks = env.sandbox.webhooks();
    assert_eq!(
        hooks.len(),
        1,
        "{point}: one event across both runs: {hooks:?}"
    );
    assert_eq!(hooks[0]["body"]["payload"]["fileId"], stored_id.as_str());
    assert_eq!(
        hooks[0]["body"]["payload"]["action"],
        "FILE_UPLOAD_COMPLETED"
    );
    if point == "webhook" {
        // Completed by the killed run; the re-run's start-up flush delivers its owed event
        // (the journal moved it to the outbox), and the file itself is skipped.
        assert_eq!(r["action"], "FILE_UPLOAD_SKIPPED", "{r}");
        assert_eq!(r["skipReason"], "already-uploaded", "{r}");
        assert_eq!(r["uploadedEventId"], hooks[0]["idempotencyKey"], "{r}");
        assert_eq!(
            hooks[0]["body"]["payload"]["eventId"],
            hooks[0]["idempotencyKey"]
        );
    } else {
        assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
        assert_eq!(hooks[0]["idempotencyKey"], r["eventId"]);
        assert_eq!(r["webhook"]["delivered"], true, "{r}");
        if point == "request-url" || point == "token" {
            // Nothing was journaled past the claim: a fresh upload.
            assert!(r.get("resumed").is_none(), "{r}");
        } else {
            assert_eq!(r["resumed"], true, "{point}: {r}");
        }
    }
    assert_eq!(r["fileId"], stored_id.as_str(), "{point}: {r}");
    assert_eq!(r["integrityHash"], sha256(&bytes));

    match route {
        Route::External => {
            // Confirmed once: at most one successful upload-complete per file id, and the
            // stored object's one among them.
            let confirms = seen(env, "POST", "/upload-complete");
            let mut ok: HashMap<String, usize> = HashMap::new();
            for (p, s) in &confirms {
                if (200..300).contains(s) {
                    *ok.entry(p.split('/').nth_back(1).unwrap().to_string())
                        .or_default() += 1;
                }
            }
            assert!(ok.values().all(|n| *n == 1), "{point}: {confirms:?}");
            assert_eq!(ok.get(&stored_id), Some(&1), "{point}: {confirms:?}");
        }
        Route::Conversation => {
            let messages = env.sandbox.messages();
            assert_eq!(messages.len(), 1, "{point}: one message: {messages:?}");
            assert_eq!(
                messages[0]["mediaIds"][0].as_str(),
                Some(stored_id.as_str())
            );
            // The completed record (this run's, or the killed run's in the event) names it.
            let completed = if point == "webhook" {
                &hooks[0]["body"]["payload"]
            } else {
                r
            };
            assert_eq!(completed["messageId"], messages[0]["id"], "{completed}");
            if point.starts_with("send") {
                // The re-run checked the conversation instead of giving up: found there (send),
                // or not there and sent once (send-start).
                assert_eq!(r["sendChecked"], true, "{point}: {r}");
                let posted = seen(env, "POST", "/messages").len();
                assert_eq!(posted, usize::from(point == "send-start"), "{point}");
            }
            let gets = seen(env, "GET", &format!("/media/{stored_id}"));
            assert!(gets.iter().any(|(_, s)| *s == 200), "{point}: {gets:?}");
        }
    }
    assert!(
        history_str(env, &["--pending"]).is_empty(),
        "{point}: nothing left to do"
    );
    // And a third run has nothing to do.
    let out = route.cmd(env).arg(&path).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_SKIPPED");
    assert_eq!(env.sandbox.objects().len(), 1);
    assert_eq!(env.sandbox.webhooks().len(), 1);
    assert!(env.sandbox.messages().len() <= 1);
}

#[test]
fn external_contact_killed_at_request_url_then_rerun() {
    killed_then_rerun(Route::External, "request-url");
}

#[test]
fn external_contact_killed_at_put_start_then_rerun() {
    killed_then_rerun(Route::External, "put-start");
}

#[test]
fn external_contact_killed_at_put_mid_then_rerun() {
    killed_then_rerun(Route::External, "put-mid");
}

/// Issue 19: the resume's confirm finds no object, and says so with whichever status the
/// gateway uses (the contract leaves it open): the file is uploaded again, stored once.
fn killed_mid_put_then_absent_confirm(status: u16) {
    let env = Env::new();
    env.sandbox.faults().absent_confirm_status = status;
    killed_then_rerun_in(&env, Route::External, "put-mid");
    let confirms = seen(&env, "POST", "/upload-complete");
    assert_eq!(confirms[0].1, status, "the resume's confirm: {confirms:?}");
}

#[test]
fn external_contact_killed_mid_put_confirm_400_upload_not_found_uploads_again() {
    killed_mid_put_then_absent_confirm(400);
}

#[test]
fn external_contact_killed_mid_put_confirm_404_upload_not_found_uploads_again() {
    killed_mid_put_then_absent_confirm(404);
}

#[test]
fn external_contact_killed_mid_put_confirm_409_upload_not_found_uploads_again() {
    killed_mid_put_then_absent_confirm(409);
}

/// Issue 19: a resumed conversation upload whose media poll says the media is gone (or marks
/// it `invalid` although its PUT was never answered) did not land: it is uploaded again on a
/// fresh URL and sent once (before: the resume gave up, exit 5).
fn conversation_killed_mid_put_then_unlanded_media(variant: &str, status: u16) {
    let env = Env::new();
    env.sandbox.faults().unlanded_media = variant.into();
    killed_then_rerun_in(&env, Route::Conversation, "put-mid");
    let polls: Vec<u16> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/messages/media/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(polls.first(), Some(&status), "the resume's poll: {polls:?}");
    assert_eq!(env.sandbox.messages().len(), 1, "sent once");
}

#[test]
fn conversation_killed_mid_put_media_poll_404_uploads_again() {
    conversation_killed_mid_put_then_unlanded_media("404", 404);
}

#[test]
fn conversation_killed_mid_put_media_poll_410_uploads_again() {
    conversation_killed_mid_put_then_unlanded_media("410", 410);
}

#[test]
fn conversation_killed_mid_put_media_poll_invalid_uploads_again() {
    conversation_killed_mid_put_then_unlanded_media("invalid", 200);
}

#[test]
fn external_contact_killed_at_put_stored_then_rerun() {
    killed_then_rerun(Route::External, "put-stored");
}

#[test]
fn external_contact_killed_at_confirm_then_rerun() {
    killed_then_rerun(Route::External, "confirm");
}

#[test]
fn external_contact_killed_at_webhook_then_rerun() {
    killed_then_rerun(Route::External, "webhook");
}

#[test]
fn conversation_killed_at_request_url_then_rerun() {
    killed_then_rerun(Route::Conversation, "request-url");
}

#[test]
fn conversation_killed_at_put_start_then_rerun() {
    killed_then_rerun(Route::Conversation, "put-start");
}

#[test]
fn conversation_killed_at_put_mid_then_rerun() {
    killed_then_rerun(Route::Conversation, "put-mid");
}

#[test]
fn conversation_killed_at_put_stored_then_rerun() {
    killed_then_rerun(Route::Conversation, "put-stored");
}

#[test]
fn conversation_killed_at_confirm_then_rerun() {
    killed_then_rerun(Route::Conversation, "confirm");
}

/// Issue 13 item 10: the message went out before the kill; the re-run finds it in the
/// conversation and completes (before, it failed with "may have been sent", exit 6).
#[test]
fn conversation_killed_at_send_then_rerun_finds_the_message_and_completes() {
    killed_then_rerun(Route::Conversation, "send");
}

/// The journal says `send-started` but the message never reached the platform: the re-run
/// finds nothing in the conversation and sends it, once.
#[test]
fn conversation_killed_before_the_send_arrived_then_rerun_sends_it_once() {
    killed_then_rerun(Route::Conversation, "send-start");
}

#[test]
fn conversation_killed_at_webhook_then_rerun() {
    killed_then_rerun(Route::Conversation, "webhook");
}

// ---------------------------------------------------------------------------------------------
// 3. Two runs at once over the same files
// ---------------------------------------------------------------------------------------------

#[test]
fn two_concurrent_runs_over_the_same_100_files_upload_each_exactly_once() {
    let env = Env::new();
    {
        let mut f = env.sandbox.faults();
        f.put_delay_ms = 30;
        f.api_latency_ms = 10;
    }
    let root = env.dir.path().join("many");
    let files: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| {
            let name = format!("f{i:03}.pdf");
            let bytes = pdf(600 + i);
            write(&root.join(&name), &bytes);
            (name, bytes)
        })
        .collect();
    let args: Vec<&OsStr> = ["--jobs", "8", "--recursive", "many"]
        .iter()
        .map(OsStr::new)
        .collect();
    // The store exists already (as after any earlier run): two runs creating it at once is
    // `two_runs_starting_at_once_on_a_new_state_directory_both_open_it`.
    drop(env.store());
    // Both started before either is waited on; each drained on its own thread.
    let runs: Vec<Child> = (0..2).map(|_| Route::External.spawn(&env, &args)).collect();
    let outs = outputs_of(runs);

    let mut completed: HashMap<String, Value> = HashMap::new();
    let mut claimed_skips = 0;
    for (n, out) in outs.iter().enumerate() {
        assert_eq!(code(out), Some(0), "run {n}: {}", stderr(out));
        let recs = records(&out.stdout);
        assert_eq!(recs.len(), 100, "run {n}: one record per file");
        let names: HashSet<&str> = recs
            .iter()
            .map(|r| r["fileName"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 100, "run {n}: each file once");
        for r in &recs {
            match r["action"].as_str().unwrap() {
                "FILE_UPLOAD_COMPLETED" => {
                    let name = r["fileName"].as_str().unwrap().to_string();
                    assert!(
                        completed.insert(name, r.clone()).is_none(),
                        "completed by both runs: {r}"
                    );
                }
                "FILE_UPLOAD_SKIPPED" => match r["skipReason"].as_str().unwrap() {
                    "claimed-by-another-run" => {
                        let by = r["claimedBy"].as_str().expect("claimedBy");
                        assert!(by.starts_with("pid "), "{r}");
                        claimed_skips += 1;
                    }
                    "already-uploaded" => assert!(r["uploadedEventId"].is_string(), "{r}"),
                    other => panic!("skip reason {other}: {r}"),
                },
                other => panic!("run {n}: {other}: {r}"),
            }
        }
    }
    assert_eq!(
        completed.len(),
        100,
        "every file completed by exactly one run"
    );
    assert!(claimed_skips > 0, "the runs overlapped");

    // Stored exactly once each, byte-exact, under the id the completing run reported.
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 100);
    for (name, bytes) in &files {
        let r = &completed[name];
        let mine: Vec<_> = objects
            .iter()
            .filter(|o| o.sha256 == sha256(bytes))
            .collect();
        assert_eq!(mine.len(), 1, "{name}");
        assert_eq!(
            key_id(&mine[0].key),
            r["fileId"].as_str().unwrap(),
            "{name}"
        );
    }

    // 100 events, none twice, each a completed record's.
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 100);
    let keys: HashSet<&str> = hooks
        .iter()
        .map(|h| h["idempotencyKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 100, "no duplicate idempotency key");
    let events: HashSet<&str> = completed
        .values()
        .map(|r| r["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(keys, events);

    // The journal: one row per file, all done, no lease left behind.
    let rows = history_str(&env, &[]);
    assert_eq!(rows.len(), 100, "one journal row per file");
    for row in &rows {
        assert_eq!(row["step"], "completed", "{row}");
        assert_eq!(row["webhook"], "delivered", "{row}");
        assert!(row.get("lease").is_none(), "{row}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Leases
// ---------------------------------------------------------------------------------------------

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_dead_runs_lease_is_taken_over_at_once() {
    let env = Env::new();
    let bytes = pdf(200_000);
    let path = env.file("held.pdf", &bytes);
    env.sandbox.faults().pause = vec![Pause::new("put-start", HOLD_MS)];
    let child = Route::External.spawn(&env, &[path.as_os_str()]);
    let pid = child.id();
    kill_when_paused(&env, "put-start", child);
    env.sandbox.faults().pause.clear();

    // The dead run's lease is still in force by the clock.
    let rows = history_str(&env, &["--pending"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["lease"]["pid"], pid, "{}", rows[0]);
    let until = rows[0]["lease"]["untilMs"].as_i64().unwrap();
    assert!(until > now_ms() + 30_000, "{}", rows[0]);

    // Same host, dead pid: taken over now, not when the lease runs out.
    let started = Instant::now();
    let out = env.cmd().arg(&path).output().unwrap();
    let took = started.elapsed();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        took < Duration::from_secs(10),
        "the re-run waited for the lease: {took:?}"
    );
    let recs = records(&out.stdout);
    assert_eq!(recs[0]["action"], "FILE_UPLOAD_COMPLETED", "{}", recs[0]);
    assert_eq!(recs[0]["resumed"], true);
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].sha256, sha256(&bytes));
    assert_eq!(key_id(&objects[0].key), recs[0]["fileId"].as_str().unwrap());
    assert_eq!(env.sandbox.webhooks().len(), 1);
    let rows = history_str(&env, &[]);
    assert_eq!(rows.len(), 1, "the same row, resumed: {rows:?}");
    assert!(rows[0].get("lease").is_none(), "released: {}", rows[0]);
}

#[test]
fn a_live_runs_claim_is_skipped_and_it_finishes_the_file() {
    let env = Env::new();
    let bytes = pdf(50_000);
    let path = env.file("busy.pdf", &bytes);
    env.sandbox.faults().pause = vec![Pause::new("put-start", 3000)];
    let a = Route::External.spawn(&env, &[path.as_os_str()]);
    let pid = a.id();
    wait_paused(&env, "put-start", Duration::from_secs(10));

    // While the first run holds the file, a second one skips it and names the holder.
    let out = env.cmd().arg(&path).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_SKIPPED", "{r}");
    assert_eq!(r["skipReason"], "claimed-by-another-run", "{r}");
    assert!(
        r["claimedBy"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pid {pid} on ")),
        "{r}"
    );
    assert!(env.sandbox.objects().is_empty(), "the skip sent nothing");

    let a = a.wait_with_output().unwrap();
    assert_eq!(code(&a), Some(0), "{}", stderr(&a));
    let done = &records(&a.stdout)[0];
    assert_eq!(done["action"], "FILE_UPLOAD_COMPLETED", "{done}");
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].sha256, sha256(&bytes));
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["idempotencyKey"], done["eventId"]);
}

/// Rewrites the lease of the only journal row (a claimant on another machine).
fn set_lease(env: &Env, host: &str, until_ms: i64) {
    crate::leases::set_lease(env, 4242, host, until_ms);
}

#[test]
fn a_lease_held_on_another_host_is_respected_until_it_expires() {
    let env = Env::new();
    let bytes = pdf(30_000);
    let path = env.file("remote.pdf", &bytes);
    killed_at(&env, "put-start", || {
        Route::External.spawn(&env, &[path.as_os_str()])
    });

    // A pid means nothing on another host: only the expiry tells.
    set_lease(&env, "another-host.example", now_ms() + 60_000);
    let out = env.cmd().arg(&path).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let r = &records(&out.stdout)[0];
    assert_eq!(r["skipReason"], "claimed-by-another-run", "{r}");
    assert_eq!(r["claimedBy"], "pid 4242 on another-host.example", "{r}");
    assert!(env.sandbox.objects().is_empty());

    set_lease(&env, "another-host.example", now_ms() - 1);
    let out = env.cmd().arg(&path).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
    assert_eq!(r["resumed"], true, "{r}");
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].sha256, sha256(&bytes));
    assert_eq!(env.sandbox.webhooks().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 5. The JSON-lines outbox of earlier versions
// ---------------------------------------------------------------------------------------------

fn state_dir(env: &Env) -> PathBuf {
    let dir = env.outbox();
    let mut b = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.recursive(true).create(&dir).unwrap();
    dir
}

/// An entry of the old outbox, pointing at a URL that is not the sandbox's.
fn old_entry(id: &str, name: &str) -> Value {
    serde_json::json!({
        "eventId": id,
        "url": "http://127.0.0.1:9/not-the-configured-webhook",
        "body": {
            "event": "genesys.file.uploaded",
            "payload": {"eventId": id, "action": "FILE_UPLOAD_COMPLETED", "fileName": name},
        },
        "queuedAt": "2026-11-20T08:00:00Z",
        "lastError": "the receiver answered HTTP 503",
    })
}

fn quarantine(env: &Env) -> Vec<(String, Vec<u8>, String)> {
    let db = rusqlite::Connection::open(env.outbox().join("state.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT source, content, reason FROM quarantine ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn the_jsonl_outbox_is_imported_once_and_damaged_lines_are_kept_aside() {
    let env = Env::new();
    let dir = state_dir(&env);
    let (id1, id2) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let good1 = old_entry(&id1, "one.pdf");
    let good2 = old_entry(&id2, "two.pdf");
    let full = old_entry(&uuid::Uuid::new_v4().to_string(), "three.pdf").to_string();
    let truncated = full.as_bytes()[..full.len() / 2].to_vec();
    let mut not_utf8 = br#"{"eventId":"caf"#.to_vec();
    not_utf8.extend_from_slice(b"\xe9\xff\xfe");
    not_utf8.extend_from_slice(br#"","url":"http://x","body":{"event":"e","payload":{}}}"#);
    let mut file = Vec::new();
    for line in [
        good1.to_string().into_bytes(),
        truncated.clone(),
        not_utf8.clone(),
        good2.to_string().into_bytes(),
    ] {
        file.extend_from_slice(&line);
        file.push(b'\n');
    }
    std::fs::write(dir.join("webhook-outbox.jsonl"), &file).unwrap();

    let hook = env.sandbox.webhook_url();
    let flush = || {
        env.bare_cmd()
            .env("WEBHOOK_SYNC_URL", hook.as_str())
            .args(["webhook", "flush"])
            .output()
            .unwrap()
    };
    let out = flush();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 delivered"), "{}", stderr(&out));

    // Both good events, to the configured URL, with their ids and bodies as queued.
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(hooks[0]["idempotencyKey"], id1.as_str());
    assert_eq!(hooks[0]["body"], good1["body"]);
    assert_eq!(hooks[1]["idempotencyKey"], id2.as_str());
    assert_eq!(hooks[1]["body"], good2["body"]);

    // The damaged lines are kept, byte for byte; the file is renamed, unchanged.
    let kept = quarantine(&env);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let strip = |b: &[u8]| b.strip_suffix(b"\n").unwrap_or(b).to_vec();
    assert_eq!(strip(&kept[0].1), truncated);
    assert_eq!(strip(&kept[1].1), not_utf8);
    assert!(
        kept.iter()
            .all(|(src, _, why)| src == "webhook-outbox.jsonl" && !why.is_empty())
    );
    assert!(!dir.join("webhook-outbox.jsonl").exists());
    assert_eq!(
        std::fs::read(dir.join("webhook-outbox.jsonl.imported")).unwrap(),
        file
    );

    // A second flush imports nothing again and delivers nothing again.
    let out = flush();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("0 delivered"), "{}", stderr(&out));
    assert_eq!(env.sandbox.webhooks().len(), 2);
    assert_eq!(quarantine(&env).len(), 2);
    assert!(env.queued().is_empty());
}

// ---------------------------------------------------------------------------------------------
// 6. history and its filters
// ---------------------------------------------------------------------------------------------

#[test]
fn history_filters_by_failure_path_time_and_what_is_pending() {
    let env = Env::new();
    let sub = env.dir.path().join("docs");
    let (a, b, c) = (
        sub.join("a.pdf"),
        sub.join("b.pdf"),
        env.dir.path().join("c.pdf"),
    );
    let (ab, bb, cb) = (pdf(3000), pdf(4000), pdf(5000));
    write(&a, &ab);
    write(&b, &bb);
    write(&c, &cb);
    {
        let mut f = env.sandbox.faults();
        // One at a time, in order: b's URL request and c's confirm get a 500 (never retried).
        f.inject = vec![
            Inject {
                after: 1,
                ..Inject::new("request-url", 500, None)
            },
            Inject {
                after: 1,
                ..Inject::new("confirm", 500, None)
            },
        ];
    }
    let out = env
        .cmd()
        .args(["--jobs", "1", "--max-attempts", "1"])
        .args([&a, &b, &c])
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        Some(ExitStatus::Remote.code()),
        "{}",
        stderr(&out)
    );
    let recs = records(&out.stdout);
    assert_eq!(by_name(&recs, "a.pdf")["action"], "FILE_UPLOAD_COMPLETED");
    let rb = by_name(&recs, "b.pdf");
    assert_eq!(
        (&rb["action"], &rb["error"]["stage"]),
        (&"FILE_UPLOAD_FAILED".into(), &"request-url".into()),
        "{rb}"
    );
    let rc = by_name(&recs, "c.pdf");
    assert_eq!(
        (&rc["action"], &rc["error"]["stage"]),
        (&"FILE_UPLOAD_FAILED".into(), &"confirm".into()),
        "{rc}"
    );

    let name = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| r["fileName"].as_str().unwrap().to_string())
            .collect()
    };
    let all = history_str(&env, &[]);
    assert_eq!(name(&all), ["a.pdf", "b.pdf", "c.pdf"], "{all:?}");
    let row = |n: &str| all.iter().find(|r| r["fileName"] == n).unwrap().clone();
    assert_eq!(row("a.pdf")["step"], "completed");
    assert_eq!(row("a.pdf")["fileId"], by_name(&recs, "a.pdf")["fileId"]);
    assert_eq!(row("a.pdf")["eventId"], by_name(&recs, "a.pdf")["eventId"]);
    assert_eq!(row("a.pdf")["sha256"], sha256(&ab));
    assert!(row("a.pdf")["error"].is_null());
    // b failed before anything was sent: closed, a re-run starts it anew.
    assert_eq!(row("b.pdf")["step"], "failed");
    assert!(
        row("b.pdf")["error"].as_str().unwrap().contains("500"),
        "{}",
        row("b.pdf")
    );
    // c failed after its bytes landed: a re-run confirms it.
    assert_eq!(row("c.pdf")["step"], "confirm-sent");
    assert!(row("c.pdf")["error"].is_string());
    for r in &all {
        assert!(r.get("lease").is_none(), "released: {r}");
    }

    assert_eq!(name(&history_str(&env, &["--failed"])), ["b.pdf", "c.pdf"]);
    let only = |p: &Path| name(&history(&env, &[OsStr::new("--path"), p.as_os_str()]));
    assert_eq!(only(&a), ["a.pdf"]);
    assert_eq!(only(&b), ["b.pdf"]);
    assert_eq!(
        only(&sub),
        ["a.pdf", "b.pdf"],
        "a directory: what is below it"
    );
    assert_eq!(
        name(&history(
            &env,
            &[OsStr::new("--path"), OsStr::new("docs/a.pdf")]
        )),
        ["a.pdf"],
        "a relative path is resolved from the current directory"
    );
    assert!(history_str(&env, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    assert_eq!(history_str(&env, &["--since", "2000-01-01"]).len(), 3);
    assert_eq!(
        name(&history_str(
            &env,
            &["--failed", "--path", b.to_str().unwrap()]
        )),
        ["b.pdf"]
    );

    // Pending: only what a re-run resumes (c), with what it would do next.
    let pending = history_str(&env, &["--pending"]);
    assert_eq!(name(&pending), ["c.pdf"], "{pending:?}");
    assert_eq!(pending[0]["next"], "confirm the landed upload");
    assert!(row("a.pdf").get("next").is_none());

    // The re-run does just that: b anew, c confirmed (resumed, the journaled id), a skipped.
    let out = env.cmd().args([&a, &b, &c]).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let again = records(&out.stdout);
    assert_eq!(by_name(&again, "a.pdf")["action"], "FILE_UPLOAD_SKIPPED");
    let b2 = by_name(&again, "b.pdf");
    assert_eq!(b2["action"], "FILE_UPLOAD_COMPLETED", "{b2}");
    assert!(b2.get("resumed").is_none(), "{b2}");
    let c2 = by_name(&again, "c.pdf");
    assert_eq!(c2["action"], "FILE_UPLOAD_COMPLETED", "{c2}");
    assert_eq!(c2["resumed"], true, "{c2}");
    assert_eq!(c2["fileId"], row("c.pdf")["fileId"], "{c2}");
    assert!(history_str(&env, &["--pending"]).is_empty());
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 3, "{objects:?}");
    let hashes: HashSet<String> = objects.into_iter().map(|o| o.sha256).collect();
    assert_eq!(
        hashes,
        [sha256(&ab), sha256(&bb), sha256(&cb)]
            .into_iter()
            .collect()
    );
    assert_eq!(env.sandbox.webhooks().len(), 3);
    // b's failed attempt stays in the journal as its own row; the new one is completed.
    let rows = history_str(&env, &["--path", b.to_str().unwrap()]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0]["step"].as_str(), rows[1]["step"].as_str()),
        (Some("failed"), Some("completed"))
    );
}

// ---------------------------------------------------------------------------------------------
// Bugs found: each test says what should happen; ignored until the client is fixed.
// ---------------------------------------------------------------------------------------------

#[test]
fn external_contact_killed_at_token_then_rerun() {
    killed_then_rerun(Route::External, "token");
}

#[test]

fn force_after_a_kill_at_send_uploads_and_sends_the_file_anew() {
    let env = Env::new();
    let bytes = pdf(20_000);
    let path = env.file("held.pdf", &bytes);
    killed_at(&env, "send", || {
        Route::Conversation.spawn(&env, &[path.as_os_str()])
    });
    // The conversation cannot be read (the client lacks the permission): no check is possible.
    env.sandbox.faults().inject = vec![Inject {
        times: 10,
        ..Inject::new("check", 403, None)
    }];
    let out = env.conversation_cmd().arg(&path).output().unwrap();
    assert_eq!(code(&out), Some(ExitStatus::Network.code()));
    let r = &records(&out.stdout)[0];
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("may have been sent") && message.contains("could not be checked"),
        "{r}"
    );
    assert!(
        r["error"]["hint"].as_str().unwrap().contains("--force"),
        "{r}"
    );
    env.sandbox.faults().inject.clear();

    // The way out the message names: the user accepts a second message.
    let out = env
        .conversation_cmd()
        .arg("--force")
        .arg(&path)
        .output()
        .unwrap();
    let r = &records(&out.stdout)[0];
    assert_eq!(code(&out), Some(0), "{r}\n{}", stderr(&out));
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 2, "uploaded anew: {objects:?}");
    assert!(objects.iter().all(|o| o.sha256 == sha256(&bytes)));
    let messages = env.sandbox.messages();
    assert_eq!(messages.len(), 2, "sent anew: {messages:?}");
    assert_eq!(messages[1]["mediaIds"][0], r["fileId"]);
    assert_eq!(r["messageId"], messages[1]["id"]);
    let hooks = env.sandbox.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["idempotencyKey"], r["eventId"]);
    assert!(history_str(&env, &["--pending"]).is_empty());
}

#[test]

fn overlapping_flushes_deliver_each_queued_event_once() {
    let env = Env::new();
    let files: Vec<PathBuf> = (0..3)
        .map(|i| env.file(&format!("q{i}.pdf"), &pdf(1000 + i)))
        .collect();
    // 3 attempts per event, all refused: the three events are queued.
    env.sandbox.faults().webhook_fail = 9;
    let out = env
        .cmd()
        .arg("--jobs")
        .arg("1")
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let recs = records(&out.stdout);
    assert_eq!(env.queued().len(), 3);
    assert!(env.sandbox.webhooks().is_empty());

    // Flush A is held on its first delivery while flush B runs.
    env.sandbox.faults().pause = vec![Pause::new("webhook", 2000)];
    let hook = env.sandbox.webhook_url();
    let a = std::process::Command::new(assert_cmd::cargo::cargo_bin("gcupload"))
        .env_clear()
        .current_dir(env.dir.path())
        .env("GCUPLOAD_STATE_DIR", env.outbox())
        .env("WEBHOOK_SYNC_URL", hook.as_str())
        .args(["webhook", "flush"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_paused(&env, "webhook", Duration::from_secs(10)); // flush A is delivering
    let b = env
        .bare_cmd()
        .env("WEBHOOK_SYNC_URL", hook.as_str())
        .args(["webhook", "flush"])
        .output()
        .unwrap();
    let a = a.wait_with_output().unwrap();
    assert_eq!(code(&a), Some(0), "{}", stderr(&a));
    assert_eq!(code(&b), Some(0), "{}", stderr(&b));
    assert!(env.queued().is_empty());

    let keys: Vec<String> = env
        .sandbox
        .webhooks()
        .iter()
        .map(|h| h["idempotencyKey"].as_str().unwrap().to_string())
        .collect();
    let expected: HashSet<String> = recs
        .iter()
        .map(|r| r["eventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys.len(),
        3,
        "each queued event delivered once, not once per flush: {keys:?}\nA: {}B: {}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(keys.into_iter().collect::<HashSet<_>>(), expected);
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]

fn history_since_compares_times_with_any_offset() {
    let env = Env::new();
    let f = env.file("s.pdf", &pdf(100));
    let out = env.cmd().arg(&f).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let now = time::OffsetDateTime::now_utc();
    let east = time::UtcOffset::from_hms(5, 0, 0).unwrap();
    let west = time::UtcOffset::from_hms(-5, 0, 0).unwrap();
    // The same instants as Z times behave (checked first), then with offsets.
    let hour = time::Duration::hours(1);
    assert_eq!(
        history_str(&env, &["--since", &rfc3339(now - hour)]).len(),
        1
    );
    assert!(history_str(&env, &["--since", &rfc3339(now + hour)]).is_empty());
    let past_east = rfc3339((now - hour).to_offset(east));
    let future_west = rfc3339((now + hour).to_offset(west));
    assert_eq!(
        history_str(&env, &["--since", &past_east]).len(),
        1,
        "an hour ago, written as {past_east}: the row is newer"
    );
    assert!(
        history_str(&env, &["--since", &future_west]).is_empty(),
        "in an hour, written as {future_west}: the row is older"
    );
}

#[test]

fn history_since_refuses_what_is_not_a_time() {
    let env = Env::new();
    let f = env.file("s.pdf", &pdf(100));
    let out = env.cmd().arg(&f).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    for bad in ["yesterday", "26/11/2026", "now"] {
        let out = env
            .bare_cmd()
            .args(["history", "--since", bad])
            .output()
            .unwrap();
        assert_eq!(
            code(&out),
            Some(ExitStatus::Usage.code()),
            "--since {bad}: stdout {:?}, stderr {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]

fn a_duplicate_within_one_run_is_not_claimed_by_another_run() {
    let env = Env::new();
    let bytes = pdf(5000);
    write(&env.dir.path().join("in/x/report.pdf"), &bytes);
    write(&env.dir.path().join("in/y/report.pdf"), &bytes);
    let child = Route::External.spawn(&env, &["--jobs", "4", "--recursive", "in"].map(OsStr::new));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 2);
    let done: Vec<_> = recs
        .iter()
        .filter(|r| r["action"] == "FILE_UPLOAD_COMPLETED")
        .collect();
    assert_eq!(done.len(), 1, "{recs:?}");
    assert_eq!(env.sandbox.objects().len(), 1);
    let skip = recs
        .iter()
        .find(|r| r["action"] == "FILE_UPLOAD_SKIPPED")
        .unwrap();
    let own = format!("pid {pid} on ");
    assert!(
        !skip["claimedBy"]
            .as_str()
            .is_some_and(|b| b.starts_with(&own)),
        "this run is not another run: {skip}"
    );
}

#[test]

fn force_over_an_upload_killed_before_its_webhook_still_delivers_its_event() {
    let env = Env::new();
    let bytes = pdf(20_000);
    let path = env.file("held.pdf", &bytes);
    killed_at(&env, "webhook", || {
        Route::External.spawn(&env, &[path.as_os_str()])
    });
    let pending = history_str(&env, &["--pending"]);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["next"], "deliver the webhook event");
    let first_event = pending[0]["eventId"].as_str().unwrap().to_string();

    let out = env.cmd().arg("--force").arg(&path).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
    assert_eq!(env.sandbox.objects().len(), 2, "--force uploaded anew");
    // And a plain run afterwards, which --pending says would deliver the first event.
    let out = env.cmd().arg(&path).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));

    // Two uploads reached the platform: the integrator hears of both, once each.
    let keys: Vec<String> = env
        .sandbox
        .webhooks()
        .iter()
        .map(|h| h["idempotencyKey"].as_str().unwrap().to_string())
        .collect();
    assert!(
        keys.contains(&first_event),
        "first upload's event lost: {keys:?}"
    );
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        history_str(&env, &["--pending"]).is_empty(),
        "{:?}",
        history_str(&env, &["--pending"])
    );
}

#[test]

fn two_runs_starting_at_once_on_a_new_state_directory_both_open_it() {
    let env = Env::new();
    let files: Vec<PathBuf> = (0..5)
        .map(|i| env.file(&format!("n{i}.pdf"), &pdf(700 + i)))
        .collect();
    let mut args: Vec<&OsStr> = vec![OsStr::new("--jobs"), OsStr::new("8")];
    args.extend(files.iter().map(|f| f.as_os_str()));
    // A few trials, each on a state directory of its own that does not exist yet.
    for trial in 0..20 {
        let dir = env.dir.path().join(format!("fresh-state-{trial}"));
        let runs: Vec<Child> = (0..2)
            .map(|_| {
                Route::External
                    .background(&env)
                    .env("GCUPLOAD_STATE_DIR", &dir)
                    .args(&args)
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = runs
            .into_iter()
            .map(|c| std::thread::spawn(move || c.wait_with_output().unwrap()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut completed = 0;
        for out in &outs {
            let recs = records(&out.stdout);
            assert_eq!(
                code(out),
                Some(0),
                "trial {trial}: {}\n{}",
                stderr(out),
                recs.first().map(Value::to_string).unwrap_or_default()
            );
            completed += recs
                .iter()
                .filter(|r| r["action"] == "FILE_UPLOAD_COMPLETED")
                .count();
        }
        assert_eq!(completed, 5, "trial {trial}: each file once");
    }
}

/// Runs the conversation route on `path` with `--message text` and kills it while the sandbox
/// holds the caption's send, the caption already recorded (the media message went out first).
fn kill_at_caption(env: &Env, path: &Path, text: &str) {
    env.sandbox.faults().pause = vec![Pause {
        after: 1,
        ..Pause::new("send", HOLD_MS)
    }];
    let args = [OsStr::new("--message"), OsStr::new(text), path.as_os_str()];
    kill_when_paused(env, "send", Route::Conversation.spawn(env, &args));
    env.sandbox.faults().pause.clear();
}

/// The same caption sent with an earlier file is older than this file's media message, so the
/// re-run's check takes the one sent after it: the right caption, exit 0.
#[test]
fn a_resumed_caption_is_told_from_an_earlier_files_same_text() {
    let env = Env::new();
    let a = env.file("a.pdf", &pdf(3000));
    let b = env.file("b.pdf", &pdf(4000));
    let first = env
        .conversation_cmd()
        .args(["--message", "Your copy"])
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(code(&first), Some(0), "{}", stderr(&first));
    kill_at_caption(&env, &b, "Your copy");
    let before = env.sandbox.messages();
    assert_eq!(
        before.len(),
        4,
        "a: media and caption; b: the same: {before:?}"
    );

    let out = env
        .conversation_cmd()
        .args(["--message", "Your copy"])
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let r = &records(&out.stdout)[0];
    assert_eq!(r["sendChecked"], true, "{r}");
    assert_eq!(r["messageId"], before[2]["id"], "{r}");
    assert_eq!(r["textMessageId"], before[3]["id"], "b's own caption: {r}");
    assert_eq!(env.sandbox.messages().len(), 4, "nothing posted again");
}

/// Killed between the two messages (the media message posted, the caption not yet): the re-run
/// finds the media message, does not post it again, and posts the caption once.
#[test]
fn killed_between_the_media_message_and_its_caption_the_rerun_posts_only_the_caption() {
    let env = Env::new();
    let a = env.file("a.pdf", &pdf(3000));
    env.sandbox.faults().pause = vec![Pause {
        after: 1,
        ..Pause::new("send-start", HOLD_MS)
    }];
    let args = [
        OsStr::new("--message"),
        OsStr::new("Your copy"),
        a.as_os_str(),
    ];
    kill_when_paused(&env, "send-start", Route::Conversation.spawn(&env, &args));
    env.sandbox.faults().pause.clear();
    let before = env.sandbox.messages();
    assert_eq!(before.len(), 1, "only the media message: {before:?}");

    let out = env
        .conversation_cmd()
        .args(["--message", "Your copy"])
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let r = &records(&out.stdout)[0];
    assert_eq!(r["resumed"], true, "{r}");
    assert_eq!(
        r["messageId"], before[0]["id"],
        "the media message is not posted again: {r}"
    );
    let after = env.sandbox.messages();
    assert_eq!(after.len(), 2, "media and caption, once each: {after:?}");
    assert_eq!(r["textMessageId"], after[1]["id"], "{r}");
    assert_eq!(env.sandbox.objects().len(), 1);
}

/// When two messages of the conversation could be the caption (someone else posted the same
/// text meanwhile), no guess is made: exit 6, "may have been sent", nothing posted again.
#[test]
fn a_caption_two_messages_could_be_is_not_guessed() {
    let env = Env::new();
    let b = env.file("b.pdf", &pdf(4000));
    kill_at_caption(&env, &b, "Your copy");
    // Another sender (an agent, say) posts the same text into the conversation.
    env.block_on(async {
        let http = reqwest::Client::new();
        let token: Value = http
            .post(env.sandbox.base_url.join("oauth/token").unwrap())
            .basic_auth(env.sandbox.client_id(), Some(env.sandbox.client_secret()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = env.sandbox.base_url.join(&format!(
            "api/v2/conversations/messages/{}/communications/{}/messages",
            env.sandbox.conversation_id(),
            env.sandbox.communication_id()
        ));
        let sent = http
            .post(url.unwrap())
            .bearer_auth(token["access_token"].as_str().unwrap())
            .json(&serde_json::json!({"textBody": "Your copy"}))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status().as_u16(), 200);
    });
    let out = env
        .conversation_cmd()
        .args(["--message", "Your copy"])
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        Some(ExitStatus::Network.code()),
        "{}",
        stderr(&out)
    );
    let message = records(&out.stdout)[0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("may have been sent") && message.contains("2 messages"),
        "{message}"
    );
    assert_eq!(env.sandbox.messages().len(), 3, "nothing posted again");
}
