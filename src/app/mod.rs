//! The edge: the command line, the environment, logging and signals, dispatch to the library,
//! and the only place the process's exit status is chosen.

pub mod cli;
mod doctor;
mod env_file;
mod logging;
mod man;
mod paths;
mod print;
#[cfg(feature = "sandbox")]
mod sandbox;
mod self_feeding;
pub mod settings;
mod signals;

use std::io::Write;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::error_reporting::{self, ExitStatus};
use crate::pipeline::{Pipeline, Report};
use crate::{audit, http, inputs, redact, state, watch, webhook};
use cli::{Cli, Command, UploadArgs};
use settings::Sources;

/// The whole program: `fn main() -> ExitCode { gcupload::app::main() }`.
pub fn main() -> ExitCode {
    // .env first, while the process has one thread (see `load_dotenv`).
    settings::load_dotenv();
    env_file::drop_empty_variables();
    let (cli, sources) = match settings::parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            // `--help` and `--version` are answers, not errors.
            return if e.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Success
            }
            .into();
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let status = runtime.block_on(run(cli, sources));
    shut_down(runtime);
    status.into()
}

/// How long exiting waits for blocking work still running (a read a second Ctrl-C abandoned).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Stops the runtime before exiting so no task outlives its output, but without waiting for
/// ever: dropping a runtime waits for every blocking task, and a read stuck in the kernel (a
/// hung network filesystem) would hold the process after the run has ended and reported.
fn shut_down(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
}

/// Runs a parsed command line.
pub async fn run(cli: Cli, sources: Sources) -> ExitStatus {
    // A refused `.env` fails an upload's files one by one and is a check of `doctor`.
    let needs_env_file = !matches!(
        cli.command,
        None | Some(Command::Doctor(_) | Command::Completions { .. } | Command::Man)
    );
    if let (true, Err(e)) = (needs_env_file, settings::dotenv()) {
        error_line(&e);
        return error_reporting::exit_status(&e);
    }
    match cli.command {
        #[cfg(feature = "sandbox")]
        Some(Command::Sandbox(args)) => {
            logging::init(args.verbose, false);
            sandbox::standalone(args).await
        }
        Some(Command::Webhook(cli::WebhookCommand::Flush(args))) => {
            logging::init(args.verbose, false);
            flush(args).await
        }
        Some(Command::History(args)) => {
            logging::init(0, false);
            history(args)
        }
        Some(Command::Doctor(args)) => {
            logging::init(args.verbose, false);
            doctor::run(doctor_inputs(&args.settings, &sources)).await
        }
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli::command(), "gcupload", &mut script);
            print::print_all(&script, "the completion script")
        }
        Some(Command::Man) => match man::render() {
            Ok(page) => print::print_all(&page, "the man page"),
            Err(e) => {
                crate::stderr_line!("error: cannot render the man page: {e}");
                ExitStatus::Usage
            }
        },
        Some(Command::Watch(args)) => watch(*args, &sources).await,
        None => upload(cli.upload, &sources).await,
    }
}

fn doctor_inputs(s: &cli::Settings, sources: &Sources) -> doctor::Inputs {
    let route = settings::resolve_route(s, &[], settings::RouteExtras::default());
    let credentials = route
        .as_ref()
        .ok()
        .map(|r| settings::credentials(s, r.name()));
    let command = cli::command();
    let listed = command
        .find_subcommand("doctor")
        .expect("doctor is a subcommand")
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "verbose");
    doctor::Inputs {
        settings: listed
            .filter_map(|a| {
                let id = a.get_id().as_str();
                Some(doctor::Setting {
                    id: id.to_string(),
                    flag: format!("--{}", a.get_long()?),
                    env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                    value: settings::setting_value(s, id),
                    source: sources.iter().find(|(i, _)| i == id).map(|(_, src)| *src),
                })
            })
            .collect(),
        endpoints: settings::endpoints(s, sources),
        route,
        credentials,
        state: settings::state_location(&s.webhook.state),
        env_file: settings::dotenv().cloned(),
    }
}

/// An error for a person: what it quotes (paths, a server's words) is shown escaped.
fn error_line(e: &dyn std::fmt::Display) {
    crate::stderr_line!("error: {}", redact::for_terminal(&e.to_string()));
}

