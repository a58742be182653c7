//! The upload pipeline: validate → route check → request URL → PUT → confirm → record →
//! webhook, the same for every route. Each file runs within the retry budget; an interrupt stops
//! new files from starting, and a second one abandons the file in flight.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::audit::{self, Output, Record};
use crate::config::{Credentials, Endpoints};
use crate::error::{Error, Result, Stage};
use crate::error_reporting::{self, ExitStatus};
use crate::routes::{self, Confirmation, Route, RouteConfig, UploadTarget};
use crate::secret::Secret;
use crate::validate::{self, Policy, ValidatedFile};
use crate::{outbox, progress, retry, transfer, webhook};

mod summary;

use summary::Summary;

/// Protocol reference: a URL is valid 15 minutes; don't start a PUT on one older than 10.
const URL_FRESHNESS: Duration = Duration::from_secs(600);

/// Everything a run is configured with, resolved from the command line by `app::settings`.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoints: Endpoints,
    /// OAuth client; the guest route runs without one.
    pub credentials: Option<Credentials>,
    pub route: RouteConfig,
    pub policy: Policy,
    pub webhook_url: Option<url::Url>,
    pub webhook_secret: Option<Secret>,
    pub outbox_dir: Option<PathBuf>,
    pub output: Output,
    pub progress: progress::When,
    /// Validate and resolve everything, upload nothing.
    pub dry_run: bool,
    /// With a dry run: make no network call.
    pub offline: bool,
    pub quiet: bool,
    /// Files in flight at once.
    pub jobs: usize,
    pub confirm_timeout: Duration,
    pub retry: retry::Policy,
}

pub struct Pipeline {
    http: reqwest::Client,
    route: Box<dyn Route>,
    policy: Policy,
    webhook: webhook::Webhook,
    output: Output,
    quiet: bool,
    progress: progress::Progress,
    dry_run: bool,
    offline: bool,
    /// What a dry run reports it would do (hosts, route, target).
    plan: serde_json::Map<String, serde_json::Value>,
    jobs: usize,
    retry: retry::Policy,
    /// First interrupt: start no new file.
    stop: CancellationToken,
    /// Second interrupt: abandon the file in flight.
    abandon: CancellationToken,
}

/// How a run ended, for the caller to choose the process's exit status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// The status of the failure earliest in the input order.
    pub first_failure: Option<ExitStatus>,
    pub interrupted: bool,
    /// Some records could not be written.
    pub stdout_broken: bool,
}

impl Pipeline {
    /// Wires the stages for `config` and a run of `files` files.
    pub fn new(config: Config, files: usize) -> Result<Self> {
        let http = crate::http::client();
        let plan = config.route.plan(&config.endpoints);
        let mut policy = config.policy;
        policy.md5 = config.route.name().announces_md5();
        let ctx = routes::Context {
            http: http.clone(),
            endpoints: config.endpoints,
            credentials: config.credentials,
            retry: config.retry,
            confirm_timeout: config.confirm_timeout,
        };
        Ok(Pipeline {
            route: config.route.build(&ctx)?,
            webhook: webhook::Webhook {
                client: http.clone(),
                url: config.webhook_url,
                secret: config.webhook_secret,
                outbox: config.outbox_dir.map(outbox::Outbox::new),
            },
            http,
            policy,
            output: config.output,
            progress: progress::Progress::new(config.progress, config.quiet, files),
            dry_run: config.dry_run,
            offline: config.offline,
            plan,
            quiet: config.quiet,
            jobs: config.jobs,
            retry: config.retry,
            stop: CancellationToken::new(),
            abandon: CancellationToken::new(),
        })
    }

    /// The tokens an interrupt cancels: the first stops new files, the second abandons the file
    /// in flight.
    pub fn interrupts(&self) -> (CancellationToken, CancellationToken) {
        (self.stop.clone(), self.abandon.clone())
    }

