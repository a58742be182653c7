//! What follows a confirmed upload: its completed record journaled under the event id the row
//! keeps, its webhook, and only then the source moved or removed. A completion the journal
//! could not keep leaves the file in place: the next run finds the upload confirmed, finishes it
//! under the same event id, and moves it then.

use std::path::PathBuf;

use super::job::{Job, earlier, state_error};
use super::stages::Pipeline;
use crate::audit::{self, Record};
use crate::error::Error;
use crate::inputs::Input;
use crate::moves;
use crate::routes::Confirmation;
use crate::state::Entry;
use crate::validate::ValidatedFile;

impl Pipeline {
    /// The record of a file this run completed, and the error if its completion was not
    /// journaled (then the file is not moved or removed).
    pub(super) async fn completed(
        &self,
        conf: Confirmation,
        resumed: bool,
        input: &Input,
        file: &ValidatedFile,
        job: Option<Job>,
        ms: u64,
    ) -> (Record, Option<Error>) {
        let shown = &input.path.display().to_string();
        let mut record = audit::completed(self.route_name(), shown, file, conf, ms);
        if let Some(j) = &job {
            record.event_id = j.event_id;
        }
        if resumed {
            record.extra.insert("resumed".into(), true.into());
        }
        let id = record.file_id.as_deref().unwrap_or("-");
        tracing::info!(file = %shown, id, ms, "uploaded and confirmed");
        if let Err(e) = self.complete(&mut record, job).await {
            if !matches!(self.after, moves::After::Keep) {
                let why = format!(
                    "not moved or removed: the completed upload could not be journaled ({e}); the file stays in place and the next run finishes it under the same event id"
                );
                record.extra.insert("moveError".into(), why.into());
            }
            return (record, Some(e));
        }
        self.after_upload(&mut record, shown, input, &file.meta)
            .await;
        (record, None)
    }

    /// `--move-to` / `--remove-source-files`, once the upload is confirmed and journaled; what
    /// happened goes into the record. A failed move leaves the file where it is (the next run
    /// skips its upload and tries the move again).
    pub(super) async fn after_upload(
        &self,
        record: &mut Record,
        shown: &str,
        input: &Input,
        meta: &std::fs::Metadata,
    ) {
        if matches!(self.after, moves::After::Keep) {
            return;
        }
        let after = self.after.below(&input.subfolder());
        self.relocate(record, shown, input, after, meta, "").await;
    }

    /// Does what `after` says with the input's file (off the async threads), only while its
    /// path still names the file `meta` describes, and puts what happened into the record
    /// (`movedTo`, `removed`, or `moveError` with a warning led by `what`). Where it was moved.
    pub(super) async fn relocate(
        &self,
        record: &mut Record,
        shown: &str,
        input: &Input,
        after: moves::After,
        meta: &std::fs::Metadata,
        what: &str,
    ) -> Option<PathBuf> {
        let (path, identity) = (input.path.clone(), moves::Identity::of(meta));
        let done = tokio::task::spawn_blocking(move || moves::apply(&after, &path, &identity))
            .await
            .expect("a move does not panic");
        match done {
            Ok(moves::Outcome::Moved { to }) => {
                record
                    .extra
                    .insert("movedTo".into(), to.display().to_string().into());
                return Some(to);
            }
            Ok(moves::Outcome::Removed) => {
                record.extra.insert("removed".into(), true.into());
            }
            Ok(moves::Outcome::Kept) => {}
            Err(e) => self.move_failed(record, shown, what, e.to_string()),
        }
        None
    }

    /// A move or removal that did not happen: said on stderr and in the record.
    pub(super) fn move_failed(&self, record: &mut Record, shown: &str, what: &str, why: String) {
        let line = format!("warning: {shown}: {what}{why}");
        self.progress.println(&crate::redact::for_terminal(&line));
        record.extra.insert("moveError".into(), why.into());
    }

    /// Journals the completed record, then fires its webhook (under the same event id whether
    /// or not the journal kept it: a resume sends that id again, which the receiver can drop)
    /// and journals how that went. `Err` when the completion was not journaled.
    async fn complete(&self, record: &mut Record, job: Option<Job>) -> Result<(), Error> {
        let payload = serde_json::to_value(&*record).expect("records serialise");
        let event_id = record.event_id.to_string();
        let store = job
            .as_ref()
            .and_then(|j| j.store.clone().map(|s| (s, j.id)));
        let mut journaled = Ok(());
        let no_webhook = !self.webhook.configured();
        if let Some((s, id)) = &store
            && let Err(e) = s
                .completed(
                    *id,
                    payload.clone(),
                    event_id.clone(),
                    self.webhook.tag(&payload),
                    no_webhook,
                )
                .await
        {
            tracing::error!("the completed upload could not be journaled: {e}");
            journaled = Err(state_error(e));
        }
        record.webhook = self.webhook.deliver(&event_id, &payload).await;
        if let Some((s, id)) = store
            && journaled.is_ok()
            && !no_webhook
        {
            s.settled(id, webhook_state(record.webhook.as_ref()));
        }
        journaled
    }

    /// An upload an earlier run completed but could not report to the webhook: delivers the
    /// stored record's event now, and says the file was skipped.
    pub(super) async fn settle(
        &self,
        shown: &str,
        file: &ValidatedFile,
        entry: Entry,
        job: Option<Job>,
        ms: u64,
    ) -> Record {
        let mut record =
            audit::skipped(self.route_name(), shown, &file.into(), &earlier(&entry), ms);
        if let (Some(payload), Some(event_id)) = (&entry.record, &entry.event_id) {
            record.webhook = self.webhook.deliver(event_id, payload).await;
        }
        if let Some(store) = job.and_then(|j| j.store) {
            store.settled(entry.id, webhook_state(record.webhook.as_ref()));
        }
        record
    }
}

/// A completed upload whose webhook event was neither delivered nor kept: the user must learn it.
pub(super) fn lost_event(record: &Record) -> Option<Error> {
    let why = record.webhook.as_ref()?.queue_error.as_ref()?;
    Some(Error::WebhookLost {
        message: why.clone(),
    })
}

fn webhook_state(d: Option<&audit::Delivery>) -> &'static str {
    match d {
        None => "none",
        Some(d) if d.delivered => "delivered",
        Some(d) if d.queued => "queued",
        Some(_) => "lost",
    }
}
