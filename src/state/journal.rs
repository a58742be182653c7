//! The journal: one row per upload of a file's content to a target, advanced *before* each step
//! that cannot be undone, so the next run knows exactly what happened. A run claims a file in a
//! transaction (a lease with its pid, host and expiry, renewed while it works): an overlapping
//! run skips what is claimed, and a lease whose holder died is taken over.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::{Value, json};

use super::error::{Result, StateError};
use super::holder;
use super::store::{Inner, Store, now_ms, now_text};

/// A lease lives this long unless renewed; a holder renews it at a third of that.
pub const LEASE_MS: i64 = 60_000;

/// What identifies an upload: the same content under the same name to the same target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub route: String,
    /// What the file lands in: the contact, the conversation and communication, the session.
    pub target: String,
    pub file_name: String,
    pub sha256: String,
}

/// How far an upload got; each is written before the step it names is attempted or after the
/// step it names is known done, as its doc says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Validated and claimed; nothing sent.
    Claimed,
    /// An upload URL was issued for `file_id`; the PUT may or may not have landed.
    UrlIssued,
    /// The PUT was answered 2xx.
    PutDone,
    /// The confirmation was sent; its answer may be lost (confirmations are idempotent).
    ConfirmSent,
    /// The platform confirmed the upload; the message (if the route sends one) is not sent.
    Confirmed,
    /// The message send was started: it may have gone out.
    SendStarted,
    /// Done; the record is stored. The webhook may still be pending.
    Completed,
    /// Ended in a failure a retry of the same row cannot fix.
    Failed,
}

const STEPS: &[(Step, &str)] = &[
    (Step::Claimed, "claimed"),
    (Step::UrlIssued, "url-issued"),
    (Step::PutDone, "put-done"),
    (Step::ConfirmSent, "confirm-sent"),
    (Step::Confirmed, "confirmed"),
    (Step::SendStarted, "send-started"),
    (Step::Completed, "completed"),
    (Step::Failed, "failed"),
];

impl Step {
    pub fn as_str(self) -> &'static str {
        STEPS
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("?", |(_, n)| n)
    }

    fn parse(s: &str) -> Step {
        // An unknown step (a newer gcupload wrote it) is resumed from the safe start.
        STEPS
            .iter()
            .find(|(_, n)| *n == s)
            .map_or(Step::Claimed, |(st, _)| *st)
    }

    /// What a resume from this step does, for `history --pending`.
    pub fn next_action(self) -> &'static str {
        match self {
            Step::Claimed => "upload from the start (nothing was sent)",
            Step::UrlIssued => {
                "ask the platform whether the upload landed: confirm it if so, else PUT again on a fresh URL"
            }
            Step::PutDone | Step::ConfirmSent => "confirm the landed upload",
            Step::Confirmed => "send the message",
            Step::SendStarted => "check whether the message went out; never send it twice",
            Step::Completed => "deliver the webhook event",
            Step::Failed => "upload again",
        }
    }
}

/// A journal row as a run needs it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i64,
    pub step: Step,
    pub file_id: Option<String>,
    pub confirm_url: Option<String>,
    /// The platform's confirmation (fields for the record), from step `Confirmed` on.
    pub confirmation: Option<Value>,
    /// The completed record.
    pub record: Option<Value>,
    pub event_id: Option<String>,
    /// `delivered`, `queued`, `none` (no webhook configured); `None` while pending.
    pub webhook: Option<String>,
    pub completed_at: Option<String>,
}

impl Entry {
    /// The row of a run without a state store: nothing done, nothing kept.
    pub fn unjournaled() -> Entry {
        Entry {
            id: 0,
            step: Step::Claimed,
            file_id: None,
            confirm_url: None,
            confirmation: None,
            record: None,
            event_id: None,
            webhook: None,
            completed_at: None,
        }
    }
}

/// The file as this run found it: where it is (absolute), its size and its stamp (see
/// `validate::stamp`).
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub size: u64,
    pub stamp: Option<String>,
}

/// A completed upload found by the file's stamp, with what its record needs.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub entry: Entry,
    pub file_name: String,
    pub sha256: String,
    pub size: u64,
}

/// Who holds a file, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub pid: u32,
    pub host: String,
    pub until_ms: i64,
}

