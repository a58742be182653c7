//! The API origin: OAuth, the routes' endpoints, the webhook receiver and the control endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Faults, FileEntry, SeenRequest, State};

pub(crate) fn router(state: Arc<State>) -> axum::Router {
    axum::Router::new()
        .route("/oauth/token", post(token))
        .route(
            "/api/v2/externalcontacts/contacts/{contact}/files",
            post(request_url),
        )
        .route(
            "/api/v2/externalcontacts/contacts/{contact}/files/{file}/upload-complete",
            post(upload_complete),
        )
        .route("/v1", get(super::guest::upgrade))
        .route(
            "/api/v2/conversations/messages/{conv}/communications/{comm}/messages/media/uploads",
            post(super::conversation::create_upload),
        )
        .route(
            "/api/v2/conversations/messages/{conv}/communications/{comm}/messages/media/{id}",
            get(super::conversation::get_media),
        )
        .route(
            "/api/v2/conversations/messages/{conv}/communications/{comm}/messages",
            post(super::conversation::send_message),
        )
        .route("/_sandbox/webhook", post(webhook))
        .route("/_sandbox/state", get(snapshot))
        .route("/_sandbox/faults", post(set_faults).get(get_faults))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Every answer carries a correlation id, as Genesys Cloud's do; every request is logged.
async fn observe(AxState(st): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let authorization = req.headers().contains_key("authorization");
    let t0 = std::time::Instant::now();
    let latency = st.faults().api_latency_ms;
    if latency > 0 && !path.starts_with("/_sandbox/") {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let mut resp = next.run(req).await;
    if !resp.headers().contains_key("inin-correlation-id") {
        let id = uuid::Uuid::new_v4().to_string();
        resp.headers_mut().insert(
            "inin-correlation-id",
            HeaderValue::from_str(&id).expect("uuid"),
        );
    }
    if !path.starts_with("/_sandbox/state") && !path.starts_with("/_sandbox/faults") {
        st.seen(SeenRequest {
            surface: "api",
            method,
            path,
            authorization,
            status: resp.status().as_u16(),
            ms: t0.elapsed().as_secs_f64() * 1000.0,
        });
    }
    resp
}

/// A Platform API error body, with its correlation id also in the header.
pub(crate) fn platform_error(status: StatusCode, code: &str, message: &str) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "message": message, "code": code, "status": status.as_u16(),
        "messageWithParams": message, "messageParams": {}, "contextId": id,
        "details": [], "errors": [],
    });
    (status, [("inin-correlation-id", id)], Json(body)).into_response()
}

/// The answer for an injected error on an API endpoint.
pub(crate) fn injected(st: &State, endpoint: &str) -> Option<Response> {
    let (status, retry_after) = st.injected(endpoint)?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status.as_u16() {
        429 => "too.many.requests.retry.after",
        503 => "service.unavailable",
        _ => "internal.server.error",
    };
    let mut r = platform_error(status, code, "Injected by the sandbox.");
    if let Some(secs) = retry_after {
        r.headers_mut().insert(
            "retry-after",
            HeaderValue::from_str(&secs.to_string()).expect("digits"),
        );
    }
    Some(r)
}

/// The tenant's upload limit, as the Platform API refuses it.
pub(crate) fn too_large(st: &State, size: u64) -> Option<Response> {
    let limit = st.faults().max_upload_bytes;
    (size > limit).then(|| {
        platform_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload.too.large",
            &format!("The file exceeds the limit of {limit} bytes."),
        )
    })
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body =
        json!({"error": error, "description": description, "error_description": description});
    (status, Json(body)).into_response()
}

async fn token(AxState(st): AxState<Arc<State>>, headers: HeaderMap, body: String) -> Response {
    if let Some(r) = injected(&st, "token") {
        return r;
    }
    let grant = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned());
    if grant.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let ok = basic
        .as_deref()
        .and_then(|b| b.split_once(':'))
        .is_some_and(|(id, secret)| id == st.client_id && secret == st.client_secret);
    if !ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let ttl = st.faults().token_ttl_secs;
    let token = uuid::Uuid::new_v4().simple().to_string();
    st.tokens
        .lock()
        .expect("tokens")
        .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    Json(json!({"access_token": token, "token_type": "bearer", "expires_in": ttl})).into_response()
}

