//! Stage 2: OAuth client credentials. One token per run, cached and refreshed before it expires.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::Credentials;
use crate::error::{Error, Remote, Result, Stage};
use crate::http;
use crate::secret::Secret;

/// Refresh this long before the platform says the token expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

pub struct TokenSource {
    http: reqwest::Client,
    url: url::Url,
    credentials: Credentials,
    retry: crate::retry::Policy,
    limiter: std::sync::Arc<crate::limiter::Limiter>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    /// Wrong credentials stay wrong for the whole run: don't ask again for every file.
    refused: Option<Remote>,
}

impl TokenSource {
    pub fn new(
        http: reqwest::Client,
        url: url::Url,
        credentials: Credentials,
        retry: crate::retry::Policy,
        limiter: std::sync::Arc<crate::limiter::Limiter>,
    ) -> Self {
        TokenSource {
            http,
            url,
            credentials,
            retry,
            limiter,
            state: Mutex::new(State::default()),
        }
    }

    /// A valid bearer token, from the cache when it is still fresh.
    pub async fn bearer(&self) -> Result<Secret> {
        let mut st = self.state.lock().await;
        if let Some(r) = &st.refused {
            return Err(Error::Auth {
                stage: Stage::Auth,
                remote: r.clone(),
            });
        }
        if let Some(c) = &st.cached
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        match self.request().await {
            Ok(c) => {
                let t = c.token.clone();
                st.cached = Some(c);
                Ok(t)
            }
            Err(Error::Auth { stage, remote }) => {
                st.refused = Some(remote.clone());
                Err(Error::Auth { stage, remote })
            }
            Err(e) => Err(e),
        }
    }

    /// Forget the cached token if it is `used` (the API refused it); the next call fetches anew.
    pub async fn invalidate(&self, used: &Secret) {
        let mut st = self.state.lock().await;
        if st.cached.as_ref().is_some_and(|c| &c.token == used) {
            st.cached = None;
        }
    }

    async fn request(&self) -> Result<Cached> {
        let mut retrier = crate::retry::Retrier::new(&self.retry, Stage::Auth);
        loop {
            self.limiter.acquire().await;
            tracing::debug!(url = %crate::redact::url(&self.url), "requesting an access token");
            let started = Instant::now();
            // The whole exchange, body included, ends with the file's budget.
            let sent = self
                .http
                .post(self.url.clone())
                .basic_auth(
                    &self.credentials.client_id,
                    Some(self.credentials.client_secret.expose()),
                )
                .form(&[("grant_type", "client_credentials")])
                .timeout(retrier.time_left())
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if crate::retry::retryable_transport(&e) => {
                    retrier
                        .pause(Error::network(Stage::Auth, &e), None, "connection error")
                        .await?;
                    continue;
                }
                Err(e) => return Err(Error::network(Stage::Auth, &e)),
            };
            let status = resp.status();
            let retry_after = http::retry_after(resp.headers());
            self.limiter.answered(status.as_u16(), retry_after);
            if status.is_success() {
                return cached(http::json(resp, Stage::Auth).await?, started);
            }
            let remote = http::remote(resp, Stage::Auth).await;
            if matches!(status.as_u16(), 400 | 401 | 403) {
                return Err(Error::Auth {
                    stage: Stage::Auth,
                    remote,
                });
            }
            let verdict = crate::retry::verdict(&remote, retry_after);
            let err = Error::Remote {
                stage: Stage::Auth,
                remote,
            };
            match verdict {
                Some((after, reason)) => retrier.pause(err, after, &reason).await?,
                None => return Err(err),
            }
        }
    }
}

/// The token of a success answer to a request sent at `started`, and when to refresh it.
fn cached(t: TokenResponse, started: Instant) -> Result<Cached> {
    if t.access_token.is_empty() {
        return Err(Error::protocol(
            Stage::Auth,
            "the token answer has no access_token",
        ));
    }
    let ttl = Duration::from_secs(t.expires_in.unwrap_or(86400));
    // Saturating: `expires_in` is the server's number. A token that outlives the run is still
    // replaced when the API refuses it (one refresh on a 401).
    let refresh_at = crate::retry::later(started, ttl.saturating_sub(REFRESH_MARGIN.min(ttl / 2)));
    tracing::info!(expires_in = ttl.as_secs(), "access token obtained");
    Ok(Cached {
        token: Secret::new(t.access_token),
        refresh_at,
    })
}
