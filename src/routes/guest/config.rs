//! The guest route's configuration: the deployment, and the session the files go into.

use serde_json::Value;

use crate::config::Endpoints;
use crate::redact;

/// Who the guest is, on which deployment, and what it says with each file.
#[derive(Debug, Clone)]
pub struct Config {
    pub deployment_id: String,
    /// The Origin header; the socket's own host when absent.
    pub origin: Option<String>,
    /// Made up by us; the same token resumes the same session.
    pub session_token: uuid::Uuid,
    /// The caption sent with each file; its name when absent.
    pub message: Option<String>,
}

impl Config {
    /// What a dry run reports: the deployment, the session and the socket it would open.
    pub fn plan(&self, e: &Endpoints) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("deploymentId".into(), self.deployment_id.clone().into());
        m.insert("sessionToken".into(), self.session_token.to_string().into());
        m.insert("socketUrl".into(), redact::url(&e.socket).into());
        m
    }
}
