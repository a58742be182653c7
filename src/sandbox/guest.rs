//! The Web Messaging guest socket at `/v1`: sessions by token, attachments with pre-signed PUTs
//! (signed `x-amz-tagging`), upload events after the object lands and is scanned, message echo.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::State;

#[derive(Debug, Default)]
pub(crate) struct Session {
    attachments: HashMap<String, Attachment>,
    sockets: Vec<mpsc::UnboundedSender<String>>,
    expired: bool,
    /// The session's conversation ended: it only reads until a new one is started.
    read_only: bool,
}

#[derive(Debug, Clone)]
struct Attachment {
    key: String,
    file_name: String,
    file_type: String,
    size: u64,
    /// `Some(true)` uploaded and clean, `Some(false)` refused by the scan.
    uploaded: Option<bool>,
    sent: bool,
}

pub(crate) async fn upgrade(
    ws: WebSocketUpgrade,
    Query(q): Query<HashMap<String, String>>,
    AxState(st): AxState<Arc<State>>,
) -> Response {
    let deployment = q.get("deploymentId").cloned().unwrap_or_default();
    ws.on_upgrade(move |socket| connection(st, socket, deployment))
}

fn frame(kind: &str, class: &str, code: u16, body: Value, tracing_id: Option<&str>) -> String {
    let mut f = json!({"type": kind, "class": class, "code": code, "body": body});
    if let Some(t) = tracing_id {
        f["tracingId"] = json!(t);
    }
    f.to_string()
}

fn error(code: u16, text: &str, tracing_id: Option<&str>) -> String {
    frame("response", "string", code, json!(text), tracing_id)
}

