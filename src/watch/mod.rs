//! `gcupload watch`: drop folders as an endless stream of files for the pipeline. What is there
//! at the start is taken first (nothing dropped while it was down is missed); then each file an
//! event names is taken once it has been quiet for the settle time. The journal makes restarts
//! safe: what was sent is skipped, what was cut off is resumed.
//!
//! Memory stays bounded: events wait in a bounded queue (when it is full they are dropped and
//! the folders rescanned), pending files are kept once each by path, and the pipeline pulls
//! the next file only when a job is free. Idle, it waits on the events alone: no polling, and
//! a timer only while a file is pending.

mod events;
mod pending;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::audit::{Action, Record};
use crate::error::Result;
use crate::inputs::{Input, Selection, Shard, admits, walk};
use crate::pipeline::{Pipeline, Report};
use pending::Pending;

/// Events held at most between the file watcher and the loop, unless
/// `GCUPLOAD_WATCH_QUEUE` (for tests: a tiny queue forces the overflow → rescan path) says.
pub const QUEUE: usize = 4096;

/// What to watch and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directories to watch, as given (records show paths below them).
    pub roots: Vec<PathBuf>,
    /// Which files below them are for sending (with `recursive`, subdirectories too).
    pub selection: Selection,
    pub shard: Option<Shard>,
    /// Quiet time after a file's last event before it is taken.
    pub settle: Duration,
    /// Poll every so often instead of waiting for kernel events.
    pub poll: Option<Duration>,
    /// Events held at most before a rescan replaces them.
    pub queue: usize,
    /// Say nothing on stderr but errors.
    pub quiet: bool,
}

/// A file back from the pipeline.
struct Done {
    path: PathBuf,
    deferred: bool,
}

/// Watches until the run is interrupted (or the watcher fails), uploading through `pipeline`.
pub async fn run(pipeline: &Pipeline, config: Config) -> Result<Report> {
    // The watcher names files by absolute paths; records name them below the roots as given.
    let watched: Vec<PathBuf> = config
        .roots
        .iter()
        .map(|r| std::path::absolute(r).unwrap_or_else(|_| r.clone()))
        .collect();
    let events = events::start(
        &watched,
        config.selection.recursive,
        config.poll,
        config.queue,
    )?;
    if !config.quiet {
        let shown: Vec<String> = config
            .roots
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        crate::stderr_line!(
            "gcupload watch: watching {} ({}); stop with SIGTERM or Ctrl-C",
            crate::redact::for_terminal(&shown.join(", ")),
            match config.poll {
                Some(every) => format!("polling every {every:?}"),
                None => format!("settle {:?}", config.settle),
            }
        );
    }
    let (stop, _) = pipeline.interrupts();
    // One file waits here; the pipeline's jobs hold the rest: back-pressure to the loop.
    let (ready, next) = mpsc::channel::<Input>(1);
    let (done_tx, done) = mpsc::unbounded_channel::<Done>();
    let files = futures_util::stream::unfold(next, |mut rx| async move {
        rx.recv().await.map(|input| (input, rx))
    })
    .take_until(stop.clone().cancelled_owned());
    let mut told_deferred: HashSet<PathBuf> = HashSet::new();
    let observe = move |input: &Input, record: &Record| {
        let deferred = record.action == Action::Deferred;
        // A file still arriving is retried: say so once, not at every retry.
        let show = if deferred {
            told_deferred.insert(input.path.clone())
        } else {
            told_deferred.remove(&input.path);
            true
        };
        let _ = done_tx.send(Done {
            path: input.path.clone(),
            deferred,
        });
        show
    };
    let mut feeder = Feeder {
        config,
        watched,
        pending: Pending::default(),
        events,
        ready,
        done,
    };
    let (fed, report) = tokio::join!(
        async {
            let fed = feeder.run(&stop).await;
            // The stream ends: the pipeline finishes what it holds and reports.
            drop(feeder);
            fed
        },
        pipeline.run_observed(files, observe)
    );
    fed.map(|()| report)
}

/// How much longer a file found by a scan must stay quiet: one written to within the settle
/// time may still be arriving (its earlier events, if any, were not seen).
fn settling(path: &Path, settle: Duration) -> Duration {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(Duration::ZERO, |age| settle.saturating_sub(age))
}

