//! Opening a connection from a `postgres://` URL: the driver's own parameters (`sslmode`,
//! `connect_timeout`, `application_name`, …), plus `sslrootcert` (the CA file to trust instead
//! of the bundled web-PKI roots). TLS is rustls; `sslmode=verify-ca` and `verify-full` mean
//! `require`, which with rustls always checks the certificate chain and the host name.

use std::time::Duration;

use postgres::{Client, Config};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::error::StateError;

/// Unless the URL says otherwise: a server that does not answer fails the run quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `url` (blocking); the error says why, without the password.
pub(super) fn open(url: &str) -> Result<Client, String> {
    let (config, tls) = config(url)?;
    Config::from(config).connect(tls).map_err(|e| why(&e))
}

/// Connects to `url` from the run's async runtime, which then drives the connection.
pub(super) async fn open_async(url: &str) -> Result<tokio_postgres::Client, String> {
    let (config, tls) = config(url)?;
    let (client, connection) = config.connect(tls).await.map_err(|e| why(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("the state database connection ended: {}", why(&e));
        }
    });
    Ok(client)
}

/// The driver's settings for `url`, with gcupload's defaults, and the TLS client.
fn config(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
    let (url, rootcert) = split(url)?;
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| format!("the URL is not usable: {}", why(&e)))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("gcupload");
    }
    Ok((config, MakeRustlsConnect::new(tls(rootcert.as_deref())?)))
}

/// The URL without the parameters gcupload handles itself, and the CA file to trust.
fn split(raw: &str) -> Result<(String, Option<String>), String> {
    let mut u = url::Url::parse(raw).map_err(|e| format!("the URL is not usable: {e}"))?;
    let mut rootcert = None;
    let mut kept = Vec::new();
    for (k, v) in u.query_pairs() {
        match (&*k, &*v) {
            ("sslrootcert", _) => rootcert = Some(v.into_owned()),
            ("sslmode", "verify-ca" | "verify-full") => {
                kept.push((k.into_owned(), "require".into()))
            }
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((u.to_string(), rootcert))
}

/// The TLS client: trusts `rootcert` (PEM) when given, else the bundled web-PKI roots.
fn tls(rootcert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match rootcert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert {path} cannot be read: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("sslrootcert {path} holds no usable certificate"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The state error for the server at `shown` (its URL without the password).
pub(super) fn server(shown: &str, why: String) -> StateError {
    StateError::Server {
        url: shown.to_string(),
        why,
    }
}

/// What went wrong, with its causes (the driver's own text says only "db error").
pub(super) fn why(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcupload_handles_sslrootcert_and_the_verify_modes() {
        let (u, ca) =
            split("postgres://u:p@h:5/d?sslmode=verify-full&sslrootcert=/ca.pem").unwrap();
        assert_eq!(u, "postgres://u:p@h:5/d?sslmode=require");
        assert_eq!(ca.as_deref(), Some("/ca.pem"));
        let (u, ca) = split("postgres://u@h/d").unwrap();
        assert_eq!((u.as_str(), ca), ("postgres://u@h/d", None));
    }
}
