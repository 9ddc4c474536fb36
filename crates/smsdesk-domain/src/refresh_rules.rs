//! The rules of a refresh request: the bulk window, the size cap, cool-downs, concurrency.

use std::time::Duration;

use serde::Serialize;

use crate::message::Timestamp;

/// How far back a bulk refresh looks, in whole hours (1 to 168, default 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RefreshWindow(u32);

/// A `hours` value outside 1..=168 or not a whole number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hours must be a whole number from 1 to 168, got '{given}'")]
pub struct RefreshWindowError {
    /// What the client sent, verbatim (trimmed to 32 characters so an abusive value cannot bloat
    /// an error response).
    pub given: String,
}

impl RefreshWindow {
    /// The window when the client names none.
    pub const DEFAULT_HOURS: u32 = 24;
    /// The smallest window.
    pub const MIN_HOURS: u32 = 1;
    /// The largest window: one week.
    pub const MAX_HOURS: u32 = 168;

    /// Builds a window.
    ///
    /// # Errors
    /// [`RefreshWindowError`] when `hours` is outside 1..=168. Never clamps silently: a client that
    /// asked for 500 hours should learn it did not get them.
    pub fn new(hours: u32) -> Result<Self, RefreshWindowError> {
        if (Self::MIN_HOURS..=Self::MAX_HOURS).contains(&hours) {
            Ok(Self(hours))
        } else {
            Err(RefreshWindowError {
                given: hours.to_string(),
            })
        }
    }

    /// Reads the `hours` query value as a client wrote it; `None` (absent) is the default.
    /// Accepts only ASCII digits: `1.5`, `-1`, `+3`, `abc`, `1e2` and empty are refused.
    ///
    /// # Errors
    /// [`RefreshWindowError`] carrying the given text.
    pub fn parse(raw: Option<&str>) -> Result<Self, RefreshWindowError> {
        let Some(raw) = raw else {
            return Ok(Self(Self::DEFAULT_HOURS));
        };
        let refuse = || RefreshWindowError {
            given: raw.chars().take(32).collect(),
        };
        if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse());
        }
        let hours: u32 = raw.parse().map_err(|_| refuse())?;
        Self::new(hours).map_err(|_| refuse())
    }

    /// The window in hours.
    pub fn hours(self) -> u32 {
        self.0
    }

    /// The oldest creation time a bulk refresh considers, looking back from `now`.
    pub fn since(self, now: Timestamp) -> Timestamp {
        now - chrono::Duration::hours(i64::from(self.0))
    }
}

impl Default for RefreshWindow {
    fn default() -> Self {
        Self(Self::DEFAULT_HOURS)
    }
}

/// Tunable limits of the refresh engine. The defaults are the original's, which match Twilio's
/// advice to avoid needless polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// At most this many messages per bulk refresh (newest first).
    pub max_bulk_messages: usize,
    /// At most this many provider calls in flight per refresh request (a sliding window).
    pub max_in_flight: usize,
    /// A message is asked of Twilio at most once per this period.
    pub message_cooldown: Duration,
    /// A user may start a bulk refresh at most once per this period.
    pub bulk_cooldown: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            max_bulk_messages: 100,
            max_in_flight: 10,
            message_cooldown: Duration::from_secs(60),
            bulk_cooldown: Duration::from_secs(60),
        }
    }
}

/// One replica's share of a Twilio account's cap of requests in flight, when `live` replicas
/// share it: `cap / live`, at least 1 (a fleet larger than the cap then exceeds it by at most one
/// request per replica, rather than stalling). With one replica it is the whole cap.
pub fn fleet_share(cap: usize, live: usize) -> usize {
    (cap / live.max(1)).max(1)
}

