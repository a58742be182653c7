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
    bytes: u64,
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
        if r.error.is_some() {
            self.failed += 1;
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

    pub fn line(&self, wall: Duration) -> String {
        let secs = wall.as_secs_f64().max(1e-9);
        let files = if self.files == 1 { "file" } else { "files" };
        // Said only when there are some: most runs defer nothing.
        let deferred = match self.deferred {
            0 => String::new(),
            n => format!(", {n} deferred (still being written)"),
        };
        format!(
            "gcupload: {} {files}, {} uploaded{deferred}, {} failed, {} in {:.2} s ({:.1} MB/s)",
            self.files,
            self.completed,
            self.failed,
            audit::human_size(self.bytes),
            secs,
            self.bytes as f64 / 1e6 / secs
        )
    }
}
