//! The upload pipeline: validate → route check → request URL → PUT → confirm → record →
//! webhook, the same for every route. Each file runs within the retry budget; an interrupt stops
//! new files from starting, and a second one abandons the file in flight.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::audit::{self, Output, Record};
use crate::error::{Error, Remote, Result, Stage};
use crate::error_reporting::{self, exit};
use crate::routes::{Confirmation, Route, UploadTarget};
use crate::validate::{self, Policy, ValidatedFile};
use crate::{retry, transfer, webhook};

/// Protocol reference: a URL is valid 15 minutes; don't start a PUT on one older than 10.
const URL_FRESHNESS: Duration = Duration::from_secs(600);

pub struct Pipeline {
    pub http: reqwest::Client,
    pub route: Box<dyn Route>,
    pub policy: Policy,
    pub webhook: webhook::Webhook,
    pub output: Output,
    pub quiet: bool,
    pub progress: crate::progress::Progress,
    /// Validate and resolve everything, upload nothing.
    pub dry_run: bool,
    /// With a dry run: make no network call.
    pub offline: bool,
    /// What a dry run reports it would do (hosts, route, target).
    pub plan: serde_json::Map<String, serde_json::Value>,
    /// Files in flight at once.
    pub jobs: usize,
    pub retry: retry::Policy,
    /// First interrupt: start no new file.
    pub stop: CancellationToken,
    /// Second interrupt: abandon the file in flight.
    pub abandon: CancellationToken,
}

impl Pipeline {
    /// Uploads the files, `jobs` at a time, printing each record as its file finishes. Returns
    /// the exit code: 0 when every file was uploaded and confirmed, 130 when interrupted,
    /// otherwise the code of the failure earliest in the input order.
    pub async fn run(&self, files: &[impl AsRef<Path>]) -> i32 {
        // A dry run checks the credentials (or opens the guest session) once, up front.
        if self.dry_run
            && !self.offline
            && let Err(e) = self.route.preflight().await
        {
            return audit::fail_all(self.route.name(), files, &e, self.output);
        }
        let started = Instant::now();
        let mut summary = Summary::default();
        let mut first_failure: Option<(usize, i32)> = None;
        let mut broken_stdout = false;
        let mut done = futures_util::stream::iter(files.iter().enumerate())
            .map(|(i, f)| async move {
                let path = f.as_ref();
                let out = if self.stop.is_cancelled() {
                    let e = Error::Interrupted;
                    let shown = path.display().to_string();
                    (
                        audit::failed(self.route.name(), &shown, None, &e, 0),
                        Some(e),
                    )
                } else {
                    self.upload_one(path).await
                };
                (i, out)
            })
            .buffer_unordered(self.jobs.max(1));
        while let Some((i, (record, err))) = done.next().await {
            summary.add(&record);
            if !broken_stdout && let Err(e) = audit::emit(&record, self.output) {
                eprintln!("error: cannot write the record to stdout: {e}");
                broken_stdout = true;
            }
            if let Some(e) = err
                && first_failure.is_none_or(|(j, _)| i < j)
            {
                first_failure = Some((i, error_reporting::exit_code(&e)));
            }
        }
        drop(done);
        self.route.finish().await;
        self.progress.finish();
        if !self.quiet {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) && self.output != Output::Text {
                eprintln!("{}", summary.table());
            }
            eprintln!("{}", summary.line(started.elapsed()));
        }
        match first_failure {
            _ if broken_stdout => exit::USAGE,
            _ if self.stop.is_cancelled() => exit::INTERRUPTED,
            Some((_, code)) => code,
            None => exit::OK,
        }
    }

    pub async fn upload_one(&self, path: &Path) -> (Record, Option<Error>) {
        let started = Instant::now();
        let shown = path.display().to_string();
        let mut validated = None;
        let result = tokio::select! {
            r = retry::with_budget(&self.retry, self.steps(path, &mut validated)) => r,
            _ = self.abandon.cancelled() => Err(Error::Interrupted),
        };
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(None) => {
                let file = validated.expect("a planned upload was validated");
                let mut record = audit::planned(self.route.name(), &shown, &file, ms);
                record.extra.extend(self.plan.clone());
                (record, None)
            }
            Ok(Some(conf)) => {
                let file = validated.expect("a confirmed upload was validated");
                let mut record = audit::completed(self.route.name(), &shown, &file, conf, ms);
                tracing::info!(file = %shown, id = ?record.file_id, ms, "uploaded and confirmed");
                record.webhook = self.webhook.deliver(&record).await;
                (record, None)
            }
            Err(e) => {
                self.progress.println(&error_reporting::human(&shown, &e));
                let record = audit::failed(self.route.name(), &shown, validated.as_ref(), &e, ms);
                (record, Some(e))
            }
        }
    }

    async fn steps(
        &self,
        path: &Path,
        validated: &mut Option<ValidatedFile>,
    ) -> Result<Option<Confirmation>> {
        let file = validated.insert(validate::validate(path, &self.policy).await?);
        self.route.check(file, !self.offline).await?;
        if self.dry_run {
            return Ok(None);
        }
        let bar = BarGuard(
            &self.progress,
            self.progress.file(&file.file_name, file.size),
        );
        let target = self.upload(file, &bar.1).await?;
        drop(bar);
        self.route.confirm(file, &target).await.map(Some)
    }

    /// Gets a URL and PUTs the file, re-streaming from the start on every retry; a URL that
    /// expired (or is too old to start on) is replaced by a fresh one.
    async fn upload(
        &self,
        file: &ValidatedFile,
        bar: &indicatif::ProgressBar,
    ) -> Result<UploadTarget> {
        let mut retrier = retry::Retrier::new(&self.retry, Stage::Transfer);
        let mut target = self.route.request_upload(file).await?;
        loop {
            retry::gate().await;
            let attempt = if target.issued_at.elapsed() > URL_FRESHNESS {
                Err(stale_url())
            } else {
                transfer::put(&self.http, &target, file, bar).await
            };
            let err = match attempt {
                Ok(()) => return Ok(target),
                Err(e) => e,
            };
            if transfer::url_expired(&err) {
                retrier
                    .pause(err, Some(Duration::ZERO), "the upload URL expired")
                    .await?;
                target = self.route.request_upload(file).await?;
                continue;
            }
            let verdict = match &err {
                Error::Network { .. } => {
                    Some((None, "connection error during the PUT".to_string()))
                }
                Error::Remote { remote, .. } => retry::verdict(remote, None),
                _ => None,
            };
            match verdict {
                Some((after, reason)) => retrier.pause(err, after, &reason).await?,
                None => return Err(err),
            }
        }
    }
}

