//! The conversation media endpoints: media uploads with signed upload headers, a media status
//! that moves `uploading` → `valid`/`invalid` after the object lands and is scanned, messages.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::State;
use super::api::{injected, platform_error, too_large, unauthorized};

#[derive(Debug, Clone)]
pub(crate) struct Media {
    conversation: String,
    name: String,
    size: u64,
    key: String,
    /// `uploading`, `valid` or `invalid`.
    status: &'static str,
}

impl Media {
    pub(crate) fn status(&self) -> &'static str {
        self.status
    }
}

/// What every conversation endpoint checks first: the token, the ids, an injected fault.
fn refuse(
    st: &State,
    headers: &HeaderMap,
    conv: &str,
    comm: &str,
    endpoint: &str,
) -> Option<Response> {
    unauthorized(st, headers)
        .or_else(|| refuse_unknown(st, conv, comm))
        .or_else(|| injected(st, endpoint))
}

fn refuse_unknown(st: &State, conv: &str, comm: &str) -> Option<Response> {
    (conv != st.conversation_id || comm != st.communication_id).then(|| {
        platform_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "The conversation or communication was not found.",
        )
    })
}

pub(crate) async fn create_upload(
    AxState(st): AxState<Arc<State>>,
    Path((conv, comm)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &conv, &comm, "request-url") {
        return r;
    }
    let body = body.map(|b| b.0).unwrap_or_default();
    let name = body["fileName"].as_str().unwrap_or("");
    let Some(size) = body["contentLengthBytes"].as_u64() else {
        return platform_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "contentLengthBytes is required.",
        );
    };
    if !acceptable_name(name) {
        return platform_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "fileName is invalid.",
        );
    }
    if let Some(r) = too_large(&st, size) {
        return r;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let key = format!("conversation/{conv}/{id}/{name}");
    let tagging = format!("conversationId={conv}&mediaId={id}");
    let mut signed: Vec<(&str, &str)> = vec![("x-amz-tagging", &tagging)];
    let md5 = body["contentMd5"].as_str().map(str::to_string);
    if let Some(m) = &md5 {
        signed.push(("content-md5", m));
    }
    let url = st.issue_put_url(&key, size, &signed);
    let mut upload_headers = serde_json::Map::new();
    upload_headers.insert("x-amz-tagging".into(), tagging.clone().into());
    if let Some(m) = md5 {
        upload_headers.insert("Content-MD5".into(), m.into());
    }
    st.media.lock().expect("media").insert(
        id.clone(),
        Media {
            conversation: conv.clone(),
            name: name.to_string(),
            size,
            key,
            status: "uploading",
        },
    );
    Json(json!({
        "id": id, "name": name, "uploadUrl": url, "uploadHeaders": upload_headers,
        "selfUri": format!("/api/v2/conversations/messages/{conv}/communications/{comm}/messages/media/{id}"),
    }))
    .into_response()
}

pub(crate) async fn get_media(
    AxState(st): AxState<Arc<State>>,
    Path((conv, comm, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &conv, &comm, "confirm") {
        return r;
    }
    let Some(m) = st.media.lock().expect("media").get(&id).cloned() else {
        return platform_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "The media was not found.",
        );
    };
    let mut v = json!({
        "id": id, "name": m.name, "contentLengthBytes": m.size, "status": m.status,
        "mediaType": media_type(&m.name),
        "selfUri": format!("/api/v2/conversations/messages/{conv}/communications/{comm}/messages/media/{id}"),
    });
    if m.status == "valid" {
        v["url"] = json!(st.store.presign_get(&m.key, Duration::from_secs(600)));
    }
    if st.take(|f| &mut f.lose_confirms) {
        super::drop_connection();
    }
    Json(v).into_response()
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

pub(crate) async fn send_message(
    AxState(st): AxState<Arc<State>>,
    Path((conv, comm)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &conv, &comm, "send") {
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
        return platform_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "Exactly one of textBody or a single mediaId is required.",
        );
    }
    let mut media = Vec::new();
    for id in &media_ids {
        let m = st.media.lock().expect("media").get(id).cloned();
        match m {
            Some(m) if m.conversation == conv && m.status == "valid" => {
                media.push(json!({"id": id, "name": m.name, "mediaType": media_type(&m.name), "contentLengthBytes": m.size}));
            }
            Some(_) => {
                return platform_error(
                    StatusCode::BAD_REQUEST,
                    "media.not.valid",
                    "The media is not valid (yet).",
                );
            }
            None => {
                return platform_error(
                    StatusCode::BAD_REQUEST,
                    "media.not.found",
                    "The media was not found.",
                );
            }
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    st.messages.lock().expect("messages").push(json!({
        "route": "conversation", "conversationId": conv, "id": id, "text": text, "mediaIds": media_ids,
    }));
    if st.take(|f| &mut f.lose_sends) {
        super::drop_connection();
    }
    Json(json!({
        "id": id, "conversationId": conv, "textBody": text, "media": media,
        "status": "sent", "direction": "outbound", "timestamp": super::now_rfc3339(),
    }))
    .into_response()
}

/// After a PUT lands: the media becomes `valid` or `invalid` a moment later, as on the platform.
pub(crate) fn object_stored(st: &Arc<State>, key: &str, infected: bool) {
    let id = st
        .media
        .lock()
        .expect("media")
        .iter()
        .find(|(_, m)| m.key == key)
        .map(|(id, _)| id.clone());
    let Some(id) = id else { return };
    let delay = Duration::from_millis(st.faults().media_delay_ms);
    let st = st.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if let Some(m) = st.media.lock().expect("media").get_mut(&id) {
            m.status = if infected { "invalid" } else { "valid" };
        }
    });
}
