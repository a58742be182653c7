//! Stage 7: tell the integrator's system. Each delivery carries `Idempotency-Key` (the event id)
//! and, with a secret, `X-Gcupload-Signature: sha256=<hex HMAC of the body>`. A delivery that
//! fails within its retries goes to the durable outbox; it never turns a completed upload into a
//! failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::audit::Delivery;
use crate::secret::Secret;
use crate::state::Store;
use crate::{redact, retry};

pub const EVENT: &str = "genesys.file.uploaded";
const TIMEOUT: Duration = Duration::from_secs(5);
/// The outbox flush at the start of a run, all events together: a receiver that hangs must not
/// hold the uploads back.
const FLUSH_DEADLINE: Duration = Duration::from_secs(10);
/// How long a delivery still waits for its answer once the run is stopping (an interrupt).
const STOPPING: Duration = Duration::from_secs(1);

/// Deliveries are short: a few quick attempts, then the outbox takes over.
const POLICY: retry::Policy = retry::Policy {
    budget: Duration::from_secs(20),
    max_attempts: 3,
    min_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(2),
};

pub struct Webhook {
    client: reqwest::Client,
    url: Option<url::Url>,
    secret: Option<Secret>,
    /// Where undelivered events wait (the state store's outbox); none with `--no-state`.
    outbox: Option<Store>,
    /// The run is stopping (an interrupt): no delivery waits for a receiver any longer.
    stop: CancellationToken,
    /// The receiver failed to answer once in this run (it hangs, or is down): later events go
    /// straight to the outbox instead of each waiting out its own timeouts.
    unanswered: AtomicBool,
}

/// Why a POST did not land.
struct Failed {
    /// The receiver's HTTP status, when it answered.
    status: Option<u16>,
    why: String,
    /// Worth another attempt.
    again: bool,
    /// The receiver took the request and said nothing within the time given (or the run
    /// stopped waiting): it hangs.
    hung: bool,
}

/// One POST within `limit`.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    event_id: &str,
    secret: Option<&Secret>,
    limit: Duration,
) -> Result<u16, Failed> {
    let mut req = client
        .post(url)
        .timeout(limit)
        .header("content-type", "application/json")
        .header("Idempotency-Key", event_id)
        .body(body.to_vec());
    if let Some(s) = secret {
        req = req.header("X-Gcupload-Signature", signature(s, body));
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => {
            let s = r.status().as_u16();
            Err(Failed {
                status: Some(s),
                why: format!("the receiver answered HTTP {s}"),
                // A receiver's own 4xx (but 408/429) will not change on a retry.
                again: s >= 500 || s == 408 || s == 429,
                hung: false,
            })
        }
        // A refused or reset connection fails fast and may be a restart: worth a retry. A
        // receiver that hangs once will hang again.
        Err(e) => Err(Failed {
            status: None,
            why: crate::error::Error::network(crate::error::Stage::Webhook, &e).to_string(),
            again: !e.is_timeout(),
            hung: e.is_timeout(),
        }),
    }
}

