//! `gcupload doctor`: which route and settings (and where each came from, secrets and URL
//! credentials masked),
//! whether the login, API and socket hosts answer, whether the credentials get a token, and for
//! the guest route what the deployment accepts. Says what is wrong and how to fix it.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::settings::Source;
use crate::auth::TokenSource;
use crate::config::{Credentials, Endpoints};
use crate::error::{Error, Result, Stage};
use crate::error_reporting::{self, ExitStatus};
use crate::routes::{self, RouteConfig, guest};
use crate::{http, redact, retry};

/// One setting as `doctor` lists it: every setting, set or not, with the flag and variable
/// that set it.
pub struct Setting {
    pub id: String,
    pub flag: String,
    pub env: Option<String>,
    /// `None`: not set.
    pub value: Option<String>,
    pub source: Option<Source>,
}

impl Setting {
    /// `from env`, or for an unset setting how to set it: `unset: --client-id or GENESYS_CLIENT_ID`.
    fn origin(&self) -> String {
        match (self.source, &self.env) {
            (Some(s), _) if self.value.is_some() => format!("from {}", s.as_str()),
            (_, Some(env)) => format!("unset: {} or {env}", self.flag),
            (_, None) => format!("unset: {}", self.flag),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.id,
            "flag": self.flag,
            "env": self.env,
            "value": self.value.as_ref().map(|v| shown(&self.id, v)),
            "source": self.value.as_ref().and(self.source).map(Source::as_str),
        })
    }
}

/// What `doctor` checks, resolved from the command line by `settings`.
pub struct Inputs {
    /// Every setting, in the order of `--help`.
    pub settings: Vec<Setting>,
    pub route: Result<RouteConfig>,
    pub endpoints: Result<Endpoints>,
    /// The OAuth client the route needs (`None` for a route without one); only with a route.
    pub credentials: Option<Result<Option<Credentials>>>,
    /// Where the state store is (a database server is connected to and its schema checked).
    pub state: Option<crate::state::Location>,
    /// The `.env` file read and the keys it set, or why it was refused.
    pub env_file: Result<super::env_file::Loaded>,
}

/// A check's outcome. Only `Pass` is shown with a check mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Pass,
    /// Not a failure, not a pass either: e.g. a host that answers, but not as the platform.
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    name: String,
    /// Not failed (`pass` or `warn`).
    ok: bool,
    outcome: Outcome,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    #[serde(skip)]
    status: ExitStatus,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.note(name, Outcome::Pass, detail.into(), None);
    }

    fn note(&mut self, name: &str, outcome: Outcome, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            name: name.into(),
            ok: true,
            outcome,
            detail,
            fix,
            status: ExitStatus::Success,
        });
    }

    fn fail(&mut self, name: &str, err: &Error) {
        self.checks.push(Check {
            name: name.into(),
            ok: false,
            outcome: Outcome::Fail,
            detail: err.to_string(),
            fix: error_reporting::hint(err),
            status: error_reporting::exit_status(err),
        });
    }

    /// The checks on stderr, the JSON report on stdout; the status of the first failed check.
    fn print(&self, settings: &[Setting]) -> ExitStatus {
        let colour = crate::colour::stderr();
        for c in &self.checks {
            let mark = match (c.outcome, colour) {
                (Outcome::Pass, true) => "\x1b[32m✓\x1b[0m",
                (Outcome::Pass, false) => "✓",
                (Outcome::Warn, true) => "\x1b[33m!\x1b[0m",
                (Outcome::Warn, false) => "!",
                (Outcome::Fail, true) => "\x1b[31m✗\x1b[0m",
                (Outcome::Fail, false) => "✗",
            };
            // Details quote servers and settings: shown escaped, kept exact in the JSON.
            crate::stderr_line!("{mark} {:<14} {}", c.name, redact::for_terminal(&c.detail));
            if let Some(f) = &c.fix {
                crate::stderr_line!("  fix: {}", redact::for_terminal(f));
            }
        }
        let ok = self.checks.iter().all(|c| c.ok);
        let settings: Vec<_> = settings.iter().map(Setting::json).collect();
        let report = serde_json::json!({"ok": ok, "settings": settings, "checks": self.checks});
        let printed = super::print::print_all(format!("{report}\n").as_bytes(), "the report");
        self.checks
            .iter()
            .find(|c| !c.ok)
            .map(|c| c.status)
            .unwrap_or(printed)
    }
}

/// A setting for display: a secret only as set or unset (not even its length, which narrows a
/// guess), a URL without its user info or credential-bearing query, nothing raw that a terminal
/// would act on.
fn shown(id: &str, value: &str) -> String {
    if id.contains("secret") || id.contains("token") {
        let state = if value.is_empty() { "unset" } else { "set" };
        return format!("•••••• ({state}, hidden)");
    }
    let value = if id.ends_with("url") || id == "origin" {
        redact::url_text(value)
    } else {
        value.to_string()
    };
    redact::for_terminal(&value).into_owned()
}

/// A few quick attempts: doctor reports, it does not wait out an outage.
const PROBE_RETRY: retry::Policy = retry::Policy {
    budget: Duration::from_secs(300),
    max_attempts: 2,
    min_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(20),
};

