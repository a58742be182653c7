//! Attachments a file may leave behind: given an upload URL (and maybe uploaded) but carried by
//! no message. When the file fails or is abandoned, each is deleted as the transport SDK's
//! `detach` does (`core/AttachmentHandlerImpl.kt`, `detach`: `shyrka/send/DeleteAttachmentRequest.kt`,
//! answered by `shyrka/receive/AttachmentDeletedResponse.kt`), and the record says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::confirm::UNDOCUMENTED_WAIT;
use super::frames;
use super::session::Link;
use super::socket::SocketError;
use crate::error::{Error, Result, Stage};

/// How long the deletions of one file may take: the run is ending or was interrupted.
const DELETE_WAIT: Duration = Duration::from_secs(15);

/// The attachment ids each file may orphan, by the file's path.
#[derive(Default)]
pub(super) struct Orphans(Mutex<HashMap<PathBuf, Vec<String>>>);

impl Orphans {
    /// `id` is on the platform for `file` and no message carries it yet.
    pub(super) fn track(&self, file: &Path, id: &str) {
        let mut all = self.0.lock().expect("orphans");
        let ids = all.entry(file.to_path_buf()).or_default();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    /// `id` is no longer ours to delete: a message carries it (or may), or the platform refused it.
    pub(super) fn settle(&self, file: &Path, id: &str) {
        if let Some(ids) = self.0.lock().expect("orphans").get_mut(file) {
            ids.retain(|i| i != id);
        }
    }

    /// The file's message went out: none of its attachments is ours to delete any more.
    pub(super) fn forget(&self, file: &Path) {
        self.0.lock().expect("orphans").remove(file);
    }

    pub(super) fn take(&self, file: &Path) -> Vec<String> {
        self.0
            .lock()
            .expect("orphans")
            .remove(file)
            .unwrap_or_default()
    }
}

impl Link {
    /// Deletes each attachment; what the record says of each: `{attachmentId, deleted, error?}`.
    pub(super) async fn delete_attachments(&self, ids: Vec<String>) -> Vec<Value> {
        let mut out = Vec::new();
        for id in ids {
            let done = tokio::time::timeout(DELETE_WAIT, self.delete_attachment(&id)).await;
            let mut absent = false;
            let error = match done {
                Ok(Ok(Deleted::Now)) => None,
                Ok(Ok(Deleted::Absent)) => {
                    absent = true;
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {} s", DELETE_WAIT.as_secs())),
            };
            match &error {
                None => {
                    tracing::info!(attachment = %id, "deleted the attachment no message carries")
                }
                Some(e) => {
                    tracing::warn!(attachment = %id, "the attachment no message carries could not be deleted: {e}")
                }
            }
            let mut entry = json!({"attachmentId": id, "deleted": error.is_none()});
            if let Some(e) = error {
                entry["error"] = e.into();
            }
            if absent {
                entry["absent"] = true.into();
            }
            out.push(entry);
        }
        out
    }

    /// deleteAttachment. Its answer for an attachment never uploaded is undocumented: deleted,
    /// 4009 (not found) or 4010 (not uploaded) — both say nothing of it is stored — or none, which
    /// is waited for [`UNDOCUMENTED_WAIT`] at most.
    async fn delete_attachment(&self, id: &str) -> Result<Deleted> {
        let mut guard = self.session().await?;
        let ask = frames::delete_attachment(id);
        let answer = match self
            .ask_within(&mut guard, ask, Stage::Send, UNDOCUMENTED_WAIT)
            .await
        {
            Err(SocketError::Other(e)) if says_absent(&e) => return Ok(Deleted::Absent),
            other => other.map_err(Error::from)?,
        };
        answer.require_class("AttachmentDeletedResponse", "deleteAttachment", Stage::Send)?;
        Ok(Deleted::Now)
    }
}

/// What a deleteAttachment did.
enum Deleted {
    /// AttachmentDeletedResponse.
    Now,
    /// The platform has no stored upload of it (4009 attachment not found, 4010 not uploaded).
    Absent,
}

fn says_absent(e: &Error) -> bool {
    e.remote()
        .and_then(|r| r.code.as_deref())
        .is_some_and(|c| c == "4009" || c == "4010")
}
