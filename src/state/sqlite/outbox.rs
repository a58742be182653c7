//! The webhook outbox: events that could not be delivered within their retries, kept until a
//! later run (or `gcupload webhook flush`) delivers them. An event keeps only its body: it is
//! delivered to the webhook URL configured at flush time, never to a URL read from disk.

use std::io::{BufRead, BufReader};
use std::path::Path;

use rusqlite::params;
use serde_json::Value;

use super::super::error::Result;
use super::super::outbox::{QueuedRow, Turn};
use super::{JSONL, Sqlite, lock_file, now_text};

/// Held by the one process delivering the outbox.
const FLUSH_LOCK: &str = "outbox.lock";

impl Sqlite {
    /// The right to deliver the outbox; `None` while another process delivers it (so two runs
    /// starting together do not both send every queued event).
    pub fn flush_turn(&self) -> Result<Option<Turn>> {
        let dir = self.inner.path.parent().unwrap_or(Path::new("."));
        Ok(lock_file(dir, FLUSH_LOCK, false)?.map(Turn::file))
    }

    /// Keeps an event for a later delivery (once: the event id is the key).
    pub fn queue(
        &self,
        event_id: &str,
        body: &Value,
        error: &str,
        mac: Option<&str>,
    ) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO outbox (event_id, body, queued_at, last_error, attempts, mac) \
                 VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT (event_id) DO UPDATE SET \
                 last_error = excluded.last_error, attempts = attempts + 1",
                params![event_id, body.to_string(), now_text(), error, mac],
            )
            .map(drop)
        })
    }

    /// Every queued event, oldest first, as stored: id, body, attempts, tag.
    pub(in crate::state) fn queued_rows(&self) -> Result<Vec<QueuedRow>> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT event_id, body, attempts, mac FROM outbox ORDER BY rowid")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
    }

    pub fn delivered(&self, event_id: &str) -> Result<()> {
        self.with(|conn| {
            conn.execute("DELETE FROM outbox WHERE event_id = ?1", [event_id])
                .map(drop)
        })
    }

    /// How many entries are kept aside as damaged.
    pub fn quarantined(&self) -> Result<i64> {
        self.with(|conn| conn.query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0)))
    }

    pub(in crate::state) fn quarantine_event(
        &self,
        event_id: &str,
        body: &str,
        why: &str,
    ) -> Result<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO quarantine (source, content, reason, kept_at) VALUES ('outbox', ?1, ?2, ?3)",
                params![body.as_bytes(), why, now_text()],
            )?;
            tx.execute("DELETE FROM outbox WHERE event_id = ?1", [event_id])?;
            tx.commit()
        })
    }

    /// Moves the JSON-lines outbox of earlier versions into the store, once: every line is
    /// either queued or quarantined, then the file is renamed `*.imported`.
    pub(super) fn import_jsonl_outbox(&self, dir: &Path) -> Result<()> {
        let path = dir.join(JSONL);
        // Only a regular file, opened without blocking: a FIFO in its place must not hang a run.
        let Ok(file) = crate::validate::open_nonblocking(&path) else {
            return Ok(());
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            tracing::warn!("{} is not a regular file; not imported", path.display());
            return Ok(());
        }
        let mut lines = Vec::new();
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
            lines.push(std::mem::take(&mut buf));
        }
        let (imported, kept_aside) = self.with(|conn| {
            let tx = conn.transaction()?;
            let counts = import_lines(&tx, &lines)?;
            tx.commit()?;
            Ok(counts)
        })?;
        let done = dir.join(format!("{JSONL}.imported"));
        if let Err(e) = std::fs::rename(&path, &done) {
            tracing::warn!(
                "the old outbox {} could not be renamed: {e}",
                path.display()
            );
        }
        tracing::info!(
            imported,
            kept_aside,
            "imported the JSON-lines webhook outbox"
        );
        Ok(())
    }
}

/// Queues each well-formed line of the old outbox; keeps the others in quarantine.
fn import_lines(
    tx: &rusqlite::Transaction<'_>,
    lines: &[Vec<u8>],
) -> rusqlite::Result<(usize, usize)> {
    let (mut imported, mut kept_aside) = (0, 0);
    for line in lines {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = serde_json::from_slice::<Value>(line).ok().and_then(|v| {
            let id = v.get("eventId")?.as_str()?.to_string();
            let body = v.get("body")?.clone();
            body.is_object().then_some((id, body, v))
        });
        match parsed {
            Some((id, body, v)) => {
                let at = v["queuedAt"].as_str().map_or_else(now_text, str::to_string);
                let err = v["lastError"].as_str().unwrap_or("").to_string();
                tx.execute(
                    "INSERT OR IGNORE INTO outbox (event_id, body, queued_at, last_error, attempts) \
                     VALUES (?1, ?2, ?3, ?4, 1)",
                    params![id, body.to_string(), at, err],
                )?;
                imported += 1;
            }
            None => {
                tx.execute(
                    "INSERT INTO quarantine (source, content, reason, kept_at) \
                     VALUES ('webhook-outbox.jsonl', ?1, 'not a well-formed outbox entry', ?2)",
                    params![line, now_text()],
                )?;
                kept_aside += 1;
            }
        }
    }
    Ok((imported, kept_aside))
}
