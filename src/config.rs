//! Turns flags, environment and `.env` (already merged by clap) into a checked [`Config`].

use std::fmt;

use url::Url;

use crate::cli::{RouteName, Settings, UploadArgs};
use crate::error::{Error, Result};
use crate::validate::Policy;

/// A value that must never reach any output: Debug and Display print a mask.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Genesys Cloud regions and their domains (PureCloudRegionHosts in the official SDKs).
pub const REGIONS: &[(&str, &str)] = &[
    ("us_east_1", "mypurecloud.com"),
    ("us_east_2", "use2.us-gov-pure.cloud"),
    ("us_west_2", "usw2.pure.cloud"),
    ("ca_central_1", "cac1.pure.cloud"),
    ("sa_east_1", "sae1.pure.cloud"),
    ("mx_central_1", "mxc1.pure.cloud"),
    ("eu_west_1", "mypurecloud.ie"),
    ("eu_west_2", "euw2.pure.cloud"),
    ("eu_central_1", "mypurecloud.de"),
    ("eu_central_2", "euc2.pure.cloud"),
    ("eusc_de_east_1", "edee1.eusc-pure.cloud"),
    ("me_central_1", "mec1.pure.cloud"),
    ("ap_south_1", "aps1.pure.cloud"),
    ("ap_southeast_1", "apse1.pure.cloud"),
    ("ap_southeast_2", "mypurecloud.com.au"),
    ("ap_northeast_1", "mypurecloud.jp"),
    ("ap_northeast_2", "apne2.pure.cloud"),
    ("ap_northeast_3", "apne3.pure.cloud"),
];

/// Accepts `us_east_1`, `us-east-1` or the domain itself; returns the domain.
pub fn region_domain(region: &str) -> Result<&'static str> {
    let r = region.trim().to_ascii_lowercase();
    let name = r.replace('-', "_");
    REGIONS
        .iter()
        .find(|(n, d)| *n == name || *d == r)
        .map(|(_, d)| *d)
        .ok_or_else(|| {
            let names: Vec<&str> = REGIONS.iter().map(|(n, _)| *n).collect();
            Error::config(format!(
                "unknown region `{region}`; use one of {} (or its domain)",
                names.join(", ")
            ))
        })
}

/// `http` is only acceptable to a loopback host; everything else must be `https`.
pub fn check_transport(url: &Url, what: &str) -> Result<()> {
    match url.scheme() {
        "https" | "wss" => Ok(()),
        "http" | "ws" if is_loopback(url) => Ok(()),
        s => Err(Error::config(format!(
            "{what} must use https (plain {s} is only accepted for a loopback host): {}",
            crate::redact::url(url)
        ))),
    }
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Where the platform's surfaces live.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub login: Url,
    pub api: Url,
    /// The Web Messaging guest socket (`/v1`, without its query).
    pub socket: Url,
}

impl Endpoints {
    pub fn resolve(region: &str, base_url: Option<&str>) -> Result<Self> {
        match base_url {
            Some(b) => {
                let url = Url::parse(b)
                    .map_err(|e| Error::config(format!("--base-url `{b}` is not a URL: {e}")))?;
                check_transport(&url, "--base-url")?;
                if url.host_str().is_none() {
                    return Err(Error::config(format!("--base-url `{b}` has no host")));
                }
                let mut socket = url.join("v1").expect("static path");
                let ws = if url.scheme() == "https" { "wss" } else { "ws" };
                socket
                    .set_scheme(ws)
                    .expect("http(s) URLs can become ws(s)");
                Ok(Endpoints {
                    login: url.clone(),
                    api: url,
                    socket,
                })
            }
            None => {
                let d = region_domain(region)?;
                let parse = |h: String| Url::parse(&h).expect("region hosts are valid URLs");
                Ok(Endpoints {
                    login: parse(format!("https://login.{d}/")),
                    api: parse(format!("https://api.{d}/")),
                    socket: parse(format!("wss://webmessaging.{d}/v1")),
                })
            }
        }
    }

