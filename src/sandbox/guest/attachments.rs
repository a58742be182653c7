//! Attachments: onAttachment (a pre-signed PUT with a signed `x-amz-tagging`), getAttachment,
//! deleteAttachment, and the upload events sent once the object lands and is scanned.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::super::respond::now_rfc3339;
use super::frame::{error, field, frame};
use super::rules;
use super::sessions::{Attachment, CLOSE, Call, Guest, SILENT, Session};

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

/// Remembers the attachment as not yet uploaded and answers with its signed PUT.
fn issue(call: Call, session: &mut Session, a: &Announced) -> String {
    let attachment = Attachment {
        key: format!("guest/{}/{}/{}", call.token, a.id, a.name),
        file_name: a.name.into(),
        file_type: a.file_type.into(),
        size: a.size,
        landed: false,
        uploaded: None,
        sent: false,
    };
    if session.scanning() {
        let overlaps = &call.guest.requested_during_scans;
        overlaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let answer = upload_answer(call.guest, a.id, &attachment, call.tid);
    session.attachments.insert(a.id.to_string(), attachment);
    answer
}

/// A PresignedUrlResponse to upload to: a PUT URL signed with the content type and an
/// `x-amz-tagging` header, which the answer's `headers` carry.
fn upload_answer(guest: &Guest, id: &str, a: &Attachment, tid: Option<&str>) -> String {
    let tagging = format!(
        "deploymentId={}&attachmentId={id}",
        guest.state.deployment_id
    );
    let signed = [
        ("content-type", a.file_type.as_str()),
        ("x-amz-tagging", &tagging),
    ];
    let url = guest
        .store
        .issue_put_url(&guest.state, &a.key, a.size, &signed);
    let body = json!({"attachmentId": id, "url": url, "headers": {"x-amz-tagging": tagging},
        "fileName": a.file_name, "fileSize": a.size, "fileType": a.file_type});
    frame("response", "PresignedUrlResponse", 200, body, tid)
}

/// getAttachment, answered with the two shapes the transport SDK tells apart
/// (`util/extensions/MessageExtension.kt`, `isRefreshUrl`): an uploaded attachment gets a fresh
/// download link (empty `headers`, with `fileSize`); one not uploaded yet gets a PUT URL to
/// upload to (signed `headers`), which says nothing of an upload.
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
        Some(a) if a.uploaded.is_none() && !a.sent => {
            let variant = guest.state.faults().guest_pending_get_attachment.clone();
            match variant.as_str() {
                "4010" => error(4010, "Attachment not successfully uploaded", tid),
                "4009" => error(4009, "Attachment not found", tid),
                "silent" => SILENT.to_string(),
                _ => upload_answer(guest, id, a, tid),
            }
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
    let variant = guest.state.faults().guest_unuploaded_delete.clone();
    match session.attachments.get(id) {
        Some(a) if a.uploaded.is_none() && variant != "deleted" => {
            session.attachments.remove(id);
            match variant.as_str() {
                "4010" => error(4010, "Attachment not successfully uploaded", tid),
                "silent" => SILENT.to_string(),
                _ => error(4009, "Attachment not found", tid),
            }
        }
        Some(a) if !a.sent => {
            let _ = std::fs::remove_file(guest.store.object_path(&a.key));
            session.attachments.remove(id);
            let body = json!({"attachmentId": id});
            frame("message", "AttachmentDeletedResponse", 200, body, tid)
        }
        _ => error(4009, "Attachment not found", tid),
    }
}

/// How long after an object lands `closeGuestOnUpload` closes the session's sockets: the client
/// waits for the upload event by then.
const CLOSE_AFTER_LANDING: Duration = Duration::from_millis(200);

impl Guest {
    /// After a PUT lands: the verdict (uploaded or refused, and its event to the session's
    /// sockets) after the scan delay. Faults close the sockets soon after the landing, or lose
    /// the event with them.
    pub(crate) fn object_landed(self: &Arc<Self>, key: &str, infected: bool) {
        self.mark_landed(key);
        if self.state.take(|f| &mut f.close_guest_on_upload) {
            let (guest, key) = (self.clone(), key.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(CLOSE_AFTER_LANDING).await;
                guest.close_sockets_of(&key);
            });
        }
        let lose = self.state.take(|f| &mut f.lose_guest_upload_events);
        let delay = self.state.faults().guest_scan_delay_ms;
        let (guest, key) = (self.clone(), key.to_string());
        let verdict = move || {
            if lose {
                guest.close_sockets_of(&key);
            }
            guest.announce(&key, infected, !lose);
        };
        if delay == 0 {
            return verdict();
        }
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            verdict();
        });
    }

    fn mark_landed(&self, key: &str) {
        let mut sessions = self.sessions.lock().expect("sessions");
        let attachments = sessions
            .values_mut()
            .flat_map(|s| s.attachments.values_mut());
        for a in attachments.filter(|a| a.key == key) {
            a.landed = true;
        }
    }

    /// Closes every socket of the session that owns the object `key`.
    fn close_sockets_of(&self, key: &str) {
        let mut sessions = self.sessions.lock().expect("sessions");
        for session in sessions.values_mut() {
            if session.attachments.values().any(|a| a.key == key) {
                for s in session.sockets.drain(..) {
                    let _ = s.send(CLOSE.to_string());
                }
            }
        }
    }

    /// Marks the attachment uploaded (or refused) and, if `send`, sends its event to the
    /// session's sockets.
    fn announce(&self, key: &str, infected: bool, send: bool) {
        let mut sessions = self.sessions.lock().expect("sessions");
        for session in sessions.values_mut() {
            let Some((id, a)) = session.attachments.iter_mut().find(|(_, a)| a.key == key) else {
                continue;
            };
            a.uploaded = Some(!infected);
            if send {
                let event = self.upload_event(id, key, infected);
                session.sockets.retain(|s| s.send(event.clone()).is_ok());
            }
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
