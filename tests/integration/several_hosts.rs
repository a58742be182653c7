//! Several hosts, one journal (`--state-url`): each "host" is the real binary with its own HOME
//! and local state directory, all pointed at one real PostgreSQL database (a fresh one per
//! test) and at the one sandbox. The server comes from GCUPLOAD_TEST_PG_URL (`.ci/postgres.sh
//! start`); without it these tests fail under CI and are skipped, with a notice, elsewhere.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};

use crate::common::*;
use crate::state::{HOLD_MS, kill_when_paused};
use gcupload::ExitStatus;
use gcupload::sandbox::Pause;
use serde_json::Value;

/// A fresh database on the test server, as a URL with the password; `None` (skip) outside CI
/// when no server is configured.
fn database() -> Option<String> {
    let Ok(base) = std::env::var("GCUPLOAD_TEST_PG_URL") else {
        assert!(
            std::env::var("CI").map_or(true, |ci| ci != "true"),
            "GCUPLOAD_TEST_PG_URL is not set: CI must start PostgreSQL (.ci/postgres.sh start)"
        );
        eprintln!(
            "skipped: GCUPLOAD_TEST_PG_URL is not set (eval \"$(.ci/postgres.sh start)\" to run the PostgreSQL tests)"
        );
        return None;
    };
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("the test server");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    Some(url.to_string())
}

fn password(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .password()
        .unwrap()
        .to_string()
}

/// One host: its own HOME and state directory, the shared database.
struct Host {
    home: PathBuf,
}

