//! Stage 4: stream the file to the pre-signed URL. A fixed-size read buffer, an explicit
//! Content-Length (S3 refuses chunked PUTs), no token, no redirects, and a check that the bytes
//! sent are exactly the bytes validated. Every attempt reads from the start of the handle the
//! file was validated through (never the path again): a half-consumed stream is never resumed,
//! and the last chunk is held back until everything read hashes to the validated fingerprint,
//! so a store never receives a whole body with other bytes.

use std::sync::{Arc, OnceLock};

use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, HeaderName, HeaderValue};

use crate::error::{Error, Result, Stage};
use crate::routes::UploadTarget;
use crate::validate::{CHUNK, ValidatedFile};
use crate::{http, redact};

/// What the reader found out about the bytes: all read and matching the fingerprint (the last
/// chunk was let go), or how the file changed (the body was ended with an error instead).
type BodyCheck = Arc<OnceLock<std::result::Result<(), String>>>;

/// `within`: what is left of the file's budget. It bounds the whole PUT, body included, and is
/// its only total bound: a fixed short timeout would fail large files on slow links.
pub async fn put(
    client: &reqwest::Client,
    target: &UploadTarget,
    file: &ValidatedFile,
    bar: &indicatif::ProgressBar,
    within: std::time::Duration,
) -> Result<()> {
    http::check_transport(&target.url, "the upload URL")
        .map_err(|e| Error::protocol(Stage::Transfer, e.to_string()))?;
    let checked = file.clone();
    tokio::task::spawn_blocking(move || checked.check_unchanged())
        .await
        .map_err(|e| Error::FileChanged {
            message: format!("it could not be checked before sending: {e}"),
        })??;
    let check = BodyCheck::default();
    let mut req = client
        .put(target.url.clone())
        .header(CONTENT_LENGTH, file.size)
        .timeout(within)
        .body(body(file, &check, bar));
    for (name, value) in signed_headers(target)? {
        req = req.header(name, value);
    }
    tracing::info!(url = %redact::url(&target.url), size = file.size, "uploading");
    let sent = req.send().await;
    outcome(sent, check.get(), file).await
}

/// The PUT's result: a change the reader saw wins over whatever the connection did with the
/// body it cut short.
async fn outcome(
    sent: reqwest::Result<reqwest::Response>,
    check: Option<&std::result::Result<(), String>>,
    file: &ValidatedFile,
) -> Result<()> {
    if let Some(Err(why)) = check {
        return Err(Error::FileChanged {
            message: format!(
                "{why}; the upload was cut short before its last bytes and is not confirmed (validated: {} bytes, sha256 {})",
                file.size, file.sha256
            ),
        });
    }
    let resp = sent.map_err(|e| Error::network(Stage::Transfer, &e))?;
    if !resp.status().is_success() {
        return Err(Error::Remote {
            stage: Stage::Transfer,
            remote: http::remote(resp, Stage::Transfer).await,
        });
    }
    if check.is_none() {
        // The store said yes before the last chunk was let go: it cannot hold the whole file.
        return Err(Error::protocol(
            Stage::Transfer,
            "the store accepted the upload before the whole body was sent",
        ));
    }
    Ok(())
}

/// The validated handle streamed from its start through `read_verified`, counted on `bar`.
fn body(file: &ValidatedFile, check: &BodyCheck, bar: &indicatif::ProgressBar) -> reqwest::Body {
    bar.set_position(0);
    let progress = bar.clone();
    let stream = read_verified(file.clone(), check.clone()).inspect(move |c| {
        if let Ok(chunk) = c {
            progress.inc(chunk.len() as u64);
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// The headers the URL was signed with, checked: valid, and never an Authorization header.
fn signed_headers(target: &UploadTarget) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let refuse = |why: String| Error::protocol(Stage::Transfer, why);
    target
        .headers
        .iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| refuse(format!("upload header `{k}` is not a valid name")))?;
            if name == reqwest::header::AUTHORIZATION {
                return Err(refuse(
                    "the upload headers ask for an Authorization header; refusing".into(),
                ));
            }
            let value = HeaderValue::from_str(v)
                .map_err(|_| refuse(format!("upload header `{k}` has an invalid value")))?;
            Ok((name, value))
        })
        .collect()
}

