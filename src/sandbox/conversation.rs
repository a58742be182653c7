//! Route `conversation` (protocol reference §3): media uploads with signed upload headers, a
//! media status that moves `uploading` → `valid`/`invalid` after the object lands and is
//! scanned, and messages.

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::oauth::unauthorized;
use super::respond::{
    bad_request, drop_connection, injected, not_found, now_rfc3339, platform_error, too_large,
};
use super::state::State;
use super::store::Store;

/// `AdditionalMessage.textBody`: "other channels - 2000 characters" (Platform API model, as
/// documented by the official SDKs). Counted as the platform's Java counts: UTF-16 units.
const TEXT_BODY_MAX: usize = 2000;

const BASE: &str = "/api/v2/conversations/messages/{conv}/communications/{comm}/messages";

pub(crate) struct Conversation {
    state: Arc<State>,
    store: Arc<Store>,
    /// Media by id.
    media: Mutex<HashMap<String, Media>>,
}

#[derive(Debug, Clone)]
struct Media {
    conversation: String,
    name: String,
    size: u64,
    key: String,
    /// `uploading`, `valid` or `invalid`.
    status: &'static str,
}

pub(crate) fn router(route: Arc<Conversation>) -> axum::Router {
    axum::Router::new()
        .route(&format!("{BASE}/media/uploads"), post(create_upload))
        .route(&format!("{BASE}/media/{{id}}"), get(get_media))
        .route(BASE, post(send_message))
        .with_state(route)
}

impl Conversation {
    pub(crate) fn new(state: Arc<State>, store: Arc<Store>) -> Arc<Self> {
        Arc::new(Conversation {
            state,
            store,
            media: Mutex::default(),
        })
    }

    /// Each media id with its status.
    pub(crate) fn statuses(&self) -> Vec<(String, String)> {
        self.media
            .lock()
            .expect("media")
            .iter()
            .map(|(id, m)| (id.clone(), m.status.to_string()))
            .collect()
    }

    /// After a PUT lands: the media becomes `valid` or `invalid` a moment later, as on the
    /// platform.
    pub(crate) fn object_landed(self: &Arc<Self>, key: &str, infected: bool) {
        let id = self
            .media
            .lock()
            .expect("media")
            .iter()
            .find(|(_, m)| m.key == key)
            .map(|(id, _)| id.clone());
        let Some(id) = id else { return };
        let delay = Duration::from_millis(self.state.faults().media_delay_ms);
        let route = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(m) = route.media.lock().expect("media").get_mut(&id) {
                m.status = if infected { "invalid" } else { "valid" };
            }
        });
    }

    /// What every conversation endpoint checks first: the token, the ids, an injected fault.
    fn refuse(
        &self,
        headers: &HeaderMap,
        conv: &str,
        comm: &str,
        endpoint: &str,
    ) -> Option<Response> {
        let st = &self.state;
        unauthorized(st, headers)
            .or_else(|| {
                (conv != st.conversation_id || comm != st.communication_id)
                    .then(|| not_found("The conversation or communication was not found."))
            })
            .or_else(|| injected(st, endpoint))
    }

    fn media(&self, id: &str) -> Option<Media> {
        self.media.lock().expect("media").get(id).cloned()
    }
}

/// Protocol reference §3: `fileName` must not start with `.` or end with `/`, and must hold no
/// whitespace and none of the characters the platform reserves. Control characters are refused
/// too, which the reference does not list.
fn acceptable_name(name: &str) -> bool {
    let reserved = |c: char| {
        matches!(
            c,
            '\\' | '{' | '^' | '}' | '%' | '`' | ']' | '"' | '>' | '[' | '~' | '<' | '#' | '|'
        )
    };
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('/')
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || reserved(c))
}

/// The Platform API's `mediaType` (an internet media type), from the name's extension.
fn media_type(name: &str) -> &'static str {
    let ext = FsPath::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

fn self_uri(conv: &str, comm: &str, id: &str) -> String {
    format!("/api/v2/conversations/messages/{conv}/communications/{comm}/messages/media/{id}")
}