impl std::fmt::Display for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}", self.pid, holder::host_of(&self.host))
    }
}

/// The outcome of claiming a file.
#[derive(Debug)]
pub enum Claim {
    /// Nothing was done before: upload from the start.
    Fresh(Entry),
    /// An earlier run stopped part-way: finish from `entry.step`.
    Resume(Entry),
    /// Already confirmed to this target, webhook handled: skip.
    Done(Entry),
    /// Another live run holds it now: skip.
    Held(Lease),
}

const COLUMNS: &str = "id, step, file_id, confirm_url, confirmation, record, event_id, webhook, \
                       completed_at, lease_pid, lease_host, lease_until";

/// A row as read: the entry and its lease, if one is held.
type Leased = (Entry, Option<Lease>);

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

/// Whether the process holding a lease may still be working on it (`me`: this process as a
/// holder, see [`holder`]).
fn alive(lease: &Lease, me: &str, now: i64) -> bool {
    lease.until_ms > now && holder::may_be_alive(lease.pid, &lease.host, me)
}

impl Store {
    /// Claims `key` for this process, in one transaction (see [`Claim`]). With `force`, a
    /// completed upload is sent again as a new row.
    pub async fn claim(&self, key: Key, file: Seen, force: bool) -> Result<Claim> {
        self.run(move |conn, me| {
            claim(conn, &key, &file, force, me.pid, &me.host).map_err(|e| me.sql(e))
        })
        .await
    }

    /// The completed upload of a file named `file_name` to `target`, if the file still has the
    /// stamp it had then (the same device and inode, unchanged) and that upload is still the
    /// newest of its content: a re-run skips it without reading it. A read, so it blocks (call
    /// it off the async threads) but takes no write lock.
    pub fn remembered(
        &self,
        route: &str,
        target: &str,
        file_name: &str,
        stamp: &str,
    ) -> Result<Option<Remembered>> {
        self.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS}, file_name, sha256, size FROM uploads u WHERE route = ?1 \
                 AND target = ?2 AND file_name = ?3 AND stamp = ?4 AND step = 'completed' \
                 AND webhook IS NOT NULL AND id = (SELECT max(id) FROM uploads k \
                 WHERE k.route = u.route AND k.target = u.target \
                 AND k.file_name = u.file_name AND k.sha256 = u.sha256)"
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

    /// The latest completed upload of `key`, if any (for a dry run: claims nothing).
    pub async fn completed_entry(&self, key: Key) -> Result<Option<Entry>> {
        self.run(move |conn, me| {
            latest(conn, &key, "AND step = 'completed'")
                .map(|row| row.map(|(e, _)| e))
                .map_err(|e| me.sql(e))
        })
        .await
    }

    /// Records that `id` reached `step` (with the platform's id and confirm URL when known) and
    /// renews the lease. Fails when this process no longer holds the row: another run took it.
    pub async fn advance(
        &self,
        id: i64,
        step: Step,
        file_id: Option<String>,
        confirm_url: Option<String>,
    ) -> Result<()> {
        self.update(
            id,
            "step = ?3, file_id = COALESCE(?4, file_id), confirm_url = COALESCE(?5, confirm_url)",
            vec![
                step.as_str().to_string().into(),
                file_id.map_or(rusqlite::types::Value::Null, Into::into),
                confirm_url.map_or(rusqlite::types::Value::Null, Into::into),
            ],
        )
        .await
    }

    /// The PUT landed, or the confirmation is about to be sent (`PutDone`, `ConfirmSent`):
    /// queued, not waited for. Lost in a crash, the row is still at `UrlIssued`, from which a
    /// resume asks the platform whether the upload landed: the same outcome.
    pub fn passed(&self, id: i64, step: Step) {
        self.run_soon(update(
            id,
            "step = ?3",
            vec![step.as_str().to_string().into()],
        ));
    }