impl Host {
    fn new(env: &Env, name: &str) -> Host {
        let home = env.dir.path().join(format!("host-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        Host { home }
    }

    fn cmd(&self, env: &Env, url: &str) -> std::process::Command {
        let mut c = env.std_cmd();
        c.env("HOME", &self.home)
            .env("GCUPLOAD_STATE_DIR", self.home.join("state"))
            .env("GCUPLOAD_STATE_URL", url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, env: &Env, url: &str, args: &[&str]) -> Output {
        self.cmd(env, url).args(args).output().unwrap()
    }

    fn spawn(&self, env: &Env, url: &str, args: &[&str]) -> Child {
        self.cmd(env, url).args(args).spawn().unwrap()
    }

    /// Nothing of the journal is on the host itself.
    fn kept_nothing(&self) {
        assert!(
            !self.home.join("state").join("state.db").exists(),
            "a host wrote a local journal"
        );
    }
}

fn files(env: &Env, n: usize) -> Vec<(String, Vec<u8>)> {
    let root = env.dir.path().join("shared");
    std::fs::create_dir_all(&root).unwrap();
    (0..n)
        .map(|i| {
            let name = format!("f{i:03}.pdf");
            let bytes = pdf(700 + i);
            std::fs::write(root.join(&name), &bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn history(env: &Env, host: &Host, url: &str) -> Vec<Value> {
    let out = host.run(env, url, &["history"]);
    expect_status(&out, ExitStatus::Success);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every file stored exactly once, and no webhook event twice.
fn each_sent_once(env: &Env, files: &[(String, Vec<u8>)]) {
    let keys = stored_once_with_one_event_each(env, files);
    assert_eq!(
        keys.len(),
        env.sandbox.webhooks().len(),
        "an event delivered twice"
    );
}

/// Every file stored exactly once, and one webhook event id per file: an event may have been
/// delivered again, but always under the same idempotency key. The event ids.
fn stored_once_with_one_event_each(env: &Env, files: &[(String, Vec<u8>)]) -> HashSet<String> {
    let objects = env.sandbox.objects();
    for (name, bytes) in files {
        let n = objects.iter().filter(|o| o.sha256 == sha256(bytes)).count();
        assert_eq!(n, 1, "{name} stored {n} times");
    }
    assert_eq!(objects.len(), files.len());
    let keys: HashSet<String> = env
        .sandbox
        .webhooks()
        .iter()
        .map(|h| h["idempotencyKey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), files.len(), "one event id per file");
    keys
}

const DIR: &[&str] = &["--recursive", "shared"];

#[test]
fn host_b_skips_what_host_a_sent_and_a_third_host_reads_the_shared_history() {
    let Some(url) = database() else { return };
    let env = Env::new();
    let files = files(&env, 3);
    let (a, b, c) = (
        Host::new(&env, "a"),
        Host::new(&env, "b"),
        Host::new(&env, "c"),
    );
    let out = a.run(&env, &url, DIR);
    expect_status(&out, ExitStatus::Success);
    assert!(
        records(&out.stdout)
            .iter()
            .all(|r| r["action"] == "FILE_UPLOAD_COMPLETED")
    );

    // The same files, unchanged: host B knows them by their stamps from the shared journal and
    // reads none of them.
    let out = b.run(&env, &url, &["-vv", "--recursive", "shared"]);
    expect_status(&out, ExitStatus::Success);
    let unread = stderr(&out).matches("skipped without reading it").count();
    assert_eq!(unread, 3, "{}", stderr(&out));
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r["action"], "FILE_UPLOAD_SKIPPED", "{r}");
        assert_eq!(r["skipReason"], "already-uploaded", "{r}");
    }
    each_sent_once(&env, &files);

    let rows = history(&env, &c, &url);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert_eq!(row["step"], "completed", "{row}");
        assert_eq!(row["webhook"], "delivered", "{row}");
    }
    for h in [&a, &b, &c] {
        h.kept_nothing();
    }
}

#[test]
fn two_hosts_over_the_same_100_files_at_once_send_each_once() {
    let Some(url) = database() else { return };
    let env = Env::new();
    {
        let mut f = env.sandbox.faults();
        f.put_delay_ms = 20;
        f.api_latency_ms = 5;
    }
    let files = files(&env, 100);
    // The schema exists already, as after any first run (two first runs: the migration lock).
    let (a, b) = (Host::new(&env, "a"), Host::new(&env, "b"));
    let args = ["--jobs", "8", "--recursive", "shared"];
    let runs = [a.spawn(&env, &url, &args), b.spawn(&env, &url, &args)];
    let outs = outputs_of(runs);
    let mut completed: HashMap<String, Value> = HashMap::new();
    for out in &outs {
        expect_status(out, ExitStatus::Success);
        let recs = records(&out.stdout);
        assert_eq!(recs.len(), 100, "one record per file");
        for r in recs {
            match r["action"].as_str().unwrap() {
                "FILE_UPLOAD_COMPLETED" => {
                    let name = r["fileName"].as_str().unwrap().to_string();
                    if let Some(first) = completed.insert(name, r.clone()) {
                        let logs: Vec<String> = outs.iter().map(stderr).collect();
                        panic!("completed twice: {first}\n{r}\n{logs:#?}");
                    }
                }
                "FILE_UPLOAD_SKIPPED" => assert!(
                    ["claimed-by-another-run", "already-uploaded"]
                        .contains(&r["skipReason"].as_str().unwrap()),
                    "{r}"
                ),
                other => panic!("{other}: {r}"),
            }
        }
    }
    assert_eq!(completed.len(), 100, "one completed record per file");
    each_sent_once(&env, &files);
    assert_eq!(env.sandbox.webhooks().len(), 100);
    let rows = history(&env, &a, &url);
    assert_eq!(rows.len(), 100, "one journal row per file");
    assert!(
        rows.iter()
            .all(|r| r["step"] == "completed" && r.get("lease").is_none())
    );
}

#[test]
fn a_host_killed_mid_batch_is_finished_by_another_without_sending_twice() {
    let Some(url) = database() else { return };
    let env = Env::new();
    let files = files(&env, 6);
    let (a, b) = (Host::new(&env, "a"), Host::new(&env, "b"));
    // Host A stops dead while one of its uploads is under way.
    env.sandbox.faults().pause = vec![Pause::new("put-start", HOLD_MS)];
    let child = a.spawn(&env, &url, &["--jobs", "2", "--recursive", "shared"]);
    let killed = kill_when_paused(&env, "put-start", child);
    env.sandbox.faults().pause.clear();
    let done_by_a: HashSet<String> = records(&killed.stdout)
        .iter()
        .filter(|r| r["action"] == "FILE_UPLOAD_COMPLETED")
        .map(|r| r["fileName"].as_str().unwrap().to_string())
        .collect();
    assert!(
        history(&env, &b, &url).iter().any(|r| r["pending"] == true),
        "host A left a file part-way"
    );

    let out = b.run(&env, &url, DIR);
    expect_status(&out, ExitStatus::Success);
    for r in records(&out.stdout) {
        let name = r["fileName"].as_str().unwrap();
        let want = if done_by_a.contains(name) {
            "FILE_UPLOAD_SKIPPED"
        } else {
            "FILE_UPLOAD_COMPLETED"
        };
        assert_eq!(r["action"], want, "{r}");
    }
    each_sent_once(&env, &files);
    let rows = history(&env, &a, &url);
    assert_eq!(
        rows.len(),
        6,
        "the killed host's row was resumed, not doubled"
    );
    assert!(
        rows.iter()
            .all(|r| r["step"] == "completed" && r["pending"] == false)
    );
}

#[test]
fn an_event_host_a_could_not_deliver_is_delivered_once_by_host_b() {
    let Some(url) = database() else { return };
    let env = Env::new();
    files(&env, 1);
    let (a, b) = (Host::new(&env, "a"), Host::new(&env, "b"));
    env.sandbox.faults().webhook_fail = 3;
    let out = a.run(&env, &url, DIR);
    expect_status(&out, ExitStatus::Success);
    let event = records(&out.stdout)[0]["eventId"].clone();
    assert!(env.sandbox.webhooks().is_empty());

    for expected in [1, 1] {
        let out = b.run(&env, &url, &["webhook", "flush"]);
        expect_status(&out, ExitStatus::Success);
        let hooks = env.sandbox.webhooks();
        assert_eq!(hooks.len(), expected, "delivered once, not again");
        assert_eq!(hooks[0]["idempotencyKey"], event);
    }
    a.kept_nothing();
    b.kept_nothing();
}

#[test]
fn the_database_down_sends_nothing_and_says_so() {
    let Some(url) = database() else { return };
    let env = Env::new();
    files(&env, 2);
    let host = Host::new(&env, "a");
    // A port nothing listens on (the server's own, plus one: the tests' cluster owns one port).
    let mut down = url::Url::parse(&url).unwrap();
    down.set_port(Some(1)).unwrap();
    let out = host.run(&env, down.as_str(), DIR);
    let err = expect_status(&out, ExitStatus::Usage);
    assert!(err.contains("the state database"), "{err}");
    assert!(
        err.contains("--state-url"),
        "the hint names the setting: {err}"
    );
    assert!(!err.contains(&password(&url)), "{err}");
    assert!(env.sandbox.objects().is_empty(), "nothing sent");
    assert!(
        records(&out.stdout)
            .iter()
            .all(|r| r["action"] != "FILE_UPLOAD_COMPLETED")
    );
}

#[test]
fn the_password_is_in_no_output_of_doctor_or_a_verbose_run() {
    let Some(url) = database() else { return };
    let env = Env::new();
    files(&env, 1);
    let host = Host::new(&env, "a");
    let secret = password(&url);
    let out = host.run(&env, &url, &["-vv", "--recursive", "shared"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    expect_status(&out, ExitStatus::Success);
    assert!(!text.contains(&secret), "{text}");
    let out = host.run(&env, &url, &["doctor"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!text.contains(&secret), "{text}");
    assert!(
        text.contains("state store"),
        "doctor checks the store: {text}"
    );
    assert!(text.contains("schema version"), "{text}");
}

#[test]
fn another_hosts_lease_holds_until_the_database_clock_expires_it() {
    let Some(url) = database() else { return };
    let env = Env::new();
    let files = files(&env, 1);
    let (a, b) = (Host::new(&env, "a"), Host::new(&env, "b"));
    env.sandbox.faults().pause = vec![Pause::new("put-start", HOLD_MS)];
    let child = a.spawn(&env, &url, DIR);
    kill_when_paused(&env, "put-start", child);
    env.sandbox.faults().pause.clear();
    // The row now looks held by a process of another machine, for a minute by the server's
    // clock: this host cannot ask whether it lives, only the expiry tells.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut lease = |until: &str| {
        let sql = format!(
            "UPDATE uploads SET lease_host = 'elsewhere boot=x pidns=1 start=1', lease_until = {until}"
        );
        db.execute(&sql, &[]).unwrap();
    };
    lease("now() + interval '1 minute'");
    let out = b.run(&env, &url, DIR);
    expect_status(&out, ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["skipReason"], "claimed-by-another-run", "{r}");
    assert!(env.sandbox.objects().is_empty());

    lease("now() - interval '1 second'");
    let out = b.run(&env, &url, DIR);
    expect_status(&out, ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r}");
    assert_eq!(r["resumed"], true, "{r}");
    each_sent_once(&env, &files);
    let n: i64 = db
        .query_one("SELECT count(*) FROM uploads", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the same row, taken over");
}

/// The database's connections are cut while a file is in flight, and the database then refuses
/// new ones (`ALLOW_CONNECTIONS false`): the run starts no new file (each gets a state-stage
/// record), nothing is lost or sent twice, and once the database is back another host finishes
/// every file from where the first stopped.
#[test]
fn the_database_lost_mid_run_starts_no_new_file_and_a_later_run_finishes_each_once() {
    let Some(url) = database() else { return };
    let db = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let mut admin = postgres::Client::connect(
        &std::env::var("GCUPLOAD_TEST_PG_URL").unwrap(),
        postgres::NoTls,
    )
    .unwrap();
    let env = Env::new();
    let files = files(&env, 5);
    let (a, b) = (Host::new(&env, "a"), Host::new(&env, "b"));
    env.sandbox.faults().pause = vec![Pause::new("put-start", 1500)];
    let child = a.spawn(&env, &url, &["--jobs", "1", "--recursive", "shared"]);
    wait_paused(&env, "put-start", std::time::Duration::from_secs(20));
    // The database goes away under the upload in flight.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        ))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    env.sandbox.faults().pause.clear();
    let recs = records(&out.stdout);
    assert_eq!(
        recs.len(),
        files.len(),
        "one record per file: {}",
        stderr(&out)
    );
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    let started = env.sandbox.objects().len();
    assert!(
        started <= 1,
        "{started} uploads: a file started after the loss"
    );
    for r in recs
        .iter()
        .filter(|r| r["action"] != "FILE_UPLOAD_COMPLETED")
    {
        assert_eq!(r["error"]["kind"], "state", "{r}");
    }
    assert!(!stderr(&out).contains(&password(&url)), "{}", stderr(&out));

    admin
        .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .unwrap();
    let again = b.run(&env, &url, DIR);
    expect_status(&again, ExitStatus::Success);
    // The file in flight was confirmed, and its webhook fired, though its completion could not
    // be journaled; host B finishes it and fires the event again under the id the claim gave
    // it, which the receiver drops as a repeat.
    stored_once_with_one_event_each(&env, &files);
    assert!(
        history(&env, &b, &url)
            .iter()
            .all(|r| r["step"] == "completed" && r["pending"] == false)
    );
}