/// The state store a reading command (`history`, `webhook flush`) works on, if there is one:
/// these never create a store (a mistyped `--state-dir` would look like an empty journal), and
/// say when there is none (`Ok(None)`: nothing to read, exit 0).
fn open_store(s: &cli::StateArgs) -> Result<Option<state::Store>, ExitStatus> {
    let Some(at) = settings::state_location(s) else {
        crate::stderr_line!(
            "error: no state directory: pass --state-dir <DIR> (or set GCUPLOAD_STATE_DIR)"
        );
        return Err(ExitStatus::Usage);
    };
    if !state::Store::exists(&at) {
        crate::stderr_line!(
            "no journal in {}: nothing has been uploaded with this state directory (check --state-dir / GCUPLOAD_STATE_DIR)",
            redact::for_terminal(&at.shown())
        );
        return Ok(None);
    }
    state::Store::open(&at).map(Some).map_err(|e| {
        error_line(&e);
        ExitStatus::Usage
    })
}

/// `gcupload webhook flush`: deliver what earlier runs queued, to the URL configured now.
async fn flush(args: cli::OutboxArgs) -> ExitStatus {
    // A wrong setting is wrong whether or not anything waits.
    let url = match settings::webhook_url(&args.webhook_url) {
        Ok(u) => u,
        Err(e) => {
            error_line(&e);
            return error_reporting::exit_status(&e);
        }
    };
    let store = match open_store(&args.webhook.state) {
        Ok(Some(s)) => s,
        Ok(None) => return ExitStatus::Success,
        Err(status) => return status,
    };
    let shown = redact::for_terminal(&store.describe()).into_owned();
    let waiting = store.queued().map(|q| q.len()).unwrap_or(0);
    if url.is_none() && waiting > 0 {
        crate::stderr_line!(
            "error: {waiting} webhook events wait in {shown}, but no webhook URL is configured: pass --webhook-url <URL> (or set WEBHOOK_SYNC_URL)"
        );
        return ExitStatus::Usage;
    }
    let client = match http::client() {
        Ok(c) => c,
        Err(e) => {
            error_line(&e);
            return error_reporting::exit_status(&e);
        }
    };
    let stop = CancellationToken::new();
    let hook = webhook::Webhook::new(
        client,
        url,
        args.webhook.webhook_secret.map(crate::secret::Secret::new),
        Some(store),
        stop.clone(),
    );
    // An interrupt ends the flush: what is left stays queued.
    interrupts(stop, CancellationToken::new());
    match hook.flush_outbox().await {
        Ok(None) => {
            crate::stderr_line!(
                "webhook outbox {shown}: another run is delivering it now; nothing to do"
            );
            ExitStatus::Success
        }
        Ok(Some((delivered, 0))) => {
            crate::stderr_line!("webhook outbox {shown}: {delivered} delivered, none pending");
            ExitStatus::Success
        }
        Ok(Some((delivered, pending))) => {
            crate::stderr_line!(
                "webhook outbox {shown}: {delivered} delivered, {pending} still pending (run again later)"
            );
            ExitStatus::Network
        }
        Err(e) => {
            error_line(&format!("webhook outbox {shown}: {e}"));
            ExitStatus::Usage
        }
    }
}

/// `gcupload history`: the journal as JSON lines.
fn history(args: cli::HistoryArgs) -> ExitStatus {
    let store = match open_store(&args.state) {
        Ok(Some(s)) => s,
        Ok(None) => return ExitStatus::Success,
        Err(status) => return status,
    };
    let since = match args.since.as_deref().map(settings::parse_time).transpose() {
        Ok(t) => t,
        Err(e) => {
            error_line(&e);
            return ExitStatus::Usage;
        }
    };
    let filter = state::HistoryFilter {
        since,
        failed: args.failed,
        pending: args.pending,
        path: args.path.map(|p| paths::absolute(&p).display().to_string()),
    };
    let rows = match store.history(&filter) {
        Ok(r) => r,
        Err(e) => {
            error_line(&e);
            return ExitStatus::Usage;
        }
    };
    let mut out = std::io::stdout().lock();
    for row in rows {
        if writeln!(out, "{row}").is_err() {
            break; // the reader went away: nothing more to say
        }
    }
    ExitStatus::Success
}

