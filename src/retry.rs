//! The one retry policy for every call of every route: what is retried, how long to wait, and
//! the per-file time budget that bounds it all.
//!
//! Retried: 429 (honouring `Retry-After`), 502/503/504, S3 `SlowDown`, connection errors and
//! timeouts; on the PUT also S3's 500 and `400 RequestTimeout` (`transfer::verdict`). Never
//! retried: any other 4xx. Delays come from `backon`'s exponential backoff with
//! jitter unless the server said how long to wait.

use std::time::{Duration, Instant};

use backon::BackoffBuilder;

use crate::error::{Error, Remote, Stage};

/// When the server does not say how long to wait after a 429.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Total time one file may spend, waits included, before its retries stop.
    pub budget: Duration,
    /// Attempts per call (the first one included).
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            budget: Duration::from_secs(300),
            max_attempts: 6,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

/// The longest wait anything from outside (a header, a JSON field, a flag) can stand for: far
/// beyond any budget, and far from where `Instant + Duration` overflows and panics.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `at + wait`, saturating: a server can say `Retry-After: 9223372036854775807` or
/// `"expires_in": 18446744073709551615`, and `Instant + Duration` panics on overflow.
pub fn later(at: Instant, wait: Duration) -> Instant {
    // A century fits every platform's monotonic clock; the fallback is for a clock that does not.
    at.checked_add(wait.min(FOREVER))
        .or_else(|| at.checked_add(Duration::from_secs(86400)))
        .unwrap_or(at)
}

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `fut` (one file's work) with the policy's budget as the deadline of every retry in it.
pub async fn with_budget<F: std::future::Future>(policy: &Policy, fut: F) -> F::Output {
    DEADLINE
        .scope(later(Instant::now(), policy.budget), fut)
        .await
}

fn deadline(policy: &Policy) -> Instant {
    DEADLINE
        .try_with(|d| *d)
        .unwrap_or_else(|_| later(Instant::now(), policy.budget))
}

/// Whether an answer is worth another try, and how long the server asked us to wait.
pub fn retryable_status(status: u16, code: Option<&str>) -> bool {
    matches!(status, 429 | 502 | 503 | 504) || code == Some("SlowDown")
}

/// Transport errors that say nothing about the request having been refused. A certificate this
/// machine does not trust is not one of them: it will not be trusted on the next try either.
pub fn retryable_transport(err: &reqwest::Error) -> bool {
    (err.is_connect() || err.is_timeout() || err.is_request() || err.is_body())
        && crate::error::untrusted_certificate(err).is_none()
}

/// Counts attempts of one call and sleeps between them, within the file's budget.
pub struct Retrier {
    policy: Policy,
    stage: Stage,
    attempt: usize,
    delays: backon::ExponentialBackoff,
    deadline: Instant,
}

impl Retrier {
    pub fn new(policy: &Policy, stage: Stage) -> Self {
        let delays = backon::ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(policy.max_attempts.saturating_sub(1))
            .build();
        Retrier {
            policy: *policy,
            stage,
            attempt: 1,
            delays,
            deadline: deadline(policy),
        }
    }

    pub fn attempt(&self) -> usize {
        self.attempt
    }

    /// What is left of the file's budget: the bound of each whole exchange (headers and body),
    /// since a server that drips its answer never trips a per-read timeout.
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Waits before the next attempt, or gives `err` back when the attempts or the budget are
    /// spent (or the server asks for a wait longer than what is left).
    pub async fn pause(
        &mut self,
        err: Error,
        retry_after: Option<Duration>,
        reason: &str,
    ) -> Result<(), Error> {
        let Some(backoff) = self.delays.next() else {
            tracing::info!(stage = %self.stage, attempts = self.attempt, "giving up: no attempts left ({reason})");
            return Err(err);
        };
        let wait = retry_after.unwrap_or(backoff);
        if wait > self.time_left() {
            tracing::info!(
                stage = %self.stage,
                wait_ms = wait.as_millis() as u64,
                "giving up: waiting would exceed the retry budget of {} s ({reason})",
                self.policy.budget.as_secs()
            );
            return Err(err);
        }
        tracing::info!(
            stage = %self.stage,
            attempt = self.attempt,
            wait_ms = wait.as_millis() as u64,
            correlation_id = err.remote().and_then(|r| r.correlation_id.as_deref()).unwrap_or("-"),
            "retrying: {reason}"
        );
        tokio::time::sleep(wait).await;
        self.attempt += 1;
        Ok(())
    }
}

/// For a refused answer: the wait the server asked for, when it is a retryable refusal.
pub fn verdict(
    remote: &Remote,
    retry_after: Option<Duration>,
) -> Option<(Option<Duration>, String)> {
    let status = remote.status?;
    if !retryable_status(status, remote.code.as_deref()) {
        return None;
    }
    let after = match status {
        429 => Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        _ => retry_after,
    };
    let what = remote
        .code
        .as_deref()
        .map(|c| format!(" {c}"))
        .unwrap_or_default();
    Some((after, format!("HTTP {status}{what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        let r = |s: u16, c: Option<&str>| Remote {
            status: Some(s),
            code: c.map(str::to_string),
            ..Remote::default()
        };
        assert_eq!(
            verdict(&r(429, None), None).unwrap().0,
            Some(DEFAULT_RETRY_AFTER)
        );
        assert_eq!(
            verdict(&r(429, None), Some(Duration::from_secs(7)))
                .unwrap()
                .0,
            Some(Duration::from_secs(7))
        );
        assert!(verdict(&r(503, Some("SlowDown")), None).is_some());
        assert!(verdict(&r(502, None), None).is_some());
        for s in [400, 401, 403, 404, 409, 413, 500, 501] {
            assert!(verdict(&r(s, None), None).is_none(), "{s}");
        }
    }

    #[test]
    fn later_saturates() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        for huge in [Duration::MAX, Duration::from_secs(i64::MAX as u64)] {
            assert!(later(now, huge) >= now + FOREVER);
        }
    }

    #[tokio::test]
    async fn a_huge_wait_gives_up_at_once() {
        let policy = Policy::default();
        let mut r = Retrier::new(&policy, Stage::Auth);
        let err = Error::protocol(Stage::Auth, "429");
        let t = Instant::now();
        assert!(r.pause(err, Some(Duration::MAX), "HTTP 429").await.is_err());
        assert!(t.elapsed() < Duration::from_secs(1));
        // A budget past the clock's end is a long budget, not a panic.
        let endless = Policy {
            budget: Duration::MAX,
            ..Policy::default()
        };
        with_budget(&endless, async {
            assert!(Retrier::new(&endless, Stage::Auth).time_left() > FOREVER / 2);
        })
        .await;
    }

    #[tokio::test]
    async fn the_budget_bounds_the_waits() {
        let policy = Policy {
            budget: Duration::from_millis(50),
            ..Policy::default()
        };
        with_budget(&policy, async {
            let mut r = Retrier::new(&policy, Stage::Transfer);
            let err = || Error::protocol(Stage::Transfer, "x");
            assert!(
                r.pause(err(), Some(Duration::from_secs(1)), "test")
                    .await
                    .is_err()
            );
            assert!(
                r.pause(err(), Some(Duration::from_millis(1)), "test")
                    .await
                    .is_ok()
            );
        })
        .await;
    }
}
