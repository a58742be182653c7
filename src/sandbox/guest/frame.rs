//! The guest socket's envelope: `{"type", "class", "code", "body", "tracingId"}` (protocol
//! reference §2).

use serde_json::{Value, json};

pub(crate) fn frame(
    kind: &str,
    class: &str,
    code: u16,
    body: Value,
    tracing_id: Option<&str>,
) -> String {
    let mut f = json!({"type": kind, "class": class, "code": code, "body": body});
    if let Some(t) = tracing_id {
        f["tracingId"] = json!(t);
    }
    f.to_string()
}

/// An error as the platform sends most of them: `class: "string"`, the text as the body.
pub(crate) fn error(code: u16, text: &str, tracing_id: Option<&str>) -> String {
    frame("response", "string", code, json!(text), tracing_id)
}

/// A string field of a client request.
pub(crate) fn field<'a>(req: &'a Value, key: &str) -> Option<&'a str> {
    req.get(key).and_then(Value::as_str)
}
