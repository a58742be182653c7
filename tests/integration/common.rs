//! Shared test harness: an in-process sandbox on loopback, the real binary run against it with
//! an isolated environment, and a schema check of every record it prints.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use assert_cmd::Command;
use gcupload::sandbox::{Faults, Sandbox, SandboxConfig};
use serde_json::Value;

pub struct Env {
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
    // Declared last: the servers must stop before the runtime goes.
    rt: tokio::runtime::Runtime,
}

impl Env {
    pub fn new() -> Self {
        Self::with_faults(Faults::default())
    }

    pub fn with_faults(faults: Faults) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sandbox = rt
            .block_on(Sandbox::start(SandboxConfig {
                faults,
                ..SandboxConfig::default()
            }))
            .unwrap();
        Env {
            sandbox,
            dir: tempfile::tempdir().unwrap(),
            rt,
        }
    }

    /// The binary, with nothing inherited from the developer's environment or `.env`, pointed at
    /// the sandbox for the external-contact route.
    pub fn cmd(&self) -> Command {
        let mut c = self.bare_cmd();
        c.env("GENESYS_BASE_URL", self.sandbox.base_url.as_str())
            .env("GENESYS_CLIENT_ID", self.sandbox.client_id())
            .env("GENESYS_CLIENT_SECRET", self.sandbox.client_secret())
            .env("EXTERNAL_CONTACT_ID", self.sandbox.external_contact_id())
            .env("WEBHOOK_SYNC_URL", self.sandbox.webhook_url().as_str());
        c
    }

    /// The binary pointed at the sandbox's guest deployment (no OAuth credentials).
    pub fn guest_cmd(&self) -> Command {
        let mut c = self.bare_cmd();
        c.env("GENESYS_BASE_URL", self.sandbox.base_url.as_str())
            .env("GENESYS_DEPLOYMENT_ID", self.sandbox.deployment_id())
            .env("WEBHOOK_SYNC_URL", self.sandbox.webhook_url().as_str());
        c
    }

    /// The binary pointed at the sandbox's message conversation.
    pub fn conversation_cmd(&self) -> Command {
        let mut c = self.bare_cmd();
        c.env("GENESYS_BASE_URL", self.sandbox.base_url.as_str())
            .env("GENESYS_CLIENT_ID", self.sandbox.client_id())
            .env("GENESYS_CLIENT_SECRET", self.sandbox.client_secret())
            .env("GENESYS_CONVERSATION_ID", self.sandbox.conversation_id())
            .env("GENESYS_COMMUNICATION_ID", self.sandbox.communication_id())
            .env("WEBHOOK_SYNC_URL", self.sandbox.webhook_url().as_str());
        c
    }

    /// The binary on the external-contact route, running in the background.
    pub fn spawn(&self, args: &[&std::ffi::OsStr]) -> std::process::Child {
        self.spawn_cmd().args(args).spawn().unwrap()
    }

    /// [`spawn`](Self::spawn)'s command before it starts (add arguments and variables).
    pub fn spawn_cmd(&self) -> std::process::Command {
        let mut c = self.std_cmd();
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    }

    /// The binary on the external-contact route as a plain std command (its stdio and limits
    /// are the test's to choose).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("gcupload"));
        c.env_clear()
            .current_dir(self.dir.path())
            .env("GENESYS_BASE_URL", self.sandbox.base_url.as_str())
            .env("GENESYS_CLIENT_ID", self.sandbox.client_id())
            .env("GENESYS_CLIENT_SECRET", self.sandbox.client_secret())
            .env("EXTERNAL_CONTACT_ID", self.sandbox.external_contact_id())
            .env("WEBHOOK_SYNC_URL", self.sandbox.webhook_url().as_str())
            .env("GCUPLOAD_STATE_DIR", self.outbox());
        c
    }

    /// The binary with an empty environment, run in the test's own directory.
    pub fn bare_cmd(&self) -> Command {
        let mut c = Command::cargo_bin("gcupload").unwrap();
        c.env_clear()
            .current_dir(self.dir.path())
            .env("GCUPLOAD_STATE_DIR", self.outbox())
            .timeout(std::time::Duration::from_secs(60));
        c
    }

    /// The runs' state directory: journal and webhook outbox (never the developer's own).
    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The state store, as the runs leave it.
    pub fn store(&self) -> gcupload::state::Store {
        gcupload::state::Store::open(&gcupload::state::Location::Dir(self.outbox())).unwrap()
    }

    /// Events waiting in the outbox: `{"eventId", "body"}`.
    pub fn queued(&self) -> Vec<Value> {
        self.store()
            .queued()
            .unwrap()
            .into_iter()
            .map(|q| serde_json::json!({"eventId": q.event_id, "body": q.body}))
            .collect()
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Deterministic filler so uploads span many read chunks.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

pub fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
    v.extend(noise(len, 7));
    v
}

