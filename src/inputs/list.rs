//! `--from`: paths one per line, or separated by NUL bytes (`--from0`, for `find -print0`), read
//! as bytes: a name that is not UTF-8 is a path like any other (on unix), not a reason to refuse
//! the list. Read as the run goes, one path at a time.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::input::{Input, Problem};
use crate::error::{Error, Result};

pub(super) struct List {
    reader: Box<dyn BufRead + Send>,
    name: PathBuf,
    separator: u8,
    done: bool,
}

/// Opens the list (`-` is stdin); a list that cannot be opened refuses the run.
pub(super) fn open(list: &Path, nul: bool) -> Result<List> {
    let reader: Box<dyn BufRead + Send> = if list == Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(list)
            .map_err(|e| Error::config(format!("--from {}: {e}", list.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    Ok(List {
        reader,
        name: list.to_path_buf(),
        separator: if nul { 0 } else { b'\n' },
        done: false,
    })
}

impl Iterator for List {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        let mut buf = Vec::new();
        while !self.done {
            buf.clear();
            match self.reader.read_until(self.separator, &mut buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    if let Some(path) = self.entry(&mut buf) {
                        return Some(Input::named(path));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The paths read so far go on; the rest of the list is a failure of its own.
                    self.done = true;
                    let why = format!("--from: the list could not be read to its end: {e}");
                    return Some(Input::failed(self.name.clone(), Problem::List(why)));
                }
            }
        }
        None
    }
}

impl List {
    /// The path an entry names; blank lines (and empty NUL-separated entries) name none.
    fn entry(&self, buf: &mut Vec<u8>) -> Option<PathBuf> {
        if buf.last() == Some(&self.separator) {
            buf.pop();
        }
        if self.separator == b'\n' {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
        }
        (!buf.is_empty()).then(|| path_from_bytes(std::mem::take(buf)))
    }
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

// Elsewhere paths are not bytes; a name that is not UTF-8 cannot be named exactly.
#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], nul: bool) -> Vec<PathBuf> {
        let list = List {
            reader: Box::new(std::io::Cursor::new(bytes.to_vec())),
            name: "list".into(),
            separator: if nul { 0 } else { b'\n' },
            done: false,
        };
        list.map(|i| i.path).collect()
    }

    #[test]
    fn lines_and_nul_separated_entries_are_bytes() {
        let lines = read(b"a.pdf\r\n\n  \nb\xff.pdf\nlast.pdf", false);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], Path::new("a.pdf"));
        #[cfg(unix)]
        assert_eq!(lines[1].as_os_str().as_encoded_bytes(), b"b\xff.pdf");
        let nul = read(b"with\nnewline.pdf\0\0x.pdf\0", true);
        assert_eq!(nul, [Path::new("with\nnewline.pdf"), Path::new("x.pdf")]);
    }
}
