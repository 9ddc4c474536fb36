//! Message statuses and directions as Twilio reports them.
//!
//! Twilio documents 13 statuses and adds new ones without notice, so [`MessageStatus`] keeps an
//! unrecognised string verbatim instead of failing: a webhook must never be lost because Twilio
//! learned a new word.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A message's delivery status.
///
/// The order in which statuses may follow each other is [`MessageStatus::rank`]; whether a status
/// can still change is [`MessageStatus::is_terminal`]. The rule that combines them lives in
/// [`crate::rules`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    /// Scheduled to be sent later.
    Scheduled,
    /// Accepted by a messaging service, not yet queued.
    Accepted,
    /// Queued at Twilio.
    Queued,
    /// Being handed to the carrier.
    Sending,
    /// Handed to the carrier. Can be the last status ever seen: not every carrier reports back.
    Sent,
    /// Some, not all, parts delivered; Twilio may still resolve it.
    PartiallyDelivered,
    /// Delivered to the handset.
    Delivered,
    /// Read by the recipient (WhatsApp/RCS); follows `delivered`.
    Read,
    /// The carrier could not deliver it.
    Undelivered,
    /// Could not be sent at all (may happen before `sent`).
    Failed,
    /// A scheduled message that was cancelled.
    Canceled,
    /// Inbound: being received.
    Receiving,
    /// Inbound: received.
    Received,
    /// A status this version does not know, kept exactly as Twilio wrote it.
    Unknown(String),
}

/// Every status Twilio documents, in rank order (useful for tables and property tests).
pub const KNOWN_STATUSES: [MessageStatus; 13] = [
    MessageStatus::Scheduled,
    MessageStatus::Accepted,
    MessageStatus::Receiving,
    MessageStatus::Queued,
    MessageStatus::Sending,
    MessageStatus::Sent,
    MessageStatus::PartiallyDelivered,
    MessageStatus::Delivered,
    MessageStatus::Undelivered,
    MessageStatus::Failed,
    MessageStatus::Canceled,
    MessageStatus::Received,
    MessageStatus::Read,
];

impl MessageStatus {
    /// Reads Twilio's spelling. Never fails: an unrecognised value becomes [`MessageStatus::Unknown`].
    /// Matching is exact (Twilio always writes lower case); surrounding whitespace is trimmed.
    pub fn parse(value: &str) -> Self {
        match value.trim() {
            "scheduled" => Self::Scheduled,
            "accepted" => Self::Accepted,
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "partially_delivered" => Self::PartiallyDelivered,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "receiving" => Self::Receiving,
            "received" => Self::Received,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// Reads Twilio's spelling and refuses anything unrecognised. For client input (query
    /// filters), where an unknown word is a mistake rather than news from Twilio.
    ///
    /// # Errors
    /// [`UnknownStatus`] carrying the rejected value.
    pub fn parse_known(value: &str) -> Result<Self, UnknownStatus> {
        match Self::parse(value) {
            Self::Unknown(raw) => Err(UnknownStatus(raw)),
            known => Ok(known),
        }
    }

    /// Reads a status Twilio reported (a callback's `MessageStatus`): a status word smsdesk does
    /// not know yet is news and becomes [`MessageStatus::Unknown`], but something that is not a
    /// status word at all (empty, other characters than lower-case letters, digits, `-` and `_`,
    /// longer than [`MAX_STATUS_WORD_LENGTH`]) is malformed input. Surrounding whitespace is
    /// trimmed.
    ///
    /// # Errors
    /// [`MalformedStatus`] when the value is not a status word.
    pub fn parse_reported(value: &str) -> Result<Self, MalformedStatus> {
        let word = value.trim();
        let is_word = (1..=MAX_STATUS_WORD_LENGTH).contains(&word.len())
            && word.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-_".contains(&byte)
            });
        if is_word {
            Ok(Self::parse(word))
        } else {
            Err(MalformedStatus)
        }
    }

    /// Twilio's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Accepted => "accepted",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::PartiallyDelivered => "partially_delivered",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Receiving => "receiving",
            Self::Received => "received",
            Self::Unknown(raw) => raw,
        }
    }

    /// A final status: Twilio will not move the message on (except `delivered → read`, which
    /// [`crate::rules`] allows explicitly). Bulk refresh skips terminal messages.
    ///
    /// `partially_delivered` is not terminal: Twilio may still resolve it to delivered or
    /// undelivered, so it stays worth polling. An unknown status is not terminal either: we cannot
    /// know, and polling it again is the safe side.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Delivered
                | Self::Read
                | Self::Undelivered
                | Self::Failed
                | Self::Canceled
                | Self::Received
        )
    }

    /// A failure status, whose error code and message are worth keeping.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed | Self::Undelivered)
    }

    /// Progress along the life of a message; a status may only be replaced by one of higher rank.
    /// `None` for [`MessageStatus::Unknown`], which cannot be placed.
    ///
    /// `queued < sending < sent < partially_delivered < terminal`; all terminal statuses share
    /// one rank except `read`, which sits above `delivered`. Inbound `receiving` ranks with
    /// `queued` so that `received` (terminal) follows it.
    pub fn rank(&self) -> Option<u8> {
        Some(match self {
            Self::Scheduled => 0,
            Self::Accepted => 1,
            Self::Queued | Self::Receiving => 2,
            Self::Sending => 3,
            Self::Sent => 4,
            Self::PartiallyDelivered => 5,
            Self::Delivered
            | Self::Undelivered
            | Self::Failed
            | Self::Canceled
            | Self::Received => 6,
            Self::Read => 7,
            Self::Unknown(_) => return None,
        })
    }

    /// Whether this is one of the 13 documented statuses.
    pub fn is_known(&self) -> bool {
        !matches!(self, Self::Unknown(_))
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MessageStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Ok(Self::parse(&raw))
    }
}

