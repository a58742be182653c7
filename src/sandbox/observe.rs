//! The API origin's middleware: emulated latency, a correlation id on every answer (as Genesys
//! Cloud sends), and the request log tests read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::respond::{platform_error, with_retry_after};
use super::state::{SeenRequest, State};

pub(crate) async fn observe(
    AxState(st): AxState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let authorization = req.headers().contains_key("authorization");
    let t0 = Instant::now();
    let latency = st.faults().api_latency_ms;
    if latency > 0 && !path.starts_with("/_sandbox/") {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let limited = path.starts_with("/api/") || path == "/oauth/token";
    let mut resp = match limited.then(|| st.admit_api_call()) {
        Some(Err(retry_after)) => {
            st.count_refusal("api");
            let r = platform_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests.retry.after",
                "Rate limit exceeded the maximum. Retry the request after the Retry-After interval.",
            );
            with_retry_after(r, Some(retry_after))
        }
        _ => next.run(req).await,
    };
    if !resp.headers().contains_key("inin-correlation-id") {
        let id = uuid::Uuid::new_v4().to_string();
        resp.headers_mut().insert(
            "inin-correlation-id",
            HeaderValue::from_str(&id).expect("uuid"),
        );
    }
    // The control endpoints are the tests' own traffic, not the client's.
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
