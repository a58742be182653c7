//! One pass over the bytes: the magic bytes checked, SHA-256 (and MD5, XXH3) computed and the
//! EICAR signature looked for, with a fixed buffer whatever the file's size.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::policy::Policy;
use super::rules::check_magic;
use crate::error::{Error, Result, Rule};

/// The EICAR anti-virus test signature: the one piece of "malware" every scanner must flag.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Read size for hashing: big enough to run at hashing speed, small enough to keep memory flat.
pub const CHUNK: usize = 256 * 1024;

/// Finds a byte signature in a stream fed chunk by chunk, across chunk boundaries.
pub struct SignatureScanner {
    finder: memchr::memmem::Finder<'static>,
    tail: Vec<u8>,
    found: bool,
}

impl SignatureScanner {
    pub fn eicar() -> Self {
        SignatureScanner {
            finder: memchr::memmem::Finder::new(EICAR),
            tail: Vec::with_capacity(2 * EICAR.len()),
            found: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.found {
            return;
        }
        let keep = EICAR.len() - 1;
        // Only the seam between the previous chunk and this one needs the carried tail.
        self.tail.extend_from_slice(&chunk[..chunk.len().min(keep)]);
        if self.finder.find(&self.tail).is_some() || self.finder.find(chunk).is_some() {
            self.found = true;
            return;
        }
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

/// True when the EICAR signature occurs anywhere in `reader`; streams with a fixed buffer.
pub fn contains_eicar(mut reader: impl Read) -> std::io::Result<bool> {
    let mut scanner = SignatureScanner::eicar();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(scanner.found());
        }
        scanner.feed(&buf[..n]);
    }
}

/// What one pass over the bytes learns.
pub(super) struct Digests {
    pub(super) sha256: String,
    pub(super) md5: Option<String>,
    pub(super) fingerprint: u64,
}

/// Checks the magic bytes, then hashes and scans the whole file in one pass.
pub(super) fn read_and_digest(
    mut file: &File,
    size: u64,
    content_type: &str,
    policy: &Policy,
) -> Result<Digests> {
    let read_err =
        |e: std::io::Error| Error::invalid(Rule::Unreadable, format!("read failed: {e}"));
    // Small files get a small buffer: a fresh 256 KiB allocation per file shows up in profiles.
    let mut buf = vec![0u8; CHUNK.min(size as usize + 1)];
    let mut head_len = 0;
    // Fill the head fully: magic checks need up to a few hundred bytes even from a slow reader.
    while head_len < buf.len() {
        let n = file.read(&mut buf[head_len..]).map_err(read_err)?;
        if n == 0 {
            break;
        }
        head_len += n;
    }
    check_magic(&buf[..head_len], content_type)?;

    let mut hasher = Sha256::new();
    let mut md5 = policy.md5.then(md5::Md5::new);
    let mut xxh = xxhash_rust::xxh3::Xxh3::new();
    let mut scanner = policy.local_scan.then(SignatureScanner::eicar);
    let mut total = head_len as u64;
    let mut chunk = &buf[..head_len];
    loop {
        hasher.update(chunk);
        xxh.update(chunk);
        if let Some(m) = md5.as_mut() {
            m.update(chunk);
        }
        if let Some(s) = scanner.as_mut() {
            s.feed(chunk);
        }
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        chunk = &buf[..n];
    }
    if total != size {
        return Err(Error::FileChanged {
            message: format!("its size changed from {size} to {total} bytes while it was read"),
        });
    }
    if scanner.is_some_and(|s| s.found()) {
        return Err(Error::invalid(
            Rule::ContentSafety,
            "the file contains the EICAR anti-virus test signature",
        ));
    }
    Ok(Digests {
        sha256: hex::encode(hasher.finalize()),
        fingerprint: xxh.digest(),
        md5: md5.map(|m| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(m.finalize())
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_signature_across_chunks() {
        let mut data = vec![b'a'; 1000];
        data.extend_from_slice(EICAR);
        data.extend_from_slice(&[b'b'; 500]);
        for split in [1, 7, 60, 67, 68, 69, 1000, 1030, 1067, 1068] {
            let mut s = SignatureScanner::eicar();
            for c in data.chunks(split) {
                s.feed(c);
            }
            assert!(s.found(), "chunk size {split}");
        }
        let mut s = SignatureScanner::eicar();
        s.feed(&EICAR[..40]);
        s.feed(b"zz");
        s.feed(&EICAR[40..]);
        assert!(!s.found());
    }
}
