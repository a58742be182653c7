//! Property tests: every parser of a server answer, and file-name sanitising, takes anything
//! without panicking and answers malformed input with a typed error.

use gcupload::error::{Error, Stage};
use gcupload::routes::{conversation, external_contact, guest};
use gcupload::{auth, http};
use proptest::prelude::*;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

/// Arbitrary bytes, and JSON-ish text that gets further into the parsers.
fn answers() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "\\{(\"[a-zA-Z_]{1,12}\":(\"[^\"]{0,20}\"|-?[0-9]{1,12}|true|null|\\{\\}|\\[\\]),?){0,6}\\}"
            .prop_map(String::into_bytes),
    ]
}

/// Text with the keys, schemes and separators the redaction looks for, among any characters.
fn log_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("X-Amz-Signature=".to_string()),
        Just("access_token\":\"".to_string()),
        Just("Authorization: ".to_string()),
        Just("Bearer ".to_string()),
        Just("https://u:p@".to_string()),
        Just("%3D".to_string()),
        Just("\x1b[3m".to_string()),
        "\\PC{0,12}",
        "[\\x00-\\x1f\\u{80}-\\u{9f}\\u{202e}é€=:\"'&@ ]{0,6}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn typed<T>(r: Result<T, Error>) -> bool {
    matches!(r, Ok(_) | Err(Error::Protocol { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn oauth_and_route_answers(body in answers()) {
        prop_assert!(typed(http::parse_json::<auth::TokenResponse>(Stage::Auth, &body)));
        prop_assert!(typed(http::parse_json::<external_contact::UrlResponse>(Stage::RequestUrl, &body)));
        prop_assert!(typed(http::parse_json::<external_contact::CompleteResponse>(Stage::Confirm, &body)));
        prop_assert!(typed(http::parse_json::<conversation::UploadResponse>(Stage::RequestUrl, &body)));
        prop_assert!(typed(http::parse_json::<conversation::Media>(Stage::Confirm, &body)));
    }

    #[test]
    fn error_bodies(status in 100u16..600, body in answers()) {
        let status = StatusCode::from_u16(status).unwrap();
        let r = http::describe(status, None, &body);
        prop_assert_eq!(r.status, Some(status.as_u16()));
    }

    #[test]
    fn guest_frames(text in "\\PC{0,300}") {
        // Either a frame or a serde error; a frame's accessors never panic.
        if let Ok(f) = guest::Frame::parse(&text) {
            let _ = format!("{f:?}");
        }
    }

    #[test]
    fn guest_frame_shapes(class in "[A-Za-z]{0,24}", code in any::<i64>(), body in "\\PC{0,40}") {
        let text = serde_json::json!({"type": "response", "class": class, "code": code, "body": body}).to_string();
        prop_assert!(guest::Frame::parse(&text).is_ok());
    }

    #[test]
    fn retry_after_values(v in "\\PC{0,40}") {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(RETRY_AFTER, v);
            let _ = http::retry_after(&h);
        }
    }

    #[test]
    fn retry_after_seconds(n in 0u64..1_000_000) {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&n.to_string()).unwrap());
        prop_assert_eq!(http::retry_after(&h), Some(std::time::Duration::from_secs(n)));
    }

    #[test]
    fn conversation_file_names(name in "\\PC{0,40}") {
        if conversation::check_file_name(&name).is_ok() {
            prop_assert!(!name.is_empty() && !name.starts_with('.') && !name.ends_with('/'));
            let forbidden = |c: char| c.is_whitespace() || c.is_control() || "\\{^}%`]\">[~<#|".contains(c);
            prop_assert!(!name.chars().any(forbidden), "forbidden character accepted");
        }
    }

    #[test]
    fn local_file_names(name in "\\PC{1,40}") {
        let p = std::path::Path::new(&name);
        if let Ok(n) = gcupload::validate::file_name_of(p) {
            prop_assert!(!n.chars().any(char::is_control));
            prop_assert!(!n.chars().any(gcupload::redact::is_bidi_control));
            prop_assert!(!n.contains('/'));
        }
    }

    #[test]
    fn redaction_finds_a_signature_in_any_company(
        before in log_like(),
        signature in "[0-9a-f]{16,64}",
        after in log_like(),
    ) {
        // Whatever surrounds it (keys, schemes, quotes, colour codes, multi-byte characters),
        // a signature's value is masked, and no byte position makes the scan panic.
        let line = format!("{before}X-Amz-Signature={signature} {after}");
        prop_assert!(!gcupload::redact::secrets(&line).contains(&signature));
        let shown = gcupload::redact::for_terminal(&line);
        prop_assert!(!shown.chars().any(|c| c.is_control() && c != '\t'));
    }

    #[test]
    fn sizes(s in "\\PC{0,20}") {
        let _ = gcupload::app::cli::parse_size(&s);
    }
}

#[test]
fn an_http_date_retry_after_is_understood() {
    let mut h = HeaderMap::new();
    let when = std::time::SystemTime::now() + std::time::Duration::from_secs(120);
    h.insert(
        RETRY_AFTER,
        HeaderValue::from_str(&httpdate::fmt_http_date(when)).unwrap(),
    );
    let d = http::retry_after(&h).unwrap();
    assert!(d.as_secs() >= 118 && d.as_secs() <= 120, "{d:?}");
}
