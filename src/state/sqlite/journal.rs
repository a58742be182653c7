//! The journal in SQLite: claims in the group commit's transaction (SQLite serialises writers,
//! so reading the newest row and acting on it cannot interleave with another run), writes to a
//! held row, and the reads (`remembered`, `history`, the owed webhook events).

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::Value;

use super::super::LEASE_MS;
use super::super::claims::{self, Action, Adopt, Dialect, Leased, Owed, Write};
use super::super::error::{Result, StateError};
use super::super::history;
use super::super::keys::{Claim, Entry, Key, Lease, Remembered, Seen, Step};
use super::{Inner, Sqlite, now_ms, now_text};

const COLUMNS: &str = "id, step, file_id, confirm_url, confirmation, record, event_id, webhook, \
                       completed_at, lease_pid, lease_host, lease_until";

/// Timestamps as RFC 3339 text (what `now_text` writes), leases in ms since the epoch.
fn dialect() -> Dialect {
    Dialect {
        param: |n| format!("?{n}"),
        now: "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        lease: format!("CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + {LEASE_MS}"),
    }
}

fn entry(r: &Row<'_>) -> rusqlite::Result<Leased> {
    let json = |i: usize| -> rusqlite::Result<Option<Value>> {
        Ok(r.get::<_, Option<String>>(i)?
            .and_then(|t| serde_json::from_str(&t).ok()))
    };
    let lease = match (
        r.get::<_, Option<i64>>(9)?,
        r.get::<_, Option<String>>(10)?,
        r.get::<_, Option<i64>>(11)?,
    ) {
        (Some(pid), Some(host), Some(until_ms)) => Some(Lease {
            pid: u32::try_from(pid).unwrap_or(0),
            host,
            until_ms,
        }),
        _ => None,
    };
    let e = Entry {
        id: r.get(0)?,
        step: Step::parse(&r.get::<_, String>(1)?),
        file_id: r.get(2)?,
        confirm_url: r.get(3)?,
        confirmation: json(4)?,
        record: json(5)?,
        event_id: r.get(6)?,
        webhook: r.get(7)?,
        completed_at: r.get(8)?,
    };
    Ok((e, lease))
}

impl Sqlite {
    pub(in crate::state) async fn claim(&self, key: Key, file: Seen, force: bool) -> Result<Claim> {
        self.run(move |conn, me| {
            claim(conn, &key, &file, force, me.pid, &me.host).map_err(|e| me.sql(e))
        })
        .await
    }

