//! The upload pipeline: validate → route check → request URL → PUT → confirm → record →
//! webhook, the same for every route. Each file runs within the retry budget; an interrupt stops
//! new files from starting, and a second one abandons the file in flight.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::audit::{self, Output, Record};
use crate::config::{Credentials, Endpoints};
use crate::error::{Error, Result};
use crate::error_reporting::{self, ExitStatus};
use crate::routes::{self, Route, RouteConfig};
use crate::secret::Secret;
use crate::validate::Policy;
use crate::{progress, retry, state, webhook};

mod file;
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
    /// The state store's directory (journal and webhook outbox); `None` runs without one.
    pub state_dir: Option<PathBuf>,
    /// Send files again even when the journal says they were sent.
    pub force: bool,
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
    journal: Option<state::Store>,
    force: bool,
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
        let journal = match &config.state_dir {
            Some(dir) => Some(state::Store::open(dir).map_err(file::state_error)?),
            None => None,
        };
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
                outbox: journal.clone(),
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
            journal,
            force: config.force,
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
}

/// Clears a file's progress bar however its upload ends.
struct BarGuard<'a>(&'a crate::progress::Progress, indicatif::ProgressBar);

impl Drop for BarGuard<'_> {
    fn drop(&mut self) {
        self.0.file_done(&self.1);
    }
}
