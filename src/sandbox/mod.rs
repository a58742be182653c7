//! A local emulator of the Genesys Cloud surfaces gcupload talks to: OAuth, the routes, an S3
//! object store (served by `s3s`, so pre-signed URLs are verified by a real S3 implementation),
//! a virus scan, a webhook receiver and fault injection. Client code reaches it only through
//! the public items here; `lib.rs` owns the CLI glue (`gcupload sandbox`, `--sandbox`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

mod api;
mod conversation;
mod guest;
mod scan;
mod store;

/// How the sandbox behaves; tests adjust faults at runtime through [`Sandbox::faults`].
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub listen: SocketAddr,
    pub store_dir: Option<PathBuf>,
    pub faults: Faults,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store_dir: None,
            faults: Faults::default(),
        }
    }
}

/// Behaviour that tests and `gcupload sandbox` flags can change, also via `POST /_sandbox/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    pub token_ttl_secs: u64,
    pub url_ttl_secs: u64,
    /// The next n upload URLs are issued already expired.
    pub expired_urls: u32,
    /// The webhook receiver answers 500 this many times.
    pub webhook_fail: u32,
    /// The next n authenticated API calls answer 401, as if the token had been revoked.
    pub reject_tokens: u32,
    /// The tenant's upload limit (the route answers 413 above it).
    pub max_upload_bytes: u64,
    /// Guest deployment: `allowedMedia.inbound.fileTypes` (wildcards allowed).
    pub guest_allowed_types: Vec<String>,
    /// Guest deployment: `allowedMedia.inbound.maxFileSizeKB`.
    pub guest_max_file_size_kb: u64,
    /// Guest deployment: `blockedExtensions`.
    pub guest_blocked_extensions: Vec<String>,
    /// Advertise `*/*` with no limits in SessionResponse but enforce the real rules in
    /// onAttachment, as a deployment with a stricter Supported Content profile can.
    pub guest_hidden_rules: bool,
    /// The next n guest configureSession calls (without startNew) of an existing session find
    /// its conversation ended: the session answers `readOnly: true`.
    pub read_only_sessions: u32,
    /// The next n guest configureSession calls find their session expired (4006).
    pub expire_sessions: u32,
    /// The next n guest requests answer TooManyRequestsErrorMessage (retryAfter 1 s).
    pub guest_rate_limit: u32,
    /// How long conversation media stays `uploading` after its object lands.
    pub media_delay_ms: u64,
    /// Emulated network latency added to every API answer (not the store), milliseconds.
    pub api_latency_ms: u64,
    /// Error answers to inject, by endpoint.
    pub inject: Vec<Inject>,
    /// The next n PUTs: the store reads half the body, then drops the connection.
    pub drop_puts: u32,
    /// The store waits this long before answering a PUT.
    pub put_delay_ms: u64,
    /// The next n confirms (upload-complete, media status) are performed, then the connection
    /// is dropped before the answer.
    pub lose_confirms: u32,
    /// The next n conversation message sends are performed, then the answer is lost.
    pub lose_sends: u32,
    /// The next guest connection is closed by the server after it sent this many frames.
    pub close_guest_after_frames: u32,
}

/// An error answer for the n-th call of an endpoint: `token`, `request-url`, `put`, `confirm`,
/// `send` or `webhook`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inject {
    pub endpoint: String,
    /// 429, 500, 503, ... (a `put` 503 is S3's SlowDown).
    pub status: u16,
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Let this many calls through first.
    #[serde(default)]
    pub after: u32,
    /// Then answer this many calls with the error.
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl Inject {
    pub fn new(endpoint: &str, status: u16, retry_after: Option<u64>) -> Self {
        Inject {
            endpoint: endpoint.into(),
            status,
            retry_after,
            after: 0,
            times: 1,
        }
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            token_ttl_secs: 86400,
            url_ttl_secs: 900,
            expired_urls: 0,
            webhook_fail: 0,
            reject_tokens: 0,
            max_upload_bytes: 10 * 1024 * 1024,
            guest_allowed_types: vec![
                "image/*".into(),
                "application/pdf".into(),
                "text/plain".into(),
            ],
            guest_max_file_size_kb: 10240,
            guest_blocked_extensions: vec![".exe".into(), ".bat".into()],
            guest_hidden_rules: false,
            read_only_sessions: 0,
            expire_sessions: 0,
            guest_rate_limit: 0,
            media_delay_ms: 300,
            api_latency_ms: 0,
            inject: Vec::new(),
            drop_puts: 0,
            put_delay_ms: 0,
            lose_confirms: 0,
            lose_sends: 0,
            close_guest_after_frames: 0,
        }
    }
}

