//! The client's side of the sandbox: `--sandbox` points an upload at an embedded sandbox, and
//! `gcupload sandbox` runs one standalone. The sandbox itself knows nothing of the client.

use super::cli::{SandboxArgs, UploadArgs};
use crate::error_reporting::ExitStatus;
use crate::routes::RouteName;
use crate::sandbox::{Faults, Sandbox, SandboxConfig};

/// `--sandbox`: starts the embedded sandbox and points the upload at it. The sandbox lives as
/// long as the returned handle.
pub async fn embedded(mut args: UploadArgs) -> Result<(UploadArgs, Option<Sandbox>), ExitStatus> {
    if !args.sandbox {
        return Ok((args, None));
    }
    match Sandbox::start(SandboxConfig::default()).await {
        Ok(s) => {
            point_at(&s, &mut args);
            crate::stderr_line!(
                "sandbox: serving {} (embedded, no account needed)",
                s.base_url
            );
            Ok((args, Some(s)))
        }
        Err(e) => {
            crate::stderr_line!("error: the embedded sandbox could not start: {e}");
            Err(ExitStatus::Usage)
        }
    }
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
        faults: Faults {
            token_ttl_secs: args.token_ttl,
            url_ttl_secs: args.url_ttl,
            webhook_fail: args.webhook_fail,
            ..Faults::default()
        },
    };
    let sandbox = match Sandbox::start(config).await {
        Ok(s) => s,
        Err(e) => {
            crate::stderr_line!("error: the sandbox could not start on {}: {e}", args.listen);
            return ExitStatus::Usage;
        }
    };
    println!("{}", sandbox.info());
    crate::stderr_line!(
        "sandbox: serving {} (store {}); Ctrl-C to stop",
        sandbox.base_url,
        sandbox.store_url
    );
    let _ = tokio::signal::ctrl_c().await;
    drop(sandbox);
    ExitStatus::Success
}