async fn create_upload(
    AxState(route): AxState<Arc<Conversation>>,
    Path((conv, comm)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(r) = route.refuse(&headers, &conv, &comm, "request-url") {
        return r;
    }
    let body = body.map(|b| b.0).unwrap_or_default();
    let name = body["fileName"].as_str().unwrap_or("");
    let Some(size) = body["contentLengthBytes"].as_u64() else {
        return bad_request("contentLengthBytes is required.");
    };
    if !acceptable_name(name) {
        return bad_request("fileName is invalid.");
    }
    if let Some(r) = too_large(&route.state, size) {
        return r;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let md5 = body["contentMd5"].as_str();
    let (url, upload_headers) = route.issue(&conv, &id, name, size, md5);
    route.state.pause("request-url").await;
    Json(json!({
        "id": id, "name": name, "uploadUrl": url, "uploadHeaders": upload_headers,
        "selfUri": self_uri(&conv, &comm, &id),
    }))
    .into_response()
}

impl Conversation {
    /// Signs the PUT (the tagging always, Content-MD5 when announced) and records the media as
    /// `uploading`. Returns the URL and the headers the client must send with it.
    fn issue(
        &self,
        conv: &str,
        id: &str,
        name: &str,
        size: u64,
        md5: Option<&str>,
    ) -> (url::Url, Map<String, Value>) {
        let key = format!("conversation/{conv}/{id}/{name}");
        let tagging = format!("conversationId={conv}&mediaId={id}");
        let mut signed: Vec<(&str, &str)> = vec![("x-amz-tagging", &tagging)];
        let mut upload_headers = Map::new();
        upload_headers.insert("x-amz-tagging".into(), tagging.clone().into());
        if let Some(m) = md5 {
            signed.push(("content-md5", m));
            upload_headers.insert("Content-MD5".into(), m.into());
        }
        let url = self.store.issue_put_url(&self.state, &key, size, &signed);
        let media = Media {
            conversation: conv.to_string(),
            name: name.to_string(),
            size,
            key,
            status: "uploading",
        };
        self.media
            .lock()
            .expect("media")
            .insert(id.to_string(), media);
        (url, upload_headers)
    }
}

async fn get_media(
    AxState(route): AxState<Arc<Conversation>>,
    Path((conv, comm, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = route.refuse(&headers, &conv, &comm, "confirm") {
        return r;
    }
    let Some(m) = route.media(&id) else {
        return not_found("The media was not found.");
    };
    let unlanded = route.store.infected(&m.key).is_none();
    let mut status = m.status;
    if unlanded {
        match route.state.faults().unlanded_media.as_str() {
            "404" => return not_found("The media upload was not found."),
            "410" => return platform_error(StatusCode::GONE, "gone", "The media upload expired."),
            "invalid" => status = "invalid",
            _ => {}
        }
    }
    let mut v = json!({
        "id": id, "name": m.name, "contentLengthBytes": m.size, "status": status,
        "mediaType": media_type(&m.name),
        "selfUri": self_uri(&conv, &comm, &id),
    });
    if m.status == "valid" {
        v["url"] = json!(route.store.presign_get(&m.key, Duration::from_secs(600)));
    }
    route.state.pause("confirm").await;
    if route.state.take(|f| &mut f.lose_confirms) {
        drop_connection();
    }
    Json(v).into_response()
}

async fn send_message(
    AxState(route): AxState<Arc<Conversation>>,
    Path((conv, comm)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(r) = route.refuse(&headers, &conv, &comm, "send") {
        return r;
    }
    let body = body.map(|b| b.0).unwrap_or_default();
    let text = body["textBody"].as_str();
    let media_ids: Vec<String> = body["mediaIds"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // One body field per request: text, media, or a template.
    if text.is_some() != media_ids.is_empty() || media_ids.len() > 1 {
        return bad_request("Exactly one of textBody or a single mediaId is required.");
    }
    if text.is_some_and(|t| t.encode_utf16().count() > TEXT_BODY_MAX) {
        return bad_request("textBody exceeds the maximum of 2000 characters.");
    }
    let media = match route.sendable(&conv, &media_ids) {
        Ok(m) => m,
        Err((code, message)) => {
            return platform_error(StatusCode::BAD_REQUEST, code, message);
        }
    };
    // Held before anything is done: a client killed here never sent the message.
    route.state.pause("send-start").await;
    if route.state.take(|f| &mut f.drop_sends) {
        drop_connection();
    }
    let id = uuid::Uuid::new_v4().to_string();
    let timestamp = now_rfc3339();
    let status = if route.state.take(|f| &mut f.fail_sends) {
        "failed"
    } else {
        "sent"
    };
    route.state.messages.lock().expect("messages").push(json!({
        "route": "conversation", "conversationId": conv, "id": id, "text": text, "mediaIds": media_ids,
        "media": media, "timestamp": timestamp, "status": status,
    }));
    route.state.pause("send").await;
    if route.state.take(|f| &mut f.lose_sends) {
        drop_connection();
    }
    Json(json!({
        "id": id, "conversationId": conv, "textBody": text, "media": media,
        "status": status, "direction": "outbound", "timestamp": timestamp,
    }))
    .into_response()
}

impl Conversation {
    /// The message's `media` entries: only this conversation's media, once `valid`. A refusal
    /// is the Platform API error code and message.
    fn sendable(
        &self,
        conv: &str,
        ids: &[String],
    ) -> Result<Vec<Value>, (&'static str, &'static str)> {
        let mut media = Vec::new();
        for id in ids {
            match self.media(id) {
                Some(m) if m.conversation == conv && m.status == "valid" => {
                    media.push(json!({"id": id, "name": m.name, "mediaType": media_type(&m.name), "contentLengthBytes": m.size}));
                }
                Some(_) => return Err(("media.not.valid", "The media is not valid (yet).")),
                None => return Err(("media.not.found", "The media was not found.")),
            }
        }
        Ok(media)
    }
}
