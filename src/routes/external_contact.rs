//! Route `external-contact`: a two-phase contract from the original specification, not a
//! published Genesys API (a real tenant answers 404); the sandbox and an organisation's own
//! gateway serve it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use url::Url;

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
    /// `…/contacts/{contact}/files`, then `more`: every id is one path segment.
    fn files_url(&self, stage: Stage, more: &[&str]) -> Result<Url> {
        let mut segments = vec![
            "api",
            "v2",
            "externalcontacts",
            "contacts",
            &self.contact_id,
            "files",
        ];
        segments.extend_from_slice(more);
        self.api
            .endpoints
            .api_segments(&segments)
            .map_err(|why| Error::protocol(stage, format!("refusing an id as a path: {why}")))
    }

    /// Where to confirm `id`: the answer's `uploadCompleteUrl`, or the contract's path.
    fn confirm_url(&self, id: &str) -> Result<Url> {
        self.files_url(Stage::Confirm, &[id, "upload-complete"])
    }

    /// The answer's `uploadCompleteUrl`, which gets the bearer token: it must stay inside this
    /// contact's files on the API host (resolved first, so `..` cannot climb out).
    fn checked_complete_url(&self, given: &str) -> Result<Url> {
        let refuse = |why: String| Error::protocol(Stage::RequestUrl, why);
        let c = self
            .api
            .endpoints
            .api
            .join(given)
            .map_err(|e| refuse(format!("uploadCompleteUrl is not a URL: {e}")))?;
        if !same_origin(&c, &self.api.endpoints.api) {
            return Err(refuse(
                "uploadCompleteUrl points outside the API host; refusing to send the token there"
                    .into(),
            ));
        }
        let files = format!("{}/", self.files_url(Stage::RequestUrl, &[])?.path());
        if !c.path().starts_with(&files) {
            return Err(refuse(format!(
                "uploadCompleteUrl points outside {files}; refusing to send the token there"
            )));
        }
        Ok(c)
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
        let url = self.files_url(Stage::RequestUrl, &[])?;
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
        // An id no URL can confirm is refused now, before its bytes are sent.
        self.files_url(Stage::RequestUrl, &[&id, "upload-complete"])?;
        let confirm_url = match r.upload_complete_url.filter(|s| !s.is_empty()) {
            Some(c) => Some(self.checked_complete_url(&c)?),
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
    /// bytes landed is the gateway's answer: a refusal that says the object is absent (or not
    /// the announced size), whatever its status, means they did not.
    async fn resume(
        &self,
        file: &ValidatedFile,
        up: &Uploaded,
        _landed: bool,
    ) -> Result<Option<Confirmation>> {
        match self.confirm(file, up).await {
            Err(Error::Remote { remote, .. }) if remote.says_absent() => {
                tracing::info!(file_id = %up.file_id, "the earlier upload did not land ({remote}); uploading again");
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    async fn confirm(&self, _file: &ValidatedFile, up: &Uploaded) -> Result<Confirmation> {
        let url = match &up.confirm_url {
            Some(u) => u.clone(),
            None => self.confirm_url(&up.file_id)?,
        };
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
        // A confirmation of some other upload says nothing about this one.
        if id != up.file_id {
            return Err(Error::protocol(
                Stage::Confirm,
                format!(
                    "the confirmation is for `{id}`, not for the upload issued as `{}`",
                    up.file_id
                ),
            ));
        }
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
