//! A local emulator of the Genesys Cloud surfaces gcupload talks to: OAuth, the routes, an S3
//! object store (served by `s3s`, so pre-signed URLs are verified by a real S3 implementation),
//! a virus scan, a webhook receiver and fault injection.
//!
//! The sandbox judges the client: it never calls client code to decide what to accept, and
//! client code reaches it only through this module's public items. Its rules come from the
//! protocol reference (genesys-protocols.md).
//!
//! Modules come in layers; each imports only layers above it, and none imports this file:
//! 1. `state` (identity, faults, request log) and `scan` (the virus scan);
//! 2. `respond` (shapes of answers) and `store` (objects, signed URLs, scan verdicts);
//! 3. `oauth`, `observe`, `control`, and `store_front` (the store's HTTP side);
//! 4. the routes: `external_contact`, `conversation` (and `conversation_history`, what the
//!    conversation holds), `guest`.
//!
//! This file builds them and connects the store's "object landed" hook to the routes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::middleware;
use serde_json::{Value, json};
use url::Url;

mod control;
mod conversation;
mod conversation_history;
mod external_contact;
mod guest;
mod identity;
mod oauth;
mod observe;
mod respond;
mod scan;
mod scratch;
mod state;
mod store;
mod store_front;

pub use state::{Faults, Inject, PAUSE_POINTS, Pause, SeenRequest};
pub use store::StoredObject;

use conversation::Conversation;
use guest::Guest;
use identity::Identity;
use state::State;
use store::Store;

/// How the sandbox behaves; tests adjust faults at runtime through [`Sandbox::faults`].
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub listen: SocketAddr,
    pub store_dir: Option<PathBuf>,
    /// Keep the identity (credentials, ids, port) and the store here across restarts, so that a
    /// client's journal still matches after one; `None`: a fresh tenant in a temporary store.
    pub state_dir: Option<PathBuf>,
    pub faults: Faults,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store_dir: None,
            state_dir: None,
            faults: Faults::default(),
        }
    }
}

