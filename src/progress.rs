//! Progress on stderr with `indicatif`: a bar per file in flight (bytes, rate, ETA) and an
//! overall bar for batches. Drawn only on a terminal (or with `--progress always`), never with
//! `--quiet`; stdout is never touched.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// When to draw progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// On a terminal, unless --quiet.
    Auto,
    Always,
    Never,
}

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
}

impl Progress {
    pub fn new(when: When, quiet: bool, files: usize) -> Self {
        let on = match when {
            When::Never => false,
            When::Always => true,
            When::Auto => !quiet && std::io::stderr().is_terminal(),
        };
        if !on || quiet {
            return Progress {
                multi: None,
                overall: None,
            };
        }
        // `always` must draw even when stderr is not a terminal (CI logs, tests).
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::buffered_stderr()), 10)
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = (files > 1).then(|| {
            let b = multi.add(ProgressBar::new(files as u64));
            b.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} files, {elapsed}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_prefix("total");
            b
        });
        Progress {
            multi: Some(multi),
            overall,
        }
    }

    /// A bar for one file's bytes; a no-op bar when progress is off.
    pub fn file(&self, name: &str, size: u64) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let b = multi.insert_from_back(usize::from(self.overall.is_some()), ProgressBar::new(size));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        b.set_prefix("upload");
        b.set_message(crate::redact::for_terminal(name).into_owned());
        b
    }

    pub fn file_done(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        if let Some(o) = &self.overall {
            o.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(o) = &self.overall {
            o.finish_and_clear();
        }
    }

    /// Runs `f` (a write to stdout) with the bars lifted: on a terminal that stdout shares with
    /// them, the lines it writes stay above the bars instead of being drawn over.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    /// Prints a line above the bars (or plainly when there are none).
    pub fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => crate::stderr_line!("{line}"),
        }
    }
}
