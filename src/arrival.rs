//! Is a file still arriving? The one rule a run and a watch share:
//!
//! - some process holds it open for writing (Linux: a read lease, `fcntl(F_SETLEASE, F_RDLCK)`,
//!   is refused with `EAGAIN` while any process has the file open for writing: one open and two
//!   `fcntl` calls per file. Where a lease cannot be taken — a file of another user without
//!   `CAP_LEASE`, a file system without leases — the open descriptors under `/proc` are looked
//!   at instead. `/proc` also names the writer. Its scan is one snapshot of every descriptor
//!   open for writing, shared by the files checked within a second, so a batch does not pay a
//!   scan per file.);
//! - its size or times change while it is read ([`changed`], compared around validation's read);
//! - it was modified less than `min_age` ago (for writers this host cannot see: NFS, SMB).
//!
//! A writer on another host is invisible to the first two; only `min_age` (or the writer's own
//! write-then-rename) covers it.

use std::fmt;
use std::fs::Metadata;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A process holding a file open for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub pid: u32,
    /// Its name (`/proc/PID/comm`), when it could be read.
    pub program: Option<String>,
}

impl fmt::Display for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.program {
            Some(p) => write!(f, "{p} (pid {})", self.pid),
            None => write!(f, "pid {}", self.pid),
        }
    }
}

/// Why a file is taken to be still arriving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// A process has it open for writing (named when `/proc` says which).
    OpenForWriting(Option<Writer>),
    /// Its size or times changed while it was read.
    ChangedWhileRead,
    /// Modified `age` ago, less than `--min-age`.
    TooYoung { age: Duration, min_age: Duration },
}

impl Why {
    /// The record's `deferReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Why::OpenForWriting(_) => "open-for-writing",
            Why::ChangedWhileRead => "changed-while-read",
            Why::TooYoung { .. } => "too-young",
        }
    }

    pub fn writer(&self) -> Option<&Writer> {
        match self {
            Why::OpenForWriting(w) => w.as_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::OpenForWriting(Some(w)) => write!(f, "{w} has it open for writing"),
            Why::OpenForWriting(None) => f.write_str("a process has it open for writing"),
            Why::ChangedWhileRead => f.write_str("its size or times changed while it was read"),
            Why::TooYoung { age, min_age } => write!(
                f,
                "it was modified {:.1} s ago, less than --min-age {:.1} s",
                age.as_secs_f64(),
                min_age.as_secs_f64()
            ),
        }
    }
}

/// Whether the file at `path` (whose metadata is `meta`) is complete, as far as this host can
/// tell. Blocking (an open and a few system calls).
pub fn check(path: &Path, meta: &Metadata, min_age: Duration) -> Result<(), Why> {
    if let Some(age) = younger_than(meta, min_age) {
        return Err(Why::TooYoung { age, min_age });
    }
    match open_writer(path, meta) {
        Some(writer) => Err(Why::OpenForWriting(writer)),
        None => Ok(()),
    }
}

/// The time since its last modification, when that is under `min_age` (a time in the future,
/// from a skewed clock, counts as now).
fn younger_than(meta: &Metadata, min_age: Duration) -> Option<Duration> {
    if min_age.is_zero() {
        return None;
    }
    let modified = meta.modified().ok()?;
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    (age < min_age).then_some(age)
}

/// Whether the file changed between two looks at it: size, modification or change time.
pub fn changed(before: &Metadata, after: &Metadata) -> bool {
    if before.len() != after.len() || before.modified().ok() != after.modified().ok() {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (before.ctime(), before.ctime_nsec()) != (after.ctime(), after.ctime_nsec())
    }
    #[cfg(not(unix))]
    false
}

/// `Some(writer)` when a process has the file open for writing (`Some(None)`: one does, but
/// which one could not be seen).
#[cfg(target_os = "linux")]
fn open_writer(path: &Path, meta: &Metadata) -> Option<Option<Writer>> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return None;
    }
    let id = (meta.dev(), meta.ino());
    match linux::lease(path) {
        linux::Lease::Free => None,
        linux::Lease::Writer => Some(linux::writer_in_snapshot(id, true)),
        linux::Lease::Unavailable => linux::writer_in_snapshot(id, false).map(Some),
    }
}

