//! Identifiers and addresses, validated once at the edge so the rest of the code can trust them.
//!
//! Every type here has private fields and a `parse`/`new` constructor that rejects bad input with
//! an [`IdError`] naming the field and the reason. A SID that passed `parse` is safe to put in a URL
//! path: it contains only ASCII letters and hex digits.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier or address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    /// What was being parsed, e.g. `"message SID"`.
    pub kind: &'static str,
    /// What is wrong with the value, in words a client can act on.
    pub reason: String,
}

impl IdError {
    fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }
}

/// Checks `value` is one of `prefixes` followed by exactly 32 hex digits (Twilio's SID shape).
fn check_sid(kind: &'static str, value: &str, prefixes: &[&str]) -> Result<(), IdError> {
    let expected = || {
        let names: Vec<String> = prefixes.iter().map(|p| format!("'{p}'")).collect();
        format!(
            "expected {} followed by 32 hexadecimal digits (34 characters)",
            names.join(" or ")
        )
    };
    let Some(prefix) = prefixes.iter().find(|p| value.starts_with(**p)) else {
        return Err(IdError::new(kind, expected()));
    };
    let rest = &value[prefix.len()..];
    if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdError::new(kind, expected()));
    }
    Ok(())
}

macro_rules! sid_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, [$($prefix:literal),+]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            ///
            /// # Errors
            /// [`IdError`] when the prefix, length or hex digits are wrong.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_sid($kind, value, &[$($prefix),+])?;
                Ok(Self(value.to_owned()))
            }

            /// The SID as Twilio writes it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

sid_type!(
    /// A Twilio message SID: `SM` (SMS) or `MM` (MMS) followed by 32 hex digits.
    MessageSid, "message SID", ["SM", "MM"]
);
sid_type!(
    /// A Twilio account SID: `AC` followed by 32 hex digits. A public identifier, stored in
    /// plaintext so inbound webhooks can be matched to their team.
    AccountSid, "account SID", ["AC"]
);
sid_type!(
    /// A Twilio messaging service SID: `MG` followed by 32 hex digits.
    MessagingServiceSid, "messaging service SID", ["MG"]
);
sid_type!(
    /// A Twilio API key SID: `SK` followed by 32 hex digits (used with its secret instead of the
    /// account's auth token).
    ApiKeySid, "API key SID", ["SK"]
);

macro_rules! positive_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// Wraps a database id.
            ///
            /// # Errors
            /// [`IdError`] when `value` is zero or negative (ids start at 1).
            pub fn new(value: i64) -> Result<Self, IdError> {
                if value < 1 {
                    return Err(IdError::new($kind, format!("must be a positive integer, got {value}")));
                }
                Ok(Self(value))
            }

            /// The raw database id.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = IdError;
            fn try_from(value: i64) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

positive_id!(
    /// A team (tenant). Every stored row belongs to exactly one team and every query is scoped by it.
    TeamId, "team id"
);
positive_id!(
    /// A user within a team.
    UserId, "user id"
);