    pub fn token_url(&self) -> Url {
        self.login.join("oauth/token").expect("static path")
    }

    pub fn api_url(&self, path: &str) -> Url {
        self.api
            .join(path.trim_start_matches('/'))
            .expect("API paths are valid")
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
}

/// The route a run uses, with what it needs.
#[derive(Debug, Clone)]
pub enum RouteConfig {
    ExternalContact {
        contact_id: String,
    },
    Guest {
        deployment_id: String,
        origin: Option<String>,
        session_token: uuid::Uuid,
        message: Option<String>,
    },
    Conversation {
        conversation_id: String,
        communication_id: String,
        name: Option<String>,
        send: bool,
        message: Option<String>,
    },
}

impl RouteConfig {
    pub fn name(&self) -> RouteName {
        match self {
            RouteConfig::ExternalContact { .. } => RouteName::ExternalContact,
            RouteConfig::Guest { .. } => RouteName::Guest,
            RouteConfig::Conversation { .. } => RouteName::Conversation,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub endpoints: Endpoints,
    /// OAuth client; the guest route runs without one.
    pub credentials: Option<Credentials>,
    pub route: RouteConfig,
    pub webhook_url: Option<Url>,
    pub policy: Policy,
    pub output: crate::audit::Output,
    pub progress: crate::progress::When,
    pub dry_run: bool,
    pub offline: bool,
    pub quiet: bool,
    pub jobs: usize,
    pub confirm_timeout: std::time::Duration,
    pub retry: crate::retry::Policy,
    pub webhook_secret: Option<Secret>,
    pub outbox_dir: Option<std::path::PathBuf>,
}

impl Config {
    pub fn resolve(args: &UploadArgs) -> Result<Self> {
        let endpoints =
            Endpoints::resolve(&args.settings.region, args.settings.base_url.as_deref())?;
        let route = resolve_route(
            &args.settings,
            non_empty(&args.name),
            !args.no_send,
            non_empty(&args.message),
        )?;
        let credentials = credentials(&args.settings, route.name())?;
        let webhook_url = match non_empty(&args.settings.webhook_url) {
            Some(w) => {
                let u = Url::parse(w)
                    .map_err(|e| Error::config(format!("--webhook-url `{w}` is not a URL: {e}")))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(Error::config(format!(
                        "--webhook-url must be http(s), got `{}`",
                        u.scheme()
                    )));
                }
                Some(u)
            }
            None => None,
        };
        if args.name.is_some() && (args.files.len() > 1 || args.recursive || args.from.is_some()) {
            return Err(Error::config(
                "--name renames one file; pass a single file with it",
            ));
        }
        if args.confirm_timeout == 0 {
            return Err(Error::config("--confirm-timeout must be at least 1 second"));
        }
        if args.jobs == 0 {
            return Err(Error::config("--jobs must be at least 1"));
        }
        if args.max_attempts == 0 {
            return Err(Error::config("--max-attempts must be at least 1"));
        }
        let mut policy = Policy::from_args(args)?;
        policy.md5 = route.name() == RouteName::Conversation;
        Ok(Config {
            endpoints,
            credentials,
            route,
            webhook_url,
            policy,
            output: args.output(),
            progress: args.progress,
            dry_run: args.dry_run,
            offline: args.offline,
            quiet: args.quiet,
            jobs: args.jobs,
            confirm_timeout: std::time::Duration::from_secs(args.confirm_timeout),
            retry: crate::retry::Policy {
                budget: std::time::Duration::from_secs(args.retry_budget),
                max_attempts: args.max_attempts,
                ..crate::retry::Policy::default()
            },
            webhook_secret: non_empty(&args.settings.webhook.webhook_secret).map(Secret::new),
            outbox_dir: args
                .settings
                .webhook
                .outbox
                .clone()
                .or_else(crate::outbox::default_dir),
        })
    }
}

/// Exactly one route per run: `--route` first, then route flags, then the environment.
/// The OAuth client, required by every route but `guest`.
pub fn credentials(s: &Settings, route: RouteName) -> Result<Option<Credentials>> {
    match (non_empty(&s.client_id), non_empty(&s.client_secret)) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            client_id: id.to_string(),
            client_secret: Secret::new(secret),
        })),
        _ if route == RouteName::Guest => Ok(None),
        _ => Err(Error::config(format!(
            "route {} needs OAuth client credentials: set GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET (or --client-id/--client-secret)",
            route.as_str()
        ))),
    }
}

