//! Giving a file a name in the destination without ever replacing what has that name: an
//! atomic no-replace rename (`renameat2(RENAME_NOREPLACE)` on Linux, else a hard link and an
//! unlink), and the next number when a name is taken. Checking for a free name first and then
//! renaming is not enough: two files of one name moved at once both find the same name free.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use super::error::{Change, MoveError, io_error, replaced};
use super::identity::Identity;

/// How many numbered names (`name (1).ext`, `name (2).ext`, …) are tried before giving up.
const MAX_NUMBER: u32 = 9_999;

/// How one no-replace attempt went.
enum Placed {
    Done,
    /// The name is taken: try the next number.
    Taken,
    /// `to` is on another filesystem than `from`.
    CrossDevice,
}

/// Renames `src` to the first free numbered name in `dir`; `None` when `dir` is on another
/// filesystem.
pub(super) fn rename_into(
    src: &Path,
    dir: &Path,
    name: &OsStr,
) -> Result<Option<PathBuf>, MoveError> {
    for n in 0..=MAX_NUMBER {
        let to = dir.join(numbered(name, n));
        match rename_no_replace(src, &to).map_err(|e| io_error("move", src, e))? {
            Placed::Done => return Ok(Some(to)),
            Placed::Taken => {}
            Placed::CrossDevice => return Ok(None),
        }
    }
    Err(no_free_name(dir, name))
}

/// Gives the finished copy `temp` its final name in `dir`, never replacing a file.
pub(super) fn link_into(temp: &Path, dir: &Path, name: &OsStr) -> Result<PathBuf, MoveError> {
    for n in 0..=MAX_NUMBER {
        let to = dir.join(numbered(name, n));
        match rename_no_replace(temp, &to).map_err(|e| io_error("rename the copy into", dir, e))? {
            Placed::Done => return Ok(to),
            Placed::Taken => {}
            Placed::CrossDevice => {
                return Err(io_error(
                    "rename the copy into",
                    dir,
                    io::Error::from(ErrorKind::CrossesDevices),
                ));
            }
        }
    }
    Err(no_free_name(dir, name))
}

/// `from` → `to`, only if `to` names nothing (not even a dangling symlink), atomically.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<Placed> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match renameat2_no_replace(from, to) {
        Ok(()) => return Ok(Placed::Done),
        Err(e) => match e.raw_os_error() {
            Some(libc::EEXIST) => return Ok(Placed::Taken),
            Some(libc::EXDEV) => return Ok(Placed::CrossDevice),
            // An old kernel, or a filesystem without the flag: link and unlink instead.
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {}
            _ => return Err(e),
        },
    }
    link_then_unlink(from, to)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn renameat2_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(ErrorKind::InvalidInput))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths that live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The portable no-replace rename: a hard link fails when the name is taken. Where hard links
/// are not supported either (FAT, some network shares), a rename onto a name just seen free:
/// the one case left where a name taken at the same moment could be replaced.
fn link_then_unlink(from: &Path, to: &Path) -> io::Result<Placed> {
    match fs::hard_link(from, to) {
        Ok(()) => {
            if let Err(e) = fs::remove_file(from) {
                let _ = fs::remove_file(to);
                return Err(e);
            }
            Ok(Placed::Done)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Placed::Taken),
        Err(e) if e.kind() == ErrorKind::CrossesDevices => Ok(Placed::CrossDevice),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Unsupported | ErrorKind::PermissionDenied
            ) =>
        {
            match fs::symlink_metadata(to) {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
                Ok(_) => return Ok(Placed::Taken),
            }
            match fs::rename(from, to) {
                Ok(()) => Ok(Placed::Done),
                Err(e) if e.kind() == ErrorKind::CrossesDevices => Ok(Placed::CrossDevice),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// `report.pdf` → `report (n).pdf`; `README` → `README (n)`; `n == 0` is the name itself.
pub(super) fn numbered(name: &OsStr, n: u32) -> OsString {
    if n == 0 {
        return name.to_owned();
    }
    let path = Path::new(name);
    let mut out = path.file_stem().unwrap_or(name).to_owned();
    out.push(format!(" ({n})"));
    if let Some(ext) = path.extension() {
        out.push(".");
        out.push(ext);
    }
    out
}

/// The check and the rename are two steps: if another file took the source's name in between,
/// the rename moved that one. Put it back (a hard link never replaces anything) and report the
/// replacement. A rename changes the change time, so only the rest of the identity is compared.
pub(super) fn verify_moved(src: &Path, to: &Path, expected: &Identity) -> Result<(), MoveError> {
    let Ok(meta) = fs::symlink_metadata(to) else {
        return Ok(());
    };
    let change = if meta.file_type().is_file() {
        expected
            .without_ctime()
            .change_to(&Identity::of(&meta).without_ctime())
    } else {
        Some(Change::NotAFile)
    };
    let Some(change) = change else {
        return Ok(());
    };
    match fs::hard_link(to, src).and_then(|()| fs::remove_file(to)) {
        Ok(()) => Err(replaced(src, change)),
        Err(_) => Err(MoveError::Misplaced {
            path: src.to_path_buf(),
            at: to.to_path_buf(),
        }),
    }
}

/// Makes a rename or an unlink in `dir` durable. Best effort: some filesystems refuse to fsync a
/// directory, and elsewhere than unix a directory cannot be opened as a file; the change is made.
pub(super) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// The folder `path` is in; `.` for a bare file name.
pub(super) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

pub(super) fn no_free_name(dir: &Path, name: &OsStr) -> MoveError {
    MoveError::NoFreeName {
        dir: dir.to_path_buf(),
        name: name.to_string_lossy().into_owned(),
        tried: MAX_NUMBER,
    }
}
