//! The platform's virus scan, as the sandbox plays it: an object is infected when it holds the
//! EICAR anti-virus test string, the one signature every scanner agrees to flag. The sandbox
//! keeps its own copy of the signature and its own reader, so it judges uploads independently
//! of the client's local check.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use memchr::memmem::Finder;

/// The 68-byte EICAR test string (eicar.org), as published.
const SIGNATURE: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// How much is read at a time. Objects can be as large as the tenant allows, so the scan never
/// holds more than this plus the overlap.
const WINDOW: usize = 256 * 1024;

/// Whether the object stored at `path` carries the signature.
pub(crate) fn infected(path: &Path) -> std::io::Result<bool> {
    File::open(path).and_then(holds_signature)
}

/// Searches a stream through one fixed buffer. The last `SIGNATURE.len() - 1` bytes of every
/// read stay at the front of the buffer for the next search, so a signature cut in two by a
/// read boundary is still seen, and nothing before them can start a match any more.
fn holds_signature(mut input: impl Read) -> std::io::Result<bool> {
    let finder = Finder::new(SIGNATURE);
    let overlap = SIGNATURE.len() - 1;
    let mut buf = vec![0u8; overlap + WINDOW];
    let mut carried = 0;
    loop {
        let got = match input.read(&mut buf[carried..]) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = carried + got;
        if finder.find(&buf[..end]).is_some() {
            return Ok(true);
        }
        carried = end.min(overlap);
        buf.copy_within(end - carried..end, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `step` bytes per read, to put read boundaries inside the signature.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn finds_the_signature_across_any_read_boundary() {
        let mut data = vec![b'.'; 1000];
        data.extend_from_slice(SIGNATURE);
        data.extend_from_slice(&[b'.'; 10]);
        for step in [1, 7, 67, 68, 69, 500, 4096] {
            let found = holds_signature(Trickle { data: &data, step }).unwrap();
            assert!(found, "read size {step}");
        }
    }

    #[test]
    fn finds_the_signature_across_the_buffer_edge() {
        let mut data = vec![b'.'; WINDOW - 30];
        data.extend_from_slice(SIGNATURE);
        let step = usize::MAX;
        assert!(holds_signature(Trickle { data: &data, step }).unwrap());
    }

    #[test]
    fn a_partial_signature_is_clean() {
        let mut data = SIGNATURE[..40].to_vec();
        data.extend_from_slice(&SIGNATURE[41..]);
        assert!(
            !holds_signature(Trickle {
                data: &data,
                step: 13
            })
            .unwrap()
        );
        assert!(!holds_signature(&b""[..]).unwrap());
    }
}
