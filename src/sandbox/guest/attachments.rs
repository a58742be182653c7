//! Attachments: onAttachment (a pre-signed PUT with a signed `x-amz-tagging`), getAttachment,
//! deleteAttachment, and the upload events sent once the object lands and is scanned.

use std::time::Duration;

use serde_json::{Value, json};

use super::super::respond::now_rfc3339;
use super::frame::{error, field, frame};
use super::rules;
use super::sessions::{Attachment, Call, Guest, Session};

/// Download links in answers and events live this long.
const LINK_TTL: Duration = Duration::from_secs(600);

/// What an onAttachment request announces.
struct Announced<'a> {
    id: &'a str,
    name: &'a str,
    file_type: &'a str,
    size: u64,
}

pub(crate) fn on_attachment(call: Call, session: &mut Session) -> String {
    let req = call.req;
    let a = Announced {
        id: field(req, "attachmentId").unwrap_or(""),
        name: field(req, "fileName").unwrap_or(""),
        file_type: field(req, "fileType").unwrap_or(""),
        size: req.get("fileSize").and_then(Value::as_u64).unwrap_or(0),
    };
    let refuse = |code: u16, msg: &str| {
        let body = json!({"attachmentId": a.id, "errorCode": code, "errorMessage": msg});
        // As in the transport SDK's fixtures: a `message` frame without tracingId.
        frame("message", "GenerateUrlError", 200, body, None)
    };
    if a.id.is_empty() || a.name.is_empty() || a.file_type.is_empty() {
        return refuse(4020, "Missing parameter");
    }
    let faults = call.guest.state.faults().clone();
    if let Some((code, msg)) = rules::refusal(&faults, a.name, a.file_type, a.size) {
        return refuse(code, msg);
    }
    issue(call, session, &a)
}

/// Signs the PUT and remembers the attachment as not yet uploaded.
fn issue(call: Call, session: &mut Session, a: &Announced) -> String {
    let Call {
        guest, token, tid, ..
    } = call;
    let Announced {
        id,
        name,
        file_type,
        size,
    } = *a;
    let key = format!("guest/{token}/{id}/{name}");
    let tagging = format!(
        "deploymentId={}&attachmentId={id}",
        guest.state.deployment_id
    );
    let signed = [("content-type", file_type), ("x-amz-tagging", &tagging)];
    let url = guest.store.issue_put_url(&guest.state, &key, size, &signed);
    let attachment = Attachment {
        key,
        file_name: name.into(),
        file_type: file_type.into(),
        size,
        uploaded: None,
        sent: false,
    };
    session.attachments.insert(id.to_string(), attachment);
    let body = json!({"attachmentId": id, "url": url, "headers": {"x-amz-tagging": tagging},
        "fileName": name, "fileSize": size, "fileType": file_type});
    frame("response", "PresignedUrlResponse", 200, body, tid)
}

/// A fresh download link for an uploaded attachment.
pub(crate) fn get(call: Call, session: &Session) -> String {
    let Call {
        guest, req, tid, ..
    } = call;
    let id = field(req, "attachmentId").unwrap_or("");
    match session.attachments.get(id) {
        Some(a) if a.uploaded == Some(true) => {
            let body = json!({"attachmentId": id, "url": guest.store.presign_get(&a.key, LINK_TTL), "headers": {},
                "fileName": a.file_name, "fileSize": a.size, "fileType": a.file_type});
            frame("response", "PresignedUrlResponse", 200, body, tid)
        }
        _ => error(4009, "Attachment not found", tid),
    }
}

/// Removes an attachment and its object, as long as no message carried it.
pub(crate) fn delete(call: Call, session: &mut Session) -> String {
    let Call {
        guest, req, tid, ..
    } = call;
    let id = field(req, "attachmentId").unwrap_or("");
    match session.attachments.get(id) {
        Some(a) if !a.sent => {
            let _ = std::fs::remove_file(guest.store.object_path(&a.key));
            session.attachments.remove(id);
            let body = json!({"attachmentId": id});
            frame("message", "AttachmentDeletedResponse", 200, body, tid)
        }
        _ => error(4009, "Attachment not found", tid),
    }
}

impl Guest {
    /// After a PUT lands: tell the owning session's sockets how the upload went.
    pub(crate) fn object_landed(&self, key: &str, infected: bool) {
        let mut sessions = self.sessions.lock().expect("sessions");
        for session in sessions.values_mut() {
            let Some((id, a)) = session.attachments.iter_mut().find(|(_, a)| a.key == key) else {
                continue;
            };
            a.uploaded = Some(!infected);
            let event = self.upload_event(id, key, infected);
            session.sockets.retain(|s| s.send(event.clone()).is_ok());
        }
    }

    fn upload_event(&self, id: &str, key: &str, infected: bool) -> String {
        let now = now_rfc3339();
        let (class, body) = if infected {
            let body = json!({"attachmentId": id, "errorCode": 4003, "errorMessage": "File content is invalid", "timestamp": now});
            ("UploadFailureEvent", body)
        } else {
            let url = self.store.presign_get(key, LINK_TTL);
            let body = json!({"attachmentId": id, "downloadUrl": url, "timestamp": now});
            ("UploadSuccessEvent", body)
        };
        frame("message", class, 200, body, None)
    }
}
