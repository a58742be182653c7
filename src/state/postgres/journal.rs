//! The journal in PostgreSQL. A claim first takes the key's advisory lock
//! (`pg_advisory_xact_lock`), so two hosts claiming the same file take turns and the second sees
//! the first's row and lease. A key with no row is claimed in one statement (the function of
//! migration 3); otherwise the claim is one transaction that reads and locks the key's newest
//! row and decides. As a second guard, a new row meets the unique index on unfinished rows
//! (`INSERT … ON CONFLICT DO NOTHING`; the loser claims again and finds the row held). Leases
//! expire by the server's clock.

use std::future::Future;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement};
use serde_json::Value;

use super::super::LEASE_MS;
use super::super::claims::{self, Action, Adopt, Dialect, Leased, Owed, Write};
use super::super::error::{Result, StateError};
use super::super::history;
use super::super::keys::{Claim, Entry, Key, Lease, Remembered, Seen, Step};
use super::pipe::Param;
use super::{Db, Me, Postgres};

/// A timestamp as RFC 3339 text, as the SQLite store keeps them.
macro_rules! text {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}
/// A timestamp in ms since the epoch (leases).
macro_rules! ms {
    ($col:literal) => {
        concat!("(extract(epoch FROM ", $col, ") * 1000)::BIGINT")
    };
}

const COLUMNS: &str = concat!(
    "id, step, file_id, confirm_url, confirmation, record, event_id, webhook, ",
    text!("completed_at"),
    ", lease_pid, lease_host, ",
    ms!("lease_until"),
    ", ",
    ms!("now()")
);

const KEY: &str = "route = $1 AND target = $2 AND file_name = $3 AND sha256 = $4";

/// The key's advisory lock, held to the end of the claim's transaction (a hash collision only
/// makes two keys' claims take turns).
const KEY_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended(\
                        $1 || '/' || $2 || '/' || $3 || '/' || $4, 0))";

fn dialect() -> Dialect {
    Dialect {
        param: |n| format!("${n}"),
        now: "now()",
        lease: format!("now() + interval '{LEASE_MS} milliseconds'"),
    }
}

/// The entry, its lease, and the server's time (ms).
fn entry(r: &Row) -> (Leased, i64) {
    let json = |i: usize| {
        r.get::<_, Option<String>>(i)
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    };
    let lease = match (
        r.get::<_, Option<i64>>(9),
        r.get::<_, Option<String>>(10),
        r.get::<_, Option<i64>>(11),
    ) {
        (Some(pid), Some(host), Some(until_ms)) => Some(Lease {
            pid: u32::try_from(pid).unwrap_or(0),
            host,
            until_ms,
        }),
        _ => None,
    };
    let e = Entry {
        id: r.get(0),
        step: Step::parse(r.get(1)),
        file_id: r.get(2),
        confirm_url: r.get(3),
        confirmation: json(4),
        record: json(5),
        event_id: r.get(6),
        webhook: r.get(7),
        completed_at: r.get(8),
    };
    ((e, lease), r.get(12))
}

fn key_params(key: &Key) -> [&(dyn ToSql + Sync); 4] {
    [&key.route, &key.target, &key.file_name, &key.sha256]
}

/// A new row's values, in the order both claims take them: the key, size, path, lease holder,
/// stamp and event id.
fn new_row<'a>(
    key: &'a Key,
    file: &'a Seen,
    size: &'a i64,
    pid: &'a i64,
    host: &'a String,
    event_id: &'a String,
) -> [&'a (dyn ToSql + Sync); 10] {
    let [route, target, file_name, sha256] = key_params(key);
    [
        route,
        target,
        file_name,
        sha256,
        size,
        &file.path,
        pid,
        host,
        &file.stamp,
        event_id,
    ]
}

impl Postgres {
    pub(in crate::state) async fn claim(&self, key: Key, file: Seen, force: bool) -> Result<Claim> {
        let event_id = claims::new_event_id();
        if let Some(id) = self.claim_new(&key, &file, &event_id).await? {
            return Ok(Claim::Fresh(claims::fresh(id, event_id)));
        }
        self.run(Self::spread(&key.file_name), move |c, me| {
            // A lost insert race is claimed again, and then finds the winner's row.
            for _ in 0..3 {
                if let Some(claim) = claim(c, me, &key, &file, force).map_err(|e| me.err(e))? {
                    return Ok(claim);
                }
            }
            Err(me.err_text("a claim kept losing to other hosts' claims of the same file"))
        })
        .await
    }

