//! Authenticated Platform API calls, shared by every REST route: bearer token, one refresh on a
//! 401, and the shared retry policy (`retry`).

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::auth::TokenSource;
use crate::config::Endpoints;
use crate::error::{Error, Result, Stage};
use crate::http::{self, same_origin};
use crate::retry;

pub struct Api {
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
    pub tokens: TokenSource,
    pub retry: retry::Policy,
    pub limiter: std::sync::Arc<crate::limiter::Limiter>,
}

impl Api {
    /// Sends `body` (JSON, if any) to `url` and parses the JSON answer.
    ///
    /// Sending a message is not idempotent: once its request may have reached the platform, a
    /// lost answer is [`Error::MaybeSent`] rather than retried (a retry could post it twice).
    pub async fn call<T: DeserializeOwned>(
        &self,
        stage: Stage,
        method: Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let replay_safe = !(method == Method::POST && stage == Stage::Send);
        self.exchange(stage, method, url, body, replay_safe).await
    }

    /// [`Api::call`] for a request that changes nothing (a POST that only reads, too), so it is
    /// retried like a GET.
    pub async fn read<T: DeserializeOwned>(
        &self,
        stage: Stage,
        method: Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        self.exchange(stage, method, url, body, true).await
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        stage: Stage,
        method: Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
        replay_safe: bool,
    ) -> Result<T> {
        self.check_origin(stage, &url)?;
        let mut refreshed = false;
        let mut retrier = retry::Retrier::new(&self.retry, stage);
        loop {
            let token = self.tokens.bearer().await?;
            self.limiter.acquire().await;
            // The whole exchange, body included, ends with the file's budget.
            let req = self.request(&method, &url, body, &token, retrier.time_left());
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if retry::retryable_transport(&e) && (replay_safe || e.is_connect()) => {
                    retrier
                        .pause(Error::network(stage, &e), None, "connection error")
                        .await?;
                    continue;
                }
                Err(e) if !replay_safe => return Err(Error::ambiguous_send(&e)),
                Err(e) => return Err(Error::network(stage, &e)),
            };
            let status = resp.status();
            if status.is_success() {
                self.limiter.admitted();
                return match http::json(resp, stage).await {
                    Err(e @ Error::Network { .. }) if !replay_safe => Err(Error::MaybeSent {
                        why: format!("the platform accepted it, then its answer was lost: {e}"),
                    }),
                    other => other,
                };
            }
            let retry_after = http::retry_after(resp.headers());
            self.limiter.answered(status.as_u16(), retry_after);
            let remote = http::remote(resp, stage).await;
            if status == StatusCode::UNAUTHORIZED {
                if refreshed {
                    return Err(Error::Auth { stage, remote });
                }
                let correlation_id = remote.correlation_id.as_deref().unwrap_or("-");
                tracing::info!(%stage, correlation_id, "token refused, fetching a new one");
                self.tokens.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            if !replay_safe && matches!(status.as_u16(), 502 | 504) {
                // A gateway's error says nothing of whether the platform behind it acted.
                return Err(Error::MaybeSent {
                    why: format!("a gateway answered instead of the platform: {remote}"),
                });
            }
            // Only a 429/503 is safe to replay for a send: the platform refused it.
            let verdict = retry::verdict(&remote, retry_after)
                .filter(|_| replay_safe || matches!(status.as_u16(), 429 | 503));
            let err = Error::Remote { stage, remote };
            match verdict {
                Some((after, reason)) => retrier.pause(err, after, &reason).await?,
                None => return Err(err),
            }
        }
    }

    fn request(
        &self,
        method: &Method,
        url: &url::Url,
        body: Option<&serde_json::Value>,
        token: &crate::secret::Secret,
        within: std::time::Duration,
    ) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose())
            .timeout(within);
        match body {
            Some(b) => req.json(b),
            None => req,
        }
    }

    /// The bearer token only ever goes to the API origin.
    fn check_origin(&self, stage: Stage, url: &url::Url) -> Result<()> {
        if same_origin(url, &self.endpoints.api) {
            return Ok(());
        }
        Err(Error::protocol(
            stage,
            format!(
                "refusing to send the token to {} (not the API host)",
                crate::redact::url(url)
            ),
        ))
    }
}
