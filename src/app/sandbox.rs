//! The client's side of the sandbox: `--sandbox` points an upload at an embedded sandbox, and
//! `gcupload sandbox` runs one standalone. The sandbox itself knows nothing of the client.

use super::cli::{SandboxArgs, UploadArgs};
use super::settings::{Source, Sources};
use crate::error_reporting::ExitStatus;
use crate::routes::RouteName;
use crate::sandbox::{Faults, Sandbox, SandboxConfig};

/// What an embedded sandbox run holds until it ends: the sandbox, and the journal of its run.
pub struct Embedded {
    _sandbox: Sandbox,
    _journal: Option<tempfile::TempDir>,
}

/// `--sandbox`: starts the embedded sandbox and points the upload at it. The sandbox lives as
/// long as the returned handle. Each start is a new tenant, so its uploads are journaled in a
/// journal of their own, removed afterwards: never in the user's real one (unless
/// `--state-dir` is given on the command line).
pub async fn embedded(
    mut args: UploadArgs,
    sources: &Sources,
) -> Result<(UploadArgs, Option<Embedded>), ExitStatus> {
    if !args.sandbox {
        return Ok((args, None));
    }
    let s = match Sandbox::start(SandboxConfig::default()).await {
        Ok(s) => s,
        Err(e) => {
            crate::stderr_line!("error: the embedded sandbox could not start: {e}");
            return Err(ExitStatus::Usage);
        }
    };
    point_at(&s, &mut args);
    let journal = match own_journal(&mut args, sources) {
        Ok(j) => j,
        Err(e) => {
            crate::stderr_line!("error: no temporary directory for the sandbox run's journal: {e}");
            return Err(ExitStatus::Usage);
        }
    };
    if !args.quiet {
        crate::stderr_line!(
            "sandbox: serving {} (embedded, no account needed)",
            s.base_url
        );
    }
    Ok((
        args,
        Some(Embedded {
            _sandbox: s,
            _journal: journal,
        }),
    ))
}

/// A temporary journal for the run, unless `--state-dir` was given as a flag or there is none.
fn own_journal(
    args: &mut UploadArgs,
    sources: &Sources,
) -> std::io::Result<Option<tempfile::TempDir>> {
    let flagged = sources
        .iter()
        .any(|(id, src)| id == "state_dir" && *src == Source::Flag);
    if args.no_state || flagged {
        return Ok(None);
    }
    let dir = tempfile::Builder::new()
        .prefix("gcupload-sandbox-journal-")
        .tempdir()?;
    let state = &mut args.settings.webhook.state;
    state.state_dir = Some(dir.path().to_path_buf());
    state.outbox = None;
    // A sandbox's uploads never go into a shared journal.
    state.state_url = None;
    Ok(Some(dir))
}

/// The sandbox's origin and credentials, and the ids of the route picked with `--route`
/// (external-contact by default) unless the user gave their own.
fn point_at(s: &Sandbox, args: &mut UploadArgs) {
    let settings = &mut args.settings;
    settings.base_url = Some(s.base_url.to_string());
    settings.client_id = Some(s.client_id().into());
    settings.client_secret = Some(s.client_secret().into());
    let fill = |v: &mut Option<String>, id: &str| {
        v.get_or_insert_with(|| id.to_string());
    };
    let route = *settings.route.get_or_insert(RouteName::ExternalContact);
    match route {
        RouteName::ExternalContact => fill(&mut settings.external_contact, s.external_contact_id()),
        RouteName::Guest => fill(&mut settings.deployment, s.deployment_id()),
        RouteName::Conversation => {
            fill(&mut settings.conversation, s.conversation_id());
            fill(&mut settings.communication, s.communication_id());
        }
    }
    if settings.webhook_url.is_none() {
        settings.webhook_url = Some(s.webhook_url().into());
    }
}

/// `gcupload sandbox`: runs until interrupted, after printing its settings as one JSON line.
pub async fn standalone(args: SandboxArgs) -> ExitStatus {
    let config = SandboxConfig {
        listen: args.listen,
        store_dir: args.store_dir.clone(),
        state_dir: args.state.clone(),
        faults: Faults {
            token_ttl_secs: args.token_ttl,
            url_ttl_secs: args.url_ttl,
            webhook_fail: args.webhook_fail,
            ..Faults::default()
        },
    };
    // Before the settings line says it is ready: a SIGTERM right after it still cleans up.
    let mut stops = super::signals::Stops::install();
    let sandbox = match Sandbox::start(config).await {
        Ok(s) => s,
        Err(e) => {
            crate::stderr_line!("error: the sandbox could not start on {}: {e}", args.listen);
            return ExitStatus::Usage;
        }
    };
    // A reader that closed stdout still has a sandbox to use; only a failed write is told.
    let _ = super::print::print_all(format!("{}\n", sandbox.info()).as_bytes(), "the settings");
    crate::stderr_line!(
        "sandbox: serving {} (store {}); Ctrl-C to stop",
        sandbox.base_url,
        sandbox.store_url
    );
    // Ctrl-C and SIGTERM alike: dropping the sandbox removes its temporary store.
    stops.next().await;
    drop(sandbox);
    ExitStatus::Success
}
