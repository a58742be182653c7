//! What the local rules are set to: the size limit, the allowed types (of those gcupload knows),
//! the local scan.

use std::path::Path;

use crate::error::{Error, Result};

/// The extension map of the original specification. The extension decides the declared type;
/// the bytes must agree.
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

/// The type a file name's extension declares, if gcupload knows it.
pub fn content_type_for(file_name: &str) -> Option<&'static str> {
    let ext = Path::new(file_name)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    TYPES.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t)
}

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
