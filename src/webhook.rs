//! Stage 7: tell the integrator's system. A webhook failure is reported in the record but never
//! turns a completed upload into a failure.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::audit::Record;
use crate::redact;

pub const EVENT: &str = "genesys.file.uploaded";
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub async fn deliver(client: &reqwest::Client, url: &url::Url, record: &Record) -> Delivery {
    let body = json!({ "event": EVENT, "payload": record });
    let sent = client
        .post(url.clone())
        .timeout(TIMEOUT)
        .header("Idempotency-Key", record.event_id.to_string())
        .json(&body)
        .send()
        .await;
    let d = match sent {
        Ok(r) if r.status().is_success() => Delivery {
            delivered: true,
            http_status: Some(r.status().as_u16()),
            error: None,
        },
        Ok(r) => Delivery {
            delivered: false,
            http_status: Some(r.status().as_u16()),
            error: Some(format!(
                "the receiver answered HTTP {}",
                r.status().as_u16()
            )),
        },
        Err(e) => Delivery {
            delivered: false,
            http_status: None,
            error: Some(crate::error::Error::network(crate::error::Stage::Webhook, &e).to_string()),
        },
    };
    if let Some(e) = &d.error {
        tracing::warn!(url = %redact::url(url), "webhook not delivered: {e}");
    }
    d
}
