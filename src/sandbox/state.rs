//! What every surface of the sandbox shares: its identity (credentials and ids), the faults in
//! force, and the record of what clients did. Nothing here answers a request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::identity::Identity;

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
    /// The deployment's allowed domains: a guest socket handshake whose `Origin` host is not one
    /// of them is refused with HTTP 403. Empty: any Origin.
    pub guest_allowed_origins: Vec<String>,
    /// An older deployment: SessionResponse carries no `allowedMedia`, and config.json has no
    /// `fileUpload.enableAttachments`, only `fileUpload.modes` with the rules.
    pub guest_omit_allowed_media: bool,
    /// The next n guest configureSession calls (without startNew) of an existing session find
    /// its conversation ended: the session answers `readOnly: true`.
    pub read_only_sessions: u32,
    /// The next n guest configureSession calls find their session expired (4006).
    pub expire_sessions: u32,
    /// The next n guest requests answer TooManyRequestsErrorMessage (retryAfter 1 s).
    pub guest_rate_limit: u32,
    /// The platform's `messages.per.session.rate.per.second`: an onMessage beyond this many in
    /// the last second of its session answers 4029 with `retryAfter` (0: no limit).
    pub guest_messages_per_sec: u32,
    /// The next this many onMessage frames are held back `guest_message_hold_ms` on their way
    /// in (a network that delays a frame): it arrives, and counts, later than it left.
    pub hold_guest_messages: u32,
    pub guest_message_hold_ms: u64,
    /// The status of an external-contact confirm refused because no object (or not the
    /// announced size) landed: 400, 404 or 409 (the contract leaves it open), code
    /// `upload.not.found` / `upload.size.mismatch`.
    pub absent_confirm_status: u16,
    /// How a conversation media poll answers media whose bytes never landed (undocumented):
    /// `uploading` (the default, still waiting for them), `404` (`not.found`: the upload is
    /// gone), `410` (gone) or `invalid`.
    pub unlanded_media: String,
    /// Fill the fields the Platform API marks deprecated (`MessageDetails.media`,
    /// `MessageData.textBody`/`media`); off, they are left empty, as the API allows.
    pub fill_deprecated_fields: bool,
    /// The next n conversation message sends are taken but answered (and kept) with
    /// `status: "failed"`: they did not go out.
    pub fail_sends: u32,
    /// How long conversation media stays `uploading` after its object lands.
    pub media_delay_ms: u64,
    /// The Platform API's rate limit, when non-zero: this many calls (`/api/…` and the token
    /// endpoint) per `apiLimitWindowMs`, sliding; beyond it, 429 with `Retry-After` (the seconds
    /// until the window has room) and `too.many.requests.retry.after`.
    pub api_limit_calls: u32,
    /// The window of `apiLimitCalls` (the platform's is a minute).
    pub api_limit_window_ms: u64,
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
    /// The next n conversation message sends are lost on the way: the connection is dropped
    /// before the message is performed, so it never reaches the conversation.
    pub drop_sends: u32,
    /// The next guest connection is closed by the server after it sent this many frames.
    pub close_guest_after_frames: u32,
    /// The next n guest uploads: the session's sockets are closed 200 ms after the object lands
    /// (the client waits for its upload event by then); the event goes to sockets bound later.
    pub close_guest_on_upload: u32,
    /// The next n guest upload events are lost: the session's sockets are closed instead.
    pub lose_guest_upload_events: u32,
    /// The next n guest onMessage are sent, then the socket closes before their echo.
    pub lose_guest_sends: u32,
    /// The next n guest onMessage close the socket unread: nothing is sent.
    pub drop_guest_sends: u32,
    /// How getAttachment answers an attachment issued and not uploaded yet (undocumented):
    /// `upload-url` (a PresignedUrlResponse to upload to, the default), `4010`, `4009`, or
    /// `silent` (no answer at all).
    pub guest_pending_get_attachment: String,
    /// How deleteAttachment answers an attachment never uploaded (undocumented): `deleted`
    /// (AttachmentDeletedResponse, the default), `4009`, `4010`, or `silent`.
    pub guest_unuploaded_delete: String,
    /// How long after its object lands a guest attachment counts as uploaded and its upload
    /// event is sent (the platform's scan), milliseconds.
    pub guest_scan_delay_ms: u64,
    /// Requests held at a point of their handling, so a test can kill the client there.
    pub pause: Vec<Pause>,
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
    /// For `put`: the S3 error code of the answer (`InternalError`, `SlowDown`,
    /// `RequestTimeout`, `InvalidArgument`, ...); S3's usual code for the status when absent.
    #[serde(default)]
    pub code: Option<String>,
}

