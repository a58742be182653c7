//! The run's pace of Platform API calls, shared by every call of the run (token, upload
//! requests, confirms and polls, sends, history reads) and owned by the run, not the process.
//!
//! - The platform's own word comes first: a 429's `Retry-After` pauses every call of the run.
//! - An adaptive token bucket, as the AWS SDKs' adaptive retry mode (`ClientRateLimiter`): off
//!   until the first 429 (the run starts unpaced); then its rate is cut on each 429 and grown
//!   back along a cubic curve (CUBIC, RFC 8312) towards and past the rate that was refused, never
//!   above twice the rate the run measured. Two measurements adapt it to the platform's window:
//!   the rate refused is the calls the platform admitted since the previous 429, over that time
//!   plus the wait it asked for; and the curve takes as long to climb back as the longest wait
//!   the platform asked for (its window's scale), not a fixed second. The cut is ×0.9, not AWS's
//!   ×0.7: with the whole run paused for `Retry-After` on each 429, a deeper cut costs more than
//!   a tenth of the limit's throughput.
//! - `--rate` stays the hard ceiling (a `governor` bucket).
//!
//! The run's summary reports how many calls were refused and how long calls waited here.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// CUBIC's multiplicative decrease.
const BETA: f64 = 0.9;
/// The slowest the bucket ever goes, calls per second.
const MIN_RATE: f64 = 0.5;
/// The measured rate is smoothed over buckets of this long.
const MEASURE_EVERY: f64 = 0.5;
const SMOOTH: f64 = 0.8;

/// The adaptive token bucket (see the module documentation).
#[derive(Debug)]
struct Bucket {
    enabled: bool,
    rate: f64,
    tokens: f64,
    refilled: Instant,
    /// CUBIC's W_max: the rate refused last, and when the pause it asked for ended.
    max_rate: f64,
    throttled_at: Instant,
    /// CUBIC's K: seconds from the pause's end back to `max_rate` (the longest wait asked).
    climb: f64,
    /// Calls admitted by the platform since the last 429.
    admitted: u64,
    /// The run's measured send rate (calls per second, smoothed).
    measured: f64,
    measure_count: u64,
    measure_start: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket {
            enabled: false,
            rate: 0.0,
            tokens: 0.0,
            refilled: now,
            max_rate: 0.0,
            throttled_at: now,
            climb: 1.0,
            admitted: 0,
            measured: 0.0,
            measure_count: 0,
            measure_start: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.refilled = now;
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        Some(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
    }

    fn measure(&mut self, now: Instant) {
        self.measure_count += 1;
        let elapsed = now.duration_since(self.measure_start).as_secs_f64();
        if elapsed >= MEASURE_EVERY {
            let current = self.measure_count as f64 / elapsed;
            self.measured = current * SMOOTH + self.measured * (1.0 - SMOOTH);
            self.measure_count = 0;
            self.measure_start = now;
        }
    }

    /// A 429: the rate the platform admitted becomes W_max, and the bucket is cut below it.
    fn throttled(&mut self, now: Instant, retry_after: Duration) {
        self.measure(now);
        // Calls refused together (in flight when the first was) are one refusal.
        if self.enabled && now < self.throttled_at {
            return;
        }
        let since = now.saturating_duration_since(self.throttled_at);
        let span = (since + retry_after).as_secs_f64().max(0.001);
        self.max_rate = (self.admitted as f64 / span).max(MIN_RATE);
        self.climb = self.climb.max(retry_after.as_secs_f64());
        self.throttled_at = crate::retry::later(now, retry_after);
        self.admitted = 0;
        self.enabled = true;
        self.set_rate(now, self.max_rate * BETA);
    }

    /// An admitted call: the rate grows back along the cubic.
    fn admitted(&mut self, now: Instant) {
        self.measure(now);
        self.admitted += 1;
        if !self.enabled {
            return;
        }
        let t = now
            .saturating_duration_since(self.throttled_at)
            .as_secs_f64();
        let k = self.climb;
        let scale = self.max_rate * (1.0 - BETA) / k.powi(3);
        let cubic = scale * (t - k).powi(3) + self.max_rate;
        let cap = (2.0 * self.measured).max(self.max_rate);
        self.set_rate(now, cubic.min(cap));
    }

    fn set_rate(&mut self, now: Instant, rate: f64) {
        self.refill(now);
        self.rate = rate.max(MIN_RATE);
        self.tokens = self.tokens.min(self.rate.max(1.0));
    }
}

/// The run's limiter; see the module documentation.
pub struct Limiter {
    bucket: Mutex<Bucket>,
    ceiling: Option<governor::DefaultDirectRateLimiter>,
    pause_until: Mutex<Option<Instant>>,
    throttled: AtomicU64,
    waited_us: AtomicU64,
}

/// What the limiter did over the run, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Calls the platform answered 429.
    pub throttled: u64,
    /// Time calls spent waiting for their turn, summed over calls.
    pub waited: Duration,
}

