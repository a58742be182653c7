//! File events from the `notify` crate, reduced to what the watch loop acts on, through a
//! bounded queue: when it is full the events are dropped and the loop rescans instead, so
//! memory stays bounded however fast files arrive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};

use crate::error::{Error, Result};

/// What an event means to the watch loop.
#[derive(Debug)]
pub(super) enum Change {
    /// Written, created or renamed into place: take it once it has been quiet for a while.
    Touched(PathBuf),
    /// Deleted or renamed away.
    Gone(PathBuf),
}

/// The queue's far end: changes, and a flag raised when some were lost.
pub(super) struct Events {
    pub(super) changes: mpsc::Receiver<Change>,
    pub(super) lost: Arc<Lost>,
    /// Kept alive for as long as the events are wanted.
    _watcher: Box<dyn Watcher + Send>,
}

/// Raised when events were lost (the queue was full, or the kernel's overflowed): a rescan.
#[derive(Default)]
pub(super) struct Lost {
    flag: AtomicBool,
    wake: Notify,
}

impl Lost {
    fn raise(&self) {
        if !self.flag.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Waits until events were lost, and lowers the flag.
    pub(super) async fn raised(&self) {
        loop {
            if self.flag.swap(false, Ordering::AcqRel) {
                return;
            }
            self.wake.notified().await;
        }
    }
}

/// Starts watching `roots`: by kernel events, or by polling every `poll`.
pub(super) fn start(
    roots: &[PathBuf],
    recursive: bool,
    poll: Option<Duration>,
    queue: usize,
) -> Result<Events> {
    let (tx, changes) = mpsc::channel(queue.max(1));
    let lost = Arc::new(Lost::default());
    let on_event = {
        let lost = lost.clone();
        move |event: notify::Result<Event>| match event {
            Ok(event) => forward(event, &tx, &lost),
            Err(e) => {
                tracing::warn!("file events: {e}; rescanning");
                lost.raise();
            }
        }
    };
    let mut watcher: Box<dyn Watcher + Send> = match poll {
        Some(every) => Box::new(
            notify::PollWatcher::new(
                on_event,
                notify::Config::default().with_poll_interval(every),
            )
            .map_err(|e| watch_error(None, &e))?,
        ),
        None => Box::new(notify::recommended_watcher(on_event).map_err(|e| watch_error(None, &e))?),
    };
    let mode = if recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    for root in roots {
        watcher
            .watch(root, mode)
            .map_err(|e| watch_error(Some(root), &e))?;
    }
    Ok(Events {
        changes,
        lost,
        _watcher: watcher,
    })
}

fn watch_error(root: Option<&Path>, e: &notify::Error) -> Error {
    let what = root.map_or("file events".to_string(), |r| r.display().to_string());
    let hint = if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
        "raise fs.inotify.max_user_watches (sysctl), or watch with --poll"
    } else {
        "check that it is a directory you can read, or watch with --poll"
    };
    Error::config(format!("watch {what}: {e}; {hint}"))
}

/// Queues what an event means; when the queue is full, drops it and asks for a rescan.
fn forward(event: Event, tx: &mpsc::Sender<Change>, lost: &Lost) {
    if event.need_rescan() {
        lost.raise();
    }
    let mut paths = event.paths.into_iter();
    let changes: Vec<Change> = match event.kind {
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            paths.map(Change::Gone).collect()
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            let from = paths.next().map(Change::Gone);
            from.into_iter().chain(paths.map(Change::Touched)).collect()
        }
        // Reads (ours included) and attribute changes say nothing about the content.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            paths.map(Change::Touched).collect()
        }
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => Vec::new(),
        _ => paths.map(Change::Touched).collect(),
    };
    for change in changes {
        if tx.try_send(change).is_err() {
            lost.raise();
        }
    }
}
