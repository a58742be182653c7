//! One input of a run: a path to upload, where it came from, or what is wrong with it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Rule};

/// How an input came into the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Named on the command line or in a `--from` list: taken as given, never filtered; a file
    /// still being written is an error.
    Named,
    /// Found by a walk or a glob: filtered, and a file still being written is deferred.
    Found,
}

/// What is wrong with an input that is not a file to upload; each gets its own failure record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A glob pattern that cannot be parsed.
    Pattern(String),
    /// A directory (or entry) the walk could not read.
    Walk(String),
    /// The `--from` list broke off.
    List(String),
}

/// One input of the run: a path to upload, or what is wrong with what was given (it gets its
/// own failure record; the other inputs go on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub problem: Option<Problem>,
    pub origin: Origin,
}

impl Input {
    pub fn named(path: PathBuf) -> Input {
        Input {
            path,
            problem: None,
            origin: Origin::Named,
        }
    }

    pub fn found(path: PathBuf) -> Input {
        Input {
            path,
            problem: None,
            origin: Origin::Found,
        }
    }

    pub fn failed(path: PathBuf, problem: Problem) -> Input {
        Input {
            path,
            problem: Some(problem),
            origin: Origin::Named,
        }
    }

    /// The failure its problem is, if it has one.
    pub fn error(&self) -> Option<Error> {
        Some(match self.problem.as_ref()? {
            Problem::Pattern(message) => Error::Pattern {
                pattern: self.path.display().to_string(),
                message: message.clone(),
            },
            Problem::Walk(message) => Error::invalid(Rule::Unreadable, message.clone()),
            Problem::List(message) => Error::config(message.clone()),
        })
    }
}

impl AsRef<Path> for Input {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The inputs of a run, as they are found.
pub type Inputs = Box<dyn Iterator<Item = Input> + Send>;
