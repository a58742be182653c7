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
    /// The PostgreSQL store (`url` shown without its password).
    #[error("the state database {url} failed: {why}")]
    Server { url: String, why: String },
    #[error(
        "this gcupload was built without PostgreSQL (feature `postgres`): the state URL {url} cannot be used; use --state-dir"
    )]
    NoPostgres { url: String },
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

impl StateError {
    /// Whether the store is a database server (a connection or server fault), not a directory
    /// of this host: what to fix differs.
    pub fn is_server(&self) -> bool {
        matches!(
            self,
            StateError::Server { .. } | StateError::NoPostgres { .. }
        )
    }
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;