impl Limiter {
    /// `per_minute`: `--rate`, the hard ceiling (a burst of at most a tenth of the minute's
    /// calls, then an even pace).
    pub fn new(per_minute: Option<NonZeroU32>) -> Self {
        let ceiling = per_minute.map(|n| {
            let burst = NonZeroU32::new(n.get().div_ceil(10)).unwrap_or(n);
            governor::RateLimiter::direct(governor::Quota::per_minute(n).allow_burst(burst))
        });
        Limiter {
            bucket: Mutex::new(Bucket::new(Instant::now())),
            ceiling,
            pause_until: Mutex::new(None),
            throttled: AtomicU64::new(0),
            waited_us: AtomicU64::new(0),
        }
    }

    /// Waits while the run is paused by a `Retry-After` (every call, PUTs included).
    pub async fn paused(&self) {
        let until = *self.pause_until.lock().expect("pause");
        if let Some(u) = until.filter(|u| *u > Instant::now()) {
            let t = Instant::now();
            tokio::time::sleep_until(u.into()).await;
            self.count_wait(t.elapsed());
        }
    }

    /// Waits for this Platform API call's turn: the pause, the adaptive bucket, `--rate`.
    pub async fn acquire(&self) {
        self.paused().await;
        let started = Instant::now();
        loop {
            let wait = self.bucket.lock().expect("bucket").take(Instant::now());
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => break,
            }
        }
        if let Some(c) = &self.ceiling {
            c.until_ready().await;
        }
        self.count_wait(started.elapsed());
    }

    /// The platform answered the call with `status` (and maybe a `Retry-After`).
    pub fn answered(&self, status: u16, retry_after: Option<Duration>) {
        if status == 429 {
            self.throttled(retry_after.unwrap_or(crate::retry::DEFAULT_RETRY_AFTER));
        } else {
            self.admitted();
        }
    }

    /// The platform answered the call (anything but a 429).
    pub fn admitted(&self) {
        self.bucket.lock().expect("bucket").admitted(Instant::now());
    }

    /// The platform answered 429, asking for `retry_after`: every call of the run waits that
    /// long, and the bucket's rate is cut.
    pub fn throttled(&self, retry_after: Duration) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let until = crate::retry::later(now, retry_after);
        {
            let mut p = self.pause_until.lock().expect("pause");
            if p.is_none_or(|cur| cur < until) {
                *p = Some(until);
            }
        }
        let mut b = self.bucket.lock().expect("bucket");
        b.throttled(now, retry_after);
        tracing::info!(
            rate = format!("{:.2}", b.rate),
            "the platform refused a call (429): pacing the run's calls"
        );
    }

    pub fn stats(&self) -> Stats {
        Stats {
            throttled: self.throttled.load(Ordering::Relaxed),
            waited: Duration::from_micros(self.waited_us.load(Ordering::Relaxed)),
        }
    }

    fn count_wait(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.waited_us.fetch_add(us, Ordering::Relaxed);
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_until_the_first_429_then_cut_to_what_was_admitted() {
        let t0 = Instant::now();
        let mut b = Bucket::new(t0);
        for i in 0..20 {
            b.admitted(t0 + Duration::from_millis(25 * i));
            assert!(
                b.take(t0 + Duration::from_millis(25 * i)).is_none(),
                "unpaced"
            );
        }
        // 20 calls admitted in 0.5 s, then told to wait 9.5 s: 2 calls per second.
        b.throttled(t0 + Duration::from_millis(500), Duration::from_millis(9500));
        assert!((b.max_rate - 2.0).abs() < 0.1, "{b:?}");
        assert!((b.rate - 2.0 * BETA).abs() < 0.1, "{b:?}");
        // Grown back along the cubic: W_max again as long after the pause as the wait asked.
        assert!((b.climb - 9.5).abs() < 0.01);
        let back = t0 + Duration::from_secs(10) + Duration::from_secs_f64(b.climb);
        b.measured = 10.0;
        b.admitted(back);
        assert!((b.rate - b.max_rate).abs() < 0.2, "{b:?}");
    }

    #[tokio::test]
    async fn a_retry_after_pauses_every_call() {
        let l = Limiter::default();
        l.throttled(Duration::from_millis(300));
        let t = Instant::now();
        l.paused().await;
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(l.stats().throttled, 1);
        assert!(l.stats().waited >= Duration::from_millis(250));
    }
}