    /// The platform confirmed the upload: keeps what the record needs, for a resumed send, and
    /// the event id its completed record will carry (kept if the row has one already), so a
    /// resume after a completion that could not be journaled reports the same event, under the
    /// same idempotency key. Queued, not waited for: lost in a crash, a resume confirms again
    /// (confirmations are idempotent); the send's own step is written after it, in order, and
    /// waited for.
    pub fn confirmed(&self, id: i64, confirmation: Value, event_id: &str) {
        self.run_soon(update(
            id,
            "step = 'confirmed', confirmation = ?3, event_id = COALESCE(event_id, ?4), error = NULL",
            vec![confirmation.to_string().into(), event_id.to_string().into()],
        ));
    }

    /// The upload is complete: its record is kept; the webhook is pending until [`Store::settled`].
    /// `mac` tags the record as written by gcupload (see [`Store::adopt_owed_events`]).
    pub async fn completed(
        &self,
        id: i64,
        record: Value,
        event_id: String,
        mac: Option<String>,
    ) -> Result<()> {
        self.update(
            id,
            "step = 'completed', record = ?3, event_id = ?4, completed_at = ?5, record_mac = ?6, \
             error = NULL",
            vec![
                record.to_string().into(),
                event_id.into(),
                now_text().into(),
                mac.map_or(rusqlite::types::Value::Null, Into::into),
            ],
        )
        .await
    }

    /// The webhook of a completed upload was handled (`delivered`, `queued`, `none`); the lease
    /// is released. Queued, not waited for (the run waits for it before it ends): lost in a
    /// crash, the next run delivers the event again, under the same idempotency key.
    pub fn settled(&self, id: i64, webhook: &str) {
        self.run_soon(update(
            id,
            "webhook = ?3, lease_pid = NULL, lease_host = NULL, lease_until = NULL",
            vec![webhook.to_string().into()],
        ));
    }

    /// The run failed on this row: the error is kept and the lease released. With `fin` the
    /// row is closed (a retry starts anew); otherwise the next run resumes from its step.
    pub async fn failed(&self, id: i64, error: String, fin: bool) -> Result<()> {
        let set = if fin {
            "step = 'failed', error = ?3, lease_pid = NULL, lease_host = NULL, lease_until = NULL"
        } else {
            "error = ?3, lease_pid = NULL, lease_host = NULL, lease_until = NULL"
        };
        self.update(id, set, vec![error.into()]).await
    }

    /// Keeps the lease of a row this run works on.
    pub async fn renew(&self, id: i64) -> Result<()> {
        self.update(id, "error = error", Vec::new()).await
    }

    /// One `UPDATE … SET {set}` of a row this process holds, with the lease renewed.
    async fn update(
        &self,
        id: i64,
        set: &'static str,
        values: Vec<rusqlite::types::Value>,
    ) -> Result<()> {
        self.run(update(id, set, values)).await
    }
}

/// The job of [`Store::update`]. Fails when this process no longer holds the row.
fn update(
    id: i64,
    set: &'static str,
    values: Vec<rusqlite::types::Value>,
) -> impl FnOnce(&Connection, &Inner) -> Result<()> + Send + 'static {
    move |conn, me| {
        let sql = format!(
            "UPDATE uploads SET lease_until = ?1, updated_at = ?2, {set} \
             WHERE id = ?{a} AND lease_pid = ?{b} AND lease_host = ?{c}",
            a = values.len() + 3,
            b = values.len() + 4,
            c = values.len() + 5
        );
        let mut all: Vec<rusqlite::types::Value> =
            vec![(now_ms() + LEASE_MS).into(), now_text().into()];
        all.extend(values);
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
    let insert = |conn| insert(conn, key, file, pid, host, now);
    Ok(match latest(conn, key, "")? {
        Some((e, _)) if done(&e) && !force => {
            // Read again (touched, or copied back): the next run need not read it.
            exec(
                conn,
                "UPDATE uploads SET stamp = ?2 WHERE id = ?1 AND path = ?3",
                params![e.id, file.stamp, file.path],
            )?;
            Claim::Done(e)
        }
        Some((_, Some(l))) if alive(&l, host, now) => Claim::Held(l),
        Some((e, _)) if e.step == Step::Failed || done(&e) => Claim::Fresh(insert(conn)?),
        Some((e, _)) if force => {
            // `--force` over an upload left part-way: that row is closed, not resumed (a
            // completed one keeps its owed webhook event for the next flush).
            if e.step != Step::Completed {
                supersede(conn, e.id)?;
            }
            Claim::Fresh(insert(conn)?)
        }
        Some((e, _)) => {
            take_lease(conn, e.id, file, pid, host, now)?;
            if e.step == Step::Claimed {
                Claim::Fresh(e)
            } else {
                Claim::Resume(e)
            }
        }
        None => Claim::Fresh(insert(conn)?),
    })
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

/// Confirmed to the target and nothing left to do.
fn done(e: &Entry) -> bool {
    e.step == Step::Completed && e.webhook.is_some()
}

fn insert(
    conn: &Connection,
    key: &Key,
    file: &Seen,
    pid: u32,
    host: &str,
    now: i64,
) -> rusqlite::Result<Entry> {
    let at = now_text();
    exec(
        conn,
        "INSERT INTO uploads (route, target, file_name, sha256, size, path, step, lease_pid, \
         lease_host, lease_until, created_at, updated_at, stamp) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'claimed', ?7, ?8, ?9, ?10, ?10, ?11)",
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
            at,
            file.stamp
        ],
    )?;
    Ok(Entry {
        id: conn.last_insert_rowid(),
        step: Step::Claimed,
        file_id: None,
        confirm_url: None,
        confirmation: None,
        record: None,
        event_id: None,
        webhook: None,
        completed_at: None,
    })
}

