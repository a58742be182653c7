//! The deployment's attachment rules, as onAttachment enforces them (protocol reference §2):
//! `allowedMedia.inbound.fileTypes` with MIME wildcards, `maxFileSizeKB` (whole kilobytes of
//! 1000 bytes) and `blockedExtensions`.

use super::super::state::Faults;

/// The GenerateUrlError code and text for an attachment the deployment refuses.
pub(crate) fn refusal(
    f: &Faults,
    name: &str,
    file_type: &str,
    size: u64,
) -> Option<(u16, &'static str)> {
    if !f
        .guest_allowed_types
        .iter()
        .any(|pattern| type_accepted(pattern, file_type))
    {
        return Some((4001, "File type not allowed"));
    }
    // Whole kilobytes, as the transport SDK checks before it asks (`size / 1000 > maxFileSizeKB`,
    // `core/AttachmentHandlerImpl.kt`): the platform's own rule is not published.
    if size / 1000 > f.guest_max_file_size_kb {
        return Some((4002, "File size too large"));
    }
    let blocked = f.guest_blocked_extensions.contains(&extension(name));
    if blocked || name.contains('/') || name.chars().any(char::is_control) {
        return Some((4004, "File name invalid"));
    }
    if name.len() > 255 {
        return Some((4005, "File name too long"));
    }
    None
}

/// Whether a `fileTypes` entry admits a MIME type: `*/*` admits anything, `image/*` any image,
/// anything else only itself (case-insensitively). An entry with no `/` names a whole top-level
/// type.
fn type_accepted(pattern: &str, mime: &str) -> bool {
    let mut want = pattern.splitn(2, '/');
    let mut have = mime.splitn(2, '/');
    let top = (want.next().unwrap_or(""), have.next().unwrap_or(""));
    let sub = (want.next().unwrap_or("*"), have.next().unwrap_or(""));
    let admits = |(w, h): (&str, &str)| w == "*" || w.eq_ignore_ascii_case(h);
    admits(top) && admits(sub)
}

/// `.ext` in lower case as `blockedExtensions` lists it; empty when the name has no dot.
fn extension(name: &str) -> String {
    match name.rfind('.') {
        Some(dot) => name[dot..].to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_admit_what_the_messenger_admits() {
        let cases = [
            ("*/*", "application/zip", true),
            ("image/*", "image/png", true),
            ("IMAGE/PNG", "image/png", true),
            ("image", "image/gif", true),
            ("image/*", "application/pdf", false),
            ("image/png", "image/jpeg", false),
            ("application/pdf", "application", false),
        ];
        for (pattern, mime, admitted) in cases {
            assert_eq!(type_accepted(pattern, mime), admitted, "{pattern} ~ {mime}");
        }
    }

    #[test]
    fn extensions_compare_in_lower_case() {
        assert_eq!(extension("setup.EXE"), ".exe");
        assert_eq!(extension("a.tar.gz"), ".gz");
        assert_eq!(extension("README"), "");
    }
}
