//! Stage 1: everything about the file that can be checked before any network call.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result, Rule};

/// The original specification's extension map. The extension decides the declared type; the bytes must agree.
pub const TYPES: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("zip", "application/zip"),
];

/// The EICAR anti-virus test signature: the one piece of "malware" every scanner must flag.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Read size for hashing: big enough to run at hashing speed, small enough to keep memory flat.
pub const CHUNK: usize = 256 * 1024;

const ZIP_MAGICS: &[&[u8]] = &[b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"];

#[derive(Debug, Clone)]
pub struct Policy {
    pub max_size: u64,
    pub allowed_types: Vec<String>,
    pub local_scan: bool,
    /// Also compute MD5 in the same pass (for routes that announce it).
    pub md5: bool,
}

impl Policy {
    /// The policy for `max_size` and the allowed types (empty: every type in [`TYPES`]).
    /// Refuses a type gcupload cannot verify by its magic bytes.
    pub fn new(max_size: u64, allow_types: &[String], local_scan: bool) -> Result<Self> {
        let mut allowed_types: Vec<String> = if allow_types.is_empty() {
            TYPES.iter().map(|(_, t)| t.to_string()).collect()
        } else {
            allow_types
                .iter()
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect()
        };
        allowed_types.dedup();
        if let Some(bad) = allowed_types
            .iter()
            .find(|t| !TYPES.iter().any(|(_, k)| k == t))
        {
            let known: Vec<&str> = TYPES.iter().map(|(_, t)| *t).collect();
            return Err(Error::config(format!(
                "--allow-type `{bad}` is not a type gcupload can verify; known: {}",
                dedup_join(&known)
            )));
        }
        if max_size == 0 {
            return Err(Error::config("--max-size must be greater than zero"));
        }
        Ok(Policy {
            max_size,
            allowed_types,
            local_scan,
            md5: false,
        })
    }
}

fn dedup_join(v: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for t in v {
        if !out.contains(t) {
            out.push(t);
        }
    }
    out.join(", ")
}

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
    handle: Arc<File>,
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

/// Finds a byte signature in a stream fed chunk by chunk, across chunk boundaries.
pub struct SignatureScanner {
    finder: memchr::memmem::Finder<'static>,
    tail: Vec<u8>,
    found: bool,
}

impl SignatureScanner {
    pub fn eicar() -> Self {
        SignatureScanner {
            finder: memchr::memmem::Finder::new(EICAR),
            tail: Vec::with_capacity(2 * EICAR.len()),
            found: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.found {
            return;
        }
        let keep = EICAR.len() - 1;
        // Only the seam between the previous chunk and this one needs the carried tail.
        self.tail.extend_from_slice(&chunk[..chunk.len().min(keep)]);
        if self.finder.find(&self.tail).is_some() || self.finder.find(chunk).is_some() {
            self.found = true;
            return;
        }
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

/// True when the EICAR signature occurs anywhere in `reader`; streams with a fixed buffer.
pub fn contains_eicar(mut reader: impl Read) -> std::io::Result<bool> {
    let mut scanner = SignatureScanner::eicar();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(scanner.found());
        }
        scanner.feed(&buf[..n]);
    }
}

pub fn content_type_for(file_name: &str) -> Option<&'static str> {
    let ext = Path::new(file_name)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    TYPES.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t)
}

/// Runs every local rule on `path`. Blocking file I/O runs off the async threads.
pub async fn validate(path: &Path, policy: &Policy) -> Result<ValidatedFile> {
    let path = path.to_path_buf();
    let policy = policy.clone();
    tokio::task::spawn_blocking(move || validate_blocking(&path, &policy))
        .await
        .map_err(|e| Error::invalid(Rule::Unreadable, format!("validation task failed: {e}")))?
}

