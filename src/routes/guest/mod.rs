//! Route `guest`: the Web Messaging Guest API, as Genesys Messenger uses it. The customer's
//! anonymous session (a token we make up, reusable to resume) uploads over a WebSocket:
//! configureSession → onAttachment → PUT → UploadSuccessEvent → onMessage → echoed message.
//! Field names follow the official transport SDK (genesys-messenger-transport-mobile-sdk).

mod config;
mod confirm;
mod frames;
mod rules;
mod session;
mod socket;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use url::Url;

use super::route::{self, Confirmation, Route, RouteName, UploadTarget, Uploaded};
use crate::error::{Result, Stage};
use crate::validate::ValidatedFile;
pub use config::Config;
pub use frames::Frame;
use session::Link;
use socket::SocketError;

pub struct Guest {
    link: Link,
    confirm_timeout: Duration,
}

impl Guest {
    pub fn new(
        socket_url: Url,
        config: Config,
        confirm_timeout: Duration,
        retry: crate::retry::Policy,
    ) -> Self {
        Guest {
            link: Link::new(socket_url, config, retry),
            confirm_timeout,
        }
    }
}

/// Where to PUT, from a `PresignedUrlResponse` to the onAttachment for `attachment_id`.
fn upload_target(
    answer: &Frame,
    attachment_id: &str,
    file: &ValidatedFile,
) -> Result<UploadTarget> {
    // Ids go in JSON frames, never in paths; but a URL for another attachment would have us
    // wait for (and report) someone else's upload.
    let id = answer.body_str("attachmentId").unwrap_or(attachment_id);
    if id != attachment_id {
        return Err(crate::error::Error::protocol(
            Stage::RequestUrl,
            format!("the upload URL is for attachment `{id}`, not `{attachment_id}`"),
        ));
    }
    let (id, url) = route::upload_url(
        Some(id.to_string()),
        answer.body_str("url").map(str::to_string),
        "url",
    )?;
    let headers = route::put_headers(answer.body["headers"].as_object(), file.content_type);
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
    fn name(&self) -> RouteName {
        RouteName::Guest
    }

    async fn preflight(&self) -> Result<()> {
        self.link.session().await.map(drop)
    }

    async fn check(&self, file: &ValidatedFile, online: bool) -> Result<()> {
        if !online {
            return Ok(());
        }
        let guard = self.link.session().await?;
        guard.as_ref().expect("connected").rules.check(file)
    }

    async fn request_upload(&self, file: &ValidatedFile) -> Result<UploadTarget> {
        let mut guard = self.link.session().await?;
        let attachment_id = uuid::Uuid::new_v4().to_string();
        let request = frames::on_attachment(&attachment_id, file);
        let answer = match self
            .link
            .ask(&mut guard, request.clone(), Stage::RequestUrl)
            .await
        {
            // Asking again is harmless: an attachment that gets no PUT is never sent.
            Err(SocketError::Unsent(_) | SocketError::Closed(_)) => {
                self.link
                    .resend(&mut guard, request, Stage::RequestUrl)
                    .await?
            }
            other => other?,
        };
        answer.require_class("PresignedUrlResponse", "onAttachment", Stage::RequestUrl)?;
        upload_target(&answer, &attachment_id, file)
    }

    /// The deployment and the session: a run without `--session-token` opens a new session, so
    /// it never matches an earlier run's uploads.
    fn target(&self) -> String {
        let c = &self.link.config;
        format!("{}/{}", c.deployment_id, c.session_token)
    }

    async fn confirm(&self, _file: &ValidatedFile, up: &Uploaded) -> Result<Confirmation> {
        let mut guard = self.link.session().await?;
        let id = up.file_id.as_str();
        // A 2xx from the store only means the bytes arrived; the platform's verdict follows.
        let event = self
            .link
            .upload_event(&mut guard, id, self.confirm_timeout)
            .await?;
        if event.class == "UploadFailureEvent" {
            return Err(event.upload_failure());
        }
        Ok(self.link.confirmation(id, &event))
    }

    /// The upload event went to the earlier run's socket: getAttachment on the same session
    /// says whether the attachment was uploaded.
    async fn resume(
        &self,
        _file: &ValidatedFile,
        up: &Uploaded,
        _landed: bool,
    ) -> Result<Option<Confirmation>> {
        let mut guard = self.link.session().await?;
        let id = up.file_id.as_str();
        Ok(self
            .link
            .uploaded(&mut guard, id)
            .await?
            .map(|event| self.link.confirmation(id, &event)))
    }

    fn sends(&self) -> bool {
        true
    }

    async fn send(&self, file: &ValidatedFile, conf: &mut Confirmation) -> Result<()> {
        let mut guard = self.link.session().await?;
        let caption = self.link.config.message.as_deref();
        let caption = caption.unwrap_or(&file.file_name);
        let echo = self
            .link
            .send_message(&mut guard, frames::on_message(caption, &conf.file_id))
            .await?;
        echo.require_class("StructuredMessage", "onMessage", Stage::Send)?;
        if let Some(m) = echo.body_str("id") {
            conf.extra.insert("messageId".into(), m.into());
        }
        Ok(())
    }

    /// What the deployment accepts, as the open session reported it.
    async fn rules(&self) -> Option<String> {
        self.link.rules().await
    }

    async fn finish(&self) {
        self.link.close().await;
    }
}
