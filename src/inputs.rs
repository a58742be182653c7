//! Which files a run uploads: paths, directories (`--recursive`), glob patterns, `--from` lists,
//! and the `--shard K/N` slice of them. Expansion is deterministic, so every runner of a sharded
//! migration sees the same list.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `K/N`: the K-th (1-based) of N slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

pub fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not K/N (e.g. 2/8)"))?;
    let k: u32 = k
        .trim()
        .parse()
        .map_err(|_| format!("`{k}` is not a number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("--shard {s}: need 1 <= K <= N"));
    }
    Ok(Shard { k, n })
}

impl Shard {
    /// Whether this shard owns `path`: by a stable hash of the path as given (FNV-1a), so the
    /// split does not depend on the order in which runners list their inputs.
    pub fn owns(&self, path: &Path) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in path.as_os_str().as_encoded_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.n) == u64::from(self.k - 1)
    }
}

/// One input of the run: a path to upload, or what is wrong with what was given (it gets its
/// own failure record; the other inputs go on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub problem: Option<String>,
}

impl Input {
    fn file(path: PathBuf) -> Input {
        Input {
            path,
            problem: None,
        }
    }
}

impl AsRef<Path> for Input {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands the inputs in order. A path that does not exist is kept as given, so it gets its
/// own "not found" record instead of vanishing from the run; so does a glob that cannot be
/// parsed. Only an unreadable `--from` list fails the whole run.
pub fn expand(
    paths: &[PathBuf],
    from: Option<&Path>,
    recursive: bool,
    shard: Option<Shard>,
) -> Result<Vec<Input>> {
    let mut given: Vec<PathBuf> = paths.to_vec();
    if let Some(list) = from {
        given.extend(read_list(list)?);
    }
    let mut out = Vec::new();
    for p in given {
        let text = p.to_string_lossy().into_owned();
        if p.exists() || !has_glob(&text) {
            push(&mut out, p, recursive);
            continue;
        }
        match glob::glob(&text) {
            Ok(pattern) => {
                let mut matched: Vec<PathBuf> = pattern.filter_map(|m| m.ok()).collect();
                matched.sort();
                if matched.is_empty() {
                    out.push(Input::file(p));
                }
                for m in matched {
                    push(&mut out, m, recursive);
                }
            }
            Err(e) => out.push(Input {
                path: p,
                problem: Some(format!(
                    "`{text}` is neither a file nor a valid glob pattern ({e}); quote it or escape `[`, `*` and `?` with brackets, e.g. `[[]`"
                )),
            }),
        }
    }
    if let Some(s) = shard {
        out.retain(|i| s.owns(&i.path));
    }
    Ok(out)
}

fn push(out: &mut Vec<Input>, p: PathBuf, recursive: bool) {
    if recursive && p.is_dir() {
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&p)
            .follow_links(false)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect();
        files.sort();
        out.extend(files.into_iter().map(Input::file));
    } else {
        out.push(Input::file(p));
    }
}

/// One path per line from a file or `-` (stdin); blank lines are skipped.
fn read_list(list: &Path) -> Result<Vec<PathBuf>> {
    let reader: Box<dyn BufRead> = if list == Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(list)
            .map_err(|e| Error::config(format!("--from {}: {e}", list.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(|e| Error::config(format!("--from {}: {e}", list.display())))?;
        let line = line.trim_end_matches('\r');
        if !line.trim().is_empty() {
            out.push(PathBuf::from(line));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_list() {
        let paths: Vec<PathBuf> = (0..1000)
            .map(|i| PathBuf::from(format!("dir/f{i}.pdf")))
            .collect();
        let mut seen = vec![0; paths.len()];
        for k in 1..=7 {
            let s = Shard { k, n: 7 };
            for (i, p) in paths.iter().enumerate() {
                if s.owns(p) {
                    seen[i] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "each path in exactly one shard"
        );
        assert!(
            parse_shard("0/3").is_err() && parse_shard("4/3").is_err() && parse_shard("x").is_err()
        );
        assert_eq!(parse_shard("2/3"), Ok(Shard { k: 2, n: 3 }));
    }
}
