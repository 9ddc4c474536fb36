//! Retention: after a configured number of days a message's body is redacted and, if configured,
//! its phone numbers masked; its status history is kept (it holds no text).
//!
//! The rule is here; the store applies it in batches ([`crate::ports::MessageRetention`]), each
//! message once, whichever replica runs it.

use std::time::Duration;

use crate::message::Timestamp;

/// What retention does, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Messages created longer ago than this are redacted.
    pub after: Duration,
    /// Whether their phone numbers are masked too.
    pub mask_numbers: bool,
}

/// How many digits of a masked number stay visible (enough to tell two numbers apart on a
/// page, too few to call anyone).
pub const VISIBLE_DIGITS: usize = 2;

impl RetentionPolicy {
    /// Retention after `days` days.
    pub fn after_days(days: u32, mask_numbers: bool) -> Self {
        Self {
            after: Duration::from_secs(u64::from(days) * 24 * 3600),
            mask_numbers,
        }
    }

    /// Messages created before this time are due.
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        chrono::Duration::from_std(self.after)
            .ok()
            .and_then(|age| now.checked_sub_signed(age))
            .unwrap_or(Timestamp::MIN_UTC)
    }

    /// The stored form of an address once redacted: masked when the policy says so.
    pub fn redact_address(&self, address: &str) -> String {
        if self.mask_numbers {
            mask_digits(address)
        } else {
            address.to_owned()
        }
    }
}

/// `address` with every digit but the last [`VISIBLE_DIGITS`] replaced by `*`:
/// `+14155550100` becomes `+*********00`.
pub fn mask_digits(address: &str) -> String {
    let digits = address.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    address
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + VISIBLE_DIGITS <= digits {
                    '*'
                } else {
                    c
                }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_last_two_digits_and_their_punctuation() {
        for (given, masked) in [
            ("+14155550100", "+*********00"),
            ("whatsapp:+447700900123", "whatsapp:+**********23"),
            ("12", "12"),
        ] {
            assert_eq!(mask_digits(given), masked, "{given}");
        }
        assert_eq!(
            mask_digits("Acme"),
            "Acme",
            "an alphanumeric sender has no digits"
        );
    }

    #[test]
    fn the_cutoff_is_the_age_before_now_and_masking_follows_the_policy() {
        let now = chrono::Utc::now();
        let policy = RetentionPolicy::after_days(30, false);
        assert_eq!(policy.cutoff(now), now - chrono::Duration::days(30));
        assert_eq!(policy.redact_address("+14155550100"), "+14155550100");
        let masking = RetentionPolicy::after_days(30, true);
        assert_eq!(masking.redact_address("+14155550100"), "+*********00");
    }
}
