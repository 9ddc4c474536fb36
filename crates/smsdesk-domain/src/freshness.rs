//! How long a credential read once may be trusted without reading it again, and the one rule
//! for whether such a copy is still fresh. Every cache of credentials (API keys at the edge,
//! integrations for Twilio's webhooks and for refreshes) uses both, so a revocation or a replaced token reaches
//! every replica within the same bound.

use std::time::Duration;

use crate::Timestamp;

/// How long a credential's copy is trusted: a revoked API key or a replaced auth token stops
/// working on every replica within this long.
pub const CREDENTIALS_FRESH_FOR: Duration = Duration::from_secs(4);

/// How long before `now` something was read at `at`. A time in the future (the wall clock stepped
/// back) counts as infinitely old: a revoked credential must never look fresh because the clock
/// moved.
#[must_use]
pub fn age(now: Timestamp, at: Timestamp) -> Duration {
    (now - at).to_std().unwrap_or(Duration::MAX)
}

/// Whether a copy read at `read_at` is younger than `fresh_for` at `now` (see [`age`]).
#[must_use]
pub fn is_fresh(read_at: Timestamp, now: Timestamp, fresh_for: Duration) -> bool {
    age(now, read_at) < fresh_for
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_fresh_for_the_bound_and_never_from_the_future() {
        let now = chrono::Utc::now();
        let second = chrono::Duration::seconds(1);
        assert!(is_fresh(now - second * 3, now, CREDENTIALS_FRESH_FOR));
        assert!(!is_fresh(now - second * 4, now, CREDENTIALS_FRESH_FOR));
        assert!(!is_fresh(now + second, now, CREDENTIALS_FRESH_FOR));
        assert_eq!(age(now, now + second), Duration::MAX);
    }
}
