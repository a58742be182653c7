//! The object store behind pre-signed URLs: `s3s` + `s3s-fs` verify SigV4 signatures, signed
//! headers and expiry as S3 does; in front of it, the two checks S3 makes that s3s does not.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rusty_s3::S3Action;
use sha2::{Digest, Sha256};
use url::Url;

use super::{SeenRequest, State};

const BUCKET: &str = "gcupload-sandbox";
const ACCESS_KEY: &str = "SANDBOXACCESSKEY";
/// S3's ceiling for a pre-signed URL's lifetime.
const MAX_EXPIRES_SECS: u64 = 7 * 24 * 3600;

pub(crate) struct Store {
    root: PathBuf,
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    s3: s3s::service::S3Service,
}

impl Store {
    pub(crate) fn new(root: PathBuf, endpoint: &Url) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join(BUCKET))?;
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let fs =
            s3s_fs::FileSystem::new(&root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            ACCESS_KEY,
            secret.as_str(),
        ));
        let bucket = rusty_s3::Bucket::new(
            endpoint.clone(),
            rusty_s3::UrlStyle::Path,
            BUCKET,
            "us-east-1",
        )
        .map_err(std::io::Error::other)?;
        Ok(Store {
            root,
            bucket,
            credentials: rusty_s3::Credentials::new(ACCESS_KEY, secret),
            s3: builder.build(),
        })
    }

    /// A SigV4 query-signed PUT URL. `headers` become signed headers; `expired` signs it in the
    /// past so the store refuses it with "Request has expired".
    pub(crate) fn presign_put(
        &self,
        key: &str,
        headers: &[(&str, &str)],
        ttl: Duration,
        expired: bool,
    ) -> Url {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        for (k, v) in headers {
            action.headers_mut().insert(k.to_string(), v.to_string());
        }
        let mut when = jiff::Timestamp::now();
        if expired {
            let back = jiff::SignedDuration::from_secs(ttl.as_secs() as i64 + 60);
            when = when.checked_sub(back).expect("a recent past time");
        }
        action.sign_with_time(ttl, &when)
    }

    /// A SigV4 query-signed GET URL (download links in events and messages).
    pub(crate) fn presign_get(&self, key: &str, ttl: Duration) -> Url {
        self.bucket
            .get_object(Some(&self.credentials), key)
            .sign(ttl)
    }

    pub(crate) fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    pub(crate) fn objects(&self) -> Vec<super::StoredObject> {
        let base = self.root.join(BUCKET);
        let mut out = Vec::new();
        walk(&base, &mut |p| {
            if let Ok((size, sha256)) = digest(p) {
                let key = p
                    .strip_prefix(&base)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned();
                out.push(super::StoredObject { key, size, sha256 });
            }
        });
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The object key a store path addresses (`/bucket/key`, percent-decoded).
    fn key_of(&self, path: &str) -> Option<String> {
        let raw = path
            .strip_prefix('/')?
            .strip_prefix(BUCKET)?
            .strip_prefix('/')?;
        Some(
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .ok()?
                .into_owned(),
        )
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

pub(crate) fn digest(p: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((n_total, hex::encode(h.finalize())))
}

pub(crate) fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{}</RequestId></Error>",
        uuid::Uuid::new_v4().simple()
    );
    (status, [("content-type", "application/xml")], body).into_response()
}

pub(crate) fn router(state: Arc<State>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

async fn handle(AxState(st): AxState<Arc<State>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let authorization = req.headers().contains_key("authorization");
    let put_key = (method == Method::PUT)
        .then(|| st.store.key_of(&path))
        .flatten();
    let existed = put_key
        .as_ref()
        .is_some_and(|k| st.store.object_path(k).exists());
    let t0 = std::time::Instant::now();
    let seen = |status: u16| SeenRequest {
        surface: "store",
        method: method.to_string(),
        path: path.clone(),
        authorization,
        status,
        ms: t0.elapsed().as_secs_f64() * 1000.0,
    };
    let req = if method == Method::PUT {
        match put_fault(&st, req).await {
            Ok(req) => req,
            Err(refusal) => {
                st.seen(seen(refusal.status().as_u16()));
                return refusal;
            }
        }
    } else {
        req
    };
    let resp = match precheck(&st, &req) {
        Some(refusal) => refusal,
        None => match st.store.s3.call(req.map(s3s::Body::http_body_unsync)).await {
            Ok(r) => r.map(Body::new),
            Err(e) => s3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("{e:?}"),
            ),
        },
    };
    if let Some(key) = put_key {
        if resp.status().is_success() {
            st.object_stored(key).await;
        } else if !existed {
            // s3s-fs writes the object before it checks Content-MD5; S3 keeps nothing on BadDigest.
            let _ = std::fs::remove_file(st.store.object_path(&key));
        }
    }
    st.seen(seen(resp.status().as_u16()));
    resp
}

/// Injected PUT faults: a delay, an error answer, or a connection dropped halfway through the body.
async fn put_fault(st: &State, req: Request) -> Result<Request, Response> {
    let delay = st.faults().put_delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some((status, retry_after)) = st.injected("put") {
        let code = match status {
            503 => "SlowDown",
            500 => "InternalError",
            _ => "ServiceUnavailable",
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut r = s3_error(status, code, "Please reduce your request rate (injected).");
        if let Some(secs) = retry_after {
            r.headers_mut().insert(
                "retry-after",
                axum::http::HeaderValue::from_str(&secs.to_string()).expect("digits"),
            );
        }
        return Err(r);
    }
    if st.take(|f| &mut f.drop_puts) {
        let announced = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        st.seen(SeenRequest {
            surface: "store",
            method: "PUT".into(),
            path: req.uri().path().to_string(),
            authorization: req.headers().contains_key("authorization"),
            status: 0,
            ms: 0.0,
        });
        let mut body = req.into_body().into_data_stream();
        let mut read = 0;
        while read < announced / 2 {
            match futures_util::StreamExt::next(&mut body).await {
                Some(Ok(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        super::drop_connection();
    }
    Ok(req)
}

/// What S3 refuses and s3s lets through: over-long expiry, PUTs without a length, and bodies
/// larger than the size announced when the URL was issued.
fn precheck(st: &State, req: &Request) -> Option<Response> {
    if req.method() != Method::PUT {
        return None;
    }
    let expires = req
        .uri()
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "X-Amz-Expires"))
        .and_then(|(_, v)| v.parse::<u64>().ok());
    if expires.is_some_and(|e| e > MAX_EXPIRES_SECS) {
        return Some(s3_error(
            StatusCode::BAD_REQUEST,
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ));
    }
    let length = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(length) = length else {
        return Some(s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        ));
    };
    let key = st.store.key_of(req.uri().path())?;
    let announced = st.announced_size(&key)?;
    (length > announced).then(|| {
        s3_error(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            &format!("Your proposed upload ({length} bytes) exceeds the announced size ({announced} bytes)"),
        )
    })
}
