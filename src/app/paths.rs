//! Paths as the user gave them, made absolute the way the journal records them.

use std::path::{Path, PathBuf};

/// `p` made absolute with its symbolic links resolved, also when it does not exist (any more):
/// the nearest existing ancestor is resolved and the rest appended. A file moved away since it
/// was uploaded is still found in the journal by the path it was uploaded from.
pub fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    let mut base = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut rest = Vec::new();
    while !base.exists() {
        let Some(name) = base.file_name().map(|n| n.to_os_string()) else {
            break;
        };
        rest.push(name);
        base.pop();
    }
    let mut full = std::fs::canonicalize(&base).unwrap_or(base);
    full.extend(rest.iter().rev());
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_made_absolute_below_its_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            absolute(&dir.path().join("gone/x.pdf")),
            real.join("gone/x.pdf")
        );
        assert_eq!(absolute(dir.path()), real);
        let relative = absolute(Path::new("no-such-file.pdf"));
        assert!(relative.is_absolute(), "{}", relative.display());
    }
}