/// Without `/proc` and leases, only the size/time rule and `--min-age` apply.
#[cfg(not(target_os = "linux"))]
fn open_writer(_path: &Path, _meta: &Metadata) -> Option<Option<Writer>> {
    None
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;
    use std::sync::{Mutex, Once};
    use std::time::{Duration, Instant};

    use super::Writer;

    pub(super) enum Lease {
        /// A read lease was granted (and given back): nobody has the file open for writing.
        Free,
        /// Refused with `EAGAIN`: somebody has it open for writing.
        Writer,
        /// Not ours to take (another user's file, no `CAP_LEASE`), or the file system has none.
        Unavailable,
    }

    /// Takes a read lease on `path` and gives it back at once.
    pub(super) fn lease(path: &Path) -> Lease {
        // A lease holder is sent SIGIO when another process opens the file for writing, and
        // SIGIO's default action ends the process. The lease lasts microseconds, but a writer
        // opening within them must not kill the run; nothing else here uses SIGIO.
        static IGNORE_SIGIO: Once = Once::new();
        IGNORE_SIGIO.call_once(|| unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
        });
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
        else {
            return Lease::Unavailable;
        };
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns, with integer arguments.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
            return Lease::Free;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => Lease::Writer,
            _ => Lease::Unavailable,
        }
    }

    type FileId = (u64, u64);

    /// How long one `/proc` snapshot answers for the files checked after it.
    const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

    struct Snapshot {
        taken: Instant,
        writers: HashMap<FileId, u32>,
    }

    /// The writer of `id` in a snapshot of every open-for-writing descriptor, taken at most
    /// [`SNAPSHOT_TTL`] ago: a batch costs one scan a second, not one per file. `known` (the
    /// lease saw a writer) and missing from the snapshot: it opened the file since; scan again.
    pub(super) fn writer_in_snapshot(id: FileId, known: bool) -> Option<Writer> {
        static SNAPSHOT: Mutex<Option<Snapshot>> = Mutex::new(None);
        let mut guard = SNAPSHOT.lock().unwrap_or_else(|p| p.into_inner());
        let stale = guard.as_ref().is_none_or(|s| {
            s.taken.elapsed() > SNAPSHOT_TTL || (known && !s.writers.contains_key(&id))
        });
        if stale {
            let mut writers = HashMap::new();
            scan(|pid, file| {
                writers.entry(file).or_insert(pid);
                true
            });
            *guard = Some(Snapshot {
                taken: Instant::now(),
                writers,
            });
        }
        let pid = *guard.as_ref()?.writers.get(&id)?;
        Some(named(pid))
    }

    fn named(pid: u32) -> Writer {
        let program = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|c| c.trim_end().to_string());
        Writer { pid, program }
    }

    /// Calls `each(pid, file)` for every descriptor open for writing that `/proc` lets us see,
    /// until it returns false. The mode of a `/proc/PID/fd/N` link is the descriptor's access
    /// mode (owner write bit: `O_WRONLY` or `O_RDWR`), so one `lstat` per descriptor tells, and
    /// only writable ones are followed to the file.
    fn scan(mut each: impl FnMut(u32, FileId) -> bool) {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue; // gone, or another user's
            };
            for fd in fds.flatten() {
                let writable = fd
                    .metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o200 != 0);
                if !writable {
                    continue;
                }
                let Ok(target) = std::fs::metadata(fd.path()) else {
                    continue;
                };
                if target.is_file() && !each(pid, (target.dev(), target.ino())) {
                    return;
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_proc_scan_finds_a_writer_and_ignores_readers() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.pdf");
            std::fs::write(&path, b"half").unwrap();
            let meta = std::fs::metadata(&path).unwrap();
            let id = (meta.dev(), meta.ino());
            let _reader = std::fs::File::open(&path).unwrap();
            assert_eq!(
                writer_in_snapshot(id, false),
                None,
                "a reader is not a writer"
            );
            // Our own file: the lease is ours to take, unless the file system has none.
            let leases = !matches!(lease(&path), Lease::Unavailable);
            if !leases {
                eprintln!("no leases on {}: only /proc is checked", path.display());
            }
            let _writer = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            // Not in the snapshot taken above: a writer the lease saw makes it look again.
            let found = writer_in_snapshot(id, true).expect("the test process is the writer");
            assert_eq!(found.pid, std::process::id());
            if leases {
                assert!(matches!(lease(&path), Lease::Writer), "refused to a writer");
            }
            let snapshot = writer_in_snapshot(id, false).expect("the fresh snapshot has it");
            assert_eq!(snapshot.pid, std::process::id());
        }
    }
}
