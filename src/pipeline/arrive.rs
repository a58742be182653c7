//! Files still being written: found by a walk or glob, they are deferred (a record, nothing
//! sent, journaled or moved; a later run takes them whole); named explicitly, they fail with the
//! writer named. Checked before anything else (so a file in flight is not even skipped and moved
//! as already sent) and again after validation's read.

use std::fs::Metadata;
use std::time::Duration;

use super::stages::Pipeline;
use crate::arrival::{self, Why};
use crate::error::{Error, Result};
use crate::inputs::{Input, Origin};
use crate::validate::ValidatedFile;

impl Pipeline {
    /// Before the file is read: an open writer, or (found files) younger than `--min-age`;
    /// with what the file's `stat` said (the stamp check compares it with its own).
    pub(super) async fn arriving_before(
        &self,
        input: &Input,
    ) -> Result<(Option<Why>, Option<Metadata>)> {
        let min_age = match input.origin {
            Origin::Found | Origin::Link => self.min_age,
            Origin::Named => Duration::ZERO,
        };
        let path = input.path.clone();
        let (why, meta) = tokio::task::spawn_blocking(move || {
            // A path that cannot be inspected is validation's to report.
            let Ok(meta) = std::fs::metadata(&path) else {
                return (None, None);
            };
            (arrival::check(&path, &meta, min_age).err(), Some(meta))
        })
        .await
        .unwrap_or((None, None));
        Ok((verdict(input, why)?, meta))
    }

    /// After validation's read: the file changed while it was read, or a writer opened it
    /// meanwhile.
    pub(super) async fn arriving_after(
        &self,
        input: &Input,
        file: &ValidatedFile,
    ) -> Result<Option<Why>> {
        let file = file.clone();
        let why = tokio::task::spawn_blocking(move || {
            let Ok(now) = file.current_metadata() else {
                return Some(Why::ChangedWhileRead);
            };
            if arrival::changed(&file.meta, &now) {
                return Some(Why::ChangedWhileRead);
            }
            arrival::check(&file.path, &now, Duration::ZERO).err()
        })
        .await
        .unwrap_or(None);
        verdict(input, why)
    }
}

/// A found file still arriving is deferred; a named one is an error.
pub(super) fn verdict(input: &Input, why: Option<Why>) -> Result<Option<Why>> {
    match (why, input.origin) {
        (None, _) => Ok(None),
        (Some(why), Origin::Found | Origin::Link) => Ok(Some(why)),
        (Some(why), Origin::Named) => Err(Error::StillWriting {
            why: why.to_string(),
        }),
    }
}
