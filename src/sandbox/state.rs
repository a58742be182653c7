//! What every surface of the sandbox shares: its identity (credentials and ids), the faults in
//! force, and the record of what clients did. Nothing here answers a request.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

pub(crate) struct State {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) external_contact_id: String,
    pub(crate) deployment_id: String,
    pub(crate) conversation_id: String,
    pub(crate) communication_id: String,
    /// Issued access tokens with their expiry.
    pub(crate) tokens: Mutex<HashMap<String, Instant>>,
    /// Messages sent through the guest and conversation routes, in order.
    pub(crate) messages: Mutex<Vec<Value>>,
    /// Webhook deliveries received, in order.
    pub(crate) webhooks: Mutex<Vec<Value>>,
    requests: Mutex<Vec<SeenRequest>>,
    faults: Mutex<Faults>,
}

impl State {
    /// A fresh tenant: new credentials and ids on every start, so runs never share state.
    pub(crate) fn new(faults: Faults) -> Self {
        let uuid = || uuid::Uuid::new_v4().to_string();
        let simple = || uuid::Uuid::new_v4().simple().to_string();
        State {
            client_id: format!("sandbox-{}", &simple()[..8]),
            client_secret: simple(),
            external_contact_id: uuid(),
            deployment_id: uuid(),
            conversation_id: uuid(),
            communication_id: uuid(),
            tokens: Mutex::default(),
            messages: Mutex::default(),
            webhooks: Mutex::default(),
            requests: Mutex::default(),
            faults: Mutex::new(faults),
        }
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().expect("faults")
    }

    /// Uses up one unit of a counted fault; true if it applied.
    pub(crate) fn take(&self, counter: impl FnOnce(&mut Faults) -> &mut u32) -> bool {
        let mut f = self.faults();
        let c = counter(&mut f);
        let hit = *c > 0;
        *c = c.saturating_sub(1);
        hit
    }

    /// The injected error for this call of `endpoint`, if one is due: (status, Retry-After).
    pub(crate) fn injected(&self, endpoint: &str) -> Option<(u16, Option<u64>)> {
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

    pub(crate) fn seen(&self, r: SeenRequest) {
        tracing::debug!(surface = r.surface, method = %r.method, path = %r.path, status = r.status, "sandbox request");
        self.requests.lock().expect("requests").push(r);
    }

    pub(crate) fn requests(&self) -> MutexGuard<'_, Vec<SeenRequest>> {
        self.requests.lock().expect("requests")
    }
}
