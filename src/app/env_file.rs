//! The `.env` file: read from the working directory only (never a parent: a `.env` another user
//! left in `/srv/shared` must not steer a job run below it), or the file `--env-file` names;
//! refused unless it is ours and nobody else can write it; and only gcupload's own settings are
//! taken from it (a proxy, `SSL_CERT_FILE` or `RUST_LOG` in it would hand the token request to a
//! man in the middle or flood the log). A variable already set in the environment wins.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::cli::Cli;

/// The file read when no `--env-file` is given.
const DEFAULT: &str = ".env";
/// Set (to anything but empty) to read no `.env` at all, as `--no-env-file` does.
pub const SKIP_VAR: &str = "GCUPLOAD_NO_DOTENV";
/// A `.env` is a handful of settings; anything larger is not one.
const MAX_BYTES: u64 = 1 << 20;

/// What was read: the file and the keys it set (those the environment did not already have).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub path: Option<PathBuf>,
    pub keys: Vec<String>,
}

/// Why the `.env` file was not used. Every variant names the file and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnvFileError {
    #[error(
        "--env-file {path}: no such file; give the path of an existing file, or drop --env-file"
    )]
    Missing { path: PathBuf },
    #[error("{path} is not a regular file; a .env file holds settings, one KEY=value a line")]
    NotAFile { path: PathBuf },
    #[error(
        "{path} is owned by user {owner}, not by you (user {me}): its settings (the API host, the webhook) would decide where your credentials go; `chown {me} {path}` if it is yours, or run elsewhere, or pass --no-env-file"
    )]
    Foreign { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "{path} can be written by other users (mode {mode:o}): they could point the API host or the webhook anywhere; `chmod go-w {path}`"
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error("{path} line {line}: not a KEY=value line: `{text}`; fix or remove the line")]
    Syntax {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{path}: cannot be read: {message}")]
    Unreadable { path: PathBuf, message: String },
}

/// Which file to read, from the command line as typed (before clap: the file feeds clap's
/// environment-backed arguments). `None`: none.
fn chosen(args: &[OsString], skip_var: Option<OsString>) -> Option<(PathBuf, bool)> {
    let mut explicit = None;
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else { continue };
        match s {
            "--" => break,
            "--no-env-file" => return None,
            "--env-file" => explicit = it.next().map(PathBuf::from),
            _ => {
                if let Some(v) = s.strip_prefix("--env-file=") {
                    explicit = Some(PathBuf::from(v));
                }
            }
        }
    }
    match explicit {
        Some(p) => Some((p, true)),
        None if skip_var.is_some_and(|v| !v.is_empty()) => None,
        None => Some((PathBuf::from(DEFAULT), false)),
    }
}

/// Reads the chosen file and sets its allowed keys that the environment lacks. Call it before
/// any thread exists: setting variables in a running multi-threaded program is unsound.
pub fn load(args: &[OsString]) -> Result<Loaded, EnvFileError> {
    let Some((path, explicit)) = chosen(args, std::env::var_os(SKIP_VAR)) else {
        return Ok(Loaded::default());
    };
    let Some(text) = read_checked(&path, explicit)? else {
        return Ok(Loaded::default());
    };
    let allowed = allowed_keys();
    let mut keys = Vec::new();
    for (key, value) in parse(&path, &text)? {
        if !allowed.contains(&key) {
            warn(&format!(
                "warning: {}: {key} is not a gcupload setting and was ignored (a .env file sets only gcupload's own variables; set others in the environment)",
                path.display()
            ));
            continue;
        }
        if std::env::var_os(&key).is_none() && !keys.contains(&key) {
            // SAFETY: called from `main` before the runtime or any other thread starts.
            unsafe { std::env::set_var(&key, value) };
            keys.push(key);
        }
    }
    Ok(Loaded {
        path: Some(std::path::absolute(&path).unwrap_or(path)),
        keys,
    })
}

