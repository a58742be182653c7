//! The object store's contents: `s3s` + `s3s-fs` keep each object as a plain file and verify
//! SigV4 signatures, signed headers and expiry as S3 does. This module signs URLs and knows
//! what each object was announced as and what the scan found in it; `store_front` serves it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusty_s3::S3Action;
use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::state::State;

const BUCKET: &str = "gcupload-sandbox";
const ACCESS_KEY: &str = "SANDBOXACCESSKEY";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

pub(crate) struct Store {
    root: PathBuf,
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    pub(crate) s3: s3s::service::S3Service,
    /// Size announced for each object key when its URL was issued.
    announced: Mutex<HashMap<String, u64>>,
    /// The virus-scan verdict (infected?) of each object, taken once when its PUT lands.
    verdicts: Mutex<HashMap<String, bool>>,
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
            announced: Mutex::default(),
            verdicts: Mutex::default(),
        })
    }

    /// A pre-signed PUT for `key` with the URL faults applied, its size announced to the store.
    pub(crate) fn issue_put_url(
        &self,
        st: &State,
        key: &str,
        size: u64,
        signed: &[(&str, &str)],
    ) -> Url {
        let ttl = Duration::from_secs(st.faults().url_ttl_secs);
        let url = self.presign_put(key, signed, ttl, st.take(|f| &mut f.expired_urls));
        self.announced
            .lock()
            .expect("announced")
            .insert(key.to_string(), size);
        url
    }

    /// A SigV4 query-signed PUT URL. `headers` become signed headers; `expired` signs it in the
    /// past so the store refuses it with "Request has expired".
    fn presign_put(
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

    /// The size announced when the URL for `key` was issued.
    pub(crate) fn announced_size(&self, key: &str) -> Option<u64> {
        self.announced.lock().expect("announced").get(key).copied()
    }

    pub(crate) fn record_verdict(&self, key: &str, infected: bool) {
        self.verdicts
            .lock()
            .expect("verdicts")
            .insert(key.to_string(), infected);
    }

    /// The scan verdict of a stored object: `None` when no PUT of it landed.
    pub(crate) fn infected(&self, key: &str) -> Option<bool> {
        self.verdicts.lock().expect("verdicts").get(key).copied()
    }

    pub(crate) fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    pub(crate) fn objects(&self) -> Vec<StoredObject> {
        let base = self.root.join(BUCKET);
        let mut out = Vec::new();
        walk(&base, &mut |p| {
            if let Ok((size, sha256)) = digest(p) {
                let key = p
                    .strip_prefix(&base)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned();
                out.push(StoredObject { key, size, sha256 });
            }
        });
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The object key a store path addresses (`/bucket/key`, percent-decoded).
    pub(crate) fn key_of(&self, path: &str) -> Option<String> {
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

/// Size and SHA-256 (hex) of a file, read in fixed chunks.
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