/// Clears a file's progress bar however its upload ends.
struct BarGuard<'a>(&'a crate::progress::Progress, indicatif::ProgressBar);

impl Drop for BarGuard<'_> {
    fn drop(&mut self) {
        self.0.file_done(&self.1);
    }
}

fn stale_url() -> Error {
    Error::Remote {
        stage: Stage::Transfer,
        remote: Remote {
            status: Some(403),
            code: Some("AccessDenied".into()),
            message: "Request has expired (URL older than 10 minutes, not used)".into(),
            correlation_id: None,
        },
    }
}

/// The run's totals, for the closing line on stderr.
#[derive(Default)]
struct Summary {
    files: usize,
    completed: usize,
    failed: usize,
    bytes: u64,
    /// One human line per file, for the table shown when stdout is a terminal.
    rows: Vec<String>,
}

/// Rows of the closing table; a longer run is summed up in its last line.
const TABLE_ROWS: usize = 40;

impl Summary {
    fn add(&mut self, r: &Record) {
        self.files += 1;
        if r.action == audit::COMPLETED {
            self.completed += 1;
            self.bytes += r.size.unwrap_or(0);
        }
        if r.error.is_some() {
            self.failed += 1;
        }
        if self.rows.len() < TABLE_ROWS {
            self.rows.push(audit::text(r));
        }
    }

    /// The per-file table, for a person reading stdout on a terminal.
    fn table(&self) -> String {
        let mut t = self.rows.join("\n");
        if self.files > self.rows.len() {
            t.push_str(&format!("\n… and {} more", self.files - self.rows.len()));
        }
        t
    }

    fn line(&self, wall: Duration) -> String {
        let secs = wall.as_secs_f64().max(1e-9);
        format!(
            "gcupload: {} files, {} uploaded, {} failed, {:.1} MB in {:.2} s ({:.1} MB/s)",
            self.files,
            self.completed,
            self.failed,
            self.bytes as f64 / 1e6,
            secs,
            self.bytes as f64 / 1e6 / secs
        )
    }
}
