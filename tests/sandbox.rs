//! The sandbox's store refuses what real S3 refuses, so the client tests against it mean something.

mod common;

use common::*;
use serde_json::{Value, json};

/// A token and a pre-signed URL for `size` bytes of `content_type`, straight from the sandbox API.
async fn presigned(env: &Env, size: u64, content_type: &str) -> String {
    let http = reqwest::Client::new();
    let token: Value = http
        .post(env.sandbox.base_url.join("oauth/token").unwrap())
        .basic_auth(env.sandbox.client_id(), Some(env.sandbox.client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = env.sandbox.base_url.join(&format!(
        "api/v2/externalcontacts/contacts/{}/files",
        env.sandbox.external_contact_id()
    ));
    let r: Value = http
        .post(url.unwrap())
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"fileName": "x.pdf", "contentType": content_type, "size": size}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["uploadUrl"].as_str().unwrap().to_string()
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
        let r = http.put(&url).body(body.clone()).send().await.unwrap();
        assert_eq!(s3_code(r).await, (403, "SignatureDoesNotMatch".into()));

        // With a different value for it: refused too.
        let r = http
            .put(&url)
            .header("content-type", "image/png")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(s3_code(r).await, (403, "SignatureDoesNotMatch".into()));

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
        let r = http
            .put(&small)
            .header("content-type", "application/pdf")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(s3_code(r).await, (400, "EntityTooLarge".into()));

        // A tampered signature.
        let (head, sig) = url.split_once("X-Amz-Signature=").unwrap();
        let flipped = if sig.starts_with('0') { "1" } else { "0" };
        let tampered = format!("{head}X-Amz-Signature={flipped}{}", &sig[1..]);
        let r = http
            .put(&tampered)
            .header("content-type", "application/pdf")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(s3_code(r).await, (403, "SignatureDoesNotMatch".into()));

        // An expired URL.
        env.sandbox.faults().expired_urls = 1;
        let old = presigned(&env, size, "application/pdf").await;
        let r = http
            .put(&old)
            .header("content-type", "application/pdf")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(s3_code(r).await, (403, "AccessDenied".into()));

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
