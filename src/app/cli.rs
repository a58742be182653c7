//! The command line as typed: clap structs, help and value parsers only. `settings` resolves
//! them into the library's configuration; nothing below `app` sees these types. Names here are
//! a contract with scripts and tests.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::audit::Output;
use crate::progress::When;
use crate::routes::RouteName;

/// `--version`: the crate version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GCUPLOAD_COMMIT"),
    ")"
);

/// The examples of `--help` and the man page; the client-only build has no sandbox to show.
#[cfg(feature = "sandbox")]
pub const EXAMPLES: &str = "\
  gcupload --sandbox ./report.pdf                             try the whole flow locally, no account
  gcupload --sandbox --route guest ./report.pdf               the same for the guest route
  gcupload --deployment <ID> --region eu_west_1 ./photo.png   upload as a Web Messaging guest
  gcupload --conversation <ID> --communication <ID> ./a.pdf   upload into a conversation (OAuth)
  gcupload ./a.png ./b.pdf | jq -r 'select(.action==\"FILE_UPLOAD_FAILED\") | .fileName'
";
#[cfg(not(feature = "sandbox"))]
pub const EXAMPLES: &str = "\
  gcupload --deployment <ID> --region eu_west_1 ./photo.png   upload as a Web Messaging guest
  gcupload --conversation <ID> --communication <ID> ./a.pdf   upload into a conversation (OAuth)
  gcupload ./a.png ./b.pdf | jq -r 'select(.action==\"FILE_UPLOAD_FAILED\") | .fileName'
";

/// The client alone recommends nothing it does not have: checked when it is compiled (CI's
/// `cargo clippy --no-default-features`), so no separate build of its tests is needed.
#[cfg(not(feature = "sandbox"))]
const _: () = assert!(
    !names(EXAMPLES, "sandbox"),
    "the client-only build's examples name the sandbox"
);

/// `needle` occurs in `text` (usable in a constant).
#[cfg(not(feature = "sandbox"))]
pub const fn names(text: &str, needle: &str) -> bool {
    let (t, n) = (text.as_bytes(), needle.as_bytes());
    let mut i = 0;
    while i + n.len() <= t.len() {
        let mut j = 0;
        while j < n.len() && t[i + j] == n[j] {
            j += 1;
        }
        if j == n.len() {
            return true;
        }
        i += 1;
    }
    false
}

/// The command line with its examples and exit statuses after the help: every user of the
/// command (parsing, completions, the man page, doctor) takes it from here.
pub fn command() -> clap::Command {
    use std::fmt::Write;
    let mut after = format!("Examples:\n{EXAMPLES}\nExit status:\n");
    for s in crate::error_reporting::ExitStatus::ALL {
        let _ = writeln!(after, "  {:>3}  {}", s.code(), s.meaning());
    }
    <Cli as clap::CommandFactory>::command().after_help(after)
}

#[derive(Debug, Parser)]
#[command(
    name = "gcupload",
    version = VERSION,
    about = "Upload files into Genesys Cloud messaging and print one JSON audit record per file",
    // clap's generated usage names every option set from the environment as if it were
    // required; a usage line is what the command takes, nothing more.
    override_usage = "gcupload [OPTIONS] <FILE>...\n       gcupload <COMMAND>",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub upload: UploadArgs,

    /// Read settings from this file instead of `./.env` (same rules: yours, not writable by
    /// others, gcupload's variables only; the environment wins over it).
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Read no `.env` file (as GCUPLOAD_NO_DOTENV=1 does).
    #[arg(long, global = true, conflicts_with = "env_file")]
    pub no_env_file: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded Genesys Cloud emulator and print its settings as one JSON line.
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
    /// Webhook outbox: deliveries that failed and wait for a later run.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Check the configuration, the hosts and the credentials; say what to fix.
    Doctor(Box<DoctorArgs>),
    /// Watch drop folders: upload what is there, then each file that arrives once it is
    /// complete and quiet; runs until SIGTERM or Ctrl-C (e.g. as a systemd service).
    Watch(Box<WatchArgs>),
    /// The journal of uploads, one JSON object per line (what was sent, what failed, what a
    /// re-run would resume).
    History(HistoryArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub settings: Settings,

    /// More log detail on stderr.
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// `gcupload watch DIR…`: the upload flags, and how to notice arrivals.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// How long a file must be quiet (no write, no rename) before it is taken, e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub settle: std::time::Duration,

    /// Look for changes every DURATION instead of waiting for file events (network
    /// filesystems such as NFS and SMB, where events from other hosts never arrive).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub poll: Option<std::time::Duration>,

    /// The directories to watch (FILE…), with the flags of an upload.
    #[command(flatten)]
    pub upload: UploadArgs,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Deliver every queued webhook event now; exit non-zero if some still fail.
    Flush(OutboxArgs),
}

