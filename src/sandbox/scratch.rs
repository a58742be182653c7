//! The temporary object store: removed when the sandbox stops, and, since a `kill -9` stops it
//! with no chance to clean, stores left by sandboxes that no longer run are removed by the next
//! one to start.

use std::path::Path;

const PREFIX: &str = "gcupload-sandbox-";

/// A fresh store directory named after this process (`gcupload-sandbox-<pid>-…`), after
/// removing the ones whose process is gone.
pub(crate) fn temporary_store() -> std::io::Result<tempfile::TempDir> {
    let base = std::env::temp_dir();
    remove_stale(&base);
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(base)
}

fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if ours(&entry) && !running(pid) {
            let path = entry.path();
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(
                    "sandbox: removed the store of a stopped sandbox: {}",
                    path.display()
                ),
                Err(e) => tracing::debug!("sandbox: could not remove {}: {e}", path.display()),
            }
        }
    }
}

/// A directory (not a link) of this user's: never touch another user's files.
fn ours(entry: &std::fs::DirEntry) -> bool {
    let Ok(meta) = entry.path().symlink_metadata() else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        meta.is_dir() && meta.uid() == unsafe { libc::geteuid() }
    }
    #[cfg(not(unix))]
    meta.is_dir()
}

fn running(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists; it sends nothing.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_of_a_process_that_is_gone_is_removed_a_live_one_is_kept() {
        let base = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum (4194304) never runs.
        let stale = base.path().join(format!("{PREFIX}4194999-abc"));
        let live = base
            .path()
            .join(format!("{PREFIX}{}-abc", std::process::id()));
        let other = base.path().join("something-else");
        for d in [&stale, &live, &other] {
            std::fs::create_dir_all(d.join("gcupload-sandbox")).unwrap();
        }
        remove_stale(base.path());
        assert!(!stale.exists());
        assert!(live.exists() && other.exists());
    }
}
