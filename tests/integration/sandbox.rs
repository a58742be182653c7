//! The sandbox's store refuses what real S3 refuses, so the client tests against it mean something.

use crate::common::*;
use gcupload::ExitStatus;
use serde_json::{Value, json};

/// An access token from the sandbox's OAuth endpoint.
async fn token(env: &Env) -> String {
    let v: Value = reqwest::Client::new()
        .post(env.sandbox.base_url.join("oauth/token").unwrap())
        .basic_auth(env.sandbox.client_id(), Some(env.sandbox.client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// A token and a pre-signed URL for `size` bytes of `content_type`, straight from the sandbox API.
async fn presigned(env: &Env, size: u64, content_type: &str) -> String {
    let http = reqwest::Client::new();
    let token = token(env).await;
    let url = env.sandbox.base_url.join(&format!(
        "api/v2/externalcontacts/contacts/{}/files",
        env.sandbox.external_contact_id()
    ));
    let r: Value = http
        .post(url.unwrap())
        .bearer_auth(&token)
        .json(&json!({"fileName": "x.pdf", "contentType": content_type, "size": size}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["uploadUrl"].as_str().unwrap().to_string()
}

/// PUTs `body` to `url` (with a Content-Type when given) and returns the S3 status and code.
async fn put(url: &str, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut r = reqwest::Client::new().put(url).body(body.to_vec());
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    s3_code(r.send().await.unwrap()).await
}

async fn s3_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let code = body
        .split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
        .to_string();
    (status, code)
}

#[test]
fn the_store_enforces_signatures_lengths_and_sizes() {
    let env = Env::new();
    env.block_on(async {
        let http = reqwest::Client::new();
        let body = pdf(1000);
        let size = body.len() as u64;

        // Without the signed content-type header: refused by the signature check.
        let url = presigned(&env, size, "application/pdf").await;
        assert_eq!(
            put(&url, None, &body).await,
            (403, "SignatureDoesNotMatch".into())
        );

        // With a different value for it: refused too.
        assert_eq!(
            put(&url, Some("image/png"), &body).await,
            (403, "SignatureDoesNotMatch".into())
        );

        // Chunked, without a length: refused as S3 does.
        let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(
            body.clone(),
        ))]);
        let r = http
            .put(&url)
            .header("content-type", "application/pdf")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(s3_code(r).await, (411, "MissingContentLength".into()));

        // Larger than announced.
        let small = presigned(&env, 10, "application/pdf").await;
        assert_eq!(
            put(&small, Some("application/pdf"), &body).await,
            (400, "EntityTooLarge".into())
        );

        // A tampered signature.
        let (head, sig) = url.split_once("X-Amz-Signature=").unwrap();
        let flipped = if sig.starts_with('0') { "1" } else { "0" };
        let tampered = format!("{head}X-Amz-Signature={flipped}{}", &sig[1..]);
        assert_eq!(
            put(&tampered, Some("application/pdf"), &body).await,
            (403, "SignatureDoesNotMatch".into())
        );

        // An expired URL.
        env.sandbox.faults().expired_urls = 1;
        let old = presigned(&env, size, "application/pdf").await;
        assert_eq!(
            put(&old, Some("application/pdf"), &body).await,
            (403, "AccessDenied".into())
        );

        assert!(
            env.sandbox.objects().is_empty(),
            "no refused PUT stored anything"
        );

        // And the right request is accepted, byte-exact.
        let r = http
            .put(&url)
            .header("content-type", "application/pdf")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let objects = env.sandbox.objects();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].sha256, sha256(&body));
    });
}

#[test]
fn oauth_rejects_wrong_credentials_and_grants() {
    let env = Env::new();
    env.block_on(async {
        let http = reqwest::Client::new();
        let url = env.sandbox.base_url.join("oauth/token").unwrap();
        let r = http
            .post(url.clone())
            .basic_auth(env.sandbox.client_id(), Some("nope"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client");
        let r = http
            .post(url)
            .basic_auth(env.sandbox.client_id(), Some(env.sandbox.client_secret()))
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
    });
}

/// One guest request over a raw socket, returning the answer frame.
pub async fn guest_request(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    req: Value,
) -> Value {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::Text(req.to_string().into()))
        .await
        .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["tracingId"] == req["tracingId"]
                || v["class"].as_str().unwrap_or("").ends_with("Event")
            {
                return v;
            }
        }
    }
}

