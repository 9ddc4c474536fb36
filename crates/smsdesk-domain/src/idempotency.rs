//! Idempotent sends: a client that retries a send after a timeout, with the same
//! `Idempotency-Key`, must not send the SMS twice.
//!
//! The rules, for one team and one key:
//! - the first request claims the key and sends; its answer (the message it created) is kept for
//!   [`KEEP_ANSWER_FOR`] (24 h), and the same key with the same request then answers with that
//!   message again, sending nothing;
//! - while the first is still running, the same key is refused ([`IdempotencyClaim::InProgress`]);
//!   a claim whose request died mid-way frees itself after [`CLAIM_LOCK`];
//! - the same key with a different request is refused ([`IdempotencyClaim::Mismatch`]);
//! - a send that failed keeps nothing: the client may retry with the same key.
//!
//! The store decides atomically ([`crate::ports::IdempotencyStore`]), so the rules hold across
//! replicas.

use std::time::Duration;

/// How long a completed request's answer is kept for replays.
pub const KEEP_ANSWER_FOR: Duration = Duration::from_secs(24 * 3600);

/// How long a claim holds while its request runs; past it, a request that died is taken over.
pub const CLAIM_LOCK: Duration = Duration::from_secs(300);

/// The longest key.
pub const MAX_KEY_CHARS: usize = 255;

/// A client's idempotency key: 1 to [`MAX_KEY_CHARS`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// A key that is empty, too long or not visible ASCII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an Idempotency-Key is 1 to {MAX_KEY_CHARS} visible ASCII characters (no spaces)")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// Reads a key as the client sent it (not trimmed: a key is opaque).
    ///
    /// # Errors
    /// [`InvalidIdempotencyKey`] for an empty, too long or non-printable key.
    pub fn parse(value: &str) -> Result<Self, InvalidIdempotencyKey> {
        if value.is_empty()
            || value.len() > MAX_KEY_CHARS
            || !value.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(value.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is this request's: go ahead, then complete or release it.
    Claimed,
    /// A request with this key is still running.
    InProgress,
    /// A request with this key completed; its answer is the message with this SID.
    Completed(crate::ids::MessageSid),
    /// The key was used for a different request.
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255_characters() {
        for good in [
            "a",
            "order-4711/retry",
            &"k".repeat(255),
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert_eq!(
                IdempotencyKey::parse(good).map(|k| k.as_str().to_owned()),
                Ok(good.to_owned())
            );
        }
        for bad in [
            "",
            " ",
            "with space",
            "tab\t",
            "é",
            &"k".repeat(256),
            "line\n",
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(InvalidIdempotencyKey),
                "{bad:?}"
            );
        }
    }
}