/// Where a request can be held: each point is reached once the sandbox has done what the name
/// says and before it answers (see [`Pause`]).
pub const PAUSE_POINTS: [&str; 9] = [
    "put-start",
    "put-mid",
    "put-stored",
    "request-url",
    "confirm",
    "send-start",
    "send",
    "webhook",
    "token",
];

/// Holds the n-th request to reach `point` for `ms` milliseconds before the sandbox goes on;
/// the rest of the server keeps serving. A point not in [`PAUSE_POINTS`] is ignored (it is never
/// reached), as an [`Inject`] rule for an unknown endpoint is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    pub point: String,
    pub ms: u64,
    /// Let this many requests through first.
    #[serde(default)]
    pub after: u32,
    /// Then hold this many.
    #[serde(default = "one")]
    pub times: u32,
}

impl Pause {
    pub fn new(point: &str, ms: u64) -> Self {
        Pause {
            point: point.into(),
            ms,
            after: 0,
            times: 1,
        }
    }
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
            code: None,
        }
    }

    /// An S3 error answer for `put`, with its code: `Inject::s3(500, "InternalError")`.
    pub fn s3(status: u16, code: &str) -> Self {
        Inject {
            code: Some(code.into()),
            ..Inject::new("put", status, None)
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
            guest_omit_allowed_media: false,
            guest_allowed_origins: Vec::new(),
            read_only_sessions: 0,
            expire_sessions: 0,
            guest_rate_limit: 0,
            guest_messages_per_sec: 2,
            hold_guest_messages: 0,
            guest_message_hold_ms: 150,
            absent_confirm_status: 400,
            unlanded_media: "uploading".into(),
            fill_deprecated_fields: false,
            fail_sends: 0,
            media_delay_ms: 300,
            api_latency_ms: 0,
            api_limit_calls: 0,
            api_limit_window_ms: 60_000,
            inject: Vec::new(),
            drop_puts: 0,
            put_delay_ms: 0,
            lose_confirms: 0,
            lose_sends: 0,
            drop_sends: 0,
            close_guest_after_frames: 0,
            close_guest_on_upload: 0,
            lose_guest_upload_events: 0,
            lose_guest_sends: 0,
            drop_guest_sends: 0,
            guest_scan_delay_ms: 0,
            guest_pending_get_attachment: "upload-url".into(),
            guest_unuploaded_delete: "deleted".into(),
            pause: Vec::new(),
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
    /// How many pauses have started, by point (every known point, from 0).
    paused: Mutex<BTreeMap<&'static str, u32>>,
    /// Requests refused by a rate limit, by surface (`guest`: 4029, `api`: 429).
    refused: Mutex<BTreeMap<&'static str, u32>>,
    /// When the API calls inside the rate limit's window were accepted.
    api_calls: Mutex<std::collections::VecDeque<Instant>>,
}

impl State {
    /// A tenant with `identity`'s credentials and ids (fresh on every start unless kept).
    pub(crate) fn new(faults: Faults, identity: Identity) -> Self {
        State {
            client_id: identity.client_id,
            client_secret: identity.client_secret,
            external_contact_id: identity.external_contact_id,
            deployment_id: identity.deployment_id,
            conversation_id: identity.conversation_id,
            communication_id: identity.communication_id,
            tokens: Mutex::default(),
            messages: Mutex::default(),
            webhooks: Mutex::default(),
            requests: Mutex::default(),
            faults: Mutex::new(faults),
            paused: Mutex::new(PAUSE_POINTS.iter().map(|p| (*p, 0)).collect()),
            refused: Mutex::new([("guest", 0), ("api", 0)].into_iter().collect()),
            api_calls: Mutex::default(),
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

    /// The injected error for this call of `endpoint`, if one is due.
    pub(crate) fn injected(&self, endpoint: &str) -> Option<Inject> {
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
        Some(rule.clone())
    }

    /// Holds the request at `point` if a pause is due there. The caller has already done what
    /// the point promises, so a client killed meanwhile leaves that done and unanswered.
    pub(crate) async fn pause(&self, point: &'static str) {
        if let Some(ms) = self.pause_due(point) {
            self.hold(point, ms).await;
        }
    }

    /// The length of the pause due at `point`, if one is: uses it up (or one of its `after`).
    pub(crate) fn pause_due(&self, point: &str) -> Option<u64> {
        let mut f = self.faults();
        let rule = f
            .pause
            .iter_mut()
            .find(|p| p.point == point && p.times > 0)?;
        if rule.after > 0 {
            rule.after -= 1;
            return None;
        }
        rule.times -= 1;
        Some(rule.ms)
    }

    /// Counts the pause as started (tests wait for that before killing the client), then sleeps.
    pub(crate) async fn hold(&self, point: &'static str, ms: u64) {
        *self
            .paused
            .lock()
            .expect("paused")
            .entry(point)
            .or_default() += 1;
        tracing::debug!(point, ms, "sandbox: pausing");
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// How many pauses have started at each point.
    pub(crate) fn paused(&self) -> BTreeMap<&'static str, u32> {
        self.paused.lock().expect("paused").clone()
    }

    /// Whether one more API call is within the rate limit (then it is counted); if not, the
    /// seconds until the window has room.
    pub(crate) fn admit_api_call(&self) -> Result<(), u64> {
        let (limit, window) = {
            let f = self.faults();
            (
                f.api_limit_calls,
                Duration::from_millis(f.api_limit_window_ms),
            )
        };
        if limit == 0 {
            return Ok(());
        }
        admit(
            &mut self.api_calls.lock().expect("api calls"),
            limit,
            window,
        )
    }

    /// Counts a request refused by a rate limit on `surface`.
    pub(crate) fn count_refusal(&self, surface: &'static str) {
        *self
            .refused
            .lock()
            .expect("refused")
            .entry(surface)
            .or_default() += 1;
    }

    /// Requests refused by a rate limit so far, by surface.
    pub(crate) fn refused(&self) -> BTreeMap<&'static str, u32> {
        self.refused.lock().expect("refused").clone()
    }

    pub(crate) fn seen(&self, r: SeenRequest) {
        tracing::debug!(surface = r.surface, method = %r.method, path = %r.path, status = r.status, "sandbox request");
        self.requests.lock().expect("requests").push(r);
    }

    pub(crate) fn requests(&self) -> MutexGuard<'_, Vec<SeenRequest>> {
        self.requests.lock().expect("requests")
    }
}

/// A sliding-window rate limit over `times` (when the admitted requests came): at most `limit`
/// in any `window`. Admitted, the request is counted; refused, the whole seconds until the
/// window has room (`Retry-After`, `retryAfter`).
pub(crate) fn admit(
    times: &mut std::collections::VecDeque<Instant>,
    limit: u32,
    window: Duration,
) -> Result<(), u64> {
    let now = Instant::now();
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        times.pop_front();
    }
    if times.len() >= limit as usize {
        let left = window.saturating_sub(now.duration_since(times[0]));
        return Err(left.as_secs_f64().ceil().max(1.0) as u64);
    }
    times.push_back(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_pauses(pauses: Value) -> State {
        State::new(
            serde_json::from_value(json!({ "pause": pauses })).expect("faults"),
            super::Identity::fresh(),
        )
    }

    #[test]
    fn a_pause_takes_its_defaults_from_the_json() {
        let st = with_pauses(json!([{"point": "put-start", "ms": 10}]));
        let p = st.faults().pause[0].clone();
        assert_eq!(
            (p.point.as_str(), p.ms, p.after, p.times),
            ("put-start", 10, 0, 1)
        );
    }

    #[test]
    fn after_and_times_count_the_requests_that_reach_the_point() {
        let st = with_pauses(json!([{"point": "confirm", "ms": 5, "after": 1, "times": 2}]));
        let due: Vec<_> = (0..4).map(|_| st.pause_due("confirm")).collect();
        assert_eq!(due, [None, Some(5), Some(5), None]);
        assert_eq!(st.pause_due("send"), None);
    }

    /// An unknown point is ignored, as an `inject` rule for an unknown endpoint is: accepted,
    /// never reached, never counted.
    #[test]
    fn a_pause_at_an_unknown_point_is_ignored() {
        let st = with_pauses(json!([{"point": "put-strat", "ms": 5}]));
        for point in PAUSE_POINTS {
            assert_eq!(st.pause_due(point), None, "{point}");
        }
        assert_eq!(st.faults().pause[0].times, 1, "left as it was");
        let paused = st.paused();
        assert_eq!(paused.len(), PAUSE_POINTS.len());
        assert!(paused.values().all(|n| *n == 0));
    }

    #[tokio::test]
    async fn a_pause_is_counted_when_it_starts() {
        let st = with_pauses(json!([{"point": "token", "ms": 1}]));
        st.pause("token").await;
        st.pause("token").await;
        assert_eq!(st.paused()["token"], 1);
    }
}
