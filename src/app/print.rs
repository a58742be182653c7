//! Writes to stdout that never panic: a reader that closed it (`| head`) took what it wanted.

use std::io::Write;

use crate::error_reporting::ExitStatus;

/// Writes `bytes` to stdout. A reader that stops early (`| head`) took what it wanted.
pub(super) fn print_all(bytes: &[u8], what: &str) -> ExitStatus {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitStatus::Success,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitStatus::Success,
        Err(e) => {
            crate::stderr_line!("error: cannot write {what}: {e}");
            ExitStatus::Usage
        }
    }
}
