//! Thin stand-ins for the walker's `Selection`, `walk` and `admits` (branch `h-walk`, see the
//! issue-18 contract) until that branch is merged.

use std::path::Path;

use crate::inputs::Input;

/// Which files below a root a walk picks.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub recursive: bool,
    pub hidden: bool,
}

/// The files below `root` the selection picks.
pub fn walk(root: &Path, sel: &Selection) -> impl Iterator<Item = Input> {
    let (root, sel2) = (root.to_path_buf(), sel.clone());
    walkdir::WalkDir::new(root.clone())
        .follow_links(false)
        .max_depth(if sel.recursive { usize::MAX } else { 1 })
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(move |e| admits(&sel2, &root, e.path()))
        .map(|e| Input {
            path: e.into_path(),
            problem: None,
        })
}

/// Whether a path found below `root` would be picked by [`walk`].
pub fn admits(sel: &Selection, root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    sel.hidden
        || !rel
            .iter()
            .any(|c| c.to_str().is_some_and(|c| c.starts_with('.')))
}
