//! `gcupload history`: the journal's rows as JSON objects, and which of them a filter keeps; the
//! same for every store.

use serde_json::{Value, json};

use super::keys::Step;

/// Which rows `gcupload history` prints.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Rows updated at or after this time.
    pub since: Option<time::OffsetDateTime>,
    /// Only rows whose last attempt failed.
    pub failed: bool,
    /// Only rows a resume would act on.
    pub pending: bool,
    /// Only rows for this path (a file, or a directory and everything below it).
    pub path: Option<String>,
}

/// A journal row as `history` prints it, read from either store.
pub(super) struct Row {
    pub id: i64,
    pub route: String,
    pub target: String,
    pub file_name: String,
    pub sha256: String,
    pub size: i64,
    pub path: String,
    pub step: String,
    pub file_id: Option<String>,
    pub event_id: Option<String>,
    pub error: Option<String>,
    pub webhook: Option<String>,
    /// pid, holder and expiry (ms), when a lease is held.
    pub lease: Option<(i64, String, i64)>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

/// The columns a store selects for a [`Row`], in its field order.
pub(super) const COLUMNS: &str = "id, route, target, file_name, sha256, size, path, step, file_id, \
    event_id, error, webhook, lease_pid, lease_host, lease_until, created_at, updated_at, completed_at";

impl Row {
    fn json(self) -> Value {
        let step = Step::parse(&self.step);
        let pending = !matches!(step, Step::Completed | Step::Failed)
            || (step == Step::Completed && self.webhook.is_none());
        let mut v = json!({
            "id": self.id,
            "route": self.route,
            "target": self.target,
            "fileName": self.file_name,
            "sha256": self.sha256,
            "size": self.size,
            "path": self.path,
            "step": step.as_str(),
            "fileId": self.file_id,
            "eventId": self.event_id,
            "error": self.error,
            "webhook": self.webhook,
            "pending": pending,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "completedAt": self.completed_at,
        });
        if pending {
            v["next"] = step.next_action().into();
        }
        if let Some((pid, host, until)) = self.lease {
            v["lease"] = json!({"pid": pid, "host": host, "untilMs": until});
        }
        v
    }
}

/// The rows (oldest first) that `f` keeps, as JSON objects.
pub(super) fn select(rows: Vec<Row>, f: &HistoryFilter) -> Vec<Value> {
    let rows: Vec<Value> = rows.into_iter().map(Row::json).collect();
    let superseded = if f.failed {
        superseded(&rows)
    } else {
        Default::default()
    };
    rows.into_iter()
        .filter(|r| keep(r, f) && !superseded.contains(&r["id"].as_i64().unwrap_or(0)))
        .collect()
}

/// The rows with a later attempt at the same file (same route, target and path): a failure a
/// later run fixed (the file corrected and sent, say) is not among the files whose last attempt
/// failed. The latest attempt is the row updated last.
fn superseded(rows: &[Value]) -> std::collections::HashSet<i64> {
    type File<'a> = (&'a str, &'a str, &'a str);
    type Attempt = (Option<time::OffsetDateTime>, i64);
    let updated = |r: &Value| {
        let text = r["updatedAt"].as_str().unwrap_or("");
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    };
    let mut latest: std::collections::HashMap<File<'_>, Attempt> = Default::default();
    for r in rows {
        let file = (
            r["route"].as_str().unwrap_or(""),
            r["target"].as_str().unwrap_or(""),
            r["path"].as_str().unwrap_or(""),
        );
        let attempt = (updated(r), r["id"].as_i64().unwrap_or(0));
        let best = latest.entry(file).or_insert(attempt);
        if attempt > *best {
            *best = attempt;
        }
    }
    let newest: std::collections::HashSet<i64> = latest.into_values().map(|(_, id)| id).collect();
    rows.iter()
        .filter_map(|r| r["id"].as_i64())
        .filter(|id| !newest.contains(id))
        .collect()
}

fn keep(row: &Value, f: &HistoryFilter) -> bool {
    let s = |k: &str| row[k].as_str().unwrap_or("");
    if let Some(since) = f.since {
        let updated = time::OffsetDateTime::parse(
            s("updatedAt"),
            &time::format_description::well_known::Rfc3339,
        );
        if updated.is_ok_and(|t| t < since) {
            return false;
        }
    }
    if f.failed && (row["error"].is_null() || s("step") == "completed") {
        return false;
    }
    if f.pending && row["pending"] != Value::Bool(true) {
        return false;
    }
    if let Some(p) = &f.path {
        let p = p.trim_end_matches('/');
        let path = s("path");
        if path != p && !path.starts_with(&format!("{p}/")) {
            return false;
        }
    }
    true
}
