//! What a run is wired from: its configuration, and the stages built from it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::audit::Output;
use crate::config::{Credentials, Endpoints};
use crate::error::Result;
use crate::error_reporting::ExitStatus;
use crate::routes::{self, Route, RouteConfig};
use crate::secret::Secret;
use crate::validate::Policy;
use crate::{moves, progress, retry, state, webhook};

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
    pub state: Option<state::Location>,
    /// Send files again even when the journal says they were sent.
    pub force: bool,
    /// Files found by a walk or glob modified less than this long ago are deferred.
    pub min_age: Duration,
    /// What happens to a source file once its upload is confirmed and journaled.
    pub after: moves::After,
    /// `--failed-to`: where a file that can never be sent goes, with its record.
    pub failed_to: Option<std::path::PathBuf>,
    /// Platform API calls per minute at most.
    pub rate: Option<std::num::NonZeroU32>,
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
    pub(super) http: reqwest::Client,
    pub(super) route: Box<dyn Route>,
    pub(super) policy: Policy,
    pub(super) webhook: webhook::Webhook,
    pub(super) output: Output,
    pub(super) quiet: bool,
    pub(super) progress: progress::Progress,
    pub(super) dry_run: bool,
    pub(super) offline: bool,
    /// What a dry run reports it would do (hosts, route, target).
    pub(super) plan: serde_json::Map<String, serde_json::Value>,
    pub(super) jobs: usize,
    /// `jobs` of them: a file holds one while it works with the platform (see `upload_one`).
    pub(super) slots: tokio::sync::Semaphore,
    pub(super) retry: retry::Policy,
    /// First interrupt: start no new file.
    pub(super) stop: CancellationToken,
    /// Second interrupt: abandon the file in flight.
    pub(super) abandon: CancellationToken,
    pub(super) journal: Option<state::Store>,
    pub(super) force: bool,
    pub(super) min_age: Duration,
    pub(super) after: moves::After,
    pub(super) failed_to: Option<std::path::PathBuf>,
    /// Stops trying files while the platform cannot be reached.
    pub(super) breaker: super::breaker::Breaker,
    /// The run's pace of Platform API calls (and its rate-limit pause).
    pub(super) limiter: std::sync::Arc<crate::limiter::Limiter>,
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
        let http = crate::http::client()?;
        let plan = config.route.plan(&config.endpoints);
        let mut policy = config.policy;
        policy.md5 = config.route.name().announces_md5();
        let limiter = std::sync::Arc::new(crate::limiter::Limiter::new(config.rate));
        let journal = match &config.state {
            Some(at) => Some(state::Store::open(at).map_err(super::job::state_error)?),
            None => None,
        };
        let stop = CancellationToken::new();
        let jobs = super::limits::jobs_within_open_file_limit(config.jobs).max(1);
        let ctx = routes::Context {
            http: http.clone(),
            endpoints: config.endpoints,
            credentials: config.credentials,
            retry: config.retry,
            confirm_timeout: config.confirm_timeout,
            limiter: limiter.clone(),
        };
        Ok(Pipeline {
            route: config.route.build(&ctx)?,
            webhook: webhook::Webhook::new(
                http.clone(),
                config.webhook_url,
                config.webhook_secret,
                journal.clone(),
                stop.clone(),
            ),
            http,
            policy,
            output: config.output,
            progress: progress::Progress::new(config.progress, config.quiet, files),
            dry_run: config.dry_run,
            offline: config.offline,
            plan,
            quiet: config.quiet,
            jobs,
            slots: tokio::sync::Semaphore::new(jobs),
            retry: config.retry,
            stop,
            abandon: CancellationToken::new(),
            journal,
            force: config.force,
            min_age: config.min_age,
            after: config.after,
            failed_to: config.failed_to,
            breaker: Default::default(),
            limiter,
        })
    }

    /// The tokens an interrupt cancels: the first stops new files, the second abandons the file
    /// in flight.
    pub fn interrupts(&self) -> (CancellationToken, CancellationToken) {
        (self.stop.clone(), self.abandon.clone())
    }

    pub(super) fn route_name(&self) -> &'static str {
        self.route.name().as_str()
    }
}

/// Clears a file's progress bar however its upload ends.
pub(super) struct BarGuard<'a>(
    pub(super) &'a crate::progress::Progress,
    pub(super) indicatif::ProgressBar,
);

impl Drop for BarGuard<'_> {
    fn drop(&mut self) {
        self.0.file_done(&self.1);
    }
}