#[derive(Debug, Clone, Args)]
pub struct OutboxArgs {
    #[command(flatten)]
    pub webhook: WebhookArgs,

    /// Where to deliver (queued events go to the URL configured now, never to a stored one).
    #[arg(long, env = "WEBHOOK_SYNC_URL", value_name = "URL")]
    pub webhook_url: Option<String>,

    /// More log detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// What webhook deliveries need besides the URL, for uploads and `webhook flush` alike.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Sign each delivery: X-Gcupload-Signature: sha256=<HMAC of the body>.
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub webhook_secret: Option<String>,

    #[command(flatten)]
    pub state: StateArgs,
}

/// Where runs keep their state: the journal of uploads and the webhook outbox.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Directory of the state store (default: the user's state directory, e.g. ~/.local/state/gcupload).
    #[arg(long, env = "GCUPLOAD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// A PostgreSQL database several hosts share as their state store, instead of the state
    /// directory: postgres://user:password@host:port/db (sslmode=, sslrootcert=; the password is never shown).
    #[arg(
        long,
        env = "GCUPLOAD_STATE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub state_url: Option<String>,

    /// Former name of --state-dir.
    #[arg(long, env = "GCUPLOAD_OUTBOX", value_name = "DIR", hide = true)]
    pub outbox: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Only uploads updated at or after this time (RFC 3339, e.g. 2026-11-26 or 2026-11-26T08:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only uploads whose last attempt failed.
    #[arg(long)]
    pub failed: bool,

    /// Only uploads a re-run would resume (each says what it would do next).
    #[arg(long)]
    pub pending: bool,

    /// Only uploads of this file, or of the files below this directory.
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
}