/// Reads the validated handle from offset 0 on a blocking thread, a few chunks ahead of the
/// socket, straight into the buffers that are sent. Never more than the validated size, even if
/// the file grew. The last chunk goes only once everything read, it included, hashes to the
/// validated fingerprint; otherwise the body ends with an error, short of its Content-Length,
/// which the store refuses: a changed file never lands whole.
fn read_verified(
    file: ValidatedFile,
    check: BodyCheck,
) -> impl Stream<Item = std::io::Result<bytes::Bytes>> + Unpin {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let fail = |why: String| {
            let _ = check.set(Err(why.clone()));
            let _ = tx.blocking_send(Err(std::io::Error::other(why)));
        };
        let mut xxh = xxhash_rust::xxh3::Xxh3::new();
        let mut offset = 0u64;
        while offset < file.size {
            let mut buf = vec![0u8; CHUNK.min((file.size - offset) as usize)];
            let n = match file.read_at(&mut buf, offset) {
                Ok(n) => n,
                Err(e) => return fail(format!("it could not be read while sending: {e}")),
            };
            if n < buf.len() {
                let read = offset + n as u64;
                return fail(format!(
                    "only {read} of {} bytes could be read while sending",
                    file.size
                ));
            }
            xxh.update(&buf);
            offset += n as u64;
            if offset == file.size {
                if xxh.digest() != file.fingerprint {
                    return fail(
                        "the bytes read for sending differ from the validated ones".into(),
                    );
                }
                // Set before the chunk goes: the answer can arrive as soon as it does.
                let _ = check.set(Ok(()));
            }
            if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                return; // the request was dropped
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
        .boxed()
}

/// What to do after a failed PUT.
#[derive(Debug)]
pub enum Verdict {
    /// The store refused the URL as past its expiry: a fresh URL will do.
    UrlExpired,
    /// Worth another try on the same URL, after the wait the store asked for (if any).
    Retry(Option<std::time::Duration>, String),
    Final,
}

pub fn verdict(err: &Error) -> Verdict {
    match err {
        Error::Remote {
            stage: Stage::Transfer,
            remote,
        } if remote.is_expired_url() => Verdict::UrlExpired,
        Error::Network { .. } => Verdict::Retry(None, "connection error during the PUT".into()),
        Error::Remote { remote, .. } => match crate::retry::verdict(remote, None) {
            Some((after, reason)) => Verdict::Retry(after, reason),
            None if store_transient(remote) => Verdict::Retry(None, format!("storage {remote}")),
            None => Verdict::Final,
        },
        _ => Verdict::Final,
    }
}

/// What S3 asks to be tried again, besides what every call retries (429, 502-504, `SlowDown`):
/// a 500 (`InternalError`, "Please try again") and `400 RequestTimeout`. The AWS SDKs' standard
/// retry mode retries both (https://docs.aws.amazon.com/boto3/latest/guide/retries.html); a PUT
/// of the same bytes to the same key is safe to repeat. Any other 4xx stays final.
fn store_transient(remote: &crate::error::Remote) -> bool {
    matches!(
        (remote.status, remote.code.as_deref()),
        (Some(500), _) | (Some(400), Some("RequestTimeout"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Remote;

    fn put_refused(status: u16, code: &str, message: &str) -> Verdict {
        verdict(&Error::Remote {
            stage: Stage::Transfer,
            remote: Remote {
                status: Some(status),
                code: Some(code.into()),
                message: message.into(),
                correlation_id: None,
            },
        })
    }

    #[test]
    fn what_the_store_asks_to_retry_is_retried_and_no_other_4xx() {
        for (status, code) in [
            (500, "InternalError"),
            (503, "SlowDown"),
            (400, "RequestTimeout"),
            (503, "ServiceUnavailable"),
        ] {
            assert!(
                matches!(put_refused(status, code, ""), Verdict::Retry(..)),
                "{status} {code}"
            );
        }
        for (status, code) in [
            (400, "InvalidArgument"),
            (400, "BadDigest"),
            (400, "EntityTooLarge"),
            (403, "SignatureDoesNotMatch"),
            (501, "NotImplemented"),
        ] {
            assert!(
                matches!(put_refused(status, code, ""), Verdict::Final),
                "{status} {code}"
            );
        }
        let expired = put_refused(403, "AccessDenied", "Request has expired");
        assert!(matches!(expired, Verdict::UrlExpired));
    }
}
