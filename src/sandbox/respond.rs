//! The shapes of answers the emulated surfaces share: Platform API, OAuth and S3 error bodies,
//! injected-fault answers, a dropped connection, timestamps.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::{Inject, State};

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

pub(crate) fn not_found(message: &str) -> Response {
    platform_error(StatusCode::NOT_FOUND, "not.found", message)
}

pub(crate) fn bad_request(message: &str) -> Response {
    platform_error(StatusCode::BAD_REQUEST, "bad.request", message)
}

/// The answer for an injected error on an API endpoint.
pub(crate) fn injected(st: &State, endpoint: &str) -> Option<Response> {
    let Inject {
        status,
        retry_after,
        ..
    } = st.injected(endpoint)?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status.as_u16() {
        429 => "too.many.requests.retry.after",
        503 => "service.unavailable",
        _ => "internal.server.error",
    };
    let r = platform_error(status, code, "Injected by the sandbox.");
    Some(with_retry_after(r, retry_after))
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

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body =
        json!({"error": error, "description": description, "error_description": description});
    (status, Json(body)).into_response()
}

pub(crate) fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{}</RequestId></Error>",
        uuid::Uuid::new_v4().simple()
    );
    (status, [("content-type", "application/xml")], body).into_response()
}

/// The store's answer for an injected `put` error: the rule's S3 code, or S3's usual code for
/// the status, with the message S3 documents for it (Amazon S3 API reference, "Error
/// responses").
pub(crate) fn injected_s3(rule: &Inject) -> Response {
    let code = rule.code.as_deref().unwrap_or(match rule.status {
        503 => "SlowDown",
        500 => "InternalError",
        400 => "InvalidArgument",
        _ => "ServiceUnavailable",
    });
    let message = match code {
        "InternalError" => "We encountered an internal error. Please try again.",
        "SlowDown" => "Please reduce your request rate.",
        "RequestTimeout" => {
            "Your socket connection to the server was not read from or written to within the timeout period."
        }
        _ => "Injected by the sandbox.",
    };
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    with_retry_after(s3_error(status, code, message), rule.retry_after)
}

pub(crate) fn with_retry_after(mut r: Response, secs: Option<u64>) -> Response {
    if let Some(secs) = secs {
        r.headers_mut().insert(
            "retry-after",
            HeaderValue::from_str(&secs.to_string()).expect("digits"),
        );
    }
    r
}

/// Ends the connection without an answer, as a network failure would. `resume_unwind` skips
/// the panic hook, so nothing is printed; the server's connection task ends, and its socket
/// closes.
pub(crate) fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new(
        "connection dropped by the sandbox (injected fault)",
    ))
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
