//! Route `conversation`: the Platform API's media upload into a message conversation, as the
//! organisation (OAuth client credentials): POST media/uploads → PUT → poll the media until
//! `valid` → send it as a message. Field names follow the official Platform SDKs.

mod sent;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::route::{self, Confirmation, Route, RouteName, UploadTarget, Uploaded};
use crate::api::Api;
use crate::config::Endpoints;
use crate::error::{Error, Remote, Result, Rule, Stage};
use crate::redact;
use crate::validate::ValidatedFile;
use sent::{Found, Part};

/// How long a resumed run waits for media of an earlier run to turn `valid`.
const RESUME_WAIT: Duration = Duration::from_secs(10);

/// The code of a media the platform marked `invalid`.
const MEDIA_INVALID: &str = "media.invalid";

/// Whether a media poll's refusal says the media is not there: 404 or 410 for this one media
/// resource, or any answer that says the object is absent.
fn gone(remote: &Remote) -> bool {
    matches!(remote.status, Some(404 | 410)) || remote.says_absent()
}

/// Whether the media poll found the media `invalid`.
fn invalid(remote: &Remote) -> bool {
    remote.code.as_deref() == Some(MEDIA_INVALID)
}

/// A message the conversation does not show is looked for once more after this long (the
/// platform may record it a moment after it answered) before it is sent again.
const SETTLE: Duration = Duration::from_secs(2);

/// Posts of one message at most, when each answer is lost and each check finds nothing.
const POSTS: usize = 3;

/// Characters the API refuses in `fileName`, besides whitespace.
const FORBIDDEN: &str = "\\{^}%`]\">[~<#|";

/// The Platform API model's cap on a message's `textBody` for every channel but SMS
/// (`AdditionalMessage.textBody`: "SMS - 765 characters, other channels - 2000 characters";
/// MyPureCloud/platform-client-sdk-python `docs/AdditionalMessage.md`, and the Java SDK's
/// `build/docs/AdditionalMessage.md`).
pub const TEXT_BODY_MAX: usize = 2000;

/// `--message` as the conversation route will send it: refused at start-up, before any upload,
/// when the platform would refuse it (after the media message went out). Characters are counted
/// as UTF-16 code units, as Java's `String.length()` (the platform) and JavaScript's `.length`
/// (the SDK) count them: an emoji counts 2, so a text this accepts is never too long there.
pub fn checked_message(text: Option<String>) -> Result<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    let count = text.encode_utf16().count();
    if count > TEXT_BODY_MAX {
        return Err(Error::config(format!(
            "--message is {count} characters long; the conversation API takes at most \
             {TEXT_BODY_MAX} (counted in UTF-16 units: characters outside the Basic \
             Multilingual Plane, such as emoji, count 2): shorten it"
        )));
    }
    Ok(Some(text))
}

/// The route's configuration: where the media goes and what is sent with it.
#[derive(Debug, Clone)]
pub struct Config {
    pub conversation_id: String,
    pub communication_id: String,
    /// `--name`: upload under this name.
    pub name: Option<String>,
    /// Send the media as a message (`--no-send` turns it off).
    pub send: bool,
    pub message: Option<String>,
}

impl Config {
    pub fn build(self, api: Arc<Api>, confirm_timeout: Duration) -> Conversation {
        Conversation {
            api,
            config: self,
            confirm_timeout,
            taken: Mutex::default(),
            sending: tokio::sync::RwLock::default(),
        }
    }

    pub fn plan(&self, e: &Endpoints) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("conversationId".into(), self.conversation_id.clone().into());
        m.insert(
            "communicationId".into(),
            self.communication_id.clone().into(),
        );
        route::rest_hosts(&mut m, e);
        m
    }
}

