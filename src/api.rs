//! Authenticated Platform API calls, shared by every REST route: bearer token, one refresh on a
//! 401, and the retries the official SDKs make (429 with Retry-After, 502/503/504, connection errors).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::auth::TokenSource;
use crate::config::Endpoints;
use crate::error::{Error, Result, Stage};
use crate::http;

const MAX_ATTEMPTS: u32 = 4;
/// The SDKs give up when the platform asks to wait longer than this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(180);

pub struct Api {
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
    pub tokens: TokenSource,
}

impl Api {
    /// Sends `body` (JSON, if any) to `url` and parses the JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        stage: Stage,
        method: Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        if !same_origin(&url, &self.endpoints.api) {
            // The bearer token only ever goes to the API origin.
            return Err(Error::protocol(
                stage,
                format!(
                    "refusing to send the token to {} (not the API host)",
                    crate::redact::url(&url)
                ),
            ));
        }
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.tokens.bearer().await?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose());
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt < MAX_ATTEMPTS && (e.is_connect() || e.is_timeout()) => {
                    let wait = backoff(attempt);
                    tracing::info!(%stage, attempt, ?wait, "retrying after a connection error");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(Error::network(stage, &e)),
            };
            let status = resp.status();
            if status.is_success() {
                return http::json(resp, stage).await;
            }
            let retry_after = http::retry_after(resp.headers());
            let remote = http::remote(resp, stage).await;
            if status == StatusCode::UNAUTHORIZED {
                if refreshed {
                    return Err(Error::Auth { stage, remote });
                }
                tracing::info!(%stage, correlation_id = ?remote.correlation_id, "token refused, fetching a new one");
                self.tokens.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
            let wait = match (status.as_u16(), retry_after) {
                (429, Some(d)) => d,
                (429, None) => Duration::from_secs(3),
                _ => backoff(attempt),
            };
            if retryable && attempt < MAX_ATTEMPTS && wait <= MAX_RETRY_AFTER {
                tracing::info!(%stage, status = status.as_u16(), attempt, ?wait, correlation_id = ?remote.correlation_id, "retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(Error::Remote { stage, remote });
        }
    }
}

/// Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... each ±50%.
pub fn backoff(attempt: u32) -> Duration {
    let base = 500u64 << attempt.saturating_sub(1).min(6);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % base;
    Duration::from_millis(base / 2 + jitter)
}

pub fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}
