//! The signals that stop a run or a standalone sandbox: Ctrl-C and SIGTERM alike (a service
//! manager stops with SIGTERM). Installed before the program says it is ready, so a signal sent
//! as soon as it has (a test, a supervisor) is never taken by the default action.

pub(super) struct Stops {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Stops {
    /// Takes over SIGINT and SIGTERM now; call within the runtime.
    pub(super) fn install() -> Stops {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Stops {
                int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
                term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            }
        }
        #[cfg(not(unix))]
        Stops {}
    }

    /// Waits for the next Ctrl-C or SIGTERM.
    pub(super) async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
