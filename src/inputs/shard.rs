//! `--shard K/N`: which slice of the inputs this runner owns.

use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
