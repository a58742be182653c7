//! The one place that turns an [`Error`] into an exit code, a record `kind` and a next step.

use crate::error::{Error, Rule, Stage};
use crate::redact::for_terminal;

/// The process's exit status, documented in the README's table. `app` is the only place that
/// picks one for the process; records carry the status of their own failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    /// Bad flags or settings, or an input that cannot be read as a list of files.
    Usage = 2,
    Auth = 3,
    Validation = 4,
    /// The platform refused, or answered with something that is not its protocol.
    Remote = 5,
    Network = 6,
    Infected = 7,
    FileChanged = 8,
    Interrupted = 130,
    /// Every upload succeeded, but a webhook event was neither delivered nor kept for later.
    WebhookLost = 9,
    /// stdout was closed by its reader (`| head`): files not started were left for a later run.
    StdoutClosed = 141,
}

impl ExitStatus {
    /// Every status, in the order `--help`, the man page and the README list them.
    pub const ALL: [ExitStatus; 11] = [
        ExitStatus::Success,
        ExitStatus::Usage,
        ExitStatus::Auth,
        ExitStatus::Validation,
        ExitStatus::Remote,
        ExitStatus::Network,
        ExitStatus::Infected,
        ExitStatus::FileChanged,
        ExitStatus::WebhookLost,
        ExitStatus::Interrupted,
        ExitStatus::StdoutClosed,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    /// What the status means, in a line (the README's table says more).
    pub fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Success => "every file uploaded (or skipped as already uploaded)",
            ExitStatus::Usage => "usage or configuration error",
            ExitStatus::Auth => "authentication failed",
            ExitStatus::Validation => "a file was refused by validation",
            ExitStatus::Remote => "the platform or the store refused the upload",
            ExitStatus::Network => "network failure, or a message that may have been sent",
            ExitStatus::Infected => "the platform's virus scan flagged a file",
            ExitStatus::FileChanged => "a file changed while it was being uploaded",
            ExitStatus::WebhookLost => "uploads done, but a webhook event was lost",
            ExitStatus::Interrupted => "interrupted (Ctrl-C, SIGTERM)",
            ExitStatus::StdoutClosed => "stdout closed by its reader; later files not started",
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s as u8)
    }
}

pub fn exit_status(err: &Error) -> ExitStatus {
    match err {
        Error::Config { .. } | Error::EnvFile { .. } | Error::Pattern { .. } => ExitStatus::Usage,
        Error::Auth { .. } => ExitStatus::Auth,
        Error::Validation { .. } => ExitStatus::Validation,
        Error::Remote { .. } | Error::Protocol { .. } => ExitStatus::Remote,
        Error::Network { .. } | Error::MaybeSent { .. } | Error::UntrustedCertificate { .. } => {
            ExitStatus::Network
        }
        Error::Infected { .. } => ExitStatus::Infected,
        // The same class as a change during the upload: the file is not in a state to send.
        Error::FileChanged { .. } | Error::StillWriting { .. } => ExitStatus::FileChanged,
        Error::Interrupted => ExitStatus::Interrupted,
        Error::State { .. } => ExitStatus::Usage,
        Error::WebhookLost { .. } => ExitStatus::WebhookLost,
    }
}

/// The `error.kind` of a failure record: stable names scripts can switch on.
pub fn kind(err: &Error) -> &'static str {
    match err {
        Error::Config { .. } | Error::EnvFile { .. } | Error::Pattern { .. } => "config",
        Error::Auth { .. } => "auth",
        Error::Validation { .. } => "validation",
        Error::Remote { .. } => "remote",
        Error::Protocol { .. } => "protocol",
        Error::Network { .. } | Error::MaybeSent { .. } => "network",
        Error::UntrustedCertificate { .. } => "tls",
        Error::Infected { .. } => "infected",
        Error::FileChanged { .. } | Error::StillWriting { .. } => "file-changed",
        Error::Interrupted => "interrupted",
        Error::State { .. } => "state",
        Error::WebhookLost { .. } => "webhook-lost",
    }
}

/// Every configuration message names the flag and variable at fault; this says where to look.
const CONFIG_HINT: &str = "set it with the flag or variable named above; `gcupload doctor` lists every setting, set or not, and where each came from; `gcupload --help` lists every flag";

/// A refused `.env` is refused whole, before anything else is read.
const ENV_FILE_HINT: &str = "nothing of the .env file was used; fix it as said above, name another file with --env-file, or run without one with --no-env-file";