    fn route_name(&self) -> &'static str {
        self.route.name().as_str()
    }

    /// Uploads the files, `jobs` at a time, printing each record as its file finishes. What
    /// earlier runs could not deliver to the webhook goes first, so events keep their order.
    pub async fn run(&self, files: &[impl AsRef<Path>]) -> Report {
        match self.webhook.flush_outbox().await {
            Ok((0, 0)) => {}
            Ok((d, p)) => tracing::info!(delivered = d, pending = p, "webhook outbox flushed"),
            Err(e) => tracing::warn!("the webhook outbox could not be read: {e}"),
        }
        // A dry run checks the credentials (or opens the guest session) once, up front.
        if self.dry_run
            && !self.offline
            && let Err(e) = self.route.preflight().await
        {
            audit::fail_all(self.route_name(), files, &e, self.output);
            return Report {
                first_failure: Some(error_reporting::exit_status(&e)),
                ..Report::default()
            };
        }
        let started = Instant::now();
        let mut summary = Summary::default();
        let mut report = Report::default();
        let mut first: Option<usize> = None;
        let mut done = futures_util::stream::iter(files.iter().enumerate())
            .map(|(i, f)| async move { (i, self.file(f.as_ref()).await) })
            .buffer_unordered(self.jobs.max(1));
        while let Some((i, (record, err))) = done.next().await {
            summary.add(&record);
            if !report.stdout_broken
                && let Err(e) = audit::emit(&record, self.output)
            {
                eprintln!("error: cannot write the record to stdout: {e}");
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
        self.route.finish().await;
        self.progress.finish();
        self.print_summary(&summary, started.elapsed());
        report.interrupted = self.stop.is_cancelled();
        report
    }

    fn print_summary(&self, summary: &Summary, wall: Duration) {
        if self.quiet {
            return;
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) && self.output != Output::Text {
            eprintln!("{}", summary.table());
        }
        eprintln!("{}", summary.line(wall));
    }

    /// One file's record, or an interrupted record when the run is stopping.
    async fn file(&self, path: &Path) -> (Record, Option<Error>) {
        if self.stop.is_cancelled() {
            let e = Error::Interrupted;
            let shown = path.display().to_string();
            return (
                audit::failed(self.route_name(), &shown, None, &e, 0),
                Some(e),
            );
        }
        self.upload_one(path).await
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
                let mut record = audit::planned(self.route_name(), &shown, &file, ms);
                record.extra.extend(self.plan.clone());
                (record, None)
            }
            Ok(Some(conf)) => {
                let file = validated.expect("a confirmed upload was validated");
                let mut record = audit::completed(self.route_name(), &shown, &file, conf, ms);
                tracing::info!(file = %shown, id = ?record.file_id, ms, "uploaded and confirmed");
                record.webhook = self.webhook.deliver(&record).await;
                (record, None)
            }
            Err(e) => {
                self.progress.println(&error_reporting::human(&shown, &e));
                let record = audit::failed(self.route_name(), &shown, validated.as_ref(), &e, ms);
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
            if target.issued_at.elapsed() > URL_FRESHNESS {
                // Starting a whole body on a URL that may expire mid-way wastes it: ask anew.
                tracing::info!("the upload URL is over 10 minutes old; requesting a fresh one");
                target = self.route.request_upload(file).await?;
                continue;
            }
            let err = match transfer::put(&self.http, &target, file, bar).await {
                Ok(()) => return Ok(target),
                Err(e) => e,
            };
            match transfer::verdict(&err) {
                transfer::Verdict::UrlExpired => {
                    retrier
                        .pause(err, Some(Duration::ZERO), "the upload URL expired")
                        .await?;
                    target = self.route.request_upload(file).await?;
                }
                transfer::Verdict::Retry(after, reason) => {
                    retrier.pause(err, after, &reason).await?
                }
                transfer::Verdict::Final => return Err(err),
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
