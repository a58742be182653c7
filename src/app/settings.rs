//! Raw flags resolved once into the library's configuration: clap merges flags, environment and
//! `.env` into [`cli`] structs; this module checks them and builds [`pipeline::Config`], keeping
//! where each setting came from for `doctor`.

use std::sync::OnceLock;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches};
use url::Url;

use super::cli::{Cli, Command, Settings, UploadArgs, WatchArgs};
use super::env_file::{self, EnvFileError, Loaded};
use super::self_feeding;
use crate::config::{Credentials, Endpoints};
use crate::error::{Error, Result};
use crate::routes::{RouteConfig, RouteName, conversation, external_contact, guest};
use crate::secret::Secret;
use crate::validate::Policy;
use crate::{http, moves, pipeline, retry, state, watch};

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    DotEnv,
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::DotEnv => ".env",
            Source::Default => "default",
        }
    }
}

/// Each set setting (by its clap id) with where its value came from.
pub type Sources = Vec<(String, Source)>;

/// What a run without a route is told, `doctor` included; the client-only build has no sandbox
/// to suggest.
macro_rules! no_route {
    ($($tail:literal)?) => {
        concat!("no route selected: pass --deployment <ID> (GENESYS_DEPLOYMENT_ID) for guest, --conversation <ID> --communication <ID> (GENESYS_CONVERSATION_ID, GENESYS_COMMUNICATION_ID) for conversation, or --external-contact <ID> (EXTERNAL_CONTACT_ID)" $(, $tail)?)
    };
}
#[cfg(feature = "sandbox")]
pub const NO_ROUTE: &str = no_route!(
    "; to try gcupload without an account: `gcupload --sandbox FILE`, or run `gcupload sandbox` and use the settings it prints"
);
#[cfg(not(feature = "sandbox"))]
pub const NO_ROUTE: &str = no_route!();

/// The settings that select a route, by clap id.
const ROUTE_SELECTORS: &[(&str, RouteName)] = &[
    ("external_contact", RouteName::ExternalContact),
    ("deployment", RouteName::Guest),
    ("conversation", RouteName::Conversation),
    ("communication", RouteName::Conversation),
];

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
        Some(Err(e)) => Err(Error::config(e.to_string())),
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

