//! What the deployment allows, as the open session reports it in `SessionResponse`.

use serde_json::Value;

use crate::error::{Error, Result, Rule};
use crate::validate::ValidatedFile;

#[derive(Debug, Clone, Default)]
pub(super) struct SessionRules {
    file_types: Vec<String>,
    max_file_size_kb: Option<u64>,
    blocked_extensions: Vec<String>,
}

/// `image/*` and `*/*` match as the Messenger matches them.
pub fn type_allowed(allowed: &str, content_type: &str) -> bool {
    let (a_main, a_sub) = allowed.split_once('/').unwrap_or((allowed, "*"));
    let (c_main, c_sub) = content_type.split_once('/').unwrap_or((content_type, ""));
    (a_main == "*" || a_main.eq_ignore_ascii_case(c_main))
        && (a_sub == "*" || a_sub.eq_ignore_ascii_case(c_sub))
}

/// The strings of a JSON array, normalised by `f`; anything else is an empty list.
fn strings(v: &Value, f: impl Fn(&Value) -> Option<String>) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(f).collect())
        .unwrap_or_default()
}

impl SessionRules {
    /// From a `SessionResponse` body.
    pub(super) fn parse(body: &Value) -> SessionRules {
        let inbound = &body["allowedMedia"]["inbound"];
        SessionRules {
            file_types: strings(&inbound["fileTypes"], |t| {
                Some(t.get("type")?.as_str()?.to_ascii_lowercase())
            }),
            max_file_size_kb: inbound["maxFileSizeKB"].as_u64(),
            blocked_extensions: strings(&body["blockedExtensions"], |e| {
                Some(e.as_str()?.trim_start_matches('.').to_ascii_lowercase())
            }),
        }
    }

    /// One line for `doctor`.
    pub(super) fn describe(&self) -> String {
        let limit = self
            .max_file_size_kb
            .map(|kb| format!("{kb} KB"))
            .unwrap_or_else(|| "none".into());
        format!(
            "allowed types: {}; size limit: {limit}; blocked extensions: {}",
            list_or(&self.file_types, "none (uploads disabled)"),
            list_or(&self.blocked_extensions, "none"),
        )
    }

    pub(super) fn check(&self, file: &ValidatedFile) -> Result<()> {
        if !self
            .file_types
            .iter()
            .any(|t| type_allowed(t, file.content_type))
        {
            return Err(Error::refused_by_deployment(
                Rule::TypeNotAllowed,
                format!(
                    "the deployment does not accept {} (it allows: {})",
                    file.content_type,
                    list_or(&self.file_types, "no file uploads")
                ),
            ));
        }
        if let Some(kb) = self.max_file_size_kb
            && file.size > kb.saturating_mul(1000)
        {
            return Err(Error::refused_by_deployment(
                Rule::TooLarge,
                format!(
                    "{} bytes is over the deployment's limit of {kb} KB",
                    file.size
                ),
            ));
        }
        let ext = file
            .file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        if self.blocked_extensions.contains(&ext) {
            return Err(Error::refused_by_deployment(
                Rule::BlockedExtension,
                format!("the deployment blocks .{ext} files"),
            ));
        }
        Ok(())
    }
}

fn list_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(type_allowed("image/*", "image/png"));
        assert!(type_allowed("*/*", "application/pdf"));
        assert!(type_allowed("application/pdf", "application/pdf"));
        assert!(!type_allowed("image/*", "application/pdf"));
        assert!(!type_allowed("image/png", "image/jpeg"));
    }
}
