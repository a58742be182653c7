//! The webhook outbox: events that could not be delivered within their retries, kept until a
//! later run (or `gcupload webhook flush`) delivers them. An event keeps only its body: it is
//! delivered to the webhook URL configured at flush time, never to a URL read from disk.

use serde_json::Value;

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

/// The right to deliver the outbox, held until dropped (see [`super::Store::flush_turn`]): a
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