async fn connection(st: Arc<State>, socket: WebSocket, deployment: String) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    // Fault: this connection ends (as a load balancer would cut it) after n frames.
    let close_after = std::mem::take(&mut st.faults().close_guest_after_frames);
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
            sent += 1;
            if sent == close_after {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut token: Option<String> = None;
    while let Some(Ok(msg)) = stream.next().await {
        if writer.is_finished() {
            break;
        }
        let Message::Text(text) = msg else { continue };
        let answer = match serde_json::from_str::<Value>(&text) {
            Ok(req) => handle(&st, &tx, &deployment, &mut token, &req),
            Err(_) => Some(error(400, "Invalid JSON", None)),
        };
        if let Some(a) = answer
            && tx.send(a).is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn handle(
    st: &Arc<State>,
    tx: &mpsc::UnboundedSender<String>,
    deployment: &str,
    bound: &mut Option<String>,
    req: &Value,
) -> Option<String> {
    let s = |k: &str| req.get(k).and_then(Value::as_str);
    let tid = s("tracingId");
    let action = s("action").unwrap_or("");
    let Some(token) = s("token").filter(|t| !t.is_empty()) else {
        return Some(error(400, "Missing token", tid));
    };
    {
        let mut f = st.faults();
        if f.guest_rate_limit > 0 {
            f.guest_rate_limit -= 1;
            let body = json!({"retryAfter": 1, "errorCode": 4029, "errorMessage": "Message rate too high for this session"});
            return Some(frame(
                "response",
                "TooManyRequestsErrorMessage",
                429,
                body,
                tid,
            ));
        }
    }
    let mut sessions = st.guest.lock().expect("sessions");
    if action == "configureSession" {
        if deployment != st.deployment_id || s("deploymentId") != Some(st.deployment_id.as_str()) {
            return Some(error(400, "Deployment not found or inactive", tid));
        }
        let start_new = req.get("startNew").and_then(Value::as_bool) == Some(true);
        let mut new = !sessions.contains_key(token);
        let session = sessions.entry(token.to_string()).or_default();
        if start_new && session.read_only {
            // A new conversation on the same token: what was attached before is gone.
            session.read_only = false;
            session.attachments.clear();
            new = true;
        } else if !new && st.take(|f| &mut f.read_only_sessions) {
            session.read_only = true;
        }
        {
            let mut f = st.faults();
            if f.expire_sessions > 0 {
                f.expire_sessions -= 1;
                session.expired = true;
            }
        }
        if session.expired {
            return Some(frame(
                "response",
                "SessionExpiredEvent",
                200,
                json!({}),
                tid,
            ));
        }
        if bound.as_deref() != Some(token) {
            session.sockets.push(tx.clone());
            *bound = Some(token.to_string());
        }
        let f = st.faults();
        let (types, max_kb, blocked): (Vec<Value>, u64, Vec<String>) = if f.guest_hidden_rules {
            (vec![json!({"type": "*/*"})], 1 << 30, vec![])
        } else {
            (
                f.guest_allowed_types
                    .iter()
                    .map(|t| json!({"type": t}))
                    .collect(),
                f.guest_max_file_size_kb,
                f.guest_blocked_extensions.clone(),
            )
        };
        let body = json!({
            "connected": true, "newSession": new, "readOnly": session.read_only,
            "allowedMedia": {"inbound": {"fileTypes": types, "maxFileSizeKB": max_kb}},
            "blockedExtensions": blocked,
            "durationSeconds": 259200,
            "expirationDate": (std::time::SystemTime::now() + Duration::from_secs(259200))
                .duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        });
        return Some(frame("response", "SessionResponse", 200, body, tid));
    }
    if bound.as_deref() != Some(token) {
        return Some(error(
            4007,
            "Session not found: configure the session first",
            tid,
        ));
    }
    let session = sessions.get_mut(token).expect("bound sessions exist");
    if session.expired {
        return Some(error(4006, "Session expired", tid));
    }
    if session.read_only && matches!(action, "onAttachment" | "onMessage") {
        return Some(error(
            400,
            "Session is read-only: start a new conversation",
            tid,
        ));
    }
    match action {
        "onAttachment" => Some(on_attachment(st, token, session, req, tid)),
        "onMessage" => Some(on_message(st, token, session, req, tid)),
        "getAttachment" => {
            let id = s("attachmentId").unwrap_or("");
            Some(match session.attachments.get(id) {
                Some(a) if a.uploaded == Some(true) => {
                    let body = json!({"attachmentId": id, "url": st.store.presign_get(&a.key, Duration::from_secs(600)), "headers": {},
                        "fileName": a.file_name, "fileSize": a.size, "fileType": a.file_type});
                    frame("response", "PresignedUrlResponse", 200, body, tid)
                }
                _ => error(4009, "Attachment not found", tid),
            })
        }
        "deleteAttachment" => {
            let id = s("attachmentId").unwrap_or("");
            Some(match session.attachments.get(id) {
                Some(a) if !a.sent => {
                    let _ = std::fs::remove_file(st.store.object_path(&a.key));
                    session.attachments.remove(id);
                    frame(
                        "message",
                        "AttachmentDeletedResponse",
                        200,
                        json!({"attachmentId": id}),
                        tid,
                    )
                }
                _ => error(4009, "Attachment not found", tid),
            })
        }
        "echo" => {
            let text = req["message"]["text"].as_str().unwrap_or("");
            let body = json!({"id": uuid::Uuid::new_v4().to_string(), "type": "Text", "text": text, "direction": "Inbound"});
            Some(frame("response", "StructuredMessage", 200, body, tid))
        }
        "closeSession" => Some(frame(
            "response",
            "SessionResponse",
            200,
            json!({"connected": false, "newSession": false}),
            tid,
        )),
        _ => Some(error(400, &format!("Unknown action {action}"), tid)),
    }
}

fn on_attachment(
    st: &State,
    token: &str,
    session: &mut Session,
    req: &Value,
    tid: Option<&str>,
) -> String {
    let s = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or("");
    let (id, name, ftype) = (s("attachmentId"), s("fileName"), s("fileType"));
    let size = req.get("fileSize").and_then(Value::as_u64).unwrap_or(0);
    let refuse = |code: u16, msg: &str| {
        let body = json!({"attachmentId": id, "errorCode": code, "errorMessage": msg});
        // As in the transport SDK's fixtures: a `message` frame without tracingId.
        frame("message", "GenerateUrlError", 200, body, None)
    };
    if id.is_empty() || name.is_empty() || ftype.is_empty() {
        return refuse(4020, "Missing parameter");
    }
    let f = st.faults().clone();
    if !f
        .guest_allowed_types
        .iter()
        .any(|t| type_accepted(t, ftype))
    {
        return refuse(4001, "File type not allowed");
    }
    if size > f.guest_max_file_size_kb * 1000 {
        return refuse(4002, "File size too large");
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| format!(".{}", e.to_ascii_lowercase()))
        .unwrap_or_default();
    if name.contains('/')
        || name.chars().any(char::is_control)
        || f.guest_blocked_extensions.contains(&ext)
    {
        return refuse(4004, "File name invalid");
    }
    if name.len() > 255 {
        return refuse(4005, "File name too long");
    }
    let key = format!("guest/{token}/{id}/{name}");
    let tagging = format!("deploymentId={}&attachmentId={id}", st.deployment_id);
    let url = st.issue_put_url(
        &key,
        size,
        &[("content-type", ftype), ("x-amz-tagging", &tagging)],
    );
    session.attachments.insert(
        id.to_string(),
        Attachment {
            key,
            file_name: name.into(),
            file_type: ftype.into(),
            size,
            uploaded: None,
            sent: false,
        },
    );
    let body = json!({"attachmentId": id, "url": url, "headers": {"x-amz-tagging": tagging},
        "fileName": name, "fileSize": size, "fileType": ftype});
    frame("response", "PresignedUrlResponse", 200, body, tid)
}

/// Protocol reference §2: whether a `fileTypes` entry admits a MIME type: `*/*` admits anything, `image/*` any image,
/// anything else only itself (case-insensitively). An entry with no `/` names a whole top-level
/// type.
fn type_accepted(pattern: &str, mime: &str) -> bool {
    let mut want = pattern.splitn(2, '/');
    let mut have = mime.splitn(2, '/');
    let top = (want.next().unwrap_or(""), have.next().unwrap_or(""));
    let sub = (want.next().unwrap_or("*"), have.next().unwrap_or(""));
    let admits = |(w, h): (&str, &str)| w == "*" || w.eq_ignore_ascii_case(h);
    admits(top) && admits(sub)
}

fn on_message(
    st: &State,
    token: &str,
    session: &mut Session,
    req: &Value,
    tid: Option<&str>,
) -> String {
    let msg = &req["message"];
    let text = msg["text"].as_str().unwrap_or("");
    if text.len() > 4096 {
        return error(4011, "Message too long", tid);
    }
    let attachments: Vec<&str> = msg["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|x| x["attachment"]["id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    if attachments.len() > 1 {
        return error(400, "Only one attachment per message", tid);
    }
    let mut content = Vec::new();
    for id in &attachments {
        let Some(a) = session.attachments.get_mut(*id) else {
            return error(4009, "Attachment not found", tid);
        };
        if a.uploaded != Some(true) {
            return error(4010, "Attachment has not been successfully uploaded", tid);
        }
        a.sent = true;
        let sha = super::store::digest(&st.store.object_path(&a.key))
            .ok()
            .map(|(_, sha)| sha);
        let media_type = if a.file_type.starts_with("image/") {
            "Image"
        } else {
            "File"
        };
        content.push(json!({"contentType": "Attachment", "attachment": {
            "id": id, "url": st.store.presign_get(&a.key, Duration::from_secs(600)),
            "filename": a.file_name, "fileSize": a.size, "mediaType": media_type, "mime": a.file_type, "sha256": sha}}));
    }
    let id = uuid::Uuid::new_v4().to_string();
    st.messages.lock().expect("messages").push(json!({
        "route": "guest", "sessionToken": token, "id": id, "text": text, "attachmentIds": attachments,
    }));
    let body = json!({
        "id": id, "channel": {"time": super::now_rfc3339()}, "type": "Text", "text": text,
        "direction": "Inbound", "content": content, "originatingEntity": "Human",
    });
    frame("message", "StructuredMessage", 200, body, tid)
}

/// After a PUT lands: scan it and tell the session's sockets how the upload went.
pub(crate) fn object_stored(st: &State, key: &str, infected: bool) {
    let mut sessions = st.guest.lock().expect("sessions");
    for session in sessions.values_mut() {
        let Some((id, a)) = session.attachments.iter_mut().find(|(_, a)| a.key == key) else {
            continue;
        };
        a.uploaded = Some(!infected);
        let now = super::now_rfc3339();
        let event = if infected {
            frame(
                "message",
                "UploadFailureEvent",
                200,
                json!({"attachmentId": id, "errorCode": 4003, "errorMessage": "File content is invalid", "timestamp": now}),
                None,
            )
        } else {
            frame(
                "message",
                "UploadSuccessEvent",
                200,
                json!({"attachmentId": id, "downloadUrl": st.store.presign_get(key, Duration::from_secs(600)), "timestamp": now}),
                None,
            )
        };
        session.sockets.retain(|s| s.send(event.clone()).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_admit_what_the_messenger_admits() {
        let cases = [
            ("*/*", "application/zip", true),
            ("image/*", "image/png", true),
            ("IMAGE/PNG", "image/png", true),
            ("image", "image/gif", true),
            ("image/*", "application/pdf", false),
            ("image/png", "image/jpeg", false),
            ("application/pdf", "application", false),
        ];
        for (pattern, mime, admitted) in cases {
            assert_eq!(type_accepted(pattern, mime), admitted, "{pattern} ~ {mime}");
        }
    }
}
