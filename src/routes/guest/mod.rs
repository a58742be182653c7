//! Route `guest`: the Web Messaging Guest API, as Genesys Messenger uses it. The customer's
//! anonymous session (a token we make up, reusable to resume) uploads over a WebSocket:
//! configureSession → onAttachment → PUT → UploadSuccessEvent → onMessage → echoed message.
//! Field names follow the official transport SDK (genesys-messenger-transport-mobile-sdk).

mod confirm;
mod frames;
mod rules;
mod session;
mod socket;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;
use url::Url;

use super::{Confirmation, Route, UploadTarget};
use crate::error::{Result, Stage};
use crate::validate::ValidatedFile;
pub use frames::Frame;
pub use rules::type_allowed;
use session::Session;
use socket::SocketError;

/// Who the guest is, on which deployment, and what it says with each file.
#[derive(Debug, Clone)]
pub struct Config {
    pub deployment_id: String,
    /// The Origin header; the socket's own host when absent.
    pub origin: Option<String>,
    /// Made up by us; the same token resumes the same session.
    pub session_token: uuid::Uuid,
    /// The caption sent with each file; its name when absent.
    pub message: Option<String>,
}

pub struct Guest {
    pub socket_url: Url,
    pub config: Config,
    pub confirm_timeout: Duration,
    retry: crate::retry::Policy,
    slot: Mutex<Option<Session>>,
    /// Whether this run's first connection created the session (reconnects find it existing).
    created: OnceLock<bool>,
}

impl Guest {
    pub fn new(
        socket_url: Url,
        config: Config,
        confirm_timeout: Duration,
        retry: crate::retry::Policy,
    ) -> Self {
        Guest {
            socket_url,
            config,
            confirm_timeout,
            retry,
            slot: Mutex::new(None),
            created: OnceLock::new(),
        }
    }

    /// What the deployment accepts, as the open session reported it (for `doctor`).
    pub async fn rules(&self) -> Option<String> {
        Some(self.slot.lock().await.as_ref()?.rules.describe())
    }
}

/// Where to PUT, from a `PresignedUrlResponse` to the onAttachment for `attachment_id`.
fn upload_target(
    answer: &Frame,
    attachment_id: &str,
    file: &ValidatedFile,
) -> Result<UploadTarget> {
    let id = answer
        .body_str("attachmentId")
        .unwrap_or(attachment_id)
        .to_string();
    let (id, url) = super::upload_url(Some(id), answer.body_str("url").map(str::to_string), "url")?;
    let headers = super::put_headers(answer.body["headers"].as_object(), file.content_type);
    Ok(UploadTarget {
        file_id: id,
        url,
        headers,
        confirm_url: None,
        issued_at: Instant::now(),
    })
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
        let request = frames::on_attachment(&attachment_id, file);
        let answer = match self
            .ask(&mut guard, request.clone(), Stage::RequestUrl)
            .await
        {
            // Asking again is harmless: an attachment that gets no PUT is never sent.
            Err(SocketError::Unsent(_) | SocketError::Closed(_)) => {
                self.resend(&mut guard, request, Stage::RequestUrl).await?
            }
            other => other?,
        };
        answer.require_class("PresignedUrlResponse", "onAttachment", Stage::RequestUrl)?;
        upload_target(&answer, &attachment_id, file)
    }

    async fn confirm(&self, file: &ValidatedFile, target: &UploadTarget) -> Result<Confirmation> {
        let mut guard = self.session().await?;
        let id = target.file_id.as_str();
        // A 2xx from the store only means the bytes arrived; the platform's verdict follows.
        let event = self.upload_event(&mut guard, id).await?;
        if event.class == "UploadFailureEvent" {
            return Err(event.upload_failure());
        }
        let caption = self.config.message.as_deref().unwrap_or(&file.file_name);
        let echo = self
            .send_message(&mut guard, frames::on_message(caption, id))
            .await?;
        echo.require_class("StructuredMessage", "onMessage", Stage::Send)?;
        Ok(Confirmation {
            file_id: id.to_string(),
            virus_scan_status: "passed".into(),
            extra: self.record_fields(&echo, &event),
        })
    }

    async fn finish(&self) {
        if let Some(session) = self.slot.lock().await.take() {
            session.conn.close().await;
        }
    }
}
