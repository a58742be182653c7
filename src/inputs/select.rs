//! Which files a walk takes: the default skips (hidden names, names of downloads and edits in
//! progress), `--exclude`, `--include` and `.gcuploadignore` files. One rule set, for a walk and
//! for a single path a file event names ([`admits`]), so a watch and a run pick the same files.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// The ignore file honoured in every walked directory (gitignore syntax).
pub const IGNORE_FILE: &str = ".gcuploadignore";

/// The resolved walk filters of a run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Take hidden files and directories (`.name`) too.
    pub hidden: bool,
    /// When not empty, a walk takes only the files one of these matches.
    pub include: Vec<String>,
    /// A walk skips the files and directories any of these matches.
    pub exclude: Vec<String>,
    /// Walk the directories given (and those a glob matches).
    pub recursive: bool,
    compiled: Arc<Compiled>,
}

#[derive(Debug, Default)]
struct Compiled {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

/// One `--include`/`--exclude` glob. Without a `/` it matches a name at any depth; with one, the
/// path below the walked directory. A trailing `/` matches directories only.
#[derive(Debug)]
struct Pattern {
    matcher: GlobMatcher,
    on_path: bool,
    dir_only: bool,
}

impl Pattern {
    fn new(flag: &str, text: &str) -> Result<Pattern> {
        let dir_only = text.len() > 1 && text.ends_with('/');
        let body = text.trim_end_matches('/');
        let body = body.strip_prefix('/').unwrap_or(body);
        let glob = GlobBuilder::new(body)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::Pattern {
                pattern: text.to_string(),
                message: format!("{flag}: {}", e.kind()),
            })?;
        Ok(Pattern {
            matcher: glob.compile_matcher(),
            on_path: body.contains('/'),
            dir_only,
        })
    }

    fn matches(&self, rel: &Path, is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        if self.on_path {
            self.matcher.is_match(rel)
        } else {
            rel.file_name().is_some_and(|n| self.matcher.is_match(n))
        }
    }
}

impl Selection {
    /// Compiles the patterns; a bad one is refused with a hint on quoting.
    pub fn new(
        hidden: bool,
        include: Vec<String>,
        exclude: Vec<String>,
        recursive: bool,
    ) -> Result<Selection> {
        let compile = |flag: &str, list: &[String]| -> Result<Vec<Pattern>> {
            list.iter().map(|p| Pattern::new(flag, p)).collect()
        };
        let compiled = Compiled {
            include: compile("--include", &include)?,
            exclude: compile("--exclude", &exclude)?,
        };
        Ok(Selection {
            hidden,
            include,
            exclude,
            recursive,
            compiled: Arc::new(compiled),
        })
    }

    /// Whether the name rules skip an entry found at `rel` below the walked directory (the
    /// `.gcuploadignore` files are the walker's part).
    pub(super) fn skips(&self, rel: &Path, is_dir: bool) -> bool {
        let Some(name) = rel.file_name() else {
            return false;
        };
        if !self.hidden && is_hidden(name) {
            return true;
        }
        if !is_dir && in_progress(name) {
            return true;
        }
        if self.compiled.exclude.iter().any(|p| p.matches(rel, is_dir)) {
            return true;
        }
        !is_dir
            && !self.compiled.include.is_empty()
            && !self.compiled.include.iter().any(|p| p.matches(rel, false))
    }
}

/// `.name`: hidden on unix, and what editors and version control keep beside the files.
fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Names that downloads, copies and editors give a file while they write it: the file under its
/// final name comes later (by a rename).
pub fn in_progress(name: &OsStr) -> bool {
    let name = name.to_string_lossy().to_lowercase();
    const SUFFIXES: [&str; 5] = [".part", ".partial", ".crdownload", ".tmp", ".swp"];
    SUFFIXES.iter().any(|s| name.ends_with(s))
        || name.starts_with("~$")
        || (name.starts_with(".~lock.") && name.ends_with('#'))
}

/// Whether a walk of `root` with `sel` would take `path` (a file or directory below `root`, e.g.
/// named by a file event): the same name rules and `.gcuploadignore` files of every directory
/// from `root` down. Symbolic links are never taken.
pub fn admits(sel: &Selection, root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if meta.file_type().is_symlink() {
        return false;
    }
    let parts: Vec<&OsStr> = rel.iter().collect();
    let mut ignores = vec![ignore_file(root)];
    let (mut here, mut here_rel) = (root.to_path_buf(), PathBuf::new());
    for (i, part) in parts.iter().enumerate() {
        here.push(part);
        here_rel.push(part);
        let is_dir = i + 1 < parts.len() || meta.is_dir();
        if sel.skips(&here_rel, is_dir) || ignored(&ignores, &here, is_dir) {
            return false;
        }
        if i + 1 < parts.len() {
            ignores.push(ignore_file(&here));
        }
    }
    !parts.is_empty()
}

/// The `.gcuploadignore` of `dir`, as the walker reads it.
fn ignore_file(dir: &Path) -> Gitignore {
    let mut b = GitignoreBuilder::new(dir);
    let file = dir.join(IGNORE_FILE);
    if file.is_file()
        && let Some(e) = b.add(&file)
    {
        tracing::warn!("{}: {e}", file.display());
    }
    b.build().unwrap_or_else(|_| Gitignore::empty())
}

/// The deepest ignore file with a say decides, as in the walker.
fn ignored(stack: &[Gitignore], path: &Path, is_dir: bool) -> bool {
    for gi in stack.iter().rev() {
        match gi.matched(path, is_dir) {
            Match::None => continue,
            Match::Ignore(_) => return true,
            Match::Whitelist(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_progress_names() {
        for n in [
            "a.part",
            "a.PDF.partial",
            "x.crdownload",
            "y.tmp",
            ".z.swp",
            "~$report.docx",
            ".~lock.report.odt#",
        ] {
            assert!(in_progress(OsStr::new(n)), "{n}");
        }
        for n in ["a.pdf", "party.pdf", "tmp.pdf", "~report.pdf", ".~lock.x"] {
            assert!(!in_progress(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn patterns_match_names_anywhere_and_paths_below_the_root() {
        let sel = Selection::new(
            false,
            vec!["*.pdf".into()],
            vec!["draft-*".into(), "old/".into(), "a/b/*.pdf".into()],
            true,
        )
        .unwrap();
        let skips = |p: &str, d: bool| sel.skips(Path::new(p), d);
        assert!(!skips("x/y/report.pdf", false));
        assert!(skips("x/y/report.png", false), "not included");
        assert!(skips("x/draft-1.pdf", false), "excluded by name");
        assert!(skips("x/old", true), "a directory pattern");
        let dirs_only = Selection::new(false, vec![], vec!["old/".into()], true).unwrap();
        assert!(!dirs_only.skips(Path::new("x/old"), false), "not a file");
        assert!(skips("a/b/c.pdf", false) && !skips("z/a/b/c.pdf", false));
        assert!(skips("x/.git", true) && skips(".hidden.pdf", false));
        assert!(Selection::new(false, vec!["a[".into()], vec![], false).is_err());
    }
}
