//! How the client talks to Twilio: where, how long to wait, how to retry, how many at once.

use std::time::Duration;

/// Twilio's public API.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// The client's settings. `TwilioConfig::default()` is right for the real Twilio.
#[derive(Debug, Clone, PartialEq)]
pub struct TwilioConfig {
    /// Scheme, host and port of the API, without a trailing slash (the simulator's `base_url()`
    /// in tests and offline runs).
    pub base_url: String,
    /// The longest a TCP + TLS connection may take.
    pub connect_timeout: Duration,
    /// The longest one HTTP attempt may take, body included.
    pub request_timeout: Duration,
    /// When and how to try again.
    pub retry: RetryPolicy,
    /// Requests in flight to one Twilio account at most, across every caller in the process.
    /// Twilio answers 429 (20429) above an undisclosed per-account concurrency.
    pub per_account_concurrency: usize,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            per_account_concurrency: 50,
        }
    }
}

/// Retries with full-jitter exponential backoff, as Twilio's own libraries do: before retry `n`
/// (0-based) wait `random() * min(max_delay, base_delay * 2^n)`, or Twilio's `Retry-After` when it
/// sent one.
///
/// A fetch is retried on 429, 5xx, timeouts and connection errors; a send only on 429, because
/// after a timeout or 5xx the message may already have gone out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// The backoff's first ceiling.
    pub base_delay: Duration,
    /// The backoff's largest ceiling.
    pub max_delay: Duration,
    /// No retry starts if its wait would end later than this after the first attempt began; a
    /// `Retry-After` beyond it ends the retries and is handed to the caller.
    pub max_total_time: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(3),
            max_total_time: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The backoff ceiling before retry `retry` (0-based): `min(max_delay, base_delay * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        self.base_delay
            .checked_mul(factor)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }

    /// The wait before retry `retry`: Twilio's `retry_after` if given, else the ceiling scaled by
    /// `jitter` (a random number in `[0, 1)`).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        match retry_after {
            Some(wait) => wait,
            None => self.ceiling(retry).mul_f64(jitter.clamp(0.0, 1.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u128> = (0..8).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 3000, 3000, 3000]);
        assert_eq!(policy.ceiling(u32::MAX), policy.max_delay, "no overflow");
    }

    #[test]
    fn the_delay_is_jittered_below_the_ceiling_unless_twilio_says_when() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(2, None, 0.0), Duration::ZERO);
        assert_eq!(policy.delay(2, None, 0.5), Duration::from_millis(200));
        assert_eq!(
            policy.delay(2, Some(Duration::from_secs(7)), 0.5),
            Duration::from_secs(7),
            "Retry-After wins over the backoff"
        );
    }
}
