//! What happens to a source file once its upload is confirmed and journaled: kept, moved into a
//! folder, or removed. A file is moved or removed only while its path still names the file that
//! was validated (the same [`Identity`], change time included), and a move never overwrites or
//! loses a file, even with many files of one name moved at once: an atomic no-replace rename
//! where one is possible ([`place`]), otherwise a copy written under a private temporary name,
//! fsynced, and put in place the same way before the source goes ([`copy`]).

mod copy;
mod place;

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How many numbered names (`name (1).ext`, `name (2).ext`, …) are tried before giving up.
const MAX_NUMBER: u32 = 9_999;

/// What to do with a source file after its upload is confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum After {
    #[default]
    Keep,
    /// Into this folder (created if missing), under the file's own name or a numbered one.
    MoveTo(PathBuf),
    Remove,
}

/// What was done with the source file, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    Moved { to: PathBuf },
    Removed,
}

/// Which file was validated: enough to tell whether a path still names it, unchanged. Serde, so
/// a journal can keep it until the file is moved.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_sec: i64,
    mtime_nsec: i64,
    /// The change time: a rewrite that puts the modification time back still moves it.
    ctime_sec: i64,
    ctime_nsec: i64,
}

#[cfg(unix)]
impl Identity {
    /// Best taken from the handle the file was read through (`File::metadata`): that is the file
    /// whose bytes were uploaded. A symlinked source is refused when it is moved or removed.
    pub fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime_sec: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }

    /// For after a rename, which sets the change time itself.
    fn without_ctime(self) -> Self {
        Self {
            ctime_sec: 0,
            ctime_nsec: 0,
            ..self
        }
    }

    fn is_same_object(&self, other: &Self) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// Which file was validated: enough to tell whether a path still names it, unchanged. Serde, so
/// a journal can keep it until the file is moved.
#[cfg(not(unix))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    size: u64,
    modified: Option<std::time::SystemTime>,
}

#[cfg(not(unix))]
impl Identity {
    /// Best taken from the handle the file was read through (`File::metadata`).
    pub fn of(meta: &Metadata) -> Self {
        Self {
            size: meta.len(),
            modified: meta.modified().ok(),
        }
    }

    // Without inode numbers a replacement and an edit look alike.
    fn is_same_object(&self, _other: &Self) -> bool {
        true
    }

    fn without_ctime(self) -> Self {
        self
    }
}

impl Identity {
    /// How `now` differs from the validated file, if it does.
    fn change_to(&self, now: &Self) -> Option<Change> {
        if self == now {
            None
        } else if self.is_same_object(now) {
            Some(Change::Modified)
        } else {
            Some(Change::OtherFile)
        }
    }
}

/// Why a path no longer names the file that was uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Gone,
    /// A symlink, a directory or a device now has the name.
    NotAFile,
    OtherFile,
    Modified,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Gone => "it no longer exists",
            Change::NotAFile => "it is now a symlink or not a regular file",
            Change::OtherFile => "another file has taken its name",
            Change::Modified => {
                "its size, modification time or change time changed after the upload (it was written to)"
            }
        })
    }
}

/// Why a source file was not moved or removed, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The path no longer names the uploaded file; nothing was touched.
    #[error(
        "{path} is not the file that was uploaded any more ({change}); nothing was moved or removed"
    )]
    Replaced { path: PathBuf, change: Change },
    /// A filesystem call failed before anything changed: the source is where it was.
    #[error("could not {op} {path}: {source}; the source file was left in place")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The destination is the source's own folder; nothing was touched.
    #[error(
        "{path} is already in the destination folder {dir}; choose a destination outside the folder the file is in"
    )]
    SameFolder { path: PathBuf, dir: PathBuf },
    /// Every candidate name in the destination is taken; nothing was touched.
    #[error(
        "{dir} already holds {name} and {MAX_NUMBER} numbered copies of it; the source file was left in place: empty the folder or choose another"
    )]
    NoFreeName { dir: PathBuf, name: String },
    /// The copy is complete and durable at `to`, but the source is still there too.
    #[error(
        "{path} was copied to {to} but the original could not be removed: {source}; remove it by hand so it is not picked up again"
    )]
    NotRemoved {
        path: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file swapped in between the check and the rename was moved and could not be put back.
    #[error(
        "another file took the place of {path} while it was being moved and is now at {at}; move it back by hand"
    )]
    Misplaced { path: PathBuf, at: PathBuf },
}

