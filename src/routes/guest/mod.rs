//! Route `guest`: the Web Messaging Guest API, as Genesys Messenger uses it. The customer's
//! anonymous session (a token we make up, reusable to resume) uploads over a WebSocket:
//! configureSession → onAttachment → PUT → UploadSuccessEvent → onMessage → echoed message.
//! Field names follow the official transport SDK (genesys-messenger-transport-mobile-sdk).

mod config;
mod confirm;
mod deployment;
mod events;
mod frames;
mod history;
mod orphans;
mod pacing;
mod rules;
mod session;
mod socket;

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::route::{self, Confirmation, Route, RouteName, UploadTarget, Uploaded};
use crate::error::{Error, Result, Stage};
use crate::validate::ValidatedFile;
pub use config::{Config, MESSAGE_MAX_BYTES, checked_message, checked_origin};
pub use frames::Frame;
use orphans::Orphans;
use session::Link;
use socket::SocketError;

pub struct Guest {
    link: Link,
    confirm_timeout: Duration,
    /// Attachments of each file that no message carries yet.
    orphans: Orphans,
}

impl Guest {
    pub fn new(ctx: &route::Context, config: Config) -> Self {
        Guest {
            link: Link::new(ctx, config),
            confirm_timeout: ctx.confirm_timeout,
            orphans: Orphans::default(),
        }
    }

    /// The platform's verdict on attachment `id` of `file`: a refused attachment is the
    /// platform's to remove, not ours (the SDK drops it too, `AttachmentHandlerImpl.kt`, `onError`).
    fn verdict(&self, file: &ValidatedFile, id: &str, event: &Frame) -> Result<Confirmation> {
        if event.class == "UploadFailureEvent" {
            self.orphans.settle(&file.path, id);
            return Err(event.upload_failure());
        }
        Ok(self.link.confirmation(id, event))
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
        let target = upload_target(&answer, &attachment_id, file)?;
        self.orphans.track(&file.path, &attachment_id);
        Ok(target)
    }

    /// The deployment and the session: a run without `--session-token` opens a new session, so
    /// it never matches an earlier run's uploads.
    fn target(&self) -> String {
        let c = &self.link.config;
        format!("{}/{}", c.deployment_id, c.session_token)
    }

    async fn confirm(&self, file: &ValidatedFile, up: &Uploaded) -> Result<Confirmation> {
        let id = up.file_id.as_str();
        // A 2xx from the store only means the bytes arrived; the platform's verdict follows.
        let event = self.link.upload_event(id, self.confirm_timeout).await?;
        self.verdict(file, id, &event)
    }

    /// The upload event went to the earlier run's socket: getAttachment on the same session
    /// says whether the attachment was uploaded (or, after a PUT that landed, is being scanned).
    async fn resume(
        &self,
        file: &ValidatedFile,
        up: &Uploaded,
        landed: bool,
    ) -> Result<Option<Confirmation>> {
        let id = up.file_id.as_str();
        let event = self.link.uploaded(id, landed, self.confirm_timeout).await?;
        let Some(event) = event else { return Ok(None) };
        self.orphans.track(&file.path, id);
        self.verdict(file, id, &event).map(Some)
    }

    fn sends(&self) -> bool {
        true
    }

    async fn send(&self, file: &ValidatedFile, conf: &mut Confirmation) -> Result<()> {
        let id = conf.file_id.as_str();
        self.orphans.track(&file.path, id);
        let mut guard = self.link.session_for_message().await?;
        let caption = self.link.config.message.as_deref();
        let caption = caption.unwrap_or(&file.file_name);
        let sent = self
            .link
            .send_message(&mut guard, frames::on_message(caption, id), id)
            .await;
        self.link.message_answered();
        // Only a refusal says the message was not sent; after anything else it may carry the
        // attachment, which is then not ours to delete (nor, once sent, any earlier attempt's).
        match &sent {
            Ok(_) => self.orphans.forget(&file.path),
            Err(Error::Remote { .. }) => {}
            Err(_) => self.orphans.settle(&file.path, id),
        }
        let sent = sent?;
        if sent.checked {
            conf.extra.insert("sendChecked".into(), true.into());
        }
        sent.echo
            .require_class("StructuredMessage", "onMessage", Stage::Send)?;
        if let Some(m) = sent.echo.body_str("id") {
            conf.extra.insert("messageId".into(), m.into());
        }
        Ok(())
    }

    /// An earlier run stopped while sending: the session's history says whether its message
    /// went out (the run that resumes must use the same `--session-token`); if it did not, it is
    /// sent now.
    async fn finish_send(&self, file: &ValidatedFile, conf: &mut Confirmation) -> Result<bool> {
        let id = conf.file_id.clone();
        let found = {
            let mut guard = self.link.session().await?;
            self.link.find_sent(&mut guard, &id).await
        };
        match found {
            Ok(Some(message)) => {
                tracing::info!("the session's history has the message an earlier run sent");
                if let Some(m) = message.body_str("id") {
                    conf.extra.insert("messageId".into(), m.into());
                }
                self.orphans.settle(&file.path, &id);
            }
            Ok(None) => {
                tracing::info!(
                    "the session's history does not have the message an earlier run started: sending it"
                );
                self.send(file, conf).await?;
            }
            Err(why) => {
                return Err(Error::MaybeSent {
                    why: format!(
                        "an earlier run was stopped while sending it, and the session's history could not be read ({why})"
                    ),
                });
            }
        }
        conf.extra.insert("sendChecked".into(), true.into());
        Ok(true)
    }

    /// Deletes the attachments the failed file left that no message carries.
    async fn discard(&self, file: &ValidatedFile) -> serde_json::Map<String, serde_json::Value> {
        let mut extra = serde_json::Map::new();
        let ids = self.orphans.take(&file.path);
        if !ids.is_empty() {
            let done = self.link.delete_attachments(ids).await;
            extra.insert("orphans".into(), done.into());
        }
        extra
    }

    /// What the deployment accepts, as the open session reported it.
    async fn rules(&self) -> Option<String> {
        self.link.rules().await
    }

    async fn finish(&self) {
        self.link.close().await;
    }
}