/// A glob pattern is gcupload's to expand only when the shell leaves it alone.
const PATTERN_HINT: &str = "quote the pattern so the shell passes it as it is ('in/*.pdf'); to match `*`, `?`, `[` or `{` literally, put it in brackets (`[*]`, `[?]`, `[[]`, `[{]`) or escape it with a backslash";

/// What to do next, when there is something useful to say.
pub fn hint(err: &Error) -> Option<String> {
    let h = match err {
        Error::Config { .. } => CONFIG_HINT,
        Error::EnvFile { .. } => ENV_FILE_HINT,
        Error::Pattern { .. } => PATTERN_HINT,
        Error::StillWriting { .. } => {
            "wait until the writer has finished and closed the file, then run again; files found by a walk (-r) or a glob are deferred instead"
        }
        Error::Validation {
            by_deployment: true,
            rule,
            ..
        } => match rule {
            Rule::TooLarge => {
                "the file is over the deployment's size limit: send a smaller file, or ask the deployment's admin to raise maxFileSizeKB"
            }
            Rule::BlockedExtension => {
                "the deployment blocks this extension; ask its admin, or send another format"
            }
            _ => {
                "the deployment does not accept this type: send another format, or ask its admin to allow it in the Messenger configuration"
            }
        },
        Error::Validation { rule, .. } => match rule {
            Rule::NotFound | Rule::Unreadable => "check the path and its permissions",
            Rule::NotRegularFile => {
                "only regular files are uploaded: copy what the FIFO or device gives into a file and upload that"
            }
            Rule::Directory => "pass --recursive (-r) to upload the files inside the directory",
            Rule::Empty => "an empty file cannot be sent; check that it was written completely",
            Rule::TooLarge => "raise --max-size only if the platform accepts larger files",
            // --allow-type only takes types gcupload can verify, so it cannot help an unknown one.
            Rule::UnknownType => {
                "gcupload sends only the types listed; if the content is one of them, rename the file to its extension, otherwise convert it (e.g. to PDF)"
            }
            Rule::TypeNotAllowed => {
                "if this type should be sent, add it to --allow-type (comma-separated content types), or leave --allow-type out to allow every type gcupload can verify"
            }
            Rule::Executable | Rule::ContentSafety => {
                "this content is never sent; check where the file came from"
            }
            Rule::ZipSignature | Rule::MagicMismatch => {
                "the extension does not match the content; rename the file to its real type"
            }
            Rule::FileName => "rename the file, or pass --name with an accepted name",
            Rule::BlockedExtension => {
                "the deployment blocks this extension; ask its admin, or send another format"
            }
        },
        Error::Auth { remote: r, .. } => {
            return Some(match r.code.as_deref() {
                Some("insufficient_scope") => "the OAuth client lacks a scope or permission this route needs: add it to the client's role".into(),
                _ => "credentials wrong or token expired: check GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET and GENESYS_REGION (invalid_client means bad credentials)".into(),
            });
        }
        Error::Remote { remote, .. } if guest_hint(remote.code.as_deref()).is_some() => {
            guest_hint(remote.code.as_deref()).expect("checked")
        }
        Error::Remote { remote, stage } => match (remote.status, remote.code.as_deref()) {
            (_, Some("message.failed")) => {
                "the platform took the message but did not deliver it: check the conversation (is it still connected?), then send the file again with --force"
            }
            (_, Some("media.invalid")) => {
                "the platform rejected the content (virus scan or type check); do not resend it"
            }
            (Some(401), Some("insufficient_scope")) => {
                "the OAuth client lacks a scope or permission this route needs"
            }
            (Some(401), _) => "the token was refused: check the credentials and the region",
            // The guest socket's configureSession answer to an unknown or inactive deployment.
            (Some(400), _) if remote.message.to_ascii_lowercase().contains("deployment") => {
                "check --deployment (GENESYS_DEPLOYMENT_ID): it must be the id of an active Messenger deployment in this region (--region); `gcupload doctor --deployment <ID>` checks one"
            }
            _ if remote.is_expired_url() => {
                "the pre-signed URL expired before the upload; run again (a fresh URL is requested each time)"
            }
            (Some(403), Some("WebsocketAccessDenied")) => {
                "pass --origin https://<a domain the deployment allows> (its Messenger configuration lists them)"
            }
            (Some(403), _) if *stage == Stage::Transfer => {
                "the storage refused the upload signature; this is a platform or proxy problem, retry later"
            }
            (Some(403), _) => {
                "the client lacks permission for this target, or the id is not in this organisation"
            }
            (Some(404), _) => {
                "check the target id; on the external-contact route, a contract from the original specification and not a published Genesys API, a real tenant always answers 404: use the guest or conversation route"
            }
            (Some(413), _) | (_, Some("EntityTooLarge")) => {
                "the file is over the tenant's limit: check the limit and --max-size"
            }
            (Some(429), _) => "rate limited: wait for the Retry-After interval and run again",
            (Some(s), _) if s >= 500 => "the platform had an internal problem: retry later",
            _ => return None,
        },
        Error::Protocol { .. } => {
            "the server does not speak the expected protocol: check --base-url and the route"
        }
        Error::Network {
            stage: Stage::Send, ..
        }
        | Error::MaybeSent { .. } => {
            "the message may have reached the conversation: check it before sending the file again (--force uploads and sends it anew)"
        }
        Error::Network { .. } => "check the network, the region and --base-url",
        Error::UntrustedCertificate { .. } => {
            "behind a TLS-inspecting proxy, point SSL_CERT_FILE at the proxy's CA bundle (or install it in the system's CA certificates); otherwise check the host (--region, --base-url) and the machine's CA certificates"
        }
        Error::Infected { .. } => "the platform quarantined the file; do not resend it",
        Error::FileChanged { .. } => {
            "wait until whatever writes the file has finished, then run again"
        }
        Error::Interrupted => "run again to upload the remaining files",
        Error::WebhookLost { .. } => {
            "free disk space in the state directory (or drop --no-state) so undelivered events are kept; the record above is the event to re-send"
        }
        Error::State { server: true, .. } => {
            "check that the state database (--state-url, GCUPLOAD_STATE_URL) is reachable from this host and the URL's user, password and database are right (`gcupload doctor` checks it); nothing was sent without it, and a later run resumes where this one stopped"
        }
        Error::State { .. } => {
            "fix the state directory (--state-dir, GCUPLOAD_STATE_DIR), or run with --no-state to upload without skip and resume"
        }
    };
    Some(h.to_string())
}