/// The bearer check every API endpoint makes: the refusal to send, if any.
pub(crate) fn unauthorized(st: &State, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let revoked = {
        let mut f = st.faults();
        let r = f.reject_tokens > 0;
        f.reject_tokens = f.reject_tokens.saturating_sub(1);
        r
    };
    let valid = !revoked
        && token.is_some_and(|t| {
            st.tokens
                .lock()
                .expect("tokens")
                .get(t)
                .is_some_and(|exp| Instant::now() < *exp)
        });
    (!valid).then(|| {
        platform_error(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UrlRequest {
    file_name: Option<String>,
    content_type: Option<String>,
    size: Option<u64>,
}

async fn request_url(
    AxState(st): AxState<Arc<State>>,
    Path(contact): Path<String>,
    headers: HeaderMap,
    body: Option<Json<UrlRequest>>,
) -> Response {
    if let Some(r) = unauthorized(&st, &headers).or_else(|| injected(&st, "request-url")) {
        return r;
    }
    if contact != st.external_contact_id {
        return platform_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "The external contact was not found.",
        );
    }
    let Some(Json(UrlRequest {
        file_name: Some(name),
        content_type: Some(ct),
        size: Some(size),
    })) = body
    else {
        return platform_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "fileName, contentType and size are required.",
        );
    };
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
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
    let key = format!("external/{contact}/{id}/{name}");
    let url = st.issue_put_url(&key, size, &[("content-type", &ct)]);
    st.files.lock().expect("files").insert(
        id.clone(),
        FileEntry {
            contact_id: contact,
            key,
            size,
            confirmed: None,
        },
    );
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "uploadUrl": url})),
    )
        .into_response()
}

async fn upload_complete(
    AxState(st): AxState<Arc<State>>,
    Path((contact, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&st, &headers).or_else(|| injected(&st, "confirm")) {
        return r;
    }
    let entry = st.files.lock().expect("files").get(&file).cloned();
    let Some(entry) = entry.filter(|e| e.contact_id == contact) else {
        return platform_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "The file was not found.",
        );
    };
    // Confirmation is idempotent: a repeated confirm gets the same answer.
    let scan = match entry.confirmed {
        Some(s) => s,
        None => {
            let path = st.store.object_path(&entry.key);
            let size = std::fs::metadata(&path).map(|m| m.len()).ok();
            match size {
                None => {
                    return platform_error(
                        StatusCode::CONFLICT,
                        "upload.not.found",
                        "No object was uploaded for this file.",
                    );
                }
                Some(s) if s != entry.size => {
                    return platform_error(
                        StatusCode::CONFLICT,
                        "upload.size.mismatch",
                        &format!(
                            "The uploaded object has {s} bytes, {} were announced.",
                            entry.size
                        ),
                    );
                }
                Some(_) => {}
            }
            // Scanned when the PUT landed; a confirm does not read the object again.
            let infected = st.infected(&entry.key).unwrap_or(false);
            let s = if infected { "infected" } else { "passed" }.to_string();
            if let Some(e) = st.files.lock().expect("files").get_mut(&file) {
                e.confirmed = Some(s.clone());
            }
            s
        }
    };
    if st.take(|f| &mut f.lose_confirms) {
        super::drop_connection();
    }
    Json(json!({"id": file, "status": "completed", "virusScan": scan})).into_response()
}

async fn webhook(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some((status, _)) = st.injected("webhook") {
        return StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    {
        let mut f = st.faults();
        if f.webhook_fail > 0 {
            f.webhook_fail -= 1;
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "receiver failure (injected)",
            )
                .into_response();
        }
    }
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    st.webhooks.lock().expect("webhooks").push(json!({
        "idempotencyKey": header("idempotency-key"),
        "signature": header("x-gcupload-signature"),
        "body": body,
    }));
    StatusCode::NO_CONTENT.into_response()
}

async fn snapshot(AxState(st): AxState<Arc<State>>) -> Json<Value> {
    Json(st.snapshot())
}

async fn get_faults(AxState(st): AxState<Arc<State>>) -> Json<Faults> {
    Json(st.faults().clone())
}

async fn set_faults(AxState(st): AxState<Arc<State>>, Json(f): Json<Faults>) -> Json<Faults> {
    *st.faults() = f.clone();
    Json(f)
}
