//! What differs between routes: how to get an upload URL, and how to confirm the upload.
//! Everything else (validation, the PUT, the record, the webhook) is shared by the pipeline.

use std::time::Instant;

use async_trait::async_trait;
use url::Url;

use crate::error::{Error, Result, Stage};
use crate::validate::ValidatedFile;

pub mod conversation;
pub mod external_contact;
pub mod guest;

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

/// The platform's word that the upload is complete.
#[derive(Debug, Clone)]
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
    /// The record's `route` value.
    fn name(&self) -> &'static str;

    /// Route-specific rules, checked after local validation and before any upload request;
    /// `online` false forbids network calls (dry run with --offline).
    async fn check(&self, _file: &ValidatedFile, _online: bool) -> Result<()> {
        Ok(())
    }

    /// A dry run's check that the route can work: credentials, or the guest session.
    async fn preflight(&self) -> Result<()>;

    async fn request_upload(&self, file: &ValidatedFile) -> Result<UploadTarget>;

    async fn confirm(&self, file: &ValidatedFile, target: &UploadTarget) -> Result<Confirmation>;

    /// End of the run: release connections.
    async fn finish(&self) {}
}