/// A period for people: `1 minute`, `2 minutes`, `90 seconds`, `1 second`. Cool-down messages
/// use it so they name the configured period, not a fixed one.
pub fn describe_period(secs: u64) -> String {
    let (count, unit) = if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

/// The answer to a cool-down claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "claim")]
pub enum CooldownClaim {
    /// The caller may go ahead; the cool-down now runs from the claim's time.
    Granted,
    /// Someone asked too recently.
    Denied {
        /// Whole seconds until a claim can succeed (at least 1), for `Retry-After`.
        retry_after_secs: u64,
    },
}

impl CooldownClaim {
    /// Decides a claim from the time of the last granted claim. Used by every limiter so they all
    /// round the same way: the wait is rounded up to whole seconds and is never 0.
    pub fn decide(last_granted: Option<Timestamp>, now: Timestamp, cooldown: Duration) -> Self {
        // No cool-down: nothing to wait for, even behind a concurrent claim stamped a moment
        // later than ours (another request, or another replica's clock).
        let Some(last) = last_granted.filter(|_| !cooldown.is_zero()) else {
            return Self::Granted;
        };
        let wait = chrono::Duration::from_std(cooldown).unwrap_or(chrono::Duration::MAX);
        // A cool-down beyond the calendar's end never ends: denied for all of it.
        let Some(available_at) = last.checked_add_signed(wait) else {
            return Self::Denied {
                retry_after_secs: cooldown.as_secs().max(1),
            };
        };
        if now >= available_at {
            return Self::Granted;
        }
        let wait_ms = (available_at - now).num_milliseconds().max(1);
        let wait_ms = u64::try_from(wait_ms).unwrap_or(u64::MAX);
        Self::Denied {
            retry_after_secs: wait_ms.div_ceil(1000).max(1),
        }
    }

    /// Whether the claim went through.
    pub fn is_granted(self) -> bool {
        matches!(self, Self::Granted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn replicas_split_the_cap_so_their_sum_never_exceeds_it() {
        for (cap, live, share) in [
            (50, 1, 50),
            (50, 2, 25),
            (50, 3, 16),
            (50, 0, 50),
            (2, 5, 1),
        ] {
            assert_eq!(fleet_share(cap, live), share, "cap {cap}, {live} replicas");
            if live > 0 && live <= cap {
                assert!(share * live <= cap, "cap {cap}, {live} replicas");
            }
        }
    }

    #[test]
    fn a_zero_cooldown_grants_even_behind_a_later_claim() {
        let now = chrono::Utc::now();
        let later = now + chrono::Duration::milliseconds(5);
        assert_eq!(
            CooldownClaim::decide(Some(later), now, Duration::ZERO),
            CooldownClaim::Granted
        );
    }

    #[test]
    fn a_cooldown_past_the_calendars_end_denies_for_all_of_it_without_panicking() {
        let now = chrono::Utc::now();
        assert_eq!(
            CooldownClaim::decide(Some(now), now, Duration::from_secs(u64::MAX)),
            CooldownClaim::Denied {
                retry_after_secs: u64::MAX
            }
        );
        assert_eq!(
            CooldownClaim::decide(None, now, Duration::from_secs(u64::MAX)),
            CooldownClaim::Granted,
            "never claimed: nothing to wait for"
        );
    }

    fn at(secs: i64, millis: u32) -> Timestamp {
        chrono::Utc
            .timestamp_opt(secs, millis * 1_000_000)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn hours_default_to_24_when_absent() {
        assert_eq!(RefreshWindow::parse(None).map(RefreshWindow::hours), Ok(24));
    }

    #[test]
    fn hours_accept_exactly_the_whole_numbers_1_to_168() {
        for (raw, expected) in [
            ("1", Some(1)),
            ("168", Some(168)),
            ("24", Some(24)),
            ("007", Some(7)),
        ] {
            assert_eq!(
                RefreshWindow::parse(Some(raw))
                    .ok()
                    .map(RefreshWindow::hours),
                expected,
                "{raw}"
            );
        }
        let refused = [
            ("0", "below the minimum"),
            ("169", "above the maximum"),
            ("-1", "negative"),
            ("1.5", "fraction"),
            ("abc", "not a number"),
            ("", "empty"),
            (" 24", "leading space"),
            ("+24", "explicit sign"),
            ("1e2", "exponent"),
            ("99999999999999999999", "overflow"),
            ("٣", "non-ASCII digit"),
        ];
        for (raw, why) in refused {
            let err = RefreshWindow::parse(Some(raw)).expect_err(why);
            assert!(err.to_string().contains("1 to 168"), "{why}: {err}");
        }
    }

    #[test]
    fn a_refused_value_is_echoed_at_most_32_characters() {
        let long = "9".repeat(500);
        let err = RefreshWindow::parse(Some(&long)).expect_err("too long");
        assert_eq!(err.given.len(), 32);
    }

    #[test]
    fn the_window_looks_back_from_now() {
        let window = RefreshWindow::new(2).unwrap_or_default();
        assert_eq!(window.since(at(10_000, 0)), at(10_000 - 7_200, 0));
    }

    #[test]
    fn a_first_claim_is_granted() {
        assert!(CooldownClaim::decide(None, at(100, 0), Duration::from_secs(60)).is_granted());
    }

    #[test]
    fn a_claim_inside_the_cooldown_says_when_to_retry_rounded_up() {
        let cases = [
            (at(100, 0), at(100, 0), 60, "at once"),
            (at(100, 0), at(130, 0), 30, "halfway"),
            (at(100, 0), at(159, 1), 1, "a millisecond short of a second"),
            (at(100, 0), at(159, 999), 1, "one millisecond left"),
            (at(100, 0), at(100, 500), 60, "half a second in rounds up"),
        ];
        for (last, now, expected, why) in cases {
            assert_eq!(
                CooldownClaim::decide(Some(last), now, Duration::from_secs(60)),
                CooldownClaim::Denied {
                    retry_after_secs: expected
                },
                "{why}"
            );
        }
    }

    #[test]
    fn a_claim_at_or_after_the_cooldown_is_granted() {
        let last = at(100, 0);
        assert!(
            CooldownClaim::decide(Some(last), at(160, 0), Duration::from_secs(60)).is_granted()
        );
        assert!(
            CooldownClaim::decide(Some(last), at(500, 0), Duration::from_secs(60)).is_granted()
        );
    }

    #[test]
    fn the_default_policy_is_the_originals() {
        let policy = RefreshPolicy::default();
        assert_eq!(policy.max_bulk_messages, 100);
        assert_eq!(policy.max_in_flight, 10);
        assert_eq!(policy.message_cooldown, Duration::from_secs(60));
        assert_eq!(policy.bulk_cooldown, Duration::from_secs(60));
    }
}

#[cfg(test)]
mod period_tests {
    use super::describe_period;

    #[test]
    fn periods_read_as_words_in_the_largest_whole_unit() {
        for (secs, expected) in [
            (1, "1 second"),
            (30, "30 seconds"),
            (60, "1 minute"),
            (90, "90 seconds"),
            (120, "2 minutes"),
            (0, "0 seconds"),
        ] {
            assert_eq!(describe_period(secs), expected, "{secs} s");
        }
    }
}
