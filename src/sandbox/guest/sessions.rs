//! What the guest surface remembers: sessions by token, their attachments, and the sockets
//! bound to each session; and the request being answered.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use super::super::state::State;
use super::super::store::Store;

pub(crate) struct Guest {
    pub(crate) state: Arc<State>,
    pub(crate) store: Arc<Store>,
    pub(crate) sessions: Mutex<HashMap<String, Session>>,
    /// Session JWTs issued by getJwt, with the session token each is for.
    pub(crate) jwts: Mutex<HashMap<String, String>>,
    /// onAttachment requests that came while another attachment of their session had landed
    /// and awaited its verdict: uploads a client kept in flight side by side.
    pub(crate) requested_during_scans: AtomicU32,
}

impl Guest {
    pub(crate) fn new(state: Arc<State>, store: Arc<Store>) -> Arc<Self> {
        Arc::new(Guest {
            state,
            store,
            sessions: Mutex::default(),
            jwts: Mutex::default(),
            requested_during_scans: AtomicU32::new(0),
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Session {
    pub(crate) attachments: HashMap<String, Attachment>,
    /// Every socket bound to the session: upload events go to all of them.
    pub(crate) sockets: Vec<mpsc::UnboundedSender<String>>,
    pub(crate) expired: bool,
    /// The session's conversation ended: it only reads until a new one is started.
    pub(crate) read_only: bool,
    /// When its recent onMessage arrived (the last second's, for the rate limit).
    pub(crate) message_times: std::collections::VecDeque<std::time::Instant>,
}

#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) key: String,
    pub(crate) file_name: String,
    pub(crate) file_type: String,
    pub(crate) size: u64,
    /// Its object landed (the scan may still be under way).
    pub(crate) landed: bool,
    /// `Some(true)` uploaded and clean, `Some(false)` refused by the scan.
    pub(crate) uploaded: Option<bool>,
    pub(crate) sent: bool,
}

/// Sent on a socket's queue instead of a frame: its writer closes the socket.
pub(crate) const CLOSE: &str = "";

/// An answer that is not sent: the request gets none (a platform answer left undocumented).
pub(crate) const SILENT: &str = "\u{0}silent";

/// One WebSocket connection.
pub(crate) struct Socket {
    /// Frames to the client; the connection's writer task drains it.
    pub(crate) tx: mpsc::UnboundedSender<String>,
    /// The `deploymentId` of the connection URL.
    pub(crate) deployment: String,
    /// The session token this socket configured, if any.
    pub(crate) bound: Option<String>,
    /// A `closeSession` with `closeAllConnections: true` was answered on this socket: only now
    /// may it start a new conversation (`configureSession` with `startNew`).
    pub(crate) closed: bool,
}

/// One request being answered: by whom (the session token), what, and the id to echo back.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) guest: &'a Guest,
    pub(crate) token: &'a str,
    pub(crate) req: &'a Value,
    pub(crate) tid: Option<&'a str>,
}

impl Session {
    /// Whether one of its attachments has landed and awaits its verdict.
    pub(crate) fn scanning(&self) -> bool {
        self.attachments
            .values()
            .any(|a| a.landed && a.uploaded.is_none())
    }
}