pub fn pdf(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    v.extend(noise(len, 11));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

pub fn zip(len: usize) -> Vec<u8> {
    let mut v = b"PK\x03\x04\x14\0\0\0\x08\0".to_vec();
    v.extend(noise(len, 13));
    v
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

pub fn sha256_file(p: &Path) -> String {
    sha256(&std::fs::read(p).unwrap())
}

fn schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = include_str!("../../src/audit/record.schema.json");
        jsonschema::validator_for(&serde_json::from_str(text).unwrap()).unwrap()
    })
}

/// Every stdout line is one JSON record that satisfies the committed schema.
pub fn records(stdout: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stdout).expect("stdout is UTF-8");
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            check_schema(&v);
            v
        })
        .collect()
}

pub fn check_schema(v: &Value) {
    let errors: Vec<String> = schema().iter_errors(v).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "record violates the schema: {errors:?}\n{v:#}"
    );
}

/// `gcupload sandbox` on a free loopback port, as a user starts it (nothing inherited), and the
/// settings it printed as its first line.
pub fn sandbox_process() -> (std::process::Child, Value) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("gcupload"))
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, serde_json::from_str(&line).unwrap())
}

/// Waits until the sandbox holds a request at `point` (a `Pause` fault); the test fails if none
/// is held within `within`.
pub fn wait_paused(env: &Env, point: &str, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    while env.sandbox.paused(point) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no request was held at {point}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The outputs of clients started together, each drained on a thread of its own (so none
/// blocks on a full pipe while another is waited for).
pub fn outputs_of(
    children: impl IntoIterator<Item = std::process::Child>,
) -> Vec<std::process::Output> {
    children
        .into_iter()
        .map(|c| std::thread::spawn(move || c.wait_with_output().unwrap()))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect()
}

/// Runs a command to its end and asserts its exit status (showing its stderr if it differs):
/// the shape of most tests' runs.
pub trait Finish {
    fn finish(&mut self, status: gcupload::ExitStatus) -> std::process::Output;
}

impl Finish for Command {
    fn finish(&mut self, status: gcupload::ExitStatus) -> std::process::Output {
        let out = self.output().unwrap();
        expect_status(&out, status);
        out
    }
}

impl Finish for std::process::Command {
    fn finish(&mut self, status: gcupload::ExitStatus) -> std::process::Output {
        let out = self.output().unwrap();
        expect_status(&out, status);
        out
    }
}

/// Asserts a run's exit status (showing its stderr if it differs); its stderr, for more checks.
pub fn expect_status(out: &std::process::Output, status: gcupload::ExitStatus) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(status.code()), "{err}");
    err
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn eicar_text() -> Vec<u8> {
    let mut v = b"meeting notes\n".to_vec();
    v.extend_from_slice(gcupload::validate::EICAR);
    v
}

pub fn by_name<'a>(records: &'a [Value], name: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["fileName"] == name)
        .unwrap_or_else(|| panic!("no record for {name}"))
}

/// Sends `sig` (`libc::SIGINT`, `libc::SIGTERM`) to the child.
pub fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill has no memory preconditions; the child is ours and not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// The child's output once it exits; a child still running after `limit` is killed and the test
/// fails (a bound on a hang, not a speed measurement).
pub fn output_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> std::process::Output {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}; stderr: {}", stderr(&out));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