pub fn resolve_route(
    args: &Settings,
    name: Option<&str>,
    send: bool,
    message: Option<&str>,
) -> Result<RouteConfig> {
    let conversation_set =
        non_empty(&args.conversation).is_some() || non_empty(&args.communication).is_some();
    let configured: Vec<RouteName> = [
        (
            non_empty(&args.external_contact).is_some(),
            RouteName::ExternalContact,
        ),
        (non_empty(&args.deployment).is_some(), RouteName::Guest),
        (conversation_set, RouteName::Conversation),
    ]
    .into_iter()
    .filter_map(|(set, r)| set.then_some(r))
    .collect();
    let list = |v: &[RouteName]| v.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
    let chosen = if let Some(r) = args.route {
        r
    } else if args.route_flags.len() > 1 {
        return Err(Error::config(format!(
            "the flags name several routes ({}); pass the settings of one route, or pick one with --route",
            list(&args.route_flags)
        )));
    } else if let Some(r) = args.route_flags.first() {
        *r
    } else {
        match configured.as_slice() {
            [r] => *r,
            [] => {
                return Err(Error::config(
                    "no route selected: pass --external-contact <ID>, --deployment <ID> (guest), or --conversation <ID> --communication <ID>",
                ));
            }
            several => {
                return Err(Error::config(format!(
                    "the environment names several routes ({}); pick one with --route or a route flag",
                    list(several)
                )));
            }
        }
    };
    let need = |v: &Option<String>, what: &str| -> Result<String> {
        match non_empty(v) {
            Some(id) => path_segment(what, id),
            None => Err(Error::config(format!(
                "route {} needs {what}",
                chosen.as_str()
            ))),
        }
    };
    let message = message.map(str::to_string);
    Ok(match chosen {
        RouteName::ExternalContact => RouteConfig::ExternalContact {
            contact_id: need(
                &args.external_contact,
                "--external-contact <ID> (EXTERNAL_CONTACT_ID)",
            )?,
        },
        RouteName::Guest => RouteConfig::Guest {
            deployment_id: need(
                &args.deployment,
                "--deployment <ID> (GENESYS_DEPLOYMENT_ID)",
            )?,
            origin: non_empty(&args.origin).map(str::to_string),
            session_token: args.session_token.unwrap_or_else(uuid::Uuid::new_v4),
            message,
        },
        RouteName::Conversation => RouteConfig::Conversation {
            conversation_id: need(
                &args.conversation,
                "--conversation <ID> (GENESYS_CONVERSATION_ID)",
            )?,
            communication_id: need(
                &args.communication,
                "--communication <ID> (GENESYS_COMMUNICATION_ID)",
            )?,
            name: name.map(str::to_string),
            send,
            message,
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_in_three_spellings() {
        assert_eq!(region_domain("us_east_1").unwrap(), "mypurecloud.com");
        assert_eq!(region_domain("eu-west-1").unwrap(), "mypurecloud.ie");
        assert_eq!(region_domain("mypurecloud.jp").unwrap(), "mypurecloud.jp");
        assert!(region_domain("mars_north_1").is_err());
    }

    #[test]
    fn base_url_needs_https_off_loopback() {
        assert!(Endpoints::resolve("x", Some("http://127.0.0.1:8080")).is_ok());
        assert!(Endpoints::resolve("x", Some("http://localhost:8080")).is_ok());
        assert!(Endpoints::resolve("x", Some("http://example.com")).is_err());
        assert!(Endpoints::resolve("x", Some("https://example.com")).is_ok());
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s} {s:?}").contains("hunter2"));
    }
}
