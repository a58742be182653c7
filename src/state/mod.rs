//! The state store: the journal of uploads (so a re-run skips what was sent and a killed run
//! resumes without sending twice), the leases on files in flight, and the webhook outbox. One
//! interface, two databases: SQLite in the state directory (the default, one host), or a
//! PostgreSQL server that several hosts share (`--state-url`). Nothing outside this module knows
//! which one a run talks to; the decisions both share live in [`claims`] and [`history`].

mod claims;
mod error;
mod history;
mod holder;
mod keys;
mod location;
mod outbox;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde_json::Value;

use self::claims::Write;

pub use error::{Result, StateError};
pub use history::HistoryFilter;
pub use keys::{Claim, Entry, Key, LEASE_MS, Lease, Remembered, Seen, Step};
pub use location::Location;
pub use outbox::{Queued, Turn};
pub use sqlite::DB_FILE;

/// `$XDG_STATE_HOME/gcupload` (or the platform's equivalent), when there is a home.
pub fn default_dir() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("gcupload"))
}

/// The open store; cheap to clone.
#[derive(Clone)]
pub struct Store(Backend);

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    #[cfg(feature = "postgres")]
    Postgres(postgres::Postgres),
}

/// `$s` bound to the backend, whichever it is.
macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match &$self.0 {
            Backend::Sqlite($s) => $e,
            #[cfg(feature = "postgres")]
            Backend::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Opens the store at `at` and brings its schema up to date: creates the directory and its
    /// database, or connects to the server (and fails when it cannot be reached).
    pub fn open(at: &Location) -> Result<Store> {
        match at {
            Location::Dir(dir) => sqlite::Sqlite::open(dir).map(Backend::Sqlite).map(Store),
            #[cfg(feature = "postgres")]
            Location::Url(url) => postgres::Postgres::connect(url)
                .map(Backend::Postgres)
                .map(Store),
            #[cfg(not(feature = "postgres"))]
            Location::Url(url) => Err(StateError::NoPostgres {
                url: location::shown(url),
            }),
        }
    }

    /// Whether there is a store at `at` (reading commands check first, since opening creates
    /// one). A server is asked when it is opened.
    pub fn exists(at: &Location) -> bool {
        match at {
            Location::Dir(dir) => sqlite::Sqlite::exists_in(dir),
            Location::Url(_) => true,
        }
    }

    /// Connects to a database server and reads its schema version, changing nothing (what
    /// `doctor` reports); a directory is not opened (opening creates it).
    pub fn probe(at: &Location) -> Result<String> {
        match at {
            Location::Dir(dir) => Ok(format!("the state directory {}", dir.display())),
            #[cfg(feature = "postgres")]
            Location::Url(url) => postgres::Postgres::probe(url),
            #[cfg(not(feature = "postgres"))]
            Location::Url(url) => Err(StateError::NoPostgres {
                url: location::shown(url),
            }),
        }
    }

    /// Where the store is, for people: the database file, or the URL without its password.
    pub fn describe(&self) -> String {
        match &self.0 {
            Backend::Sqlite(s) => s.path().display().to_string(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => p.shown().to_string(),
        }
    }

    /// The run was abandoned (a second interrupt): from now on a call waits for a database
    /// another process holds locked only a moment, so the process exits promptly.
    pub fn hurry(&self) {
        each!(self, s => s.hurry())
    }

    /// Waits until every journal write queued so far is committed.
    pub async fn written(&self) -> Result<()> {
        each!(self, s => s.written().await)
    }

    /// Claims `key` for this process, in one transaction (see [`Claim`]). With `force`, a
    /// completed upload is sent again as a new row.
    pub async fn claim(&self, key: Key, file: Seen, force: bool) -> Result<Claim> {
        each!(self, s => s.claim(key, file, force).await)
    }

    /// The completed upload of a file named `file_name` to `target`, if the file still has the
    /// stamp it had then (the same device and inode, unchanged) and that upload is still the
    /// newest of its content: a re-run skips it without reading it. Blocks (call it off the
    /// async threads, e.g. with the file's `stat` in one `spawn_blocking`) but takes no write
    /// lock.
    pub fn remembered(
        &self,
        route: &str,
        target: &str,
        file_name: &str,
        stamp: &str,
    ) -> Result<Option<Remembered>> {
        each!(self, s => s.remembered(route, target, file_name, stamp))
    }

    /// The latest completed upload of `key`, if any (for a dry run: claims nothing).
    pub async fn completed_entry(&self, key: Key) -> Result<Option<Entry>> {
        each!(self, s => s.completed_entry(key).await)
    }

    async fn write(&self, id: i64, w: Write) -> Result<()> {
        each!(self, s => s.write(id, w).await)
    }

    /// Queued, not waited for: calls made later commit after it; [`Store::written`] waits.
    fn write_soon(&self, id: i64, w: Write) {
        each!(self, s => s.write_soon(id, w))
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
        let w = Write::Advance {
            step,
            file_id,
            confirm_url,
        };
        self.write(id, w).await
    }

    /// The PUT landed, or the confirmation is about to be sent (`PutDone`, `ConfirmSent`):
    /// queued, not waited for. Lost in a crash, the row is still at `UrlIssued`, from which a
    /// resume asks the platform whether the upload landed: the same outcome.
    pub fn passed(&self, id: i64, step: Step) {
        self.write_soon(id, Write::Passed(step));
    }

    /// The platform confirmed the upload: keeps what the record needs, for a resumed send, and
    /// the event id its completed record will carry (kept if the row has one already), so a
    /// resume after a completion that could not be journaled reports the same event, under the
    /// same idempotency key. Queued, not waited for: lost in a crash, a resume confirms again
    /// (confirmations are idempotent); the send's own step is written after it, in order, and
    /// waited for.
    pub fn confirmed(&self, id: i64, confirmation: Value, event_id: &str) {
        let event_id = event_id.to_string();
        self.write_soon(
            id,
            Write::Confirmed {
                confirmation,
                event_id,
            },
        );
    }

    /// The upload is complete: its record is kept; the webhook is pending until [`Store::settled`],
    /// or, with `no_webhook`, settled (`none`) and the lease released by this same write.
    /// `mac` tags the record as written by gcupload (see [`Store::adopt_owed_events`]).
    pub async fn completed(
        &self,
        id: i64,
        record: Value,
        event_id: String,
        mac: Option<String>,
        no_webhook: bool,
    ) -> Result<()> {
        let w = Write::Completed {
            record,
            event_id,
            mac,
            settled: no_webhook,
        };
        self.write(id, w).await
    }

    /// The webhook of a completed upload was handled (`delivered`, `queued`, `none`); the lease
    /// is released. Queued, not waited for (the run waits for it before it ends): lost in a
    /// crash, the next run delivers the event again, under the same idempotency key.
    pub fn settled(&self, id: i64, webhook: &str) {
        self.write_soon(id, Write::Settled(webhook.to_string()));
    }

    /// The run failed on this row: the error is kept and the lease released. With `fin` the
    /// row is closed (a retry starts anew); otherwise the next run resumes from its step.
    pub async fn failed(&self, id: i64, error: String, fin: bool) -> Result<()> {
        self.write(id, Write::Failed { error, fin }).await
    }

    /// Keeps the lease of a row this run works on.
    pub async fn renew(&self, id: i64) -> Result<()> {
        self.write(id, Write::Renew).await
    }

    /// Whether `lease` is this process's own.
    pub fn is_own(&self, lease: &Lease) -> bool {
        each!(self, s => s.is_own(lease))
    }

    /// Moves the webhook events of completed uploads whose run died before handling them into
    /// the outbox, so the next flush delivers them. `envelope` builds each event from its record
    /// and the record's tag, with the tag of the event (see [`Store::completed`]).
    pub fn adopt_owed_events(
        &self,
        envelope: impl Fn(&Value, Option<&str>) -> (Value, Option<String>),
    ) -> Result<usize> {
        let owed = each!(self, s => s.owed())?;
        let events = claims::adoptable(owed, each!(self, s => s.holder()), envelope);
        each!(self, s => s.adopt(events))
    }

    /// The journal, oldest first, as JSON objects.
    pub fn history(&self, f: &HistoryFilter) -> Result<Vec<Value>> {
        let rows = each!(self, s => s.history())?;
        Ok(history::select(rows, f))
    }

    /// The right to deliver the outbox; `None` while another process delivers it (so two runs
    /// starting together, on this host or another, do not both send every queued event).
    pub fn flush_turn(&self) -> Result<Option<Turn>> {
        each!(self, s => s.flush_turn())
    }

    /// Keeps an event for a later delivery (once: the event id is the key).
    pub fn queue(
        &self,
        event_id: &str,
        body: &Value,
        error: &str,
        mac: Option<&str>,
    ) -> Result<()> {
        each!(self, s => s.queue(event_id, body, error, mac))
    }

    /// Keeps an event aside instead of delivering it (`why` says what is wrong with it).
    pub fn quarantine(&self, q: &Queued, why: &str) -> Result<()> {
        self.quarantine_event(&q.event_id, &q.body.to_string(), why)
    }

    fn quarantine_event(&self, event_id: &str, body: &str, why: &str) -> Result<()> {
        tracing::warn!(
            event_id,
            "a queued webhook event is damaged; kept aside in quarantine"
        );
        each!(self, s => s.quarantine_event(event_id, body, why))
    }

    /// Every queued event, oldest first; a body that is not JSON is moved to quarantine.
    pub fn queued(&self) -> Result<Vec<Queued>> {
        let rows = each!(self, s => s.queued_rows())?;
        outbox::parse(rows, |id, body, why| self.quarantine_event(id, body, why))
    }

    pub fn delivered(&self, event_id: &str) -> Result<()> {
        each!(self, s => s.delivered(event_id))
    }

    /// How many entries are kept aside as damaged.
    pub fn quarantined(&self) -> Result<i64> {
        each!(self, s => s.quarantined())
    }
}
