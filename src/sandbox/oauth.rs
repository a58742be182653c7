//! OAuth client credentials: the token endpoint, and the bearer check every API endpoint makes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::json;

use super::respond::{injected, oauth_error, platform_error};
use super::state::State;

pub(crate) fn router(state: Arc<State>) -> axum::Router {
    axum::Router::new()
        .route("/oauth/token", post(token))
        .with_state(state)
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
    let ok = basic_credentials(&headers)
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
    st.pause("token").await;
    Json(json!({"access_token": token, "token_type": "bearer", "expires_in": ttl})).into_response()
}

/// `Authorization: Basic base64(id:secret)`, decoded.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    let (id, secret) = pair.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The bearer check every API endpoint makes: the refusal to send, if any.
pub(crate) fn unauthorized(st: &State, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let revoked = st.take(|f| &mut f.reject_tokens);
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
