//! What can go wrong with the state store, with what to do about it.

use std::path::PathBuf;

/// What went wrong with the state store, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the state directory {path} cannot be used: {why}")]
    Directory { path: PathBuf, why: String },
    #[error("the state database {path} cannot be used: {why}")]
    Database { path: PathBuf, why: String },
    #[error("the state store {path} failed: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "journal row {id} is no longer held by this run: another run took it over after this one stalled past its lease"
    )]
    Lost { id: i64 },
    #[error(
        "the state store {path} has schema version {found}, newer than this gcupload knows ({known}); upgrade gcupload"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;
