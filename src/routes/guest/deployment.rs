//! The deployment's public configuration (`config.json`, no auth): the transport SDK reads its
//! `messenger.fileUpload` to decide which upload rules apply (`core/MessagingClientImpl.kt`,
//! `createFileAttachmentProfile`; model in `shyrka/receive/DeploymentConfig.kt`).

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::error::Stage;

/// How long the configuration may take: it only refines rules the platform enforces anyway.
const FETCH_WAIT: Duration = Duration::from_secs(15);

/// `messenger.fileUpload` (`FileUpload` in `DeploymentConfig.kt`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileUpload {
    /// Present (whatever its value): the session answer's `allowedMedia` is the rule.
    #[serde(default)]
    pub(super) enable_attachments: Option<bool>,
    #[serde(default)]
    pub(super) modes: Vec<Mode>,
}

/// One upload mode (`Mode` in `DeploymentConfig.kt`).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Mode {
    #[serde(rename = "fileTypes", default)]
    pub(super) file_types: Vec<String>,
    #[serde(rename = "maxFileSizeKB", default)]
    pub(super) max_file_size_kb: Option<u64>,
}

#[derive(Deserialize)]
struct DeploymentConfig {
    messenger: Messenger,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Messenger {
    /// Required in the SDK's model; a configuration without it allows no upload there.
    #[serde(default)]
    file_upload: FileUpload,
}

/// The deployment's `messenger.fileUpload`; `Err` says why it could not be read.
pub(super) async fn file_upload(
    http: &reqwest::Client,
    url: &Url,
) -> std::result::Result<FileUpload, String> {
    crate::http::check_transport(url, "the deployment configuration URL")
        .map_err(|e| e.to_string())?;
    let resp = http
        .get(url.clone())
        .timeout(FETCH_WAIT)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let body = crate::http::read_capped(resp, Stage::RequestUrl)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice::<DeploymentConfig>(&body)
        .map(|c| c.messenger.file_upload)
        .map_err(|e| format!("not a deployment configuration: {e}"))
}
