//! What happens to a source file once its upload is confirmed and journaled: kept, moved into a
//! folder, or removed. A file is moved or removed only while its path still names the file that
//! was validated (the same [`Identity`], change time included), and a move never overwrites or
//! loses a file, even with many files of one name moved at once: an atomic no-replace rename
//! where one is possible ([`place`]), otherwise a copy written under a private temporary name,
//! fsynced, and put in place the same way before the source goes ([`copy`]).

mod copy;
mod error;
mod identity;
mod place;

pub use error::{Change, MoveError};
pub use identity::Identity;

use error::{io_error, replaced};
use identity::check;
use place::{parent_of, sync_dir};

use std::fs;
use std::path::{Path, PathBuf};

/// What to do with a source file after its upload is confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum After {
    #[default]
    Keep,
    /// Into this folder (created if missing), under the file's own name or a numbered one.
    /// Per file, [`After::below`] adds the folders it was found in.
    MoveTo(PathBuf),
    Remove,
}

impl After {
    /// The same, for a file `sub` folders below the folder a walk found it in: a move keeps that
    /// tree (`in/a/x.pdf` found below `in` goes to `DIR/a/x.pdf`), as `rclone move` does.
    pub fn below(&self, sub: &Path) -> After {
        match self {
            After::MoveTo(dir) => After::MoveTo(dir.join(sub)),
            other => other.clone(),
        }
    }
}

/// What was done with the source file, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    Moved { to: PathBuf },
    Removed,
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

#[cfg(test)]
mod tests;