#[test]
fn a_guest_put_without_the_signed_tagging_header_is_refused() {
    let env = Env::new();
    env.block_on(async {
        let mut url = env.sandbox.base_url.join("v1").unwrap();
        url.set_scheme("ws").unwrap();
        url.set_query(Some(&format!("deploymentId={}&application=test", env.sandbox.deployment_id())));
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        let token = uuid::Uuid::new_v4().to_string();
        let s = guest_request(&mut ws, json!({"action": "configureSession", "token": token,
            "deploymentId": env.sandbox.deployment_id(), "startNew": false, "tracingId": "t1"})).await;
        assert_eq!(s["class"], "SessionResponse");
        let body = pdf(2000);
        let a = guest_request(&mut ws, json!({"action": "onAttachment", "token": token, "attachmentId": "att-1",
            "fileName": "x.pdf", "fileType": "application/pdf", "fileSize": body.len(), "errorsAsJson": true, "tracingId": "t2"})).await;
        assert_eq!(a["class"], "PresignedUrlResponse");
        let put_url = a["body"]["url"].as_str().unwrap();
        let tagging = a["body"]["headers"]["x-amz-tagging"].as_str().unwrap();
        let http = reqwest::Client::new();

        assert_eq!(put(put_url, Some("application/pdf"), &body).await, (403, "SignatureDoesNotMatch".into()));

        let r = http.put(put_url).header("content-type", "application/pdf").header("x-amz-tagging", tagging)
            .body(body.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        use futures_util::StreamExt;
        let event = loop {
            if let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = ws.next().await {
                break serde_json::from_str::<Value>(&t).unwrap();
            }
        };
        assert_eq!(event["class"], "UploadSuccessEvent");
        assert_eq!(event["body"]["attachmentId"], "att-1");
        let m = guest_request(&mut ws, json!({"action": "onMessage", "token": token, "tracingId": "t3",
            "message": {"type": "Text", "text": "hi", "content": [{"contentType": "Attachment", "attachment": {"id": "att-1"}}]}})).await;
        assert_eq!(m["class"], "StructuredMessage");
        assert_eq!(m["body"]["direction"], "Inbound");
        assert_eq!(m["body"]["content"][0]["attachment"]["sha256"], sha256(&body));
    });
}

#[test]
fn a_conversation_put_with_a_corrupted_body_fails_the_signed_md5() {
    let env = Env::new();
    env.block_on(async {
        use base64::Engine;
        use md5::Digest;
        let http = reqwest::Client::new();
        let token = token(&env).await;
        let body = pdf(3000);
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let url = env
            .sandbox
            .base_url
            .join(&format!(
                "api/v2/conversations/messages/{}/communications/{}/messages/media/uploads",
                env.sandbox.conversation_id(),
                env.sandbox.communication_id()
            ))
            .unwrap();
        let up: Value = http
            .post(url)
            .bearer_auth(&token)
            .json(
                &json!({"fileName": "x.pdf", "contentLengthBytes": body.len(), "contentMd5": md5}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let put_url = up["uploadUrl"].as_str().unwrap();
        let req = |b: Vec<u8>| {
            let mut r = http.put(put_url).body(b);
            for (k, v) in up["uploadHeaders"].as_object().unwrap() {
                r = r.header(k, v.as_str().unwrap());
            }
            r
        };
        let mut corrupted = body.clone();
        corrupted[100] ^= 0xff;
        let r = req(corrupted).send().await.unwrap();
        assert_eq!(s3_code(r).await, (400, "BadDigest".into()));
        assert!(env.sandbox.objects().is_empty());
        let r = req(body.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    });
}

/// Like the platform, the sandbox refuses a `textBody` over 2000 characters (UTF-16 units) with
/// a 400, and takes one of 2000.
#[test]
fn a_conversation_text_over_2000_characters_is_refused() {
    let env = Env::new();
    env.block_on(async {
        let token = token(&env).await;
        let url = env
            .sandbox
            .base_url
            .join(&format!(
                "api/v2/conversations/messages/{}/communications/{}/messages",
                env.sandbox.conversation_id(),
                env.sandbox.communication_id()
            ))
            .unwrap();
        let send = |text: String| {
            reqwest::Client::new()
                .post(url.clone())
                .bearer_auth(&token)
                .json(&json!({ "textBody": text }))
                .send()
        };
        for (text, status) in [
            ("a".repeat(2001), 400),
            ("\u{1F600}".repeat(1001), 400),
            ("a".repeat(2000), 200),
            ("\u{1F600}".repeat(1000), 200),
        ] {
            let r = send(text).await.unwrap();
            assert_eq!(r.status().as_u16(), status);
        }
    });
    assert_eq!(env.sandbox.messages().len(), 2, "only the two in the limit");
}

// The `pause` fault: the real binary killed (SIGKILL) while the sandbox holds a request at a
// point, and the state that point promises checked afterwards.

use gcupload::sandbox::Pause;
use std::time::{Duration, Instant};

/// Long enough that the client cannot finish before it is killed, short enough for a quick test.
const HOLD_MS: u64 = 10_000;

/// Waits until a pause at `point` has begun, then kills the client with SIGKILL.
fn kill_when_paused(env: &Env, point: &str, mut child: std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(8);
    while env.sandbox.paused(point) == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the client ended ({status}) before {point}: {}",
                stderr(&out)
            );
        }
        assert!(Instant::now() < deadline, "no pause at {point} began");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.sandbox.paused(point), 1);
}

/// Uploads one file on the external-contact route and kills the client during a pause at `point`.
fn killed_at(env: &Env, point: &str, ms: u64, bytes: &[u8]) {
    env.sandbox.faults().pause = vec![Pause::new(point, ms)];
    let path = env.file("held.pdf", bytes);
    kill_when_paused(env, point, env.spawn(&[path.as_os_str()]));
}

/// The file id the client was given, read from the object key `external/{contact}/{id}/{name}`.
fn file_id(env: &Env) -> String {
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    objects[0].key.split('/').nth(2).unwrap().to_string()
}

/// The test's own confirm of `id`: (status, body).
async fn confirm(env: &Env, id: &str) -> (u16, Value) {
    let url = env.sandbox.base_url.join(&format!(
        "api/v2/externalcontacts/contacts/{}/files/{id}/upload-complete",
        env.sandbox.external_contact_id()
    ));
    let r = reqwest::Client::new()
        .post(url.unwrap())
        .bearer_auth(token(env).await)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn seen(env: &Env, suffix: &str) -> usize {
    let requests = env.sandbox.requests();
    requests.iter().filter(|r| r.path.ends_with(suffix)).count()
}

#[test]
fn killed_at_put_start_the_url_is_issued_and_nothing_is_ever_stored() {
    let env = Env::new();
    // Short, so the test can watch the held PUT resume and find its client gone.
    killed_at(&env, "put-start", 2000, &pdf(200_000));
    assert_eq!(seen(&env, "/files"), 1, "the URL was issued");
    std::thread::sleep(Duration::from_millis(3000));
    assert!(env.sandbox.objects().is_empty());
    assert_eq!(seen(&env, "/upload-complete"), 0);
}

#[test]
fn killed_at_put_mid_nothing_is_ever_stored() {
    let env = Env::new();
    killed_at(&env, "put-mid", 2000, &pdf(2 << 20));
    std::thread::sleep(Duration::from_millis(3000));
    assert!(env.sandbox.objects().is_empty());
}

#[test]
fn killed_at_put_stored_the_object_is_stored_scanned_and_unconfirmed() {
    let env = Env::new();
    let bytes = pdf(300_000);
    killed_at(&env, "put-stored", HOLD_MS, &bytes);
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(
        (objects[0].size, &objects[0].sha256),
        (bytes.len() as u64, &sha256(&bytes))
    );
    assert_eq!(seen(&env, "/upload-complete"), 0);
    let (status, body) = env.block_on(confirm(&env, &file_id(&env)));
    assert_eq!(
        (status, &body["virusScan"]),
        (200, &json!("passed")),
        "{body}"
    );
}

#[test]
fn killed_at_confirm_the_file_stays_confirmed() {
    let env = Env::new();
    killed_at(&env, "confirm", HOLD_MS, &pdf(5000));
    let id = file_id(&env);
    // The confirm that was cut off already recorded the verdict: a second one repeats it.
    env.sandbox.faults().pause.clear();
    let (status, body) = env.block_on(confirm(&env, &id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"id": id, "status": "completed", "virusScan": "passed"})
    );
    assert!(
        env.sandbox.webhooks().is_empty(),
        "the client never got that far"
    );
}

#[test]
fn killed_at_webhook_the_event_is_not_received() {
    let env = Env::new();
    // Short, so the test can watch the held delivery resume and find its sender gone.
    killed_at(&env, "webhook", 2000, &pdf(5000));
    assert_eq!(seen(&env, "/upload-complete"), 1);
    std::thread::sleep(Duration::from_millis(3000));
    assert!(env.sandbox.webhooks().is_empty());
}

/// The conversation route's binary, in the background, uploading `path`.
fn spawn_conversation(env: &Env, path: &std::path::Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("gcupload"))
        .env_clear()
        .env("GENESYS_BASE_URL", env.sandbox.base_url.as_str())
        .env("GENESYS_CLIENT_ID", env.sandbox.client_id())
        .env("GENESYS_CLIENT_SECRET", env.sandbox.client_secret())
        .env("GENESYS_CONVERSATION_ID", env.sandbox.conversation_id())
        .env("GENESYS_COMMUNICATION_ID", env.sandbox.communication_id())
        .env("GCUPLOAD_STATE_DIR", env.outbox())
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn killed_at_send_the_conversation_message_is_recorded() {
    let env = Env::new();
    env.sandbox.faults().pause = vec![Pause::new("send", HOLD_MS)];
    let path = env.file("held.pdf", &pdf(5000));
    kill_when_paused(&env, "send", spawn_conversation(&env, &path));
    let messages = env.sandbox.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (media, status) = &env.sandbox.media_statuses()[0];
    assert_eq!(
        (&messages[0]["mediaIds"][0], status.as_str()),
        (&json!(media), "valid")
    );
}

/// `send-start` holds the send before it is performed: a client killed there never sent it,
/// even once the hold is over.
#[test]
fn killed_at_send_start_the_message_is_never_recorded() {
    let env = Env::new();
    env.sandbox.faults().pause = vec![Pause::new("send-start", 2000)];
    let path = env.file("held.pdf", &pdf(5000));
    kill_when_paused(&env, "send-start", spawn_conversation(&env, &path));
    std::thread::sleep(Duration::from_millis(3000));
    assert!(env.sandbox.messages().is_empty());
}

/// The conversation as the Platform API shows it (`MessageConversation`): each participant's
/// messages with `messageId`, `messageTime` and their media; and messages by id in bulk
/// (`MessageData` with `direction` and `textBody`), with the deprecated fields filled
/// (`fillDeprecatedFields`); with `useNormalizedMessage=true`, `normalizedMessage` instead.
#[test]
fn the_conversation_shows_its_messages_in_the_platform_shape() {
    let env = Env::new();
    env.sandbox.faults().fill_deprecated_fields = true;
    let f = env.file("a.pdf", &pdf(1000));
    let out = env
        .conversation_cmd()
        .args(["--message", "See attached"])
        .arg(&f)
        .finish(ExitStatus::Success);
    let r = &records(&out.stdout)[0];
    env.block_on(async {
        let token = token(&env).await;
        let conv = env.sandbox.conversation_id();
        let base = format!("api/v2/conversations/messages/{conv}");
        let http = reqwest::Client::new();
        let c: Value = http
            .get(env.sandbox.base_url.join(&base).unwrap())
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["id"], conv);
        let details: Vec<&Value> = c["participants"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["messages"].as_array().unwrap())
            .collect();
        let media = details
            .iter()
            .find(|d| d["messageId"] == r["messageId"])
            .unwrap();
        assert_eq!(media["media"][0]["id"], r["fileId"]);
        assert!(media["messageTime"].as_str().unwrap().ends_with('Z'));
        let text = details
            .iter()
            .find(|d| d["messageId"] == r["textMessageId"])
            .unwrap();
        assert!(text.get("media").is_none());

        let ids = json!([r["messageId"], r["textMessageId"]]);
        let read = |query: &'static str| {
            let url = env
                .sandbox
                .base_url
                .join(&format!("{base}/messages/bulk{query}"));
            let req = http.post(url.unwrap()).bearer_auth(&token).json(&ids);
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let bulk = read("").await;
        let entities = bulk["entities"].as_array().unwrap();
        assert_eq!(entities.len(), 2);
        let t = entities
            .iter()
            .find(|m| m["id"] == r["textMessageId"])
            .unwrap();
        assert_eq!(
            (&t["direction"], &t["textBody"]),
            (&json!("outbound"), &json!("See attached"))
        );
        let normalized = read("?useNormalizedMessage=true").await;
        let m = normalized["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == r["messageId"])
            .unwrap();
        assert!(
            m.get("media").is_none() && m.get("textBody").is_none(),
            "{m}"
        );
        let attachment = &m["normalizedMessage"]["content"][0]["attachment"];
        assert_eq!(attachment["id"], r["fileId"], "{m}");

        // Another conversation is not found; no token is refused.
        let other = http
            .get(
                env.sandbox
                    .base_url
                    .join("api/v2/conversations/messages/nope")
                    .unwrap(),
            )
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(other.status().as_u16(), 404);
        let anonymous = http
            .get(env.sandbox.base_url.join(&base).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status().as_u16(), 401);
    });
}

/// A client that waits out the pauses sees nothing but the delay: the PUT held midway still
/// stores every byte, and each pause is counted once.
#[test]
fn an_upload_held_at_every_point_completes_unchanged() {
    let env = Env::new();
    let points = [
        "token",
        "request-url",
        "put-start",
        "put-mid",
        "put-stored",
        "confirm",
        "webhook",
    ];
    env.sandbox.faults().pause = points.iter().map(|p| Pause::new(p, 200)).collect();
    let bytes = pdf(1 << 20);
    let out = env.cmd().arg(env.file("a.pdf", &bytes)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.sandbox.objects()[0].sha256, sha256(&bytes));
    assert_eq!(env.sandbox.webhooks().len(), 1);
    for p in points {
        assert_eq!(env.sandbox.paused(p), 1, "{p}");
    }
    assert_eq!(env.sandbox.paused("send"), 0, "not on this route");
}

/// A pause at an unknown point is accepted and ignored (as an `inject` rule for an unknown
/// endpoint is): the upload runs unheld and nothing is counted.
#[test]
fn a_pause_at_an_unknown_point_is_ignored_and_pauses_are_in_the_state() {
    let env = Env::new();
    let http = reqwest::Client::new();
    let control = |p: &str| env.sandbox.base_url.join(&format!("_sandbox/{p}")).unwrap();
    let set = json!({"pause": [{"point": "put-strat", "ms": 60000}]});
    let r = env.block_on(http.post(control("faults")).json(&set).send());
    assert_eq!(r.unwrap().status().as_u16(), 200);
    let f = env.file("a.pdf", &pdf(5000));
    let out = env.cmd().arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let state: Value = env.block_on(async {
        let r = http.get(control("state")).send().await.unwrap();
        r.json().await.unwrap()
    });
    let paused = state["paused"].as_object().unwrap();
    assert_eq!(paused.len(), gcupload::sandbox::PAUSE_POINTS.len());
    assert!(paused.values().all(|n| n == 0), "{paused:?}");
    let rule = &state["faults"]["pause"][0];
    let untouched = json!({"point": "put-strat", "ms": 60000, "after": 0, "times": 1});
    assert_eq!(*rule, untouched);
}
