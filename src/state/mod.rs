//! The state store: one SQLite database (`state.db`, WAL) in the state directory. It holds the
//! journal of uploads, so a re-run skips what was sent and a killed run resumes without sending
//! twice, and the webhook outbox. Every call is short; the async facade runs the journal's off
//! the async threads, in group commits. Concurrent runs (overlapping cron jobs) share it safely:
//! SQLite serialises writers, and a file is claimed in a transaction before anything is sent.

mod batch;
mod error;
mod holder;
mod journal;
mod outbox;
mod schema;
mod store;
mod wait;

pub use error::{Result, StateError};
pub use journal::{Claim, Entry, HistoryFilter, Key, LEASE_MS, Lease, Remembered, Seen, Step};
pub use outbox::Queued;
pub use store::{DB_FILE, Store, default_dir};
