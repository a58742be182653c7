//! A validated file: what later stages know of it, and the handle its bytes are sent from.

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A file that passed every local rule, with what later stages need to know about it.
#[derive(Debug, Clone)]
pub struct ValidatedFile {
    pub path: PathBuf,
    /// Base name only: what the platform sees.
    pub file_name: String,
    pub size: u64,
    pub content_type: &'static str,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// MD5, base64, when the policy asked for it.
    pub md5: Option<String>,
    /// A fast fingerprint (XXH3) of the same bytes: the PUT checks what it sent against it.
    pub fingerprint: u64,
    /// The metadata of the handle the bytes were read through, taken before they were read:
    /// which file this is and its state when validated (the PUT checks it is unchanged; a drop
    /// folder move checks the path still names it).
    pub meta: Metadata,
    /// That handle, kept open: the PUT sends from it, never from the path again, so a file
    /// swapped after validation cannot have its bytes sent in place of the validated ones.
    pub(super) handle: Arc<File>,
}

impl ValidatedFile {
    /// Fills as much of `buf` as the file has from `offset` on, through the validated handle.
    /// Positional, so every PUT attempt reads from the start with no shared cursor. Blocking.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match read_at(&self.handle, &mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    /// The metadata of the validated handle as it is now. Blocking (a stat).
    pub fn current_metadata(&self) -> std::io::Result<Metadata> {
        self.handle.metadata()
    }

    /// Before a PUT: the handle's file has the size and modification time it was validated
    /// with, and (unix) the path still names that file. Otherwise the user's file is no longer
    /// the one validated: `FileChanged`. Blocking (a stat).
    pub fn check_unchanged(&self) -> Result<()> {
        let changed = |why: String| Error::FileChanged {
            message: format!("{why} since it was validated; nothing was sent"),
        };
        let now = self
            .handle
            .metadata()
            .map_err(|e| changed(format!("it could not be inspected ({e})")))?;
        if now.len() != self.meta.len() {
            return Err(changed(format!(
                "its size changed from {} to {} bytes",
                self.meta.len(),
                now.len()
            )));
        }
        if now.modified().ok() != self.meta.modified().ok() {
            return Err(changed("it was modified".into()));
        }
        self.check_path_names_handle(&now)
    }

    /// The path (followed, as it was when opened) names the file the handle holds.
    #[cfg(unix)]
    fn check_path_names_handle(&self, now: &Metadata) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let at_path = std::fs::metadata(&self.path).map_err(|e| Error::FileChanged {
            message: format!("its path no longer names a file ({e}); nothing was sent"),
        })?;
        if (at_path.dev(), at_path.ino()) != (now.dev(), now.ino()) {
            return Err(Error::FileChanged {
                message: "its path now names another file (replaced, or a link to another file) since it was validated; nothing was sent".into(),
            });
        }
        Ok(())
    }

    // Without inode numbers there is nothing to compare; the bytes are still checked as sent.
    #[cfg(not(unix))]
    fn check_path_names_handle(&self, _now: &Metadata) -> Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

// Moves the handle's cursor too; nothing else reads through the cursor once validated.
#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Opens `path` for reading without ever blocking in `open`: a FIFO with no writer (or a
/// device) would otherwise hold the run forever, out of reach of any interrupt. Callers check
/// the handle is a regular file before reading; for one, O_NONBLOCK changes nothing.
pub fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOCTTY: a terminal device given as input must not become our controlling terminal.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    options.open(path)
}

/// What the file system says about a file's identity and content, as one string: device,
/// inode, size, modification and change time. A journaled upload whose file still has the same
/// stamp is known without reading it again; the change time cannot be set back by a program, so
/// a rewrite in place with its modification time restored still changes the stamp.
#[cfg(unix)]
pub fn stamp(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    Some(format!(
        "{}:{}:{}:{}.{:09}:{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

/// Elsewhere there is no change time to trust: every file is read.
#[cfg(not(unix))]
pub fn stamp(_meta: &std::fs::Metadata) -> Option<String> {
    None
}