    /// Blocks, on the pipelined connection: called from a blocking thread of the run's runtime
    /// (with the file's `stat`, in one hop off the async threads), which drives the connection.
    pub(in crate::state) fn remembered(
        &self,
        route: &str,
        target: &str,
        file_name: &str,
        stamp: &str,
    ) -> Result<Option<Remembered>> {
        let sql = format!(
            "SELECT {COLUMNS}, file_name, sha256, size FROM uploads u WHERE {}",
            dialect().remembered()
        );
        let params: [&(dyn ToSql + Sync); 4] = [&route, &target, &file_name, &stamp];
        let rows =
            tokio::runtime::Handle::current().block_on(self.inner.pipe.query(&sql, &params))?;
        Ok(rows.first().map(|r| Remembered {
            entry: entry(r).0.0,
            file_name: r.get(13),
            sha256: r.get(14),
            size: u64::try_from(r.get::<_, i64>(15)).unwrap_or(0),
        }))
    }

    pub(in crate::state) async fn completed_entry(&self, key: Key) -> Result<Option<Entry>> {
        self.run(Self::spread(&key.file_name), move |c, me| {
            let st = c.stmt(&latest_sql("AND step = 'completed'", ""));
            st.and_then(|st| latest(&mut **c, &st, &key))
                .map(|row| row.map(|((e, _), _)| e))
                .map_err(|e| me.err(e))
        })
        .await
    }

    pub(in crate::state) async fn write(&self, id: i64, w: Write) -> Result<()> {
        self.update(id, w).await
    }

    /// Not waited for: the row's later calls are sent after it.
    pub(in crate::state) fn write_soon(&self, id: i64, w: Write) {
        let write = self.update(id, w);
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::warn!("a journal write failed: {e}");
            }
        });
    }

    /// A write to a row this process holds, in order with the row's other calls. Fails when
    /// it no longer holds the row.
    fn update(&self, id: i64, w: Write) -> impl Future<Output = Result<()>> + Send + 'static {
        let (sql, values) = w.update(&dialect());
        let mut params: Vec<Param> = values.into_iter().map(|v| Box::new(v) as Param).collect();
        params.push(Box::new(id));
        params.push(Box::new(i64::from(self.inner.pid)));
        params.push(Box::new(self.inner.host.clone()));
        let changed = self.inner.pipe.in_order(id, sql, params);
        async move {
            if changed.await? == 0 {
                return Err(StateError::Lost { id });
            }
            Ok(())
        }
    }

    /// The claim of a key that has no row yet, in one statement (see migration 3); `None` when
    /// a row exists, and the full claim decides. With no row, the decision is always a new row.
    async fn claim_new(&self, key: &Key, file: &Seen, event_id: &String) -> Result<Option<i64>> {
        debug_assert!(matches!(
            claims::decide(None, true, &self.inner.host, 0),
            Action::Insert { supersede: None }
        ));
        let (size, pid) = (file.size as i64, i64::from(self.inner.pid));
        let mut params = new_row(key, file, &size, &pid, &self.inner.host, event_id).to_vec();
        params.push(&LEASE_MS);
        let rows = self
            .inner
            .pipe
            .query(
                "SELECT gcupload_claim_new($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &params,
            )
            .await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    pub(in crate::state) fn is_own(&self, lease: &Lease) -> bool {
        lease.pid == self.inner.pid && lease.host == self.inner.host
    }

    pub(in crate::state) fn holder(&self) -> &str {
        &self.inner.host
    }

    pub(in crate::state) fn owed(&self) -> Result<Vec<Owed>> {
        self.call(|c, me| {
            let rows = c
                .query(
                    &format!(
                        "SELECT {COLUMNS}, record_mac FROM uploads \
                         WHERE step = 'completed' AND webhook IS NULL"
                    ),
                    &[],
                )
                .map_err(|e| me.err(e))?;
            Ok(rows
                .iter()
                .map(|r| {
                    let ((entry, lease), now) = entry(r);
                    Owed {
                        entry,
                        lease,
                        record_mac: r.get(13),
                        now,
                    }
                })
                .collect())
        })
    }

    pub(in crate::state) fn adopt(&self, events: Vec<Adopt>) -> Result<usize> {
        self.call(move |c, me| adopt(c, events).map_err(|e| me.err(e)))
    }

    pub(in crate::state) fn history(&self) -> Result<Vec<history::Row>> {
        self.call(|c, me| {
            let sql = format!(
                "SELECT id, route, target, file_name, sha256, size, path, step, file_id, event_id, \
                 error, webhook, lease_pid, lease_host, {}, {}, {}, {} FROM uploads ORDER BY id",
                ms!("lease_until"),
                text!("created_at"),
                text!("updated_at"),
                text!("completed_at")
            );
            let rows = c.query(&sql, &[]).map_err(|e| me.err(e))?;
            Ok(rows.iter().map(history_row).collect())
        })
    }
}

fn history_row(r: &Row) -> history::Row {
    let lease = match (r.get(12), r.get(13), r.get(14)) {
        (Some(pid), Some(host), Some(until)) => Some((pid, host, until)),
        _ => None,
    };
    history::Row {
        id: r.get(0),
        route: r.get(1),
        target: r.get(2),
        file_name: r.get(3),
        sha256: r.get(4),
        size: r.get(5),
        path: r.get(6),
        step: r.get(7),
        file_id: r.get(8),
        event_id: r.get(9),
        error: r.get(10),
        webhook: r.get(11),
        lease,
        created_at: r.get(15),
        updated_at: r.get(16),
        completed_at: r.get(17),
    }
}