/// A request as the sandbox saw it: for tests that check what was (not) sent, and to whom.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenRequest {
    pub surface: &'static str,
    pub method: String,
    pub path: String,
    pub authorization: bool,
    pub status: u16,
    /// From the request's arrival to its answer (for a PUT: the whole body), milliseconds.
    pub ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
struct FileEntry {
    contact_id: String,
    key: String,
    size: u64,
    confirmed: Option<String>,
}

pub(crate) struct State {
    client_id: String,
    client_secret: String,
    external_contact_id: String,
    deployment_id: String,
    conversation_id: String,
    communication_id: String,
    /// Size announced for each object key when its URL was issued.
    announced: Mutex<HashMap<String, u64>>,
    /// The virus-scan verdict (infected?) of each object, taken once when its PUT lands.
    scans: Mutex<HashMap<String, bool>>,
    guest: Mutex<HashMap<String, guest::Session>>,
    media: Mutex<HashMap<String, conversation::Media>>,
    messages: Mutex<Vec<Value>>,
    faults: Mutex<Faults>,
    tokens: Mutex<HashMap<String, std::time::Instant>>,
    files: Mutex<HashMap<String, FileEntry>>,
    webhooks: Mutex<Vec<Value>>,
    requests: Mutex<Vec<SeenRequest>>,
    store: store::Store,
}

/// A running sandbox; dropping it stops the servers and removes a temporary store.
pub struct Sandbox {
    pub base_url: Url,
    pub store_url: Url,
    state: Arc<State>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Sandbox {
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let (root, tmp) = match &config.store_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let api_listener = tokio::net::TcpListener::bind(config.listen).await?;
        let store_listener =
            tokio::net::TcpListener::bind(SocketAddr::new(config.listen.ip(), 0)).await?;
        let base_url = origin(api_listener.local_addr()?);
        let store_url = origin(store_listener.local_addr()?);
        let state = Arc::new(State {
            client_id: format!("sandbox-{}", short_id()),
            client_secret: uuid::Uuid::new_v4().simple().to_string(),
            external_contact_id: uuid::Uuid::new_v4().to_string(),
            deployment_id: uuid::Uuid::new_v4().to_string(),
            conversation_id: uuid::Uuid::new_v4().to_string(),
            communication_id: uuid::Uuid::new_v4().to_string(),
            announced: Mutex::default(),
            scans: Mutex::default(),
            guest: Mutex::default(),
            media: Mutex::default(),
            messages: Mutex::default(),
            faults: Mutex::new(config.faults.clone()),
            tokens: Mutex::default(),
            files: Mutex::default(),
            webhooks: Mutex::default(),
            requests: Mutex::default(),
            store: store::Store::new(root, &store_url)?,
        });
        let tasks = vec![
            tokio::spawn(serve(api_listener, api::router(state.clone()))),
            tokio::spawn(serve(store_listener, store::router(state.clone()))),
        ];
        Ok(Sandbox {
            base_url,
            store_url,
            state,
            tasks,
            _tmp: tmp,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }
    pub fn client_secret(&self) -> &str {
        &self.state.client_secret
    }
    pub fn external_contact_id(&self) -> &str {
        &self.state.external_contact_id
    }
    pub fn deployment_id(&self) -> &str {
        &self.state.deployment_id
    }
    pub fn conversation_id(&self) -> &str {
        &self.state.conversation_id
    }
    pub fn communication_id(&self) -> &str {
        &self.state.communication_id
    }
    pub fn webhook_url(&self) -> Url {
        self.base_url.join("_sandbox/webhook").expect("static path")
    }

    /// What a client needs to talk to this sandbox, as printed by `gcupload sandbox`.
    pub fn info(&self) -> Value {
        json!({
            "baseUrl": self.base_url.as_str().trim_end_matches('/'),
            "storeUrl": self.store_url.as_str().trim_end_matches('/'),
            "clientId": self.client_id(),
            "clientSecret": self.client_secret(),
            "externalContactId": self.external_contact_id(),
            "deploymentId": self.deployment_id(),
            "conversationId": self.conversation_id(),
            "communicationId": self.communication_id(),
            "webhookUrl": self.webhook_url(),
            "controlUrl": self.base_url.join("_sandbox/").expect("static path"),
        })
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.state.faults()
    }

    /// Every object in the store with its size and SHA-256.
    pub fn objects(&self) -> Vec<StoredObject> {
        self.state.store.objects()
    }

    /// Webhook bodies received, in order.
    pub fn webhooks(&self) -> Vec<Value> {
        self.state.webhooks.lock().expect("webhooks").clone()
    }

    /// Every access token issued so far (tests check none of them leaks into output).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state
            .tokens
            .lock()
            .expect("tokens")
            .keys()
            .cloned()
            .collect()
    }

    /// Messages sent through the guest and conversation routes, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.state.messages.lock().expect("messages").clone()
    }