/// The longest status word [`MessageStatus::parse_reported`] accepts: Twilio's longest,
/// `partially_delivered`, has 19 characters.
pub const MAX_STATUS_WORD_LENGTH: usize = 32;

/// A reported status that is not a status word (see [`MessageStatus::parse_reported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a status must be a status word (lower-case letters, digits, '-' or '_', at most \
     {MAX_STATUS_WORD_LENGTH} characters)"
)]
pub struct MalformedStatus;

/// A status string that is not one of Twilio's 13.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status '{0}': expected one of accepted, scheduled, canceled, queued, sending, sent, \
     failed, delivered, undelivered, receiving, received, read, partially_delivered"
)]
pub struct UnknownStatus(pub String);

/// Which way a message travelled, in Twilio's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Received by one of the team's numbers.
    Inbound,
    /// Sent through the REST API (what smsdesk sends).
    OutboundApi,
    /// Sent during a call.
    OutboundCall,
    /// Sent as a TwiML reply to an inbound message.
    OutboundReply,
}

impl Direction {
    /// Reads Twilio's spelling (`inbound`, `outbound-api`, `outbound-call`, `outbound-reply`).
    ///
    /// # Errors
    /// [`UnknownDirection`] for anything else.
    pub fn parse(value: &str) -> Result<Self, UnknownDirection> {
        match value {
            "inbound" => Ok(Self::Inbound),
            "outbound-api" => Ok(Self::OutboundApi),
            "outbound-call" => Ok(Self::OutboundCall),
            "outbound-reply" => Ok(Self::OutboundReply),
            other => Err(UnknownDirection(other.to_owned())),
        }
    }

    /// Twilio's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::OutboundApi => "outbound-api",
            Self::OutboundCall => "outbound-call",
            Self::OutboundReply => "outbound-reply",
        }
    }

    /// Any of the three outbound kinds: the messages whose delivery status is worth refreshing.
    pub fn is_outbound(self) -> bool {
        !matches!(self, Self::Inbound)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A direction string that is not one of Twilio's four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown direction '{0}': expected one of inbound, outbound-api, outbound-call, outbound-reply"
)]
pub struct UnknownDirection(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_status_word_is_kept_even_if_unknown_but_a_non_word_is_malformed() {
        assert_eq!(
            MessageStatus::parse_reported(" delivered\n"),
            Ok(MessageStatus::Delivered)
        );
        assert_eq!(
            MessageStatus::parse_reported("held_for-review2"),
            Ok(MessageStatus::Unknown("held_for-review2".to_owned()))
        );
        let too_long = "a".repeat(MAX_STATUS_WORD_LENGTH + 1);
        for malformed in [
            "",
            "   ",
            "Delivered",
            "<b>sent</b>",
            "sent!",
            too_long.as_str(),
        ] {
            assert_eq!(
                MessageStatus::parse_reported(malformed),
                Err(MalformedStatus),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn every_known_status_round_trips_through_its_spelling() {
        for status in KNOWN_STATUSES {
            assert_eq!(MessageStatus::parse(status.as_str()), status);
            assert!(status.is_known());
            assert!(status.rank().is_some(), "{status} must have a rank");
        }
    }

    #[test]
    fn an_unrecognised_status_is_kept_verbatim_and_unranked() {
        let status = MessageStatus::parse("teleported");
        assert_eq!(status, MessageStatus::Unknown("teleported".into()));
        assert_eq!(status.as_str(), "teleported");
        assert_eq!(status.rank(), None);
        assert!(!status.is_terminal());
        assert!(MessageStatus::parse_known("teleported").is_err());
        assert!(
            MessageStatus::parse_known("Delivered").is_err(),
            "case matters"
        );
    }

    #[test]
    fn terminal_statuses_are_exactly_the_final_six() {
        let terminal: Vec<&str> = KNOWN_STATUSES
            .iter()
            .filter(|s| s.is_terminal())
            .map(MessageStatus::as_str)
            .collect();
        assert_eq!(
            terminal,
            [
                "delivered",
                "undelivered",
                "failed",
                "canceled",
                "received",
                "read"
            ]
        );
    }

    #[test]
    fn ranks_follow_the_outbound_life_cycle() {
        let path = [
            "scheduled",
            "accepted",
            "queued",
            "sending",
            "sent",
            "delivered",
            "read",
        ];
        let ranks: Vec<u8> = path
            .iter()
            .map(|s| MessageStatus::parse(s).rank().unwrap_or(u8::MAX))
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
    }

    #[test]
    fn statuses_serialize_as_twilio_spells_them() {
        let json = serde_json::to_string(&MessageStatus::PartiallyDelivered).unwrap_or_default();
        assert_eq!(json, "\"partially_delivered\"");
        let back: MessageStatus =
            serde_json::from_str("\"brand_new\"").unwrap_or(MessageStatus::Sent);
        assert_eq!(back, MessageStatus::Unknown("brand_new".into()));
    }

    #[test]
    fn directions_parse_twilio_spellings_only() {
        for d in [
            Direction::Inbound,
            Direction::OutboundApi,
            Direction::OutboundCall,
            Direction::OutboundReply,
        ] {
            assert_eq!(Direction::parse(d.as_str()), Ok(d));
        }
        assert!(Direction::parse("outbound").is_err());
        assert!(!Direction::Inbound.is_outbound());
        assert!(Direction::OutboundReply.is_outbound());
    }
}
