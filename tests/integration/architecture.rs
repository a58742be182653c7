//! The dependency rule, checked on the source: `app → pipeline → stages → foundation`, never
//! back; no module imports one that imports it back; only `app` sees clap; the sandbox and the
//! client import nothing of each other (only `app` starts the sandbox).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the top of the house to its foundation. A module may only import
/// modules after it in this list.
const LAYERS: &[&str] = &[
    "app",
    "watch",
    "pipeline",
    "webhook",
    "state",
    "audit",
    "moves",
    "transfer",
    "routes",
    "api",
    "auth",
    "config",
    "validate",
    "inputs",
    "arrival",
    "progress",
    "limiter",
    "retry",
    "http",
    "error_reporting",
    "error",
    "redact",
    "secret",
    "colour",
];

/// A module path (`["routes", "guest", "socket"]`) and the source lines that are code.
struct Module {
    path: Vec<String>,
    is_dir_root: bool,
    code: String,
}

fn modules(src: &Path) -> Vec<Module> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs")
                && let Some(m) = module(src, &p)
            {
                out.push(m);
            }
        }
    }
    out
}

fn module(src: &Path, file: &Path) -> Option<Module> {
    let rel: Vec<String> = file
        .strip_prefix(src)
        .unwrap()
        .with_extension("")
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    // The crate root and the build script declare modules; they import nothing.
    if matches!(rel.as_slice(), [f] if f == "lib" || f == "main" || f == "build") {
        return None;
    }
    let is_dir_root = rel.last().is_some_and(|l| l == "mod");
    let path = if is_dir_root {
        rel[..rel.len() - 1].to_vec()
    } else {
        rel
    };
    let text = std::fs::read_to_string(file).unwrap();
    // Unit tests sit in an inline `mod tests` at the end (under a `#[cfg(…test…)]`), where
    // `super` is the file itself.
    let text = match text.find("\nmod tests {") {
        Some(i) => {
            let attr = text[..i]
                .rfind("\n#[cfg(")
                .filter(|a| !text[*a..i].contains("\n\n"));
            &text[..attr.unwrap_or(i)]
        }
        None => &text[..],
    };
    let code = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    Some(Module {
        path,
        is_dir_root,
        code,
    })
}

/// Every path the code names through `crate::` or `super::`, and (in a directory's `mod.rs`)
/// through a child module's name, resolved to absolute segments.
fn referenced_paths(m: &Module, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let code = m.code.as_str();
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let starts_word = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if starts_word && let Some((base, rest)) = anchor(m, children, &code[i..]) {
            for tail in segments(rest) {
                let mut full = base.clone();
                full.extend(tail);
                out.push(full);
            }
        }
        i += code[i..].chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// The absolute module an occurrence at the start of `text` starts from, and what follows it.
fn anchor<'a>(
    m: &Module,
    children: &BTreeSet<String>,
    text: &'a str,
) -> Option<(Vec<String>, &'a str)> {
    if let Some(rest) = text.strip_prefix("crate::") {
        return Some((Vec::new(), rest));
    }
    if text.starts_with("super::") {
        // `super` of a file module is its parent; of a `mod.rs`, the parent of its directory.
        let mut base = m.path.clone();
        let mut rest = text;
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop()?;
            rest = r;
        }
        return Some((base, rest));
    }
    if m.is_dir_root {
        for c in children {
            if let Some(rest) = text.strip_prefix(c.as_str())
                && rest.starts_with("::")
            {
                return Some((m.path.clone(), text));
            }
        }
    }
    None
}

/// The paths of one `use`-like tail: `a::b`, or `{a, b::c, self}` (first level of a group).
fn segments(text: &str) -> Vec<Vec<String>> {
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            return group[..end]
                .split(',')
                .map(|item| {
                    let mut p = path.clone();
                    p.extend(ident_path(item.trim()));
                    p
                })
                .collect();
        }
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            return vec![path];
        }
        rest = &rest[ident.len()..];
        path.push(ident);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return vec![path],
        }
    }
}

fn ident_path(item: &str) -> Vec<String> {
    item.split("::")
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|s| !s.is_empty() && s != "self")
        .collect()
}

/// The import graph between module files: each module to the modules it names.
/// Each module (as its path) with the modules it imports.
type Edges = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

