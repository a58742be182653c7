//! Files waiting to be taken, once each by path: a timer per file that each new event pushes
//! back (the settle time), and the files the pipeline holds, so an event during an upload
//! brings the file back afterwards instead of sending it twice at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::time::{DelayQueue, delay_queue::Key};

#[derive(Default)]
pub(super) struct Pending {
    due: DelayQueue<PathBuf>,
    keys: HashMap<PathBuf, Key>,
    /// In the pipeline; `true` when an event came meanwhile (look again when it is back).
    busy: HashMap<PathBuf, bool>,
}

impl Pending {
    /// An event: take `path` once it has been quiet for `settle`.
    pub(super) fn touched(&mut self, path: PathBuf, settle: Duration) {
        if let Some(dirty) = self.busy.get_mut(&path) {
            *dirty = true;
        } else if let Some(key) = self.keys.get(&path) {
            self.due.reset(key, settle);
        } else {
            let key = self.due.insert(path.clone(), settle);
            self.keys.insert(path, key);
        }
    }

    /// Found by a scan: queued unless already waiting or in the pipeline.
    pub(super) fn rescanned(&mut self, path: PathBuf, delay: Duration) {
        if !self.busy.contains_key(&path) && !self.keys.contains_key(&path) {
            let key = self.due.insert(path.clone(), delay);
            self.keys.insert(path, key);
        }
    }

    /// Deleted or renamed away before it was taken.
    pub(super) fn forget(&mut self, path: &Path) {
        if let Some(key) = self.keys.remove(path) {
            self.due.remove(&key);
        }
    }

    pub(super) fn waiting(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The next file whose quiet time is over (pending forever while none waits).
    pub(super) async fn next_due(&mut self) -> Option<PathBuf> {
        let path = self.due.next().await?.into_inner();
        self.keys.remove(&path);
        Some(path)
    }

    pub(super) fn sent(&mut self, path: PathBuf) {
        self.busy.insert(path, false);
    }

    /// Back from the pipeline: again after `retry` (deferred), or after `settle` if it changed
    /// while it was being sent (the journal then decides whether it is new content).
    pub(super) fn finished(&mut self, path: PathBuf, retry: Option<Duration>, settle: Duration) {
        let dirty = self.busy.remove(&path).unwrap_or(false);
        match retry {
            Some(after) => self.rescanned(path, after),
            None if dirty => self.touched(path, settle),
            None => {}
        }
    }
}