/// A running sandbox; dropping it stops the servers and removes a temporary store.
pub struct Sandbox {
    pub base_url: Url,
    pub store_url: Url,
    state: Arc<State>,
    store: Arc<Store>,
    conversation: Arc<Conversation>,
    guest: Arc<Guest>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Sandbox {
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let kept = config.state_dir.as_deref();
        let mut identity = match kept {
            Some(dir) => Identity::load_or_create(dir)?,
            None => Identity::fresh(),
        };
        let (root, tmp) = match (&config.store_dir, kept) {
            (Some(d), _) => (d.clone(), None),
            (None, Some(dir)) => (dir.join("store"), None),
            (None, None) => {
                let t = scratch::temporary_store()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let api_listener = bind(config.listen, identity.port).await?;
        if let Some(dir) = kept {
            identity.port = api_listener.local_addr()?.port();
            identity.save(dir)?;
        }
        let store_listener =
            tokio::net::TcpListener::bind(SocketAddr::new(config.listen.ip(), 0)).await?;
        let base_url = origin(api_listener.local_addr()?);
        let store_url = origin(store_listener.local_addr()?);
        let state = Arc::new(State::new(config.faults, identity));
        let store = Arc::new(Store::new(root, &store_url)?);
        let guest = Guest::new(state.clone(), store.clone());
        let conversation = Conversation::new(state.clone(), store.clone());
        let landed = landed(guest.clone(), conversation.clone());
        let api = api_router(&state, &store, guest.clone(), conversation.clone());
        let objects = store_front::router(state.clone(), store.clone(), landed);
        let tasks = vec![
            tokio::spawn(serve(api_listener, api)),
            tokio::spawn(serve(store_listener, objects)),
        ];
        Ok(Sandbox {
            base_url,
            store_url,
            state,
            store,
            conversation,
            guest,
            tasks,
            _tmp: tmp,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }
    pub fn client_secret(&self) -> &str {
        &self.state.client_secret
    }
    pub fn external_contact_id(&self) -> &str {
        &self.state.external_contact_id
    }
    pub fn deployment_id(&self) -> &str {
        &self.state.deployment_id
    }
    pub fn conversation_id(&self) -> &str {
        &self.state.conversation_id
    }
    pub fn communication_id(&self) -> &str {
        &self.state.communication_id
    }
    pub fn webhook_url(&self) -> Url {
        self.base_url.join("_sandbox/webhook").expect("static path")
    }

    /// What a client needs to talk to this sandbox, as printed by `gcupload sandbox`.
    pub fn info(&self) -> Value {
        json!({
            "baseUrl": self.base_url.as_str().trim_end_matches('/'),
            "storeUrl": self.store_url.as_str().trim_end_matches('/'),
            "clientId": self.client_id(),
            "clientSecret": self.client_secret(),
            "externalContactId": self.external_contact_id(),
            "deploymentId": self.deployment_id(),
            "conversationId": self.conversation_id(),
            "communicationId": self.communication_id(),
            "webhookUrl": self.webhook_url(),
            "controlUrl": self.base_url.join("_sandbox/").expect("static path"),
        })
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.state.faults()
    }

    /// Every object in the store with its size and SHA-256.
    pub fn objects(&self) -> Vec<StoredObject> {
        self.store.objects()
    }

    /// Webhook bodies received, in order.
    pub fn webhooks(&self) -> Vec<Value> {
        self.state.webhooks.lock().expect("webhooks").clone()
    }

    /// Every access token issued so far (tests check none of them leaks into output).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state
            .tokens
            .lock()
            .expect("tokens")
            .keys()
            .cloned()
            .collect()
    }

    /// Messages sent through the guest and conversation routes, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.state.messages.lock().expect("messages").clone()
    }

    /// Each conversation media id with its status (`uploading`, `valid`, `invalid`).
    pub fn media_statuses(&self) -> Vec<(String, String)> {
        self.conversation.statuses()
    }

    /// How many pauses (see [`Pause`]) have started at `point`: a test waits for this before it
    /// kills the client. 0 for a point that is not one of [`PAUSE_POINTS`].
    pub fn paused(&self, point: &str) -> u32 {
        self.state.paused().get(point).copied().unwrap_or(0)
    }

    /// Requests refused by a rate limit so far: `guest` (4029) or `api` (429).
    pub fn refused(&self, surface: &str) -> u32 {
        self.state.refused().get(surface).copied().unwrap_or(0)
    }

    /// Guest onAttachment requests that came while another attachment of the same session had
    /// landed and awaited its verdict (the scan, `guestScanDelayMs`): uploads kept in flight side
    /// by side on one session.
    pub fn guest_uploads_during_scans(&self) -> u32 {
        let n = &self.guest.requested_during_scans;
        n.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state.requests().clone()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The object-landed fan-out: the store calls it after each scan; the routes that issued the
/// URL react (upload events on the guest socket, media status on the conversation).
fn landed(guest: Arc<Guest>, conversation: Arc<Conversation>) -> store_front::Landed {
    Arc::new(move |key: &str, infected: bool| {
        guest.object_landed(key, infected);
        conversation.object_landed(key, infected);
    })
}

/// The API origin: OAuth, the three routes and the control endpoints, behind one middleware.
fn api_router(
    state: &Arc<State>,
    store: &Arc<Store>,
    guest: Arc<Guest>,
    conversation: Arc<Conversation>,
) -> axum::Router {
    axum::Router::new()
        .merge(oauth::router(state.clone()))
        .merge(external_contact::router(state.clone(), store.clone()))
        .merge(guest::router(guest))
        .merge(conversation::router(conversation))
        .merge(conversation_history::router(
            conversation_history::History::new(state.clone()),
        ))
        .merge(control::router(state.clone(), store.clone()))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
}

/// The API listener: on `listen`, or, when that asks for any port, on the port a kept identity
/// served last (its clients' settings name it), if it is still free.
async fn bind(listen: SocketAddr, kept_port: u16) -> std::io::Result<tokio::net::TcpListener> {
    if listen.port() == 0 && kept_port != 0 {
        let again = SocketAddr::new(listen.ip(), kept_port);
        match tokio::net::TcpListener::bind(again).await {
            Ok(l) => return Ok(l),
            Err(e) => {
                tracing::warn!("sandbox: port {kept_port} is taken ({e}); serving on another")
            }
        }
    }
    tokio::net::TcpListener::bind(listen).await
}

fn origin(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}/")).expect("socket addresses form URLs")
}

async fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!("sandbox server stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    /// The wall: the sandbox must judge the client with its own code, so no file of it may
    /// name anything through `crate::` (client modules included).
    #[test]
    fn the_sandbox_names_no_client_code() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sandbox");
        let mut dirs = vec![root];
        let mut checked = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let named = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .any(|l| l.contains(concat!("crate", "::")));
                assert!(!named, "{} reaches outside the sandbox", path.display());
                checked += 1;
            }
        }
        assert!(checked > 10, "only {checked} files found");
    }
}