pub struct Conversation {
    api: Arc<Api>,
    config: Config,
    confirm_timeout: Duration,
    /// Messages this run knows are its sends': a check never takes one for another file's.
    taken: Mutex<HashSet<String>>,
    /// Held shared by each send in flight and exclusively by a check, so that a check never
    /// sees a send of this run posted but not yet in `taken`.
    sending: tokio::sync::RwLock<()>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadResponse {
    id: Option<String>,
    upload_url: Option<String>,
    #[serde(default)]
    upload_headers: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    id: Option<String>,
    status: Option<String>,
    url: Option<String>,
    media_type: Option<String>,
}

/// Checks a name against the API's rule for `fileName`.
pub fn check_file_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.starts_with('.') {
        return Err(format!("`{name}` starts with `.`"));
    }
    if name.ends_with('/') {
        return Err(format!("`{name}` ends with `/`"));
    }
    if let Some(c) = name.chars().find(|&c| crate::redact::is_bidi_control(c)) {
        return Err(format!(
            "`{name}` contains the bidirectional-control character U+{:04X}, which would show another name or extension than the file has",
            c as u32
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(*c))
    {
        return Err(format!(
            "`{name}` contains {:?}; the API refuses whitespace and any of {FORBIDDEN}",
            c
        ));
    }
    Ok(())
}

impl Conversation {
    /// `…/conversations/messages/{c}/communications/{c}/messages`, then `more`: every id (the
    /// media id is the server's) is one path segment.
    fn url(&self, stage: Stage, more: &[&str]) -> Result<url::Url> {
        let c = &self.config;
        let mut segments = vec![
            "api",
            "v2",
            "conversations",
            "messages",
            &c.conversation_id,
            "communications",
            &c.communication_id,
            "messages",
        ];
        segments.extend_from_slice(more);
        self.api
            .endpoints
            .api_segments(&segments)
            .map_err(|why| Error::protocol(stage, format!("refusing an id as a path: {why}")))
    }

    fn upload_name<'a>(&'a self, file: &'a ValidatedFile) -> &'a str {
        self.config.name.as_deref().unwrap_or(&file.file_name)
    }

    fn confirmation(&self, up: &Uploaded, media: Media) -> Confirmation {
        Confirmation {
            file_id: up.file_id.clone(),
            virus_scan_status: "passed".into(),
            extra: self.record_fields(media),
        }
    }

    /// Polls the media until the platform's checks mark it `valid` (or refuse it), with backoff,
    /// for at most `limit`; `Ok(Err(status))` when it is still not decided then.
    async fn wait_until_valid(
        &self,
        id: &str,
        limit: Duration,
    ) -> Result<std::result::Result<Media, String>> {
        let url = self.url(Stage::Confirm, &["media", id])?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let m: Media = self
                .api
                .call(Stage::Confirm, Method::GET, url.clone(), None)
                .await?;
            // An answer about other media says nothing about this one.
            if m.id.as_deref().is_some_and(|got| got != id) {
                return Err(Error::protocol(
                    Stage::Confirm,
                    format!(
                        "the media answer is for `{}`, not `{id}`",
                        m.id.unwrap_or_default()
                    ),
                ));
            }
            match m.status.as_deref() {
                Some("valid") => return Ok(Ok(m)),
                Some("invalid") => {
                    return Err(Error::Remote {
                        stage: Stage::Confirm,
                        remote: Remote {
                            status: None,
                            code: Some(MEDIA_INVALID.into()),
                            message: "the platform marked the media invalid (it failed its content checks)".into(),
                            correlation_id: None,
                        },
                    });
                }
                _ => {}
            }
            if started.elapsed() + delay > limit {
                return Ok(Err(m.status.unwrap_or_else(|| "unknown".into())));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// The record's route fields: where the media went and what the platform made of it.
    fn record_fields(&self, media: Media) -> serde_json::Map<String, Value> {
        let mut extra = serde_json::Map::new();
        extra.insert(
            "conversationId".into(),
            self.config.conversation_id.clone().into(),
        );
        extra.insert(
            "communicationId".into(),
            self.config.communication_id.clone().into(),
        );
        if let Some(n) = &self.config.name {
            extra.insert("uploadedAs".into(), n.clone().into());
        }
        if let Some(u) = media.url.as_deref().and_then(|u| url::Url::parse(u).ok()) {
            extra.insert("mediaUrl".into(), redact::public_url(&u).into());
        }
        if let Some(t) = media.media_type {
            extra.insert("mediaType".into(), t.into());
        }
        extra
    }

    /// Posts one message (one body field per request: the media, or the caption); its id.
    async fn post(&self, part: Part<'_>) -> Result<String> {
        let body = match part {
            Part::Media(id) => json!({ "mediaIds": [id] }),
            Part::Text { text, .. } => json!({ "textBody": text }),
        };
        let url = self.url(Stage::Send, &[])?;
        let _sending = self.sending.read().await;
        let r: Value = self
            .api
            .call(Stage::Send, Method::POST, url, Some(&body))
            .await?;
        let id = r
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::protocol(Stage::Send, "the sent message has no `id`"))?;
        self.taken.lock().expect("taken").insert(id.to_string());
        // A 200 is not a delivery: the answer's `MessageData.status` may say `failed`.
        let status = r.get("status").and_then(Value::as_str);
        if sent::failed_status(status) {
            return Err(Error::Remote {
                stage: Stage::Send,
                remote: Remote {
                    status: None,
                    code: Some("message.failed".into()),
                    message: format!(
                        "the platform answered the message `{}` (message id {id}): it was not sent",
                        status.unwrap_or("failed")
                    ),
                    correlation_id: None,
                },
            });
        }
        Ok(id.to_string())
    }

    /// Sends the media message, then the caption, and records their ids. `earlier`: an earlier
    /// run was stopped while sending them, so each is looked for before it is sent.
    async fn send_all(&self, conf: &mut Confirmation, earlier: bool) -> Result<()> {
        let mut checked = false;
        let media = Part::Media(&conf.file_id);
        let id = self.deliver(media, earlier, &mut checked).await?;
        conf.extra.insert("messageId".into(), id.into());
        if let Some(text) = &self.config.message {
            let caption = Part::Text {
                text,
                after: &conf.file_id,
            };
            let id = self.deliver(caption, earlier, &mut checked).await?;
            conf.extra.insert("textMessageId".into(), id.into());
        }
        if checked {
            conf.extra.insert("sendChecked".into(), true.into());
        }
        Ok(())
    }

    /// Sends one message; when its answer is lost (or `earlier` says it may have gone out), the
    /// conversation settles it: found, it is reported sent; not there, it is sent (again), up to
    /// [`POSTS`] posts. The message's id.
    async fn deliver(&self, part: Part<'_>, earlier: bool, checked: &mut bool) -> Result<String> {
        let mut lost = earlier.then(|| "an earlier run was stopped while sending it".to_string());
        let mut posts = 0;
        loop {
            if let Some(why) = lost.take() {
                *checked = true;
                if let Some(m) = self.look(part, &why).await? {
                    return Ok(m);
                }
                if posts == POSTS {
                    return Err(Error::MaybeSent {
                        why: format!("{why}; {posts} sends went unanswered"),
                    });
                }
            }
            posts += 1;
            match self.post(part).await {
                Err(Error::MaybeSent { why }) => lost = Some(why),
                other => return other,
            }
        }
    }

    /// Looks for `part` in the conversation, and once more after [`SETTLE`] if it is not there:
    /// `Some` when found (now one of this run's), `None` when absent. When the conversation
    /// cannot be read or several messages could be it: [`Error::MaybeSent`], saying why.
    async fn look(&self, part: Part<'_>, why: &str) -> Result<Option<String>> {
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(SETTLE).await;
            }
            let _no_send_in_flight = self.sending.write().await;
            let taken = self.taken.lock().expect("taken").clone();
            let conv = &self.config.conversation_id;
            let found = sent::find(&self.api, conv, part, &taken).await;
            match found {
                Ok(Found::One(id)) => {
                    tracing::info!(message_id = %id, "the conversation has the message whose send went unanswered ({why})");
                    self.taken.lock().expect("taken").insert(id.clone());
                    return Ok(Some(id));
                }
                Ok(Found::Nothing) => {}
                Ok(Found::Several(n)) => {
                    return Err(Error::MaybeSent {
                        why: format!("{why}, and {n} messages of the conversation could be it"),
                    });
                }
                Err(e) => {
                    return Err(Error::MaybeSent {
                        why: format!("{why}, and the conversation could not be checked ({e})"),
                    });
                }
            }
        }
        tracing::info!("the conversation does not have the message ({why}): sending it");
        Ok(None)
    }
}

#[async_trait]
impl Route for Conversation {
    fn name(&self) -> RouteName {
        RouteName::Conversation
    }

