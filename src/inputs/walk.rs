//! One walker for directories (`-r`) and glob patterns: ripgrep's `ignore` walker, sorted by
//! name (deterministic for `--shard`), streaming (one directory's entries in memory at a time),
//! never following a symbolic link (so a link loop cannot make it run for ever). Every error it
//! meets becomes an input with a problem: a failure record naming the path.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};
use ignore::{DirEntry, WalkBuilder};

use super::input::{Input, Problem};
use super::select::{IGNORE_FILE, Selection};

/// The files below `root` that `sel` takes, in name order; `root` itself when it is a file.
pub fn walk(root: &Path, sel: &Selection) -> Walk {
    Walk::new(root.to_path_buf(), sel, None)
}

/// A walk in progress: yields [`Input`]s as it finds them.
pub struct Walk {
    inner: ignore::Walk,
    glob: Option<Arc<Glob>>,
    /// The root as the found paths show it: what `--move-to` keeps the tree below.
    base: PathBuf,
}

impl Walk {
    fn new(root: PathBuf, sel: &Selection, glob: Option<Arc<Glob>>) -> Walk {
        let mut b = WalkBuilder::new(&root);
        b.standard_filters(false)
            .follow_links(false)
            .add_custom_ignore_filename(IGNORE_FILE)
            .sort_by_file_name(|a, b| a.cmp(b));
        if let Some(g) = &glob
            && let Some(depth) = g.depth.filter(|_| !sel.recursive)
        {
            b.max_depth(Some(depth));
        }
        let (keep_sel, keep_glob, keep_root) = (sel.clone(), glob.clone(), root.clone());
        b.filter_entry(move |e| keeps(&keep_sel, keep_glob.as_deref(), &keep_root, e));
        let base = match &glob {
            Some(g) => g.shown(&root).to_path_buf(),
            None => root,
        };
        Walk {
            inner: b.build(),
            glob,
            base,
        }
    }

    fn shown(&self, path: PathBuf) -> PathBuf {
        match &self.glob {
            Some(g) => g.shown(&path).to_path_buf(),
            None => path,
        }
    }
}

impl Iterator for Walk {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        loop {
            let entry = match self.inner.next()? {
                Ok(e) => e,
                Err(e) => return Some(walk_error(e)),
            };
            let Some(kind) = entry.file_type() else {
                continue; // stdin; never walked
            };
            let depth = entry.depth();
            let path = self.shown(entry.into_path());
            if let Some(g) = &self.glob
                && !(depth > 0 && g.takes(&path, depth, kind.is_dir()))
            {
                continue;
            }
            if kind.is_symlink() {
                // Not followed: a link can lead out of the tree or round in a loop. Said, so a
                // file reached only by a link is not missed silently.
                tracing::warn!(
                    "{}: a symbolic link found in a walk is not followed; name it (or its target) to upload it",
                    crate::redact::for_terminal(&path.display().to_string())
                );
                return Some(Input::link(path));
            }
            if kind.is_file() || (kind.is_dir() && self.glob.is_some() && depth > 0) {
                // A directory a glob matches (without -r) gets its own "pass -r" record.
                if kind.is_dir() && self.glob.as_ref().is_some_and(|g| g.recursive) {
                    continue;
                }
                return Some(Input::found(path, &self.base));
            }
        }
    }
}

/// The walker's filter: entries below the root that the name rules skip, and directories a glob
/// cannot match inside, are never entered.
fn keeps(sel: &Selection, glob: Option<&Glob>, root: &Path, e: &DirEntry) -> bool {
    if e.depth() == 0 {
        return true;
    }
    let is_dir = e.file_type().is_some_and(|t| t.is_dir());
    let rel = e.path().strip_prefix(root).unwrap_or(e.path());
    if sel.skips(rel, is_dir) {
        return false;
    }
    match glob {
        Some(g) if is_dir => g.may_enter(g.shown(e.path()), e.depth()),
        _ => true,
    }
}