/// Where and as whom to upload: what `gcupload doctor` checks as well.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Pick the route explicitly (otherwise the route-selecting flag or variable decides).
    #[arg(long, value_enum)]
    pub route: Option<RouteName>,

    /// Route `external-contact`: a contract from the original specification, not a published
    /// Genesys API (a real tenant answers 404; a gateway of your own may serve it).
    #[arg(
        long,
        env = "EXTERNAL_CONTACT_ID",
        value_name = "ID",
        help_heading = "Route external-contact"
    )]
    pub external_contact: Option<String>,

    /// Route `guest`: the Web Messaging deployment to upload into, as the customer.
    #[arg(
        long,
        env = "GENESYS_DEPLOYMENT_ID",
        value_name = "ID",
        help_heading = "Route guest"
    )]
    pub deployment: Option<String>,

    /// Origin header for the guest socket (deployments may restrict allowed domains).
    #[arg(
        long,
        env = "GENESYS_ORIGIN",
        value_name = "URL",
        help_heading = "Route guest"
    )]
    pub origin: Option<String>,

    /// Resume this guest session (default: a new one; its token is in the record).
    #[arg(
        long,
        env = "GENESYS_SESSION_TOKEN",
        value_name = "UUID",
        help_heading = "Route guest"
    )]
    pub session_token: Option<uuid::Uuid>,

    /// Route `conversation`: the message conversation to upload into, as the organisation.
    #[arg(
        long,
        env = "GENESYS_CONVERSATION_ID",
        value_name = "ID",
        help_heading = "Route conversation"
    )]
    pub conversation: Option<String>,

    /// The conversation's communication (required with --conversation).
    #[arg(
        long,
        env = "GENESYS_COMMUNICATION_ID",
        value_name = "ID",
        help_heading = "Route conversation"
    )]
    pub communication: Option<String>,

    /// Region: `us_east_1`, `us-east-1` or its domain `mypurecloud.com`.
    #[arg(long, env = "GENESYS_REGION", default_value = "us_east_1")]
    pub region: String,

    /// One origin serving /oauth/token and /api/v2 (overrides --region). http only on loopback;
    /// no user info (the OAuth client goes in --client-id / --client-secret).
    #[arg(long, env = "GENESYS_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// OAuth client credentials grant: client id.
    #[arg(long, env = "GENESYS_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,

    /// OAuth client credentials grant: client secret (never printed).
    #[arg(
        long,
        env = "GENESYS_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub client_secret: Option<String>,

    /// POST each completed record here as {"event":"genesys.file.uploaded","payload":record}.
    #[arg(long, env = "WEBHOOK_SYNC_URL", value_name = "URL")]
    pub webhook_url: Option<String>,

    #[command(flatten)]
    pub webhook: WebhookArgs,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    pub settings: Settings,

    /// Files, directories (with --recursive) or glob patterns to upload.
    #[arg(value_name = "FILE", required_unless_present = "from")]
    pub files: Vec<PathBuf>,

    /// Also upload the paths listed in this file, one per line (`-` reads stdin).
    #[arg(long, value_name = "FILE|-")]
    pub from: Option<PathBuf>,

    /// The --from list is separated by NUL bytes (`find … -print0`), not lines.
    #[arg(long, requires = "from")]
    pub from0: bool,

    /// Send files again even when the journal says they were already uploaded to this target.
    #[arg(long)]
    pub force: bool,

    /// Keep no state: no skipping, no resuming, no webhook outbox.
    #[arg(long, conflicts_with = "force")]
    pub no_state: bool,

    /// After a file's upload is confirmed and journaled, move it into this directory (drop
    /// folders), keeping the folders below the walked one (`in/a/x.pdf` → `DIR/a/x.pdf`); a name
    /// already taken there gets a number: `name (1).pdf`.
    #[arg(long, value_name = "DIR", conflicts_with = "remove_source_files")]
    pub move_to: Option<PathBuf>,

    /// Move a file that can never be sent (refused by validation or by the deployment, or
    /// flagged by the virus scan) into this directory, with its record beside it as
    /// `NAME.gcupload.json`: later runs stop failing on it.
    #[arg(long, value_name = "DIR")]
    pub failed_to: Option<PathBuf>,

    /// After a file's upload is confirmed and journaled, delete it.
    #[arg(long)]
    pub remove_source_files: bool,

    /// Platform API calls per minute at most, for the whole run (stay under the tenant's limit
    /// instead of riding on 429s); e.g. 300 or 300/min.
    #[arg(long, value_name = "N/min", value_parser = parse_rate)]
    pub rate: Option<std::num::NonZeroU32>,

    /// Upload the files inside directories, recursively.
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// Walks and globs also take hidden files and directories (`.name`).
    #[arg(long, help_heading = "Walks and globs")]
    pub hidden: bool,

    /// Walks and globs skip what this glob matches (a name, or a path with `/`; repeatable;
    /// wins over --include).
    #[arg(long, value_name = "GLOB", help_heading = "Walks and globs")]
    pub exclude: Vec<String>,

    /// Walks and globs take only the files this glob matches (repeatable).
    #[arg(long, value_name = "GLOB", help_heading = "Walks and globs")]
    pub include: Vec<String>,

    /// Walks and globs defer files modified less than this long ago (e.g. 30s, 5m): for writers
    /// on other hosts (NFS, SMB) that no local check can see.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s", help_heading = "Walks and globs")]
    pub min_age: std::time::Duration,

    /// Files uploaded at the same time.
    #[arg(short = 'j', long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,

    /// Upload only the K-th of N deterministic slices of the inputs (e.g. 2/8).
    #[arg(long, value_name = "K/N", value_parser = crate::inputs::parse_shard)]
    pub shard: Option<crate::inputs::Shard>,

    /// Upload under this name instead of the file's own (one file only).
    #[arg(long, value_name = "NAME", help_heading = "Route conversation")]
    pub name: Option<String>,

    /// Upload the media but do not send it as a message.
    #[arg(long, help_heading = "Route conversation")]
    pub no_send: bool,

    /// Text sent with the file (guest: the message caption; conversation: a separate text message).
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,

    /// Seconds to wait for the platform to accept an upload (scan, media status, socket answers).
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub confirm_timeout: u64,

    /// Total seconds one file may spend on retries and waits.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub retry_budget: u64,

    /// Attempts per call, the first included (1 disables retries).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub max_attempts: usize,

    /// Largest file accepted (bytes, or with KB/MB/KiB/MiB).
    #[arg(long, default_value = "10MiB", value_parser = parse_size, value_name = "SIZE")]
    pub max_size: u64,

    /// Content types allowed (comma-separated or repeated); replaces the default list.
    #[arg(long, value_delimiter = ',', value_name = "TYPE")]
    pub allow_type: Vec<String>,

    /// Skip the local malware-signature scan and rely on the platform's virus scan.
    #[arg(long)]
    pub no_local_scan: bool,

    /// Indent each JSON record (same as --output pretty).
    #[arg(long, conflicts_with = "output")]
    pub pretty: bool,

    /// How records are written to stdout.
    #[arg(long, value_enum, default_value = "json")]
    pub output: Output,

    /// Progress bars on stderr: auto (on a terminal), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: When,

    /// Validate everything, resolve the route and hosts, check the credentials; upload nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// With --dry-run: make no network call at all (no token request, no guest session).
    #[arg(long, requires = "dry_run")]
    pub offline: bool,

    /// More log detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Start the embedded sandbox on a free loopback port and upload to it with its credentials
    /// (route external-contact unless --route picks guest or conversation).
    #[cfg(feature = "sandbox")]
    #[arg(long)]
    pub sandbox: bool,
}

