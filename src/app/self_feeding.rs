//! Inputs that would feed themselves: a `--move-to` folder or a state directory that the run's
//! own inputs reach (a directory walked with `-r`, or a glob whose pattern can match the
//! folder's files: `-r 'i[n]' --move-to in/sent`, `'in/*/*.pdf' --move-to in/sent`). Moved files
//! would be uploaded again; the state store's database and lock files would fail validation on
//! every run. Refused before anything is sent. Judged on the paths as typed and their canonical
//! forms, independently of the walker; `--from` lists are not known in advance and not judged.

use std::path::{Component, Path, PathBuf};

use super::paths::absolute;

/// The first of `inputs` whose files would include what lies directly in `dir` (or below it,
/// for a recursive walk), if any. Without `--hidden` the walk never enters a hidden directory,
/// so a folder below one (the default state directory, `~/.local/state/gcupload`, under a
/// walked home directory) is not reached.
pub fn input_reaching<'a>(
    inputs: &'a [PathBuf],
    recursive: bool,
    hidden: bool,
    dir: &Path,
) -> Option<&'a Path> {
    let target = absolute(dir);
    let walk = Walk { recursive, hidden };
    inputs
        .iter()
        .find(|input| reaches(input, walk, &target))
        .map(PathBuf::as_path)
}

#[derive(Clone, Copy)]
struct Walk {
    recursive: bool,
    hidden: bool,
}

impl Walk {
    /// Whether the walk skips `name` (a hidden file or directory, without `--hidden`).
    fn skips(self, name: &str) -> bool {
        !self.hidden && name.starts_with('.') && name != "." && name != ".."
    }
}

fn reaches(input: &Path, walk: Walk, target: &Path) -> bool {
    let text = input.to_string_lossy();
    if input.exists() || !has_glob(&text) {
        // A directory is walked only with -r; a file is itself.
        let Ok(below) = target.strip_prefix(absolute(input)) else {
            return false;
        };
        let skipped = below
            .components()
            .any(|c| walk.skips(&c.as_os_str().to_string_lossy()));
        return walk.recursive && input.is_dir() && !skipped;
    }
    // The pattern's literal head, resolved as the walk would; the rest is matched by component.
    let components: Vec<Component> = input.components().collect();
    let split = components
        .iter()
        .position(|c| has_glob(&c.as_os_str().to_string_lossy()))
        .unwrap_or(components.len());
    let head: PathBuf = components[..split].iter().collect();
    let Ok(rest) = target.strip_prefix(absolute(&head)) else {
        return false;
    };
    let rest: Vec<String> = rest
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let pattern: Vec<String> = components[split..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    pattern_reaches(&pattern, &rest, walk)
}

/// Whether the pattern components can match `rest` (the target below the pattern's head) or
/// something directly inside it; a match of the target or an ancestor counts with `-r`.
fn pattern_reaches(pattern: &[String], rest: &[String], walk: Walk) -> bool {
    for (i, p) in pattern.iter().enumerate() {
        if p == "**" {
            return !rest[i.min(rest.len())..].iter().any(|n| walk.skips(n));
        }
        match rest.get(i) {
            Some(name) if walk.skips(name) && !p.starts_with('.') => return false,
            Some(name) if component_matches(p, name) => {}
            Some(_) => return false,
            // One level below the target: a file in it, if the pattern ends here.
            None => return i == rest.len() && i + 1 == pattern.len(),
        }
    }
    walk.recursive
}

fn component_matches(pattern: &str, name: &str) -> bool {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .is_ok_and(|g| g.compile_matcher().is_match(name))
}

/// As the walker's glob treats them.
fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(inputs: &[&str], recursive: bool, dir: &str, root: &Path) -> bool {
        reach_hidden(inputs, recursive, false, dir, root)
    }

    fn reach_hidden(
        inputs: &[&str],
        recursive: bool,
        hidden: bool,
        dir: &str,
        root: &Path,
    ) -> bool {
        let inputs: Vec<PathBuf> = inputs.iter().map(|i| root.join(i)).collect();
        input_reaching(&inputs, recursive, hidden, &root.join(dir)).is_some()
    }

    #[test]
    fn walked_and_globbed_inputs_reach_folders_inside_them() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("in/sub")).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        assert!(reach(&["in"], true, "in/sent", root));
        assert!(!reach(&["in"], true, "out", root));
        assert!(!reach(&["in"], false, "in/sent", root));
        assert!(reach(&["i[n]"], true, "in/sent", root));
        assert!(!reach(&["i[n]"], false, "in/sent", root));
        assert!(reach(&["in/*/*.pdf"], false, "in/sent", root));
        assert!(!reach(&["in/*.pdf"], false, "in/sent", root));
        assert!(reach(&["in/*"], true, "in/sent", root));
        assert!(reach(&["**/*.pdf"], false, "in/sent", root));
        assert!(!reach(&["o*/*.pdf"], false, "in/sent", root));
        // A hidden folder is reached only when the walk enters hidden ones (--hidden): the
        // default state directory below a walked home directory is not fed back.
        assert!(!reach(&["*"], true, ".state", root));
        assert!(reach_hidden(&["*"], true, true, ".state", root));
        assert!(!reach(&["."], true, ".local/state/gcupload", root));
        assert!(reach_hidden(
            &["."],
            true,
            true,
            ".local/state/gcupload",
            root
        ));
        assert!(!reach(&["**/*.pdf"], false, "in/.sent", root));
        assert!(reach(&["in/.s*/*.pdf"], false, "in/.sent", root));
    }
}