/// A walk error as an input: the path it names (or the walk's root) and what happened.
fn walk_error(e: ignore::Error) -> Input {
    let path = error_path(&e).unwrap_or_default();
    let message = match &e {
        ignore::Error::Loop { ancestor, child } => format!(
            "{} leads back to {}: a file-system loop, not walked",
            child.display(),
            ancestor.display()
        ),
        _ => format!("the walk could not read it: {}", io_message(&e)),
    };
    Input::failed(path, Problem::Walk(message))
}

fn error_path(e: &ignore::Error) -> Option<PathBuf> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errs) => errs.iter().find_map(error_path),
        _ => None,
    }
}

/// The error without the path (the record carries the path).
fn io_message(e: &ignore::Error) -> String {
    match e {
        ignore::Error::WithPath { err, .. }
        | ignore::Error::WithDepth { err, .. }
        | ignore::Error::WithLineNumber { err, .. } => io_message(err),
        other => other.to_string(),
    }
}

/// A glob pattern: the directory its literal part names is walked, and what is found below it
/// is matched against the whole pattern (`*` does not cross `/`; `**` does).
pub(super) struct Glob {
    matcher: GlobMatcher,
    /// The number of path components after the literal part; `None` with a `**`.
    depth: Option<usize>,
    recursive: bool,
    /// A pattern with no directory part walks `.`; its matches are shown without `./`.
    strip_dot: bool,
}

/// Characters that make an argument a glob pattern.
pub(super) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Walks the files `pattern` matches (with `-r`, also the files inside the directories it
/// matches); `None` when its literal part names no directory. A pattern that cannot be parsed
/// is an error for a record.
pub(super) fn walk_glob(pattern: &str, sel: &Selection) -> Result<Option<Walk>, String> {
    let path = Path::new(pattern);
    let mut prefix = PathBuf::new();
    let mut rest = 0;
    let mut starred = false;
    for c in path.components() {
        let text = c.as_os_str().to_string_lossy();
        if rest == 0 && !has_glob(&text) {
            prefix.push(c);
            continue;
        }
        rest += 1;
        starred |= matches!(c, Component::Normal(_)) && text.contains("**");
    }
    let strip_dot = prefix.as_os_str().is_empty();
    let root = if strip_dot {
        PathBuf::from(".")
    } else {
        prefix
    };
    let matcher = GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| e.kind().to_string())?
        .compile_matcher();
    let glob = Glob {
        matcher,
        depth: (!starred).then_some(rest),
        recursive: sel.recursive,
        strip_dot,
    };
    if !root.is_dir() {
        return Ok(None);
    }
    Ok(Some(Walk::new(root, sel, Some(Arc::new(glob)))))
}

impl Glob {
    fn shown<'a>(&self, path: &'a Path) -> &'a Path {
        match path.strip_prefix(".") {
            Ok(p) if self.strip_dot => p,
            _ => path,
        }
    }

    /// Whether a directory at `depth` below the literal part may hold a match.
    fn may_enter(&self, dir: &Path, depth: usize) -> bool {
        match self.depth {
            None => true,
            Some(n) if depth < n => true,
            // Entered only below a matched directory (`-r`): everything inside is taken.
            Some(n) if depth > n => true,
            // Without -r the depth limit keeps the walk out; a match is still listed.
            Some(_) => !self.recursive || self.matcher.is_match(dir),
        }
    }

    /// Whether an entry at `path` is taken: it matches, or (`-r`) a directory above it does.
    fn takes(&self, path: &Path, depth: usize, is_dir: bool) -> bool {
        if self.matcher.is_match(path) {
            return true;
        }
        if !self.recursive || is_dir {
            return false;
        }
        match self.depth {
            Some(n) => depth > n,
            None => path
                .ancestors()
                .skip(1)
                .take(depth.saturating_sub(1))
                .any(|a| self.matcher.is_match(a)),
        }
    }
}
