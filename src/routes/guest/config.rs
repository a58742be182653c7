//! The guest route's configuration: the deployment, and the session the files go into.

use serde_json::Value;

use crate::config::Endpoints;
use crate::error::{Error, Result};
use crate::redact;

/// The longest caption the guest API takes, in UTF-8 bytes: longer is refused with 4011
/// MessageTooLong (the code: transport SDK `core/ErrorCode.kt`). No official source publishes the
/// number; 4096 bytes is the published inbound limit the project's protocol reference quotes,
/// counted in bytes, the strictest reading (a caption that fits is never too long in characters).
pub const MESSAGE_MAX_BYTES: usize = 4096;

/// `--message` as the guest route will send it: refused at start-up, before any upload, when the
/// platform would refuse it after the file was uploaded.
pub fn checked_message(text: Option<String>) -> Result<Option<String>> {
    match text {
        Some(t) if t.len() > MESSAGE_MAX_BYTES => Err(Error::config(format!(
            "--message is {} bytes long (UTF-8); the guest API takes at most {MESSAGE_MAX_BYTES} \
             (4011 MessageTooLong): shorten it",
            t.len()
        ))),
        other => Ok(other),
    }
}

/// `--origin` as the guest route will send it: an origin and nothing else (`scheme://host[:port]`,
/// http or https). User info, a path or a query would be sent to the platform as given, and a
/// browser never sends them.
pub fn checked_origin(origin: Option<&str>) -> Result<Option<String>> {
    let Some(text) = origin else {
        return Ok(None);
    };
    let refuse = |why: &str| {
        Err(Error::config(format!(
            "--origin / GENESYS_ORIGIN must be an origin such as https://www.example.com \
             (scheme, host and port only): {why}"
        )))
    };
    let Ok(url) = url::Url::parse(text) else {
        return refuse("it is not a URL");
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return refuse("it needs http or https and a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("it carries user info");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return refuse("it has a path, query or fragment");
    }
    Ok(Some(url.origin().ascii_serialization()))
}

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

impl Config {
    /// What a dry run reports: the deployment, the session and the socket it would open.
    pub fn plan(&self, e: &Endpoints) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("deploymentId".into(), self.deployment_id.clone().into());
        m.insert("sessionToken".into(), self.session_token.to_string().into());
        m.insert("socketUrl".into(), redact::url(&e.socket).into());
        m
    }
}
