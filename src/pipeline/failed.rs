//! What follows a failure: the journal told (so the next run starts anew or resumes), the
//! route's leftovers discarded, the record written, and with `--failed-to` a file that can never
//! be sent moved out of the drop folder with its record beside it, so cron runs stop failing on
//! it for ever.

use std::path::{Path, PathBuf};

use super::file::Reached;
use super::job::Job;
use super::stages::Pipeline;
use crate::audit::{self, Record};
use crate::error::Error;
use crate::error_reporting;
use crate::inputs::Input;
use crate::moves;
use crate::state::Step;

/// The record's copy beside a file set aside: `x.pdf` → `x.pdf.gcupload.json`.
const RECORD_SUFFIX: &str = ".gcupload.json";

impl Pipeline {
    /// The failure record of `input`, and its error.
    pub(super) async fn failed(
        &self,
        input: &Input,
        shown: &str,
        reached: Reached,
        e: Error,
        ms: u64,
    ) -> (Record, Option<Error>) {
        self.progress.println(&error_reporting::human(shown, &e));
        if let Some(job) = &reached.job {
            self.journal_failure(job, &e).await;
        }
        let file = reached.validated.as_ref();
        let mut record = audit::failed(self.route_name(), shown, file, &e, ms);
        if let Some(f) = file {
            record.extra.extend(self.route.discard(f).await);
        }
        let judged = file.map(|f| &f.meta).or(reached.judged.as_ref());
        if let (Some(dir), Some(meta)) = (&self.failed_to, judged)
            && e.never_sendable()
            && !self.dry_run
        {
            self.set_aside(&mut record, shown, input, dir, meta).await;
        }
        (record, Some(e))
    }

    async fn journal_failure(&self, job: &Job, e: &Error) {
        let Some(store) = &job.store else { return };
        // Nothing irreversible happened, or the platform refused the content: start anew next
        // time. Otherwise the next run resumes from the step reached.
        let fin = job.step == Step::Claimed || matches!(e, Error::Infected { .. });
        if let Err(err) = store.failed(job.id, e.to_string(), fin).await {
            tracing::error!("the failure could not be journaled: {err}");
        }
    }

    /// `--failed-to`: moves the file (only while its path still names the file judged) and
    /// writes its record beside it; what happened goes into the record.
    async fn set_aside(
        &self,
        record: &mut Record,
        shown: &str,
        input: &Input,
        dir: &Path,
        meta: &std::fs::Metadata,
    ) {
        let after = moves::After::MoveTo(dir.to_path_buf()).below(&input.subfolder());
        let what = "--failed-to: ";
        let Some(to) = self.relocate(record, shown, input, after, meta, what).await else {
            return;
        };
        if let Err(e) = write_beside(&to, record) {
            let why = format!(
                "moved to {}, but its record could not be written beside it: {e}",
                to.display()
            );
            self.move_failed(record, shown, what, why);
        }
    }
}

/// The record as JSON beside the moved file, written only if no file has that name.
fn write_beside(moved: &Path, record: &Record) -> std::io::Result<()> {
    use std::io::Write;
    let mut name = moved.as_os_str().to_owned();
    name.push(RECORD_SUFFIX);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(PathBuf::from(name))?;
    let mut bytes = serde_json::to_vec_pretty(record).expect("records serialise");
    bytes.push(b'\n');
    out.write_all(&bytes)?;
    out.sync_all()
}