/// Queues the events whose rows are still owed, in one transaction.
fn adopt(c: &mut Client, events: Vec<Adopt>) -> std::result::Result<usize, postgres::Error> {
    let mut tx = c.transaction()?;
    let mut adopted = 0;
    for a in events {
        let (pid, host) = a
            .lease
            .map_or((None, None), |l| (Some(i64::from(l.pid)), Some(l.host)));
        let taken = tx.execute(
            &format!(
                "UPDATE uploads SET webhook = 'queued', {} WHERE id = $1 AND webhook IS NULL \
                 AND lease_pid IS NOT DISTINCT FROM $2 AND lease_host IS NOT DISTINCT FROM $3",
                claims::RELEASED
            ),
            &[&a.id, &pid, &host],
        )?;
        if taken == 1 {
            tx.execute(
                "INSERT INTO outbox (event_id, body, last_error, attempts, mac) \
                 VALUES ($1, $2, $3, 0, $4) ON CONFLICT (event_id) DO NOTHING",
                &[&a.event_id, &a.body, &claims::ADOPTED, &a.mac],
            )?;
            adopted += 1;
        }
    }
    tx.commit()?;
    Ok(adopted)
}

/// The query of the newest row for a key (narrowed by the SQL condition `and`; `lock`:
/// `FOR UPDATE`).
fn latest_sql(and: &str, lock: &str) -> String {
    format!("SELECT {COLUMNS} FROM uploads WHERE {KEY} {and} ORDER BY id DESC LIMIT 1 {lock}")
}

/// The newest row for `key`, by `st` (see [`latest_sql`]).
fn latest(
    c: &mut impl GenericClient,
    st: &Statement,
    key: &Key,
) -> std::result::Result<Option<(Leased, i64)>, postgres::Error> {
    let row = c.query_opt(st, &key_params(key))?;
    Ok(row.as_ref().map(entry))
}

/// A new row's insert (no row when another unfinished one of the key exists).
fn insert_sql() -> String {
    format!(
        "INSERT INTO uploads (route, target, file_name, sha256, size, path, step, \
         lease_pid, lease_host, lease_until, stamp, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, 'claimed', $7, $8, {}, $9, $10) \
         ON CONFLICT (route, target, file_name, sha256) \
         WHERE NOT finished DO NOTHING RETURNING id",
        dialect().lease
    )
}

/// One attempt at a claim, in a transaction; `None` when another host inserted the key's
/// unfinished row first.
fn claim(
    c: &mut Db,
    me: &Me,
    key: &Key,
    file: &Seen,
    force: bool,
) -> std::result::Result<Option<Claim>, postgres::Error> {
    // Prepared before the transaction begins: it holds the connection.
    let (turn, find) = (c.stmt(KEY_LOCK)?, c.stmt(&latest_sql("", "FOR UPDATE"))?);
    let insert = c.stmt(&insert_sql())?;
    let mut tx = c.transaction()?;
    // Claims of one key take turns: the row lock alone would let a claim that found no row
    // insert a second one after a first host's row had moved past the unique index (completed).
    tx.execute(&turn, &key_params(key))?;
    let found = latest(&mut tx, &find, key)?;
    let now = found.as_ref().map_or(0, |(_, now)| *now);
    let pid = i64::from(me.pid);
    let claim = match claims::decide(found.map(|(l, _)| l), force, &me.host, now) {
        Action::Done(e) => {
            tx.execute(
                "UPDATE uploads SET stamp = $2 WHERE id = $1 AND path = $3",
                &[&e.id, &file.stamp, &file.path],
            )?;
            Some(Claim::Done(e))
        }
        Action::Held(l) => Some(Claim::Held(l)),
        Action::Insert { supersede } => {
            if let Some(id) = supersede {
                tx.execute(
                    &format!(
                        "UPDATE uploads SET step = 'failed', error = 'superseded by a forced upload', \
                         {}, updated_at = now() WHERE id = $1",
                        claims::RELEASED
                    ),
                    &[&id],
                )?;
            }
            let (size, event_id) = (file.size as i64, claims::new_event_id());
            let params = new_row(key, file, &size, &pid, &me.host, &event_id);
            let row = tx.query_opt(&insert, &params)?;
            row.map(|r| Claim::Fresh(claims::fresh(r.get(0), event_id)))
        }
        Action::TakeOver(e) => {
            tx.execute(
                &format!(
                    "UPDATE uploads SET lease_pid = $2, lease_host = $3, lease_until = {}, \
                     path = $4, updated_at = now(), stamp = $5 WHERE id = $1",
                    dialect().lease
                ),
                &[&e.id, &pid, &me.host, &file.path, &file.stamp],
            )?;
            Some(claims::resumed(e))
        }
    };
    if claim.is_some() {
        tx.commit()?;
    }
    Ok(claim)
}
