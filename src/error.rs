//! The library's error type. Every variant carries what a user needs to act on it; how each maps
//! to an exit code and a hint lives in one place, `error_reporting`.

use std::fmt;

/// Where in the pipeline a failure happened; printed in messages and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Config,
    Validate,
    Auth,
    RequestUrl,
    Transfer,
    Confirm,
    Send,
    Webhook,
    /// The journal and outbox on disk.
    State,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Config => "config",
            Stage::Validate => "validate",
            Stage::Auth => "auth",
            Stage::RequestUrl => "request-url",
            Stage::Transfer => "transfer",
            Stage::Confirm => "confirm",
            Stage::Send => "send",
            Stage::Webhook => "webhook",
            Stage::State => "state",
        })
    }
}

/// The local validation rule a file broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    NotFound,
    /// A directory given without `--recursive`.
    Directory,
    NotRegularFile,
    Empty,
    TooLarge,
    UnknownType,
    TypeNotAllowed,
    Executable,
    ZipSignature,
    MagicMismatch,
    ContentSafety,
    FileName,
    BlockedExtension,
    Unreadable,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("rule"))
    }
}

/// What the platform said about a failed call, as far as it said anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remote {
    pub status: Option<u16>,
    /// Genesys `code`, OAuth `error`, or S3 `<Code>`.
    pub code: Option<String>,
    pub message: String,
    pub correlation_id: Option<String>,
}

impl Remote {
    /// S3 answers a pre-signed URL past its expiry with 403 AccessDenied "Request has expired".
    pub fn is_expired_url(&self) -> bool {
        self.status == Some(403)
            && self.code.as_deref() == Some("AccessDenied")
            && self.message.to_ascii_lowercase().contains("expired")
    }
}

impl Remote {
    /// A refusal saying the object is not there (never uploaded, or not as announced): a 4xx
    /// whose code or message says so, whatever the status (400, 404 and 409 are all plausible
    /// for an absent object; protocol reference §1). Refusals of the caller (401, 403, 413,
    /// 429) never say it.
    pub fn says_absent(&self) -> bool {
        if !matches!(self.status, Some(400 | 404 | 409 | 410 | 412 | 422)) {
            return false;
        }
        let code = self.code.as_deref().unwrap_or("").to_ascii_lowercase();
        let message = self.message.to_ascii_lowercase();
        [
            "not.found",
            "not_found",
            "notfound",
            "size.mismatch",
            "nosuchkey",
        ]
        .iter()
        .any(|k| code.contains(k))
            || ["not found", "no object", "not uploaded", "was not uploaded"]
                .iter()
                .any(|k| message.contains(k))
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "HTTP 404 not.found: message", "media.invalid: message", "HTTP 400: message": a code
        // that only repeats the status is left out.
        let status = self.status.map(|s| format!("HTTP {s}"));
        let code = self
            .code
            .as_deref()
            .filter(|c| self.status.is_none_or(|s| *c != s.to_string()));
        let head: Vec<&str> = status.as_deref().into_iter().chain(code).collect();
        f.write_str(&head.join(" "))?;
        if !self.message.is_empty() {
            if !head.is_empty() {
                f.write_str(": ")?;
            }
            f.write_str(&self.message)?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, " (correlation id {id})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {message}")]
    Config { message: String },

    /// The `.env` file was refused (not ours, writable by others, a bad line): nothing of it
    /// was used.
    #[error("configuration: {message}")]
    EnvFile { message: String },

    /// An input that looks like a glob pattern (and names no file) but cannot be parsed.
    #[error("`{pattern}` is neither a file nor a valid glob pattern ({message})")]
    Pattern { pattern: String, message: String },

    #[error("rejected by rule {rule}: {message}")]
    Validation {
        rule: Rule,
        message: String,
        /// The guest deployment's rule, not a local one: local flags cannot change it.
        by_deployment: bool,
    },

    #[error("authentication failed during the {stage} step: {remote}")]
    Auth { stage: Stage, remote: Remote },

    #[error("the platform refused the {stage} step: {remote}")]
    Remote { stage: Stage, remote: Remote },

    #[error("the platform's answer to the {stage} step is invalid: {message}")]
    Protocol { stage: Stage, message: String },

    #[error("could not reach {host} during the {stage} step: {message}")]
    Network {
        stage: Stage,
        host: String,
        message: String,
    },

