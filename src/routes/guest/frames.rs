//! What travels on the guest socket: the server's frames, what their errors mean, and the
//! requests we send (without `token` and `tracingId`, which every send adds).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Remote, Stage};
use crate::validate::ValidatedFile;

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

    /// What a `getAttachment` answer tells after a dropped socket: the upload succeeded.
    pub(super) fn upload_success(attachment_id: &str, download_url: &Value) -> Frame {
        Frame {
            kind: "message".into(),
            class: "UploadSuccessEvent".into(),
            code: 200,
            body: json!({"attachmentId": attachment_id, "downloadUrl": download_url}),
            tracing_id: None,
        }
    }

    /// A `PresignedUrlResponse` that refreshes the link of an uploaded attachment: empty
    /// `headers` and a `fileSize` (transport SDK `util/extensions/MessageExtension.kt`,
    /// `isRefreshUrl`). Any other is a URL to upload to, which says nothing of an upload.
    pub(super) fn is_refreshed_attachment(&self) -> bool {
        self.class == "PresignedUrlResponse"
            && self.body["headers"]
                .as_object()
                .is_some_and(|h| h.is_empty())
            && self.body["fileSize"].is_u64()
    }

    /// A message the session's history shows, as if it were the echo of its send.
    pub(super) fn sent_message(body: Value) -> Frame {
        Frame {
            kind: "message".into(),
            class: "StructuredMessage".into(),
            code: 200,
            body,
            tracing_id: None,
        }
    }

    pub(super) fn body_str(&self, k: &str) -> Option<&str> {
        self.body.get(k).and_then(Value::as_str)
    }

    pub(super) fn body_flag(&self, k: &str) -> Option<bool> {
        self.body.get(k).and_then(Value::as_bool)
    }

    /// The platform's verdict on the upload of `attachment_id`, success or failure.
    pub(super) fn is_upload_event(&self, attachment_id: &str) -> bool {
        matches!(
            self.class.as_str(),
            "UploadSuccessEvent" | "UploadFailureEvent"
        ) && self.body_str("attachmentId") == Some(attachment_id)
    }

    /// The platform's error code (4xxx) if this frame reports an error.
    pub(super) fn error_code(&self) -> Option<i64> {
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

    pub(super) fn error_message(&self) -> String {
        self.body_str("errorMessage")
            .map(str::to_string)
            .or_else(|| self.body.as_str().map(str::to_string))
            .unwrap_or_else(|| self.class.clone())
    }

    pub(super) fn to_error(&self, stage: Stage) -> Error {
        let code = self.error_code().unwrap_or(self.code);
        let remote = Remote {
            // The envelope code is HTTP-like (400, 429); the 4xxx codes are the platform's own.
            status: (100..600).contains(&self.code).then_some(self.code as u16),
            code: Some(code.to_string()),
            // `string` is the envelope of a bare text error: no class worth naming.
            message: if self.class == "string" {
                self.error_message()
            } else {
                format!("{} ({})", self.error_message(), self.class)
            },
            correlation_id: self.tracing_id.clone(),
        };
        Error::Remote { stage, remote }
    }

    /// An `UploadFailureEvent` as the error it means: 4003 is the platform's virus verdict.
    pub(super) fn upload_failure(&self) -> Error {
        match self.error_code() {
            Some(4003) => Error::Infected {
                status: format!("invalid content (4003: {})", self.error_message()),
            },
            _ => self.to_error(Stage::Confirm),
        }
    }

    /// An error unless this answer is of `class` (`what` names the request in the message).
    pub(super) fn require_class(
        &self,
        class: &str,
        what: &str,
        stage: Stage,
    ) -> crate::error::Result<()> {
        if self.class == class {
            return Ok(());
        }
        Err(Error::protocol(
            stage,
            format!("{what} was answered with {}", self.class),
        ))
    }
}

pub(super) fn configure_session(deployment_id: &str, start_new: bool) -> Value {
    json!({"action": "configureSession", "deploymentId": deployment_id, "startNew": start_new})
}

/// Ends the session's connections so that it can start a new conversation. The transport SDK
/// always sends `closeAllConnections: true` and waits for a `SessionResponse` with
/// `connected: false` (MyPureCloud/genesys-messenger-transport-mobile-sdk, `MessagingClientImpl.kt`,
/// `closeAllConnectionsForTheSession` and `handleSessionResponse`).
pub(super) fn close_session() -> Value {
    json!({"action": "closeSession", "closeAllConnections": true})
}

/// The answer a `closeSession` waits for: the session's connections are closed.
pub(super) fn is_disconnected(f: &Frame) -> bool {
    f.class == "SessionResponse" && f.body_flag("connected") == Some(false)
}

pub(super) fn on_attachment(attachment_id: &str, file: &ValidatedFile) -> Value {
    json!({
        "action": "onAttachment",
        "attachmentId": attachment_id,
        "fileName": file.file_name,
        "fileType": file.content_type,
        "fileSize": file.size,
        "errorsAsJson": true,
    })
}

pub(super) fn get_attachment(attachment_id: &str) -> Value {
    json!({"action": "getAttachment", "attachmentId": attachment_id})
}

pub(super) fn delete_attachment(attachment_id: &str) -> Value {
    json!({"action": "deleteAttachment", "attachmentId": attachment_id})
}

pub(super) fn on_message(caption: &str, attachment_id: &str) -> Value {
    json!({
        "action": "onMessage",
        "message": {
            "type": "Text",
            "text": caption,
            "content": [{"contentType": "Attachment", "attachment": {"id": attachment_id}}],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
