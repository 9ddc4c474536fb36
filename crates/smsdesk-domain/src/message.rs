//! Messages and what is observed about them.

use serde::Serialize;

use crate::ids::{AccountSid, Address, MessageReference, MessageSid, TeamId};
use crate::status::{Direction, MessageStatus};

/// A point in time, always UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The parts of a message that change as Twilio delivers it. Kept together because the status
/// rule ([`crate::rules::decide`]) replaces them as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryState {
    /// Where delivery stands.
    pub status: MessageStatus,
    /// Twilio's error code, kept only while the status is a failure.
    pub error_code: Option<u32>,
    /// Twilio's error text, kept only while the status is a failure.
    pub error_message: Option<String>,
    /// How many SMS segments the body used (Twilio bills per segment).
    pub num_segments: Option<u32>,
    /// Twilio's price as its decimal string (negative for a charge, e.g. `"-0.00750"`); kept as text
    /// so no rounding ever happens.
    pub price: Option<String>,
    /// ISO 4217 currency of `price`, e.g. `"USD"`.
    pub price_unit: Option<String>,
}

impl DeliveryState {
    /// A state with only a status, no error or billing details.
    pub fn new(status: MessageStatus) -> Self {
        Self {
            status,
            error_code: None,
            error_message: None,
            num_segments: None,
            price: None,
            price_unit: None,
        }
    }
}

/// Where an observation of a message's status came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ObservationSource {
    /// Twilio's answer when the message was created.
    Send,
    /// A refresh that fetched the message from Twilio's API.
    Poll,
    /// A status callback Twilio posted to us.
    Callback,
    /// An inbound message webhook.
    Inbound,
    /// A sweep of the account's Messages list (a bulk refresh's or the reconciler's).
    Sweep,
    /// The stuck limit passed with no final status: the delivery is declared unknown.
    Timeout,
}

impl ObservationSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Poll => "poll",
            Self::Callback => "callback",
            Self::Inbound => "inbound",
            Self::Sweep => "sweep",
            Self::Timeout => "timeout",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "send" => Self::Send,
            "poll" => Self::Poll,
            "callback" => Self::Callback,
            "inbound" => Self::Inbound,
            "sweep" => Self::Sweep,
            "timeout" => Self::Timeout,
            _ => return None,
        })
    }
}

/// One report of a message's status, from any source. Every observation is recorded, whether or
/// not it changed the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusObservation {
    /// What the source says the state is.
    pub state: DeliveryState,
    /// Who said it.
    pub source: ObservationSource,
    /// When we learned it (Twilio's callbacks carry no timestamp of their own).
    pub observed_at: Timestamp,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Twilio's id for it; unique across all teams.
    pub sid: MessageSid,
    /// The owning team.
    pub team_id: TeamId,
    /// The Twilio account it was sent from or received on (plaintext: a public identifier).
    pub account_sid: AccountSid,
    /// Which way it travelled.
    pub direction: Direction,
    /// Sender.
    pub from: Address,
    /// Recipient.
    pub to: Address,
    /// The text.
    pub body: String,
    /// The sender's own identifier for it, given on send.
    pub reference: Option<MessageReference>,
    /// Current delivery facts.
    pub delivery: DeliveryState,
    /// When it was created at Twilio (or stored, if Twilio did not say).
    pub created_at: Timestamp,
    /// When the stored row last changed.
    pub updated_at: Timestamp,
    /// When a refresh last asked Twilio about it (drives the per-message cool-down).
    pub last_refreshed_at: Option<Timestamp>,
    /// When retention redacted its body (and masked its numbers, if configured).
    pub redacted_at: Option<Timestamp>,
    /// When it was declared stuck: outbound and not final long past the stuck limit, so its
    /// delivery is unknown. It is then no longer a refresh candidate; any later change (a real
    /// receipt, however late) clears it.
    pub delivery_unknown_at: Option<Timestamp>,
}

/// A message to store for the first time (after a send, or on an inbound webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Twilio's id.
    pub sid: MessageSid,
    /// The owning team.
    pub team_id: TeamId,
    /// The Twilio account.
    pub account_sid: AccountSid,
    /// Which way it travelled.
    pub direction: Direction,
    /// Sender.
    pub from: Address,
    /// Recipient.
    pub to: Address,
    /// The text.
    pub body: String,
    /// The first observation (Twilio's create response, or the inbound webhook); recorded as the
    /// message's first history event.
    pub first_observation: StatusObservation,
    /// The sender's own identifier for it, given on send.
    pub reference: Option<MessageReference>,
    /// Creation time reported by Twilio, if any.
    pub created_at: Timestamp,
}

/// One row of a message's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    /// What was observed.
    pub observation: StatusObservation,
    /// Whether it changed the message (false: duplicate, or stale and ignored).
    pub applied: bool,
}
