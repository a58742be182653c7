//! After the PUT: the platform's verdict on the upload, then the message that sends the file.

use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use super::frames::{self, Frame};
use super::session::{Link, Session, live};
use super::socket::{SocketError, not_echoed};
use crate::error::{Result, Stage};
use crate::redact;
use crate::routes::route::Confirmation;

/// A sent message: its echo (or its entry in the session's history), and whether the history
/// was looked at because the echo was lost.
pub(super) struct Sent {
    pub(super) echo: Frame,
    pub(super) checked: bool,
}

/// How long an answer the platform does not document (getAttachment of an upload not finished,
/// deleteAttachment of one never uploaded) is waited for: it may never come.
pub(super) const UNDOCUMENTED_WAIT: Duration = Duration::from_secs(10);

/// How many socket drops one wait for an upload event rides out (several files in flight see
/// the same drop; each may see another's reconnect as one).
const SOCKET_DROPS: u32 = 3;

/// What getAttachment says of an attachment.
enum Known {
    /// Uploaded: its success event, rebuilt from the refreshed link.
    Uploaded(Frame),
    /// Issued, not uploaded yet (or its scan is under way).
    Pending,
    /// Not known to the session, or an answer that says nothing.
    Unknown,
}

impl Link {
    /// The `UploadSuccessEvent` or `UploadFailureEvent` for attachment `id`. The event may have
    /// gone to a socket that dropped: getAttachment on the reopened one says whether it was
    /// stored instead of uploading it again; otherwise the event may still come there. A socket
    /// that keeps dropping is given up on after [`SOCKET_DROPS`].
    pub(super) async fn upload_event(&self, id: &str, timeout: Duration) -> Result<Frame> {
        let mut drops = 0;
        loop {
            match self.await_upload_event(id, timeout).await {
                Err(SocketError::Closed(_)) if drops < SOCKET_DROPS => {
                    drops += 1;
                    if let Known::Uploaded(event) = self.known(id).await? {
                        return Ok(event);
                    }
                }
                other => return Ok(other?),
            }
        }
    }

    /// [`Link::ask_attachment`] on the session, reopened if its socket dropped.
    async fn known(&self, id: &str) -> Result<Known> {
        let mut slot = self.session().await?;
        self.ask_attachment(&mut slot, id).await
    }

    /// What getAttachment says of attachment `id`. The SDK uses it only to refresh the link of
    /// an uploaded attachment (`MessagingClientImpl.kt`, `refreshAttachmentUrl`); only that
    /// shape of answer means uploaded. Its answer for one not uploaded yet is undocumented (a
    /// URL to upload to, 4010, 4009, or none at all): each says nothing, within
    /// [`UNDOCUMENTED_WAIT`].
    async fn ask_attachment(&self, slot: &mut Option<Session>, id: &str) -> Result<Known> {
        let ask = frames::get_attachment(id);
        match self
            .ask_within(slot, ask, Stage::Confirm, UNDOCUMENTED_WAIT)
            .await
        {
            Ok(f) if f.is_refreshed_attachment() => {
                Ok(Known::Uploaded(Frame::upload_success(id, &f.body["url"])))
            }
            Ok(f) if f.class == "PresignedUrlResponse" => Ok(Known::Pending),
            Ok(_) | Err(SocketError::Other(_)) => Ok(Known::Unknown),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends `message` (an onMessage carrying attachment `id`) and returns its echo. Resent
    /// only when it was never written, or when the session's history shows that it did not go
    /// out: one written but not echoed may have posted the file already.
    pub(super) async fn send_message(
        &self,
        slot: &mut Option<Session>,
        message: Value,
        id: &str,
    ) -> Result<Sent> {
        if live(slot).is_closed() {
            self.reconnect(slot).await?;
        }
        let echo = match self.ask(slot, message.clone(), Stage::Send).await {
            Err(SocketError::Unsent(_)) => self.resend(slot, message, Stage::Send).await?,
            Err(SocketError::Closed(_)) => return self.after_lost_echo(slot, message, id).await,
            other => other?,
        };
        Ok(Sent {
            echo,
            checked: false,
        })
    }

    /// The socket closed after the message was written: the history says whether it went out;
    /// if it did not, it is sent once more. "May have been sent" only when no look is possible.
    async fn after_lost_echo(
        &self,
        slot: &mut Option<Session>,
        message: Value,
        id: &str,
    ) -> Result<Sent> {
        tracing::info!(
            "the message was written but not echoed; looking for it in the session's history"
        );
        if let Err(e) = self.reconnect(slot).await {
            let why = format!("the session's history cannot be read without a socket ({e})");
            return Err(not_echoed(&why));
        }
        match self.find_sent(slot, id).await {
            Ok(Some(echo)) => Ok(Sent {
                echo,
                checked: true,
            }),
            Ok(None) => {
                tracing::info!("the message is not in the session's history; sending it again");
                match self.ask(slot, message, Stage::Send).await {
                    Ok(echo) => Ok(Sent {
                        echo,
                        checked: true,
                    }),
                    Err(SocketError::Closed(_)) => Err(not_echoed(
                        "neither was the copy sent after the history did not show the first",
                    )),
                    Err(e) => Err(e.into()),
                }
            }
            Err(why) => Err(not_echoed(&format!(
                "the session's history could not be read ({why})"
            ))),
        }
    }

    /// For an attachment an earlier run left part-way: its upload event, if getAttachment shows
    /// it uploaded, or if the earlier run's PUT `landed` and the attachment is still waiting for
    /// its verdict (the scan is under way). `None`: upload it again.
    pub(super) async fn uploaded(
        &self,
        id: &str,
        landed: bool,
        timeout: Duration,
    ) -> Result<Option<Frame>> {
        match self.known(id).await? {
            Known::Uploaded(event) => Ok(Some(event)),
            Known::Pending if landed => Ok(Some(self.await_upload_event(id, timeout).await?)),
            Known::Pending | Known::Unknown => Ok(None),
        }
    }

    /// The confirmation of attachment `id` from its success event, with the record's fields.
    pub(super) fn confirmation(&self, id: &str, event: &Frame) -> Confirmation {
        let mut extra = Map::new();
        extra.insert(
            "sessionToken".into(),
            self.config.session_token.to_string().into(),
        );
        extra.insert(
            "deploymentId".into(),
            self.config.deployment_id.clone().into(),
        );
        extra.insert("newSession".into(), self.created().into());
        if let Some(u) = event
            .body_str("downloadUrl")
            .and_then(|u| Url::parse(u).ok())
        {
            extra.insert("downloadUrl".into(), redact::public_url(&u).into());
        }
        Confirmation {
            file_id: id.to_string(),
            virus_scan_status: "passed".into(),
            extra,
        }
    }
}
