//! Hostile answers from the server: not the sandbox (which is well-behaved by design) but a small
//! axum app of its own that serves the external-contact contract and misbehaves per test. Each
//! class of hostile answer is checked the same way: the real binary exits with a code (never 101,
//! a panic), prints exactly one schema-valid record for the file, and finishes in bounded time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use gcupload::ExitStatus;
use serde_json::{Value, json};

use crate::common::{pdf, records, stderr};

const CONTACT: &str = "C";

/// How the server misbehaves; the default is a well-behaved server.
#[derive(Clone)]
struct Script {
    /// The token answer's `expires_in`, verbatim.
    expires_in: Value,
    /// Answer the token request 429 with this `Retry-After`.
    token_retry_after: Option<String>,
    /// Answer the upload-URL request 429 with this `Retry-After`.
    url_retry_after: Option<String>,
    /// Send the token (or URL) answer one byte per second.
    drip_token: bool,
    drip_url: bool,
    /// Read the PUT's body, then never answer.
    stall_put: bool,
    /// The `id` the URL answer issues.
    file_id: String,
    /// The URL answer's `uploadCompleteUrl`.
    upload_complete_url: Option<String>,
    /// The `id` the confirm answers with (default: the id in its path).
    confirm_id: Option<String>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            expires_in: json!(3600),
            token_retry_after: None,
            url_retry_after: None,
            drip_token: false,
            drip_url: false,
            stall_put: false,
            file_id: "f1".into(),
            upload_complete_url: None,
            confirm_id: None,
        }
    }
}

/// One request as the server saw it: the raw (still percent-encoded) path and query.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    bearer: bool,
}

