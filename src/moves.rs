//! What happens to a source file once its upload is confirmed and journaled: kept, moved into a
//! folder, or removed. A file is moved or removed only while its path still names the file that
//! was validated (the same [`Identity`]), and a move never overwrites or loses a file: a rename
//! where one is possible, otherwise a copy written under a temporary name, fsynced, and linked
//! into place before the source goes.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
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
            Change::Modified => "its size or modification time changed after the upload",
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
    if !force_copy && let Some(to) = rename_into(src, dir, name)? {
        verify_moved(src, &to, expected)?;
        sync_dir(dir);
        sync_dir(parent_of(src));
        return Ok(to);
    }
    copy_into(src, dir, name, expected)
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

/// Renames `src` to a free name in `dir`; `None` when `dir` is on another filesystem.
fn rename_into(src: &Path, dir: &Path, name: &OsStr) -> Result<Option<PathBuf>, MoveError> {
    let to = free_name(dir, name)?;
    match fs::rename(src, &to) {
        Ok(()) => Ok(Some(to)),
        Err(e) if e.kind() == ErrorKind::CrossesDevices => Ok(None),
        Err(e) => Err(io_error("move", src, e)),
    }
}

/// The first of `name`, `name (1)`, … that names nothing in `dir` (not even a dangling symlink).
fn free_name(dir: &Path, name: &OsStr) -> Result<PathBuf, MoveError> {
    for n in 0..=MAX_NUMBER {
        let to = dir.join(numbered(name, n));
        match fs::symlink_metadata(&to) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(to),
            Err(e) => return Err(io_error("inspect", &to, e)),
            Ok(_) => {}
        }
    }
    Err(no_free_name(dir, name))
}