/// Does what `after` says with `src`, provided `src` is still the regular file `expected`
/// describes (captured when it was validated).
pub fn apply(after: &After, src: &Path, expected: &Identity) -> Result<Outcome, MoveError> {
    apply_with(after, src, expected, false)
}

/// `force_copy` takes the cross-device path on one filesystem, so tests can reach it.
fn apply_with(
    after: &After,
    src: &Path,
    expected: &Identity,
    force_copy: bool,
) -> Result<Outcome, MoveError> {
    match after {
        After::Keep => Ok(Outcome::Kept),
        After::Remove => {
            check(src, expected)?;
            fs::remove_file(src).map_err(|e| io_error("remove", src, e))?;
            sync_dir(parent_of(src));
            Ok(Outcome::Removed)
        }
        After::MoveTo(dir) => {
            move_into(src, dir, expected, force_copy).map(|to| Outcome::Moved { to })
        }
    }
}

/// `src` still names the uploaded file: a regular file, not a symlink, with the same identity.
fn check(src: &Path, expected: &Identity) -> Result<(), MoveError> {
    let meta = match fs::symlink_metadata(src) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(replaced(src, Change::Gone)),
        Err(e) => return Err(io_error("inspect", src, e)),
    };
    let change = if meta.file_type().is_file() {
        expected.change_to(&Identity::of(&meta))
    } else {
        Some(Change::NotAFile)
    };
    change.map_or(Ok(()), |c| Err(replaced(src, c)))
}

fn move_into(
    src: &Path,
    dir: &Path,
    expected: &Identity,
    force_copy: bool,
) -> Result<PathBuf, MoveError> {
    check(src, expected)?;
    // A regular file always has a base name; `..` or `/` would have failed the check.
    let name = src
        .file_name()
        .ok_or_else(|| replaced(src, Change::NotAFile))?;
    fs::create_dir_all(dir).map_err(|e| io_error("create the folder", dir, e))?;
    refuse_own_folder(src, dir)?;
    if !force_copy && let Some(to) = place::rename_into(src, dir, name)? {
        place::verify_moved(src, &to, expected)?;
        sync_dir(dir);
        sync_dir(parent_of(src));
        return Ok(to);
    }
    copy::copy_into(src, dir, name, expected)
}

/// Moving a file into its own folder would only rename it to `name (1).ext`: nobody means that.
fn refuse_own_folder(src: &Path, dir: &Path) -> Result<(), MoveError> {
    let here =
        fs::canonicalize(parent_of(src)).map_err(|e| io_error("resolve the folder of", src, e))?;
    let there = fs::canonicalize(dir).map_err(|e| io_error("resolve", dir, e))?;
    if here == there {
        return Err(MoveError::SameFolder {
            path: src.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Makes a rename or an unlink in `dir` durable. Best effort: some filesystems refuse to fsync a
/// directory, and elsewhere than unix a directory cannot be opened as a file; the change is made.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// The folder `path` is in; `.` for a bare file name.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn replaced(path: &Path, change: Change) -> MoveError {
    MoveError::Replaced {
        path: path.to_path_buf(),
        change,
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> MoveError {
    MoveError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn no_free_name(dir: &Path, name: &OsStr) -> MoveError {
    MoveError::NoFreeName {
        dir: dir.to_path_buf(),
        name: name.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests;