    async fn preflight(&self) -> Result<()> {
        self.api.tokens.bearer().await.map(drop)
    }

    async fn check(&self, file: &ValidatedFile, _online: bool) -> Result<()> {
        check_file_name(self.upload_name(file)).map_err(|why| {
            Error::invalid(
                Rule::FileName,
                format!("the conversation API refuses this file name: {why}"),
            )
        })
    }

    async fn request_upload(&self, file: &ValidatedFile) -> Result<UploadTarget> {
        let url = self.url(Stage::RequestUrl, &["media", "uploads"])?;
        let mut body = json!({
            "fileName": self.upload_name(file),
            "contentLengthBytes": file.size,
        });
        if let Some(md5) = &file.md5 {
            body["contentMd5"] = json!(md5);
        }
        let r: UploadResponse = self
            .api
            .call(Stage::RequestUrl, Method::POST, url, Some(&body))
            .await?;
        let (id, upload) = route::upload_url(r.id, r.upload_url, "uploadUrl")?;
        // Media no URL can poll is refused now, before its bytes are sent.
        self.url(Stage::RequestUrl, &["media", &id])?;
        Ok(UploadTarget {
            file_id: id,
            url: upload,
            headers: route::put_headers(Some(&r.upload_headers), file.content_type),
            confirm_url: None,
            issued_at: Instant::now(),
        })
    }

