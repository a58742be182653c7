//! The run's circuit breaker: when the platform cannot be reached, files stop being tried one
//! after another (each spending its whole retry budget: ~9 s, hours for a large batch while cron
//! runs pile up). After a few files in a row fail to reach it, the files not yet started fail at
//! once, each with its record; after a cool-down (a long `watch`), one file may try again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Stage};

/// Files in a row that could not reach the platform before the breaker opens.
const THRESHOLD: u32 = 3;
/// How long an open breaker refuses files before it lets one try again.
const COOL_DOWN: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct Breaker(Mutex<State>);

#[derive(Default)]
struct State {
    /// Files in a row whose upload failed to reach the platform.
    unreachable: u32,
    /// When it opened, and what the last file could not reach.
    open: Option<(Instant, Cause)>,
}

struct Cause {
    stage: Stage,
    host: String,
    error: String,
}

impl Breaker {
    /// Why a file is not to be tried now: the platform was unreachable for the files before it.
    pub(super) fn refuses(&self) -> Option<Error> {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (since, cause) = state.open.as_ref()?;
        (since.elapsed() < COOL_DOWN).then(|| not_attempted(cause, state.unreachable))
    }

    /// Counts a file's outcome: its error, or whether it reached the platform (a file skipped
    /// from the journal did not try).
    pub(super) fn record(&self, outcome: Option<&Error>, reached: bool) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Some(e) if unreachable(e) => {
                let (Error::Network { stage, host, .. }
                | Error::UntrustedCertificate { stage, host, .. }) = e
                else {
                    return;
                };
                state.unreachable += 1;
                if state.unreachable >= THRESHOLD {
                    if state.open.is_none() {
                        tracing::warn!(
                            "{} files in a row could not reach {host}: the files not started yet are not tried (each gets its record)",
                            state.unreachable
                        );
                    }
                    let cause = Cause {
                        stage: *stage,
                        host: host.clone(),
                        error: e.to_string(),
                    };
                    state.open = Some((Instant::now(), cause));
                }
            }
            // Any answer from the platform, or a local failure, says nothing of its reach; a
            // file that got through closes the breaker.
            Some(_) => {}
            None if reached => *state = State::default(),
            None => {}
        }
    }
}

/// A failure to reach the platform at all: no connection could be made (refused, no route, a
/// name that does not resolve) or its certificate is not trusted. A connection that broke or
/// timed out mid-exchange reached it: a flaky network, not a missing platform.
fn unreachable(e: &Error) -> bool {
    match e {
        Error::UntrustedCertificate { .. } => true,
        Error::Network { message, .. } => {
            message.starts_with("connection failed")
                || message.starts_with("could not open the socket")
        }
        _ => false,
    }
}

fn not_attempted(cause: &Cause, files: u32) -> Error {
    Error::Network {
        stage: cause.stage,
        host: cause.host.clone(),
        message: format!(
            "not attempted: the {files} files before it could not reach it either ({}), so the run stopped trying",
            cause.error
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Error {
        Error::Network {
            stage: Stage::Auth,
            host: "login.example".into(),
            message: "connection failed (connection refused)".into(),
        }
    }

    #[test]
    fn it_opens_after_files_in_a_row_fail_to_connect_and_a_success_closes_it() {
        let b = Breaker::default();
        b.record(Some(&unreachable()), false);
        b.record(Some(&unreachable()), false);
        assert!(b.refuses().is_none(), "two are not a pattern yet");
        b.record(None, true);
        b.record(Some(&unreachable()), false);
        b.record(Some(&unreachable()), false);
        assert!(b.refuses().is_none(), "the success reset the count");
        b.record(Some(&Error::Interrupted), false);
        let broke = Error::Network {
            stage: Stage::Transfer,
            host: "store.example".into(),
            message: "the request failed (connection reset)".into(),
        };
        b.record(Some(&broke), false); // it was reached: says nothing
        b.record(None, false); // skipped from the journal: says nothing
        b.record(Some(&unreachable()), false);
        let refused = b.refuses().expect("open after three in a row");
        assert!(refused.to_string().contains("login.example"), "{refused}");
        b.record(None, true);
        assert!(b.refuses().is_none());
    }
}
