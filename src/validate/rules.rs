//! The rules decided by the name, the metadata and the first bytes: regular, non-empty, within
//! the size limit, a known and allowed type, a clean name, and content that agrees with the
//! extension.

use std::fs::Metadata;
use std::path::Path;

use super::policy::{Policy, TYPES, content_type_for};
use crate::error::{Error, Result, Rule};

const ZIP_MAGICS: &[&[u8]] = &[b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"];

/// A regular, non-empty file within the size limit; returns its size.
pub(super) fn check_metadata(meta: &Metadata, policy: &Policy) -> Result<u64> {
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
pub(super) fn check_type(file_name: &str, policy: &Policy) -> Result<&'static str> {
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

pub(super) fn check_magic(head: &[u8], declared: &str) -> Result<()> {
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
