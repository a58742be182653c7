//! Whether a message went out when its echo was lost: the session's history says, read as the
//! transport SDK reads it (`core/HistoryHandlerImpl.kt`): a JWT for the session over the socket
//! (`getJwt` → `JwtResponse`, `core/JwtHandler.kt`), then
//! `GET {api}/api/v2/webmessaging/messages?pageNumber&pageSize` with it as the bearer token
//! (`util/Urls.kt`, `history`; `network/WebMessagingApi.kt`, `getMessages`), newest first.

use std::time::Duration;

use serde_json::{Value, json};

use super::frames::Frame;
use super::session::{Link, Session};
use super::socket::origin;
use crate::error::Stage;
use crate::secret::Secret;

/// The SDK's page size (`core/MessageStore.kt`, `DEFAULT_PAGE_SIZE`).
const PAGE_SIZE: u32 = 25;
/// Pages looked at: a message sent moments ago is on the first.
const PAGES: u32 = 4;
/// Looks before concluding the message is not there (the history may lag the send), and the
/// pause between them.
const LOOKS: u32 = 3;
const LOOK_PAUSE: Duration = Duration::from_secs(1);
/// Retries of a history page answered 500/502/503/504 (the SDK's `MAX_RETRIES_ON_SERVER_ERRORS`).
const SERVER_ERROR_RETRIES: usize = 3;
/// How long one history request may take.
const HISTORY_WAIT: Duration = Duration::from_secs(15);

impl Link {
    /// The message that carries attachment `id`, as the session's history shows it (`None`:
    /// not there after a few looks); `Err` says why the history could not be read.
    pub(super) async fn find_sent(
        &self,
        slot: &mut Option<Session>,
        id: &str,
    ) -> std::result::Result<Option<Frame>, String> {
        let jwt = self.jwt(slot).await?;
        for look in 1..=LOOKS {
            if let Some(found) = self.search_history(&jwt, id).await? {
                return Ok(Some(found));
            }
            if look < LOOKS {
                tokio::time::sleep(LOOK_PAUSE).await;
            }
        }
        Ok(None)
    }

    /// A JWT for the session, from `getJwt` on its socket.
    async fn jwt(&self, slot: &mut Option<Session>) -> std::result::Result<Secret, String> {
        let answer = self
            .ask(slot, json!({"action": "getJwt"}), Stage::Send)
            .await
            .map_err(|e| crate::error::Error::from(e).to_string())?;
        match answer.body_str("jwt") {
            Some(jwt) if answer.class == "JwtResponse" && !jwt.is_empty() => Ok(Secret::new(jwt)),
            _ => Err(format!("getJwt was answered with {}", answer.class)),
        }
    }

    /// The inbound message carrying attachment `id` on the history's first pages.
    async fn search_history(
        &self,
        jwt: &Secret,
        id: &str,
    ) -> std::result::Result<Option<Frame>, String> {
        for page in 1..=PAGES {
            let list = self.history_page(jwt, page).await?;
            let entities = list["entities"].as_array().cloned().unwrap_or_default();
            if let Some(m) = entities.into_iter().find(|m| carries(m, id)) {
                return Ok(Some(Frame::sent_message(m)));
            }
            if list["pageCount"]
                .as_u64()
                .is_none_or(|n| n <= u64::from(page))
            {
                break;
            }
        }
        Ok(None)
    }

    /// One page, its 5xx retried as the SDK's HTTP client does (`network/HttpClientProvider.kt`:
    /// `HttpRequestRetry`, 500/502/503/504, 3 retries with exponential delays), within the
    /// file's budget.
    async fn history_page(&self, jwt: &Secret, page: u32) -> std::result::Result<Value, String> {
        let policy = crate::retry::Policy {
            max_attempts: 1 + SERVER_ERROR_RETRIES,
            ..self.retry
        };
        let mut retrier = crate::retry::Retrier::new(&policy, Stage::Send);
        loop {
            match self.history_page_once(jwt, page).await {
                Err(Failed::Server(status, e)) => {
                    let reason = format!("the history answered HTTP {status}");
                    retrier
                        .pause(e, None, &reason)
                        .await
                        .map_err(|_| format!("HTTP {status}"))?;
                }
                Err(Failed::Other(why)) => return Err(why),
                Ok(v) => return Ok(v),
            }
        }
    }

    async fn history_page_once(
        &self,
        jwt: &Secret,
        page: u32,
    ) -> std::result::Result<Value, Failed> {
        let mut url = self
            .endpoints
            .api_segments(&["api", "v2", "webmessaging", "messages"])
            .map_err(Failed::Other)?;
        url.query_pairs_mut()
            .append_pair("pageNumber", &page.to_string())
            .append_pair("pageSize", &PAGE_SIZE.to_string());
        crate::http::check_transport(&url, "the history URL")
            .map_err(|e| Failed::Other(e.to_string()))?;
        // The SDK sends an Origin here too (`headerOrigin(configuration.domain)`: the bare region
        // domain); gcupload sends the socket's, the one the deployment's allowed domains admit.
        let origin = origin(&self.socket_url, self.config.origin.as_deref());
        // A Platform API call like any other: it waits its turn in the run's pace.
        self.limiter.acquire().await;
        let resp = self
            .http
            .get(url)
            .bearer_auth(jwt.expose())
            .header("origin", origin)
            .timeout(HISTORY_WAIT)
            .send()
            .await
            .map_err(|e| Failed::Other(e.without_url().to_string()))?;
        let retry_after = crate::http::retry_after(resp.headers());
        self.limiter.answered(resp.status().as_u16(), retry_after);
        if !resp.status().is_success() {
            let remote = crate::http::remote(resp, Stage::Send).await;
            let status = remote.status.unwrap_or(0);
            if matches!(status, 500 | 502 | 503 | 504) {
                let e = crate::error::Error::Remote {
                    stage: Stage::Send,
                    remote,
                };
                return Err(Failed::Server(status, e));
            }
            return Err(Failed::Other(format!("HTTP {status}")));
        }
        crate::http::json(resp, Stage::Send)
            .await
            .map_err(|e| Failed::Other(e.to_string()))
    }
}

/// Why a history page was not read: a server error (retried), or anything else (final).
enum Failed {
    Server(u16, crate::error::Error),
    Other(String),
}

/// Whether history entry `m` is an inbound message with attachment `id`.
fn carries(m: &Value, id: &str) -> bool {
    m["direction"] == "Inbound"
        && m["content"].as_array().is_some_and(|c| {
            c.iter()
                .any(|x| x["contentType"] == "Attachment" && x["attachment"]["id"] == id)
        })
}
