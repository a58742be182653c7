//! gcupload: upload files into Genesys Cloud messaging, one JSON audit record per file.
//!
//! The pipeline runs in the order data flows: [`config`] → [`validate`] → [`auth`] →
//! route ([`routes`]: request URL) → [`transfer`] (PUT) → route (confirm) → [`audit`] → [`webhook`].
//! [`error_reporting`] is the one place that maps errors to exit codes and hints.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod colour;
pub mod config;
pub mod doctor;
pub mod outbox;
pub mod pipeline;
pub mod progress;
pub mod routes;
pub mod transfer;
pub mod validate;
pub mod webhook;

pub mod error;
pub mod error_reporting;
pub mod http;
pub mod inputs;
pub mod redact;
pub mod retry;

#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::sync::Arc;

pub use cli::Cli;
#[cfg(feature = "sandbox")]
use cli::Command;
use cli::UploadArgs;
use config::{Config, RouteConfig};

/// Loads `.env` from the working directory without overriding the environment. Call it before
/// any thread exists: setting variables in a running multi-threaded program is unsound.
pub fn load_dotenv() {
    // Which keys `.env` provides that the environment lacks: `doctor` says where settings came from.
    let keys: Vec<String> = dotenvy::dotenv_iter()
        .map(|it| {
            it.flatten()
                .filter(|(k, _)| std::env::var_os(k).is_none())
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    let _ = DOTENV_KEYS.set(keys);
    let _ = dotenvy::dotenv();
}

static DOTENV_KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// The variables that came from `.env` rather than the environment.
pub fn dotenv_keys() -> &'static [String] {
    DOTENV_KEYS.get().map(Vec::as_slice).unwrap_or(&[])
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        #[cfg(feature = "sandbox")]
        Some(Command::Sandbox(args)) => {
            init_logging(args.verbose, false);
            sandbox::serve_cli(args).await
        }
        Some(Command::Webhook(cli::WebhookCommand::Flush(args))) => {
            init_logging(args.verbose, false);
            flush_command(args).await
        }
        Some(Command::Doctor(args)) => {
            init_logging(args.verbose, false);
            doctor::run(args.settings).await
        }
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "gcupload",
                &mut std::io::stdout(),
            );
            error_reporting::exit::OK
        }
        Some(Command::Man) => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => error_reporting::exit::OK,
                Err(e) => {
                    eprintln!("error: cannot write the man page: {e}");
                    error_reporting::exit::USAGE
                }
            }
        }
        None => upload(cli.upload).await,
    }
}

/// `gcupload webhook flush`: deliver what earlier runs queued.
async fn flush_command(args: cli::OutboxArgs) -> i32 {
    let Some(dir) = args.webhook.outbox.or_else(outbox::default_dir) else {
        eprintln!("error: no outbox directory: pass --outbox <DIR> (or set GCUPLOAD_OUTBOX)");
        return error_reporting::exit::USAGE;
    };
    let hook = webhook::Webhook {
        client: http::client(),
        url: None,
        secret: args.webhook.webhook_secret.map(config::Secret::new),
        outbox: Some(outbox::Outbox::new(dir.clone())),
    };
    match hook.flush_outbox().await {
        Ok((delivered, 0)) => {
            eprintln!(
                "webhook outbox {}: {delivered} delivered, none pending",
                dir.display()
            );
            error_reporting::exit::OK
        }
        Ok((delivered, pending)) => {
            eprintln!(
                "webhook outbox {}: {delivered} delivered, {pending} still pending (run again later)",
                dir.display()
            );
            error_reporting::exit::NETWORK
        }
        Err(e) => {
            eprintln!("error: webhook outbox {}: {e}", dir.display());
            error_reporting::exit::USAGE
        }
    }
}

async fn upload(args: UploadArgs) -> i32 {
    init_logging(args.verbose, args.quiet);
    #[cfg(feature = "sandbox")]
    let (args, _sandbox) = match with_sandbox(args).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let files = match inputs::expand(
        &args.files,
        args.from.as_deref(),
        args.recursive,
        args.shard,
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return error_reporting::exit_code(&e);
        }
    };
    let config = match Config::resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            return audit::fail_all("none", &files, &e, args.output());
        }
    };
    let pipeline = build(config, files.len());
    interrupts(pipeline.stop.clone(), pipeline.abandon.clone());
    // What earlier runs could not deliver goes first, so events keep their order.
    match pipeline.webhook.flush_outbox().await {
        Ok((0, 0)) => {}
        Ok((d, p)) => tracing::info!(delivered = d, pending = p, "webhook outbox flushed"),
        Err(e) => tracing::warn!("the webhook outbox could not be read: {e}"),
    }
    pipeline.run(&files).await
}

