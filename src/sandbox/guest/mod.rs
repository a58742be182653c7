//! The Web Messaging guest socket at `/v1` (protocol reference §2): one task per connection
//! reads requests and dispatches them by `action`; a writer task sends the answers and the
//! upload events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

mod attachments;
mod configure;
mod deployment;
mod frame;
mod history;
mod messages;
mod rules;
mod sessions;

use super::state::admit;
use frame::{error, field, frame};
pub(crate) use sessions::Guest;
use sessions::{CLOSE, Call, SILENT, Session, Socket};

pub(crate) fn router(guest: Arc<Guest>) -> axum::Router {
    axum::Router::new()
        .route("/v1", get(upgrade))
        .route(
            "/webdeployments/v1/deployments/{id}/config.json",
            get(deployment::config),
        )
        .route("/api/v2/webmessaging/messages", get(history::messages))
        .with_state(guest)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    AxState(guest): AxState<Arc<Guest>>,
) -> Response {
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    if !origin_allowed(&guest.state.faults().guest_allowed_origins, origin) {
        // As a deployment that restricts allowed domains: the handshake itself is refused (the
        // transport SDK's `WebsocketAccessDenied`, `network/PlatformSocket.kt`).
        return (StatusCode::FORBIDDEN, "Origin not allowed").into_response();
    }
    let deployment = q.get("deploymentId").cloned().unwrap_or_default();
    ws.on_upgrade(move |socket| connection(guest, socket, deployment))
}

/// Whether the host of `origin` (`https://host:port` or a bare host) is one of `allowed`;
/// an empty list allows any.
fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = origin else { return false };
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    allowed.iter().any(|d| d.eq_ignore_ascii_case(host))
}

async fn connection(guest: Arc<Guest>, ws: WebSocket, deployment: String) {
    let (sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    // Fault: this connection ends (as a load balancer would cut it) after n frames.
    let close_after = std::mem::take(&mut guest.state.faults().close_guest_after_frames);
    let writer = tokio::spawn(write_frames(sink, rx, close_after));
    let mut socket = Socket {
        tx,
        deployment,
        bound: None,
        closed: false,
    };
    while let Some(Ok(msg)) = stream.next().await {
        if writer.is_finished() {
            break;
        }
        let Message::Text(text) = msg else { continue };
        let reply = match serde_json::from_str::<Value>(&text) {
            Ok(req) => {
                held_back(&guest, &req).await;
                answer(&guest, &mut socket, &req)
            }
            Err(_) => error(400, "Invalid JSON", None),
        };
        if reply == SILENT {
            continue;
        }
        if socket.tx.send(reply).is_err() {
            break;
        }
    }
    drop(socket);
    let _ = writer.await;
}

/// Fault: the network holds an onMessage back before it reaches the platform (which counts
/// the session's messages as they arrive), so it lands closer to the next one than it left.
async fn held_back(guest: &Guest, req: &Value) {
    if field(req, "action") != Some("onMessage") {
        return;
    }
    let delay = {
        let mut f = guest.state.faults();
        let held = f.hold_guest_messages > 0;
        f.hold_guest_messages = f.hold_guest_messages.saturating_sub(1);
        held.then_some(f.guest_message_hold_ms)
    };
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Sends queued frames until the queue closes, the client goes, or `close_after` frames
/// (when non-zero) were sent; then closes the socket.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<String>,
    close_after: u32,
) {
    let mut sent = 0;
    while let Some(text) = rx.recv().await {
        if text == CLOSE || sink.send(Message::Text(text.into())).await.is_err() {
            break;
        }
        sent += 1;
        if sent == close_after {
            break;
        }
    }
    let _ = sink.close().await;
}

/// The answer to one request: the token and rate limit first, then configureSession or an
/// action on the session this socket configured.
fn answer(guest: &Guest, socket: &mut Socket, req: &Value) -> String {
    let tid = field(req, "tracingId");
    let action = field(req, "action").unwrap_or("");
    let Some(token) = field(req, "token").filter(|t| !t.is_empty()) else {
        return error(400, "Missing token", tid);
    };
    if guest.state.take(|f| &mut f.guest_rate_limit) {
        return too_many(guest, 1, tid);
    }
    let call = Call {
        guest,
        token,
        req,
        tid,
    };
    let mut sessions = guest.sessions.lock().expect("sessions");
    if action == "configureSession" {
        return configure::configure(call, &mut sessions, socket);
    }
    if socket.bound.as_deref() != Some(token) {
        return error(4007, "Session not found: configure the session first", tid);
    }
    let session = sessions.get_mut(token).expect("bound sessions exist");
    if let Some(refusal) = unusable(session, action, tid) {
        return refusal;
    }
    match action {
        "onAttachment" => attachments::on_attachment(call, session),
        "onMessage" => send(call, session),
        "getJwt" => history::jwt(call),
        "getAttachment" => attachments::get(call, session),
        "deleteAttachment" => attachments::delete(call, session),
        "echo" => messages::echo(call),
        "closeSession" => configure::close(call, session, socket),
        _ => error(400, &format!("Unknown action {action}"), tid),
    }
}

/// onMessage, with its faults: the socket closes before the message is read, or after it was
/// sent and before its echo.
fn send(call: Call, session: &mut Session) -> String {
    let st = &call.guest.state;
    if let Some(wait) = over_rate(st.faults().guest_messages_per_sec, session) {
        return too_many(call.guest, wait, call.tid);
    }
    if st.take(|f| &mut f.drop_guest_sends) {
        return CLOSE.to_string();
    }
    let echo = messages::on_message(call, session);
    if st.take(|f| &mut f.lose_guest_sends) {
        return CLOSE.to_string();
    }
    echo
}

/// `messages.per.session.rate.per.second`: at most `limit` onMessage in any second of a
/// session (0: no limit). Over it: the seconds until there is room (`retryAfter`).
fn over_rate(limit: u32, session: &mut Session) -> Option<u64> {
    if limit == 0 {
        return None;
    }
    admit(&mut session.message_times, limit, Duration::from_secs(1)).err()
}

/// A 4029 (TooManyRequestsErrorMessage), counted.
fn too_many(guest: &Guest, retry_after: u64, tid: Option<&str>) -> String {
    guest.state.count_refusal("guest");
    let body = json!({"retryAfter": retry_after, "errorCode": 4029, "errorMessage": "Message rate too high for this session"});
    frame("response", "TooManyRequestsErrorMessage", 429, body, tid)
}

/// An expired session refuses every action (4006); a read-only one refuses what would write.
fn unusable(session: &Session, action: &str, tid: Option<&str>) -> Option<String> {
    if session.expired {
        return Some(error(4006, "Session expired", tid));
    }
    (session.read_only && matches!(action, "onAttachment" | "onMessage"))
        .then(|| error(400, "Session is read-only: start a new conversation", tid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_allowed_by_its_host() {
        let allowed = vec!["www.example.com".to_string()];
        assert!(origin_allowed(&[], None));
        assert!(origin_allowed(&allowed, Some("https://www.example.com")));
        assert!(origin_allowed(
            &allowed,
            Some("https://WWW.example.com:8443/")
        ));
        assert!(origin_allowed(&allowed, Some("www.example.com")));
        assert!(!origin_allowed(&allowed, Some("https://example.com")));
        assert!(!origin_allowed(
            &allowed,
            Some("https://www.example.com.evil.test")
        ));
        assert!(!origin_allowed(&allowed, None));
    }
}
