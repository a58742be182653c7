//! The guest socket as a mailbox: a writer task (which also pings), a reader task that rings
//! a bell on each arrival, and the frames that arrived while we waited for something else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use url::Url;

use super::frames::Frame;
use crate::error::{Error, Result, Stage};
use crate::redact;

/// The SDKs ping every 15 s to keep the socket (and its load balancers) alive.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long to wait for the socket to open, and for the answer to one request.
pub(super) const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// Longest `retryAfter` we honour inside one file's budget.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A frame to write, with a reply saying whether it reached the socket.
type Outgoing = (Message, Option<oneshot::Sender<bool>>);

pub(super) struct Connection {
    out: mpsc::UnboundedSender<Outgoing>,
    inbox: mpsc::UnboundedReceiver<Frame>,
    /// Frames that arrived while we waited for something else (events for later).
    backlog: VecDeque<Frame>,
    writer: JoinHandle<()>,
}

/// Why a request got no answer. The two socket cases differ in what is safe next: a request
/// that was never written can be sent again; one that was written may have taken effect.
#[derive(Debug)]
pub(super) enum SocketError {
    /// The socket was gone before the request reached it: nothing was sent.
    Unsent(Stage),
    /// The socket closed while we waited for an answer or an event.
    Closed(Stage),
    /// Anything else (a refusal, a timeout, an unexpected answer): final.
    Other(Error),
}

impl From<Error> for SocketError {
    fn from(e: Error) -> Self {
        SocketError::Other(e)
    }
}

impl From<SocketError> for Error {
    fn from(e: SocketError) -> Self {
        match e {
            SocketError::Unsent(stage) => {
                dropped(stage, "the socket closed before the request was written")
            }
            SocketError::Closed(stage) => dropped(stage, "the socket closed unexpectedly"),
            SocketError::Other(e) => e,
        }
    }
}

fn dropped(stage: Stage, message: &str) -> Error {
    Error::Network {
        stage,
        host: "the guest socket".into(),
        message: message.into(),
    }
}

/// The message was written but the socket closed before its echo, and `why` nothing settles it.
pub(super) fn not_echoed(why: &str) -> Error {
    Error::MaybeSent {
        why: format!("the guest socket closed before the message was echoed, and {why}"),
    }
}

/// The handshake request and the Origin it carries. The SDKs always send one, the socket's own
/// host (`network/PlatformSocket.kt`, Android and iOS); gcupload sends the socket's own origin in
/// the standard `scheme://host` form unless `--origin` says otherwise: deployments may restrict
/// allowed domains.
fn handshake(url: &Url, shown: &str, origin: Option<&str>) -> Result<(Request, String)> {
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::config(format!("guest socket URL {shown}: {e}")))?;
    let origin = self::origin(url, origin);
    let v = origin
        .parse()
        .map_err(|_| Error::config(format!("--origin `{origin}` is not a valid header value")))?;
    req.headers_mut().insert("Origin", v);
    Ok((req, origin))
}

/// Why the handshake failed: a 403 is the deployment refusing our Origin (the SDK's
/// `WebsocketAccessDenied`), anything else a network failure.
fn refused(
    e: tokio_tungstenite::tungstenite::Error,
    host: &str,
    origin: &str,
    net: impl Fn(String) -> Error,
) -> Error {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e {
        WsError::Http(resp) if resp.status().as_u16() == 403 => Error::Remote {
            stage: Stage::RequestUrl,
            remote: crate::error::Remote {
                status: Some(403),
                code: Some("WebsocketAccessDenied".into()),
                message: format!(
                    "the guest socket refused the handshake with HTTP 403: the deployment restricts allowed domains, and the Origin sent, `{origin}`, is not one of them"
                ),
                correlation_id: crate::http::correlation_id(resp.headers()),
            },
        },
        e => match crate::error::untrusted_certificate(&e) {
            Some(detail) => Error::UntrustedCertificate {
                stage: Stage::RequestUrl,
                host: host.to_string(),
                detail,
            },
            None => net(format!("could not open the socket: {e}")),
        },
    }
}

