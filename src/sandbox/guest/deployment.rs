//! The deployment's public configuration, `GET /webdeployments/v1/deployments/{id}/config.json`
//! (no auth), shaped as the transport SDK reads it (`shyrka/receive/DeploymentConfig.kt`): its
//! `messenger.fileUpload` carries the upload rules, with `enableAttachments` only on a deployment
//! whose session answers carry `allowedMedia`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::super::respond::not_found;
use super::configure::advertised;
use super::sessions::Guest;

pub(crate) async fn config(
    Path(id): Path<String>,
    headers: HeaderMap,
    AxState(guest): AxState<Arc<Guest>>,
) -> Response {
    if id != guest.state.deployment_id {
        return not_found("Deployment not found");
    }
    let faults = guest.state.faults().clone();
    let (types, max_kb, _) = advertised(&faults);
    let mut upload = json!({"modes": [{"fileTypes": types, "maxFileSizeKB": max_kb}]});
    if !faults.guest_omit_allowed_media {
        upload["enableAttachments"] = json!(true);
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Json(json!({
        "id": id, "version": "1", "languages": ["en-us"], "defaultLanguage": "en-us",
        "apiEndpoint": format!("http://{host}"),
        "messenger": {
            "enabled": true,
            "apps": {"conversations": {"messagingEndpoint": format!("ws://{host}")}},
            "styles": {"primaryColor": "#ff4f1f"},
            "launcherButton": {"visibility": "On"},
            "fileUpload": upload,
        },
        "journeyEvents": {"enabled": false},
        "status": "Active",
        "auth": {"enabled": false},
    }))
    .into_response()
}
