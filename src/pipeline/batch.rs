//! A run over many files: `jobs` at a time, each record printed as its file finishes, the
//! totals at the end.

use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::stages::{Pipeline, Report};
use super::summary::Summary;
use crate::audit::{self, Output, Record};
use crate::error::Error;
use crate::error_reporting;
use crate::inputs::{Input, Origin};

impl Pipeline {
    /// Uploads the files, `jobs` at a time, printing each record as its file finishes. What
    /// earlier runs could not deliver to the webhook goes first, so events keep their order.
    /// The files are a stream, pulled only as a job frees up: a one-shot run and `watch` share
    /// this loop, and a slow run holds back whoever feeds it.
    pub async fn run(&self, files: impl Stream<Item = Input>) -> Report {
        self.run_observed(files, |_, _| true).await
    }

    /// [`run`](Self::run), telling `observe` each file's record as it finishes; the record is
    /// printed only when `observe` says so (watch prints one deferral per file, not one per
    /// retry).
    pub async fn run_observed(
        &self,
        files: impl Stream<Item = Input>,
        mut observe: impl FnMut(&Input, &Record) -> bool,
    ) -> Report {
        let _hurry = self.hurry_when_abandoned();
        // Links a walk found are counted, never sent: no file, no record.
        let links = std::sync::atomic::AtomicUsize::new(0);
        let links = &links;
        let files = files.filter(move |f| {
            let link = f.origin == Origin::Link;
            if link {
                links.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            std::future::ready(!link)
        });
        match self.webhook.flush_outbox().await {
            Ok(None | Some((0, 0))) => {}
            Ok(Some((d, p))) => {
                tracing::info!(delivered = d, pending = p, "webhook outbox flushed")
            }
            Err(e) => tracing::warn!("the webhook outbox could not be read: {e}"),
        }
        // A dry run checks the credentials (or opens the guest session) once, up front.
        if self.dry_run
            && !self.offline
            && let Err(e) = self.route.preflight().await
        {
            let files: Vec<Input> = files.collect().await;
            audit::fail_all(self.route_name(), &files, &e, self.output);
            return Report {
                first_failure: Some(error_reporting::exit_status(&e)),
                ..Report::default()
            };
        }
        let started = Instant::now();
        let mut summary = Summary::default();
        let mut report = Report::default();
        let mut first: Option<usize> = None;
        // Boxed, so that it (and what it borrows) is dropped before the journal's last writes.
        let mut done = Box::pin(
            files
                .enumerate()
                .map(|(i, f)| async move {
                    let outcome = self.file(&f).await;
                    (i, f, outcome)
                })
                .buffer_unordered(self.in_flight()),
        );
        while let Some((i, input, (record, err))) = done.next().await {
            summary.add(&record);
            if observe(&input, &record)
                && !report.stdout_broken
                && let Err(e) = self.progress.suspend(|| audit::emit(&record, self.output))
            {
                // The reader went away (`| head -1`): start no new file, as a first Ctrl-C
                // would; what was in flight finishes and every outcome stays in the journal.
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    crate::stderr_line!("error: cannot write the record to stdout: {e}");
                }
                self.stop.cancel();
                report.stdout_broken = true;
            }
            if let Some(e) = err
                && first.is_none_or(|j| i < j)
            {
                first = Some(i);
                report.first_failure = Some(error_reporting::exit_status(&e));
            }
        }
        drop(done);
        summary.links = links.load(std::sync::atomic::Ordering::Relaxed);
        // The journal's last queued steps (webhooks settled) are committed before the run ends.
        if let Some(store) = &self.journal
            && let Err(e) = store.written().await
        {
            tracing::error!("the journal's last steps could not be written: {e}");
        }
        self.route.finish().await;
        self.progress.finish();
        self.print_summary(&summary, started.elapsed());
        report.interrupted = self.stop.is_cancelled();
        report
    }

    /// Once the run is abandoned, the journal waits for a database another process holds
    /// locked only a moment (its writes are best effort then). Until the guard is dropped.
    fn hurry_when_abandoned(&self) -> Option<tokio_util::sync::DropGuard> {
        let store = self.journal.clone()?;
        let (abandon, done) = (self.abandon.clone(), CancellationToken::new());
        let guard = done.clone().drop_guard();
        tokio::spawn(async move {
            tokio::select! {
                _ = abandon.cancelled() => store.hurry(),
                _ = done.cancelled() => {}
            }
        });
        Some(guard)
    }

    fn print_summary(&self, summary: &Summary, wall: Duration) {
        if self.quiet {
            return;
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) && self.output != Output::Text {
            crate::stderr_line!("{}", summary.table());
        }
        crate::stderr_line!("{}", summary.line(wall, self.limiter.stats()));
    }

    /// Files under way at once: twice the slots, so that files waiting for theirs make their
    /// stamp checks, and files done with theirs finish (journal, webhook, move) while others use
    /// the platform. `--jobs 1` keeps one file at a time, its records in the input's order.
    fn in_flight(&self) -> usize {
        match self.jobs {
            1 => 1,
            n => 2 * n,
        }
    }

    /// One file's record, or an interrupted record when the run is stopping. The file waits
    /// for one of the `--jobs` slots with its stamp check made.
    async fn file(&self, input: &Input) -> (Record, Option<Error>) {
        if let Some(e) = input.error() {
            return self.not_started(input, e);
        }
        let ahead = self.look_ahead(input);
        let slot = self
            .slots
            .acquire()
            .await
            .expect("the slots are never closed");
        let problem = match self.stop.is_cancelled() {
            true => Some(Error::Interrupted),
            false => self.breaker.refuses(),
        };
        if let Some(e) = problem {
            return self.not_started(input, e);
        }
        let (record, err) = self.upload_one(input, ahead, slot).await;
        let reached = record.action == audit::Action::Completed;
        self.breaker.record(err.as_ref(), reached);
        (record, err)
    }

    /// The record of a file that was not tried.
    fn not_started(&self, input: &Input, e: Error) -> (Record, Option<Error>) {
        let shown = input.path.display().to_string();
        if input.problem.is_some() {
            self.progress.println(&error_reporting::human(&shown, &e));
        }
        (
            audit::failed(self.route_name(), &shown, None, &e, 0),
            Some(e),
        )
    }
}
