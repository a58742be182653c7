//! The cross-filesystem move: copy into the destination under a temporary name that only the
//! owner can read, fsync, give it its final name without replacing anything, and only then
//! remove the source. A temporary file a killed run left behind is cleared by the next move
//! into that folder.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::error::{MoveError, io_error, replaced};
use super::identity::{Identity, check};
use super::place::{self, parent_of, sync_dir};

/// Every temporary copy is named `.gcupload-<32 hex digits>.part`.
const TEMP_PREFIX: &str = ".gcupload-";
const TEMP_SUFFIX: &str = ".part";
/// A temporary copy untouched this long belongs to a run that died: a live copy's change time
/// moves with every write.
pub(super) const STALE_AFTER: Duration = Duration::from_secs(3600);

pub(super) fn copy_into(
    src: &Path,
    dir: &Path,
    name: &OsStr,
    expected: &Identity,
) -> Result<PathBuf, MoveError> {
    clear_stale_once(dir);
    // Never blocking: something swapped in since the check (a FIFO) must not hold the run.
    let mut from = crate::validate::open_nonblocking(src).map_err(|e| io_error("open", src, e))?;
    // The open handle, not the path, is what is copied: check that it is the uploaded file.
    check_handle(&from, src, expected)?;
    let temp = write_temp(&mut from, dir)?;
    // Checked again after the copy: an edit during it would leave a copy of neither version.
    let placed =
        check_handle(&from, src, expected).and_then(|()| place::link_into(&temp, dir, name));
    // Placed, the temporary name is gone; after a failure it names a partial copy.
    let _ = fs::remove_file(&temp);
    let to = placed?;
    sync_dir(dir);
    remove_after_copy(src, to, expected)
}

fn check_handle(file: &File, src: &Path, expected: &Identity) -> Result<(), MoveError> {
    let meta = file.metadata().map_err(|e| io_error("inspect", src, e))?;
    expected
        .change_to(&Identity::of(&meta))
        .map_or(Ok(()), |c| Err(replaced(src, c)))
}

/// Copies `from` into a new file in `dir` that nothing else can have opened, and fsyncs it. It
/// is created readable by its owner only, and gets the source's permissions once complete.
fn write_temp(from: &mut File, dir: &Path) -> Result<PathBuf, MoveError> {
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}{TEMP_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(&temp)
        .map_err(|e| io_error("create a temporary file in", dir, e))?;
    let written = io::copy(from, &mut out).and_then(|_| {
        copy_attributes(from, &out);
        out.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_error("write a copy into", dir, e));
    }
    Ok(temp)
}

#[cfg(test)]
pub(super) fn write_temp_for_test(from: &mut File, dir: &Path) {
    write_temp(from, dir).unwrap();
}

/// A move keeps the modification time (and on unix the permissions), as a rename would. Best
/// effort: some filesystems (FAT, network shares) refuse these, and the bytes are what matters.
fn copy_attributes(from: &File, to: &File) {
    let Ok(meta) = from.metadata() else { return };
    #[cfg(unix)]
    let _ = to.set_permissions(meta.permissions());
    if let Ok(modified) = meta.modified() {
        let _ = to.set_modified(modified);
    }
}

/// The copy is durable; the source goes only if it is still the uploaded file.
fn remove_after_copy(src: &Path, to: PathBuf, expected: &Identity) -> Result<PathBuf, MoveError> {
    match check(src, expected) {
        Ok(()) => {}
        // The copy holds the uploaded bytes; what has the name now is not ours to remove.
        Err(MoveError::Replaced { change, .. }) => {
            tracing::warn!(path = %src.display(), to = %to.display(), %change,
                "copied the uploaded file and left what now has its name in place");
            return Ok(to);
        }
        Err(MoveError::Io { source, .. }) => return Err(not_removed(src, to, source)),
        Err(e) => return Err(e),
    }
    if let Err(e) = fs::remove_file(src) {
        return Err(not_removed(src, to, e));
    }
    sync_dir(parent_of(src));
    Ok(to)
}

fn not_removed(src: &Path, to: PathBuf, source: io::Error) -> MoveError {
    MoveError::NotRemoved {
        path: src.to_path_buf(),
        to,
        source,
    }
}

/// Clears stale temporary copies from `dir`, once per folder per process (a folder is listed
/// once, not once per file).
fn clear_stale_once(dir: &Path) {
    static DONE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let first = DONE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(dir.to_path_buf());
    if first {
        clear_stale(dir, STALE_AFTER);
    }
}

/// Removes our temporary copies in `dir` not changed for `age`: regular files named as
/// [`write_temp`] names them, and nothing else. Best effort: what cannot be removed stays.
pub(super) fn clear_stale(dir: &Path, age: Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_temp_name(&name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.file_type().is_file() && unchanged_for(&meta) >= age {
            tracing::info!(path = %entry.path().display(), "removing a partial copy an interrupted move left behind");
            removed += usize::from(fs::remove_file(entry.path()).is_ok());
        }
    }
    removed
}

fn is_temp_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|r| r.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// How long since the file last changed (its change time on unix: a write, a chmod or setting
/// the modification time all move it; nothing can set it back).
fn unchanged_for(meta: &fs::Metadata) -> Duration {
    #[cfg(unix)]
    let changed = {
        use std::os::unix::fs::MetadataExt;
        std::time::UNIX_EPOCH
            + Duration::new(
                u64::try_from(meta.ctime()).unwrap_or(0),
                u32::try_from(meta.ctime_nsec()).unwrap_or(0),
            )
    };
    #[cfg(not(unix))]
    let changed = meta.modified().unwrap_or(std::time::SystemTime::now());
    changed.elapsed().unwrap_or(Duration::ZERO)
}