/// `sha256=<hex>` of the body, keyed with the secret.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Webhook {
    /// Deliveries to `url` (none without one); `stop` cancelled ends every wait for the
    /// receiver (the event is kept in the outbox).
    pub fn new(
        client: reqwest::Client,
        url: Option<url::Url>,
        secret: Option<Secret>,
        outbox: Option<Store>,
        stop: CancellationToken,
    ) -> Self {
        Webhook {
            client,
            url,
            secret,
            outbox,
            stop,
            unanswered: AtomicBool::new(false),
        }
    }

    /// One POST of `body`, given up after `limit` or when the run stops. A receiver that hangs
    /// (no answer in time) is marked as not answering for the rest of the run.
    async fn attempt(
        &self,
        url: &url::Url,
        body: &[u8],
        event_id: &str,
        limit: Duration,
    ) -> Result<u16, Failed> {
        let secret = self.secret.as_ref();
        let post = post(&self.client, url.as_str(), body, event_id, secret, limit);
        tokio::pin!(post);
        let result = tokio::select! {
            r = &mut post => r,
            // Stopping: a receiver that answers promptly still gets the event.
            _ = self.stop.cancelled() => tokio::time::timeout(STOPPING, &mut post)
                .await
                .unwrap_or_else(|_| Err(Failed {
                    status: None,
                    why: "the run was interrupted before the receiver answered".into(),
                    again: false,
                    hung: true,
                })),
        };
        if let Err(Failed { hung: true, .. }) = &result {
            self.unanswered.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Whether events are delivered at all (a URL is set).
    pub fn configured(&self) -> bool {
        self.url.is_some()
    }

    /// POSTs `{"event", "payload"}` for a completed record (`payload`, its JSON), with a few
    /// quick retries; what still fails is queued for a later run. `None` without a webhook URL.
    pub async fn deliver(&self, event_id: &str, payload: &serde_json::Value) -> Option<Delivery> {
        let url = self.url.as_ref()?;
        let envelope = json!({ "event": EVENT, "payload": payload });
        let body = serde_json::to_vec(&envelope).expect("records serialise");
        let mut retrier = retry::Retrier::new(&POLICY, crate::error::Stage::Webhook);
        let mut made = 0;
        let (status, error) = loop {
            if made == 0 && self.unanswered.load(Ordering::Relaxed) {
                break (None, "not sent: the receiver did not answer earlier in this run; kept for the next run".to_string());
            }
            made += 1;
            match self.attempt(url, &body, event_id, TIMEOUT).await {
                Ok(s) => {
                    return Some(Delivery {
                        delivered: true,
                        http_status: Some(s),
                        error: None,
                        attempts: made,
                        queued: false,
                        queue_error: None,
                    });
                }
                Err(f) => {
                    let err =
                        crate::error::Error::protocol(crate::error::Stage::Webhook, f.why.clone());
                    if !f.again || self.pause(&mut retrier, err, &f.why).await {
                        break (f.status, f.why);
                    }
                }
            }
        };
        tracing::warn!(url = %redact::url(url), "webhook not delivered: {error}");
        let kept = self.queue(event_id, &envelope, &error).await;
        Some(Delivery {
            delivered: false,
            http_status: status,
            queued: kept.is_ok(),
            queue_error: kept.err(),
            error: Some(error),
            attempts: made,
        })
    }

    /// Waits before the next attempt; true when there is none (out of budget, or the run stops).
    async fn pause(
        &self,
        retrier: &mut retry::Retrier,
        err: crate::error::Error,
        why: &str,
    ) -> bool {
        tokio::select! {
            r = retrier.pause(err, None, why) => r.is_err(),
            _ = self.stop.cancelled() => true,
        }
    }

    /// Keeps an undelivered event for a later run; `Err` says why it could not be kept.
    async fn queue(
        &self,
        event_id: &str,
        envelope: &serde_json::Value,
        error: &str,
    ) -> Result<(), String> {
        let Some(store) = self.outbox.clone() else {
            return Err("there is no outbox (--no-state)".into());
        };
        let (id, body, why) = (event_id.to_string(), envelope.clone(), error.to_string());
        let mac = self.tag(&body);
        let kept =
            tokio::task::spawn_blocking(move || store.queue(&id, &body, &why, mac.as_deref()))
                .await;
        match kept {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::error!("the webhook event could not be saved to the outbox: {e}");
                Err(format!("the outbox could not keep it: {e}"))
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// The tag that marks `value` as written by gcupload: its HMAC with the webhook secret.
    /// Without a secret nothing is signed, so nothing needs a tag.
    pub fn tag(&self, value: &serde_json::Value) -> Option<String> {
        let secret = self.secret.as_ref()?;
        Some(signature(secret, value.to_string().as_bytes()))
    }

    /// Whether a stored value may be signed and sent: with a secret, only with its tag
    /// (checked in constant time by `hmac`).
    fn genuine(&self, value: &serde_json::Value, mac: Option<&str>) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        let tag = mac
            .and_then(|m| m.strip_prefix("sha256="))
            .and_then(|h| hex::decode(h).ok());
        let Some(tag) = tag else { return false };
        let mut check = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        check.update(value.to_string().as_bytes());
        check.verify_slice(&tag).is_ok()
    }

    /// Re-sends what earlier runs could not deliver, to the webhook URL configured now.
    /// Returns (delivered, still pending), or `None` while another process delivers them.
    pub async fn flush_outbox(&self) -> Result<Option<(usize, usize)>, crate::state::StateError> {
        let (Some(store), Some(url)) = (self.outbox.clone(), self.url.as_ref()) else {
            return Ok(Some((0, 0)));
        };
        let Some(_turn) = store.flush_turn()? else {
            tracing::info!("another run is delivering the webhook outbox; leaving it to that run");
            return Ok(None);
        };
        let adopted = store.adopt_owed_events(|record, record_mac| {
            let envelope = json!({ "event": EVENT, "payload": record });
            // A record gcupload did not tag keeps no tag: the flush below refuses to sign it.
            let mac = self
                .genuine(record, record_mac)
                .then(|| self.tag(&envelope))
                .flatten();
            (envelope, mac)
        })?;
        if adopted > 0 {
            tracing::info!(
                adopted,
                "webhook events of interrupted runs queued for delivery"
            );
        }
        let queued = {
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.queued())
                .await
                .expect("the outbox read does not panic")?
        };
        let (mut delivered, mut pending) = (0, 0);
        let deadline = Instant::now() + FLUSH_DEADLINE;
        let mut queued = queued.into_iter();
        for q in queued.by_ref() {
            if !self.genuine(&q.body, q.mac.as_deref()) {
                tracing::warn!(event_id = %q.event_id, "a queued event was not written by gcupload with this webhook secret; kept aside, not sent");
                store.quarantine(
                    &q,
                    "not queued by gcupload with the configured webhook secret",
                )?;
                continue;
            }
            // The rest waits for a later run once the flush's
            // time is up or the run stops (or, below, the receiver failed to answer): none of
            // them holds the uploads back.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stop.is_cancelled() {
                pending += 1;
                break;
            }
            let body = serde_json::to_vec(&q.body).expect("stored bodies serialise");
            match self
                .attempt(url, &body, &q.event_id, left.min(TIMEOUT))
                .await
            {
                Ok(_) => {
                    tracing::info!(event_id = %q.event_id, "queued webhook event delivered");
                    store.delivered(&q.event_id)?;
                    delivered += 1;
                }
                Err(f) => {
                    store.queue(&q.event_id, &q.body, &f.why, q.mac.as_deref())?;
                    pending += 1;
                    // Down or hanging: the other events would fare no better now.
                    if f.status.is_none() {
                        break;
                    }
                }
            }
        }
        pending += queued.count();
        Ok(Some((delivered, pending)))
    }
}
