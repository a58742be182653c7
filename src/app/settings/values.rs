//! What the settings hold: each value, blank counting as unset, and where it came from.

use super::super::cli::Settings;

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    DotEnv,
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::DotEnv => ".env",
            Source::Default => "default",
        }
    }
}

/// Each set setting (by its clap id) with where its value came from.
pub type Sources = Vec<(String, Source)>;

/// The current value of a setting, by its clap id; blank values count as unset.
pub fn setting_value(s: &Settings, id: &str) -> Option<String> {
    let text = |v: &Option<String>| non_empty(v).map(str::to_string);
    match id {
        "route" => s.route.map(|r| r.as_str().to_string()),
        "external_contact" => text(&s.external_contact),
        "deployment" => text(&s.deployment),
        "origin" => text(&s.origin),
        "session_token" => s.session_token.map(|t| t.to_string()),
        "conversation" => text(&s.conversation),
        "communication" => text(&s.communication),
        "region" => Some(s.region.clone()),
        "base_url" => text(&s.base_url),
        "client_id" => text(&s.client_id),
        "client_secret" => text(&s.client_secret),
        "webhook_url" => text(&s.webhook_url),
        "webhook_secret" => text(&s.webhook.webhook_secret),
        "state_dir" => s
            .webhook
            .state
            .state_dir
            .as_ref()
            .map(|p| p.display().to_string()),
        "state_url" => text(&s.webhook.state.state_url),
        "outbox" => s
            .webhook
            .state
            .outbox
            .as_ref()
            .map(|p| p.display().to_string()),
        _ => None,
    }
}

pub fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
