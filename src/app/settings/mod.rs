//! Raw flags resolved once into the library's configuration: clap merges flags, environment and
//! `.env` into [`cli`] structs; this module checks them and builds [`pipeline::Config`], keeping
//! where each setting came from for `doctor`.

use std::sync::OnceLock;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches};
use url::Url;

mod folders;
mod route;
mod values;

pub use folders::{selection, state_dir, state_location};
pub use route::{NO_ROUTE, RouteExtras, credentials, resolve_route};
pub use values::{Source, Sources, non_empty, setting_value};

use super::cli::{Cli, Command, Settings, UploadArgs, WatchArgs};
use super::env_file::{self, EnvFileError, Loaded};
use crate::config::Endpoints;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::validate::Policy;
use crate::{http, pipeline, retry, watch};
use folders::after_upload;
use route::{check_route_flags, route_flags};

static DOTENV: OnceLock<std::result::Result<Loaded, EnvFileError>> = OnceLock::new();

/// Reads the `.env` file (see [`env_file`]) without overriding the environment. Call it before
/// any thread exists: setting variables in a running multi-threaded program is unsound. What it
/// found is kept for `doctor`, and a refusal for the run to report once it has parsed its
/// arguments (an upload then fails every file with it, so each still gets its record).
pub fn load_dotenv() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let _ = DOTENV.set(env_file::load(&args));
}

/// What `load_dotenv` read, or why it refused the file.
pub fn dotenv() -> std::result::Result<&'static Loaded, Error> {
    match DOTENV.get() {
        Some(Ok(loaded)) => Ok(loaded),
        Some(Err(e)) => Err(Error::EnvFile {
            message: e.to_string(),
        }),
        None => {
            static NONE: Loaded = Loaded {
                path: None,
                keys: Vec::new(),
            };
            Ok(&NONE)
        }
    }
}

/// Parses the process's arguments, with where each setting of the command came from (clap
/// merges flags and environment into one field; `.env` is told apart by the keys it loaded).
/// `Err` is clap's answer to print: a usage error, or `--help`/`--version`.
pub fn parse() -> std::result::Result<(Cli, Sources), clap::Error> {
    let matches = super::cli::command().try_get_matches()?;
    let cli = Cli::from_arg_matches(&matches)?;
    let sources = match &cli.command {
        Some(Command::Doctor(_)) => sources(
            matches
                .subcommand_matches("doctor")
                .expect("doctor matched"),
        ),
        Some(Command::Watch(_)) => {
            sources(matches.subcommand_matches("watch").expect("watch matched"))
        }
        None => sources(&matches),
        _ => Vec::new(),
    };
    Ok((cli, sources))
}

/// For each settable argument that has a value: flag, env, .env or default.
fn sources(m: &ArgMatches) -> Sources {
    let cmd = super::cli::command();
    let mut all: Vec<&clap::Arg> = cmd.get_arguments().collect();
    for sub in ["doctor", "watch"] {
        if let Some(d) = cmd.find_subcommand(sub) {
            all.extend(d.get_arguments());
        }
    }
    let dotenv = dotenv().map(|l| l.keys.as_slice()).unwrap_or(&[]);
    let mut out = Vec::new();
    for id in m.ids() {
        let id = id.as_str();
        let Some(arg) = all.iter().find(|a| a.get_id() == id) else {
            continue;
        };
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => {
                let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or("");
                if dotenv.iter().any(|k| k == env) {
                    Source::DotEnv
                } else {
                    Source::Env
                }
            }
            Some(ValueSource::DefaultValue) => Source::Default,
            _ => continue,
        };
        if arg.get_env().is_some() || source == Source::Flag {
            out.push((id.to_string(), source));
        }
    }
    out
}

/// An upload's command line as the pipeline's configuration.
pub fn resolve(args: &UploadArgs, sources: &Sources) -> Result<pipeline::Config> {
    let s = &args.settings;
    let endpoints = endpoints(s, sources)?;
    let route = resolve_route(
        s,
        &route_flags(sources),
        RouteExtras {
            name: non_empty(&args.name),
            send: !args.no_send,
            message: non_empty(&args.message),
        },
    )?;
    check_route_flags(route.name(), sources)?;
    let credentials = credentials(s, route.name())?;
    let webhook_url = webhook_url(&s.webhook_url)?;
    check_limits(args)?;
    Ok(pipeline::Config {
        endpoints,
        credentials,
        route,
        policy: Policy::new(args.max_size, &args.allow_type, !args.no_local_scan)?,
        webhook_url,
        webhook_secret: non_empty(&s.webhook.webhook_secret).map(Secret::new),
        state: if args.no_state {
            None
        } else {
            state_location(&s.webhook.state)
        },
        force: args.force,
        min_age: args.min_age,
        after: after_upload(args)?,
        failed_to: args.failed_to.clone(),
        rate: args.rate,
        output: args.output(),
        progress: args.progress,
        dry_run: args.dry_run,
        offline: args.offline,
        quiet: args.quiet,
        jobs: args.jobs,
        confirm_timeout: Duration::from_secs(args.confirm_timeout),
        retry: retry::Policy {
            budget: Duration::from_secs(args.retry_budget),
            max_attempts: args.max_attempts,
            ..retry::Policy::default()
        },
    })
}