/// The routes whose selecting settings were given as flags (they win over the environment).
fn route_flags(sources: &Sources) -> Vec<RouteName> {
    let mut out = Vec::new();
    for (id, route) in ROUTE_SELECTORS {
        let flag = sources.iter().any(|(i, s)| i == id && *s == Source::Flag);
        if flag && !out.contains(route) {
            out.push(*route);
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

/// The walk filters: `--hidden`, `--include`, `--exclude` and `-r`.
pub fn selection(args: &UploadArgs) -> Result<crate::inputs::Selection> {
    crate::inputs::Selection::new(
        args.hidden,
        args.include.clone(),
        args.exclude.clone(),
        args.recursive,
    )
}

/// What to do with a source file after its upload: `--move-to` or `--remove-source-files`.
fn after_upload(args: &UploadArgs) -> Result<moves::After> {
    if (args.move_to.is_some() || args.remove_source_files) && args.no_state {
        return Err(Error::config(
            "--move-to and --remove-source-files need the state store (they act only on what it journaled); drop --no-state",
        ));
    }
    check_not_fed_back(args)?;
    Ok(match (&args.move_to, args.remove_source_files) {
        (Some(dir), _) => moves::After::MoveTo(dir.clone()),
        (None, true) => moves::After::Remove,
        (None, false) => moves::After::Keep,
    })
}

/// Neither the `--move-to` folder nor the state directory may be where the inputs reach: moved
/// files would be uploaded again, and the store's own files would fail validation every run.
fn check_not_fed_back(args: &UploadArgs) -> Result<()> {
    let state = (!args.no_state)
        .then(|| state_location(&args.settings.webhook.state))
        .flatten()
        .and_then(|at| at.dir().map(std::path::Path::to_path_buf));
    let targets = [
        (
            args.move_to.clone(),
            "--move-to",
            "moved files would be uploaded again",
        ),
        (
            state,
            "the state directory (--state-dir, GCUPLOAD_STATE_DIR)",
            "its database and lock files would be read as uploads on every run",
        ),
    ];
    for (dir, what, why) in targets {
        let Some(dir) = dir else { continue };
        if let Some(input) =
            self_feeding::input_reaching(&args.files, args.recursive, args.hidden, &dir)
        {
            return Err(Error::config(format!(
                "{what} {} is inside the input {}: {why}; choose a directory outside what the run uploads",
                dir.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Where the state store is: `--state-url` (a database several hosts share), else the state
/// directory.
pub fn state_location(s: &super::cli::StateArgs) -> Option<state::Location> {
    match non_empty(&s.state_url) {
        Some(url) => Some(state::Location::Url(url.to_string())),
        None => state_dir(s).map(state::Location::Dir),
    }
}

/// `--state-dir` (or its former name `--outbox`), or the user's state directory.
pub fn state_dir(s: &super::cli::StateArgs) -> Option<std::path::PathBuf> {
    s.state_dir
        .clone()
        .or_else(|| s.outbox.clone())
        .or_else(state::default_dir)
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

/// The OAuth client, required by every route that calls the Platform API.
pub fn credentials(s: &Settings, route: RouteName) -> Result<Option<Credentials>> {
    match (non_empty(&s.client_id), non_empty(&s.client_secret)) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            client_id: id.to_string(),
            client_secret: Secret::new(secret),
        })),
        _ if !route.needs_credentials() => Ok(None),
        _ => Err(Error::config(format!(
            "route {} needs OAuth client credentials: set GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET (or --client-id/--client-secret)",
            route.as_str()
        ))),
    }
}

/// What the upload flags add to a route's settings.
#[derive(Default)]
pub struct RouteExtras<'a> {
    pub name: Option<&'a str>,
    pub send: bool,
    pub message: Option<&'a str>,
}

/// The settings only some routes use, by clap id, with their flag and those routes.
const ROUTE_ONLY: &[(&str, &str, &[RouteName])] = &[
    (
        "external_contact",
        "--external-contact",
        &[RouteName::ExternalContact],
    ),
    ("deployment", "--deployment", &[RouteName::Guest]),
    ("origin", "--origin", &[RouteName::Guest]),
    ("session_token", "--session-token", &[RouteName::Guest]),
    ("conversation", "--conversation", &[RouteName::Conversation]),
    (
        "communication",
        "--communication",
        &[RouteName::Conversation],
    ),
    ("name", "--name", &[RouteName::Conversation]),
    ("no_send", "--no-send", &[RouteName::Conversation]),
    (
        "message",
        "--message",
        &[RouteName::Guest, RouteName::Conversation],
    ),
];

/// A flag typed for a route the run does not take would be silently ignored: refuse it. (The
/// environment may hold every route's settings at once; only flags are checked.)
fn check_route_flags(route: RouteName, sources: &Sources) -> Result<()> {
    for (id, flag, routes) in ROUTE_ONLY {
        let typed = sources.iter().any(|(i, s)| i == id && *s == Source::Flag);
        if typed && !routes.contains(&route) {
            let list: Vec<&str> = routes.iter().map(|r| r.as_str()).collect();
            return Err(Error::config(format!(
                "{flag} is not used by route {} (only by {}): drop it, or pick that route with --route",
                route.as_str(),
                list.join(" and ")
            )));
        }
    }
    Ok(())
}

/// Exactly one route per run: `--route` first, then route flags, then the environment.
pub fn resolve_route(
    s: &Settings,
    flags: &[RouteName],
    extras: RouteExtras<'_>,
) -> Result<RouteConfig> {
    let chosen = choose_route(s, flags)?;
    let need = |v: &Option<String>, what: &str| -> Result<String> {
        match non_empty(v) {
            Some(id) => path_segment(what, id),
            None => Err(Error::config(format!(
                "route {} needs {what}",
                chosen.as_str()
            ))),
        }
    };
    let message = extras.message.map(str::to_string);
    Ok(match chosen {
        RouteName::ExternalContact => RouteConfig::ExternalContact(external_contact::Config {
            contact_id: need(
                &s.external_contact,
                "--external-contact <ID> (EXTERNAL_CONTACT_ID)",
            )?,
        }),
        RouteName::Guest => RouteConfig::Guest(guest::Config {
            deployment_id: need(&s.deployment, "--deployment <ID> (GENESYS_DEPLOYMENT_ID)")?,
            origin: guest::checked_origin(non_empty(&s.origin))?,
            session_token: s.session_token.unwrap_or_else(uuid::Uuid::new_v4),
            message: guest::checked_message(message)?,
        }),
        RouteName::Conversation => RouteConfig::Conversation(conversation::Config {
            conversation_id: need(
                &s.conversation,
                "--conversation <ID> (GENESYS_CONVERSATION_ID)",
            )?,
            communication_id: need(
                &s.communication,
                "--communication <ID> (GENESYS_COMMUNICATION_ID)",
            )?,
            name: extras.name.map(str::to_string),
            send: extras.send,
            message: conversation::checked_message(message)?,
        }),
    })
}

fn choose_route(s: &Settings, flags: &[RouteName]) -> Result<RouteName> {
    let list = |v: &[RouteName]| v.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(r) = s.route {
        return Ok(r);
    }
    match flags {
        [r] => return Ok(*r),
        [] => {}
        several => {
            return Err(Error::config(format!(
                "the flags name several routes ({}); pass the settings of one route, or pick one with --route",
                list(several)
            )));
        }
    }
    let configured: Vec<RouteName> = RouteName::ALL
        .into_iter()
        .filter(|r| {
            ROUTE_SELECTORS
                .iter()
                .any(|(id, sel)| sel == r && setting_value(s, id).is_some())
        })
        .collect();
    match configured.as_slice() {
        [r] => Ok(*r),
        [] => Err(Error::config(NO_ROUTE)),
        several => Err(Error::config(format!(
            "the environment names several routes ({}); pick one with --route or a route flag",
            list(several)
        ))),
    }
}

/// The current value of a setting, by its clap id; blank values count as unset.
pub fn setting_value(s: &Settings, id: &str) -> Option<String> {
    let text = |v: &Option<String>| non_empty(v).map(str::to_string);
    match id {
        "route" => s.route.map(|r| r.as_str().to_string()),
        "external_contact" => text(&s.external_contact),
        "deployment" => text(&s.deployment),
        "origin" => text(&s.origin),
        "session_token" => s.session_token.map(|t| t.to_string()),
        "conversation" => text(&s.conversation),
        "communication" => text(&s.communication),
        "region" => Some(s.region.clone()),
        "base_url" => text(&s.base_url),
        "client_id" => text(&s.client_id),
        "client_secret" => text(&s.client_secret),
        "webhook_url" => text(&s.webhook_url),
        "webhook_secret" => text(&s.webhook.webhook_secret),
        "state_dir" => s
            .webhook
            .state
            .state_dir
            .as_ref()
            .map(|p| p.display().to_string()),
        "state_url" => text(&s.webhook.state.state_url),
        "outbox" => s
            .webhook
            .state
            .outbox
            .as_ref()
            .map(|p| p.display().to_string()),
        _ => None,
    }
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

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Ids go into URL paths: refuse anything that could change the path.
fn path_segment(what: &str, id: &str) -> Result<String> {
    if id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(id.to_string())
    } else {
        Err(Error::config(format!(
            "{what} `{id}` must contain only letters, digits, `-` and `_`"
        )))
    }
}