impl UploadArgs {
    /// The record format: `--pretty` is `--output pretty`.
    pub fn output(&self) -> Output {
        if self.pretty {
            Output::Pretty
        } else {
            self.output
        }
    }
}

// The library's enums are plain; their command-line spellings live here.

impl ValueEnum for RouteName {
    fn value_variants<'a>() -> &'a [Self] {
        &RouteName::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()).help(self.about()))
    }
}

impl ValueEnum for Output {
    fn value_variants<'a>() -> &'a [Self] {
        &[Output::Json, Output::Pretty, Output::Text]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Output::Json => PossibleValue::new("json")
                .help("One compact JSON object per line (for jq and scripts)"),
            Output::Pretty => PossibleValue::new("pretty").help("Indented JSON"),
            Output::Text => PossibleValue::new("text").help("One human line per file"),
        })
    }
}

impl ValueEnum for When {
    fn value_variants<'a>() -> &'a [Self] {
        &[When::Auto, When::Always, When::Never]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            When::Auto => "auto",
            When::Always => "always",
            When::Never => "never",
        }))
    }
}

#[cfg(feature = "sandbox")]
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Address of the API origin (OAuth, routes, webhook receiver).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,

    /// Lifetime of issued access tokens, seconds.
    #[arg(long, default_value_t = 86400)]
    pub token_ttl: u64,

    /// Lifetime of pre-signed upload URLs, seconds.
    #[arg(long, default_value_t = 900)]
    pub url_ttl: u64,

    /// Make the built-in webhook receiver answer 500 this many times.
    #[arg(long, default_value_t = 0)]
    pub webhook_fail: u32,

    /// Keep stored objects here instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub store_dir: Option<PathBuf>,

    /// Keep the sandbox's credentials, ids, port and objects here across restarts, so re-runs
    /// against it skip and resume as against a real tenant.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Log detail on stderr (-v info, -vv debug).
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// `300` or `300/min`: calls per minute.
pub fn parse_rate(s: &str) -> Result<std::num::NonZeroU32, String> {
    let n = s.trim().trim_end_matches("/min").trim();
    n.parse::<std::num::NonZeroU32>().map_err(|_| {
        format!("`{s}` is not a rate: a whole number of calls per minute, e.g. 300/min")
    })
}

/// `30s`, `5m`, `1h 30m`, `500ms` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("`{s}` is not a duration ({e}); e.g. 30s, 5m, 1h"))
}

/// `10MiB`, `512KB`, `1048576`: decimal (KB, MB, GB) and binary (KiB, MiB, GiB) units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 10MiB, 500KB, 1048576)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("500KB"), Ok(500_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1XB").is_err());
    }

    /// The client alone (`--no-default-features`) must not recommend what it does not have.
    /// Its help is this help without the sandbox's own flag and command, so only those may
    /// name the sandbox here; its examples and its no-route message are checked when it is
    /// compiled (a constant assertion next to `EXAMPLES`).
    #[test]
    fn only_the_sandbox_s_own_flag_and_command_name_it() {
        let cmd = command();
        let own = |id: &str| id == "sandbox";
        let mut commands = vec![&cmd];
        commands.extend(cmd.get_subcommands().filter(|s| !own(s.get_name())));
        for c in commands {
            let about = c.get_long_about().or(c.get_about()).map(|a| a.to_string());
            assert!(
                !about.unwrap_or_default().contains("sandbox"),
                "{}",
                c.get_name()
            );
            for arg in c.get_arguments().filter(|a| !own(a.get_id().as_str())) {
                for help in [arg.get_help(), arg.get_long_help()].into_iter().flatten() {
                    let help = help.to_string();
                    assert!(!help.contains("sandbox"), "{}: {help}", arg.get_id());
                }
            }
        }
    }

    #[test]
    fn help_lists_every_exit_status() {
        let help = command().render_long_help().to_string();
        for s in crate::error_reporting::ExitStatus::ALL {
            assert!(
                help.contains(&format!("{:>3}  {}", s.code(), s.meaning())),
                "{help}"
            );
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
