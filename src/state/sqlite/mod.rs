//! The embedded store: one SQLite database (`state.db`, WAL) in the state directory, its
//! connection, and who this process is to its leases. Every call is short; the journal's run
//! off the async threads, in group commits (see [`batch`]). Concurrent runs (overlapping cron
//! jobs) share it safely: SQLite serialises writers, and a file is claimed in a transaction
//! before anything is sent.

mod batch;
mod journal;
mod outbox;
mod schema;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use self::batch::{Batches, Job};
use super::error::{Result, StateError};
use super::holder;

/// The database file inside the state directory.
pub const DB_FILE: &str = "state.db";
/// The webhook outbox of older versions, imported into the database when the store opens.
pub(super) const JSONL: &str = "webhook-outbox.jsonl";
/// Held while a process opens the store.
const OPEN_LOCK: &str = "open.lock";

/// An advisory lock on `dir/name` (created owner-only, never through a link): waits for it, or
/// with `wait` false gives `None` when another process holds it.
pub(super) fn lock_file(dir: &Path, name: &str, wait: bool) -> Result<Option<std::fs::File>> {
    let path = dir.join(name);
    // The directory is what the user chose and can fix; the file is named in the reason.
    let bad = |e: std::io::Error| StateError::Directory {
        path: dir.to_path_buf(),
        why: format!("its lock file {name} cannot be opened or locked: {e}"),
    };
    let mut o = std::fs::OpenOptions::new();
    o.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let f = o.open(&path).map_err(bad)?;
    if wait {
        f.lock().map_err(bad)?;
        return Ok(Some(f));
    }
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(bad(e)),
    }
}

/// The open store; cheap to clone, one connection per process behind a lock.
#[derive(Clone)]
pub(super) struct Sqlite {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    conn: Mutex<Connection>,
    /// The journal's writes waiting for the next group commit.
    batches: Batches,
    pub(super) path: PathBuf,
    /// Set once the run is abandoned: a locked database is waited for only a moment.
    hurry: Arc<AtomicBool>,
    /// Who holds the leases this process takes (`host`: host, boot, PID namespace and start
    /// time, see [`holder`]).
    pub(super) pid: u32,
    pub(super) host: String,
}

impl Sqlite {
    /// Opens (creating it, owner-only) the store in `dir` and brings its schema up to date.
    pub(super) fn open(dir: &Path) -> Result<Sqlite> {
        prepare_dir(dir)?;
        // Runs starting together take turns here: switching a new database to WAL, migrating
        // and importing the old outbox each need the database to themselves, and SQLite's busy
        // timeout does not cover the journal-mode switch.
        let _opening = lock_file(dir, OPEN_LOCK, true)?;
        let path = dir.join(DB_FILE);
        let sql = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = open_private(&path)?;
        // Concurrent runs wait for each other's short transactions instead of failing.
        let hurry = Arc::new(AtomicBool::new(false));
        wait::install(&mut conn, &path, hurry.clone()).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        // NORMAL in WAL mode: a killed process loses nothing; only a power cut can lose the
        // last commits (the database stays consistent), and commits cost no fsync each.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        schema::migrate(&conn, &path)?;
        let store = Sqlite {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                batches: Batches::default(),
                path,
                hurry,
                pid: std::process::id(),
                host: holder::identity(&holder::hostname(), std::process::id()),
            }),
        };
        store.import_jsonl_outbox(dir)?;
        Ok(store)
    }

    /// Whether `dir` holds a store (or an older version's outbox to import): what reading
    /// commands check first, since opening creates one.
    pub(super) fn exists_in(dir: &Path) -> bool {
        dir.join(DB_FILE).exists() || dir.join(JSONL).exists()
    }

    pub(super) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The run was abandoned (a second interrupt): from now on a call waits for a database
    /// another process holds locked only a moment, so the process exits promptly.
    pub(super) fn hurry(&self) {
        self.inner.hurry.store(true, Ordering::Relaxed);
    }

    /// Runs `f` on the connection; for the blocking side of the async facade.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = batch::lock(&self.inner.conn);
        f(&mut conn).map_err(|e| self.inner.sql(e))
    }

    /// Runs a journal call in the next group commit (see [`batch`]), off the async threads;
    /// returns once it is committed.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(f, move |result| {
            let _ = tx.send(result);
        });
        rx.await
            .expect("the state store's writer answers every call")
    }

    /// Queues a journal write without waiting for it, for a step whose loss the next run
    /// repairs (it asks the platform again). Calls queued later commit after it, in the same
    /// transaction or a later one; [`Sqlite::written`] waits for it.
    pub(super) fn run_soon(
        &self,
        f: impl FnOnce(&Connection, &Inner) -> Result<()> + Send + 'static,
    ) {
        self.enqueue(f, |result| {
            if let Err(e) = result {
                tracing::warn!("a journal write failed: {e}");
            }
        });
    }

    /// Waits until every journal write queued so far is committed.
    pub(super) async fn written(&self) -> Result<()> {
        self.run(|_, _| Ok(())).await
    }

    /// Queues `f` for the writer (started if none runs); `answer` gets its result once the
    /// batch it went into is committed.
    fn enqueue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Inner) -> Result<T> + Send + 'static,
        answer: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        let inner = self.inner.clone();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(c) => f(c, &inner),
                Err(e) => Err(inner.sql(batch::copy(e))),
            };
            let ok = result.is_ok();
            let reply = move |failed: Option<&rusqlite::Error>| {
                answer(match failed {
                    Some(e) if ok => Err(inner.sql(batch::copy(e))),
                    _ => result,
                });
            };
            (ok, Box::new(reply))
        });
        if self.inner.batches.push(job) {
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.inner.batches.drain(&store.inner.conn));
        }
    }
}

