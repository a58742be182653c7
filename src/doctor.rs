//! `gcupload doctor`: which route and settings (and where each came from, secrets masked),
//! whether the login, API and socket hosts answer, whether the credentials get a token, and for
//! the guest route what the deployment accepts. Says what is wrong and how to fix it.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::Settings;
use crate::config::{self, Endpoints};
use crate::error::Error;
use crate::error_reporting::{self, exit};
use crate::{auth, http, retry, routes::Route, routes::guest::Guest};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    name: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    #[serde(skip)]
    code: i32,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            code: exit::OK,
        });
    }

    fn fail(&mut self, name: &str, err: &Error) {
        self.checks.push(Check {
            name: name.into(),
            ok: false,
            detail: err.to_string(),
            fix: error_reporting::hint(err),
            code: error_reporting::exit_code(err),
        });
    }
}

/// A value for display: secrets never, only their length.
fn shown(id: &str, value: &str) -> String {
    if id.contains("secret") {
        format!("•••••• ({} characters, hidden)", value.chars().count())
    } else {
        value.to_string()
    }
}

pub async fn run(settings: Settings) -> i32 {
    let mut report = Report::default();
    let colour = crate::colour::stderr();
    for (id, source) in &settings.sources {
        let value = setting_value(&settings, id).unwrap_or_default();
        eprintln!("  {id:<16} {:<40} from {source}", shown(id, &value));
    }
    let route = config::resolve_route(&settings, None, true, None);
    let endpoints = Endpoints::resolve(&settings.region, settings.base_url.as_deref());
    match (&route, &endpoints) {
        (Ok(r), Ok(_)) => report.pass("configuration", format!("route {}", r.name().as_str())),
        (Err(e), _) | (_, Err(e)) => report.fail("configuration", e),
    }
    if let Ok(e) = &endpoints {
        let client = http::client();
        for (name, url) in [
            ("login host", &e.login),
            ("API host", &e.api),
            ("socket host", &e.socket),
        ] {
            let mut probe = url.clone();
            let _ = probe.set_scheme(if url.scheme() == "wss" {
                "https"
            } else if url.scheme() == "ws" {
                "http"
            } else {
                url.scheme()
            });
            probe.set_path("/");
            let started = Instant::now();
            match client
                .get(probe.clone())
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) => report.pass(
                    name,
                    format!(
                        "{} answered HTTP {} in {} ms",
                        crate::redact::url(&probe),
                        r.status().as_u16(),
                        started.elapsed().as_millis()
                    ),
                ),
                Err(err) => report.fail(name, &Error::network(crate::error::Stage::Config, &err)),
            }
        }
        if let Ok(r) = &route {
            match config::credentials(&settings, r.name()) {
                Ok(Some(c)) => {
                    let tokens = auth::TokenSource::new(
                        client.clone(),
                        e.token_url(),
                        c,
                        retry::Policy {
                            max_attempts: 2,
                            ..retry::Policy::default()
                        },
                    );
                    match tokens.bearer().await {
                        Ok(_) => report.pass("credentials", "a token was issued"),
                        Err(err) => report.fail("credentials", &err),
                    }
                }
                Ok(None) => report.pass("credentials", "none needed for the guest route"),
                Err(err) => report.fail("credentials", &err),
            }
            if let config::RouteConfig::Guest {
                deployment_id,
                origin,
                session_token,
                ..
            } = r
            {
                guest_check(&mut report, e, deployment_id, origin, *session_token).await;
            }
        }
    }
    let ok = report.checks.iter().all(|c| c.ok);
    for c in &report.checks {
        let mark = match (c.ok, colour) {
            (true, true) => "\x1b[32m✓\x1b[0m",
            (true, false) => "✓",
            (false, true) => "\x1b[31m✗\x1b[0m",
            (false, false) => "✗",
        };
        eprintln!("{mark} {:<14} {}", c.name, c.detail);
        if let Some(f) = &c.fix {
            eprintln!("  fix: {f}");
        }
    }
    println!("{}", serde_json::json!({"ok": ok, "checks": report.checks}));
    report
        .checks
        .iter()
        .find(|c| !c.ok)
        .map(|c| c.code)
        .unwrap_or(exit::OK)
}

/// Opens a guest session and reports what the deployment accepts.
async fn guest_check(
    report: &mut Report,
    e: &Endpoints,
    deployment: &str,
    origin: &Option<String>,
    token: uuid::Uuid,
) {
    let guest = Guest::new(
        e.socket.clone(),
        crate::routes::guest::Config {
            deployment_id: deployment.to_string(),
            origin: origin.clone(),
            session_token: token,
            message: None,
        },
        Duration::from_secs(10),
        retry::Policy {
            max_attempts: 2,
            ..retry::Policy::default()
        },
    );
    match guest.preflight().await {
        Ok(()) => {
            let rules = guest.rules().await.unwrap_or_default();
            report.pass("guest session", rules);
        }
        Err(err) => report.fail("guest session", &err),
    }
    guest.finish().await;
}

/// The current value of a setting, by its clap id.
fn setting_value(s: &Settings, id: &str) -> Option<String> {
    Some(match id {
        "route" => s.route.map(|r| r.as_str().to_string())?,
        "external_contact" => s.external_contact.clone()?,
        "deployment" => s.deployment.clone()?,
        "origin" => s.origin.clone()?,
        "session_token" => s.session_token?.to_string(),
        "conversation" => s.conversation.clone()?,
        "communication" => s.communication.clone()?,
        "region" => s.region.clone(),
        "base_url" => s.base_url.clone()?,
        "client_id" => s.client_id.clone()?,
        "client_secret" => s.client_secret.clone()?,
        "webhook_url" => s.webhook_url.clone()?,
        "webhook_secret" => s.webhook.webhook_secret.clone()?,
        "outbox" => s.webhook.outbox.as_ref()?.display().to_string(),
        _ => return None,
    })
}
