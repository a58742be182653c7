//! What every route is and shares: the [`Route`] trait the pipeline drives, its name, what it
//! is built from, and the pieces of an upload answer every route parses the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use url::Url;

use crate::api::Api;
use crate::auth::TokenSource;
use crate::config::{Credentials, Endpoints};
use crate::error::{Error, Result, Stage};
use crate::validate::ValidatedFile;

/// The routes, by the name scripts and records use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteName {
    ExternalContact,
    Guest,
    Conversation,
}

impl RouteName {
    pub const ALL: [RouteName; 3] = [
        RouteName::ExternalContact,
        RouteName::Guest,
        RouteName::Conversation,
    ];

    /// The record's `route` value and the `--route` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteName::ExternalContact => "external-contact",
            RouteName::Guest => "guest",
            RouteName::Conversation => "conversation",
        }
    }

    /// What the route is, for `--route`'s help.
    pub fn about(self) -> &'static str {
        match self {
            RouteName::ExternalContact => {
                "a contract from the original specification, not a published Genesys API (a real tenant answers 404)"
            }
            RouteName::Guest => "Web Messaging Guest API: upload as the customer (WebSocket)",
            RouteName::Conversation => {
                "Platform API media upload into a message conversation (OAuth)"
            }
        }
    }

    /// Whether the route calls the Platform API with an OAuth client.
    pub fn needs_credentials(self) -> bool {
        self != RouteName::Guest
    }

    /// Whether the route announces the file's MD5 (computed in the validation pass).
    pub fn announces_md5(self) -> bool {
        self == RouteName::Conversation
    }
}

/// What every route may need to run: the HTTP client, the hosts, the OAuth client, the limits.
#[derive(Clone)]
pub struct Context {
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
    pub credentials: Option<Credentials>,
    pub retry: crate::retry::Policy,
    pub confirm_timeout: Duration,
    /// The run's pace of Platform API calls, shared by every call.
    pub limiter: Arc<crate::limiter::Limiter>,
}

impl Context {
    /// The authenticated Platform API caller of the REST routes.
    pub(super) fn api(&self, route: RouteName) -> Result<Arc<Api>> {
        let credentials = self.credentials.clone().ok_or_else(|| {
            Error::config(format!(
                "route {} needs OAuth client credentials",
                route.as_str()
            ))
        })?;
        let tokens = TokenSource::new(
            self.http.clone(),
            self.endpoints.token_url(),
            credentials,
            self.retry,
            self.limiter.clone(),
        );
        Ok(Arc::new(Api {
            http: self.http.clone(),
            tokens,
            endpoints: self.endpoints.clone(),
            retry: self.retry,
            limiter: self.limiter.clone(),
        }))
    }
}

/// The hosts a REST route's dry run names.
pub(super) fn rest_hosts(m: &mut serde_json::Map<String, serde_json::Value>, e: &Endpoints) {
    m.insert("apiHost".into(), crate::redact::url(&e.api).into());
    m.insert("loginHost".into(), crate::redact::url(&e.login).into());
}

/// Where and how to PUT the bytes.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    pub file_id: String,
    pub url: Url,
    /// Headers the URL was signed with; sent verbatim.
    pub headers: Vec<(String, String)>,
    pub confirm_url: Option<Url>,
    pub issued_at: Instant,
}

impl UploadTarget {
    /// What confirming the upload needs, once the bytes are sent.
    pub fn uploaded(&self) -> Uploaded {
        Uploaded {
            file_id: self.file_id.clone(),
            confirm_url: self.confirm_url.clone(),
        }
    }
}

/// An upload whose bytes were sent (or may have been, in a run that was killed): the platform's
/// id for it and where to confirm it. The journal keeps it between runs.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub file_id: String,
    pub confirm_url: Option<Url>,
}

/// The platform's word that the upload is complete.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Confirmation {
    pub file_id: String,
    pub virus_scan_status: String,
    /// Route-specific fields for the audit record.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The upload URL an answer named, required and parsed (`field` names it in errors).
pub fn upload_url(id: Option<String>, url: Option<String>, field: &str) -> Result<(String, Url)> {
    let missing = || {
        Error::protocol(
            Stage::RequestUrl,
            format!("invalid upload response: `id` or `{field}` missing"),
        )
    };
    let id = id.filter(|s| !s.is_empty()).ok_or_else(missing)?;
    let url = url.filter(|s| !s.is_empty()).ok_or_else(missing)?;
    let url = Url::parse(&url)
        .map_err(|e| Error::protocol(Stage::RequestUrl, format!("`{field}` is not a URL: {e}")))?;
    Ok((id, url))
}

/// The headers of a PUT: every signed header the platform returned, verbatim, plus the file's
/// Content-Type unless they set one.
pub fn put_headers(
    signed: Option<&serde_json::Map<String, serde_json::Value>>,
    content_type: &str,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = signed
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), content_type.into()));
    }
    headers
}

#[async_trait]
pub trait Route: Send + Sync {
    fn name(&self) -> RouteName;

    /// Route-specific rules, checked after local validation and before any upload request;
    /// `online` false forbids network calls (dry run with --offline).
    async fn check(&self, _file: &ValidatedFile, _online: bool) -> Result<()> {
        Ok(())
    }

    /// A dry run's check that the route can work: credentials, or the guest session.
    async fn preflight(&self) -> Result<()>;

    /// Where this route's uploads land (the contact; the conversation and communication; the
    /// deployment and session): with the file's name and SHA-256, the journal's key.
    fn target(&self) -> String;

    async fn request_upload(&self, file: &ValidatedFile) -> Result<UploadTarget>;

    /// The platform's confirmation of an upload whose bytes were sent in this run.
    async fn confirm(&self, file: &ValidatedFile, up: &Uploaded) -> Result<Confirmation>;

    /// For an upload an earlier run left part-way: its confirmation if the platform has the
    /// bytes, `None` if not (then it is uploaded again). `landed`: the journal saw the PUT
    /// answered, so the bytes should be there.
    async fn resume(
        &self,
        file: &ValidatedFile,
        up: &Uploaded,
        landed: bool,
    ) -> Result<Option<Confirmation>>;

    /// Whether the route sends the confirmed file as a message ([`Route::send`]).
    fn sends(&self) -> bool {
        false
    }

    /// Sends the confirmed file as a message, adding what the record needs to `conf`. Not
    /// idempotent: the pipeline journals before it, and never calls it twice for one upload
    /// (a re-run calls [`Route::finish_send`] instead).
    async fn send(&self, _file: &ValidatedFile, _conf: &mut Confirmation) -> Result<()> {
        Ok(())
    }

    /// Finishes a send that an earlier run started and may have made (the journal says
    /// `send-started`): checks the platform for what arrived, and sends only what did not.
    /// `Ok(false)`: this route cannot check, so nothing is sent.
    async fn finish_send(&self, _file: &ValidatedFile, _conf: &mut Confirmation) -> Result<bool> {
        Ok(false)
    }

    /// After `file` failed or was abandoned: removes what the route left on the platform for it
    /// that nothing uses (the guest route's attachments no message carries), and returns what the
    /// failure's record says of it.
    async fn discard(&self, _file: &ValidatedFile) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }

    /// What the target accepts, as the platform reported it (for `doctor`), where it says.
    async fn rules(&self) -> Option<String> {
        None
    }

    /// End of the run: release connections.
    async fn finish(&self) {}
}
