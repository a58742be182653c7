//! Route `guest`: the Web Messaging Guest API, as Genesys Messenger uses it. The customer's
//! anonymous session (a token we make up, reusable to resume) uploads over a WebSocket:
//! configureSession → onAttachment → PUT → UploadSuccessEvent → onMessage → echoed message.
//! Field names follow the official transport SDK (genesys-messenger-transport-mobile-sdk).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use url::Url;

use super::{Confirmation, Route, UploadTarget};
use crate::error::{Error, Remote, Result, Rule, Stage};
use crate::redact;
use crate::validate::ValidatedFile;

/// The SDKs ping every 15 s to keep the socket (and its load balancers) alive.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long to wait for the answer to one request.
const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// Longest `retryAfter` we honour inside one file's budget.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

pub struct Guest {
    pub socket_url: Url,
    pub deployment_id: String,
    pub origin: Option<String>,
    pub session_token: uuid::Uuid,
    pub message: Option<String>,
    pub confirm_timeout: Duration,
    retry: crate::retry::Policy,
    conn: Mutex<Option<Connection>>,
    /// Whether this run's first connection created the session (reconnects find it existing).
    created: std::sync::OnceLock<bool>,
}

/// One server frame: `{"type", "class", "code", "body", "tracingId"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Frame {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub body: Value,
    #[serde(rename = "tracingId", default)]
    pub tracing_id: Option<String>,
}

impl Frame {
    pub fn parse(text: &str) -> std::result::Result<Frame, serde_json::Error> {
        serde_json::from_str(text)
    }

    fn body_str(&self, k: &str) -> Option<&str> {
        self.body.get(k).and_then(Value::as_str)
    }

    /// The platform's error code (4xxx) if this frame reports an error.
    fn error_code(&self) -> Option<i64> {
        match self.class.as_str() {
            "GenerateUrlError" | "UploadFailureEvent" | "TooManyRequestsErrorMessage" => Some(
                self.body
                    .get("errorCode")
                    .and_then(Value::as_i64)
                    .unwrap_or(self.code),
            ),
            "SessionExpiredEvent" => Some(4006),
            "string" if self.code >= 400 => Some(self.code),
            _ if self.code >= 400 => Some(self.code),
            _ => None,
        }
    }

    fn error_message(&self) -> String {
        self.body_str("errorMessage")
            .map(str::to_string)
            .or_else(|| self.body.as_str().map(str::to_string))
            .unwrap_or_else(|| self.class.clone())
    }

    fn to_error(&self, stage: Stage) -> Error {
        let code = self.error_code().unwrap_or(self.code);
        let remote = Remote {
            // The envelope code is HTTP-like (400, 429); the 4xxx codes are the platform's own.
            status: (100..600).contains(&self.code).then_some(self.code as u16),
            code: Some(code.to_string()),
            message: format!("{} ({})", self.error_message(), self.class),
            correlation_id: self.tracing_id.clone(),
        };
        Error::Remote { stage, remote }
    }
}

/// What the deployment allows, from `SessionResponse`.
#[derive(Debug, Clone, Default)]
struct SessionRules {
    file_types: Vec<String>,
    max_file_size_kb: Option<u64>,
    blocked_extensions: Vec<String>,
}

struct Connection {
    /// Frames to write, each with a reply saying whether it reached the socket.
    out: mpsc::UnboundedSender<(Message, Option<tokio::sync::oneshot::Sender<bool>>)>,
    inbox: mpsc::UnboundedReceiver<Frame>,
    /// Frames that arrived while we waited for something else (events for later).
    backlog: VecDeque<Frame>,
    rules: SessionRules,
    writer: tokio::task::JoinHandle<()>,
}

impl Guest {
    pub fn new(
        socket_url: Url,
        deployment_id: String,
        origin: Option<String>,
        session_token: uuid::Uuid,
        message: Option<String>,
        confirm_timeout: Duration,
        retry: crate::retry::Policy,
    ) -> Self {
        Guest {
            socket_url,
            deployment_id,
            origin,
            session_token,
            message,
            confirm_timeout,
            retry,
            conn: Mutex::new(None),
            created: std::sync::OnceLock::new(),
        }
    }

    /// What the deployment accepts, as the open session reported it (for `doctor`).
    pub async fn rules(&self) -> Option<String> {
        let guard = self.conn.lock().await;
        let r = &guard.as_ref()?.rules;
        let limit = r
            .max_file_size_kb
            .map(|kb| format!("{kb} KB"))
            .unwrap_or_else(|| "none".into());
        Some(format!(
            "allowed types: {}; size limit: {limit}; blocked extensions: {}",
            if r.file_types.is_empty() {
                "none (uploads disabled)".to_string()
            } else {
                r.file_types.join(", ")
            },
            if r.blocked_extensions.is_empty() {
                "none".to_string()
            } else {
                r.blocked_extensions.join(", ")
            },
        ))
    }