fn validate_blocking(path: &Path, policy: &Policy) -> Result<ValidatedFile> {
    // From the path first, so a FIFO or device is refused without even being opened.
    check_metadata(&path_metadata(path)?, policy)?;
    let file_name = file_name_of(path)?;
    let content_type = check_type(&file_name, policy)?;
    let file = open_nonblocking(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::invalid(Rule::NotFound, "no such file"),
        _ => Error::invalid(Rule::Unreadable, format!("cannot open: {e}")),
    })?;
    // Again from the handle: the path may name something else by now, the handle is what is read.
    let meta = file
        .metadata()
        .map_err(|e| Error::invalid(Rule::Unreadable, format!("cannot read its metadata: {e}")))?;
    let size = check_metadata(&meta, policy)?;
    let digest = read_and_digest(&file, size, content_type, policy)?;
    Ok(ValidatedFile {
        path: path.to_path_buf(),
        file_name,
        size,
        content_type,
        sha256: digest.sha256,
        fingerprint: digest.fingerprint,
        md5: digest.md5,
        meta,
        handle: Arc::new(file),
    })
}

fn path_metadata(path: &Path) -> Result<Metadata> {
    std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::invalid(Rule::NotFound, "no such file"),
        _ => Error::invalid(Rule::Unreadable, format!("cannot read its metadata: {e}")),
    })
}

/// A regular, non-empty file within the size limit; returns its size.
fn check_metadata(meta: &Metadata, policy: &Policy) -> Result<u64> {
    if meta.is_dir() {
        return Err(Error::invalid(
            Rule::Directory,
            "a directory (its files are uploaded with --recursive)",
        ));
    }
    if !meta.is_file() {
        return Err(Error::invalid(
            Rule::NotRegularFile,
            "not a regular file (a FIFO, device or socket cannot be uploaded)",
        ));
    }
    let size = meta.len();
    if size == 0 {
        return Err(Error::invalid(Rule::Empty, "the file is empty"));
    }
    if size > policy.max_size {
        return Err(Error::invalid(
            Rule::TooLarge,
            format!(
                "{size} bytes is over the limit of {} bytes (--max-size)",
                policy.max_size
            ),
        ));
    }
    Ok(size)
}

/// The content type the extension declares, if it is known and allowed.
fn check_type(file_name: &str, policy: &Policy) -> Result<&'static str> {
    let content_type = content_type_for(file_name).ok_or_else(|| {
        let exts: Vec<&str> = TYPES.iter().map(|(e, _)| *e).collect();
        Error::invalid(
            Rule::UnknownType,
            format!(
                "`{file_name}` has no supported extension; supported: {}",
                exts.join(", ")
            ),
        )
    })?;
    if !policy.allowed_types.iter().any(|t| t == content_type) {
        return Err(Error::invalid(
            Rule::TypeNotAllowed,
            format!(
                "{content_type} is not in the allowed types ({})",
                policy.allowed_types.join(", ")
            ),
        ));
    }
    Ok(content_type)
}

/// What one pass over the bytes learns.
struct Digests {
    sha256: String,
    md5: Option<String>,
    fingerprint: u64,
}

/// Checks the magic bytes, then hashes and scans the whole file in one pass.
fn read_and_digest(
    mut file: &File,
    size: u64,
    content_type: &str,
    policy: &Policy,
) -> Result<Digests> {
    let read_err =
        |e: std::io::Error| Error::invalid(Rule::Unreadable, format!("read failed: {e}"));
    // Small files get a small buffer: a fresh 256 KiB allocation per file shows up in profiles.
    let mut buf = vec![0u8; CHUNK.min(size as usize + 1)];
    let mut head_len = 0;
    // Fill the head fully: magic checks need up to a few hundred bytes even from a slow reader.
    while head_len < buf.len() {
        let n = file.read(&mut buf[head_len..]).map_err(read_err)?;
        if n == 0 {
            break;
        }
        head_len += n;
    }
    check_magic(&buf[..head_len], content_type)?;

    let mut hasher = Sha256::new();
    let mut md5 = policy.md5.then(md5::Md5::new);
    let mut xxh = xxhash_rust::xxh3::Xxh3::new();
    let mut scanner = policy.local_scan.then(SignatureScanner::eicar);
    let mut total = head_len as u64;
    let mut chunk = &buf[..head_len];
    loop {
        hasher.update(chunk);
        xxh.update(chunk);
        if let Some(m) = md5.as_mut() {
            m.update(chunk);
        }
        if let Some(s) = scanner.as_mut() {
            s.feed(chunk);
        }
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        chunk = &buf[..n];
    }
    if total != size {
        return Err(Error::FileChanged {
            message: format!("its size changed from {size} to {total} bytes while it was read"),
        });
    }
    if scanner.is_some_and(|s| s.found()) {
        return Err(Error::invalid(
            Rule::ContentSafety,
            "the file contains the EICAR anti-virus test signature",
        ));
    }
    Ok(Digests {
        sha256: hex::encode(hasher.finalize()),
        fingerprint: xxh.digest(),
        md5: md5.map(|m| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(m.finalize())
        }),
    })
}