/// Ctrl-C or SIGTERM: stop starting files; a second one abandons the file in flight.
fn interrupts(
    stop: tokio_util::sync::CancellationToken,
    abandon: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        signal().await;
        eprintln!("interrupted: finishing the file in flight (interrupt again to abandon it)");
        stop.cancel();
        signal().await;
        abandon.cancel();
    });
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `--sandbox`: start the embedded sandbox and point the upload at it. The sandbox lives as long
/// as the returned handle.
#[cfg(feature = "sandbox")]
async fn with_sandbox(mut args: UploadArgs) -> Result<(UploadArgs, Option<sandbox::Sandbox>), i32> {
    if !args.sandbox {
        return Ok((args, None));
    }
    match sandbox::Sandbox::start(sandbox::SandboxConfig::default()).await {
        Ok(s) => {
            s.apply_to(&mut args);
            eprintln!(
                "sandbox: serving {} (embedded, no account needed)",
                s.base_url
            );
            Ok((args, Some(s)))
        }
        Err(e) => {
            eprintln!("error: the embedded sandbox could not start: {e}");
            Err(error_reporting::exit::USAGE)
        }
    }
}

/// Wires the stages for a resolved configuration and a run of `files` files.
pub fn build(config: Config, files: usize) -> pipeline::Pipeline {
    let http = http::client();
    let plan = plan(&config);
    let endpoints = config.endpoints;
    let api = || {
        let credentials = config
            .credentials
            .clone()
            .expect("Config::resolve requires credentials for the REST routes");
        Arc::new(api::Api {
            http: http.clone(),
            tokens: auth::TokenSource::new(
                http.clone(),
                endpoints.token_url(),
                credentials,
                config.retry,
            ),
            endpoints: endpoints.clone(),
            retry: config.retry,
        })
    };
    let route: Box<dyn routes::Route> = match config.route {
        RouteConfig::ExternalContact { contact_id } => {
            Box::new(routes::external_contact::ExternalContact {
                api: api(),
                contact_id,
            })
        }
        RouteConfig::Guest {
            deployment_id,
            origin,
            session_token,
            message,
        } => Box::new(routes::guest::Guest::new(
            endpoints.socket.clone(),
            routes::guest::Config {
                deployment_id,
                origin,
                session_token,
                message,
            },
            config.confirm_timeout,
            config.retry,
        )),
        RouteConfig::Conversation {
            conversation_id,
            communication_id,
            name,
            send,
            message,
        } => Box::new(routes::conversation::Conversation {
            api: api(),
            conversation_id,
            communication_id,
            name,
            send,
            message,
            confirm_timeout: config.confirm_timeout,
        }),
    };
    pipeline::Pipeline {
        webhook: webhook::Webhook {
            client: http.clone(),
            url: config.webhook_url,
            secret: config.webhook_secret,
            outbox: config.outbox_dir.map(outbox::Outbox::new),
        },
        http,
        route,
        policy: config.policy,
        output: config.output,
        progress: progress::Progress::new(config.progress, config.quiet, files),
        dry_run: config.dry_run,
        offline: config.offline,
        plan,
        quiet: config.quiet,
        jobs: config.jobs,
        retry: config.retry,
        stop: Default::default(),
        abandon: Default::default(),
    }
}

/// What a dry run reports besides the file: where the upload would go.
fn plan(config: &Config) -> serde_json::Map<String, serde_json::Value> {
    let e = &config.endpoints;
    let host = |u: &url::Url| redact::url(u);
    let mut m = serde_json::Map::new();
    match &config.route {
        RouteConfig::ExternalContact { contact_id } => {
            m.insert("externalContactId".into(), contact_id.clone().into());
            m.insert("apiHost".into(), host(&e.api).into());
            m.insert("loginHost".into(), host(&e.login).into());
        }
        RouteConfig::Guest {
            deployment_id,
            session_token,
            ..
        } => {
            m.insert("deploymentId".into(), deployment_id.clone().into());
            m.insert("sessionToken".into(), session_token.to_string().into());
            m.insert("socketUrl".into(), host(&e.socket).into());
        }
        RouteConfig::Conversation {
            conversation_id,
            communication_id,
            ..
        } => {
            m.insert("conversationId".into(), conversation_id.clone().into());
            m.insert("communicationId".into(), communication_id.clone().into());
            m.insert("apiHost".into(), host(&e.api).into());
            m.insert("loginHost".into(), host(&e.login).into());
        }
    }
    m
}

/// Logs go to stderr; stdout is reserved for JSON. `RUST_LOG` overrides the flags.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    // Dependencies stay at warn: their traces can carry request details we do not control.
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| format!("warn,gcupload={level}"));
    // Even with RUST_LOG: the WebSocket crates trace whole frames, and frames carry pre-signed
    // URLs. These caps come last, so they win over the user's directives for those targets.
    const CAPS: &str = "tungstenite=info,tokio_tungstenite=info";
    let filter = EnvFilter::try_new(format!("{base},{CAPS}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,gcupload={level},{CAPS}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour::stderr())
        .with_target(false)
        .try_init();
}