/// Where the platform is: `--base-url` over `--region`, except that a flag wins over the
/// environment: `--region` on the command line is not overridden by a `GENESYS_BASE_URL` from the
/// environment or `.env`.
pub fn endpoints(s: &Settings, sources: &Sources) -> Result<Endpoints> {
    let from = |id: &str| sources.iter().find(|(i, _)| i == id).map(|(_, src)| *src);
    let region_flag = from("region") == Some(Source::Flag);
    let base_url = match from("base_url") {
        Some(Source::Env | Source::DotEnv) if region_flag => {
            tracing::info!("--region on the command line wins over GENESYS_BASE_URL");
            None
        }
        _ => s.base_url.as_deref(),
    };
    Endpoints::resolve(&s.region, base_url)
}

/// `--webhook-url` / `WEBHOOK_SYNC_URL`, for an upload and for `webhook flush`: http(s). User
/// info in it is the receiver's Basic auth and is sent as such (an Authorization header), so it
/// is accepted only where it cannot be read on the way: over https, or to a loopback host.
pub fn webhook_url(raw: &Option<String>) -> Result<Option<Url>> {
    let Some(w) = non_empty(raw) else {
        return Ok(None);
    };
    let u = Url::parse(w).map_err(|e| {
        let shown = crate::redact::url_text(w);
        Error::config(format!(
            "--webhook-url (WEBHOOK_SYNC_URL) `{shown}` is not a URL: {e}"
        ))
    })?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(Error::config(format!(
            "--webhook-url (WEBHOOK_SYNC_URL) must be http(s), got `{}`",
            u.scheme()
        )));
    }
    if http::has_user_info(&u) && u.scheme() != "https" && !http::is_loopback(&u) {
        return Err(Error::config(format!(
            "--webhook-url / WEBHOOK_SYNC_URL `{}` has user info, which is sent to the receiver as Basic auth: over plain http anyone on the way can read it; use https, or give the URL without user info (WEBHOOK_SECRET signs each delivery)",
            crate::redact::url_text(w)
        )));
    }
    Ok(Some(u))
}

/// `gcupload watch`: the folders and how to watch them. The upload flags go through
/// [`resolve`] as for any upload.
pub fn watch(args: &WatchArgs) -> Result<watch::Config> {
    let up = &args.upload;
    if up.from.is_some() || up.name.is_some() {
        return Err(Error::config(
            "gcupload watch takes directories only: drop --from and --name",
        ));
    }
    if let Some(not_dir) = up.files.iter().find(|p| !p.is_dir()) {
        return Err(Error::config(format!(
            "gcupload watch {}: not a directory; watch the folder files are dropped into",
            not_dir.display()
        )));
    }
    // For tests: a tiny event queue makes an overflow (and its rescan) easy to cause.
    let queue = std::env::var("GCUPLOAD_WATCH_QUEUE")
        .ok()
        .and_then(|q| q.trim().parse().ok())
        .unwrap_or(watch::QUEUE);
    Ok(watch::Config {
        roots: up.files.clone(),
        selection: selection(up)?,
        shard: up.shard,
        settle: args.settle,
        poll: args.poll,
        queue,
        quiet: up.quiet,
    })
}

/// The checks of `resolve` that need no route and no network: limits, types, what to do after
/// an upload.
pub fn check_flags(args: &UploadArgs) -> Result<()> {
    check_limits(args)?;
    Policy::new(args.max_size, &args.allow_type, !args.no_local_scan)?;
    after_upload(args).map(drop)
}

/// The numeric flags that have a floor, and `--name`'s one-file rule.
fn check_limits(args: &UploadArgs) -> Result<()> {
    if args.name.is_some() && (args.files.len() > 1 || args.recursive || args.from.is_some()) {
        return Err(Error::config(
            "--name renames one file; pass a single file with it",
        ));
    }
    for (value, what) in [
        (
            args.confirm_timeout,
            "--confirm-timeout must be at least 1 second",
        ),
        (args.jobs as u64, "--jobs must be at least 1"),
        (
            args.max_attempts as u64,
            "--max-attempts must be at least 1",
        ),
    ] {
        if value == 0 {
            return Err(Error::config(what));
        }
    }
    Ok(())
}

/// `--since`: an RFC 3339 time (any offset), or a date (midnight UTC).
pub fn parse_time(s: &str) -> std::result::Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            format!(
                "--since `{s}` is not a time: use 2026-11-26 or 2026-11-26T08:00:00Z (any offset)"
            )
        })
}