/// The base name, refused when it has control characters, bidirectional-control characters
/// (which make the agent see another name and extension than the file has), or is not UTF-8.
pub fn file_name_of(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(Rule::FileName, "the path has no file name"))?
        .to_str()
        .ok_or_else(|| Error::invalid(Rule::FileName, "the file name is not valid UTF-8"))?;
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            Rule::FileName,
            "the file name contains control characters",
        ));
    }
    if let Some(c) = name.chars().find(|&c| crate::redact::is_bidi_control(c)) {
        return Err(Error::invalid(
            Rule::FileName,
            format!(
                "the file name contains the bidirectional-control character U+{:04X}, which would show the agent another name or extension than the file has; rename the file without it",
                c as u32
            ),
        ));
    }
    Ok(name.to_string())
}

fn check_magic(head: &[u8], declared: &str) -> Result<()> {
    use infer::app::{is_elf, is_exe, is_mach};
    if is_exe(head) || is_elf(head) || is_mach(head) {
        return Err(Error::invalid(
            Rule::Executable,
            "the content is an executable program (PE/MZ, ELF or Mach-O header)",
        ));
    }
    let is_zip = ZIP_MAGICS.iter().any(|m| head.starts_with(m));
    if declared == "application/zip" {
        return if is_zip {
            Ok(())
        } else {
            Err(Error::invalid(
                Rule::MagicMismatch,
                "declared application/zip but the content has no ZIP signature",
            ))
        };
    }
    if is_zip {
        return Err(Error::invalid(
            Rule::ZipSignature,
            format!(
                "the content is a ZIP archive but the extension declares {declared}; ZIP content is only accepted as .zip"
            ),
        ));
    }
    let detected = infer::get(head).map(|t| t.mime_type());
    let agrees = match declared {
        "text/plain" => detected.is_none() && !head.contains(&0),
        _ => detected == Some(declared),
    };
    if agrees {
        return Ok(());
    }
    Err(Error::invalid(
        Rule::MagicMismatch,
        match detected {
            Some(d) => format!("declared {declared} by its extension but the content is {d}"),
            None if declared == "text/plain" => {
                "declared text/plain but the content is binary (NUL bytes)".to_string()
            }
            None => format!(
                "declared {declared} by its extension but the content has no {declared} signature"
            ),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_signature_across_chunks() {
        let mut data = vec![b'a'; 1000];
        data.extend_from_slice(EICAR);
        data.extend_from_slice(&[b'b'; 500]);
        for split in [1, 7, 60, 67, 68, 69, 1000, 1030, 1067, 1068] {
            let mut s = SignatureScanner::eicar();
            for c in data.chunks(split) {
                s.feed(c);
            }
            assert!(s.found(), "chunk size {split}");
        }
        let mut s = SignatureScanner::eicar();
        s.feed(&EICAR[..40]);
        s.feed(b"zz");
        s.feed(&EICAR[40..]);
        assert!(!s.found());
    }

    #[test]
    fn magic_rules() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert!(check_magic(png, "image/png").is_ok());
        assert!(matches!(
            check_magic(png, "application/pdf"),
            Err(Error::Validation {
                rule: Rule::MagicMismatch,
                ..
            })
        ));
        assert!(matches!(
            check_magic(b"MZ\x90\0", "application/pdf"),
            Err(Error::Validation {
                rule: Rule::Executable,
                ..
            })
        ));
        assert!(matches!(
            check_magic(b"PK\x03\x04rest", "application/pdf"),
            Err(Error::Validation {
                rule: Rule::ZipSignature,
                ..
            })
        ));
        assert!(check_magic(b"PK\x03\x04rest", "application/zip").is_ok());
        assert!(check_magic(b"hello world\n", "text/plain").is_ok());
        assert!(check_magic(b"%PDF-1.4\n", "application/pdf").is_ok());
    }
}
