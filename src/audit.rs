//! Stage 6: the audit record, one JSON line per file on stdout. Its shape is the contract in
//! `src/audit/record.schema.json`.

use std::io::Write;

use serde::Serialize;

use crate::arrival::Why;
use crate::error::{Error, Stage};
use crate::error_reporting;
use crate::routes::Confirmation;
use crate::validate::ValidatedFile;

/// What happened to the file; serialised as the schema's `action` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    #[serde(rename = "FILE_UPLOAD_COMPLETED")]
    Completed,
    #[serde(rename = "FILE_UPLOAD_PLANNED")]
    Planned,
    #[serde(rename = "FILE_UPLOAD_FAILED")]
    Failed,
    #[serde(rename = "FILE_UPLOAD_SKIPPED")]
    Skipped,
    /// Found by a walk or glob while still being written: left for a later run.
    #[serde(rename = "FILE_UPLOAD_DEFERRED")]
    Deferred,
}

/// Why a file was not sent in this run.
#[derive(Debug, Clone)]
pub enum Skip {
    /// An earlier run confirmed this content to this target.
    Uploaded {
        file_id: Option<String>,
        event_id: Option<String>,
        at: Option<String>,
    },
    /// Another run is uploading it right now.
    Claimed { by: String },
    /// This run uploads the same content under the same name to the same target from another
    /// path.
    SameRun,
}

/// `complianceStatus`: the file went through the local checks (and, if it failed, later).
const AUDITED: &str = "AUDITED";
/// `complianceStatus`: a local rule refused the file.
const REJECTED: &str = "REJECTED";
/// `complianceStatus`: the run stopped before the file was checked (e.g. a configuration error).
const NOT_AUDITED: &str = "NOT_AUDITED";

/// The record's `route` when no route could be resolved.
pub const NO_ROUTE: &str = "none";

/// How the webhook delivery of a record went (the record's `webhook` field).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: usize,
    /// Written to the outbox for a later run (or `gcupload webhook flush`) to deliver.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
    /// Why an undelivered event could not be kept either: it is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub timestamp: String,
    pub event_id: uuid::Uuid,
    pub action: Action,
    pub route: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    pub file_name: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<&'static str>,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virus_scan_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity_hash: Option<String>,
    pub compliance_status: &'static str,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Delivery>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    pub kind: &'static str,
    pub stage: Stage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<crate::error::Rule>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub exit_code: i32,
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formats any UTC time")
}

fn base(route: &'static str, path: &str, file_name: String, latency_ms: u64) -> Record {
    Record {
        timestamp: now(),
        event_id: uuid::Uuid::new_v4(),
        action: Action::Failed,
        route,
        file_id: None,
        file_name,
        path: path.to_string(),
        size: None,
        content_type: None,
        latency_ms,
        virus_scan_status: None,
        integrity_hash: None,
        compliance_status: AUDITED,
        extra: serde_json::Map::new(),
        error: None,
        webhook: None,
    }
}

pub fn completed(
    route: &'static str,
    path: &str,
    file: &ValidatedFile,
    confirmation: Confirmation,
    latency_ms: u64,
) -> Record {
    Record {
        action: Action::Completed,
        file_id: Some(confirmation.file_id),
        size: Some(file.size),
        content_type: Some(file.content_type),
        virus_scan_status: Some(confirmation.virus_scan_status),
        integrity_hash: Some(file.sha256.clone()),
        extra: confirmation.extra,
        ..base(route, path, file.file_name.clone(), latency_ms)
    }
}

/// A dry run's record: what would be uploaded, and where.
pub fn planned(route: &'static str, path: &str, file: &ValidatedFile, latency_ms: u64) -> Record {
    Record {
        action: Action::Planned,
        size: Some(file.size),
        content_type: Some(file.content_type),
        integrity_hash: Some(file.sha256.clone()),
        ..base(route, path, file.file_name.clone(), latency_ms)
    }
}

/// What a skipped file is: as validated now, or as the journal remembers it.
pub struct Content {
    pub file_name: String,
    pub size: u64,
    pub content_type: Option<&'static str>,
    pub sha256: String,
}

impl From<&ValidatedFile> for Content {
    fn from(file: &ValidatedFile) -> Self {
        Content {
            file_name: file.file_name.clone(),
            size: file.size,
            content_type: Some(file.content_type),
            sha256: file.sha256.clone(),
        }
    }
}

/// A skipped file's record: what it is, and the earlier upload or the run that holds it.
pub fn skipped(
    route: &'static str,
    path: &str,
    file: &Content,
    skip: &Skip,
    latency_ms: u64,
) -> Record {
    let mut extra = serde_json::Map::new();
    let file_id = match skip {
        Skip::Uploaded {
            file_id,
            event_id,
            at,
        } => {
            extra.insert("skipReason".into(), "already-uploaded".into());
            if let Some(e) = event_id {
                extra.insert("uploadedEventId".into(), e.clone().into());
            }
            if let Some(t) = at {
                extra.insert("uploadedAt".into(), t.clone().into());
            }
            file_id.clone()
        }
        Skip::Claimed { by } => {
            extra.insert("skipReason".into(), "claimed-by-another-run".into());
            extra.insert("claimedBy".into(), by.clone().into());
            None
        }
        Skip::SameRun => {
            extra.insert("skipReason".into(), "same-content-in-this-run".into());
            None
        }
    };
    Record {
        action: Action::Skipped,
        file_id,
        size: Some(file.size),
        content_type: file.content_type,
        integrity_hash: Some(file.sha256.clone()),
        extra,
        ..base(route, path, file.file_name.clone(), latency_ms)
    }
}

