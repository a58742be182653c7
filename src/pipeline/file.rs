//! One file's way through the stages, journaled: validate, claim it in the journal (or skip
//! it), then upload, confirm and send from wherever an earlier run left it, advancing the
//! journal before each step that cannot be undone.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::SemaphorePermit;

use super::ahead::Ahead;
use super::complete::lost_event;
use super::job::{Heartbeat, Job, earlier, state_error};
use super::stages::{BarGuard, Pipeline};
use crate::arrival::Why;
use crate::audit::{self, Record, Skip};
use crate::error::{Error, Result, Stage};
use crate::error_reporting;
use crate::inputs::{Input, Origin};
use crate::routes::{Confirmation, UploadTarget, Uploaded};
use crate::state::{Claim, Entry, Key, Remembered, Seen, Step};
use crate::validate::{self, ValidatedFile};
use crate::{retry, transfer};

/// Protocol reference: a URL is valid 15 minutes; don't start a PUT on one older than 10.
const URL_FRESHNESS: Duration = Duration::from_secs(600);

/// How far a file got: what its failure record and `--failed-to` need.
#[derive(Default)]
pub(super) struct Reached {
    pub(super) validated: Option<ValidatedFile>,
    pub(super) job: Option<Job>,
    /// What validation looked at when it refused the file.
    pub(super) judged: Option<std::fs::Metadata>,
}

/// How one file ended, before its record is written.
enum Outcome {
    /// A dry run: what would happen (and whether the journal says it was sent already).
    Planned(Option<Entry>),
    Skipped(Skip),
    /// Found completed in the journal by its stamp, without reading the file: a skip.
    Remembered(Box<Remembered>, std::fs::Metadata),
    /// An earlier run completed it but was stopped before its webhook: the stored record.
    Settle(Entry),
    Completed(Confirmation, bool),
    /// Found still arriving: nothing sent, journaled or moved.
    Deferred(Why),
}

