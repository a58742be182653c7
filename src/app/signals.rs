//! The signals that stop a run or a standalone sandbox: Ctrl-C and SIGTERM alike (a service
//! manager stops with SIGTERM).

/// Waits for the next Ctrl-C or SIGTERM.
pub(super) async fn next() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
