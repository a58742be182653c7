//! Who holds a lease. A pid names a process only inside its own PID namespace, during one boot,
//! and only until it is reused; a host name alone does not say that (a container with host
//! networking, a systemd unit with `PrivatePIDs=`, a machine that rebooted share it). So the
//! holder is written into `lease_host` as `host boot=<boot id> pidns=<namespace inode>
//! start=<process start time>`, and `kill(pid, 0)` is asked only when host, boot and namespace
//! are ours; the start time then tells a live holder from a new process that got its pid.

/// Process `pid` (of this namespace) on `host` as a lease holder.
pub(super) fn identity(host: &str, pid: u32) -> String {
    let mut id = host.to_string();
    if let Some(boot) = boot_id() {
        id.push_str(&format!(" boot={boot}"));
    }
    if let Some(ns) = pid_namespace() {
        id.push_str(&format!(" pidns={ns}"));
    }
    if let Some(start) = start_time(pid) {
        id.push_str(&format!(" start={start}"));
    }
    id
}

/// This machine's name, for leases: a pid means something only on its own host.
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The host name of a holder, for people (`pid 4242 on build-7`).
pub(super) fn host_of(holder: &str) -> &str {
    holder.split(' ').next().unwrap_or(holder)
}

/// Whether the holder `pid`/`holder` may still be working, as far as this process (`me`) can
/// tell; the expiry is checked by the caller. Another host, boot or namespace (or a holder
/// written by an older version, which named only its host): only the expiry tells.
pub(super) fn may_be_alive(pid: u32, holder: &str, me: &str) -> bool {
    let (theirs, start) = split(holder);
    let (ours, _) = split(me);
    if theirs != ours || !ours.contains(" pidns=") {
        return true;
    }
    if !pid_alive(pid) {
        return false;
    }
    // The pid is in use; by the holder only if it started when the holder did.
    match (start, start_time(pid)) {
        (Some(then), Some(now)) => then == now,
        _ => true,
    }
}

/// The holder without its start time (the machine and namespace part), and the start time.
fn split(holder: &str) -> (&str, Option<&str>) {
    match holder.rsplit_once(" start=") {
        Some((machine, start)) => (machine, Some(start)),
        None => (holder, None),
    }
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty() && !s.contains(' '))
}

#[cfg(unix)]
fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

#[cfg(not(unix))]
fn pid_namespace() -> Option<u64> {
    None
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last `)`.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // `after` starts at field 3 (the state); field 22 is the 20th from there.
    after.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(unix)]
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; it sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn pid_alive(_pid: u32) -> bool {
    true
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_namespace_asks_kill_and_the_start_time_catches_reuse() {
        let me = identity("box", std::process::id());
        assert!(
            me.contains(" boot=") && me.contains(" pidns=") && me.contains(" start="),
            "{me}"
        );
        let (machine, start) = split(&me);
        let own = std::process::id();
        // Ourselves: alive.
        assert!(may_be_alive(own, &me, &me));
        // A live pid that started at another time is another process (the pid was reused).
        assert!(!may_be_alive(own, &format!("{machine} start=1"), &me));
        // Same namespace, a pid nobody has: dead.
        assert!(!may_be_alive(u32::MAX / 2, &me, &me));
        // Another namespace, boot or host, or a bare host name: only the expiry tells.
        let other = me.replace(" pidns=", " pidns=1");
        assert!(may_be_alive(u32::MAX / 2, &other, &me));
        assert!(may_be_alive(u32::MAX / 2, "box", &me));
        assert_eq!(host_of(&me), "box");
        assert!(start.is_some());
    }
}
