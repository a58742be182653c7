//! What a message conversation holds, as the Platform API shows it: the conversation with each
//! participant's messages (`GET /api/v2/conversations/messages/{conversationId}` →
//! `MessageConversation`, its `participants[].messages[]` being `MessageDetails`), and messages
//! by id (`POST …/{conversationId}/messages/bulk` → `TextMessageListing` of `MessageData`).
//! Shapes from the official SDKs' models (platform-client-sdk-javascript `build/index.d.ts`,
//! `build/docs/ConversationsApi.md`). The deprecated fields (`MessageDetails.media`,
//! `MessageData.textBody`/`media`) are filled only under `fillDeprecatedFields`; the bulk read
//! with `useNormalizedMessage=true` drops them and gives `normalizedMessage` instead. The customer's opening message is inbound; everything the
//! conversation route sent is the agent participant's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::oauth::unauthorized;
use super::respond::{bad_request, injected, not_found, now_rfc3339, platform_error};
use super::state::State;

/// The API's cap on the ids of one bulk request.
const BULK_MAX: usize = 1000;

pub(crate) struct History {
    state: Arc<State>,
    customer: String,
    agent: String,
    /// The customer's message that opened the conversation (MessageData).
    opening: Value,
}

pub(crate) fn router(history: Arc<History>) -> axum::Router {
    axum::Router::new()
        .route("/api/v2/conversations/messages/{conv}", get(conversation))
        .route(
            "/api/v2/conversations/messages/{conv}/messages/bulk",
            post(bulk),
        )
        .with_state(history)
}

impl History {
    pub(crate) fn new(state: Arc<State>) -> Arc<Self> {
        let id = || uuid::Uuid::new_v4().to_string();
        let opening = json!({
            "id": id(), "timestamp": now_rfc3339(), "direction": "inbound",
            "messengerType": "open", "textBody": "Hello, could you send me the document?",
            "status": "received", "conversationId": state.conversation_id,
        });
        Arc::new(History {
            customer: id(),
            agent: id(),
            opening,
            state,
        })
    }

    /// The check every endpoint makes: the token, the conversation, an injected `check` fault.
    fn refuse(&self, headers: &HeaderMap, conv: &str) -> Option<Response> {
        let st = &self.state;
        unauthorized(st, headers)
            .or_else(|| {
                (conv != st.conversation_id).then(|| not_found("The conversation was not found."))
            })
            .or_else(|| injected(st, "check"))
    }

    /// Every message of the conversation, oldest first, as `MessageData`.
    fn messages(&self) -> Vec<Value> {
        let sent = self.state.messages.lock().expect("messages");
        let conv = &self.state.conversation_id;
        let outbound = sent
            .iter()
            .filter(|m| m["route"] == "conversation" && m["conversationId"] == *conv)
            .map(|m| {
                json!({
                    "id": m["id"], "timestamp": m["timestamp"], "direction": "outbound",
                    "messengerType": "open", "textBody": m["text"].as_str().unwrap_or(""),
                    "status": m["status"].as_str().unwrap_or("sent"), "media": m["media"],
                    "conversationId": conv,
                    "selfUri": message_uri(conv, m["id"].as_str().unwrap_or("")),
                })
            });
        std::iter::once(self.opening.clone())
            .chain(outbound)
            .collect()
    }
}

fn message_uri(conv: &str, id: &str) -> String {
    format!("/api/v2/conversations/messages/{conv}/messages/{id}")
}

/// `MessageDetails`: what the conversation says about one of its participant's messages.
fn details(conv: &str, m: &Value, deprecated: bool) -> Value {
    let id = m["id"].as_str().unwrap_or("");
    let mut d = json!({
        "messageId": id, "messageURI": message_uri(conv, id), "messageStatus": m["status"],
        "messageSegmentCount": 1, "messageTime": m["timestamp"],
    });
    if deprecated && m["media"].as_array().is_some_and(|a| !a.is_empty()) {
        d["media"] = m["media"].clone();
    }
    d
}

/// `MessageData` as one read shows it: with `normalizedMessage` and without the deprecated
/// fields when `normalized` (as `useNormalizedMessage=true` answers), else with them only if
/// the switch fills them.
fn data(mut m: Value, normalized: bool, deprecated: bool) -> Value {
    let text = m["textBody"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let media = m["media"].as_array().cloned().unwrap_or_default();
    if let Some(o) = m.as_object_mut() {
        o.remove("textBody");
        o.remove("media");
        if normalized {
            let content: Vec<Value> = media
                .iter()
                .map(|a| {
                    json!({"contentType": "Attachment", "attachment": {
                        "id": a["id"], "mediaType": "Image", "mime": a["mediaType"],
                        "filename": a["name"], "fileSize": a["contentLengthBytes"]}})
                })
                .collect();
            let mut n = json!({"id": o["id"], "channel": {"type": "Open"}, "type": "Text",
                "direction": o["direction"], "content": content});
            if let Some(t) = &text {
                n["text"] = json!(t);
            }
            o.insert("normalizedMessage".into(), n);
        } else if deprecated {
            o.insert("textBody".into(), json!(text.unwrap_or_default()));
            o.insert("media".into(), Value::Array(media));
        }
    }
    m
}

async fn conversation(
    AxState(h): AxState<Arc<History>>,
    Path(conv): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = h.refuse(&headers, &conv) {
        return r;
    }
    let (inbound, outbound): (Vec<Value>, Vec<Value>) = h
        .messages()
        .into_iter()
        .partition(|m| m["direction"] == "inbound");
    let deprecated = h.state.faults().fill_deprecated_fields;
    let participant = |id: &str, purpose: &str, messages: Vec<Value>| {
        json!({
            "id": id, "purpose": purpose, "state": "connected",
            "messages": messages.iter().map(|m| details(&conv, m, deprecated)).collect::<Vec<_>>(),
        })
    };
    Json(json!({
        "id": conv,
        "participants": [
            participant(&h.customer, "customer", inbound),
            participant(&h.agent, "agent", outbound),
        ],
        "selfUri": format!("/api/v2/conversations/messages/{conv}"),
    }))
    .into_response()
}

async fn bulk(
    AxState(h): AxState<Arc<History>>,
    Path(conv): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(r) = h.refuse(&headers, &conv) {
        return r;
    }
    let Some(ids) = body.as_ref().and_then(|b| b.0.as_array()) else {
        return bad_request("The body must be an array of message ids.");
    };
    if ids.len() > BULK_MAX {
        return platform_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "At most 1000 message ids can be requested at once.",
        );
    }
    let normalized = q.get("useNormalizedMessage").is_some_and(|v| v == "true");
    let deprecated = h.state.faults().fill_deprecated_fields;
    let entities: Vec<Value> = h
        .messages()
        .into_iter()
        .filter(|m| ids.contains(&m["id"]))
        .map(|m| data(m, normalized, deprecated))
        .collect();
    Json(json!({ "entities": entities })).into_response()
}
