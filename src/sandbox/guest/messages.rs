//! onMessage (one attachment per message, echoed back as a StructuredMessage) and echo.

use std::time::Duration;

use serde_json::{Value, json};

use super::super::respond::now_rfc3339;
use super::super::store::digest;
use super::frame::{error, frame};
use super::sessions::{Call, Guest, Session};

/// Inbound text limit, in UTF-8 bytes, refused with 4011 MessageTooLong (the code: transport SDK
/// `core/ErrorCode.kt`; the number: the protocol reference's published limits, not in any
/// official source).
const MAX_TEXT_BYTES: usize = 4096;

pub(crate) fn on_message(call: Call, session: &mut Session) -> String {
    let (guest, tid) = (call.guest, call.tid);
    let msg = &call.req["message"];
    let text = msg["text"].as_str().unwrap_or("");
    if text.len() > MAX_TEXT_BYTES {
        return error(4011, "Message too long", tid);
    }
    if let Some(rule) = guest.state.injected("send") {
        return error(rule.status, "Unexpected error", tid);
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
    let content = match send_attachments(guest, session, &attachments) {
        Ok(c) => c,
        Err((code, text)) => return error(code, text, tid),
    };
    let id = uuid::Uuid::new_v4().to_string();
    guest.state.messages.lock().expect("messages").push(json!({
        "route": "guest", "sessionToken": call.token, "id": id, "text": text, "attachmentIds": attachments,
    }));
    let body = json!({
        "id": id, "channel": {"time": now_rfc3339()}, "type": "Text", "text": text,
        "direction": "Inbound", "content": content, "originatingEntity": "Human",
    });
    frame("message", "StructuredMessage", 200, body, tid)
}

/// Marks each attachment sent and describes it as the echoed message's content; only
/// uploaded, clean attachments can be sent.
fn send_attachments(
    guest: &Guest,
    session: &mut Session,
    ids: &[&str],
) -> Result<Vec<Value>, (u16, &'static str)> {
    let mut content = Vec::new();
    for id in ids {
        let Some(a) = session.attachments.get_mut(*id) else {
            return Err((4009, "Attachment not found"));
        };
        if a.uploaded != Some(true) {
            return Err((4010, "Attachment has not been successfully uploaded"));
        }
        a.sent = true;
        let path = guest.store.object_path(&a.key);
        let sha = digest(&path).ok().map(|(_, sha)| sha);
        let media_type = if a.file_type.starts_with("image/") {
            "Image"
        } else {
            "File"
        };
        let url = guest.store.presign_get(&a.key, Duration::from_secs(600));
        content.push(json!({"contentType": "Attachment", "attachment": {
            "id": id, "url": url, "filename": a.file_name, "fileSize": a.size,
            "mediaType": media_type, "mime": a.file_type, "sha256": sha}}));
    }
    Ok(content)
}

/// The health check: the text comes back as an inbound StructuredMessage.
pub(crate) fn echo(call: Call) -> String {
    let text = call.req["message"]["text"].as_str().unwrap_or("");
    let body = json!({"id": uuid::Uuid::new_v4().to_string(), "type": "Text", "text": text, "direction": "Inbound"});
    frame("response", "StructuredMessage", 200, body, call.tid)
}