/// `report.pdf` → `report (n).pdf`; `README` → `README (n)`; `n == 0` is the name itself.
fn numbered(name: &OsStr, n: u32) -> OsString {
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

/// The check and the rename are two steps: if another file took the name in between, the rename
/// moved that one. Put it back (a hard link never replaces anything) and report the replacement.
fn verify_moved(src: &Path, to: &Path, expected: &Identity) -> Result<(), MoveError> {
    let Ok(meta) = fs::symlink_metadata(to) else {
        return Ok(());
    };
    let change = if meta.file_type().is_file() {
        expected.change_to(&Identity::of(&meta))
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

/// The cross-device move: copy into `dir` under a temporary name, fsync, link to a free final
/// name, fsync the folder, and only then remove the source.
fn copy_into(
    src: &Path,
    dir: &Path,
    name: &OsStr,
    expected: &Identity,
) -> Result<PathBuf, MoveError> {
    // Never blocking: something swapped in since the check (a FIFO) must not hold the run.
    let mut from = crate::validate::open_nonblocking(src).map_err(|e| io_error("open", src, e))?;
    // The open handle, not the path, is what is copied: check that it is the uploaded file.
    check_handle(&from, src, expected)?;
    let temp = write_temp(&mut from, dir)?;
    // Checked again after the copy: an edit during it would leave a copy of neither version.
    let placed = check_handle(&from, src, expected).and_then(|()| link_into(&temp, dir, name));
    // After a link the temporary name is a second name for the copy; after a failure, a partial one.
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

/// Copies `from` into a new file in `dir` that nothing else can have opened, and fsyncs it.
fn write_temp(from: &mut File, dir: &Path) -> Result<PathBuf, MoveError> {
    let temp = dir.join(format!(".gcupload-{}.part", uuid::Uuid::new_v4().simple()));
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
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

/// Gives the copy its final name without ever replacing a file: a hard link fails when the name
/// is taken, and the next number is tried.
fn link_into(temp: &Path, dir: &Path, name: &OsStr) -> Result<PathBuf, MoveError> {
    for n in 0..=MAX_NUMBER {
        let to = dir.join(numbered(name, n));
        match fs::hard_link(temp, &to) {
            Ok(()) => return Ok(to),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            // No hard links here (FAT, some network shares): rename onto a name checked free.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Unsupported | ErrorKind::PermissionDenied
                ) =>
            {
                let to = free_name(dir, name)?;
                fs::rename(temp, &to).map_err(|e| io_error("rename the copy into", dir, e))?;
                return Ok(to);
            }
            Err(e) => return Err(io_error("link the copy into", dir, e)),
        }
    }
    Err(no_free_name(dir, name))
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

fn not_removed(src: &Path, to: PathBuf, source: io::Error) -> MoveError {
    MoveError::NotRemoved {
        path: src.to_path_buf(),
        to,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) -> Identity {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
        identity(path)
    }

    fn identity(path: &Path) -> Identity {
        Identity::of(&fs::symlink_metadata(path).unwrap())
    }

    fn move_to(dir: &Path) -> After {
        After::MoveTo(dir.to_path_buf())
    }

    /// The names in `dir`, sorted: a leftover temporary file would show here.
    fn names(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    fn change_of(result: Result<Outcome, MoveError>) -> Change {
        match result {
            Err(MoveError::Replaced { change, .. }) => change,
            other => panic!("expected Replaced, got {other:?}"),
        }
    }

    #[test]
    fn a_move_within_one_filesystem_is_a_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/sub/report.pdf");
        let id = write(&src, b"%PDF-1.7 body");
        let out = tmp.path().join("out");
        let done = apply(&move_to(&out), &src, &id).unwrap();
        let to = out.join("report.pdf");
        assert_eq!(done, Outcome::Moved { to: to.clone() });
        assert!(!src.exists());
        assert_eq!(fs::read(&to).unwrap(), b"%PDF-1.7 body");
        // Same inode, same mtime: the file itself moved, not a copy of it.
        assert_eq!(identity(&to), id);
    }

    #[test]
    fn the_cross_device_path_copies_and_then_removes_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/report.pdf");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        write(&src, &bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
        }
        let id = identity(&src);
        let modified = fs::metadata(&src).unwrap().modified().unwrap();
        let out = tmp.path().join("out");
        let done = apply_with(&move_to(&out), &src, &id, true).unwrap();
        let to = out.join("report.pdf");
        assert_eq!(done, Outcome::Moved { to: to.clone() });
        assert!(!src.exists());
        assert_eq!(fs::read(&to).unwrap(), bytes);
        assert_eq!(names(&out), ["report.pdf"], "no temporary file is left");
        #[cfg(unix)]
        assert_ne!(identity(&to), id, "a copy is a new file");
        assert_eq!(fs::metadata(&to).unwrap().modified().unwrap(), modified);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&to).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
    }

    #[test]
    fn a_taken_name_gets_the_next_number_and_every_file_survives() {
        for force_copy in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("out");
            write(&out.join("report.pdf"), b"already there");
            for (n, body) in [(1, &b"second"[..]), (2, &b"third"[..])] {
                let src = tmp.path().join("in/report.pdf");
                let id = write(&src, body);
                let done = apply_with(&move_to(&out), &src, &id, force_copy).unwrap();
                let to = out.join(format!("report ({n}).pdf"));
                assert_eq!(
                    done,
                    Outcome::Moved { to: to.clone() },
                    "copy: {force_copy}"
                );
                assert_eq!(fs::read(&to).unwrap(), body);
                assert!(!src.exists());
            }
            assert_eq!(fs::read(out.join("report.pdf")).unwrap(), b"already there");
            assert_eq!(
                names(&out),
                ["report (1).pdf", "report (2).pdf", "report.pdf"]
            );
        }
    }

    #[test]
    fn a_name_without_an_extension_collides_as_name_1() {
        for force_copy in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("out");
            write(&out.join("README"), b"old");
            let src = tmp.path().join("in/README");
            let id = write(&src, b"new");
            let done = apply_with(&move_to(&out), &src, &id, force_copy).unwrap();
            let to = out.join("README (1)");
            assert_eq!(done, Outcome::Moved { to: to.clone() });
            assert_eq!(fs::read(&to).unwrap(), b"new");
            assert_eq!(fs::read(out.join("README")).unwrap(), b"old");
        }
    }

    #[test]
    fn numbered_names_keep_the_last_extension() {
        let cases = [
            ("report.pdf", "report (3).pdf"),
            ("archive.tar.gz", "archive.tar (3).gz"),
            ("README", "README (3)"),
            (".env", ".env (3)"),
            ("trailing.", "trailing (3)."),
        ];
        for (name, want) in cases {
            assert_eq!(numbered(OsStr::new(name), 3), OsStr::new(want));
        }
        assert_eq!(numbered(OsStr::new("report.pdf"), 0), "report.pdf");
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_in_the_destination_is_not_replaced() {
        for force_copy in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("out");
            fs::create_dir_all(&out).unwrap();
            std::os::unix::fs::symlink("nowhere", out.join("report.pdf")).unwrap();
            let src = tmp.path().join("in/report.pdf");
            let id = write(&src, b"new");
            let done = apply_with(&move_to(&out), &src, &id, force_copy).unwrap();
            assert_eq!(
                done,
                Outcome::Moved {
                    to: out.join("report (1).pdf")
                }
            );
            assert!(out.join("report.pdf").is_symlink());
        }
    }

    #[test]
    fn a_replaced_source_is_left_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        for (after, force_copy) in [
            (move_to(&out), false),
            (move_to(&out), true),
            (After::Remove, false),
        ] {
            let src = tmp.path().join("in/report.pdf");
            let id = write(&src, b"uploaded");
            // Another program writes a new file and renames it over the old one.
            let other = tmp.path().join("in/.report.pdf.new");
            write(&other, b"a newer version");
            fs::rename(&other, &src).unwrap();
            let err = apply_with(&after, &src, &id, force_copy);
            let msg = err.as_ref().unwrap_err().to_string();
            assert!(msg.contains("report.pdf") && msg.contains("nothing was moved"));
            // Without inode numbers a replacement reads as a modification.
            let change = change_of(err);
            assert!(cfg!(not(unix)) || change == Change::OtherFile, "{change:?}");
            assert_eq!(fs::read(&src).unwrap(), b"a newer version");
            assert!(!out.exists(), "the destination is not even created");
        }
    }

    #[test]
    fn a_source_modified_after_the_upload_is_left_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/report.pdf");
        let id = write(&src, b"uploaded");
        fs::OpenOptions::new()
            .append(true)
            .open(&src)
            .and_then(|mut f| io::Write::write_all(&mut f, b" and more"))
            .unwrap();
        let out = tmp.path().join("out");
        for after in [move_to(&out), After::Remove] {
            let change = change_of(apply(&after, &src, &id));
            assert_eq!(change, Change::Modified);
            assert_eq!(fs::read(&src).unwrap(), b"uploaded and more");
        }
    }

    /// A symlink to the very file that was uploaded is still refused: the upload was of a regular
    /// file at that path, and moving or removing a link is not what was asked.
    #[cfg(unix)]
    #[test]
    fn a_source_that_is_now_a_symlink_is_left_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/report.pdf");
        let real = tmp.path().join("in/real.pdf");
        let id = write(&src, b"uploaded");
        fs::rename(&src, &real).unwrap();
        std::os::unix::fs::symlink(&real, &src).unwrap();
        assert_eq!(Identity::of(&fs::metadata(&src).unwrap()), id);
        let out = tmp.path().join("out");
        for (after, force_copy) in [(move_to(&out), false), (move_to(&out), true)] {
            let change = change_of(apply_with(&after, &src, &id, force_copy));
            assert_eq!(change, Change::NotAFile);
        }
        assert_eq!(
            change_of(apply(&After::Remove, &src, &id)),
            Change::NotAFile
        );
        assert!(src.is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"uploaded");
        assert!(!out.exists());
    }

    #[test]
    fn a_missing_source_is_reported_as_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/report.pdf");
        let id = write(&src, b"uploaded");
        fs::remove_file(&src).unwrap();
        let out = tmp.path().join("out");
        for after in [move_to(&out), After::Remove] {
            assert_eq!(change_of(apply(&after, &src, &id)), Change::Gone);
        }
    }

    #[test]
    fn remove_unlinks_the_source_and_keep_leaves_it() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/report.pdf");
        let id = write(&src, b"uploaded");
        assert_eq!(apply(&After::Keep, &src, &id).unwrap(), Outcome::Kept);
        assert_eq!(fs::read(&src).unwrap(), b"uploaded");
        assert_eq!(apply(&After::Remove, &src, &id).unwrap(), Outcome::Removed);
        assert!(!src.exists());
        assert_eq!(names(&tmp.path().join("in")), Vec::<String>::new());
    }

    #[test]
    fn the_destination_is_created_with_its_parents() {
        for force_copy in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("in/report.pdf");
            let id = write(&src, b"uploaded");
            let out = tmp.path().join("done/2025/06");
            let done = apply_with(&move_to(&out), &src, &id, force_copy).unwrap();
            let to = out.join("report.pdf");
            assert_eq!(done, Outcome::Moved { to: to.clone() });
            assert_eq!(fs::read(&to).unwrap(), b"uploaded");
        }
    }

    #[test]
    fn the_source_folder_is_refused_as_the_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/report.pdf");
        let id = write(&src, b"uploaded");
        let same = tmp.path().join("in/../in/.");
        let err = apply(&move_to(&same), &src, &id).unwrap_err();
        assert!(matches!(err, MoveError::SameFolder { .. }), "{err:?}");
        assert_eq!(names(&tmp.path().join("in")), ["report.pdf"]);
    }

    /// The window between the check and the rename: if the rename took another file, it goes
    /// back under the source's name, without replacing anything that is there now.
    #[test]
    fn a_file_renamed_in_the_check_window_is_put_back() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/report.pdf");
        let id = write(&src, b"uploaded");
        // The uploaded file stays alive elsewhere so its inode is not reused.
        fs::rename(&src, tmp.path().join("kept.pdf")).unwrap();
        let to = tmp.path().join("out/report.pdf");
        write(&to, b"another file, longer");
        let err = verify_moved(&src, &to, &id).unwrap_err();
        assert!(matches!(err, MoveError::Replaced { .. }), "{err:?}");
        assert_eq!(fs::read(&src).unwrap(), b"another file, longer");
        assert!(!to.exists());

        // When the source's name is taken again meanwhile, nothing is replaced: the user is told.
        fs::rename(&src, &to).unwrap();
        write(&src, b"a third file");
        let err = verify_moved(&src, &to, &id).unwrap_err();
        assert!(matches!(err, MoveError::Misplaced { .. }), "{err:?}");
        assert!(err.to_string().contains("move it back by hand"));
        assert_eq!(fs::read(&src).unwrap(), b"a third file");
        assert_eq!(fs::read(&to).unwrap(), b"another file, longer");
    }
}