/// The loop between the events and the pipeline.
struct Feeder {
    config: Config,
    /// The roots as the watcher knows them, in the order of `config.roots`.
    watched: Vec<PathBuf>,
    pending: Pending,
    events: events::Events,
    ready: mpsc::Sender<Input>,
    done: mpsc::UnboundedReceiver<Done>,
}

impl Feeder {
    async fn run(&mut self, stop: &tokio_util::sync::CancellationToken) -> Result<()> {
        self.scan(None, Duration::ZERO);
        let mut slot: Option<mpsc::OwnedPermit<Input>> = None;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                Some(done) = self.done.recv() => self.finished(done),
                () = self.events.lost.raised() => {
                    tracing::warn!("file events were lost (queue full or overflowed): rescanning");
                    self.scan(None, self.config.settle);
                }
                change = self.events.changes.recv() => match change {
                    Some(events::Change::Touched(p)) => self.touched(&p),
                    Some(events::Change::Gone(p)) => {
                        if let Some((_, p)) = self.local(&p) {
                            self.pending.forget(&p);
                        }
                    }
                    None => return Ok(()),
                },
                permit = self.ready.clone().reserve_owned(), if slot.is_none() && self.pending.waiting() => {
                    match permit {
                        Ok(p) => slot = Some(p),
                        Err(_) => return Ok(()),
                    }
                }
                Some(path) = self.pending.next_due(), if slot.is_some() => {
                    // Gone (or replaced by a directory) since its event: nothing to send.
                    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                        let permit = slot.take().expect("a slot is held");
                        self.pending.sent(path.clone());
                        let base = self.root_of(&path);
                        permit.send(Input::found(path, &base));
                    }
                }
            }
        }
    }

    /// Walks the roots (or one new directory below them) and queues what the walk picks.
    fn scan(&mut self, only: Option<&Path>, delay: Duration) {
        let roots: Vec<PathBuf> = match only {
            Some(dir) => vec![dir.to_path_buf()],
            None => self.config.roots.clone(),
        };
        for root in roots {
            for input in walk(&root, &self.config.selection) {
                match input.error() {
                    Some(e) => crate::stderr_line!(
                        "{}",
                        crate::error_reporting::human(&input.path.display().to_string(), &e)
                    ),
                    // Named in the walker's warning; never followed.
                    None if input.origin == crate::inputs::Origin::Link => {}
                    None if self.owns(&input.path) => {
                        let delay = delay.max(settling(&input.path, self.config.settle));
                        self.pending.rescanned(input.path, delay);
                    }
                    None => {}
                }
            }
        }
    }

    fn owns(&self, path: &Path) -> bool {
        self.config.shard.is_none_or(|s| s.owns(path))
    }

    /// An event named `path`: a file is (re)scheduled, a new directory scanned.
    fn touched(&mut self, path: &Path) {
        let Some((root, path)) = self.local(path) else {
            return;
        };
        if !admits(&self.config.selection, &root, &path) {
            return;
        }
        match std::fs::symlink_metadata(&path) {
            // Created or moved in with files already inside, before its watch was added.
            Ok(m) if m.is_dir() && self.config.selection.recursive => {
                self.scan(Some(&path), self.config.settle);
            }
            Ok(m) if m.is_file() && self.owns(&path) => {
                self.pending.touched(path, self.config.settle)
            }
            _ => {}
        }
    }

    /// The root (as given) a watcher's path lies in, the deepest when roots nest, and the
    /// path below that root as a walk of it would name it.
    /// The watched folder `path` (as [`Self::local`] gives it) is below: the closest one.
    fn root_of(&self, path: &Path) -> PathBuf {
        self.config
            .roots
            .iter()
            .filter(|r| path.starts_with(r))
            .max_by_key(|r| r.components().count())
            .cloned()
            .unwrap_or_default()
    }

    fn local(&self, path: &Path) -> Option<(PathBuf, PathBuf)> {
        let (given, rel) = self
            .config
            .roots
            .iter()
            .zip(&self.watched)
            .filter_map(|(given, watched)| Some((given, path.strip_prefix(watched).ok()?)))
            .filter(|(_, rel)| !rel.as_os_str().is_empty())
            .min_by_key(|(_, rel)| rel.components().count())?;
        Some((given.clone(), given.join(rel)))
    }

    fn finished(&mut self, done: Done) {
        // A file still arriving is looked at again later (or at its next event).
        let retry = done
            .deferred
            .then(|| self.config.settle.max(Duration::from_secs(1)));
        self.pending.finished(done.path, retry, self.config.settle);
    }
}
