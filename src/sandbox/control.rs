//! The sandbox's own endpoints under `/_sandbox/`: the webhook receiver, a snapshot of what it
//! holds, and the faults, readable and replaceable at runtime.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::state::{Faults, State};
use super::store::Store;

#[derive(Clone)]
struct Control {
    state: Arc<State>,
    store: Arc<Store>,
}

pub(crate) fn router(state: Arc<State>, store: Arc<Store>) -> axum::Router {
    axum::Router::new()
        .route("/_sandbox/webhook", post(webhook))
        .route("/_sandbox/state", get(snapshot))
        .route("/_sandbox/faults", post(set_faults).get(get_faults))
        .with_state(Control { state, store })
}

async fn webhook(
    AxState(c): AxState<Control>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let st = &c.state;
    if let Some(rule) = st.injected("webhook") {
        return StatusCode::from_u16(rule.status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    if st.take(|f| &mut f.webhook_fail) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "receiver failure (injected)",
        )
            .into_response();
    }
    // Recorded only after the pause: a sender killed during it never delivered the event.
    st.pause("webhook").await;
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    st.webhooks.lock().expect("webhooks").push(json!({
        "idempotencyKey": header("idempotency-key"),
        "signature": header("x-gcupload-signature"),
        // What a receiver with Basic auth checks (user info in the webhook URL).
        "authorization": header("authorization"),
        "body": body,
    }));
    StatusCode::NO_CONTENT.into_response()
}

async fn snapshot(AxState(c): AxState<Control>) -> Json<Value> {
    let st = &c.state;
    Json(json!({
        "objects": c.store.objects(),
        "webhooks": *st.webhooks.lock().expect("webhooks"),
        "messages": *st.messages.lock().expect("messages"),
        "requests": *st.requests(),
        "faults": *st.faults(),
        "paused": st.paused(),
        "refused": st.refused(),
    }))
}

async fn get_faults(AxState(c): AxState<Control>) -> Json<Faults> {
    Json(c.state.faults().clone())
}

async fn set_faults(AxState(c): AxState<Control>, Json(f): Json<Faults>) -> Json<Faults> {
    *c.state.faults() = f.clone();
    Json(f)
}
