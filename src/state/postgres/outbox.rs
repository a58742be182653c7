//! The webhook outbox in PostgreSQL (see [`crate::state::Queued`]). One host at a time delivers
//! it: the turn is an advisory lock of this process's session.

use serde_json::Value;

use super::super::error::Result;
use super::super::outbox::{QueuedRow, Turn};
use super::Postgres;

/// The advisory lock of the outbox's delivery ("gcoutbox" in ASCII, shortened).
const FLUSH_LOCK: i64 = 0x6763_6f75_7462;

impl Postgres {
    pub(in crate::state) fn flush_turn(&self) -> Result<Option<Turn>> {
        let got = self.call(|c, me| {
            c.query_one("SELECT pg_try_advisory_lock($1)", &[&FLUSH_LOCK])
                .map(|r| r.get::<_, bool>(0))
                .map_err(|e| me.err(e))
        })?;
        let store = self.clone();
        Ok(got.then(|| {
            Turn::released_by(move || {
                store.run_soon(0, |c, me| {
                    c.execute("SELECT pg_advisory_unlock($1)", &[&FLUSH_LOCK])
                        .map(drop)
                        .map_err(|e| me.err(e))
                });
            })
        }))
    }

    pub(in crate::state) fn queue(
        &self,
        event_id: &str,
        body: &Value,
        error: &str,
        mac: Option<&str>,
    ) -> Result<()> {
        let (id, body, error, mac) = (
            event_id.to_string(),
            body.to_string(),
            error.to_string(),
            mac.map(str::to_string),
        );
        self.call(move |c, me| {
            c.execute(
                "INSERT INTO outbox (event_id, body, last_error, attempts, mac) \
                 VALUES ($1, $2, $3, 1, $4) ON CONFLICT (event_id) DO UPDATE SET \
                 last_error = excluded.last_error, attempts = outbox.attempts + 1",
                &[&id, &body, &error, &mac],
            )
            .map(drop)
            .map_err(|e| me.err(e))
        })
    }

    pub(in crate::state) fn queued_rows(&self) -> Result<Vec<QueuedRow>> {
        self.call(|c, me| {
            let rows = c
                .query(
                    "SELECT event_id, body, attempts, mac FROM outbox ORDER BY seq",
                    &[],
                )
                .map_err(|e| me.err(e))?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect())
        })
    }

    pub(in crate::state) fn delivered(&self, event_id: &str) -> Result<()> {
        let id = event_id.to_string();
        self.call(move |c, me| {
            c.execute("DELETE FROM outbox WHERE event_id = $1", &[&id])
                .map(drop)
                .map_err(|e| me.err(e))
        })
    }

    pub(in crate::state) fn quarantined(&self) -> Result<i64> {
        self.call(|c, me| {
            c.query_one("SELECT count(*) FROM quarantine", &[])
                .map(|r| r.get(0))
                .map_err(|e| me.err(e))
        })
    }

    pub(in crate::state) fn quarantine_event(
        &self,
        event_id: &str,
        body: &str,
        why: &str,
    ) -> Result<()> {
        let (id, body, why) = (
            event_id.to_string(),
            body.as_bytes().to_vec(),
            why.to_string(),
        );
        self.call(move |c, me| {
            let mut tx = c.transaction().map_err(|e| me.err(e))?;
            tx.execute(
                "INSERT INTO quarantine (source, content, reason) VALUES ('outbox', $1, $2)",
                &[&body, &why],
            )
            .map_err(|e| me.err(e))?;
            tx.execute("DELETE FROM outbox WHERE event_id = $1", &[&id])
                .map_err(|e| me.err(e))?;
            tx.commit().map_err(|e| me.err(e))
        })
    }
}