    fn target(&self) -> String {
        format!(
            "{}/{}",
            self.config.conversation_id, self.config.communication_id
        )
    }

    async fn confirm(&self, _file: &ValidatedFile, up: &Uploaded) -> Result<Confirmation> {
        match self
            .wait_until_valid(&up.file_id, self.confirm_timeout)
            .await?
        {
            Ok(media) => Ok(self.confirmation(up, media)),
            Err(status) => Err(Error::protocol(
                Stage::Confirm,
                format!(
                    "the media was still `{status}` after {} s (--confirm-timeout)",
                    self.confirm_timeout.as_secs()
                ),
            )),
        }
    }

    /// Media whose bytes landed turns `valid` within moments; one still `uploading` after
    /// [`RESUME_WAIT`] never got its bytes, and is uploaded again. Media whose PUT was answered
    /// gets the whole `--confirm-timeout`. Media the platform no longer knows (404, 410, or an
    /// answer that says so), or marks `invalid` although its PUT was never answered, did not
    /// land either: it is uploaded again on a fresh URL (a real content refusal comes back then).
    async fn resume(
        &self,
        _file: &ValidatedFile,
        up: &Uploaded,
        landed: bool,
    ) -> Result<Option<Confirmation>> {
        let limit = if landed {
            self.confirm_timeout
        } else {
            RESUME_WAIT
        };
        match self.wait_until_valid(&up.file_id, limit).await {
            Ok(media) => Ok(media.ok().map(|m| self.confirmation(up, m))),
            Err(Error::Remote { remote, .. }) if gone(&remote) || (!landed && invalid(&remote)) => {
                tracing::info!(file_id = %up.file_id, "the earlier upload did not land ({remote}); uploading again");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn sends(&self) -> bool {
        self.config.send
    }

    async fn send(&self, _file: &ValidatedFile, conf: &mut Confirmation) -> Result<()> {
        self.send_all(conf, false).await
    }

    async fn finish_send(&self, _file: &ValidatedFile, conf: &mut Confirmation) -> Result<bool> {
        self.send_all(conf, true).await.map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert!(check_file_name("report.pdf").is_ok());
        assert!(check_file_name("Q3-report_v2.pdf").is_ok());
        for bad in [
            ".hidden.pdf",
            "dir/",
            "my report.pdf",
            "a#b.pdf",
            "a%20.pdf",
            "x[1].png",
            "tab\t.txt",
            "report\u{202e}gnp.pdf",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_message_limit_counts_utf16_units() {
        let ok = |t: String| checked_message(Some(t)).is_ok();
        assert!(ok("a".repeat(TEXT_BODY_MAX)));
        assert!(!ok("a".repeat(TEXT_BODY_MAX + 1)));
        // 1000 emoji are 2000 units (ok); one more is 2002, although only 1001 code points.
        assert!(ok("\u{1F600}".repeat(1000)));
        assert!(!ok("\u{1F600}".repeat(1001)));
        // Accented letters in the BMP count 1 each, whatever their UTF-8 length.
        assert!(ok("é".repeat(TEXT_BODY_MAX)));
        assert!(checked_message(None).unwrap().is_none());
    }
}
