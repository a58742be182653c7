//! Route `external-contact`: the two-phase contract of the project brief. It is not part of the
//! published Genesys Cloud Platform API (a real tenant answers 404); the sandbox and an
//! organisation's own gateway serve it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::route::{self, Confirmation, Route, RouteName, UploadTarget, Uploaded};
use crate::api::Api;
use crate::config::Endpoints;
use crate::error::{Error, Result, Stage};
use crate::http::same_origin;
use crate::validate::ValidatedFile;

/// The route's configuration: the contact the files are attached to.
#[derive(Debug, Clone)]
pub struct Config {
    pub contact_id: String,
}

impl Config {
    pub fn build(self, api: Arc<Api>) -> ExternalContact {
        ExternalContact {
            api,
            contact_id: self.contact_id,
        }
    }

    pub fn plan(&self, e: &Endpoints) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("externalContactId".into(), self.contact_id.clone().into());
        route::rest_hosts(&mut m, e);
        m
    }
}

pub struct ExternalContact {
    api: Arc<Api>,
    contact_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlResponse {
    id: Option<String>,
    upload_url: Option<String>,
    upload_complete_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteResponse {
    id: Option<String>,
    status: Option<String>,
    virus_scan: Option<String>,
}

impl ExternalContact {
    fn files_path(&self) -> String {
        format!("api/v2/externalcontacts/contacts/{}/files", self.contact_id)
    }
}

#[async_trait]
impl Route for ExternalContact {
    fn name(&self) -> RouteName {
        RouteName::ExternalContact
    }

    async fn preflight(&self) -> Result<()> {
        self.api.tokens.bearer().await.map(drop)
    }

    async fn request_upload(&self, file: &ValidatedFile) -> Result<UploadTarget> {
        let url = self.api.endpoints.api_url(&self.files_path());
        let body = json!({
            "fileName": file.file_name,
            "contentType": file.content_type,
            "size": file.size,
        });
        let r: UrlResponse = self
            .api
            .call(Stage::RequestUrl, Method::POST, url, Some(&body))
            .await?;
        let (id, upload) = route::upload_url(r.id, r.upload_url, "uploadUrl")?;
        let confirm_url = match r.upload_complete_url.filter(|s| !s.is_empty()) {
            Some(c) => {
                let c = self.api.endpoints.api.join(&c).map_err(|e| {
                    Error::protocol(
                        Stage::RequestUrl,
                        format!("uploadCompleteUrl is not a URL: {e}"),
                    )
                })?;
                if !same_origin(&c, &self.api.endpoints.api) {
                    return Err(Error::protocol(
                        Stage::RequestUrl,
                        "uploadCompleteUrl points outside the API host; refusing to send the token there",
                    ));
                }
                Some(c)
            }
            None => None,
        };
        Ok(UploadTarget {
            file_id: id,
            url: upload,
            headers: route::put_headers(None, file.content_type),
            confirm_url,
            issued_at: Instant::now(),
        })
    }

    fn target(&self) -> String {
        self.contact_id.clone()
    }

    /// Confirming is idempotent, so a resumed upload is simply confirmed again. Whether its
    /// bytes landed is the gateway's answer: a 409 (no object, or not the announced size, as the
    /// sandbox says) means they did not.
    async fn resume(
        &self,
        file: &ValidatedFile,
        up: &Uploaded,
        _landed: bool,
    ) -> Result<Option<Confirmation>> {
        match self.confirm(file, up).await {
            Err(Error::Remote { remote, .. }) if remote.status == Some(409) => {
                tracing::info!(file_id = %up.file_id, "the earlier upload did not land; uploading again");
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    async fn confirm(&self, _file: &ValidatedFile, up: &Uploaded) -> Result<Confirmation> {
        let url = up.confirm_url.clone().unwrap_or_else(|| {
            self.api.endpoints.api_url(&format!(
                "{}/{}/upload-complete",
                self.files_path(),
                up.file_id
            ))
        });
        let r: CompleteResponse = self
            .api
            .call(Stage::Confirm, Method::POST, url, Some(&json!({})))
            .await?;
        let id = r.id.filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::protocol(
                Stage::Confirm,
                "upload confirmation failed: no `id` in the answer",
            )
        })?;
        let scan = r.virus_scan.unwrap_or_else(|| "unknown".into());
        if scan.eq_ignore_ascii_case("infected") {
            return Err(Error::Infected { status: scan });
        }
        let mut extra = serde_json::Map::new();
        if let Some(s) = r.status {
            extra.insert("status".into(), s.into());
        }
        extra.insert("externalContactId".into(), self.contact_id.clone().into());
        Ok(Confirmation {
            file_id: id,
            virus_scan_status: scan,
            extra,
        })
    }
}
