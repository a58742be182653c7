//! The webhook outbox: events that could not be delivered within their retries, kept until a
//! later run (or `gcupload webhook flush`) delivers them. An event keeps only its body: it is
//! delivered to the webhook URL configured at flush time, never to a URL read from disk.

use serde_json::Value;

use super::error::Result;

/// An event waiting for delivery.
#[derive(Debug, Clone)]
pub struct Queued {
    pub event_id: String,
    /// The exact envelope to POST.
    pub body: Value,
    pub attempts: i64,
    /// The tag gcupload wrote with the body (HMAC with the webhook secret of that run).
    pub mac: Option<String>,
}

/// A queued event as stored: id, body (JSON text, unchecked), attempts, tag.
pub(super) type QueuedRow = (String, String, i64, Option<String>);

/// The events of `rows` whose body is JSON; the others go to `quarantine` (id, body, why).
pub(super) fn parse(
    rows: Vec<QueuedRow>,
    mut quarantine: impl FnMut(&str, &str, &str) -> Result<()>,
) -> Result<Vec<Queued>> {
    let mut out = Vec::new();
    for (event_id, body, attempts, mac) in rows {
        match serde_json::from_str(&body) {
            Ok(body) => out.push(Queued {
                event_id,
                body,
                attempts,
                mac,
            }),
            Err(e) => quarantine(&event_id, &body, &e.to_string())?,
        }
    }
    Ok(out)
}

/// The right to deliver the outbox, held until dropped (see `Store::flush_turn`): a
/// lock file of the state directory, or an advisory lock of the database session.
pub struct Turn {
    _file: Option<std::fs::File>,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl Turn {
    pub(super) fn file(f: std::fs::File) -> Turn {
        Turn {
            _file: Some(f),
            release: None,
        }
    }

    /// A turn that `release` gives back.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) fn released_by(release: impl FnOnce() + Send + 'static) -> Turn {
        Turn {
            _file: None,
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}
