//! One input of a run: a path to upload, where it came from, or what is wrong with it.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Rule};

/// How an input came into the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Named on the command line or in a `--from` list: taken as given, never filtered; a file
    /// still being written is an error.
    Named,
    /// Found by a walk or a glob: filtered, and a file still being written is deferred.
    Found,
    /// A symbolic link a walk found: not followed, nothing sent, counted in the run's summary
    /// (the walker names it in a warning).
    Link,
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
    /// The folder a walk found it under (a `-r` root, a glob's literal head, a watched folder):
    /// `--move-to` keeps the tree below it.
    pub base: Option<PathBuf>,
}

impl Input {
    pub fn named(path: PathBuf) -> Input {
        Input {
            path,
            problem: None,
            origin: Origin::Named,
            base: None,
        }
    }

    /// Found by a walk below `base`.
    pub fn found(path: PathBuf, base: &Path) -> Input {
        Input {
            path,
            problem: None,
            origin: Origin::Found,
            base: Some(base.to_path_buf()),
        }
    }

    /// A symbolic link found by a walk (never followed).
    pub fn link(path: PathBuf) -> Input {
        Input {
            path,
            problem: None,
            origin: Origin::Link,
            base: None,
        }
    }

    pub fn failed(path: PathBuf, problem: Problem) -> Input {
        Input {
            path,
            problem: Some(problem),
            origin: Origin::Named,
            base: None,
        }
    }

    /// The folders between its base and the file (`a/b` for `in/a/b/x.pdf` found below `in`);
    /// empty for a file named on the command line. Only plain names: nothing can lead out.
    pub fn subfolder(&self) -> PathBuf {
        let Some(base) = &self.base else {
            return PathBuf::new();
        };
        let parent = self.path.parent().unwrap_or(Path::new(""));
        match parent.strip_prefix(base) {
            Ok(rel) if rel.components().all(|c| matches!(c, Component::Normal(_))) => {
                rel.to_path_buf()
            }
            _ => PathBuf::new(),
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
