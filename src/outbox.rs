//! The durable webhook outbox: deliveries that failed within their retries are appended (fsync)
//! to a JSON-lines file with owner-only permissions, and re-sent at the start of the next run or
//! by `gcupload webhook flush`. Delivered entries are removed. Each entry keeps its event id, so
//! the receiver can drop a duplicate with the `Idempotency-Key` header.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "webhook-outbox.jsonl";
const LOCK: &str = "outbox.lock";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub event_id: String,
    pub url: String,
    /// The exact envelope to POST.
    pub body: serde_json::Value,
    pub queued_at: String,
    pub last_error: String,
}

#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// `$XDG_STATE_HOME/gcupload` (or the platform's equivalent), when there is a home.
pub fn default_dir() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("gcupload"))
}

impl Outbox {
    pub fn new(dir: PathBuf) -> Self {
        Outbox { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn ensure_dir(&self) -> std::io::Result<()> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&self.dir)
    }

    /// Holds the outbox for this process: appends and flushes of concurrent runs don't interleave.
    fn lock(&self) -> std::io::Result<File> {
        self.ensure_dir()?;
        let f = open_private(&self.dir.join(LOCK), false)?;
        f.lock()?;
        Ok(f)
    }

    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let _lock = self.lock()?;
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = open_private(&self.path(), true)?;
        f.write_all(&line)?;
        f.sync_all()
    }

    /// Entries waiting for delivery (a malformed line is kept aside, never dropped silently).
    pub fn pending(&self) -> std::io::Result<Vec<Entry>> {
        let f = match File::open(self.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(e) => out.push(e),
                Err(e) => tracing::warn!("skipping a malformed outbox line: {e}"),
            }
        }
        Ok(out)
    }

    /// Tries every pending entry with `deliver`; keeps those that still fail. Returns
    /// (delivered, remaining).
    pub async fn flush<F, Fut>(&self, mut deliver: F) -> std::io::Result<(usize, usize)>
    where
        F: FnMut(Entry) -> Fut,
        Fut: std::future::Future<Output = Result<(), (Entry, String)>>,
    {
        let _lock = self.lock()?;
        let pending = self.pending()?;
        if pending.is_empty() {
            return Ok((0, 0));
        }
        let mut keep = Vec::new();
        let mut delivered = 0;
        for entry in pending {
            match deliver(entry).await {
                Ok(()) => delivered += 1,
                Err((mut e, why)) => {
                    e.last_error = why;
                    keep.push(e);
                }
            }
        }
        self.rewrite(&keep)?;
        Ok((delivered, keep.len()))
    }

    /// Replaces the file atomically (write, fsync, rename) with `entries`.
    fn rewrite(&self, entries: &[Entry]) -> std::io::Result<()> {
        if entries.is_empty() {
            return match std::fs::remove_file(self.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut f = open_private(&tmp, false)?;
        f.set_len(0)?;
        for e in entries {
            let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
            line.push(b'\n');
            f.write_all(&line)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, self.path())?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}
