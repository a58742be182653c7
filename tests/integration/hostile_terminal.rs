//! Hostile inputs: escape sequences in local file names and in a server's answers reach no
//! terminal raw (stderr, logs, `--output text`), while the JSON records keep them exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::*;
use gcupload::ExitStatus;

/// What a person's terminal must never receive raw: ESC, CSI, BEL, CR, C1 controls and bidi
/// overrides.
fn raw_control(text: &str) -> Option<char> {
    text.chars().find(|c| {
        matches!(
            c,
            '\x1b' | '\x07' | '\r' | '\u{9b}' | '\u{202e}' | '\u{2066}'..='\u{2069}'
        )
    })
}

fn assert_no_raw_control(text: &str, what: &str) {
    if let Some(c) = raw_control(text) {
        panic!("{what} holds a raw {c:?}:\n{text:?}");
    }
}

const MESSAGE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7} bad";
const CODE: &str = "x\u{1b}[31m";
const CONTEXT: &str = "c\u{1b}]8;;http://evil.example\u{7}\u{202e}";

/// A platform that answers the first token request 503 and every upload request 400, with
/// escape sequences in each message, code and correlation id.
async fn hostile_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let tokens = Arc::new(AtomicU32::new(0));
    let token = move || {
        let tokens = tokens.clone();
        async move {
            if tokens.fetch_add(1, Ordering::SeqCst) == 0 {
                let body = json!({"message": MESSAGE, "code": CODE, "contextId": CONTEXT});
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
            let body = json!({"access_token": "t0k3n", "token_type": "bearer", "expires_in": 3600});
            Json(body).into_response()
        }
    };
    let files = || async {
        let body = json!({"message": MESSAGE, "code": CODE, "contextId": CONTEXT});
        (StatusCode::BAD_REQUEST, Json(body))
    };
    let app = axum::Router::new()
        .route("/oauth/token", post(token))
        .route("/api/v2/externalcontacts/contacts/{id}/files", post(files));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

#[test]
fn a_hostile_server_answer_reaches_no_terminal_raw() {
    let env = Env::new();
    let (addr, server) = env.block_on(hostile_server());
    let f = env.file("a.pdf", &pdf(100));
    let run = |output: &str| {
        env.bare_cmd()
            .args(["--base-url", &format!("http://{addr}/")])
            .args(["--client-id", "c", "--client-secret", "s3cr3t-value"])
            .args(["--external-contact", "ec-1", "--no-state", "-vv"])
            .args(["--output", output])
            .arg(&f)
            .output()
            .unwrap()
    };
    let text = run("text");
    assert_eq!(text.status.code(), Some(ExitStatus::Remote.code()));
    let err = stderr(&text);
    assert!(err.contains("retrying") && err.contains("pwned"), "{err}");
    assert_no_raw_control(&err, "stderr");
    assert_no_raw_control(&String::from_utf8_lossy(&text.stdout), "--output text");

    let json = run("json");
    assert_eq!(json.status.code(), Some(ExitStatus::Remote.code()));
    assert_no_raw_control(&stderr(&json), "stderr");
    let r = &records(&json.stdout)[0];
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains(MESSAGE), "{message:?}");
    assert_eq!(r["error"]["code"], CODE);
    assert_eq!(r["error"]["correlationId"], CONTEXT);
    server.abort();
}

#[test]
fn a_hostile_file_or_directory_name_reaches_no_terminal_raw() {
    let env = Env::new();
    let dir = env.dir.path().join("in\u{1b}]0;pwned\u{7}\u{202e}");
    std::fs::create_dir(&dir).unwrap();
    let good = dir.join("a.pdf");
    std::fs::write(&good, pdf(100)).unwrap();
    let bad = env.file("a\u{1b}[31mred.pdf", &pdf(100));
    let run = |output: &str| {
        env.cmd()
            .args(["--no-state", "-vv", "--output", output])
            .arg(&good)
            .arg(&bad)
            .output()
            .unwrap()
    };
    let text = run("text");
    assert_eq!(text.status.code(), Some(ExitStatus::Validation.code()));
    let err = stderr(&text);
    assert!(err.contains("uploaded and confirmed"), "{err}");
    assert_no_raw_control(&err, "stderr");
    assert_no_raw_control(&String::from_utf8_lossy(&text.stdout), "--output text");

    let json = run("json");
    assert_no_raw_control(&stderr(&json), "stderr");
    let recs = records(&json.stdout);
    let paths: Vec<&Value> = recs.iter().map(|r| &r["path"]).collect();
    assert!(
        paths.contains(&&json!(good.display().to_string())),
        "{paths:?}"
    );
    assert!(
        paths.contains(&&json!(bad.display().to_string())),
        "{paths:?}"
    );
}

/// A file name with a bidirectional-control character (overrides, embeddings, isolates, marks)
/// would show the agent another name: `report\u{202e}gnp.pdf` reads "reportfdp.png". The
/// file-name rule refuses each, naming the character; nothing is sent.
#[test]
fn a_bidi_control_in_a_file_name_is_refused() {
    let env = Env::new();
    let names = [
        "report\u{202e}gnp.pdf",
        "a\u{202a}b.pdf",
        "c\u{2066}d\u{2069}.pdf",
        "mark\u{200f}.pdf",
        "arabic\u{061c}mark.pdf",
    ];
    let files: Vec<_> = names.iter().map(|n| env.file(n, &pdf(100))).collect();
    let out = env.cmd().args(&files).finish(ExitStatus::Validation);
    let err = stderr(&out);
    assert_no_raw_control(&err, "stderr");
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), names.len());
    for r in &recs {
        assert_eq!(r["action"], "FILE_UPLOAD_FAILED", "{r}");
        assert_eq!(r["error"]["kind"], "validation", "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("bidirectional-control character U+"),
            "{message}"
        );
    }
    assert!(err.contains("U+202E"), "{err}");
    assert!(env.sandbox.objects().is_empty(), "nothing sent");
}

/// Zero-width characters (U+200B–U+200D, U+2060, U+FEFF) make two names look the same: on
/// stderr they are shown escaped; the JSON record keeps the exact name.
#[test]
fn zero_width_characters_are_escaped_on_stderr() {
    let env = Env::new();
    let name = "inv\u{200b}oi\u{200c}c\u{200d}e\u{2060}\u{feff}.exe";
    let f = env.file(name, b"MZ not allowed");
    let out = env.cmd().arg(&f).finish(ExitStatus::Validation);
    let err = stderr(&out);
    for zw in ['\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}'] {
        assert!(!err.contains(zw), "raw {zw:?} on stderr: {err:?}");
    }
    assert!(
        err.contains("inv\\u{200b}oi\\u{200c}c\\u{200d}e\\u{2060}\\u{feff}.exe"),
        "{err}"
    );
    assert_eq!(records(&out.stdout)[0]["fileName"], name);
}
