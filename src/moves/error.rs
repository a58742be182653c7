//! Why a source file was not moved or removed, and what to do about it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

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
        "{dir} already holds {name} and {tried} numbered copies of it; the source file was left in place: empty the folder or choose another"
    )]
    NoFreeName {
        dir: PathBuf,
        name: String,
        tried: u32,
    },
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

pub(super) fn replaced(path: &Path, change: Change) -> MoveError {
    MoveError::Replaced {
        path: path.to_path_buf(),
        change,
    }
}

pub(super) fn io_error(op: &'static str, path: &Path, source: io::Error) -> MoveError {
    MoveError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}
