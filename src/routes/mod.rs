//! What differs between routes: how to get an upload URL, and how to confirm the upload.
//! Everything else (validation, the PUT, the record, the webhook) is shared by the pipeline.

use std::time::Instant;

use async_trait::async_trait;
use url::Url;

use crate::error::Result;
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

#[async_trait]
pub trait Route: Send + Sync {
    /// The record's `route` value.
    fn name(&self) -> &'static str;

    /// Route-specific rules, checked after local validation and before any upload request.
    async fn check(&self, _file: &ValidatedFile) -> Result<()> {
        Ok(())
    }

    async fn request_upload(&self, file: &ValidatedFile) -> Result<UploadTarget>;

    async fn confirm(&self, file: &ValidatedFile, target: &UploadTarget) -> Result<Confirmation>;

    /// End of the run: release connections.
    async fn finish(&self) {}
}
