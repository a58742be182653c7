//! Stage 4: stream the file to the pre-signed URL. A fixed-size read buffer, an explicit
//! Content-Length (S3 refuses chunked PUTs), no token, no redirects, and a check that the bytes
//! sent are exactly the bytes validated. Each attempt re-opens the file and streams it from the
//! start: a half-consumed stream is never resumed.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, HeaderName, HeaderValue};

use crate::error::{Error, Result, Stage};
use crate::routes::UploadTarget;
use crate::validate::{CHUNK, ValidatedFile};
use crate::{http, redact};

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
    let seen = Arc::new(Mutex::new(Tap::default()));
    let mut req = client
        .put(target.url.clone())
        .header(CONTENT_LENGTH, file.size)
        .timeout(within)
        .body(body(file, &seen, bar)?);
    for (name, value) in signed_headers(target)? {
        req = req.header(name, value);
    }
    tracing::info!(url = %redact::url(&target.url), size = file.size, "uploading");
    let sent = req.send().await;

    let Tap {
        hasher,
        count,
        ended,
    } = std::mem::take(&mut *seen.lock().expect("hash state"));
    let resp = match sent {
        Ok(r) => r,
        Err(_) if ended && count < file.size => {
            // Our own body ran dry: the file shrank under us.
            return Err(Error::FileChanged {
                message: format!(
                    "only {count} of {} bytes could be read while sending",
                    file.size
                ),
            });
        }
        Err(e) => return Err(Error::network(Stage::Transfer, &e)),
    };
    if !resp.status().is_success() {
        return Err(Error::Remote {
            stage: Stage::Transfer,
            remote: http::remote(resp, Stage::Transfer).await,
        });
    }
    if count != file.size || hasher.digest() != file.fingerprint {
        return Err(Error::FileChanged {
            message: format!(
                "the {count} bytes sent differ from the {} bytes validated (sha256 {}); the upload is not confirmed",
                file.size, file.sha256
            ),
        });
    }
    Ok(())
}

/// The file, re-opened and streamed from its start, through `seen`.
fn body(
    file: &ValidatedFile,
    seen: &Arc<Mutex<Tap>>,
    bar: &indicatif::ProgressBar,
) -> Result<reqwest::Body> {
    let f = std::fs::File::open(&file.path).map_err(|e| Error::FileChanged {
        message: format!("it could not be reopened for sending: {e}"),
    })?;
    bar.set_position(0);
    let stream = Tapped {
        inner: read_ahead(f, file.size),
        tap: seen.clone(),
        bar: bar.clone(),
    };
    Ok(reqwest::Body::wrap_stream(stream))
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

/// Reads `len` bytes of `file` on a blocking thread, a few chunks ahead of the socket: each chunk
/// is read straight into the buffer that is sent (no second copy, no per-chunk task hop).
fn read_ahead(
    mut file: std::fs::File,
    len: u64,
) -> impl Stream<Item = std::io::Result<bytes::Bytes>> + Unpin {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        // Never send more than was validated, even if the file grows meanwhile.
        let mut left = len;
        while left > 0 {
            let want = CHUNK.min(left as usize);
            let mut buf = Vec::with_capacity(want);
            let n = match (&mut file).take(want as u64).read_to_end(&mut buf) {
                Ok(0) => return, // the file shrank: the stream ends short
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            left -= n as u64;
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

/// What the body stream saw: the fingerprint and length of the bytes handed to the connection,
/// and whether the file itself ran out (as opposed to the connection no longer reading). XXH3
/// runs at memory speed, so checking the bytes costs the PUT nothing measurable.
#[derive(Default)]
struct Tap {
    hasher: xxhash_rust::xxh3::Xxh3,
    count: u64,
    ended: bool,
}

struct Tapped<S> {
    inner: S,
    tap: Arc<Mutex<Tap>>,
    bar: indicatif::ProgressBar,
}

impl<S> Stream for Tapped<S>
where
    S: Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        let mut tap = self.tap.lock().expect("hash state");
        match &next {
            Poll::Ready(Some(Ok(chunk))) => {
                tap.hasher.update(chunk);
                tap.count += chunk.len() as u64;
                self.bar.inc(chunk.len() as u64);
            }
            Poll::Ready(None) => tap.ended = true,
            _ => {}
        }
        drop(tap);
        next
    }
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