impl Pipeline {
    /// The file's record, and its error if it failed. `slot` is the file's share of `--jobs`,
    /// held through the steps that talk to the platform; what follows them (the completion
    /// journaled, the webhook, the move, or the failure's) lets the next file start.
    pub(super) async fn upload_one(
        &self,
        input: &Input,
        ahead: Ahead,
        slot: SemaphorePermit<'_>,
    ) -> (Record, Option<Error>) {
        let started = Instant::now();
        let shown = input.path.display().to_string();
        let mut reached = Reached::default();
        let result = tokio::select! {
            r = retry::with_budget(&self.retry, self.steps(input, ahead, &mut reached)) => r,
            _ = self.abandon.cancelled() => Err(Error::Interrupted),
        };
        drop(slot);
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(outcome) => {
                let file = reached.validated.as_ref();
                let (record, unjournaled) = self
                    .record(outcome, &shown, input, file, reached.job, ms)
                    .await;
                let lost = unjournaled.or_else(|| lost_event(&record));
                if let Some(e) = &lost {
                    self.progress.println(&error_reporting::human(&shown, e));
                }
                (record, lost)
            }
            Err(e) => self.failed(input, &shown, reached, e, ms).await,
        }
    }

    /// The record of a file that did not fail, and the error of a completion the journal could
    /// not keep; `file` is what validation found (every outcome but `Remembered` comes after it).
    async fn record(
        &self,
        outcome: Outcome,
        shown: &str,
        input: &Input,
        file: Option<&ValidatedFile>,
        job: Option<Job>,
        ms: u64,
    ) -> (Record, Option<Error>) {
        let route = self.route_name();
        if let Outcome::Deferred(why) = &outcome {
            tracing::info!(file = %shown, "deferred: {why}");
            return (audit::deferred(route, shown, why, ms), None);
        }
        if let Outcome::Remembered(r, meta) = &outcome {
            tracing::debug!(file = %shown, "unchanged since its journaled upload (same stamp): skipped without reading it");
            let skip = earlier(&r.entry);
            let mut record = audit::skipped(route, shown, &content(r), &skip, ms);
            self.after_upload(&mut record, shown, input, meta).await;
            return (record, None);
        }
        let file = file.expect("validated");
        let record = match outcome {
            Outcome::Remembered(..) | Outcome::Deferred(_) => unreachable!("answered above"),
            Outcome::Planned(earlier) => {
                let mut record = audit::planned(route, shown, file, ms);
                record.extra.extend(self.plan.clone());
                if earlier.is_some() {
                    record.extra.insert("wouldSkip".into(), true.into());
                }
                record
            }
            Outcome::Skipped(skip) => {
                let mut record = audit::skipped(route, shown, &file.into(), &skip, ms);
                if matches!(skip, Skip::Uploaded { .. }) {
                    self.after_upload(&mut record, shown, input, &file.meta)
                        .await;
                }
                record
            }
            Outcome::Settle(entry) => {
                let mut record = self.settle(shown, file, entry, job, ms).await;
                self.after_upload(&mut record, shown, input, &file.meta)
                    .await;
                record
            }
            Outcome::Completed(conf, resumed) => {
                return self.completed(conf, resumed, input, file, job, ms).await;
            }
        };
        (record, None)
    }

    async fn steps(&self, input: &Input, ahead: Ahead, reached: &mut Reached) -> Result<Outcome> {
        let path = input.path.as_path();
        let (arriving, meta) = self.arriving_before(input).await?;
        if let Some(why) = arriving {
            return Ok(Outcome::Deferred(why));
        }
        if let Some((r, meta)) = self.remembered(path, ahead, meta).await? {
            return Ok(Outcome::Remembered(Box::new(r), meta));
        }
        let file = match validate::validate(path, &self.policy).await {
            // It grew or shrank under the read: still being written.
            Err(r)
                if matches!(r.error, Error::FileChanged { .. })
                    && input.origin == Origin::Found =>
            {
                return Ok(Outcome::Deferred(Why::ChangedWhileRead));
            }
            Err(r) => {
                reached.judged = r.judged;
                return Err(r.error);
            }
            Ok(v) => reached.validated.insert(v),
        };
        if let Some(why) = self.arriving_after(input, file).await? {
            return Ok(Outcome::Deferred(why));
        }
        self.route.check(file, !self.offline).await?;
        if self.dry_run {
            return Ok(Outcome::Planned(self.sent_before(file).await?));
        }
        let entry = match self.claim(path, file).await? {
            Claim::Done(e) => return Ok(Outcome::Skipped(earlier(&e))),
            Claim::Held(lease) if self.journal.as_ref().is_some_and(|s| s.is_own(&lease)) => {
                return Ok(Outcome::Skipped(Skip::SameRun));
            }
            Claim::Held(lease) => {
                return Ok(Outcome::Skipped(Skip::Claimed {
                    by: lease.to_string(),
                }));
            }
            Claim::Fresh(e) | Claim::Resume(e) => e,
        };
        let job = reached.job.insert(Job::new(self.journal.as_ref(), &entry));
        if entry.step == Step::Completed {
            return Ok(Outcome::Settle(entry));
        }
        let _beat = Heartbeat::start(job);
        let resumed = entry.step != Step::Claimed;
        let conf = self.finish(file, job, &entry).await?;
        Ok(Outcome::Completed(conf, resumed))
    }

    fn key(&self, file: &ValidatedFile) -> Key {
        Key {
            route: self.route_name().to_string(),
            target: self.route.target(),
            file_name: file.file_name.clone(),
            sha256: file.sha256.clone(),
        }
    }

    /// Claims the file in the journal; without a state store every file is fresh.
    async fn claim(&self, path: &Path, file: &ValidatedFile) -> Result<Claim> {
        let Some(store) = &self.journal else {
            return Ok(Claim::Fresh(Entry::unjournaled()));
        };
        let seen = Seen {
            path: absolute(path),
            size: file.size,
            stamp: validate::stamp(&file.meta),
        };
        store
            .claim(self.key(file), seen, self.force)
            .await
            .map_err(state_error)
    }

    /// For a dry run: the earlier completed upload of this content to this target, if any.
    async fn sent_before(&self, file: &ValidatedFile) -> Result<Option<Entry>> {
        match &self.journal {
            Some(store) if !self.force => store.completed_entry(self.key(file)).await,
            _ => Ok(None),
        }
        .map_err(state_error)
    }

    /// Uploads, confirms and sends, starting from the step `entry` reached.
    async fn finish(
        &self,
        file: &ValidatedFile,
        job: &mut Job,
        entry: &Entry,
    ) -> Result<Confirmation> {
        let saved = entry.confirmation.clone();
        let mut conf = match saved.and_then(|v| serde_json::from_value(v).ok()) {
            Some(c) => c,
            None => self.confirmed(file, job, entry).await?,
        };
        if self.route.sends() {
            if entry.step == Step::SendStarted {
                if !self.route.finish_send(file, &mut conf).await? {
                    return Err(may_have_been_sent());
                }
            } else {
                job.advance(Step::SendStarted, None).await?;
                self.route.send(file, &mut conf).await?;
            }
        }
        Ok(conf)
    }

    /// The platform's confirmation: of an upload an earlier run may have landed, or of a new one.
    async fn confirmed(
        &self,
        file: &ValidatedFile,
        job: &mut Job,
        entry: &Entry,
    ) -> Result<Confirmation> {
        let saved = saved_upload(entry);
        let mut conf = None;
        if let Some(up) = &saved
            && entry.step >= Step::UrlIssued
        {
            conf = self
                .route
                .resume(file, up, entry.step >= Step::PutDone)
                .await?;
        }
        let conf = match conf {
            Some(c) => c,
            None => {
                let up = self.upload(file, job).await?.uploaded();
                job.passed(Step::ConfirmSent);
                self.route.confirm(file, &up).await?
            }
        };
        // Journaled for what comes before the completion: the message a route sends (its
        // resume needs the confirmation), or the event id when the row has none yet. Otherwise
        // the completion follows at once and keeps everything; a run stopped before it
        // confirms again (confirmations are idempotent) under the row's event id.
        if let Some(store) = &job.store
            && (self.route.sends() || !job.event_kept)
        {
            let v = serde_json::to_value(&conf).expect("confirmations serialise");
            store.confirmed(job.id, v, &job.event_id.to_string());
        }
        job.step = Step::Confirmed;
        Ok(conf)
    }

    /// Gets a URL and PUTs the file, re-streaming from the start on every retry; a URL that
    /// expired (or is too old to start on) is replaced by a fresh one. Each URL is journaled
    /// before its PUT starts.
    async fn upload(&self, file: &ValidatedFile, job: &mut Job) -> Result<UploadTarget> {
        let bar = BarGuard(
            &self.progress,
            self.progress.file(&file.file_name, file.size),
        );
        let mut retrier = retry::Retrier::new(&self.retry, Stage::Transfer);
        let mut target = self.new_target(file, job).await?;
        loop {
            self.limiter.paused().await;
            if target.issued_at.elapsed() > URL_FRESHNESS {
                // Starting a whole body on a URL that may expire mid-way wastes it: ask anew.
                tracing::info!("the upload URL is over 10 minutes old; requesting a fresh one");
                target = self.new_target(file, job).await?;
                continue;
            }
            let err =
                match transfer::put(&self.http, &target, file, &bar.1, retrier.time_left()).await {
                    // Not journaled: the caller journals ConfirmSent at once, which says more.
                    Ok(()) => return Ok(target),
                    Err(e) => e,
                };
            match transfer::verdict(&err) {
                transfer::Verdict::UrlExpired => {
                    retrier
                        .pause(err, Some(Duration::ZERO), "the upload URL expired")
                        .await?;
                    target = self.new_target(file, job).await?;
                }
                transfer::Verdict::Retry(after, reason) => {
                    retrier.pause(err, after, &reason).await?
                }
                transfer::Verdict::Final => return Err(err),
            }
        }
    }

    async fn new_target(&self, file: &ValidatedFile, job: &mut Job) -> Result<UploadTarget> {
        let target = self.route.request_upload(file).await?;
        job.advance(Step::UrlIssued, Some(&target.uploaded()))
            .await?;
        Ok(target)
    }
}

/// What the journal remembers of a file it found by its stamp.
fn content(r: &Remembered) -> audit::Content {
    audit::Content {
        file_name: r.file_name.clone(),
        size: r.size,
        content_type: validate::content_type_for(&r.file_name),
        sha256: r.sha256.clone(),
    }
}

/// Absolute, so `history --path` finds it whatever directory a run started in.
fn absolute(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The upload an earlier run journaled, if it got as far as a URL.
fn saved_upload(entry: &Entry) -> Option<Uploaded> {
    Some(Uploaded {
        file_id: entry.file_id.clone()?,
        confirm_url: entry
            .confirm_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok()),
    })
}

/// For a route that cannot check what an earlier, stopped run sent.
fn may_have_been_sent() -> Error {
    Error::MaybeSent {
        why: "an earlier run was stopped while sending this file's message, and this route cannot check whether it arrived (--force uploads and sends the file anew)".into(),
    }
}