fn supersede(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    exec(
        conn,
        "UPDATE uploads SET step = 'failed', error = 'superseded by a forced upload', \
         lease_pid = NULL, lease_host = NULL, lease_until = NULL, updated_at = ?2 WHERE id = ?1",
        params![id, now_text()],
    )
    .map(drop)
}

fn take_lease(
    conn: &Connection,
    id: i64,
    file: &Seen,
    pid: u32,
    host: &str,
    now: i64,
) -> rusqlite::Result<()> {
    exec(
        conn,
        "UPDATE uploads SET lease_pid = ?2, lease_host = ?3, lease_until = ?4, path = ?5, \
         updated_at = ?6, stamp = ?7 WHERE id = ?1",
        params![
            id,
            pid,
            host,
            now + LEASE_MS,
            file.path,
            now_text(),
            file.stamp
        ],
    )?;
    Ok(())
}

/// Runs `sql` through the connection's statement cache: the journal's few statements are
/// parsed once per run, not once per call.
fn exec(conn: &Connection, sql: &str, values: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(values)
}

impl Store {
    /// Whether `lease` is this process's own.
    pub fn is_own(&self, lease: &Lease) -> bool {
        lease.pid == self.inner.pid && lease.host == self.inner.host
    }

    /// Moves the webhook events of completed uploads whose run died before handling them into
    /// the outbox, so the next flush delivers them. `envelope` builds each event from its record
    /// and the record's tag, with the tag of the event (see [`Store::completed`]).
    pub fn adopt_owed_events(
        &self,
        envelope: impl Fn(&Value, Option<&str>) -> (Value, Option<String>),
    ) -> Result<usize> {
        let host = self.inner.host.clone();
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let owed: Vec<(Leased, Option<String>)> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {COLUMNS}, record_mac FROM uploads \
                     WHERE step = 'completed' AND webhook IS NULL"
                ))?;
                stmt.query_map([], |r| Ok((entry(r)?, r.get(12)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let now = now_ms();
            let mut adopted = 0;
            for ((e, lease), record_mac) in owed {
                let (Some(record), Some(event_id)) = (&e.record, &e.event_id) else {
                    continue;
                };
                if lease.is_some_and(|l| alive(&l, &host, now)) {
                    continue; // its run is still delivering it
                }
                let (body, mac) = envelope(record, record_mac.as_deref());
                tx.execute(
                    "INSERT OR IGNORE INTO outbox (event_id, body, queued_at, last_error, attempts, mac) \
                     VALUES (?1, ?2, ?3, 'the run that completed the upload stopped before its webhook', 0, ?4)",
                    params![event_id, body.to_string(), now_text(), mac],
                )?;
                tx.execute(
                    "UPDATE uploads SET webhook = 'queued', lease_pid = NULL, lease_host = NULL, \
                     lease_until = NULL WHERE id = ?1",
                    [e.id],
                )?;
                adopted += 1;
            }
            tx.commit()?;
            Ok(adopted)
        })
    }
}