    pub(in crate::state) fn remembered(
        &self,
        route: &str,
        target: &str,
        file_name: &str,
        stamp: &str,
    ) -> Result<Option<Remembered>> {
        self.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS}, file_name, sha256, size FROM uploads u WHERE {}",
                dialect().remembered()
            ))?
            .query_row(params![route, target, file_name, stamp], |r| {
                Ok(Remembered {
                    entry: entry(r)?.0,
                    file_name: r.get(12)?,
                    sha256: r.get(13)?,
                    size: u64::try_from(r.get::<_, i64>(14)?).unwrap_or(0),
                })
            })
            .optional()
        })
    }

    pub(in crate::state) async fn completed_entry(&self, key: Key) -> Result<Option<Entry>> {
        self.run(move |conn, me| {
            latest(conn, &key, "AND step = 'completed'")
                .map(|row| row.map(|(e, _)| e))
                .map_err(|e| me.sql(e))
        })
        .await
    }

    pub(in crate::state) async fn write(&self, id: i64, w: Write) -> Result<()> {
        self.run(update(id, w)).await
    }

    /// Queued, not waited for (see [`Sqlite::run_soon`]).
    pub(in crate::state) fn write_soon(&self, id: i64, w: Write) {
        self.run_soon(update(id, w));
    }

    pub(in crate::state) fn is_own(&self, lease: &Lease) -> bool {
        lease.pid == self.inner.pid && lease.host == self.inner.host
    }

    pub(in crate::state) fn holder(&self) -> &str {
        &self.inner.host
    }

    pub(in crate::state) fn owed(&self) -> Result<Vec<Owed>> {
        let now = now_ms();
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS}, record_mac FROM uploads \
                 WHERE step = 'completed' AND webhook IS NULL"
            ))?;
            stmt.query_map([], |r| {
                let (entry, lease) = entry(r)?;
                Ok(Owed {
                    entry,
                    lease,
                    record_mac: r.get(12)?,
                    now,
                })
            })?
            .collect()
        })
    }

    /// Queues the events whose rows are still owed, in one transaction.
    pub(in crate::state) fn adopt(&self, events: Vec<Adopt>) -> Result<usize> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut adopted = 0;
            for a in events {
                let (pid, host) = a
                    .lease
                    .map_or((None, None), |l| (Some(l.pid), Some(l.host)));
                let taken = tx.execute(
                    &format!(
                        "UPDATE uploads SET webhook = 'queued', {} WHERE id = ?1 \
                         AND webhook IS NULL AND lease_pid IS ?2 AND lease_host IS ?3",
                        claims::RELEASED
                    ),
                    params![a.id, pid, host],
                )?;
                if taken == 1 {
                    tx.execute(
                        "INSERT OR IGNORE INTO outbox (event_id, body, queued_at, last_error, \
                         attempts, mac) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                        params![a.event_id, a.body, now_text(), claims::ADOPTED, a.mac],
                    )?;
                    adopted += 1;
                }
            }
            tx.commit()?;
            Ok(adopted)
        })
    }

    pub(in crate::state) fn history(&self) -> Result<Vec<history::Row>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {} FROM uploads ORDER BY id",
                history::COLUMNS
            ))?;
            stmt.query_map([], |r| {
                let lease = match (r.get(12)?, r.get(13)?, r.get(14)?) {
                    (Some(pid), Some(host), Some(until)) => Some((pid, host, until)),
                    _ => None,
                };
                Ok(history::Row {
                    id: r.get(0)?,
                    route: r.get(1)?,
                    target: r.get(2)?,
                    file_name: r.get(3)?,
                    sha256: r.get(4)?,
                    size: r.get(5)?,
                    path: r.get(6)?,
                    step: r.get(7)?,
                    file_id: r.get(8)?,
                    event_id: r.get(9)?,
                    error: r.get(10)?,
                    webhook: r.get(11)?,
                    lease,
                    created_at: r.get(15)?,
                    updated_at: r.get(16)?,
                    completed_at: r.get(17)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
    }
}

/// The job of a write. Fails when this process no longer holds the row.
fn update(id: i64, w: Write) -> impl FnOnce(&Connection, &Inner) -> Result<()> + Send + 'static {
    move |conn, me| {
        let (sql, values) = w.update(&dialect());
        let mut all: Vec<rusqlite::types::Value> = values
            .into_iter()
            .map(|v| v.map_or(rusqlite::types::Value::Null, Into::into))
            .collect();
        all.extend([id.into(), i64::from(me.pid).into(), me.host.clone().into()]);
        let changed = exec(conn, &sql, rusqlite::params_from_iter(all)).map_err(|e| me.sql(e))?;
        if changed == 0 {
            return Err(StateError::Lost { id });
        }
        Ok(())
    }
}

/// Claims `key` (see [`Claim`]); runs inside the batch's transaction, in a savepoint of its own.
fn claim(
    conn: &Connection,
    key: &Key,
    file: &Seen,
    force: bool,
    pid: u32,
    host: &str,
) -> rusqlite::Result<Claim> {
    let now = now_ms();
    Ok(
        match claims::decide(latest(conn, key, "")?, force, host, now) {
            Action::Done(e) => {
                // Read again (touched, or copied back): the next run need not read it.
                exec(
                    conn,
                    "UPDATE uploads SET stamp = ?2 WHERE id = ?1 AND path = ?3",
                    params![e.id, file.stamp, file.path],
                )?;
                Claim::Done(e)
            }
            Action::Held(l) => Claim::Held(l),
            Action::Insert { supersede } => {
                if let Some(id) = supersede {
                    exec(
                        conn,
                        &format!(
                            "UPDATE uploads SET step = 'failed', error = 'superseded by a forced upload', \
                         {}, updated_at = ?2 WHERE id = ?1",
                            claims::RELEASED
                        ),
                        params![id, now_text()],
                    )?;
                }
                Claim::Fresh(insert(conn, key, file, pid, host, now)?)
            }
            Action::TakeOver(e) => {
                exec(
                    conn,
                    "UPDATE uploads SET lease_pid = ?2, lease_host = ?3, lease_until = ?4, path = ?5, \
                 updated_at = ?6, stamp = ?7 WHERE id = ?1",
                    params![
                        e.id,
                        pid,
                        host,
                        now + LEASE_MS,
                        file.path,
                        now_text(),
                        file.stamp
                    ],
                )?;
                claims::resumed(e)
            }
        },
    )
}

/// The newest row for `key` (narrowed by the SQL condition `and`, if any).
fn latest(conn: &Connection, key: &Key, and: &str) -> rusqlite::Result<Option<Leased>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM uploads WHERE route = ?1 AND target = ?2 \
             AND file_name = ?3 AND sha256 = ?4 {and} ORDER BY id DESC LIMIT 1"
    ))?
    .query_row(
        params![key.route, key.target, key.file_name, key.sha256],
        entry,
    )
    .optional()
}

fn insert(
    conn: &Connection,
    key: &Key,
    file: &Seen,
    pid: u32,
    host: &str,
    now: i64,
) -> rusqlite::Result<Entry> {
    let event_id = claims::new_event_id();
    exec(
        conn,
        "INSERT INTO uploads (route, target, file_name, sha256, size, path, step, lease_pid, \
         lease_host, lease_until, created_at, updated_at, stamp, event_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'claimed', ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
        params![
            key.route,
            key.target,
            key.file_name,
            key.sha256,
            file.size as i64,
            file.path,
            pid,
            host,
            now + LEASE_MS,
            now_text(),
            file.stamp,
            event_id
        ],
    )?;
    Ok(claims::fresh(conn.last_insert_rowid(), event_id))
}

/// Runs `sql` through the connection's statement cache: the journal's few statements are
/// parsed once per run, not once per call.
fn exec(conn: &Connection, sql: &str, values: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(values)
}
