//! Where the platform is and who we are to it: plain data the stages share. The command line
//! is resolved into these types at the edge (`app::settings`); nothing here knows about flags.

use url::Url;

use crate::error::{Error, Result};
use crate::http::{check_transport, has_user_info};
use crate::secret::Secret;

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
                "unknown region `{region}` (--region, GENESYS_REGION); use one of {} (or its domain)",
                names.join(", ")
            ))
        })
}

/// Where the platform's surfaces live.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub login: Url,
    pub api: Url,
    /// The Web Messaging guest socket (`/v1`, without its query).
    pub socket: Url,
    /// The public CDN origin of deployment configurations (`config.json`, no auth).
    pub cdn: Url,
}

impl Endpoints {
    pub fn resolve(region: &str, base_url: Option<&str>) -> Result<Self> {
        let Some(b) = base_url else {
            let d = region_domain(region)?;
            let parse = |h: String| Url::parse(&h).expect("region hosts are valid URLs");
            return Ok(Endpoints {
                login: parse(format!("https://login.{d}/")),
                api: parse(format!("https://api.{d}/")),
                socket: parse(format!("wss://webmessaging.{d}/v1")),
                cdn: parse(format!("https://api-cdn.{d}/")),
            });
        };
        let url = base(b)?;
        let mut socket = url.join("v1").expect("static path");
        let ws = if url.scheme() == "https" { "wss" } else { "ws" };
        socket
            .set_scheme(ws)
            .expect("http(s) URLs can become ws(s)");
        Ok(Endpoints {
            login: url.clone(),
            cdn: url.clone(),
            api: url,
            socket,
        })
    }

    pub fn token_url(&self) -> Url {
        self.login.join("oauth/token").expect("static path")
    }

    /// The public configuration of a Messenger deployment,
    /// `{cdn}/webdeployments/v1/deployments/{deploymentId}/config.json` (transport SDK
    /// `util/Urls.kt`, `deploymentConfigUrl`).
    pub fn deployment_config(&self, deployment_id: &str) -> std::result::Result<Url, String> {
        let mut url = self.cdn.clone();
        let path = format!(
            "{}/webdeployments/v1/deployments/{}/config.json",
            self.cdn.path().trim_end_matches('/'),
            path_segment(deployment_id)?
        );
        url.set_path(&path);
        url.set_query(None);
        url.set_fragment(None);
        Ok(url)
    }

    /// An API URL from its path segments, each one exactly one segment whatever it holds: ids
    /// (from the server, or a flag) can neither climb the path (`../../oauth/token`) nor add a
    /// query or fragment (`x?evil=1#frag`). `Err` names a segment that cannot be one.
    pub fn api_segments(&self, segments: &[&str]) -> std::result::Result<Url, String> {
        let mut path = self.api.path().trim_end_matches('/').to_string();
        for s in segments {
            path.push('/');
            path.push_str(&path_segment(s)?);
        }
        let mut url = self.api.clone();
        // Only unreserved characters and our own escapes: parsed back as exactly these segments.
        url.set_path(&path);
        url.set_query(None);
        url.set_fragment(None);
        Ok(url)
    }
}

/// `--base-url`, checked: a URL, https off loopback, with a host and without user info.
fn base(b: &str) -> Result<Url> {
    // The URL is quoted without its credentials: errors reach records and terminals.
    let shown = || crate::redact::url_text(b);
    let url = Url::parse(b).map_err(|e| {
        Error::config(format!(
            "--base-url (GENESYS_BASE_URL) `{}` is not a URL: {e}",
            shown()
        ))
    })?;
    check_transport(&url, "--base-url (GENESYS_BASE_URL)")?;
    if url.host_str().is_none() {
        return Err(Error::config(format!(
            "--base-url (GENESYS_BASE_URL) `{}` has no host",
            shown()
        )));
    }
    if has_user_info(&url) {
        // It would go out as a second Authorization header on the token request, and as
        // Basic auth beside the bearer token on every API call.
        return Err(Error::config(format!(
            "--base-url / GENESYS_BASE_URL `{}` has user info (`user:password@`), which would be sent to the platform as Basic auth: give the URL without it, and the OAuth client in GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET (--client-id / --client-secret)",
            shown()
        )));
    }
    Ok(url)
}

/// `s` percent-encoded as one path segment: everything but RFC 3986's unreserved characters.
/// `Url::path_segments_mut` is not enough: it drops tabs and newlines, keeps `;` and `=` (path
/// parameters to some servers) and silently skips `.` and `..`, which are refused here instead,
/// with the empty segment.
fn path_segment(s: &str) -> std::result::Result<String, String> {
    if matches!(s, "" | "." | "..") {
        return Err(format!("`{s}` cannot be one path segment"));
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
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
    fn ids_are_one_segment() {
        let e = Endpoints::resolve("x", Some("http://127.0.0.1:8080/gw/?q=1")).unwrap();
        let url = |id: &str| e.api_segments(&["api", "v2", "files", id, "done"]);
        let path = |id: &str| url(id).unwrap().path().to_string();
        assert_eq!(path("f-1_a.b~"), "/gw/api/v2/files/f-1_a.b~/done");
        assert_eq!(
            path("../../oauth/token"),
            "/gw/api/v2/files/..%2F..%2Foauth%2Ftoken/done"
        );
        assert_eq!(
            path("x?evil=1#frag"),
            "/gw/api/v2/files/x%3Fevil%3D1%23frag/done"
        );
        assert_eq!(path("%2e%2e"), "/gw/api/v2/files/%252e%252e/done");
        assert_eq!(path("a\tb\\c d"), "/gw/api/v2/files/a%09b%5Cc%20d/done");
        assert_eq!(path("é"), "/gw/api/v2/files/%C3%A9/done");
        let u = url("x?y#z").unwrap();
        assert_eq!((u.query(), u.fragment()), (None, None));
        for bad in ["", ".", ".."] {
            assert!(url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base_url_needs_https_off_loopback() {
        assert!(Endpoints::resolve("x", Some("http://127.0.0.1:8080")).is_ok());
        assert!(Endpoints::resolve("x", Some("http://localhost:8080")).is_ok());
        assert!(Endpoints::resolve("x", Some("http://example.com")).is_err());
        assert!(Endpoints::resolve("x", Some("https://example.com")).is_ok());
    }

    #[test]
    fn base_url_with_user_info_is_refused_without_showing_it() {
        for b in [
            "https://user:pa55@example.com/",
            "https://user@example.com/",
            "https://:pa55@example.com/",
            "http://user:pa55@127.0.0.1:8080/",
        ] {
            let e = Endpoints::resolve("x", Some(b)).unwrap_err().to_string();
            assert!(e.contains("GENESYS_BASE_URL"), "{e}");
            assert!(
                e.contains("GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET"),
                "{e}"
            );
            assert!(!e.contains("pa55") && !e.contains("user@"), "{e}");
        }
        assert!(Endpoints::resolve("x", Some("https://@example.com/")).is_ok());
    }
}