async fn upload(args: UploadArgs, sources: &Sources) -> ExitStatus {
    logging::init(args.verbose, args.quiet);
    let found = settings::selection(&args).and_then(|sel| {
        inputs::expand(
            &args.files,
            args.from.as_deref(),
            args.from0,
            &sel,
            args.shard,
        )
    });
    // Collected for the progress total and for the records of a run refused as a whole; the
    // walk streams, and so does the pipeline (`watch` feeds it without end).
    let files: Vec<inputs::Input> = match found {
        Ok(f) => f.collect(),
        Err(e) => {
            // No file is known yet, so no record: the error and its next step on stderr.
            crate::stderr_line!("{}", error_reporting::human("the inputs", &e));
            return error_reporting::exit_status(&e);
        }
    };
    let refuse = |e: crate::error::Error| {
        audit::fail_all(audit::NO_ROUTE, &files, &e, args.output());
        error_reporting::exit_status(&e)
    };
    // Flags that are wrong whatever the route are refused before a sandbox starts for them.
    if let Err(e) = settings::dotenv().and_then(|_| settings::check_flags(&args)) {
        return refuse(e);
    }
    #[cfg(feature = "sandbox")]
    let (args, _sandbox) = match sandbox::embedded(args, sources).await {
        Ok(v) => v,
        Err(status) => return status,
    };
    let pipeline = match settings::resolve(&args, sources)
        .and_then(|config| Pipeline::new(config, files.len()))
    {
        Ok(p) => p,
        Err(e) => {
            audit::fail_all(audit::NO_ROUTE, &files, &e, args.output());
            return error_reporting::exit_status(&e);
        }
    };
    let (stop, abandon) = pipeline.interrupts();
    interrupts(stop, abandon);
    status_of(pipeline.run(futures_util::stream::iter(files)).await)
}

/// `gcupload watch`: an upload that never runs out of files. Each file's outcome is in its
/// record; being stopped (SIGTERM, Ctrl-C) is how a watch ends, so it exits 0.
async fn watch(args: cli::WatchArgs, sources: &Sources) -> ExitStatus {
    logging::init(args.upload.verbose, args.upload.quiet);
    let usage = |e: crate::error::Error| {
        error_line(&e);
        error_reporting::exit_status(&e)
    };
    let config = match settings::check_flags(&args.upload).and_then(|()| settings::watch(&args)) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    #[cfg(feature = "sandbox")]
    let (upload, _sandbox) = match sandbox::embedded(args.upload, sources).await {
        Ok(v) => v,
        Err(status) => return status,
    };
    #[cfg(not(feature = "sandbox"))]
    let upload = args.upload;
    let pipeline = match settings::resolve(&upload, sources).and_then(|mut config| {
        // Bars suit a batch with an end; a service's stderr is a log.
        if config.progress == crate::progress::When::Auto {
            config.progress = crate::progress::When::Never;
        }
        Pipeline::new(config, 0)
    }) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let (stop, abandon) = pipeline.interrupts();
    interrupts(stop, abandon);
    match watch::run(&pipeline, config).await {
        Ok(report) if report.stdout_broken => ExitStatus::StdoutClosed,
        Ok(_) => ExitStatus::Success,
        Err(e) => usage(e),
    }
}

/// A run's exit status: a broken stdout first (records were lost), then an interrupt, then the
/// failure earliest in the input order.
fn status_of(report: Report) -> ExitStatus {
    match report.first_failure {
        _ if report.stdout_broken => ExitStatus::StdoutClosed,
        _ if report.interrupted => ExitStatus::Interrupted,
        Some(status) => status,
        None => ExitStatus::Success,
    }
}

/// Ctrl-C or SIGTERM: stop starting files; a second one abandons the file in flight.
fn interrupts(stop: CancellationToken, abandon: CancellationToken) {
    let mut stops = signals::Stops::install();
    tokio::spawn(async move {
        stops.next().await;
        crate::stderr_line!(
            "interrupted: finishing the file in flight (interrupt again to abandon it)"
        );
        stop.cancel();
        stops.next().await;
        abandon.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exiting_does_not_wait_for_a_stuck_blocking_read() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let (_never, stuck) = std::sync::mpsc::channel::<()>();
        // A blocking task that never returns, as a read from a hung file would.
        runtime.spawn_blocking(move || stuck.recv());
        let started = std::time::Instant::now();
        shut_down(runtime);
        assert!(
            started.elapsed() < SHUTDOWN_GRACE * 3,
            "{:?}",
            started.elapsed()
        );
    }
}
