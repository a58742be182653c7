//! The session's onMessage pace. The platform allows 2 messages per session per second
//! (`messages.per.session.rate.per.second`, Genesys change notice of 2023-12-11) and answers
//! more with 4029; the transport SDK does not retry 4029. A token bucket of one token, refilled
//! a little slower than twice a second, keeps every second of the session at 2 messages or
//! fewer even when the frames' arrival jitters by a few milliseconds.

use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// One message per this long: 2 per second with 15 ms to spare.
const MESSAGE_EVERY: Duration = Duration::from_millis(515);

pub(super) struct Pacer {
    bucket: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl Default for Pacer {
    fn default() -> Self {
        let quota = Quota::with_period(MESSAGE_EVERY).expect("a non-zero period");
        Pacer {
            bucket: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
        }
    }
}

impl Pacer {
    /// Takes the token for one message now, or says how long until there is one.
    pub(super) fn take(&self) -> Result<(), Duration> {
        self.bucket
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_message_waits_about_half_a_second() {
        let p = Pacer::default();
        assert!(p.take().is_ok());
        let wait = p.take().unwrap_err();
        assert!(
            wait > Duration::from_millis(480) && wait <= MESSAGE_EVERY,
            "{wait:?}"
        );
    }
}