/// A phone number in E.164 form: `+`, a non-zero country digit, at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Validates an E.164 number. Spaces, dashes, dots and parentheses are not accepted: the
    /// caller normalises, so that what is stored is exactly what Twilio is sent.
    ///
    /// # Errors
    /// [`IdError`] naming what is wrong (missing `+`, a non-digit, too long or too short).
    pub fn parse(value: &str) -> Result<Self, IdError> {
        const KIND: &str = "phone number";
        let Some(digits) = value.strip_prefix('+') else {
            return Err(IdError::new(
                KIND,
                "expected E.164 form starting with '+', e.g. +14155550100",
            ));
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::new(KIND, "only digits may follow the '+'"));
        }
        if digits.starts_with('0') {
            return Err(IdError::new(KIND, "the country code cannot start with 0"));
        }
        if !(2..=15).contains(&digits.len()) {
            return Err(IdError::new(
                KIND,
                format!("expected 2 to 15 digits, got {}", digits.len()),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The number in E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Where a message goes to or comes from at Twilio's end: an E.164 number or, for channels such
/// as WhatsApp, an address like `whatsapp:+14155550100`. Kept verbatim; only length and control
/// characters are checked, because Twilio owns the address formats.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Address(String);

impl Address {
    /// Wraps an address as Twilio reported it.
    ///
    /// # Errors
    /// [`IdError`] when empty, longer than 256 bytes, or containing control characters.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
            return Err(IdError::new(
                "address",
                "expected 1 to 256 printable characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The address as Twilio writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<PhoneNumber> for Address {
    fn from(number: PhoneNumber) -> Self {
        Self(number.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest [`MessageReference`], in characters.
pub const MAX_REFERENCE_CHARS: usize = 128;

/// The caller's own identifier for a message (an order number, a ticket id), stored with it and
/// searchable: 1 to [`MAX_REFERENCE_CHARS`] characters, no control characters, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MessageReference(String);

impl MessageReference {
    /// Reads a reference.
    ///
    /// # Errors
    /// [`IdError`] when empty, longer than [`MAX_REFERENCE_CHARS`] characters, or holding
    /// control characters.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let chars = value.chars().count();
        if chars == 0 || chars > MAX_REFERENCE_CHARS || value.chars().any(char::is_control) {
            return Err(IdError::new(
                "reference",
                "expected 1 to 128 characters without control characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The reference as the caller gave it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reference_is_one_to_128_printable_characters() {
        use super::MessageReference;
        assert!(MessageReference::parse("order-42").is_ok());
        assert!(MessageReference::parse(&"é".repeat(128)).is_ok());
        assert!(MessageReference::parse(&"é".repeat(129)).is_err());
        assert!(MessageReference::parse("").is_err());
        assert!(MessageReference::parse("a\nb").is_err());
    }

    use super::*;

    const HEX32: &str = "0123456789abcdefABCDEF0123456789";

    #[test]
    fn message_sids_accept_sm_and_mm_with_32_hex_digits() {
        assert!(MessageSid::parse(&format!("SM{HEX32}")).is_ok());
        assert!(MessageSid::parse(&format!("MM{HEX32}")).is_ok());
    }

    #[test]
    fn malformed_sids_are_rejected_with_the_expected_shape() {
        let cases = [
            ("", "empty"),
            ("SM", "prefix only"),
            (&*format!("AC{HEX32}"), "account prefix for a message"),
            (&*format!("sm{HEX32}"), "lower-case prefix"),
            (&*format!("SM{}", &HEX32[..31]), "31 digits"),
            (&*format!("SM{HEX32}0"), "33 digits"),
            (&*format!("SM{}g", &HEX32[..31]), "non-hex digit"),
            ("SM../../Accounts/AC1/Messages", "path traversal"),
            (&*format!("SM{}é", &HEX32[..30]), "multi-byte character"),
        ];
        for (value, why) in cases {
            let err = MessageSid::parse(value).expect_err(why);
            assert_eq!(err.kind, "message SID", "{why}");
            assert!(
                err.reason.contains("32 hexadecimal"),
                "{why}: {}",
                err.reason
            );
        }
    }

    #[test]
    fn account_and_service_sids_check_their_own_prefix() {
        assert!(AccountSid::parse(&format!("AC{HEX32}")).is_ok());
        assert!(AccountSid::parse(&format!("SM{HEX32}")).is_err());
        assert!(MessagingServiceSid::parse(&format!("MG{HEX32}")).is_ok());
        assert!(ApiKeySid::parse(&format!("SK{HEX32}")).is_ok());
        assert!(ApiKeySid::parse(&format!("AC{HEX32}")).is_err());
    }

    #[test]
    fn sids_deserialize_only_when_valid() {
        let ok: Result<MessageSid, _> = serde_json::from_str(&format!("\"SM{HEX32}\""));
        assert!(ok.is_ok());
        let bad: Result<MessageSid, _> = serde_json::from_str("\"SM123\"");
        assert!(bad.is_err());
    }

    #[test]
    fn ids_must_be_positive() {
        assert_eq!(TeamId::new(1).map(TeamId::get), Ok(1));
        assert!(TeamId::new(0).is_err());
        assert!(UserId::new(-5).is_err());
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(PhoneNumber::parse("+14155550100").is_ok());
        assert!(PhoneNumber::parse("+447700900123").is_ok());
        let cases = [
            ("14155550100", "missing plus"),
            ("+1 415 555 0100", "spaces"),
            ("+0123456", "leading zero country code"),
            ("+1234567890123456", "16 digits"),
            ("+1", "one digit"),
            ("+", "no digits"),
            ("+1415abc0100", "letters"),
        ];
        for (value, why) in cases {
            assert!(PhoneNumber::parse(value).is_err(), "{why}");
        }
    }

    #[test]
    fn addresses_keep_channel_prefixes_but_refuse_control_characters() {
        assert!(Address::parse("whatsapp:+14155550100").is_ok());
        assert!(Address::parse("").is_err());
        assert!(Address::parse("+1415\n5550100").is_err());
    }
}