/// The file's text, once it is known to be a regular file of ours that only we can write;
/// `None` for a default `.env` that does not exist.
fn read_checked(path: &Path, explicit: bool) -> Result<Option<String>, EnvFileError> {
    let unreadable = |e: std::io::Error| EnvFileError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // Never blocking: a FIFO named `.env` must not hold the program.
    let file = match crate::validate::open_nonblocking(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EnvFileError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(unreadable(e)),
    };
    // The handle, not the path, is checked: a link swapped in between cannot slip past.
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(EnvFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    check_owner(path, &meta)?;
    let mut text = String::new();
    file.take(MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    Ok(Some(text))
}

#[cfg(unix)]
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), EnvFileError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(EnvFileError::Foreign {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(EnvFileError::Writable {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), EnvFileError> {
    Ok(())
}

/// Every `KEY=value` of the file, or the first line that is not one (today's parsers stop
/// there and drop every key after it; a half-read configuration is worse than none).
fn parse(path: &Path, text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => out.push(pair),
            Err(dotenvy::Error::LineParse(bad, _)) => {
                return Err(EnvFileError::Syntax {
                    path: path.to_path_buf(),
                    line: line_of(text, &bad),
                    text: crate::redact::for_terminal(bad.lines().next().unwrap_or("")).into(),
                });
            }
            Err(e) => {
                return Err(EnvFileError::Unreadable {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// The 1-based line where the parser's `bad` (a logical line, maybe several) starts.
fn line_of(text: &str, bad: &str) -> usize {
    let first = bad.lines().next().unwrap_or(bad).trim();
    text.lines()
        .position(|l| l.trim() == first || (!first.is_empty() && l.contains(first)))
        .map_or(0, |i| i + 1)
}

/// The variables gcupload reads as settings: each env name declared on the command's arguments,
/// in every subcommand.
pub fn allowed_keys() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env().and_then(|e| e.to_str())
                && !out.iter().any(|k| k == env)
            {
                out.push(env.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &mut out);
    out
}

/// An empty variable means unset (`GENESYS_BASE_URL= gcupload …` is a run without a base URL,
/// as in most tools), for every variable a setting reads: such variables are removed before the
/// command line is parsed. Call it, like `load`, while the process has one thread.
pub fn drop_empty_variables() {
    for name in allowed_keys() {
        if std::env::var_os(&name).is_some_and(|v| v.to_string_lossy().trim().is_empty()) {
            // SAFETY: called at start-up, before any other thread exists (see `app::main`).
            unsafe { std::env::remove_var(&name) };
        }
    }
}

/// Writing to stderr never panics, even with stderr closed.
fn warn(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{}", crate::redact::for_terminal(line));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("gcupload")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn the_file_is_chosen_from_the_command_line_before_clap() {
        let default = Some((PathBuf::from(".env"), false));
        assert_eq!(chosen(&args(&["a.pdf"]), None), default);
        let named = Some((PathBuf::from("/etc/g.env"), true));
        assert_eq!(
            chosen(&args(&["--env-file", "/etc/g.env", "a"]), None),
            named
        );
        assert_eq!(
            chosen(&args(&["doctor", "--env-file=/etc/g.env"]), None),
            named
        );
        assert_eq!(chosen(&args(&["--no-env-file", "a"]), None), None);
        assert_eq!(chosen(&args(&["a"]), Some("1".into())), None);
        assert_eq!(chosen(&args(&["a"]), Some("".into())), default);
        // After `--` everything is a file name.
        assert_eq!(chosen(&args(&["--", "--env-file", "x"]), None), default);
    }

    #[test]
    fn the_allowed_keys_are_the_commands_own_variables() {
        let keys = allowed_keys();
        for k in [
            "GENESYS_BASE_URL",
            "GENESYS_CLIENT_SECRET",
            "WEBHOOK_SYNC_URL",
            "GCUPLOAD_STATE_DIR",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k}: {keys:?}");
        }
        for k in ["HTTPS_PROXY", "SSL_CERT_FILE", "RUST_LOG", "HOME", "PATH"] {
            assert!(!keys.iter().any(|x| x == k), "{k}");
        }
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let text = "A=1\n# note\n\nB C D\nE=2\n";
        let err = parse(Path::new(".env"), text).unwrap_err();
        assert!(
            matches!(err, EnvFileError::Syntax { line: 4, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 4"), "{err}");
    }
}
