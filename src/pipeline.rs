//! The upload pipeline: validate → authenticate (lazily, in the route) → request URL → PUT →
//! confirm → record → webhook, the same for every route.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::audit::{self, Record};
use crate::error::{Error, Result};
use crate::error_reporting::{self, exit};
use crate::routes::{Confirmation, Route, UploadTarget};
use crate::validate::{self, Policy, ValidatedFile};
use crate::{transfer, webhook};

/// Protocol reference: a URL is valid 15 minutes; don't start a PUT on one older than 10.
const URL_FRESHNESS: Duration = Duration::from_secs(600);
/// Fresh URLs requested after the store says one expired.
const EXPIRED_URL_RETRIES: u32 = 1;

pub struct Pipeline {
    pub http: reqwest::Client,
    pub route: Box<dyn Route>,
    pub policy: Policy,
    pub webhook_url: Option<url::Url>,
    pub pretty: bool,
}

impl Pipeline {
    /// Uploads every file in order, prints one record each, returns the exit code: 0 when every
    /// file was uploaded and confirmed, otherwise the code of the first failure.
    pub async fn run(&self, files: &[impl AsRef<Path>]) -> i32 {
        let mut code = exit::OK;
        for f in files {
            let (record, err) = self.upload_one(f.as_ref()).await;
            if let Err(e) = audit::emit(&record, self.pretty) {
                eprintln!("error: cannot write the record to stdout: {e}");
                return exit::USAGE;
            }
            if let Some(e) = err
                && code == exit::OK
            {
                code = error_reporting::exit_code(&e);
            }
        }
        self.route.finish().await;
        code
    }

    pub async fn upload_one(&self, path: &Path) -> (Record, Option<Error>) {
        let started = Instant::now();
        let shown = path.display().to_string();
        let mut validated = None;
        let result = self.steps(path, &mut validated).await;
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(conf) => {
                let file = validated.expect("a confirmed upload was validated");
                let mut record = audit::completed(self.route.name(), &shown, &file, conf, ms);
                tracing::info!(file = %shown, id = ?record.file_id, ms, "uploaded and confirmed");
                if let Some(url) = &self.webhook_url {
                    record.webhook = Some(webhook::deliver(&self.http, url, &record).await);
                }
                (record, None)
            }
            Err(e) => {
                eprintln!("{}", error_reporting::human(&shown, &e));
                let record = audit::failed(self.route.name(), &shown, validated.as_ref(), &e, ms);
                (record, Some(e))
            }
        }
    }

    async fn steps(
        &self,
        path: &Path,
        validated: &mut Option<ValidatedFile>,
    ) -> Result<Confirmation> {
        let file = validated.insert(validate::validate(path, &self.policy).await?);
        self.route.check(file).await?;
        let mut expired = 0;
        let target = loop {
            let target = self.route.request_upload(file).await?;
            match self.put(&target, file).await {
                Ok(()) => break target,
                Err(e) if transfer::url_expired(&e) && expired < EXPIRED_URL_RETRIES => {
                    expired += 1;
                    tracing::warn!(file = %file.file_name, "the upload URL expired; requesting a fresh one");
                }
                Err(e) => return Err(e),
            }
        };
        self.route.confirm(file, &target).await
    }

    async fn put(&self, target: &UploadTarget, file: &ValidatedFile) -> Result<()> {
        if target.issued_at.elapsed() > URL_FRESHNESS {
            return Err(Error::Remote {
                stage: crate::error::Stage::Transfer,
                remote: crate::error::Remote {
                    status: Some(403),
                    code: Some("AccessDenied".into()),
                    message: "Request has expired (URL older than 10 minutes, not used)".into(),
                    correlation_id: None,
                },
            });
        }
        transfer::put(&self.http, target, file).await
    }
}