    /// The server's TLS certificate is not trusted here: retrying cannot help (a TLS-inspecting
    /// proxy, a machine without the CA certificates, a wrong host).
    #[error(
        "the TLS certificate of {host} is not trusted on this machine ({detail}) during the {stage} step"
    )]
    UntrustedCertificate {
        stage: Stage,
        host: String,
        detail: String,
    },

    #[error("the platform's virus scan flagged the file as {status}")]
    Infected { status: String },

    /// A message send that may have reached the platform, unconfirmed: its answer was lost (or
    /// an earlier run was stopped during it) and no check of the conversation could settle it.
    #[error("the message may have been sent, so it is not sent again: {why}")]
    MaybeSent { why: String },

    #[error("the file changed while it was being uploaded: {message}")]
    FileChanged { message: String },

    /// A file named explicitly that is still being written (one found by a walk is deferred).
    #[error("the file is still being written: {why}; nothing was sent")]
    StillWriting { why: String },

    #[error("interrupted before the upload finished")]
    Interrupted,

    #[error("the state store: {message}")]
    State {
        message: String,
        /// The store is a database server (`--state-url`), not a directory of this host.
        server: bool,
    },

    #[error("the upload succeeded but its webhook event is lost: {message}")]
    WebhookLost { message: String },
}

impl Error {
    pub fn stage(&self) -> Stage {
        match self {
            Error::Config { .. } | Error::EnvFile { .. } | Error::Pattern { .. } => Stage::Config,
            Error::StillWriting { .. } => Stage::Validate,
            Error::Validation { .. } => Stage::Validate,
            Error::Auth { stage, .. }
            | Error::Remote { stage, .. }
            | Error::Protocol { stage, .. }
            | Error::Network { stage, .. }
            | Error::UntrustedCertificate { stage, .. } => *stage,
            Error::Infected { .. } => Stage::Confirm,
            Error::MaybeSent { .. } => Stage::Send,
            Error::FileChanged { .. } | Error::Interrupted => Stage::Transfer,
            Error::State { .. } => Stage::State,
            Error::WebhookLost { .. } => Stage::Webhook,
        }
    }

    /// A refusal that no retry and no later run changes: the file's name or content breaks a
    /// rule (gcupload's or the deployment's), or the virus scan flagged it. `--failed-to` moves
    /// such files out of the drop folder. A file that is missing, unreadable or not a regular
    /// file is not one: that can be fixed where it is, or there is nothing to move.
    pub fn never_sendable(&self) -> bool {
        match self {
            Error::Validation { rule, .. } => !matches!(
                rule,
                Rule::NotFound | Rule::Unreadable | Rule::Directory | Rule::NotRegularFile
            ),
            Error::Infected { .. } => true,
            _ => false,
        }
    }

    pub fn remote(&self) -> Option<&Remote> {
        match self {
            Error::Auth { remote: r, .. } | Error::Remote { remote: r, .. } => Some(r),
            _ => None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    pub fn invalid(rule: Rule, message: impl Into<String>) -> Self {
        Error::Validation {
            rule,
            message: message.into(),
            by_deployment: false,
        }
    }

    /// A file the guest deployment's settings refuse (its types, size limit, blocked extensions).
    pub fn refused_by_deployment(rule: Rule, message: impl Into<String>) -> Self {
        Error::Validation {
            rule,
            message: message.into(),
            by_deployment: true,
        }
    }

    pub fn protocol(stage: Stage, message: impl Into<String>) -> Self {
        Error::Protocol {
            stage,
            message: message.into(),
        }
    }

    /// A message send whose request may have reached the platform before the connection failed.
    pub fn ambiguous_send(err: &reqwest::Error) -> Self {
        Error::MaybeSent {
            why: format!(
                "the connection failed after the request went out: {}",
                Error::network(Stage::Send, err)
            ),
        }
    }

    /// A transport-level failure of reqwest, with the URL's query (where signatures live) left out.
    pub fn network(stage: Stage, err: &reqwest::Error) -> Self {
        let host = err
            .url()
            .and_then(|u| u.host_str().map(|h| h.to_string()))
            .unwrap_or_else(|| "the server".into());
        if let Some(detail) = untrusted_certificate(err) {
            return Error::UntrustedCertificate {
                stage,
                host,
                detail,
            };
        }
        let kind = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "connection failed"
        } else if err.is_body() || err.is_request() {
            "the request failed"
        } else {
            "the answer could not be read"
        };
        // Walk the source chain without the URL (which reqwest puts in its own Display).
        let mut detail = String::new();
        let mut src = std::error::Error::source(err);
        while let Some(s) = src {
            detail = s.to_string();
            src = s.source();
        }
        let message = if detail.is_empty() {
            kind.to_string()
        } else {
            format!("{kind} ({detail})")
        };
        Error::Network {
            stage,
            host,
            message,
        }
    }
}

/// What is wrong with the server's certificate, when that is why a connection failed. The TLS
/// error sits deep in the chain, sometimes inside an `io::Error` (whose `source` skips it).
pub fn untrusted_certificate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(why)) =
                candidate.downcast_ref::<rustls::Error>()
            {
                return Some(format!("{why:?}"));
            }
        }
        next = inner.or_else(|| e.source());
    }
    None
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
