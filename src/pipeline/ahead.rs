//! The stamp check of a file waiting for a slot. A file asks the journal whether its stamp names
//! a completed upload as it starts to wait for one of the `--jobs` slots, so the query's round
//! trip is paid while the slots are busy with the platform, not by a slot. The answer is used
//! only if the file still has that stamp when its turn comes; otherwise it is asked again.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use super::job::state_error;
use super::stages::Pipeline;
use crate::error::Result;
use crate::inputs::Input;
use crate::state::{Remembered, Store};
use crate::validate;

/// A stamp check under way: started before the file waits for its slot (so files still take
/// their slots in the input's order), answered by the time the slot is free.
pub(super) struct Ahead(Option<tokio::task::JoinHandle<Option<Looked>>>);

/// What the journal said of a file's stamp, and the stamp it was asked about.
struct Looked {
    stamp: String,
    found: Result<Option<Remembered>>,
}

impl Pipeline {
    /// Starts the stamp check on a blocking thread, ahead of the file's turn. It finds nothing
    /// when the file is not to be skipped by its stamp (no journal, `--force`, a dry run) or
    /// has no stamp to ask about, nor when the run is stopping (the file will not start).
    pub(super) fn look_ahead(&self, input: &Input) -> Ahead {
        let ask = self.stamp_query(&input.path);
        let Some(ask) = ask.filter(|_| !self.stop.is_cancelled()) else {
            return Ahead(None);
        };
        Ahead(Some(tokio::task::spawn_blocking(move || {
            let (_, stamp, found) = ask.check()?;
            if matches!(found, Ok(Some(_))) {
                let file = ask.path.display();
                tracing::debug!(%file, "its stamp names a completed upload (asked while it waits for its turn)");
            }
            Some(Looked { stamp, found })
        })))
    }

    /// The journal's completed upload of this file, found by its stamp without reading it:
    /// the answer `ahead` got when `meta` (the file now) has the stamp it asked about, or a new
    /// answer (off the async threads, with a fresh `stat`).
    pub(super) async fn remembered(
        &self,
        path: &Path,
        ahead: Ahead,
        meta: Option<Metadata>,
    ) -> Result<Option<(Remembered, Metadata)>> {
        let Some(ask) = self.stamp_query(path) else {
            return Ok(None);
        };
        let looked = match ahead.0 {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        if let (Some(looked), Some(meta)) = (looked, meta.filter(Metadata::is_file))
            && validate::stamp(&meta).as_ref() == Some(&looked.stamp)
        {
            return Ok(looked.found?.zip(Some(meta)));
        }
        tokio::task::spawn_blocking(move || match ask.check() {
            Some((meta, _, found)) => Ok(found?.zip(Some(meta))),
            None => Ok(None),
        })
        .await
        .unwrap_or(Ok(None))
    }

    /// What a stamp check of `path` asks, when there is one to make.
    fn stamp_query(&self, path: &Path) -> Option<StampQuery> {
        let store = self
            .journal
            .as_ref()
            .filter(|_| !self.force && !self.dry_run)?;
        Some(StampQuery {
            store: store.clone(),
            path: path.to_path_buf(),
            file_name: validate::file_name_of(path).ok()?,
            route: self.route_name(),
            target: self.route.target(),
        })
    }
}

/// A stamp check's question, owned, for a blocking thread.
struct StampQuery {
    store: Store,
    path: PathBuf,
    file_name: String,
    route: &'static str,
    target: String,
}

impl StampQuery {
    /// Blocks: the file's `stat`, its stamp, and the journal's answer for that stamp; `None`
    /// when the path is not a regular file or has no stamp.
    fn check(&self) -> Option<(Metadata, String, Result<Option<Remembered>>)> {
        let meta = std::fs::metadata(&self.path)
            .ok()
            .filter(Metadata::is_file)?;
        let stamp = validate::stamp(&meta)?;
        let found = self
            .store
            .remembered(self.route, &self.target, &self.file_name, &stamp)
            .map_err(state_error);
        Some((meta, stamp, found))
    }
}