    fn url(&self) -> Url {
        let mut u = self.socket_url.clone();
        u.query_pairs_mut()
            .append_pair("deploymentId", &self.deployment_id)
            .append_pair(
                "application",
                concat!("gcupload-", env!("CARGO_PKG_VERSION")),
            );
        u
    }

    /// The open, configured session; connects (again, with the same token, if the socket
    /// dropped) and configures it.
    async fn session(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Connection>>> {
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_none_or(Connection::is_closed) {
            self.reconnect(&mut guard).await?;
        }
        Ok(guard)
    }

    /// Opens the socket and configures the session, retrying connection failures.
    async fn reconnect(&self, slot: &mut Option<Connection>) -> Result<()> {
        if slot.take().is_some() {
            tracing::info!("the guest socket dropped; reconnecting with the same session token");
        }
        let mut retrier = crate::retry::Retrier::new(&self.retry, Stage::RequestUrl);
        loop {
            match self.connect().await {
                Ok(c) => {
                    *slot = Some(c);
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

    async fn connect(&self) -> Result<Connection> {
        let url = self.url();
        let shown = redact::url(&url);
        let net = |message: String| Error::Network {
            stage: Stage::RequestUrl,
            host: url.host_str().unwrap_or("").to_string(),
            message,
        };
        crate::config::check_transport(&url, "the guest socket")?;
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::config(format!("guest socket URL {shown}: {e}")))?;
        // The SDKs always send an Origin: the socket's own host unless told otherwise.
        let origin = self.origin.clone().unwrap_or_else(|| {
            let scheme = if url.scheme() == "wss" {
                "https"
            } else {
                "http"
            };
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{}{port}", url.host_str().unwrap_or(""))
        });
        let v = origin.parse().map_err(|_| {
            Error::config(format!("--origin `{origin}` is not a valid header value"))
        })?;
        req.headers_mut().insert("Origin", v);
        tracing::info!(url = %shown, "opening the guest session socket");
        // Frames are small JSON; a hostile or broken server cannot make us buffer more.
        let limits = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(crate::http::BODY_CAP))
            .max_frame_size(Some(crate::http::BODY_CAP));
        let connecting = tokio_tungstenite::connect_async_with_config(req, Some(limits), false);
        let (ws, _) = tokio::time::timeout(ANSWER_WAIT, connecting)
            .await
            .map_err(|_| net("timed out opening the socket".into()))?
            .map_err(|e| net(format!("could not open the socket: {e}")))?;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) =
            mpsc::unbounded_channel::<(Message, Option<tokio::sync::oneshot::Sender<bool>>)>();
        let (in_tx, in_rx) = mpsc::unbounded_channel::<Frame>();
        let writer = tokio::spawn(async move {
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.tick().await;
            loop {
                let (msg, ack) = tokio::select! {
                    m = out_rx.recv() => match m { Some(m) => m, None => break },
                    _ = ping.tick() => (Message::Ping(Vec::new().into()), None),
                };
                let closing = matches!(msg, Message::Close(_));
                let written = sink.send(msg).await.is_ok();
                if let Some(ack) = ack {
                    let _ = ack.send(written);
                }
                if !written || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(t) = msg {
                    match Frame::parse(&t) {
                        Ok(f) => {
                            tracing::debug!(class = %f.class, code = f.code, "guest frame");
                            if in_tx.send(f).is_err() {
                                break;
                            }
                        }
                        Err(e) => tracing::warn!("ignoring a malformed guest frame: {e}"),
                    }
                }
            }
        });
        let mut conn = Connection {
            out: out_tx,
            inbox: in_rx,
            backlog: VecDeque::new(),
            rules: SessionRules::default(),
            writer,
        };
        let mut answer = conn
            .request(
                self.session_token,
                json!({"action": "configureSession", "deploymentId": self.deployment_id, "startNew": false}),
                Stage::RequestUrl,
            )
            .await?;
        if answer.class != "SessionResponse" {
            return Err(Error::protocol(
                Stage::RequestUrl,
                format!("configureSession was answered with {}", answer.class),
            ));
        }
        if answer.body.get("readOnly").and_then(Value::as_bool) == Some(true) {
            // The session's conversation ended. Start a new one on the same token, as the
            // Messenger does for "start a new chat": closeSession, then configureSession anew.
            tracing::info!(
                "the guest session is read-only (its conversation ended); starting a new conversation"
            );
            conn.request(
                self.session_token,
                json!({"action": "closeSession", "closeAllConnections": false}),
                Stage::RequestUrl,
            )
            .await?;
            answer = conn
                .request(
                    self.session_token,
                    json!({"action": "configureSession", "deploymentId": self.deployment_id, "startNew": true}),
                    Stage::RequestUrl,
                )
                .await?;
            if answer.body.get("readOnly").and_then(Value::as_bool) == Some(true) {
                return Err(Error::protocol(
                    Stage::RequestUrl,
                    "the guest session stays read-only after starting a new conversation; run without --session-token",
                ));
            }
        }
        conn.rules = parse_rules(&answer.body);
        let new_session = answer
            .body
            .get("newSession")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        tracing::info!(new_session, "guest session configured");
        let _ = self.created.set(new_session);
        Ok(conn)
    }
}

fn parse_rules(body: &Value) -> SessionRules {
    let inbound = &body["allowedMedia"]["inbound"];
    SessionRules {
        file_types: inbound["fileTypes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.get("type").and_then(Value::as_str))
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default(),
        max_file_size_kb: inbound["maxFileSizeKB"].as_u64(),
        blocked_extensions: body["blockedExtensions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `image/*` and `*/*` match as the Messenger matches them.
pub fn type_allowed(allowed: &str, content_type: &str) -> bool {
    let (a_main, a_sub) = allowed.split_once('/').unwrap_or((allowed, "*"));
    let (c_main, c_sub) = content_type.split_once('/').unwrap_or((content_type, ""));
    (a_main == "*" || a_main.eq_ignore_ascii_case(c_main))
        && (a_sub == "*" || a_sub.eq_ignore_ascii_case(c_sub))
}

impl SessionRules {
    fn check(&self, file: &ValidatedFile) -> Result<()> {
        if !self
            .file_types
            .iter()
            .any(|t| type_allowed(t, file.content_type))
        {
            return Err(Error::invalid(
                Rule::TypeNotAllowed,
                format!(
                    "the deployment does not accept {} (it allows: {})",
                    file.content_type,
                    if self.file_types.is_empty() {
                        "no file uploads".to_string()
                    } else {
                        self.file_types.join(", ")
                    }
                ),
            ));
        }
        if let Some(kb) = self.max_file_size_kb
            && file.size > kb.saturating_mul(1000)
        {
            return Err(Error::invalid(
                Rule::TooLarge,
                format!(
                    "{} bytes is over the deployment's limit of {kb} KB",
                    file.size
                ),
            ));
        }
        let ext = file
            .file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        if self.blocked_extensions.contains(&ext) {
            return Err(Error::invalid(
                Rule::BlockedExtension,
                format!("the deployment blocks .{ext} files"),
            ));
        }
        Ok(())
    }
}

impl Connection {
    /// The reader or the writer has ended: the socket is gone.
    fn is_closed(&self) -> bool {
        self.inbox.is_closed() || self.out.is_closed()
    }

    /// Writes one frame; an error means it never reached the socket (safe to send again).
    async fn send(&self, value: Value, stage: Stage) -> Result<()> {
        let (ack, written) = tokio::sync::oneshot::channel();
        self.out
            .send((Message::Text(value.to_string().into()), Some(ack)))
            .map_err(|_| unsent(stage))?;
        match written.await {
            Ok(true) => Ok(()),
            _ => Err(unsent(stage)),
        }
    }

    /// Sends one request and returns its answer, waiting out rate limits.
    async fn request(&mut self, token: uuid::Uuid, mut body: Value, stage: Stage) -> Result<Frame> {
        let deadline = Instant::now() + MAX_RETRY_AFTER * 2;
        loop {
            let tracing_id = uuid::Uuid::new_v4().to_string();
            body["token"] = json!(token);
            body["tracingId"] = json!(tracing_id);
            self.send(body.clone(), stage).await?;
            // onAttachment's answers can come as `message` frames without a tracingId
            // (GenerateUrlError in the SDK's fixtures): those match by attachmentId.
            let attachment = body.get("attachmentId").and_then(Value::as_str);
            let answer = self
                .wait(stage, ANSWER_WAIT, |f| {
                    f.tracing_id.as_deref() == Some(tracing_id.as_str())
                        || (f.tracing_id.is_none() && f.kind == "response")
                        || (attachment.is_some()
                            && matches!(
                                f.class.as_str(),
                                "GenerateUrlError" | "PresignedUrlResponse"
                            )
                            && f.body_str("attachmentId") == attachment)
                })
                .await?;
            if answer.class == "TooManyRequestsErrorMessage" {
                let secs = answer.body["retryAfter"].as_u64().unwrap_or(3);
                let wait = Duration::from_secs(secs);
                if wait > MAX_RETRY_AFTER || Instant::now() + wait > deadline {
                    return Err(answer.to_error(stage));
                }
                tracing::info!(retry_after = secs, %stage, "guest request rate-limited; waiting");
                tokio::time::sleep(wait).await;
                continue;
            }
            if answer.error_code().is_some() {
                return Err(answer.to_error(stage));
            }
            return Ok(answer);
        }
    }

    /// The next frame matching `want`, keeping others for later; session-wide failures end the wait.
    async fn wait(
        &mut self,
        stage: Stage,
        limit: Duration,
        want: impl Fn(&Frame) -> bool,
    ) -> Result<Frame> {
        if let Some(i) = self.backlog.iter().position(&want) {
            return Ok(self.backlog.remove(i).expect("index from position"));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .map_err(|_| {
                    Error::protocol(
                        stage,
                        format!("no answer on the guest socket within {} s", limit.as_secs()),
                    )
                })?
                .ok_or_else(|| closed(stage))?;
            if want(&frame) {
                return Ok(frame);
            }
            match frame.class.as_str() {
                "SessionExpiredEvent" => return Err(frame.to_error(stage)),
                "ConnectionClosedEvent" => {
                    return Err(Error::protocol(
                        stage,
                        "the platform closed this connection (a newer connection opened on the same session)",
                    ));
                }
                _ => self.backlog.push_back(frame),
            }
        }
    }
}

const SOCKET: &str = "the guest socket";

fn closed(stage: Stage) -> Error {
    Error::Network {
        stage,
        host: SOCKET.into(),
        message: "the socket closed unexpectedly".into(),
    }
}

const UNSENT: &str = "the socket closed before the request was written";

/// The socket was gone before the request reached it: nothing was sent.
fn unsent(stage: Stage) -> Error {
    Error::Network {
        stage,
        host: SOCKET.into(),
        message: UNSENT.into(),
    }
}

fn is_closed(err: &Error) -> bool {
    matches!(err, Error::Network { host, .. } if host == SOCKET)
}

fn was_unsent(err: &Error) -> bool {
    matches!(err, Error::Network { host, message, .. } if host == SOCKET && message == UNSENT)
}

#[async_trait]
impl Route for Guest {
    fn name(&self) -> &'static str {
        "guest"
    }

    async fn preflight(&self) -> Result<()> {
        self.session().await.map(drop)
    }

    async fn check(&self, file: &ValidatedFile, online: bool) -> Result<()> {
        if !online {
            return Ok(());
        }
        let guard = self.session().await?;
        guard.as_ref().expect("connected").rules.check(file)
    }

    async fn request_upload(&self, file: &ValidatedFile) -> Result<UploadTarget> {
        let mut guard = self.session().await?;
        let attachment_id = uuid::Uuid::new_v4().to_string();
        let request = json!({
            "action": "onAttachment",
            "attachmentId": attachment_id,
            "fileName": file.file_name,
            "fileType": file.content_type,
            "fileSize": file.size,
            "errorsAsJson": true,
        });
        let conn = guard.as_mut().expect("connected");
        let answer = match conn
            .request(self.session_token, request.clone(), Stage::RequestUrl)
            .await
        {
            // Asking again is harmless: an attachment that gets no PUT is never sent.
            Err(e) if is_closed(&e) => {
                self.reconnect(&mut guard).await?;
                let conn = guard.as_mut().expect("connected");
                conn.request(self.session_token, request, Stage::RequestUrl)
                    .await?
            }
            other => other?,
        };
        if answer.class != "PresignedUrlResponse" {
            return Err(Error::protocol(
                Stage::RequestUrl,
                format!("onAttachment was answered with {}", answer.class),
            ));
        }
        let id = answer
            .body_str("attachmentId")
            .unwrap_or(&attachment_id)
            .to_string();
        let (id, url) =
            super::upload_url(Some(id), answer.body_str("url").map(str::to_string), "url")?;
        let headers = super::put_headers(answer.body["headers"].as_object(), file.content_type);
        Ok(UploadTarget {
            file_id: id,
            url,
            headers,
            confirm_url: None,
            issued_at: Instant::now(),
        })
    }

    async fn confirm(&self, file: &ValidatedFile, target: &UploadTarget) -> Result<Confirmation> {
        let mut guard = self.session().await?;
        let id = target.file_id.as_str();
        let is_event = |f: &Frame| {
            matches!(
                f.class.as_str(),
                "UploadSuccessEvent" | "UploadFailureEvent"
            ) && f.body_str("attachmentId") == Some(id)
        };
        // A 2xx from the store only means the bytes arrived; the platform's verdict follows.
        let conn = guard.as_mut().expect("connected");
        let event = match conn
            .wait(Stage::Confirm, self.confirm_timeout, is_event)
            .await
        {
            Err(e) if is_closed(&e) => {
                // The event may have gone to the dropped socket: ask for the attachment instead
                // of uploading it again.
                self.reconnect(&mut guard).await?;
                let conn = guard.as_mut().expect("connected");
                let asked = conn
                    .request(
                        self.session_token,
                        json!({"action": "getAttachment", "attachmentId": id}),
                        Stage::Confirm,
                    )
                    .await;
                match asked {
                    Ok(f) if f.class == "PresignedUrlResponse" => Frame {
                        kind: "message".into(),
                        class: "UploadSuccessEvent".into(),
                        code: 200,
                        body: json!({"attachmentId": id, "downloadUrl": f.body["url"]}),
                        tracing_id: None,
                    },
                    _ => {
                        conn.wait(Stage::Confirm, self.confirm_timeout, is_event)
                            .await?
                    }
                }
            }
            other => other?,
        };
        let conn = guard.as_mut().expect("connected");
        if event.class == "UploadFailureEvent" {
            return Err(match event.error_code() {
                Some(4003) => Error::Infected {
                    status: format!("invalid content (4003: {})", event.error_message()),
                },
                _ => event.to_error(Stage::Confirm),
            });
        }
        let caption = self
            .message
            .clone()
            .unwrap_or_else(|| file.file_name.clone());
        let message = json!({
            "action": "onMessage",
            "message": {
                "type": "Text",
                "text": caption,
                "content": [{"contentType": "Attachment", "attachment": {"id": id}}],
            },
        });
        if conn.is_closed() {
            self.reconnect(&mut guard).await?;
        }
        let conn = guard.as_mut().expect("connected");
        let echo = match conn
            .request(self.session_token, message.clone(), Stage::Send)
            .await
        {
            Err(e) if was_unsent(&e) => {
                self.reconnect(&mut guard).await?;
                let conn = guard.as_mut().expect("connected");
                conn.request(self.session_token, message, Stage::Send)
                    .await?
            }
            // Written but not echoed: sending again could post the file twice.
            Err(e) if is_closed(&e) => {
                return Err(Error::Network {
                    stage: Stage::Send,
                    host: SOCKET.into(),
                    message: "the socket closed before the message was echoed; it may have been sent, so it is not sent again".into(),
                });
            }
            other => other?,
        };
        if echo.class != "StructuredMessage" {
            return Err(Error::protocol(
                Stage::Send,
                format!("onMessage was answered with {}", echo.class),
            ));
        }
        let mut extra = serde_json::Map::new();
        extra.insert("sessionToken".into(), self.session_token.to_string().into());
        extra.insert("deploymentId".into(), self.deployment_id.clone().into());
        let created = self.created.get().copied().unwrap_or(false);
        extra.insert("newSession".into(), created.into());
        if let Some(m) = echo.body_str("id") {
            extra.insert("messageId".into(), m.into());
        }
        if let Some(u) = event
            .body_str("downloadUrl")
            .and_then(|u| Url::parse(u).ok())
        {
            extra.insert("downloadUrl".into(), redact::public_url(&u).into());
        }
        Ok(Confirmation {
            file_id: id.to_string(),
            virus_scan_status: "passed".into(),
            extra,
        })
    }

    async fn finish(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.out.send((Message::Close(None), None));
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.writer).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(type_allowed("image/*", "image/png"));
        assert!(type_allowed("*/*", "application/pdf"));
        assert!(type_allowed("application/pdf", "application/pdf"));
        assert!(!type_allowed("image/*", "application/pdf"));
        assert!(!type_allowed("image/png", "image/jpeg"));
    }

    #[test]
    fn frames_and_errors() {
        let f = Frame::parse(r#"{"type":"response","class":"string","code":4001,"body":"File type not allowed","tracingId":"t"}"#).unwrap();
        assert_eq!(f.error_code(), Some(4001));
        let f = Frame::parse(r#"{"type":"response","class":"GenerateUrlError","code":200,"body":{"attachmentId":"a","errorCode":4002,"errorMessage":"too big"}}"#).unwrap();
        assert_eq!(f.error_code(), Some(4002));
        let f =
            Frame::parse(r#"{"type":"response","class":"SessionResponse","code":200,"body":{}}"#)
                .unwrap();
        assert_eq!(f.error_code(), None);
    }
}
