//! The API origin's middleware: emulated latency, a correlation id on every answer (as Genesys
//! Cloud sends), and the request log tests read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State as AxState};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

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
    let mut resp = next.run(req).await;
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
