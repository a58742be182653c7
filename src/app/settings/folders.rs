//! The folders a run reads and writes: what a walk takes, the state directory, and where a source
//! file goes afterwards (`--move-to`, `--remove-source-files`, `--failed-to`), each kept out of
//! what the run uploads.

use super::super::cli::UploadArgs;
use super::super::self_feeding;
use super::values::non_empty;
use crate::error::{Error, Result};
use crate::{moves, state};

/// The walk filters: `--hidden`, `--include`, `--exclude` and `-r`.
pub fn selection(args: &UploadArgs) -> Result<crate::inputs::Selection> {
    crate::inputs::Selection::new(
        args.hidden,
        args.include.clone(),
        args.exclude.clone(),
        args.recursive,
    )
}

/// What to do with a source file after its upload: `--move-to` or `--remove-source-files`.
pub(super) fn after_upload(args: &UploadArgs) -> Result<moves::After> {
    if (args.move_to.is_some() || args.remove_source_files) && args.no_state {
        return Err(Error::config(
            "--move-to and --remove-source-files need the state store (they act only on what it journaled); drop --no-state",
        ));
    }
    check_not_fed_back(args)?;
    Ok(match (&args.move_to, args.remove_source_files) {
        (Some(dir), _) => moves::After::MoveTo(dir.clone()),
        (None, true) => moves::After::Remove,
        (None, false) => moves::After::Keep,
    })
}

/// Neither the `--move-to` or `--failed-to` folder nor the state directory may be where the inputs reach: moved
/// files would be uploaded again, and the store's own files would fail validation every run.
fn check_not_fed_back(args: &UploadArgs) -> Result<()> {
    let state = (!args.no_state)
        .then(|| state_location(&args.settings.webhook.state))
        .flatten()
        .and_then(|at| at.dir().map(std::path::Path::to_path_buf));
    let targets = [
        (
            args.move_to.clone(),
            "--move-to",
            "moved files would be uploaded again",
        ),
        (
            args.failed_to.clone(),
            "--failed-to",
            "files set aside would be tried again",
        ),
        (
            state,
            "the state directory (--state-dir, GCUPLOAD_STATE_DIR)",
            "its database and lock files would be read as uploads on every run",
        ),
    ];
    for (dir, what, why) in targets {
        let Some(dir) = dir else { continue };
        if let Some(input) =
            self_feeding::input_reaching(&args.files, args.recursive, args.hidden, &dir)
        {
            return Err(Error::config(format!(
                "{what} {} is inside the input {}: {why}; choose a directory outside what the run uploads",
                dir.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Where the state store is: `--state-url` (a database several hosts share), else the state
/// directory.
pub fn state_location(s: &super::super::cli::StateArgs) -> Option<state::Location> {
    match non_empty(&s.state_url) {
        Some(url) => Some(state::Location::Url(url.to_string())),
        None => state_dir(s).map(state::Location::Dir),
    }
}

/// `--state-dir` (or its former name `--outbox`), or the user's state directory.
pub fn state_dir(s: &super::super::cli::StateArgs) -> Option<std::path::PathBuf> {
    s.state_dir
        .clone()
        .or_else(|| s.outbox.clone())
        .or_else(state::default_dir)
}