fn graph(src: &Path) -> (Edges, Vec<Module>) {
    let mods = modules(src);
    let known: BTreeSet<Vec<String>> = mods.iter().map(|m| m.path.clone()).collect();
    let mut edges = BTreeMap::new();
    for m in &mods {
        let children: BTreeSet<String> = known
            .iter()
            .filter(|k| k.len() == m.path.len() + 1 && k.starts_with(&m.path))
            .map(|k| k.last().unwrap().clone())
            .collect();
        let targets: BTreeSet<Vec<String>> = referenced_paths(m, &children)
            .into_iter()
            .filter_map(|p| {
                // The deepest module the path names; the crate root only re-exports.
                (1..=p.len())
                    .rev()
                    .map(|n| p[..n].to_vec())
                    .find(|prefix| known.contains(prefix))
            })
            .filter(|t| *t != m.path)
            .collect();
        edges.insert(m.path.clone(), targets);
    }
    (edges, mods)
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every rule broken in `src`, one line each.
fn violations(src: &Path) -> Vec<String> {
    let (edges, mods) = graph(src);
    let mut bad = Vec::new();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    for (from, targets) in &edges {
        for to in targets {
            let (a, b) = (from[0].as_str(), to[0].as_str());
            if a == b {
                continue;
            }
            let shown = format!("{} imports {}", from.join("::"), to.join("::"));
            match (a, b) {
                ("sandbox", _) => bad.push(format!("{shown}: the sandbox imports no client code")),
                ("app", "sandbox") => {}
                (_, "sandbox") => bad.push(format!("{shown}: only app starts the sandbox")),
                _ => match (rank(a), rank(b)) {
                    (Some(ra), Some(rb)) if rb > ra => {}
                    (Some(_), Some(_)) => bad.push(format!("{shown}: an upward import")),
                    _ => bad.push(format!("{shown}: a module missing from LAYERS")),
                },
            }
        }
    }
    for m in &mods {
        if m.path[0] != "app" && m.code.contains("clap") {
            bad.push(format!(
                "{} names clap: only app sees the command line",
                m.path.join("::")
            ));
        }
    }
    bad.extend(cycles(&edges));
    bad
}

/// Modules that reach themselves through their imports.
fn cycles(edges: &Edges) -> Vec<String> {
    let mut out = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Vec<Vec<String>>> = vec![vec![start.clone()]];
        while let Some(trail) = stack.pop() {
            let last = trail.last().unwrap();
            for next in edges.get(last).into_iter().flatten() {
                if next == start {
                    let names: Vec<String> = trail.iter().map(|p| p.join("::")).collect();
                    out.push(format!(
                        "a cycle: {} -> {}",
                        names.join(" -> "),
                        start.join("::")
                    ));
                } else if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push(t);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn dependencies_point_one_way() {
    let bad = violations(&src_dir());
    assert!(
        bad.is_empty(),
        "the dependency rule is broken:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let (edges, _) = graph(&src_dir());
    let tops: BTreeSet<&str> = edges.keys().map(|p| p[0].as_str()).collect();
    for t in tops {
        assert!(
            t == "sandbox" || LAYERS.contains(&t),
            "{t} is missing from LAYERS"
        );
    }
}

/// The guard itself: a copy of the tree with one upward import added must fail it.
#[test]
fn the_guard_catches_upward_imports_cycles_clap_and_the_sandbox_wall() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&src_dir(), tmp.path());
    assert!(violations(tmp.path()).is_empty());

    let validate = tmp.path().join("validate/mod.rs");
    let text = std::fs::read_to_string(&validate).unwrap();
    std::fs::write(
        &validate,
        format!("use crate::app::cli::UploadArgs;\n{text}"),
    )
    .unwrap();
    let bad = violations(tmp.path());
    assert!(
        bad.iter()
            .any(|b| b.contains("validate imports app::cli: an upward import")),
        "{bad:?}"
    );
    assert!(bad.iter().any(|b| b.starts_with("a cycle")), "{bad:?}");

    std::fs::write(
        &validate,
        format!("fn scan() {{ crate::sandbox::Sandbox::start; }}\n{text}"),
    )
    .unwrap();
    let bad = violations(tmp.path());
    assert!(
        bad.iter()
            .any(|b| b.contains("only app starts the sandbox")),
        "{bad:?}"
    );

    std::fs::write(&validate, format!("use clap::Parser;\n{text}")).unwrap();
    let bad = violations(tmp.path());
    assert!(
        bad.iter().any(|b| b.contains("validate names clap")),
        "{bad:?}"
    );
    std::fs::write(&validate, &text).unwrap();

    let store = tmp.path().join("sandbox/store.rs");
    let original = std::fs::read_to_string(&store).unwrap();
    std::fs::write(&store, format!("use crate::validate::EICAR;\n{original}")).unwrap();
    let bad = violations(tmp.path());
    assert!(
        bad.iter()
            .any(|b| b.contains("the sandbox imports no client code")),
        "{bad:?}"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
