//! `configureSession`: creates or resumes a session by token, binds the socket to it, and
//! answers with the deployment's effective upload rules.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::super::state::Faults;
use super::frame::{error, field, frame};
use super::sessions::{Call, Session, Socket};

/// closeSession. With `closeAllConnections: true`, the only form the transport SDK sends
/// (MyPureCloud/genesys-messenger-transport-mobile-sdk, `MessagingClientImpl.kt`,
/// `closeAllConnectionsForTheSession`): the session's other sockets get a ConnectionClosedEvent,
/// and the answer is a SessionResponse with `connected: false`; only then may this socket start a
/// new conversation. Any other closeSession closes nothing: the session stays connected.
pub(crate) fn close(call: Call, session: &mut Session, socket: &mut Socket) -> String {
    let all = call.req.get("closeAllConnections").and_then(Value::as_bool) == Some(true);
    if all {
        let event = frame("message", "ConnectionClosedEvent", 200, json!({}), None);
        session.sockets.retain(|s| {
            let own = s.same_channel(&socket.tx);
            if !own {
                let _ = s.send(event.clone());
            }
            own
        });
        socket.closed = true;
    }
    let body = without_false_flags(json!({"connected": !all, "readOnly": session.read_only}));
    frame("response", "SessionResponse", 200, body, call.tid)
}

/// How long a guest session lives, as the platform advertises it.
const SESSION_SECS: u64 = 259200;

pub(crate) fn configure(
    call: Call,
    sessions: &mut HashMap<String, Session>,
    socket: &mut Socket,
) -> String {
    let Call {
        guest,
        token,
        req,
        tid,
    } = call;
    let st = &guest.state;
    if socket.deployment != st.deployment_id
        || field(req, "deploymentId") != Some(st.deployment_id.as_str())
    {
        return error(400, "Deployment not found or inactive", tid);
    }
    let start_new = req.get("startNew").and_then(Value::as_bool) == Some(true);
    let mut new = !sessions.contains_key(token);
    let session = sessions.entry(token.to_string()).or_default();
    if start_new && session.read_only && socket.closed {
        // A new conversation on the same token: what was attached before is gone.
        session.read_only = false;
        session.attachments.clear();
        socket.closed = false;
        new = true;
    } else if !new && !start_new && st.take(|f| &mut f.read_only_sessions) {
        session.read_only = true;
    }
    if st.take(|f| &mut f.expire_sessions) {
        session.expired = true;
    }
    if session.expired {
        return frame("response", "SessionExpiredEvent", 200, json!({}), tid);
    }
    if socket.bound.as_deref() != Some(token) {
        session.sockets.push(socket.tx.clone());
        socket.bound = Some(token.to_string());
    }
    let body = session_response(&st.faults(), new, session.read_only);
    frame("response", "SessionResponse", 200, body, tid)
}

/// What the deployment advertises: types, size limit (KB) and blocked extensions. With hidden
/// rules it advertises `*/*` and no limits, yet onAttachment still enforces the real ones.
pub(crate) fn advertised(f: &Faults) -> (Vec<String>, u64, Vec<String>) {
    if f.guest_hidden_rules {
        (vec!["*/*".into()], 1 << 30, vec![])
    } else {
        (
            f.guest_allowed_types.clone(),
            f.guest_max_file_size_kb,
            f.guest_blocked_extensions.clone(),
        )
    }
}

/// The SessionResponse body; an older deployment's has no `allowedMedia`.
fn session_response(f: &Faults, new: bool, read_only: bool) -> Value {
    let (types, max_kb, blocked) = advertised(f);
    let types: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
    let expires = (SystemTime::now() + Duration::from_secs(SESSION_SECS))
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut body = json!({
        "connected": true, "newSession": new, "readOnly": read_only,
        "allowedMedia": {"inbound": {"fileTypes": types, "maxFileSizeKB": max_kb}},
        "blockedExtensions": blocked,
        "durationSeconds": SESSION_SECS,
        "expirationDate": expires,
    });
    if f.guest_omit_allowed_media {
        body.as_object_mut()
            .expect("an object")
            .remove("allowedMedia");
    }
    without_false_flags(body)
}

/// `newSession` and `readOnly` are left out when false: the SDK's model defaults them to false
/// (`shyrka/receive/SessionResponse.kt`), while `connected` has no default and is always sent.
fn without_false_flags(mut body: Value) -> Value {
    let fields = body.as_object_mut().expect("an object");
    for flag in ["newSession", "readOnly"] {
        if fields.get(flag) == Some(&Value::Bool(false)) {
            fields.remove(flag);
        }
    }
    body
}