pub async fn run(inputs: Inputs) -> ExitStatus {
    let mut report = Report::default();
    for setting in &inputs.settings {
        // A secret shows as set or unset even when unset: the line always says "hidden".
        let value = match &setting.value {
            Some(v) => shown(&setting.id, v),
            None if setting.id.contains("secret") => shown(&setting.id, ""),
            None => "-".into(),
        };
        crate::stderr_line!("  {:<16} {value:<40} {}", setting.id, setting.origin());
    }
    match (&inputs.route, &inputs.endpoints) {
        (Ok(r), Ok(_)) => report.pass("configuration", format!("route {}", r.name().as_str())),
        (Err(e), _) | (_, Err(e)) => report.fail("configuration", e),
    }
    match &inputs.env_file {
        Ok(loaded) => report.pass("env file", env_file_detail(loaded)),
        Err(e) => report.fail("env file", e),
    }
    if let Some(at) = inputs.state.filter(|at| at.dir().is_none()) {
        check_state(&mut report, at).await;
    }
    let client = match http::client() {
        Ok(c) => Some(c),
        Err(e) => {
            report.fail("http client", &e);
            None
        }
    };
    if let (Ok(e), Some(client)) = (&inputs.endpoints, client) {
        probe_hosts(&mut report, &client, e).await;
        if let Some(credentials) = inputs.credentials {
            check_credentials(&mut report, &client, e, credentials).await;
        }
        if let Ok(RouteConfig::Guest(g)) = &inputs.route {
            guest_check(&mut report, &client, e, g.clone()).await;
        }
    }
    report.print(&inputs.settings)
}

/// A state database: reachable, and its schema one this gcupload knows (the URL without its
/// password; nothing is created or migrated).
async fn check_state(report: &mut Report, at: crate::state::Location) {
    let shown = at.shown();
    match tokio::task::spawn_blocking(move || crate::state::Store::probe(&at)).await {
        Ok(Ok(detail)) => report.pass("state store", format!("{shown}: {detail}")),
        Ok(Err(e)) => report.fail("state store", &crate::pipeline::state_error(e)),
        Err(e) => report.fail("state store", &Error::config(e.to_string())),
    }
}

/// Which `.env` file was read and each key it set (its values are in the settings above).
fn env_file_detail(loaded: &super::env_file::Loaded) -> String {
    match &loaded.path {
        None => "no .env file read".into(),
        Some(p) if loaded.keys.is_empty() => format!("read {}: it set nothing", p.display()),
        Some(p) => format!("read {}: set {}", p.display(), loaded.keys.join(", ")),
    }
}

/// Whether each host answers at all (any HTTP status).
async fn probe_hosts(report: &mut Report, client: &reqwest::Client, e: &Endpoints) {
    for (name, url) in [
        ("login host", &e.login),
        ("API host", &e.api),
        ("socket host", &e.socket),
    ] {
        let mut probe = url.clone();
        let scheme = match url.scheme() {
            "wss" => "https",
            "ws" => "http",
            other => other,
        }
        .to_string();
        let _ = probe.set_scheme(&scheme);
        probe.set_path("/");
        let started = Instant::now();
        match client
            .get(probe.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                let detail = format!(
                    "{} answered HTTP {status} in {} ms",
                    redact::url(&probe),
                    started.elapsed().as_millis()
                );
                host_answer(report, name, status, detail);
            }
            Err(err) => report.fail(name, &Error::network(Stage::Config, &err)),
        }
    }
}

/// A host that answers with a page, a redirect or a refusal to serve without a login serves
/// something there; a 404 or a server error shows only that the host is reachable.
fn host_answer(report: &mut Report, name: &str, status: u16, detail: String) {
    if status < 400 || matches!(status, 401 | 403 | 405) {
        return report.pass(name, detail);
    }
    report.note(
        name,
        Outcome::Warn,
        format!("{detail}: reachable, but that does not show it is the platform"),
        Some("check --region or --base-url (GENESYS_REGION, GENESYS_BASE_URL); the credentials or guest session check shows whether the platform answers".into()),
    );
}

async fn check_credentials(
    report: &mut Report,
    client: &reqwest::Client,
    e: &Endpoints,
    credentials: Result<Option<Credentials>>,
) {
    match credentials {
        Ok(Some(c)) => {
            let limiter = Default::default();
            let tokens = TokenSource::new(client.clone(), e.token_url(), c, PROBE_RETRY, limiter);
            match tokens.bearer().await {
                Ok(_) => report.pass("credentials", "a token was issued"),
                Err(err) => report.fail("credentials", &err),
            }
        }
        Ok(None) => report.pass("credentials", "none needed for the guest route"),
        Err(err) => report.fail("credentials", &err),
    }
}

/// Opens a guest session and reports what the deployment accepts.
async fn guest_check(
    report: &mut Report,
    client: &reqwest::Client,
    e: &Endpoints,
    config: guest::Config,
) {
    let ctx = routes::Context {
        http: client.clone(),
        endpoints: e.clone(),
        credentials: None,
        retry: PROBE_RETRY,
        confirm_timeout: Duration::from_secs(10),
        limiter: Default::default(),
    };
    let guest = match RouteConfig::Guest(config).build(&ctx) {
        Ok(g) => g,
        Err(err) => return report.fail("guest session", &err),
    };
    match guest.preflight().await {
        Ok(()) => {
            let rules = guest.rules().await.unwrap_or_default();
            report.pass("guest session", rules);
        }
        Err(err) => report.fail("guest session", &err),
    }
    guest.finish().await;
}
