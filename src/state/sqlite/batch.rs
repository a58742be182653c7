//! Group commit. The journal's writes from every file in flight go through one connection, and
//! those that arrive while a transaction is being written are committed together in the next
//! one, each inside its own savepoint. A call still returns only once its own write is
//! committed, so "journaled before the step" holds; a batch costs one lock, one WAL append and
//! one commit instead of one of each per call.

use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, TransactionBehavior};

/// Hands a job's result to its caller: `None` once the batch is committed (or the job failed
/// and its own error stands), `Some` when the batch's commit failed.
pub(super) type Reply = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

/// One call's work: run on the batch's connection (or told why the batch could not begin);
/// says whether it succeeded (else its savepoint is rolled back) and how to reply.
pub(super) type Job =
    Box<dyn FnOnce(Result<&Connection, &rusqlite::Error>) -> (bool, Reply) + Send>;

#[derive(Default)]
pub(super) struct Batches {
    /// Jobs waiting, and whether a writer is draining them.
    queue: Mutex<(Vec<Job>, bool)>,
}

/// A lock whose holder panicked is still usable: every write is its own transaction.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Batches {
    /// Queues `job`; true when no writer is running, so the caller must start one ([`drain`]).
    ///
    /// [`drain`]: Batches::drain
    pub(super) fn push(&self, job: Job) -> bool {
        let mut q = lock(&self.queue);
        q.0.push(job);
        !std::mem::replace(&mut q.1, true)
    }

    /// The writer (on a blocking thread): commits what is queued, batch after batch, until
    /// nothing is left.
    pub(super) fn drain(&self, conn: &Mutex<Connection>) {
        // A job that panics must not leave the queue believing a writer still runs.
        struct Stop<'a>(&'a Batches);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                lock(&self.0.queue).1 = false;
            }
        }
        let _stop = Stop(self);
        loop {
            let jobs = {
                let mut q = lock(&self.queue);
                if q.0.is_empty() {
                    q.1 = false;
                    return;
                }
                std::mem::take(&mut q.0)
            };
            write(&mut lock(conn), jobs);
        }
    }
}

/// One transaction for `jobs`, a savepoint each; then every caller gets its answer.
fn write(conn: &mut Connection, jobs: Vec<Job>) {
    // IMMEDIATE: the batch writes, and another run's writer must not slip in between its read
    // and its write (a claim reads the newest row, then decides).
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            for job in jobs {
                job(Err(&e)).1(None);
            }
            return;
        }
    };
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        let ran = match tx.savepoint() {
            Ok(sp) => {
                let (ok, reply) = job(Ok(&sp));
                let released = if ok { sp.commit() } else { sp.finish() };
                (released.err(), reply)
            }
            Err(e) => (None, job(Err(&e)).1),
        };
        replies.push(ran);
    }
    let committed = tx.commit().err();
    for (failed, reply) in replies {
        reply(failed.as_ref().or(committed.as_ref()));
    }
}

/// A copy of `e` for each caller of a batch that failed as a whole.
pub(super) fn copy(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
