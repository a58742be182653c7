//! Route `external-contact` (protocol reference §1): request an upload URL for a contact, PUT,
//! then confirm; the confirm answers with the scan's verdict.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use super::oauth::unauthorized;
use super::respond::{
    bad_request, drop_connection, injected, not_found, platform_error, too_large,
};
use super::state::State;
use super::store::Store;

pub(crate) struct ExternalContact {
    state: Arc<State>,
    store: Arc<Store>,
    /// Files by id.
    files: Mutex<HashMap<String, FileEntry>>,
}

#[derive(Debug, Clone)]
struct FileEntry {
    contact_id: String,
    key: String,
    size: u64,
    /// The `virusScan` answer, once a confirm gave it.
    confirmed: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UrlRequest {
    file_name: Option<String>,
    content_type: Option<String>,
    size: Option<u64>,
}

pub(crate) fn router(state: Arc<State>, store: Arc<Store>) -> axum::Router {
    let route = Arc::new(ExternalContact {
        state,
        store,
        files: Mutex::default(),
    });
    axum::Router::new()
        .route(
            "/api/v2/externalcontacts/contacts/{contact}/files",
            post(request_url),
        )
        .route(
            "/api/v2/externalcontacts/contacts/{contact}/files/{file}/upload-complete",
            post(upload_complete),
        )
        .with_state(route)
}

async fn request_url(
    AxState(route): AxState<Arc<ExternalContact>>,
    Path(contact): Path<String>,
    headers: HeaderMap,
    body: Option<Json<UrlRequest>>,
) -> Response {
    let st = &route.state;
    if let Some(r) = unauthorized(st, &headers).or_else(|| injected(st, "request-url")) {
        return r;
    }
    if contact != st.external_contact_id {
        return not_found("The external contact was not found.");
    }
    let Some(Json(UrlRequest {
        file_name: Some(name),
        content_type: Some(ct),
        size: Some(size),
    })) = body
    else {
        return bad_request("fileName, contentType and size are required.");
    };
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
        return bad_request("fileName is invalid.");
    }
    if let Some(r) = too_large(st, size) {
        return r;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let key = format!("external/{contact}/{id}/{name}");
    let url = route
        .store
        .issue_put_url(st, &key, size, &[("content-type", &ct)]);
    let entry = FileEntry {
        contact_id: contact,
        key,
        size,
        confirmed: None,
    };
    route.files.lock().expect("files").insert(id.clone(), entry);
    route.state.pause("request-url").await;
    let body = json!({"id": id, "uploadUrl": url});
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn upload_complete(
    AxState(route): AxState<Arc<ExternalContact>>,
    Path((contact, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let st = &route.state;
    if let Some(r) = unauthorized(st, &headers).or_else(|| injected(st, "confirm")) {
        return r;
    }
    let entry = route.files.lock().expect("files").get(&file).cloned();
    let Some(entry) = entry.filter(|e| e.contact_id == contact) else {
        return not_found("The file was not found.");
    };
    // Confirmation is idempotent: a repeated confirm gets the same answer.
    let scan = match entry.confirmed {
        Some(s) => s,
        None => {
            if let Some(refusal) = route.not_stored(&entry) {
                return refusal;
            }
            route.first_confirm(&file, &entry)
        }
    };
    st.pause("confirm").await;
    if st.take(|f| &mut f.lose_confirms) {
        drop_connection();
    }
    Json(json!({"id": file, "status": "completed", "virusScan": scan})).into_response()
}

impl ExternalContact {
    /// A confirm needs the object in the store, with the size announced for it.
    fn not_stored(&self, entry: &FileEntry) -> Option<Response> {
        let path = self.store.object_path(&entry.key);
        let status = StatusCode::from_u16(self.state.faults().absent_confirm_status)
            .unwrap_or(StatusCode::BAD_REQUEST);
        match std::fs::metadata(&path).map(|m| m.len()).ok() {
            None => Some(platform_error(
                status,
                "upload.not.found",
                "No object was uploaded for this file.",
            )),
            Some(s) if s != entry.size => Some(platform_error(
                status,
                "upload.size.mismatch",
                &format!(
                    "The uploaded object has {s} bytes, {} were announced.",
                    entry.size
                ),
            )),
            Some(_) => None,
        }
    }

    /// The verdict of the scan made when the PUT landed (a confirm reads nothing again),
    /// remembered so that later confirms repeat it.
    fn first_confirm(&self, file: &str, entry: &FileEntry) -> String {
        let infected = self.store.infected(&entry.key).unwrap_or(false);
        let scan = if infected { "infected" } else { "passed" }.to_string();
        if let Some(e) = self.files.lock().expect("files").get_mut(file) {
            e.confirmed = Some(scan.clone());
        }
        scan
    }
}
