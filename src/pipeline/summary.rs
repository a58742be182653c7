//! The run's totals, for the closing line and the per-file table on stderr.

use std::time::Duration;

use crate::audit::{self, Action, Record};

/// The run's totals, for the closing line on stderr.
#[derive(Default)]
pub struct Summary {
    files: usize,
    completed: usize,
    deferred: usize,
    failed: usize,
    /// Stopped by an interrupt (never started, or abandoned): not failures of their own.
    interrupted: usize,
    bytes: u64,
    /// Symbolic links a walk found and did not follow.
    pub(super) links: usize,
    /// One human line per file, for the table shown when stdout is a terminal.
    rows: Vec<String>,
}

/// Rows of the closing table; a longer run is summed up in its last line.
const TABLE_ROWS: usize = 40;

impl Summary {
    pub fn add(&mut self, r: &Record) {
        self.files += 1;
        if r.action == Action::Completed {
            self.completed += 1;
            self.bytes += r.size.unwrap_or(0);
        }
        if r.action == Action::Deferred {
            self.deferred += 1;
        }
        match &r.error {
            Some(e) if e.kind == "interrupted" => self.interrupted += 1,
            Some(_) => self.failed += 1,
            None => {}
        }
        if self.rows.len() < TABLE_ROWS {
            self.rows.push(audit::text(r));
        }
    }

    /// The per-file table, for a person reading stdout on a terminal.
    pub fn table(&self) -> String {
        let mut t = self.rows.join("\n");
        if self.files > self.rows.len() {
            t.push_str(&format!("\n… and {} more", self.files - self.rows.len()));
        }
        t
    }

    /// The run in one line; `paced`: what the run's rate limiting did (said when it did anything).
    pub fn line(&self, wall: Duration, paced: crate::limiter::Stats) -> String {
        let secs = wall.as_secs_f64().max(1e-9);
        let files = if self.files == 1 { "file" } else { "files" };
        // Said only when there are some: most runs defer and interrupt nothing.
        let deferred = match self.deferred {
            0 => String::new(),
            n => format!(", {n} deferred (still being written)"),
        };
        let interrupted = match self.interrupted {
            0 => String::new(),
            n => format!(", {n} interrupted"),
        };
        let links = match self.links {
            0 => String::new(),
            1 => ", 1 symbolic link not followed".to_string(),
            n => format!(", {n} symbolic links not followed"),
        };
        let mut line = format!(
            "gcupload: {} {files}, {} uploaded{deferred}, {} failed{interrupted}{links}, {} in {:.2} s ({:.1} MB/s)",
            self.files,
            self.completed,
            self.failed,
            audit::human_size(self.bytes),
            secs,
            self.bytes as f64 / 1e6 / secs
        );
        if paced.throttled > 0 || paced.waited >= Duration::from_millis(100) {
            let calls = if paced.throttled == 1 {
                "call"
            } else {
                "calls"
            };
            line.push_str(&format!(
                "; {} {calls} throttled (429), {:.1} s waited for the API's pace",
                paced.throttled,
                paced.waited.as_secs_f64()
            ));
        }
        line
    }
}
