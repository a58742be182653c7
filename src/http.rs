//! What every HTTP exchange shares: the client, capped body reads, and turning a refusal into
//! a [`Remote`] description (Genesys JSON, OAuth JSON or S3 XML).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{Error, Remote, Result, Stage};

/// No answer we read is legitimately larger; a hostile or broken server cannot make us buffer more.
pub const BODY_CAP: usize = 1 << 20;

pub const USER_AGENT: &str = concat!("gcupload/", env!("CARGO_PKG_VERSION"));

/// `http` is only acceptable to a loopback host; everything else must be `https`.
pub fn check_transport(url: &url::Url, what: &str) -> Result<()> {
    match url.scheme() {
        "https" | "wss" => Ok(()),
        "http" | "ws" if is_loopback(url) => Ok(()),
        s => Err(Error::config(format!(
            "{what} must use https (plain {s} is only accepted for a loopback host): {}",
            crate::redact::url(url)
        ))),
    }
}

/// Whether `url` has user info (`user@`, `user:password@`): reqwest sends it as Basic auth,
/// in an Authorization header of its own, to whatever host the URL names.
pub fn has_user_info(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Same scheme, host and port: where a bearer token may go.
pub fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// One client per run (one connection pool). Redirects are never followed: a redirect could carry
/// a bearer token or a signed request to a host that must not see it.
///
/// The system's CA certificates are the trust roots. A machine without any (a minimal container,
/// `SSL_CERT_FILE`/`SSL_CERT_DIR` pointing nowhere) gets the bundled web-PKI roots instead, with a
/// warning, never a panic: a loopback run needs no TLS at all.
pub fn client() -> Result<reqwest::Client> {
    let builder = || {
        reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
    };
    match builder().build() {
        Ok(client) => Ok(client),
        Err(e) => {
            let why = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
            tracing::warn!(
                "no usable system CA certificates ({why}); trusting the bundled web-PKI roots instead"
            );
            builder()
                .tls_backend_preconfigured(bundled_roots())
                .build()
                .map_err(|e| Error::config(format!("cannot set up the HTTP client: {e}")))
        }
    }
}

/// A rustls configuration trusting the Mozilla roots compiled into the binary (`webpki-roots`).
fn bundled_roots() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

pub fn correlation_id(h: &HeaderMap) -> Option<String> {
    h.get("inin-correlation-id")
        .or_else(|| h.get("x-amz-request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Retry-After` in seconds or as an HTTP date. Seconds past `u64` saturate rather than fall
/// back to the default wait: the server asked for longer than any budget, and is told no.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Reads at most [`BODY_CAP`] bytes of a body.
pub async fn read_capped(mut resp: Response, stage: Stage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Error::network(stage, &e))? {
        if out.len() + chunk.len() > BODY_CAP {
            return Err(Error::protocol(
                stage,
                format!("the answer is larger than {BODY_CAP} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Describes a non-success answer from whatever kind of server sent it.
pub async fn remote(resp: Response, stage: Stage) -> Remote {
    let status = resp.status();
    let correlation_id = correlation_id(resp.headers());
    let body = read_capped(resp, stage).await.unwrap_or_default();
    describe(status, correlation_id, &body)
}

pub fn describe(status: StatusCode, correlation_id: Option<String>, body: &[u8]) -> Remote {
    let mut r = Remote {
        status: Some(status.as_u16()),
        code: None,
        message: String::new(),
        correlation_id,
    };
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        // Genesys error body uses `code`/`message`; OAuth uses `error`/`error_description`.
        r.code = s("error").or_else(|| s("code"));
        r.message = s("error_description")
            .or_else(|| s("message"))
            .or_else(|| s("description"))
            .unwrap_or_default();
        if r.correlation_id.is_none() {
            r.correlation_id = s("contextId");
        }
    } else if let Ok(text) = std::str::from_utf8(body) {
        if let Some(code) = xml_tag(text, "Code") {
            r.code = Some(code.to_string());
            r.message = xml_tag(text, "Message").unwrap_or_default().to_string();
            if r.correlation_id.is_none() {
                r.correlation_id = xml_tag(text, "RequestId").map(str::to_string);
            }
        } else {
            r.message = text
                .chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_string();
        }
    }
    if r.message.is_empty() {
        r.message = status.canonical_reason().unwrap_or("").to_string();
    }
    r
}

/// The text of the first `<tag>` in an S3 error document (flat, no attributes).
fn xml_tag<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{tag}>"))?;
    Some(&text[start..start + len])
}

/// Parses a success answer as JSON.
pub async fn json<T: DeserializeOwned>(resp: Response, stage: Stage) -> Result<T> {
    let body = read_capped(resp, stage).await?;
    parse_json(stage, &body)
}

/// Any server answer into its typed form, or a typed error: never a panic.
pub fn parse_json<T: DeserializeOwned>(stage: Stage, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Error::protocol(stage, format!("the answer is not the expected JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_saturates() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            retry_after(&m)
        };
        assert_eq!(h("7"), Some(Duration::from_secs(7)));
        let max = Some(Duration::from_secs(u64::MAX));
        assert_eq!(h("18446744073709551615"), max);
        assert_eq!(h("99999999999999999999999999"), max);
        let far = h("Fri, 31 Dec 9999 23:59:59 GMT").unwrap();
        assert!(far > Duration::from_secs(200 * 365 * 86400), "{far:?}");
        assert_eq!(h("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(h("-1"), None);
    }

    #[test]
    fn describes_s3_and_genesys_errors() {
        let s3 = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        let r = describe(StatusCode::FORBIDDEN, None, s3);
        assert_eq!(r.code.as_deref(), Some("AccessDenied"));
        assert_eq!(r.message, "Request has expired");
        let g = br#"{"message":"nope","code":"not.found","status":404,"contextId":"c1"}"#;
        let r = describe(StatusCode::NOT_FOUND, None, g);
        assert_eq!(r.code.as_deref(), Some("not.found"));
        assert_eq!(r.correlation_id.as_deref(), Some("c1"));
        let o = br#"{"error":"invalid_client","description":"x","error_description":"bad creds"}"#;
        let r = describe(StatusCode::UNAUTHORIZED, Some("id".into()), o);
        assert_eq!(r.code.as_deref(), Some("invalid_client"));
        assert_eq!(r.message, "bad creds");
    }
}