/// The Origin to send: `configured` (`--origin`), else the socket's own.
pub(super) fn origin(socket: &Url, configured: Option<&str>) -> String {
    configured.map_or_else(|| own_origin(socket), str::to_string)
}

fn own_origin(url: &Url) -> String {
    let scheme = if url.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{}{port}", url.host_str().unwrap_or(""))
}

/// Writes what it is given and pings in between, until told to close or the socket fails.
fn spawn_writer<S>(mut sink: S, mut out: mpsc::UnboundedReceiver<Outgoing>) -> JoinHandle<()>
where
    S: Sink<Message> + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            let (msg, ack) = tokio::select! {
                m = out.recv() => match m { Some(m) => m, None => break },
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
    })
}

/// Passes on every text frame that parses and rings `arrivals` for it; ends with the socket
/// (which closes the inbox, and rings once more so that waiters see it closed).
fn spawn_reader<S, E>(mut stream: S, inbox: mpsc::UnboundedSender<Frame>, arrivals: Arc<Notify>)
where
    S: Stream<Item = std::result::Result<Message, E>> + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(t) = msg else { continue };
            match Frame::parse(&t) {
                Ok(f) => {
                    tracing::debug!(class = %f.class, code = f.code, "guest frame");
                    if inbox.send(f).is_err() {
                        break;
                    }
                    arrivals.notify_waiters();
                }
                Err(e) => tracing::warn!("ignoring a malformed guest frame: {e}"),
            }
        }
        drop(inbox);
        arrivals.notify_waiters();
    });
}

/// No awaited frame came within `limit`.
pub(super) fn no_answer(stage: Stage, limit: Duration) -> Error {
    Error::protocol(
        stage,
        format!("no answer on the guest socket within {} s", limit.as_secs()),
    )
}

/// Whether `f` answers the request sent with `tracing_id`.
fn answers(f: &Frame, tracing_id: &str, attachment: Option<&str>) -> bool {
    // onAttachment's answers can come as `message` frames without a tracingId
    // (GenerateUrlError in the SDK's fixtures): those match by attachmentId.
    f.tracing_id.as_deref() == Some(tracing_id)
        || (f.tracing_id.is_none() && f.kind == "response")
        || (attachment.is_some()
            && matches!(
                f.class.as_str(),
                "GenerateUrlError" | "PresignedUrlResponse" | "AttachmentDeletedResponse"
            )
            && f.body_str("attachmentId") == attachment)
}

/// Sleeps out a rate limit, or gives it back as the error when it asks for too long.
async fn wait_out(limited: &Frame, deadline: Instant, stage: Stage) -> Result<()> {
    let secs = limited.body["retryAfter"].as_u64().unwrap_or(3);
    let wait = Duration::from_secs(secs);
    // Compared, never added to an instant: `retryAfter` is the server's number.
    if wait > MAX_RETRY_AFTER || wait > deadline.saturating_duration_since(Instant::now()) {
        return Err(limited.to_error(stage));
    }
    tracing::info!(retry_after = secs, %stage, "guest request rate-limited; waiting");
    tokio::time::sleep(wait).await;
    Ok(())
}

impl Connection {
    /// Opens the socket; its reader rings `arrivals` on each frame and when it ends.
    pub(super) async fn open(
        url: &Url,
        origin: Option<&str>,
        arrivals: Arc<Notify>,
    ) -> Result<Connection> {
        let shown = redact::url(url);
        let net = |message: String| Error::Network {
            stage: Stage::RequestUrl,
            host: url.host_str().unwrap_or("").to_string(),
            message,
        };
        crate::http::check_transport(url, "the guest socket")?;
        let (req, origin) = handshake(url, &shown, origin)?;
        tracing::info!(url = %shown, "opening the guest session socket");
        // Frames are small JSON; a hostile or broken server cannot make us buffer more.
        let limits = WebSocketConfig::default()
            .max_message_size(Some(crate::http::BODY_CAP))
            .max_frame_size(Some(crate::http::BODY_CAP));
        let connecting = tokio_tungstenite::connect_async_with_config(req, Some(limits), false);
        let (ws, _) = tokio::time::timeout(ANSWER_WAIT, connecting)
            .await
            .map_err(|_| net("timed out opening the socket".into()))?
            .map_err(|e| refused(e, url.host_str().unwrap_or(""), &origin, net))?;
        let (sink, stream) = ws.split();
        let (out, out_rx) = mpsc::unbounded_channel();
        let (in_tx, inbox) = mpsc::unbounded_channel();
        let writer = spawn_writer(sink, out_rx);
        spawn_reader(stream, in_tx, arrivals);
        Ok(Connection {
            out,
            inbox,
            backlog: VecDeque::new(),
            writer,
        })
    }

