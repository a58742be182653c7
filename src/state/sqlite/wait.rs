//! Waiting for a database another process holds locked (an overlapping cron run, `sqlite3` left
//! open in a transaction): a call waits up to 30 s, says on stderr after a second what it waits
//! for, and once the run is abandoned (a second interrupt) waits at most a moment, so exiting
//! never hangs on another process's lock.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How long a call waits for the lock.
const PATIENCE: Duration = Duration::from_secs(30);
/// After the run was abandoned: journal writes are best effort.
const HURRIED: Duration = Duration::from_millis(500);
/// When a wait is worth telling a person about.
const SAY_AFTER: Duration = Duration::from_secs(1);
/// How often the lock is tried again.
const STEP: Duration = Duration::from_millis(20);

/// Installs the busy handler on `conn`; `hurry` set means the run was abandoned.
pub(super) fn install(
    conn: &mut Connection,
    path: &Path,
    hurry: Arc<AtomicBool>,
) -> rusqlite::Result<()> {
    let shown = crate::redact::for_terminal(&path.display().to_string()).into_owned();
    let mut started = Instant::now();
    let mut said = false;
    conn.busy_handler(Some(move |attempt: i32| {
        if attempt == 0 {
            started = Instant::now();
            said = false;
        }
        let waited = started.elapsed();
        let limit = if hurry.load(Ordering::Relaxed) {
            HURRIED
        } else {
            PATIENCE
        };
        if waited >= limit {
            return false;
        }
        if !said && waited >= SAY_AFTER {
            said = true;
            tracing::warn!(
                "waiting for the state database {shown}: it is locked by another process (giving up after {} s)",
                PATIENCE.as_secs()
            );
        }
        std::thread::sleep(STEP.min(limit - waited));
        true
    }))
}
