//! `--jobs` within the process's open-file limit (`RLIMIT_NOFILE`, `ulimit -n`): each file in
//! flight holds its handle and its connections (the API, the store; the embedded sandbox's
//! server side too), so too many jobs fail files with "Too many open files" half-way. The soft
//! limit is raised towards the hard one when that is enough; otherwise the jobs are capped, with
//! a warning naming the limit.

/// Open files one job may hold at once.
const FILES_PER_JOB: u64 = 6;
/// What the run holds whatever the jobs: stdio, the runtime, the state store, the listener of
/// an embedded sandbox, a few spare.
const RESERVED: u64 = 32;

/// `jobs`, or fewer when the open-file limit cannot take them (with a warning).
pub(super) fn jobs_within_open_file_limit(jobs: usize) -> usize {
    let needed = RESERVED + FILES_PER_JOB * jobs as u64;
    let Some(limit) = raise_open_file_limit(needed) else {
        return jobs;
    };
    if limit >= needed {
        return jobs;
    }
    let fit = (limit.saturating_sub(RESERVED) / FILES_PER_JOB).max(1) as usize;
    tracing::warn!(
        "--jobs {jobs} needs about {needed} open files, but the open-file limit (ulimit -n) is {limit}: running {fit} at a time; raise the limit (e.g. `ulimit -n {needed}`) or pass a smaller --jobs"
    );
    fit
}

/// Raises the soft open-file limit to `needed` (within the hard limit); the limit now, or
/// `None` when it cannot be read.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // `rlim_t` is u64 on Linux, not on every unix
fn raise_open_file_limit(needed: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let (soft, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
    if soft >= needed || hard <= soft {
        return Some(soft);
    }
    let raised = libc::rlimit {
        rlim_cur: needed.min(hard) as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard one is
    // always permitted.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        Some(raised.rlim_cur as u64)
    } else {
        Some(soft)
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit(_needed: u64) -> Option<u64> {
    None
}
