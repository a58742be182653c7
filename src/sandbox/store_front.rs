//! The store origin's HTTP front: injected PUT faults, the two checks S3 makes that s3s does
//! not, then s3s itself; and when a PUT lands, the scan and the `Landed` hook.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::respond::{drop_connection, injected_s3, s3_error};
use super::scan;
use super::state::{SeenRequest, State};
use super::store::Store;

/// S3's ceiling for a pre-signed URL's lifetime.
const MAX_EXPIRES_SECS: u64 = 7 * 24 * 3600;

/// Told about each object that landed, with the scan's verdict (infected?). The routes react
/// to landings, and they sit after the store in the data flow, so the store only calls back.
pub(crate) type Landed = Arc<dyn Fn(&str, bool) + Send + Sync>;

struct Front {
    state: Arc<State>,
    store: Arc<Store>,
    landed: Landed,
}

pub(crate) fn router(state: Arc<State>, store: Arc<Store>, landed: Landed) -> axum::Router {
    let front = Arc::new(Front {
        state,
        store,
        landed,
    });
    axum::Router::new().fallback(handle).with_state(front)
}

async fn handle(AxState(front): AxState<Arc<Front>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let authorization = req.headers().contains_key("authorization");
    let t0 = Instant::now();
    let resp = if method == Method::PUT {
        put(&front, req).await
    } else {
        forward(&front, req).await
    };
    front.state.seen(SeenRequest {
        surface: "store",
        method: method.to_string(),
        path,
        authorization,
        status: resp.status().as_u16(),
        ms: t0.elapsed().as_secs_f64() * 1000.0,
    });
    resp
}

async fn put(front: &Front, req: Request) -> Response {
    let st = &front.state;
    st.pause("put-start").await;
    let key = front.store.key_of(req.uri().path());
    let existed = key
        .as_ref()
        .is_some_and(|k| front.store.object_path(k).exists());
    let req = match put_fault(st, req).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = precheck(&front.store, &req) {
        return refusal;
    }
    let req = pause_midway(st, req).await;
    let resp = to_s3(front, req).await;
    if let Some(key) = key {
        if resp.status().is_success() {
            land(front, key).await;
            // Stored, scanned and announced, as after any PUT; only the 200 is held back.
            st.pause("put-stored").await;
        } else if !existed {
            // s3s-fs writes the object before it checks Content-MD5; S3 keeps nothing on BadDigest.
            let _ = std::fs::remove_file(front.store.object_path(&key));
        }
    }
    resp
}

/// What S3 would answer: a refusal of ours, or s3s's answer.
async fn forward(front: &Front, req: Request) -> Response {
    if let Some(refusal) = precheck(&front.store, &req) {
        return refusal;
    }
    to_s3(front, req).await
}

async fn to_s3(front: &Front, req: Request) -> Response {
    match front
        .store
        .s3
        .call(req.map(s3s::Body::http_body_unsync))
        .await
    {
        Ok(r) => r.map(Body::new),
        Err(e) => s3_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("{e:?}"),
        ),
    }
}

/// Scans the object once, before the PUT is answered, so that a confirm that follows finds the
/// verdict; then tells the routes.
async fn land(front: &Front, key: String) {
    let path = front.store.object_path(&key);
    let infected = tokio::task::spawn_blocking(move || scan::infected(&path))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
    front.store.record_verdict(&key, infected);
    (front.landed)(&key, infected);
}

/// Injected PUT faults: a delay, an error answer, or a connection dropped halfway through the body.
async fn put_fault(st: &State, req: Request) -> Result<Request, Response> {
    let delay = st.faults().put_delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(rule) = st.injected("put") {
        return Err(injected_s3(&rule));
    }
    if st.take(|f| &mut f.drop_puts) {
        match drop_halfway(st, req).await {}
    }
    Ok(req)
}

/// The `put-mid` pause, when one is due: reads half the announced body, holds, then hands s3s
/// the whole body (what was read, then the rest). A client killed meanwhile leaves an
/// incomplete body, which s3s refuses, so nothing is stored.
async fn pause_midway(st: &State, req: Request) -> Request {
    let Some(ms) = st.pause_due("put-mid") else {
        return req;
    };
    let (parts, body) = req.into_parts();
    let half = announced_length(&parts.headers) / 2;
    let mut rest = body.into_data_stream();
    let mut read = Vec::new();
    let mut len = 0;
    while len < half {
        let Some(chunk) = futures_util::StreamExt::next(&mut rest).await else {
            break;
        };
        len += chunk.as_ref().map_or(0, |c| c.len());
        let failed = chunk.is_err();
        read.push(chunk);
        if failed {
            break;
        }
    }
    st.hold("put-mid", ms).await;
    let whole = futures_util::StreamExt::chain(futures_util::stream::iter(read), rest);
    Request::from_parts(parts, Body::from_stream(whole))
}

fn announced_length(headers: &axum::http::HeaderMap) -> usize {
    headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
}

/// Reads half the announced body, then ends the connection as a failing network would.
async fn drop_halfway(st: &State, req: Request) -> Infallible {
    let announced = announced_length(req.headers());
    st.seen(SeenRequest {
        surface: "store",
        method: "PUT".into(),
        path: req.uri().path().to_string(),
        authorization: req.headers().contains_key("authorization"),
        status: 0,
        ms: 0.0,
    });
    let mut body = req.into_body().into_data_stream();
    let mut read = 0;
    while read < announced / 2 {
        match futures_util::StreamExt::next(&mut body).await {
            Some(Ok(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    drop_connection()
}

/// What S3 refuses and s3s lets through: over-long expiry, PUTs without a length, and bodies
/// larger than the size announced when the URL was issued.
fn precheck(store: &Store, req: &Request) -> Option<Response> {
    if req.method() != Method::PUT {
        return None;
    }
    let expires = req
        .uri()
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "X-Amz-Expires"))
        .and_then(|(_, v)| v.parse::<u64>().ok());
    if expires.is_some_and(|e| e > MAX_EXPIRES_SECS) {
        return Some(s3_error(
            StatusCode::BAD_REQUEST,
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ));
    }
    let length = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(length) = length else {
        return Some(s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        ));
    };
    let key = store.key_of(req.uri().path())?;
    let announced = store.announced_size(&key)?;
    (length > announced).then(|| {
        s3_error(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            &format!("Your proposed upload ({length} bytes) exceeds the announced size ({announced} bytes)"),
        )
    })
}
