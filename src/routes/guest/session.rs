//! The guest session on its socket: opened and configured on first use, and again, with the same
//! token, whenever the socket has dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard, Notify};
use url::Url;

use super::config::Config;
use super::deployment::{self, FileUpload};
use super::frames::{self, Frame};
use super::rules::SessionRules;
use super::socket::{Connection, SocketError};
use crate::error::{Error, Result, Stage};

/// An open, configured session and what its deployment allows.
pub(super) struct Session {
    pub(super) conn: Connection,
    pub(super) rules: SessionRules,
    /// Which of the run's connections this is (0 for the first), so a waiter sees a reconnect.
    pub(super) generation: u64,
}

/// The connection of a slot that `Guest::session` or `Guest::reconnect` has filled.
pub(super) fn live(slot: &mut Option<Session>) -> &mut Connection {
    &mut slot.as_mut().expect("connected").conn
}

/// The guest's link to the platform: the session on its socket, opened on first use.
pub(super) struct Link {
    pub(super) socket_url: Url,
    pub(super) config: Config,
    pub(super) http: reqwest::Client,
    pub(super) endpoints: crate::config::Endpoints,
    pub(super) retry: crate::retry::Policy,
    pub(super) limiter: Arc<crate::limiter::Limiter>,
    /// Held for one frame exchange at a time, never across a wait for an upload event.
    pub(super) slot: Mutex<Option<Session>>,
    /// Rung by the socket's reader on each frame: upload events are waited for on it.
    pub(super) arrivals: Arc<Notify>,
    /// Connections opened so far.
    connections: AtomicU64,
    /// Whether this run's first connection created the session (reconnects find it existing).
    created: OnceLock<bool>,
    /// The deployment's `fileUpload` (config.json), read once; `None` if it could not be.
    upload: tokio::sync::OnceCell<Option<FileUpload>>,
    /// The session's onMessage pace.
    pacer: super::pacing::Pacer,
}

impl Link {
    pub(super) fn new(ctx: &crate::routes::route::Context, config: Config) -> Self {
        Link {
            socket_url: ctx.endpoints.socket.clone(),
            config,
            http: ctx.http.clone(),
            endpoints: ctx.endpoints.clone(),
            retry: ctx.retry,
            limiter: ctx.limiter.clone(),
            slot: Mutex::new(None),
            arrivals: Arc::new(Notify::new()),
            connections: AtomicU64::new(0),
            created: OnceLock::new(),
            upload: tokio::sync::OnceCell::new(),
            pacer: super::pacing::Pacer::default(),
        }
    }