    /// The reader or the writer has ended: the socket is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.inbox.is_closed() || self.out.is_closed()
    }

    /// Writes one frame; `Unsent` means it never reached the socket.
    async fn send(&self, value: Value, stage: Stage) -> std::result::Result<(), SocketError> {
        let (ack, written) = oneshot::channel();
        self.out
            .send((Message::Text(value.to_string().into()), Some(ack)))
            .map_err(|_| SocketError::Unsent(stage))?;
        match written.await {
            Ok(true) => Ok(()),
            _ => Err(SocketError::Unsent(stage)),
        }
    }

    /// Sends one request and returns its answer, waiting out rate limits.
    pub(super) async fn request(
        &mut self,
        token: uuid::Uuid,
        body: Value,
        stage: Stage,
    ) -> std::result::Result<Frame, SocketError> {
        self.request_within(token, body, stage, ANSWER_WAIT).await
    }

    /// [`Connection::request`], giving up on the answer after `limit` (for requests whose
    /// answer the platform does not document, and that may get none).
    pub(super) async fn request_within(
        &mut self,
        token: uuid::Uuid,
        body: Value,
        stage: Stage,
        limit: Duration,
    ) -> std::result::Result<Frame, SocketError> {
        let attachment = body
            .get("attachmentId")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.request_for(token, body, stage, limit, |f, tracing_id| {
            answers(f, tracing_id, attachment.as_deref())
        })
        .await
    }

    /// Sends one request and returns the first frame `is_answer` picks (given the request's
    /// tracingId) within `limit`, waiting out rate limits; an error answer is the error.
    pub(super) async fn request_for(
        &mut self,
        token: uuid::Uuid,
        mut body: Value,
        stage: Stage,
        limit: Duration,
        is_answer: impl Fn(&Frame, &str) -> bool,
    ) -> std::result::Result<Frame, SocketError> {
        let deadline = Instant::now() + MAX_RETRY_AFTER * 2;
        loop {
            let tracing_id = uuid::Uuid::new_v4().to_string();
            body["token"] = json!(token);
            body["tracingId"] = json!(tracing_id);
            self.send(body.clone(), stage).await?;
            let answer = self
                .wait(stage, limit, |f| is_answer(f, &tracing_id))
                .await?;
            if answer.class == "TooManyRequestsErrorMessage" {
                wait_out(&answer, deadline, stage).await?;
                continue;
            }
            if answer.error_code().is_some() {
                return Err(answer.to_error(stage).into());
            }
            return Ok(answer);
        }
    }

    /// The next frame matching `want`, keeping others for later; session-wide failures end the wait.
    pub(super) async fn wait(
        &mut self,
        stage: Stage,
        limit: Duration,
        want: impl Fn(&Frame) -> bool,
    ) -> std::result::Result<Frame, SocketError> {
        if let Some(i) = self.backlog.iter().position(&want) {
            return Ok(self.backlog.remove(i).expect("index from position"));
        }
        let deadline = crate::retry::later(Instant::now(), limit).into();
        loop {
            let frame = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .map_err(|_| no_answer(stage, limit))?
                .ok_or(SocketError::Closed(stage))?;
            if want(&frame) {
                return Ok(frame);
            }
            self.keep(frame, stage)?;
        }
    }

    /// What has arrived, without waiting: the first frame matching `want` (the others kept for
    /// later), a session-wide failure, `Closed` once the socket is gone and nothing matches, or
    /// `None`: not yet.
    pub(super) fn poll(
        &mut self,
        stage: Stage,
        want: impl Fn(&Frame) -> bool,
    ) -> Option<std::result::Result<Frame, SocketError>> {
        let closed = loop {
            match self.inbox.try_recv() {
                Ok(frame) => {
                    if let Err(e) = self.keep(frame, stage) {
                        return Some(Err(e));
                    }
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if let Some(i) = self.backlog.iter().position(want) {
            return Some(Ok(self.backlog.remove(i).expect("index from position")));
        }
        closed.then_some(Err(SocketError::Closed(stage)))
    }

    /// Keeps a frame nobody is waiting for yet; session-wide failures are the error instead.
    fn keep(&mut self, frame: Frame, stage: Stage) -> std::result::Result<(), SocketError> {
        match frame.class.as_str() {
            "SessionExpiredEvent" => Err(frame.to_error(stage).into()),
            "ConnectionClosedEvent" => Err(Error::protocol(
                stage,
                "the platform closed this connection (a newer connection opened on the same session)",
            )
            .into()),
            _ => {
                self.backlog.push_back(frame);
                Ok(())
            }
        }
    }

    /// Says goodbye and gives the writer a moment to flush it.
    pub(super) async fn close(self) {
        let _ = self.out.send((Message::Close(None), None));
        let _ = tokio::time::timeout(Duration::from_secs(2), self.writer).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_huge_retry_after_is_refused_at_once() {
        let far = crate::retry::later(Instant::now(), Duration::MAX);
        for secs in [u64::MAX, i64::MAX as u64, 61] {
            let text = format!(
                r#"{{"type":"response","class":"TooManyRequestsErrorMessage","code":429,"body":{{"retryAfter":{secs}}}}}"#
            );
            let frame = Frame::parse(&text).unwrap();
            let t = Instant::now();
            assert!(wait_out(&frame, far, Stage::Send).await.is_err(), "{secs}");
            assert!(t.elapsed() < Duration::from_secs(1));
        }
    }

    fn event(class: &str, id: &str) -> Frame {
        let text = format!(
            r#"{{"type":"message","class":"{class}","code":200,"body":{{"attachmentId":"{id}"}}}}"#
        );
        Frame::parse(&text).unwrap()
    }

    /// A connection fed by hand: what the reader would have passed on.
    fn fed() -> (Connection, mpsc::UnboundedSender<Frame>) {
        let (out, _) = mpsc::unbounded_channel();
        let (tx, inbox) = mpsc::unbounded_channel();
        let conn = Connection {
            out,
            inbox,
            backlog: VecDeque::new(),
            writer: tokio::spawn(async {}),
        };
        (conn, tx)
    }

    #[tokio::test]
    async fn polling_takes_its_own_event_and_keeps_the_others_for_their_waiters() {
        let (mut conn, tx) = fed();
        let mine = |f: &Frame| f.is_upload_event("b");
        assert!(conn.poll(Stage::Confirm, mine).is_none(), "nothing yet");
        tx.send(event("UploadSuccessEvent", "a")).unwrap();
        tx.send(event("UploadSuccessEvent", "b")).unwrap();
        let got = conn.poll(Stage::Confirm, mine).unwrap().unwrap();
        assert_eq!(got.body_str("attachmentId"), Some("b"));
        assert!(conn.poll(Stage::Confirm, mine).is_none(), "taken once");
        // The socket ends: a waiter still finds what arrived before, then hears it closed.
        drop(tx);
        let other = conn.poll(Stage::Confirm, |f| f.is_upload_event("a"));
        assert!(other.unwrap().is_ok());
        assert!(matches!(
            conn.poll(Stage::Confirm, mine),
            Some(Err(SocketError::Closed(_)))
        ));
    }

    #[tokio::test]
    async fn an_expired_session_ends_a_poll() {
        let (mut conn, tx) = fed();
        tx.send(event("SessionExpiredEvent", "")).unwrap();
        let got = conn.poll(Stage::Confirm, |f| f.is_upload_event("b"));
        assert!(matches!(got, Some(Err(SocketError::Other(_)))));
    }
}
