//! A file's journal row as this run advances it, the lease kept while it is in flight, and
//! what an earlier run's row says.

use std::time::Duration;

use serde_json::Value;

use crate::audit::Skip;
use crate::error::{Error, Result};
use crate::routes::Uploaded;
use crate::state::{Entry, Step, Store};

/// The file's journal row, as far as this run got; without a state store, a row of none.
pub(super) struct Job {
    pub(super) store: Option<Store>,
    pub(super) id: i64,
    pub(super) step: Step,
    /// The completed record's event id: the one an earlier run journaled for this row, so a
    /// resume reports the same event under the same idempotency key.
    pub(super) event_id: uuid::Uuid,
    /// Whether the row holds that event id already (since the claim).
    pub(super) event_kept: bool,
}

impl Job {
    pub(super) fn new(store: Option<&Store>, entry: &Entry) -> Job {
        let kept = entry
            .event_id
            .as_deref()
            .and_then(|e| uuid::Uuid::parse_str(e).ok());
        Job {
            store: store.cloned(),
            id: entry.id,
            step: entry.step,
            event_id: kept.unwrap_or_else(uuid::Uuid::new_v4),
            event_kept: kept.is_some(),
        }
    }

    /// A step whose loss a resume repairs (see [`Store::passed`]): queued, not waited for.
    pub(super) fn passed(&mut self, step: Step) {
        self.step = step;
        if let Some(store) = &self.store {
            store.passed(self.id, step);
        }
    }

    pub(super) async fn advance(&mut self, step: Step, up: Option<&Uploaded>) -> Result<()> {
        self.step = step;
        let Some(store) = &self.store else {
            return Ok(());
        };
        let (file_id, confirm_url) = up.map_or((None, None), |u| {
            (
                Some(u.file_id.clone()),
                u.confirm_url.as_ref().map(|c| c.to_string()),
            )
        });
        store
            .advance(self.id, step, file_id, confirm_url)
            .await
            .map_err(state_error)
    }
}

pub fn state_error(e: crate::state::StateError) -> Error {
    Error::State {
        message: e.to_string(),
        server: e.is_server(),
    }
}

/// Keeps a file's lease while it is in flight.
pub(super) struct Heartbeat(Option<tokio::task::JoinHandle<()>>);

impl Heartbeat {
    pub(super) fn start(job: &Job) -> Heartbeat {
        let Some(store) = job.store.clone() else {
            return Heartbeat(None);
        };
        let id = job.id;
        let every = Duration::from_millis((crate::state::LEASE_MS / 3) as u64);
        Heartbeat(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = store.renew(id).await {
                    tracing::warn!("the lease of journal row {id} could not be renewed: {e}");
                }
            }
        })))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

/// The earlier run's completed upload, as a skip.
pub(super) fn earlier(e: &Entry) -> Skip {
    let field = |k: &str| {
        e.record
            .as_ref()
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Skip::Uploaded {
        file_id: field("fileId"),
        event_id: e.event_id.clone(),
        at: e.completed_at.clone(),
    }
}
