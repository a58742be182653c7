//! Which files a run uploads: paths as named, directories (`--recursive`) and glob patterns
//! walked with the [`Selection`]'s filters, `--from` lists, and the `--shard K/N` slice of them.
//! Expansion streams (a walk yields files as it finds them) and is deterministic (name order),
//! so every runner of a sharded migration sees the same list.

mod input;
mod list;
mod select;
mod shard;
mod walk;

use std::path::{Path, PathBuf};

pub use input::{Input, Inputs, Origin, Problem};
pub use select::{IGNORE_FILE, Selection, admits, in_progress};
pub use shard::{Shard, parse_shard};
pub use walk::{Walk, walk};

use crate::error::Result;

/// Expands the inputs in order, lazily. A path that does not exist is kept as given, so it gets
/// its own "not found" record instead of vanishing from the run; so does a glob that matches
/// nothing or cannot be parsed. Only a `--from` list that cannot be opened fails the whole run.
pub fn expand(
    paths: &[PathBuf],
    from: Option<&Path>,
    from0: bool,
    sel: &Selection,
    shard: Option<Shard>,
) -> Result<Inputs> {
    let listed = from.map(|l| list::open(l, from0)).transpose()?;
    let named: Vec<Input> = paths.iter().cloned().map(Input::named).collect();
    let sel = sel.clone();
    let all = named
        .into_iter()
        .chain(listed.into_iter().flatten())
        .flat_map(move |i| one(i, &sel))
        .filter(move |i| shard.is_none_or(|s| s.owns(&i.path)));
    Ok(Box::new(all))
}

/// What one named input stands for: itself, or the files a walk or glob finds for it.
fn one(input: Input, sel: &Selection) -> Inputs {
    let once = |i: Input| -> Inputs { Box::new(std::iter::once(i)) };
    if input.problem.is_some() {
        return once(input);
    }
    let p = &input.path;
    if sel.recursive && p.is_dir() {
        return Box::new(walk(p, sel));
    }
    let text = p.to_string_lossy().into_owned();
    if p.exists() || !walk::has_glob(&text) {
        return once(input);
    }
    match walk::walk_glob(&text, sel) {
        Ok(found) => {
            let mut found = found.into_iter().flatten().peekable();
            if found.peek().is_none() {
                once(input)
            } else {
                Box::new(found)
            }
        }
        Err(why) => once(Input::failed(input.path, Problem::Pattern(why))),
    }
}