    /// Each conversation media id with its status (`uploading`, `valid`, `invalid`).
    pub fn media_statuses(&self) -> Vec<(String, String)> {
        self.state
            .media
            .lock()
            .expect("media")
            .iter()
            .map(|(id, m)| (id.clone(), m.status().to_string()))
            .collect()
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state.requests.lock().expect("requests").clone()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl State {
    fn snapshot(&self) -> Value {
        json!({
            "objects": self.store.objects(),
            "webhooks": *self.webhooks.lock().expect("webhooks"),
            "messages": *self.messages.lock().expect("messages"),
            "requests": *self.requests.lock().expect("requests"),
            "faults": *self.faults.lock().expect("faults"),
        })
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().expect("faults")
    }

    /// The size announced when the URL for `key` was issued.
    fn announced_size(&self, key: &str) -> Option<u64> {
        self.announced.lock().expect("announced").get(key).copied()
    }

    fn announce(&self, key: &str, size: u64) {
        self.announced
            .lock()
            .expect("announced")
            .insert(key.to_string(), size);
    }

    /// A pre-signed PUT for `key` with the URL faults applied, its size announced to the store.
    fn issue_put_url(&self, key: &str, size: u64, signed: &[(&str, &str)]) -> Url {
        let ttl = std::time::Duration::from_secs(self.faults().url_ttl_secs);
        let url = self
            .store
            .presign_put(key, signed, ttl, self.take_expired_url());
        self.announce(key, size);
        url
    }

    /// Whether the next URL is to be issued already expired (fault `expiredUrls`).
    fn take_expired_url(&self) -> bool {
        self.take(|f| &mut f.expired_urls)
    }

    /// Uses up one unit of a counted fault; true if it applied.
    fn take(&self, counter: impl FnOnce(&mut Faults) -> &mut u32) -> bool {
        let mut f = self.faults();
        let c = counter(&mut f);
        let hit = *c > 0;
        *c = c.saturating_sub(1);
        hit
    }

    /// The injected error for this call of `endpoint`, if one is due: (status, Retry-After).
    fn injected(&self, endpoint: &str) -> Option<(u16, Option<u64>)> {
        let mut f = self.faults();
        let rule = f
            .inject
            .iter_mut()
            .find(|r| r.endpoint == endpoint && r.times > 0)?;
        if rule.after > 0 {
            rule.after -= 1;
            return None;
        }
        rule.times -= 1;
        tracing::debug!(
            endpoint,
            status = rule.status,
            "sandbox: injecting an error"
        );
        Some((rule.status, rule.retry_after))
    }

    /// A PUT landed: scan it, then let the routes react (upload events, media status).
    async fn object_stored(self: &Arc<Self>, key: String) {
        let path = self.store.object_path(&key);
        let infected = tokio::task::spawn_blocking(move || scan::infected(&path))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        self.scans
            .lock()
            .expect("scans")
            .insert(key.clone(), infected);
        guest::object_stored(self, &key, infected);
        conversation::object_stored(self, &key, infected);
    }

    /// The scan verdict of a stored object: `None` when no PUT of it landed.
    fn infected(&self, key: &str) -> Option<bool> {
        self.scans.lock().expect("scans").get(key).copied()
    }

    fn seen(&self, r: SeenRequest) {
        tracing::debug!(surface = r.surface, method = %r.method, path = %r.path, status = r.status, "sandbox request");
        self.requests.lock().expect("requests").push(r);
    }
}

/// Ends the connection without an answer, as a network failure would. `resume_unwind` skips
/// the panic hook, so nothing is printed; the server's connection task ends, and its socket
/// closes.
fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new(
        "connection dropped by the sandbox (injected fault)",
    ))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn origin(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}/")).expect("socket addresses form URLs")
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

async fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!("sandbox server stopped: {e}");
    }
}