/// Which rows `gcupload history` prints.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Rows updated at or after this time.
    pub since: Option<time::OffsetDateTime>,
    /// Only rows whose last attempt failed.
    pub failed: bool,
    /// Only rows a resume would act on.
    pub pending: bool,
    /// Only rows for this path (a file, or a directory and everything below it).
    pub path: Option<String>,
}

impl Store {
    /// The journal, oldest first, as JSON objects.
    pub fn history(&self, f: &HistoryFilter) -> Result<Vec<Value>> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, route, target, file_name, sha256, size, path, step, file_id, event_id, \
                 error, webhook, lease_pid, lease_host, lease_until, created_at, updated_at, \
                 completed_at FROM uploads ORDER BY id",
            )?;
            stmt.query_map([], history_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let superseded = if f.failed {
            superseded(&rows)
        } else {
            Default::default()
        };
        Ok(rows
            .into_iter()
            .filter(|r| keep(r, f) && !superseded.contains(&r["id"].as_i64().unwrap_or(0)))
            .collect())
    }
}

/// The rows with a later attempt at the same file (same route, target and path): a failure a
/// later run fixed (the file corrected and sent, say) is not among the files whose last attempt
/// failed. The latest attempt is the row updated last.
fn superseded(rows: &[Value]) -> std::collections::HashSet<i64> {
    type File<'a> = (&'a str, &'a str, &'a str);
    type Attempt = (Option<time::OffsetDateTime>, i64);
    let updated = |r: &Value| {
        let text = r["updatedAt"].as_str().unwrap_or("");
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    };
    let mut latest: std::collections::HashMap<File<'_>, Attempt> = Default::default();
    for r in rows {
        let file = (
            r["route"].as_str().unwrap_or(""),
            r["target"].as_str().unwrap_or(""),
            r["path"].as_str().unwrap_or(""),
        );
        let attempt = (updated(r), r["id"].as_i64().unwrap_or(0));
        let best = latest.entry(file).or_insert(attempt);
        if attempt > *best {
            *best = attempt;
        }
    }
    let newest: std::collections::HashSet<i64> = latest.into_values().map(|(_, id)| id).collect();
    rows.iter()
        .filter_map(|r| r["id"].as_i64())
        .filter(|id| !newest.contains(id))
        .collect()
}

fn history_row(r: &Row<'_>) -> rusqlite::Result<Value> {
    let step = Step::parse(&r.get::<_, String>(7)?);
    let webhook: Option<String> = r.get(11)?;
    let pending = !matches!(step, Step::Completed | Step::Failed)
        || (step == Step::Completed && webhook.is_none());
    let mut v = json!({
        "id": r.get::<_, i64>(0)?,
        "route": r.get::<_, String>(1)?,
        "target": r.get::<_, String>(2)?,
        "fileName": r.get::<_, String>(3)?,
        "sha256": r.get::<_, String>(4)?,
        "size": r.get::<_, i64>(5)?,
        "path": r.get::<_, String>(6)?,
        "step": step.as_str(),
        "fileId": r.get::<_, Option<String>>(8)?,
        "eventId": r.get::<_, Option<String>>(9)?,
        "error": r.get::<_, Option<String>>(10)?,
        "webhook": webhook,
        "pending": pending,
        "createdAt": r.get::<_, String>(15)?,
        "updatedAt": r.get::<_, String>(16)?,
        "completedAt": r.get::<_, Option<String>>(17)?,
    });
    if pending {
        v["next"] = step.next_action().into();
    }
    if let (Some(pid), Some(host), Some(until)) = (
        r.get::<_, Option<i64>>(12)?,
        r.get::<_, Option<String>>(13)?,
        r.get::<_, Option<i64>>(14)?,
    ) {
        v["lease"] = json!({"pid": pid, "host": host, "untilMs": until});
    }
    Ok(v)
}

