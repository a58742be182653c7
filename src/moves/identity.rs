//! Which file was uploaded, and whether a path still names it, unchanged.

use std::fs::{self, Metadata};
use std::io::ErrorKind;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{Change, MoveError, io_error, replaced};

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
    pub(super) fn without_ctime(self) -> Self {
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

    pub(super) fn without_ctime(self) -> Self {
        self
    }
}

impl Identity {
    /// How `now` differs from the validated file, if it does.
    pub(super) fn change_to(&self, now: &Self) -> Option<Change> {
        if self == now {
            None
        } else if self.is_same_object(now) {
            Some(Change::Modified)
        } else {
            Some(Change::OtherFile)
        }
    }
}

/// `src` still names the uploaded file: a regular file, not a symlink, with the same identity.
pub(super) fn check(src: &Path, expected: &Identity) -> Result<(), MoveError> {
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
