//! API keys as a team admin manages them: identified by their visible prefix, optionally
//! labelled, listed without their secret, revoked by id.
//!
//! A key reads `smsd_<id>_<secret>`: the id (8 lowercase letters and digits) is public and names
//! the key in lists and URLs; only a hash of the whole key is stored, so the secret is shown once,
//! when the key is created.

use std::fmt;

use secrecy::SecretString;

use crate::ids::UserId;
use crate::message::Timestamp;

/// The longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

/// A key's public id: its 8-character prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyId(String);

/// An id that is not 8 lowercase letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an API key id is 8 lowercase letters and digits (the part after smsd_)")]
pub struct MalformedApiKeyId;

impl ApiKeyId {
    /// The length of an id.
    pub const LEN: usize = 8;

    /// Reads an id.
    ///
    /// # Errors
    /// [`MalformedApiKeyId`] for anything but 8 characters of `[a-z0-9]`.
    pub fn parse(value: &str) -> Result<Self, MalformedApiKeyId> {
        let well_formed = value.len() == Self::LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        well_formed
            .then(|| Self(value.to_owned()))
            .ok_or(MalformedApiKeyId)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key is for, in the admin's words: 1 to [`MAX_LABEL_CHARS`] characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyLabel(String);

/// A label that is empty, too long or has control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a label is 1 to {MAX_LABEL_CHARS} characters without control characters")]
pub struct InvalidApiKeyLabel;

impl ApiKeyLabel {
    /// Reads a label, trimmed.
    ///
    /// # Errors
    /// [`InvalidApiKeyLabel`] when empty after trimming, longer than [`MAX_LABEL_CHARS`] or
    /// holding control characters.
    pub fn parse(value: &str) -> Result<Self, InvalidApiKeyLabel> {
        let value = value.trim();
        let chars = value.chars().count();
        if chars == 0 || chars > MAX_LABEL_CHARS || value.chars().any(char::is_control) {
            return Err(InvalidApiKeyLabel);
        }
        Ok(Self(value.to_owned()))
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeySummary {
    /// Its id.
    pub id: ApiKeyId,
    /// What it is for.
    pub label: Option<ApiKeyLabel>,
    /// Its owner.
    pub user_id: UserId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last authenticated a request (updated at most every few minutes).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A key just created: the only time its secret is seen.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The key as it will be listed.
    pub summary: ApiKeySummary,
    /// The whole key, `smsd_<id>_<secret>`.
    pub key: SecretString,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_eight_lowercase_letters_and_digits() {
        assert!(ApiKeyId::parse("abcd1234").is_ok());
        for bad in [
            "",
            "abcd123",
            "abcd12345",
            "ABCD1234",
            "abcd-234",
            "abcd 234",
            "ábcd1234",
        ] {
            assert_eq!(ApiKeyId::parse(bad), Err(MalformedApiKeyId), "{bad:?}");
        }
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(
            ApiKeyLabel::parse("  CI deploys ").map(|l| l.as_str().to_owned()),
            Ok("CI deploys".to_owned())
        );
        assert!(ApiKeyLabel::parse(&"é".repeat(MAX_LABEL_CHARS)).is_ok());
        for bad in [
            String::new(),
            "   ".to_owned(),
            "x".repeat(MAX_LABEL_CHARS + 1),
            "tab\there".to_owned(),
        ] {
            assert_eq!(ApiKeyLabel::parse(&bad), Err(InvalidApiKeyLabel), "{bad:?}");
        }
    }
}