fn keep(row: &Value, f: &HistoryFilter) -> bool {
    let s = |k: &str| row[k].as_str().unwrap_or("");
    if let Some(since) = f.since {
        let updated = time::OffsetDateTime::parse(
            s("updatedAt"),
            &time::format_description::well_known::Rfc3339,
        );
        if updated.is_ok_and(|t| t < since) {
            return false;
        }
    }
    if f.failed && (row["error"].is_null() || s("step") == "completed") {
        return false;
    }
    if f.pending && row["pending"] != Value::Bool(true) {
        return false;
    }
    if let Some(p) = &f.path {
        let p = p.trim_end_matches('/');
        let path = s("path");
        if path != p && !path.starts_with(&format!("{p}/")) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            route: "external-contact".into(),
            target: "c1".into(),
            file_name: name.into(),
            sha256: "ab".repeat(32),
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state")).unwrap();
        (dir, s)
    }

    async fn claim(s: &Store, name: &str, force: bool) -> Claim {
        let seen = Seen {
            path: format!("/in/{name}"),
            size: 10,
            stamp: Some("1:2:10:3.0:3.0".into()),
        };
        s.claim(key(name), seen, force).await.unwrap()
    }

    /// Pretends the row's lease belongs to another process on this host.
    fn hand_over(s: &Store, id: i64, pid: u32, until_ms: i64) {
        let holder = holder::identity(holder::host_of(&s.inner.host), pid);
        s.with(|c| {
            c.execute(
                "UPDATE uploads SET lease_pid = ?1, lease_until = ?2, lease_host = ?3 WHERE id = ?4",
                params![pid, until_ms, holder, id],
            )
        })
        .unwrap();
    }

    #[tokio::test]
    async fn a_file_goes_fresh_then_done_and_force_starts_anew() {
        let (_d, s) = store();
        let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
            panic!("fresh")
        };
        s.advance(e.id, Step::UrlIssued, Some("f1".into()), None)
            .await
            .unwrap();
        s.completed(e.id, json!({"fileId": "f1"}), "ev1".into(), None)
            .await
            .unwrap();
        s.settled(e.id, "delivered");
        let Claim::Done(done) = claim(&s, "a.pdf", false).await else {
            panic!("done")
        };
        assert_eq!(done.event_id.as_deref(), Some("ev1"));
        assert_eq!(done.file_id.as_deref(), Some("f1"));
        let Claim::Fresh(again) = claim(&s, "a.pdf", true).await else {
            panic!("forced")
        };
        assert_ne!(again.id, e.id, "a forced upload is a new row");
    }

    #[tokio::test]
    async fn a_live_claim_is_held_a_dead_or_expired_one_is_taken_over() {
        let (_d, s) = store();
        let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
            panic!("fresh")
        };
        s.advance(e.id, Step::PutDone, Some("f1".into()), None)
            .await
            .unwrap();
        // Our own live claim (the same file twice in one run) holds.
        assert!(matches!(claim(&s, "a.pdf", false).await, Claim::Held(_)));
        // A live process of this host (pid 1 always exists) holds it too.
        hand_over(&s, e.id, 1, now_ms() + LEASE_MS);
        assert!(matches!(claim(&s, "a.pdf", false).await, Claim::Held(l) if l.pid == 1));
        // The same, but expired: taken over and resumed from its step.
        hand_over(&s, e.id, 1, now_ms() - 1);
        let Claim::Resume(r) = claim(&s, "a.pdf", false).await else {
            panic!("resume")
        };
        assert_eq!((r.id, r.step), (e.id, Step::PutDone));
        // A process that is gone, lease not expired: taken over at once.
        hand_over(&s, r.id, u32::MAX - 7, now_ms() + LEASE_MS);
        assert!(matches!(claim(&s, "a.pdf", false).await, Claim::Resume(_)));
    }

    async fn remembered(s: &Store, name: &str, stamp: &str) -> Option<Remembered> {
        s.written().await.unwrap();
        s.remembered("external-contact", "c1", name, stamp).unwrap()
    }

    #[tokio::test]
    async fn a_file_is_remembered_by_its_stamp_only_while_its_upload_is_the_newest() {
        let (_d, s) = store();
        let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
            panic!("fresh")
        };
        assert!(
            remembered(&s, "a.pdf", "1:2:10:3.0:3.0").await.is_none(),
            "not completed"
        );
        s.completed(e.id, json!({"fileId": "f1"}), "ev1".into(), None)
            .await
            .unwrap();
        assert!(
            remembered(&s, "a.pdf", "1:2:10:3.0:3.0").await.is_none(),
            "webhook pending"
        );
        s.settled(e.id, "delivered");
        let r = remembered(&s, "a.pdf", "1:2:10:3.0:3.0")
            .await
            .expect("known");
        assert_eq!(
            (r.entry.id, r.size, r.file_name.as_str()),
            (e.id, 10, "a.pdf")
        );
        assert_eq!(r.sha256, key("a.pdf").sha256);
        assert!(
            remembered(&s, "a.pdf", "1:2:10:3.0:4.0").await.is_none(),
            "other stamp"
        );
        assert!(
            remembered(&s, "b.pdf", "1:2:10:3.0:3.0").await.is_none(),
            "other name"
        );
        // A forced upload of the same content, left part-way, is newer: the file is read.
        let Claim::Fresh(_) = claim(&s, "a.pdf", true).await else {
            panic!("forced")
        };
        assert!(
            remembered(&s, "a.pdf", "1:2:10:3.0:3.0").await.is_none(),
            "superseded"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_are_committed_together_and_a_failed_one_spoils_no_other() {
        let (_d, s) = store();
        let Claim::Fresh(lost) = claim(&s, "lost.pdf", false).await else {
            panic!("fresh")
        };
        hand_over(&s, lost.id, 1, now_ms() + LEASE_MS);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64 {
            let s1 = s.clone();
            tasks.spawn(async move {
                let s = s1;
                let Claim::Fresh(e) = claim(&s, &format!("{i}.pdf"), false).await else {
                    panic!("fresh")
                };
                s.advance(e.id, Step::UrlIssued, Some(format!("f{i}")), None)
                    .await
                    .unwrap();
                s.advance(e.id, Step::PutDone, None, None).await.unwrap();
            });
            let s2 = s.clone();
            tasks.spawn(async move {
                let err = s2.advance(lost.id, Step::PutDone, None, None).await;
                assert!(matches!(err, Err(StateError::Lost { .. })), "{err:?}");
            });
        }
        while let Some(t) = tasks.join_next().await {
            t.unwrap();
        }
        let rows = s.history(&HistoryFilter::default()).unwrap();
        assert_eq!(rows.len(), 65);
        let done = rows.iter().filter(|r| r["step"] == "put-done").count();
        assert_eq!(done, 64, "every write landed");
        let lost_row = rows.iter().find(|r| r["fileName"] == "lost.pdf").unwrap();
        assert_eq!(
            lost_row["step"], "claimed",
            "the refused write changed nothing"
        );
    }

    #[tokio::test]
    async fn a_row_taken_over_cannot_be_advanced_by_its_old_holder() {
        let (_d, s) = store();
        let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
            panic!("fresh")
        };
        hand_over(&s, e.id, 1, now_ms() + LEASE_MS);
        let err = s.advance(e.id, Step::UrlIssued, None, None).await;
        assert!(matches!(err, Err(StateError::Lost { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn history_filters_and_pending_next_steps() {
        let (_d, s) = store();
        let Claim::Fresh(a) = claim(&s, "a.pdf", false).await else {
            panic!()
        };
        s.advance(a.id, Step::UrlIssued, Some("f".into()), None)
            .await
            .unwrap();
        s.failed(a.id, "boom".into(), false).await.unwrap();
        let Claim::Fresh(b) = claim(&s, "b.pdf", false).await else {
            panic!()
        };
        s.completed(b.id, json!({}), "ev".into(), None)
            .await
            .unwrap();
        s.settled(b.id, "none");
        s.written().await.unwrap();
        let all = s.history(&HistoryFilter::default()).unwrap();
        assert_eq!(all.len(), 2);
        let failed = s
            .history(&HistoryFilter {
                failed: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["fileName"], "a.pdf");
        assert_eq!(failed[0]["next"], Step::UrlIssued.next_action());
        let by_path = s
            .history(&HistoryFilter {
                path: Some("/in/b.pdf".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_path.len(), 1);
        let later = s
            .history(&HistoryFilter {
                since: Some(time::macros::datetime!(9999-01-01 0:00 UTC)),
                ..Default::default()
            })
            .unwrap();
        assert!(later.is_empty());
    }
}
