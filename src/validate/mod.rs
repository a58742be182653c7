//! Stage 1: everything about the file that can be checked before any network call.
//! The checks live by concern: [`rules`] (name, metadata, type, magic bytes), [`scan`] (one
//! pass over the bytes), [`file`] (the validated file and its handle).

mod file;
mod policy;
mod rules;
mod scan;

pub use file::{ValidatedFile, open_nonblocking, stamp};
pub use policy::{Policy, TYPES, content_type_for};
pub use rules::file_name_of;
pub use scan::{CHUNK, EICAR, SignatureScanner, contains_eicar};

use std::fs::Metadata;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result, Rule};
use rules::{check_metadata, check_type};
use scan::read_and_digest;

/// A file validation refused, with the metadata of what it judged (when that was a regular
/// file): `--failed-to` moves it only while its path still names that same file.
#[derive(Debug)]
pub struct Refused {
    pub error: Error,
    pub judged: Option<Metadata>,
}

impl From<Box<Refused>> for Error {
    fn from(r: Box<Refused>) -> Error {
        r.error
    }
}

/// Runs every local rule on `path`. Blocking file I/O runs off the async threads.
pub async fn validate(
    path: &Path,
    policy: &Policy,
) -> std::result::Result<ValidatedFile, Box<Refused>> {
    let path = path.to_path_buf();
    let policy = policy.clone();
    tokio::task::spawn_blocking(move || {
        let mut judged = None;
        judge(&path, &policy, &mut judged).map_err(|error| Box::new(Refused { error, judged }))
    })
    .await
    .unwrap_or_else(|e| {
        Err(Box::new(Refused {
            error: Error::invalid(Rule::Unreadable, format!("validation task failed: {e}")),
            judged: None,
        }))
    })
}

/// The rules in order; `judged` is what was looked at last (the path's file, then the handle's).
fn judge(path: &Path, policy: &Policy, judged: &mut Option<Metadata>) -> Result<ValidatedFile> {
    // From the path first, so a FIFO or device is refused without even being opened.
    let at_path = path_metadata(path)?;
    *judged = at_path.is_file().then(|| at_path.clone());
    check_metadata(&at_path, policy)?;
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
    *judged = meta.is_file().then(|| meta.clone());
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