    /// The deployment's `fileUpload` from its config.json, fetched on first use.
    async fn deployment_upload(&self) -> Option<&FileUpload> {
        let fetch = || async {
            let url = self
                .endpoints
                .deployment_config(&self.config.deployment_id)
                .ok()?;
            match deployment::file_upload(&self.http, &url).await {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::warn!(
                        "the deployment configuration (config.json) could not be read ({e}): the session's allowedMedia applies, or else the platform decides on each file"
                    );
                    None
                }
            }
        };
        self.upload.get_or_init(fetch).await.as_ref()
    }

    /// Whether the session was new when this run first configured it.
    pub(super) fn created(&self) -> bool {
        self.created.get().copied().unwrap_or(false)
    }

    /// What the open session's deployment accepts.
    pub(super) async fn rules(&self) -> Option<String> {
        Some(self.slot.lock().await.as_ref()?.rules.describe())
    }

    /// Ends the session's socket at the end of the run.
    pub(super) async fn close(&self) {
        if let Some(session) = self.slot.lock().await.take() {
            session.conn.close().await;
        }
    }

    /// The open, configured session; connects (again, if the socket dropped) and configures it.
    pub(super) async fn session(&self) -> Result<MutexGuard<'_, Option<Session>>> {
        let mut guard = self.slot.lock().await;
        if guard.as_ref().is_none_or(|s| s.conn.is_closed()) {
            self.reconnect(&mut guard).await?;
        }
        Ok(guard)
    }

    /// The session at a moment its pace allows one more onMessage, which the caller writes
    /// next: the wait for the pace is made without the lock, so the other files' exchanges go on.
    pub(super) async fn session_for_message(&self) -> Result<MutexGuard<'_, Option<Session>>> {
        loop {
            let guard = self.session().await?;
            match self.pacer.take() {
                Ok(()) => return Ok(guard),
                Err(wait) => {
                    drop(guard);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The onMessage just written has had its answer (or its exchange ended): the pace counts
    /// the next one from now as well.
    pub(super) fn message_answered(&self) {
        self.pacer.answered();
    }

    /// Opens the socket and configures the session, retrying connection failures.
    pub(super) async fn reconnect(&self, slot: &mut Option<Session>) -> Result<()> {
        if slot.take().is_some() {
            tracing::info!("the guest socket dropped; reconnecting with the same session token");
        }
        let mut retrier = crate::retry::Retrier::new(&self.retry, Stage::RequestUrl);
        loop {
            match self.connect().await {
                Ok(s) => {
                    *slot = Some(s);
                    return Ok(());
                }
                Err(e @ Error::Network { .. }) => {
                    retrier
                        .pause(e, None, "guest socket connection failed")
                        .await?
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One request on the open session.
    pub(super) async fn ask(
        &self,
        slot: &mut Option<Session>,
        body: Value,
        stage: Stage,
    ) -> std::result::Result<Frame, SocketError> {
        live(slot)
            .request(self.config.session_token, body, stage)
            .await
    }

    /// [`Link::ask`] for a request whose answer the platform does not document (and may not
    /// send): the wait for it ends after `limit`.
    pub(super) async fn ask_within(
        &self,
        slot: &mut Option<Session>,
        body: Value,
        stage: Stage,
        limit: std::time::Duration,
    ) -> std::result::Result<Frame, SocketError> {
        live(slot)
            .request_within(self.config.session_token, body, stage, limit)
            .await
    }

    /// After a dropped socket: reconnects and sends `body` once more; this try's failure is final.
    pub(super) async fn resend(
        &self,
        slot: &mut Option<Session>,
        body: Value,
        stage: Stage,
    ) -> Result<Frame> {
        self.reconnect(slot).await?;
        Ok(self.ask(slot, body, stage).await?)
    }

    fn url(&self) -> Url {
        let mut u = self.socket_url.clone();
        u.query_pairs_mut()
            .append_pair("deploymentId", &self.config.deployment_id)
            .append_pair(
                "application",
                concat!("gcupload-", env!("CARGO_PKG_VERSION")),
            );
        u
    }

    async fn connect(&self) -> Result<Session> {
        let origin = self.config.origin.as_deref();
        let mut conn = Connection::open(&self.url(), origin, self.arrivals.clone()).await?;
        let answer = self.configure(&mut conn).await?;
        let rules = SessionRules::resolve(&answer.body, self.deployment_upload().await);
        // Absent means false, as in the transport SDK's model (`shyrka/receive/SessionResponse.kt`).
        let new_session = answer.body_flag("newSession").unwrap_or(false);
        tracing::info!(new_session, "guest session configured");
        let _ = self.created.set(new_session);
        let generation = self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(Session {
            conn,
            rules,
            generation,
        })
    }

    /// configureSession; its `SessionResponse`, on a new conversation if the old one ended.
    async fn configure(&self, conn: &mut Connection) -> Result<Frame> {
        let request = frames::configure_session(&self.config.deployment_id, false);
        let answer = conn
            .request(self.config.session_token, request, Stage::RequestUrl)
            .await?;
        answer.require_class("SessionResponse", "configureSession", Stage::RequestUrl)?;
        if answer.body_flag("readOnly") != Some(true) {
            return Ok(answer);
        }
        self.start_new_conversation(conn).await
    }

    /// As the Messenger does for "start a new chat": closeSession, its `connected: false`
    /// answer, then configureSession anew on the same token (transport SDK,
    /// `MessagingClientImpl.kt`: `startNewChat`, `handleSessionResponse`).
    async fn start_new_conversation(&self, conn: &mut Connection) -> Result<Frame> {
        tracing::info!(
            "the guest session is read-only (its conversation ended); starting a new conversation"
        );
        let token = self.config.session_token;
        // The disconnect answer may come without our tracingId; an error comes with it.
        let closed = |f: &Frame, tid: &str| {
            frames::is_disconnected(f)
                || (f.tracing_id.as_deref() == Some(tid) && f.error_code().is_some())
        };
        let wait = super::socket::ANSWER_WAIT;
        conn.request_for(
            token,
            frames::close_session(),
            Stage::RequestUrl,
            wait,
            closed,
        )
        .await?;
        let request = frames::configure_session(&self.config.deployment_id, true);
        let answer = conn.request(token, request, Stage::RequestUrl).await?;
        if answer.body_flag("readOnly") == Some(true) {
            return Err(Error::protocol(
                Stage::RequestUrl,
                "the guest session stays read-only after starting a new conversation; run without --session-token",
            ));
        }
        Ok(answer)
    }
}