#[derive(Clone)]
struct Shared {
    script: Script,
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct Hostile {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    dir: tempfile::TempDir,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        // Dripping answers never end on their own: don't wait for them.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Hostile {
    fn start(script: Script) -> Hostile {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            script,
            base: base.clone(),
            seen: seen.clone(),
        };
        let app = router(shared);
        rt.spawn(async move { axum::serve(listener, app).await });
        Hostile {
            base,
            seen,
            dir: tempfile::tempdir().unwrap(),
            rt: Some(rt),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Runs the binary on one PDF with `args`; the file's single record, the output and the time.
    fn run(&self, args: &[&str]) -> (std::process::Output, Value, Duration) {
        let file = self.dir.path().join("report.pdf");
        std::fs::write(&file, pdf(2000)).unwrap();
        let started = Instant::now();
        let out = assert_cmd::Command::cargo_bin("gcupload")
            .unwrap()
            .env_clear()
            .current_dir(self.dir.path())
            .env("GCUPLOAD_STATE_DIR", self.dir.path().join("state"))
            .env("GENESYS_CLIENT_ID", "id")
            .env("GENESYS_CLIENT_SECRET", "secret")
            .env("EXTERNAL_CONTACT_ID", CONTACT)
            .args(["--base-url", &self.base])
            .args(args)
            .arg(&file)
            .timeout(Duration::from_secs(40))
            .output()
            .unwrap();
        let took = started.elapsed();
        assert_ne!(out.status.code(), Some(101), "panicked: {}", stderr(&out));
        let recs = records(&out.stdout);
        assert_eq!(recs.len(), 1, "one record: {}", stderr(&out));
        (out, recs.into_iter().next().unwrap(), took)
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route(
            "/api/v2/externalcontacts/contacts/{contact}/files",
            post(request_url),
        )
        .route(
            "/api/v2/externalcontacts/contacts/{contact}/files/{id}/upload-complete",
            post(confirm),
        )
        .route("/upload/{id}", put(upload))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

/// Notes every request before it is routed, as it arrived.
async fn record(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer"));
    s.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(str::to_string),
        bearer,
    });
    next.run(req).await
}

/// A JSON answer, all at once or one byte a second.
fn answer(body: Value, drip: bool) -> Response {
    let bytes = body.to_string().into_bytes();
    if !drip {
        return ([(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    }
    let stream = futures_util::stream::unfold(bytes.into_iter(), |mut it| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = it.next()?;
        Some((Ok::<_, std::io::Error>(vec![b]), it))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn too_many(retry_after: &str) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after.to_string())],
        r#"{"message":"slow down","code":"too.many.requests","status":429}"#,
    )
        .into_response()
}

async fn token(State(s): State<Shared>) -> Response {
    if let Some(after) = &s.script.token_retry_after {
        return too_many(after);
    }
    let body =
        json!({"access_token": "tok", "token_type": "bearer", "expires_in": s.script.expires_in});
    answer(body, s.script.drip_token)
}

async fn request_url(State(s): State<Shared>) -> Response {
    if let Some(after) = &s.script.url_retry_after {
        return too_many(after);
    }
    let mut body = json!({
        "id": s.script.file_id,
        "uploadUrl": format!("{}/upload/1", s.base),
    });
    if let Some(c) = &s.script.upload_complete_url {
        body["uploadCompleteUrl"] = json!(c);
    }
    answer(body, s.script.drip_url)
}

async fn upload(State(s): State<Shared>, _body: axum::body::Bytes) -> Response {
    if s.script.stall_put {
        std::future::pending::<()>().await;
    }
    StatusCode::OK.into_response()
}

async fn confirm(
    State(s): State<Shared>,
    Path((_contact, id)): Path<(String, String)>,
    _h: HeaderMap,
) -> Response {
    let id = s.script.confirm_id.clone().unwrap_or(id);
    answer(
        json!({"id": id, "status": "uploaded", "virusScan": "passed"}),
        false,
    )
}

fn assert_exit(out: &std::process::Output, want: ExitStatus) {
    assert_eq!(out.status.code(), Some(want.code()), "{}", stderr(out));
}

fn assert_failed(r: &Value, stage: &str) {
    assert_eq!(r["action"], "FILE_UPLOAD_FAILED", "{r:#}");
    assert_eq!(r["error"]["stage"], stage, "{r:#}");
}

// Class 1: every duration from outside saturates.

#[test]
fn a_huge_expires_in_is_a_token_that_lasts() {
    let h = Hostile::start(Script {
        expires_in: json!(u64::MAX),
        ..Script::default()
    });
    let (out, r, _) = h.run(&[]);
    assert_exit(&out, ExitStatus::Success);
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r:#}");
}

#[test]
fn a_huge_retry_after_gives_up_at_once() {
    for (what, after) in [
        ("seconds", "9223372036854775807"),
        ("u64::MAX seconds", "18446744073709551615"),
    ] {
        let h = Hostile::start(Script {
            url_retry_after: Some(after.into()),
            ..Script::default()
        });
        let (out, r, took) = h.run(&["--retry-budget", "5"]);
        assert_exit(&out, ExitStatus::Remote);
        assert_failed(&r, "request-url");
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
    }
}

#[test]
fn a_retry_after_date_far_away_gives_up_at_once() {
    let h = Hostile::start(Script {
        token_retry_after: Some("Fri, 31 Dec 9999 23:59:59 GMT".into()),
        ..Script::default()
    });
    let (out, r, took) = h.run(&["--retry-budget", "5"]);
    assert_exit(&out, ExitStatus::Remote);
    assert_failed(&r, "auth");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_huge_retry_budget_is_a_long_budget() {
    let h = Hostile::start(Script::default());
    let (out, r, _) = h.run(&["--retry-budget", "18446744073709551615"]);
    assert_exit(&out, ExitStatus::Success);
    assert_eq!(r["action"], "FILE_UPLOAD_COMPLETED", "{r:#}");
}

// Class 2: each exchange ends within the file's retry budget, however slowly the server answers.

fn assert_ends_within_budget(script: Script, stage: &str) {
    let h = Hostile::start(script);
    let (out, r, took) = h.run(&["--retry-budget", "5"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_exit(&out, ExitStatus::Network);
    assert_failed(&r, stage);
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("timed out"), "{r:#}");
}

#[test]
fn a_dripped_token_answer_ends_within_the_budget() {
    let script = Script {
        drip_token: true,
        ..Script::default()
    };
    assert_ends_within_budget(script, "auth");
}

#[test]
fn a_dripped_url_answer_ends_within_the_budget() {
    let script = Script {
        drip_url: true,
        ..Script::default()
    };
    assert_ends_within_budget(script, "request-url");
}

#[test]
fn a_put_never_answered_ends_within_the_budget() {
    let script = Script {
        stall_put: true,
        ..Script::default()
    };
    assert_ends_within_budget(script, "transfer");
}

// Class 3: ids from the server are one path segment, and the confirmation is for the id issued.

/// The confirm requests the server saw.
fn confirms(h: &Hostile) -> Vec<Seen> {
    h.seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/upload-complete"))
        .collect()
}

/// No bearer token went anywhere but the API's own contact paths.
fn assert_no_token_leak(h: &Hostile) {
    for s in h.seen() {
        assert!(
            !(s.bearer && s.path.starts_with("/oauth")),
            "a bearer token went to {s:?}"
        );
    }
}

#[test]
fn a_traversal_file_id_stays_one_segment() {
    let h = Hostile::start(Script {
        file_id: "../../../../oauth/token".into(),
        ..Script::default()
    });
    let (out, r, _) = h.run(&[]);
    assert_no_token_leak(&h);
    let c = confirms(&h);
    if out.status.code() == Some(ExitStatus::Success.code()) {
        assert_eq!(r["fileId"], "../../../../oauth/token");
        assert_eq!(c.len(), 1, "{:?}", h.seen());
        assert_eq!(
            c[0].path,
            "/api/v2/externalcontacts/contacts/C/files/..%2F..%2F..%2F..%2Foauth%2Ftoken/upload-complete"
        );
    } else {
        // Refusing the id is as good, as long as nothing was confirmed elsewhere.
        assert_eq!(r["action"], "FILE_UPLOAD_FAILED", "{r:#}");
        assert!(c.is_empty(), "{c:?}");
    }
}

#[test]
fn a_query_in_a_file_id_stays_in_its_segment() {
    let h = Hostile::start(Script {
        file_id: "x?evil=1#frag".into(),
        ..Script::default()
    });
    let (out, r, _) = h.run(&[]);
    assert_exit(&out, ExitStatus::Success);
    assert_eq!(r["fileId"], "x?evil=1#frag");
    let c = confirms(&h);
    assert_eq!(c.len(), 1, "{:?}", h.seen());
    assert_eq!(
        c[0].path,
        "/api/v2/externalcontacts/contacts/C/files/x%3Fevil%3D1%23frag/upload-complete"
    );
    assert_eq!(c[0].query, None);
}

#[test]
fn a_dot_dot_file_id_is_refused() {
    let h = Hostile::start(Script {
        file_id: "..".into(),
        ..Script::default()
    });
    let (out, r, _) = h.run(&[]);
    // Refused before the PUT: no URL can confirm it (`Url` would drop a `..` segment).
    assert_exit(&out, ExitStatus::Remote);
    assert_failed(&r, "request-url");
    assert!(confirms(&h).is_empty(), "{:?}", h.seen());
}

#[test]
fn a_confirmation_of_another_id_is_a_failure() {
    let h = Hostile::start(Script {
        confirm_id: Some("someone-else".into()),
        ..Script::default()
    });
    let (out, r, _) = h.run(&[]);
    assert_exit(&out, ExitStatus::Remote);
    assert_failed(&r, "confirm");
    assert_eq!(r["error"]["kind"], "protocol", "{r:#}");
}

#[test]
fn an_upload_complete_url_outside_the_files_is_refused() {
    for url in [
        "/oauth/token",
        "/api/v2/../oauth/token",
        "/api/v2/%2e%2e/oauth/token",
    ] {
        let h = Hostile::start(Script {
            upload_complete_url: Some(url.into()),
            ..Script::default()
        });
        let (out, r, _) = h.run(&[]);
        assert_exit(&out, ExitStatus::Remote);
        assert_failed(&r, "request-url");
        assert_no_token_leak(&h);
    }
}
