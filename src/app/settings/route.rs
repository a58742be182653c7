//! Which route a run takes and what it needs: the route chosen from `--route`, the route flags or
//! the environment (exactly one), its ids checked, its OAuth client, and flags for another route
//! refused.

use super::super::cli::Settings;
use super::values::{Source, Sources, non_empty, setting_value};
use crate::config::Credentials;
use crate::error::{Error, Result};
use crate::routes::{RouteConfig, RouteName, conversation, external_contact, guest};
use crate::secret::Secret;

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

// The client alone recommends nothing it does not have (checked when it is compiled).
#[cfg(not(feature = "sandbox"))]
const _: () = assert!(
    !super::super::cli::names(NO_ROUTE, "sandbox"),
    "the client-only build's no-route message names the sandbox"
);

/// The settings that select a route, by clap id.
const ROUTE_SELECTORS: &[(&str, RouteName)] = &[
    ("external_contact", RouteName::ExternalContact),
    ("deployment", RouteName::Guest),
    ("conversation", RouteName::Conversation),
    ("communication", RouteName::Conversation),
];

/// The routes whose selecting settings were given as flags (they win over the environment).
pub(super) fn route_flags(sources: &Sources) -> Vec<RouteName> {
    let mut out = Vec::new();
    for (id, route) in ROUTE_SELECTORS {
        let flag = sources.iter().any(|(i, s)| i == id && *s == Source::Flag);
        if flag && !out.contains(route) {
            out.push(*route);
        }
    }
    out
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
pub(super) fn check_route_flags(route: RouteName, sources: &Sources) -> Result<()> {
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
