//! The session's onMessage pace. The platform allows 2 messages per session per second
//! (`messages.per.session.rate.per.second`, Genesys change notice of 2023-12-11) and answers
//! more with 4029; the transport SDK does not retry 4029. A token bucket of one token, refilled
//! a little slower than twice a second, spaces the messages as they leave. What the platform
//! counts is when they arrive, and a message the network holds back arrives closer to the next
//! one: so a message also leaves no sooner than [`AFTER_ANSWER`] after the previous one's answer
//! came back. That answer comes after the previous message arrived, so two messages always
//! arrive at least that far apart, whatever the network does (a CI machine under load showed
//! 4029s from the first rule alone).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// One message per this long: 2 per second with 15 ms to spare.
const MESSAGE_EVERY: Duration = Duration::from_millis(515);

/// After the previous message's answer: half a second, and 5 ms for the platform's clock.
const AFTER_ANSWER: Duration = Duration::from_millis(505);

pub(super) struct Pacer {
    bucket: DefaultDirectRateLimiter,
    clock: DefaultClock,
    /// When the last message's exchange ended (its answer, or its failure).
    answered: Mutex<Option<Instant>>,
}

impl Default for Pacer {
    fn default() -> Self {
        let quota = Quota::with_period(MESSAGE_EVERY).expect("a non-zero period");
        Pacer {
            bucket: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            answered: Mutex::new(None),
        }
    }
}

impl Pacer {
    /// Takes the token for one message now, or says how long until there is one.
    pub(super) fn take(&self) -> Result<(), Duration> {
        let answered = *self.answered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = answered.and_then(|at| AFTER_ANSWER.checked_sub(at.elapsed())) {
            return Err(wait);
        }
        self.bucket
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// The message's exchange has ended: the next waits [`AFTER_ANSWER`] from now.
    pub(super) fn answered(&self) {
        *self.answered.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
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

    #[test]
    fn a_late_answer_pushes_the_next_message_back() {
        let p = Pacer::default();
        assert!(p.take().is_ok());
        // The answer came 600 ms after the message left: the bucket alone would let the next
        // one go now, but it waits half a second from the answer.
        std::thread::sleep(Duration::from_millis(600));
        p.answered();
        let wait = p.take().unwrap_err();
        assert!(
            wait > Duration::from_millis(450) && wait <= AFTER_ANSWER,
            "{wait:?}"
        );
    }
}