impl Inner {
    pub(super) fn sql(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// Creates the directory owner-only; refuses one that others could write into or that is a link.
fn prepare_dir(dir: &Path) -> Result<()> {
    let bad = |why: String| StateError::Directory {
        path: dir.to_path_buf(),
        why,
    };
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| bad(e.to_string()))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| bad(e.to_string()))?;
    if !meta.is_dir() {
        return Err(bad(
            "it is not a directory (a symbolic link is not accepted)".into(),
        ));
    }
    #[cfg(unix)]
    owned_and_private(&meta, dir, "700").map_err(bad)?;
    Ok(())
}

/// Opens the database with owner-only permissions (SQLite creates its `-wal` and `-shm` files
/// with the database file's mode). Never through a symbolic link (one planted in our place, or
/// dangling, would put the journal outside the private directory), and only a file of ours that
/// others cannot write.
fn open_private(path: &Path) -> Result<Connection> {
    use rusqlite::OpenFlags;
    #[cfg(unix)]
    if std::fs::symlink_metadata(path).is_err() {
        use std::os::unix::fs::OpenOptionsExt;
        // Exclusive creation: never through a link planted in our place.
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path);
        if let Err(e) = created
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(StateError::Database {
                path: path.to_path_buf(),
                why: format!("it cannot be created: {e}"),
            });
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        check_private_file(Path::new(&file))?;
    }
    let flags = OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    Connection::open_with_flags(path, flags).map_err(|source| StateError::Sqlite {
        path: path.to_path_buf(),
        source,
    })
}

/// A file of the store, when it exists, must be a regular file (not a link), ours, and not
/// writable by others.
fn check_private_file(path: &Path) -> Result<()> {
    let bad = |why: String| StateError::Database {
        path: path.to_path_buf(),
        why,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bad(e.to_string())),
    };
    if !meta.file_type().is_file() {
        return Err(bad(
            "it is not a regular file (a symbolic link is not followed); remove it".into(),
        ));
    }
    #[cfg(unix)]
    owned_and_private(&meta, path, "600").map_err(bad)?;
    Ok(())
}

/// A file or directory of the store is the user's own, and others cannot write it (`chmod`:
/// the mode to suggest).
#[cfg(unix)]
fn owned_and_private(
    meta: &std::fs::Metadata,
    path: &Path,
    chmod: &str,
) -> std::result::Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "it belongs to user {} (not you); use a state directory of your own with --state-dir",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "others can write it (mode {mode:o}); run `chmod {chmod} {}`",
            path.display()
        ));
    }
    Ok(())
}

/// Now, in milliseconds since the epoch (leases) and as RFC 3339 (what people read).
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(super) fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_directory_others_can_write_or_a_link_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = Sqlite::open(&tmp.path().join("ok")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tmp.path().join("ok")), 0o700);
        assert_eq!(mode(open.path()), 0o600);

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Sqlite::open(&shared).err().expect("refused");
        assert!(err.to_string().contains("chmod 700"), "{err}");

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("ok"), &link).unwrap();
        let err = Sqlite::open(&link).err().expect("refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Sqlite::open(tmp.path()).unwrap();
        s.with(|c| c.pragma_update(None, "user_version", 99))
            .unwrap();
        drop(s);
        let err = Sqlite::open(tmp.path()).err().expect("refused");
        assert!(matches!(err, StateError::TooNew { found: 99, .. }), "{err}");
    }
}