/// Web Messaging guest error codes (transport SDK `ErrorCode`).
fn guest_hint(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "4000" => {
            "file upload is not enabled on this deployment: enable it in Messenger configuration"
        }
        "4001" => {
            "the deployment does not accept this file type: check its allowed media (Messenger configuration or Supported Content)"
        }
        "4002" => "the file is too large for the deployment's limit (maxFileSizeKB)",
        "4003" => "the platform found the content invalid (virus scan); do not resend it",
        "4004" | "4005" => "the deployment refused the file name or extension: rename the file",
        "4006" => "the guest session expired: run without --session-token to start a new one",
        "4007" => "the guest session was not found: run without --session-token to start a new one",
        "4008" | "4009" | "4010" => {
            "the attachment is gone or was not uploaded: upload the file again"
        }
        "4011" => "the message text is too long (4096 bytes at most): shorten --message",
        "4013" => {
            "the session's custom attributes are too large (2048 bytes at most): send fewer or shorter ones"
        }
        "4017" => {
            "the session was authenticated and cannot continue as an anonymous guest: use a new --session-token"
        }
        "4020" => {
            "the platform says a request parameter is missing: check --deployment and the session token; if they are right, report it as a gcupload bug"
        }
        "4029" => "too many requests on this session: wait and run again",
        _ => return None,
    })
}

/// The one-line human message for stderr: file, stage, what happened, next step. The path and
/// the error (which may quote a server) are shown escaped: a terminal acts on no byte of theirs.
pub fn human(path: &str, err: &Error) -> String {
    let mut s = format!(
        "{} {}: [{}] {}",
        crate::colour::red("error:"),
        for_terminal(path),
        err.stage(),
        for_terminal(&err.to_string())
    );
    if let Some(h) = hint(err) {
        s.push_str("\n  hint: ");
        s.push_str(&h);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Remote;

    fn guest(code: &str) -> Error {
        Error::Remote {
            stage: Stage::RequestUrl,
            remote: Remote {
                status: Some(400),
                code: Some(code.into()),
                ..Remote::default()
            },
        }
    }

    /// The transport SDK's codes 4013 (CustomAttributeSizeTooLarge), 4017
    /// (CannotDowngradeToUnauthenticated) and 4020 (MissingParameter) each get their own next step.
    #[test]
    fn guest_codes_4013_4017_4020_have_hints() {
        let hint = |c: &str| hint(&guest(c)).unwrap();
        assert!(hint("4013").contains("custom attributes"));
        assert!(hint("4017").contains("--session-token"));
        assert!(hint("4020").contains("missing"));
    }
}
