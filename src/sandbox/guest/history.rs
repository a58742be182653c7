//! A session's history, as the transport SDK reads it (`core/HistoryHandlerImpl.kt`): a JWT for
//! the session over the socket (`getJwt` → `JwtResponse`, `core/JwtHandler.kt`), then
//! `GET /api/v2/webmessaging/messages?pageNumber&pageSize` with it as the bearer token
//! (`network/WebMessagingApi.kt`, `getMessages`), answered with a `MessageEntityList` of
//! `StructuredMessage`s, newest first (`shyrka/receive/StructuredMessage.kt`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::respond::{injected, platform_error};
use super::frame::frame;
use super::sessions::{Call, Guest};

/// How long a session JWT is valid.
const JWT_TTL: Duration = Duration::from_secs(3600);

/// getJwt: a bearer token for the session's REST endpoints.
pub(crate) fn jwt(call: Call) -> String {
    let jwt = format!("sandbox-jwt-{}", uuid::Uuid::new_v4().simple());
    call.guest
        .jwts
        .lock()
        .expect("jwts")
        .insert(jwt.clone(), call.token.to_string());
    let exp = (SystemTime::now() + JWT_TTL)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    frame(
        "response",
        "JwtResponse",
        200,
        json!({"jwt": jwt, "exp": exp}),
        call.tid,
    )
}

/// The session's messages, newest first, one page of them.
pub(crate) async fn messages(
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    AxState(guest): AxState<Arc<Guest>>,
) -> Response {
    if let Some(r) = injected(&guest.state, "check") {
        return r;
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = bearer.and_then(|b| guest.jwts.lock().expect("jwts").get(b).cloned());
    let Some(token) = token else {
        return platform_error(StatusCode::UNAUTHORIZED, "bad.credentials", "Invalid JWT");
    };
    let number = |k: &str, default: usize| {
        q.get(k)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    let (page, size) = (number("pageNumber", 1), number("pageSize", 25).min(100));
    let all: Vec<Value> = guest
        .state
        .messages
        .lock()
        .expect("messages")
        .iter()
        .rev()
        .filter(|m| m["route"] == "guest" && m["sessionToken"] == token.as_str())
        .map(entity)
        .collect();
    let entities: Vec<&Value> = all.iter().skip((page - 1) * size).take(size).collect();
    Json(json!({
        "entities": entities, "pageSize": size, "pageNumber": page,
        "total": all.len(), "pageCount": all.len().div_ceil(size),
    }))
    .into_response()
}

/// A sent message as the history shows it: an inbound StructuredMessage with its attachments.
fn entity(m: &Value) -> Value {
    let content: Vec<Value> = m["attachmentIds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| json!({"contentType": "Attachment", "attachment": {"id": id}}))
        .collect();
    json!({
        "id": m["id"], "type": "Text", "text": m["text"], "direction": "Inbound",
        "content": content, "originatingEntity": "Human",
    })
}