/// A file found still arriving: not sent, not journaled, not moved; a later run takes it.
pub fn deferred(route: &'static str, path: &str, why: &Why, latency_ms: u64) -> Record {
    let mut extra = serde_json::Map::new();
    extra.insert("deferReason".into(), why.reason().into());
    extra.insert("deferredBecause".into(), why.to_string().into());
    if let Some(w) = why.writer() {
        extra.insert("writerPid".into(), w.pid.into());
        if let Some(p) = &w.program {
            extra.insert("writerProgram".into(), p.clone().into());
        }
    }
    Record {
        action: Action::Deferred,
        compliance_status: NOT_AUDITED,
        extra,
        ..base(route, path, file_name_of(path), latency_ms)
    }
}

/// The base name of a path as shown, for records of files never read.
fn file_name_of(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

/// A failure record; `file` is what validation learned, when it got that far.
pub fn failed(
    route: &'static str,
    path: &str,
    file: Option<&ValidatedFile>,
    err: &Error,
    latency_ms: u64,
) -> Record {
    let file_name = match file {
        Some(f) => f.file_name.clone(),
        None => file_name_of(path),
    };
    let remote = err.remote();
    let compliance_status = match (file, err) {
        (Some(_), _) => AUDITED,
        (None, Error::Validation { .. }) => REJECTED,
        (None, _) => NOT_AUDITED,
    };
    Record {
        compliance_status,
        size: file.map(|f| f.size),
        content_type: file.map(|f| f.content_type),
        integrity_hash: file.map(|f| f.sha256.clone()),
        virus_scan_status: matches!(err, Error::Infected { .. }).then(|| "infected".to_string()),
        error: Some(ErrorInfo {
            kind: error_reporting::kind(err),
            stage: err.stage(),
            rule: match err {
                Error::Validation { rule, .. } => Some(*rule),
                _ => None,
            },
            message: err.to_string(),
            http_status: remote.and_then(|r| r.status),
            code: remote.and_then(|r| r.code.clone()),
            correlation_id: remote.and_then(|r| r.correlation_id.clone()),
            hint: error_reporting::hint(err),
            exit_code: error_reporting::exit_status(err).code(),
        }),
        ..base(route, path, file_name, latency_ms)
    }
}

/// The same failure for every file (a configuration or credentials problem found before any
/// file started): one record each, the error on stderr.
pub fn fail_all(
    route: &'static str,
    files: &[impl AsRef<std::path::Path>],
    err: &Error,
    output: Output,
) {
    for f in files {
        let shown = f.as_ref().display().to_string();
        eprintln!("{}", error_reporting::human(&shown, err));
        let _ = emit(&failed(route, &shown, None, err, 0), output);
    }
}

/// How records are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One compact JSON object per line (for jq and scripts).
    Json,
    /// Indented JSON.
    Pretty,
    /// One human line per file.
    Text,
}

/// Writes one record with a single write, so records never interleave and a reader never sees
/// half a line.
pub fn emit(record: &Record, output: Output) -> std::io::Result<()> {
    let mut line = match output {
        Output::Json => serde_json::to_vec(record).map_err(std::io::Error::other)?,
        Output::Pretty => serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?,
        Output::Text => text(record).into_bytes(),
    };
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)?;
    out.flush()
}

/// `ok      report.pdf  12.3 kB  external-contact  id 6d1f…` and the like, for a person: what
/// the line quotes (path, server message, ids) is shown escaped.
pub fn text(r: &Record) -> String {
    crate::redact::for_terminal(&text_line(r)).into_owned()
}

fn text_line(r: &Record) -> String {
    let size = r.size.map(human_size).unwrap_or_else(|| "-".into());
    match (&r.error, r.action) {
        (Some(e), _) => format!("failed  {}  {size}  {}  {}", r.path, e.kind, e.message),
        (None, Action::Skipped) => format!(
            "skipped {}  {size}  {}  {}",
            r.path,
            r.route,
            r.extra
                .get("skipReason")
                .and_then(|v| v.as_str())
                .unwrap_or("")
        ),
        (None, Action::Deferred) => format!(
            "later   {}  {}  {}",
            r.path,
            r.route,
            r.extra
                .get("deferredBecause")
                .and_then(|v| v.as_str())
                .unwrap_or("")
        ),
        (None, Action::Planned) => format!(
            "planned {}  {size}  {}  {}",
            r.path,
            r.route,
            r.content_type.unwrap_or("")
        ),
        (None, _) => format!(
            "ok      {}  {size}  {}  id {}",
            r.path,
            r.route,
            r.file_id.as_deref().unwrap_or("-")
        ),
    }
}

/// `593 B`, `12.3 kB`, `20.0 MB`, `1.1 GB`: decimal units, as `--max-size` reads `KB`/`MB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(593), "593 B");
        assert_eq!(human_size(12_345), "12.3 kB");
        assert_eq!(human_size(20_000_000), "20.0 MB");
        assert_eq!(human_size(999_999), "1.0 MB");
        assert_eq!(human_size(1_100_000_000), "1.1 GB");
    }
}
