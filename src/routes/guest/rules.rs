//! What the deployment allows, worked out as the transport SDK does: from the session answer's
//! `allowedMedia` or from the deployment configuration's `fileUpload.modes`
//! (`core/MessagingClientImpl.kt`, `createFileAttachmentProfile`;
//! `util/extensions/MessageExtension.kt`, both `toFileAttachmentProfile`).

use serde_json::Value;

use super::deployment::FileUpload;
use crate::error::{Error, Result, Rule};
use crate::validate::ValidatedFile;

#[derive(Debug, Clone, Default)]
pub(super) struct SessionRules {
    /// `None`: nothing published says (no `allowedMedia`, config.json unreadable): the platform's
    /// onAttachment decides, as the SDK lets any file through without a profile.
    profile: Option<Profile>,
    blocked_extensions: Vec<String>,
}

/// The SDK's `FileAttachmentProfile`, and where it came from.
#[derive(Debug, Clone)]
struct Profile {
    source: &'static str,
    enabled: bool,
    file_types: Vec<String>,
    max_file_size_kb: u64,
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

/// From `allowedMedia.inbound`: enabled with at least one type and a limit above 0.
fn from_session(body: &Value) -> Profile {
    let inbound = &body["allowedMedia"]["inbound"];
    let file_types = strings(&inbound["fileTypes"], |t| {
        Some(t.get("type")?.as_str()?.to_ascii_lowercase())
    });
    let max_file_size_kb = inbound["maxFileSizeKB"].as_u64().unwrap_or(0);
    Profile {
        source: "the session answer (allowedMedia)",
        enabled: !file_types.is_empty() && max_file_size_kb > 0,
        file_types,
        max_file_size_kb,
    }
}

/// From `fileUpload.modes`: every mode's types, the first mode's limit; enabled with a type.
fn from_modes(upload: &FileUpload) -> Profile {
    let file_types: Vec<String> = upload
        .modes
        .iter()
        .flat_map(|m| m.file_types.iter().map(|t| t.to_ascii_lowercase()))
        .collect();
    Profile {
        source: "the deployment configuration (config.json fileUpload.modes)",
        enabled: !file_types.is_empty(),
        file_types,
        max_file_size_kb: upload
            .modes
            .first()
            .and_then(|m| m.max_file_size_kb)
            .unwrap_or(0),
    }
}

impl SessionRules {
    /// From a `SessionResponse` body and the deployment's `fileUpload` (`None`: config.json
    /// could not be read). A `fileUpload.enableAttachments` (any value) makes the session answer
    /// the rule; without it, the modes are; without config.json, the session answer if it has
    /// `allowedMedia`.
    pub(super) fn resolve(body: &Value, upload: Option<&FileUpload>) -> SessionRules {
        let has_media = body.get("allowedMedia").is_some_and(Value::is_object);
        let profile = match upload {
            Some(u) if u.enable_attachments.is_some() => Some(from_session(body)),
            Some(u) => Some(from_modes(u)),
            None if has_media => Some(from_session(body)),
            None => None,
        };
        SessionRules {
            profile,
            blocked_extensions: strings(&body["blockedExtensions"], |e| {
                Some(e.as_str()?.trim_start_matches('.').to_ascii_lowercase())
            }),
        }
    }

    /// One line for `doctor`.
    pub(super) fn describe(&self) -> String {
        let blocked = list_or(&self.blocked_extensions, "none");
        match &self.profile {
            None => format!(
                "allowed types and size limit: not published (the platform decides on each file); blocked extensions: {blocked}"
            ),
            Some(p) if !p.enabled => format!("file uploads disabled, from {}", p.source),
            Some(p) => format!(
                "allowed types: {}; size limit: {} KB; blocked extensions: {blocked}; from {}",
                list_or(&p.file_types, "none"),
                p.max_file_size_kb,
                p.source
            ),
        }
    }

    pub(super) fn check(&self, file: &ValidatedFile) -> Result<()> {
        if let Some(p) = &self.profile {
            p.check(file)?;
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

impl Profile {
    fn check(&self, file: &ValidatedFile) -> Result<()> {
        if !self.enabled {
            return Err(Error::refused_by_deployment(
                Rule::TypeNotAllowed,
                format!(
                    "file uploads are disabled on this deployment (according to {})",
                    self.source
                ),
            ));
        }
        // The SDK leaves types to the platform (4001); checking them here refuses the same
        // files before anything is sent.
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
                    self.file_types.join(", ")
                ),
            ));
        }
        // Whole kilobytes of 1000 bytes, as the transport SDK compares them:
        // `size / 1000 > maxFileSizeKB` (`core/AttachmentHandlerImpl.kt`, `isInvalid`, `toKB`).
        let kb = self.max_file_size_kb;
        if file.size / 1000 > kb {
            return Err(Error::refused_by_deployment(
                Rule::TooLarge,
                format!(
                    "{} bytes is over the deployment's limit of {kb} KB",
                    file.size
                ),
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

    fn upload(enable: Option<bool>, types: &[&str], kb: u64) -> FileUpload {
        serde_json::from_value(serde_json::json!({
            "enableAttachments": enable,
            "modes": [{"fileTypes": types, "maxFileSizeKB": kb}],
        }))
        .unwrap()
    }

    /// `createFileAttachmentProfile`: `enableAttachments` present → the session's allowedMedia;
    /// absent → the modes; no config.json → allowedMedia if any, else no local rule.
    #[test]
    fn which_rules_apply() {
        let with_media = serde_json::json!({"allowedMedia": {"inbound":
            {"fileTypes": [{"type": "image/png"}], "maxFileSizeKB": 5}}});
        let without = serde_json::json!({"connected": true});
        let types = |r: &SessionRules| {
            r.profile
                .as_ref()
                .map(|p| (p.enabled, p.file_types.clone(), p.max_file_size_kb))
        };
        let png = Some((true, vec!["image/png".to_string()], 5));
        let pdf = Some((true, vec!["application/pdf".to_string()], 7));
        let modes = upload(None, &["application/pdf"], 7);
        let enabled = upload(Some(false), &["application/pdf"], 7);
        assert_eq!(
            types(&SessionRules::resolve(&with_media, Some(&enabled))),
            png
        );
        assert_eq!(
            types(&SessionRules::resolve(&with_media, Some(&modes))),
            pdf
        );
        assert_eq!(types(&SessionRules::resolve(&without, Some(&modes))), pdf);
        assert_eq!(types(&SessionRules::resolve(&with_media, None)), png);
        assert_eq!(types(&SessionRules::resolve(&without, None)), None);
        // The session's rule needs a type and a limit; the modes' only a type.
        let off = SessionRules::resolve(&without, Some(&enabled));
        assert_eq!(types(&off), Some((false, vec![], 0)));
        let no_limit = upload(None, &["*/*"], 0);
        assert_eq!(
            types(&SessionRules::resolve(&without, Some(&no_limit))),
            Some((true, vec!["*/*".to_string()], 0))
        );
    }

    #[test]
    fn wildcards() {
        assert!(type_allowed("image/*", "image/png"));
        assert!(type_allowed("*/*", "application/pdf"));
        assert!(type_allowed("application/pdf", "application/pdf"));
        assert!(!type_allowed("image/*", "application/pdf"));
        assert!(!type_allowed("image/png", "image/jpeg"));
    }
}
