//! Delivery webhooks: a team's own HTTPS endpoints told of its messages' changes.
//!
//! The rules, all here so an embedder gets the service's behaviour:
//! - **What is told.** Every applied history event becomes one event ([`WebhookEvent::for_history`]):
//!   an inbound message's arrival is `message.received`; every applied change of an outbound
//!   message (its creation by a send included) is `message.status_changed`. Duplicates and stale
//!   observations are not news.
//! - **Durable.** The store records one delivery per subscribed, enabled endpoint in the same
//!   transaction as the change (an outbox), so a crash between the commit and the POST loses
//!   nothing; delivery is at least once, with one `webhook-id` per event across every retry.
//! - **Ordered per message.** A message's next delivery to an endpoint waits until its earlier
//!   one is delivered or dead.
//! - **Retried** on any answer but 2xx for more than a day ([`RetrySchedule::STANDARD`]); then
//!   the delivery is dead and may be replayed. A 410 disables the endpoint ([`AttemptVerdict`]).
//! - **Signed** per Standard Webhooks ([`sign`]), with both secrets for 24 h after a rotation.
//! - **Safe.** Endpoint URLs are checked against a [`UrlPolicy`]: https in production, no
//!   loopback, private or link-local address unless allowed ([`is_public_address`], which the
//!   HTTP adapter also applies to every address a name resolves to).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;

use crate::ids::{Address, MessageReference, MessageSid, TeamId};
use crate::message::{DeliveryState, ObservationSource, Timestamp};
use crate::status::Direction;

/// An event an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum WebhookEvent {
    /// An outbound message's status or details changed (its creation included).
    #[serde(rename = "message.status_changed")]
    StatusChanged,
    /// An inbound message arrived.
    #[serde(rename = "message.received")]
    Received,
}

/// An event name that is not one of [`WebhookEvent::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event '{0}'; the events are message.status_changed and message.received")]
pub struct UnknownWebhookEvent(pub String);

impl WebhookEvent {
    /// Every event, in documentation order.
    pub const ALL: [Self; 2] = [Self::StatusChanged, Self::Received];

    /// The event's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusChanged => "message.status_changed",
            Self::Received => "message.received",
        }
    }

    /// Reads an event name.
    ///
    /// # Errors
    /// [`UnknownWebhookEvent`] for anything but the names of [`WebhookEvent::ALL`].
    pub fn parse(name: &str) -> Result<Self, UnknownWebhookEvent> {
        Self::ALL
            .into_iter()
            .find(|event| event.as_str() == name)
            .ok_or_else(|| UnknownWebhookEvent(name.chars().take(64).collect()))
    }

    /// The event a history row is, if any: only applied observations are news; an inbound
    /// message's first observation is its arrival, anything else a status change.
    pub fn for_history(source: ObservationSource, applied: bool) -> Option<Self> {
        if !applied {
            return None;
        }
        Some(match source {
            ObservationSource::Inbound => Self::Received,
            _ => Self::StatusChanged,
        })
    }
}

/// The events an endpoint wants: at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSelection {
    /// `message.status_changed`.
    pub status_changed: bool,
    /// `message.received`.
    pub received: bool,
}

/// Why a list of event names is not a selection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEventSelection {
    /// No event named.
    #[error("name at least one event: message.status_changed, message.received")]
    Empty,
    /// A name that is no event.
    #[error(transparent)]
    Unknown(#[from] UnknownWebhookEvent),
}

impl EventSelection {
    /// Every event.
    pub const ALL: Self = Self {
        status_changed: true,
        received: true,
    };

    /// Reads event names (repeats allowed).
    ///
    /// # Errors
    /// [`InvalidEventSelection`] for an empty list or an unknown name.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, InvalidEventSelection> {
        let mut selection = Self {
            status_changed: false,
            received: false,
        };
        for name in names {
            match WebhookEvent::parse(name.as_ref())? {
                WebhookEvent::StatusChanged => selection.status_changed = true,
                WebhookEvent::Received => selection.received = true,
            }
        }
        if selection.events().is_empty() {
            return Err(InvalidEventSelection::Empty);
        }
        Ok(selection)
    }

    /// Whether `event` is selected.
    pub fn contains(self, event: WebhookEvent) -> bool {
        match event {
            WebhookEvent::StatusChanged => self.status_changed,
            WebhookEvent::Received => self.received,
        }
    }

    /// The selected events, in documentation order.
    pub fn events(self) -> Vec<WebhookEvent> {
        WebhookEvent::ALL
            .into_iter()
            .filter(|event| self.contains(*event))
            .collect()
    }
}

/// Where endpoint URLs may point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Only `https` URLs (production).
    pub require_https: bool,
    /// Loopback, private, link-local and other non-public addresses allowed (development, tests
    /// and the demo on 127.0.0.1).
    pub allow_private: bool,
}

impl UrlPolicy {
    /// Production: https only, public addresses only.
    pub const PRODUCTION: Self = Self {
        require_https: true,
        allow_private: false,
    };
    /// Development: http allowed, loopback and private addresses allowed.
    pub const DEVELOPMENT: Self = Self {
        require_https: false,
        allow_private: true,
    };
}

/// The longest endpoint URL.
pub const MAX_URL_CHARS: usize = 2048;

/// An endpoint URL that passed a [`UrlPolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(String);

/// Why a URL cannot be an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEndpointUrl {
    /// Not an absolute http(s) URL, too long, or with credentials or a fragment.
    #[error(
        "expected an absolute http(s) URL of at most 2048 characters, without credentials or fragment"
    )]
    Malformed,
    /// `http` where the policy requires `https`.
    #[error("the URL must use https")]
    NotHttps,
    /// A loopback, private or otherwise non-public address where the policy refuses them.
    #[error(
        "the URL points at a loopback, private or link-local address, which this deployment refuses"
    )]
    NonPublicAddress,
}

impl EndpointUrl {
    /// Checks `raw` against `policy`. Names are checked again, address by address, when the
    /// adapter resolves them ([`is_public_address`]); here only literal addresses and
    /// `localhost` can be judged.
    ///
    /// # Errors
    /// [`InvalidEndpointUrl`] naming the rule broken.
    pub fn parse(raw: &str, policy: UrlPolicy) -> Result<Self, InvalidEndpointUrl> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(InvalidEndpointUrl::Malformed);
        }
        let url = url::Url::parse(raw).map_err(|_| InvalidEndpointUrl::Malformed)?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
            || url.fragment().is_some()
        {
            return Err(InvalidEndpointUrl::Malformed);
        }
        if policy.require_https && url.scheme() != "https" {
            return Err(InvalidEndpointUrl::NotHttps);
        }
        let public = match url.host() {
            None => return Err(InvalidEndpointUrl::Malformed),
            Some(url::Host::Ipv4(ip)) => is_public_address(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_public_address(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name != "localhost" && !name.ends_with(".localhost")
            }
        };
        if !public && !policy.allow_private {
            return Err(InvalidEndpointUrl::NonPublicAddress);
        }
        Ok(Self(url.to_string()))
    }

    /// Wraps a URL read back from the store, where it was checked on the way in.
    pub fn stored(raw: String) -> Self {
        Self(raw)
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local, shared
/// (carrier-grade NAT), documentation, benchmarking, multicast, broadcast or unspecified; an
/// IPv4-mapped IPv6 address is judged as its IPv4 address.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// An endpoint's signing secret: `whsec_` and the base64 of the HMAC key. Deliberately not
/// `Debug` in clear.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

/// A secret that is not `whsec_` followed by base64 of 24 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is whsec_ followed by the base64 of 24 to 64 bytes")]
pub struct InvalidWebhookSecret;

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(whsec_…)")
    }
}

impl WebhookSecret {
    /// A secret over `key` (24 to 64 random bytes; the adapter supplies the randomness).
    ///
    /// # Errors
    /// [`InvalidWebhookSecret`] for a key of another length.
    pub fn from_key(key: &[u8]) -> Result<Self, InvalidWebhookSecret> {
        if !(24..=64).contains(&key.len()) {
            return Err(InvalidWebhookSecret);
        }
        Ok(Self(SecretString::from(format!(
            "{SECRET_PREFIX}{}",
            BASE64.encode(key)
        ))))
    }

    /// Reads a secret as shown to the team (or as stored, decrypted).
    ///
    /// # Errors
    /// [`InvalidWebhookSecret`] when the text is not a secret.
    pub fn parse(text: &str) -> Result<Self, InvalidWebhookSecret> {
        let key = text
            .strip_prefix(SECRET_PREFIX)
            .and_then(|encoded| BASE64.decode(encoded).ok())
            .ok_or(InvalidWebhookSecret)?;
        Self::from_key(&key)
    }

    /// The secret as text (`whsec_…`), to show once or to encrypt for storage.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    fn key(&self) -> Vec<u8> {
        self.expose()
            .strip_prefix(SECRET_PREFIX)
            .and_then(|encoded| BASE64.decode(encoded).ok())
            .unwrap_or_default()
    }

    fn mac(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length; the constructor cannot fail for SHA-256.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The Standard Webhooks signature of one delivery under one secret: `v1,` and the base64 of
/// HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`.
pub fn sign(secret: &WebhookSecret, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret
        .mac(webhook_id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// The `webhook-signature` header: one signature per valid secret, space-separated, so a
/// receiver holding either the old or the new secret verifies during a rotation.
pub fn signature_header(
    secrets: &[WebhookSecret],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, webhook_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How far a delivery's `webhook-timestamp` may be from the receiver's clock.
pub const TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(300);

/// Whether a received delivery is genuine: one of the header's `v1` signatures matches under
/// `secret` (compared in constant time), and the timestamp is within [`TIMESTAMP_TOLERANCE`] of
/// `now`. For receivers written in Rust, and for this crate's tests.
pub fn verify(
    secret: &WebhookSecret,
    header: &str,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
    now: Timestamp,
) -> bool {
    let skew = now.timestamp().abs_diff(timestamp);
    if skew > TIMESTAMP_TOLERANCE.as_secs() {
        return false;
    }
    header.split(' ').any(|signature| {
        signature
            .strip_prefix("v1,")
            .and_then(|encoded| BASE64.decode(encoded).ok())
            .is_some_and(|tag| {
                secret
                    .mac(webhook_id, timestamp, body)
                    .verify_slice(&tag)
                    .is_ok()
            })
    })
}

/// How long the previous secret stays valid after a rotation.
pub const PREVIOUS_SECRET_VALID_FOR: Duration = Duration::from_secs(24 * 3600);

/// When failed deliveries are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The wait after each failed attempt: after the first, the second, ...; a failure past the
    /// last makes the delivery dead.
    pub delays: &'static [Duration],
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;

impl RetrySchedule {
    /// 8 attempts over about 27.6 hours: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h
    /// and 10 h (the schedule Standard Webhooks senders use), each wait ±10 % jitter.
    pub const STANDARD: Self = Self {
        delays: &[
            Duration::from_secs(5),
            Duration::from_secs(5 * MINUTE),
            Duration::from_secs(30 * MINUTE),
            Duration::from_secs(2 * HOUR),
            Duration::from_secs(5 * HOUR),
            Duration::from_secs(10 * HOUR),
            Duration::from_secs(10 * HOUR),
        ],
    };

    /// How many attempts a delivery gets.
    pub fn attempts(self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The sum of the waits: how long after the first attempt the last one comes (without
    /// jitter).
    pub fn span(self) -> Duration {
        self.delays.iter().sum()
    }

    /// When to try again after attempt number `attempt` (1 for the first) failed at `now`;
    /// `None` when it was the last: the delivery is dead. The wait is scaled by 0.9 to 1.1 from
    /// `spread` (any number; the worker passes the delivery's id, so retries of many deliveries
    /// that failed together spread out instead of arriving at once).
    pub fn after_failure(self, attempt: u32, now: Timestamp, spread: u64) -> Option<Timestamp> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        let delay = self.delays.get(index)?;
        // A cheap integer hash of (spread, attempt) to a factor in [0.9, 1.1].
        let mixed = (spread ^ u64::from(attempt).rotate_left(32))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_right(29);
        let per_mille = 900 + (mixed % 201);
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX) / 1000 * per_mille;
        Some(now + chrono::Duration::milliseconds(i64::try_from(millis).unwrap_or(i64::MAX)))
    }
}

/// What an endpoint's answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// Any 2xx: delivered.
    Delivered,
    /// 410 Gone: the receiver says the endpoint is gone; it is disabled.
    Gone,
    /// Anything else (another status, a timeout, a refused connection): tried again later.
    Failed,
}

impl AttemptVerdict {
    /// The verdict on an HTTP status, or on no answer at all (`None`).
    pub fn of(status: Option<u16>) -> Self {
        match status {
            Some(200..=299) => Self::Delivered,
            Some(410) => Self::Gone,
            _ => Self::Failed,
        }
    }
}

/// How much of a receiver's response body is kept with an attempt.
pub const RESPONSE_BODY_KEPT: usize = 1024;

/// A response body as kept: UTF-8 (invalid bytes replaced), at most [`RESPONSE_BODY_KEPT`]
/// bytes, cut at a character boundary.
pub fn kept_response_body(body: &[u8]) -> String {
    let head = &body[..body.len().min(RESPONSE_BODY_KEPT)];
    let mut text = String::from_utf8_lossy(head).into_owned();
    while text.len() > RESPONSE_BODY_KEPT {
        text.pop();
    }
    text
}

/// An endpoint's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(i64);

/// A delivery's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(i64);

macro_rules! numeric_id {
    ($name:ident, $prefix:literal) => {
        impl $name {
            /// Wraps a stored id.
            pub fn new(id: i64) -> Self {
                Self(id)
            }

            /// The stored id.
            pub fn get(self) -> i64 {
                self.0
            }

            /// Reads the id as shown (`
            #[doc = $prefix]
            /// ` and a number).
            pub fn parse(text: &str) -> Option<Self> {
                let digits = text.strip_prefix($prefix)?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok().filter(|id| *id > 0).map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }
    };
}

numeric_id!(EndpointId, "we_");
numeric_id!(DeliveryId, "wd_");

/// Why an endpoint was disabled by the service rather than by its team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledReason {
    /// The receiver answered 410 Gone.
    Gone,
}

impl DisabledReason {
    /// The reason on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gone => "gone",
        }
    }

    /// Reads a stored reason.
    pub fn parse(text: &str) -> Option<Self> {
        (text == "gone").then_some(Self::Gone)
    }
}

/// An endpoint as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: EndpointId,
    /// The owning team.
    pub team_id: TeamId,
    /// Where deliveries are posted.
    pub url: EndpointUrl,
    /// What it wants.
    pub events: EventSelection,
    /// Whether deliveries are made (new events are recorded only for enabled endpoints).
    pub enabled: bool,
    /// Set when the service disabled it; cleared when the team enables it again.
    pub disabled_reason: Option<DisabledReason>,
    /// Until when the secret replaced by the last rotation still signs deliveries.
    pub previous_secret_expires_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// An endpoint to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    /// Where deliveries are posted.
    pub url: EndpointUrl,
    /// What it wants.
    pub events: EventSelection,
    /// Whether it starts enabled.
    pub enabled: bool,
}

/// Changes to an endpoint; `None` keeps a field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointPatch {
    /// A new URL.
    pub url: Option<EndpointUrl>,
    /// New events.
    pub events: Option<EventSelection>,
    /// Enable (clearing any [`DisabledReason`]) or disable.
    pub enabled: Option<bool>,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answered it.
    Delivered,
    /// Every attempt of the schedule failed; it waits for a replay.
    Dead,
}

impl DeliveryStatus {
    /// The status on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Reads a stored status.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// When it was made.
    pub attempted_at: Timestamp,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// The start of the receiver's body ([`kept_response_body`]).
    pub response_body: String,
    /// Why there was no answer (timeout, refused connection, refused address), if none.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Delivered: done.
    Delivered,
    /// Failed: try again at this time.
    RetryAt(Timestamp),
    /// Failed for the last time: dead until replayed.
    Dead,
    /// 410: the endpoint is disabled; the delivery waits, pending, for it to be enabled again.
    EndpointGone,
}

/// The message event a delivery tells of, as recorded in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts {
    /// The history row's id: the delivery's `webhook-id` is derived from it.
    pub event_id: i64,
    /// Which event.
    pub event: WebhookEvent,
    /// The message.
    pub sid: MessageSid,
    /// Its direction.
    pub direction: Direction,
    /// Its sender.
    pub from: Address,
    /// Its recipient.
    pub to: Address,
    /// The sender's reference, if any.
    pub reference: Option<MessageReference>,
    /// The state recorded by the event.
    pub state: DeliveryState,
    /// Where the observation came from.
    pub source: ObservationSource,
    /// When it was observed.
    pub observed_at: Timestamp,
}

impl EventFacts {
    /// The `webhook-id`: the same for every attempt and replay of this event.
    pub fn webhook_id(&self) -> String {
        format!("evt_{}", self.event_id)
    }
}

/// A delivery as listed, with its attempts, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Its id.
    pub id: DeliveryId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// What it tells.
    pub facts: EventFacts,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// When it was recorded (the change's commit).
    pub created_at: Timestamp,
    /// The attempts, newest first (at most the schedule's count per replay).
    pub attempts: Vec<DeliveryAttempt>,
}

/// A delivery claimed for an attempt, with all it needs to be made.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Its id.
    pub id: DeliveryId,
    /// The endpoint's URL.
    pub url: EndpointUrl,
    /// The secrets that sign it: the current one, and the previous one while it is valid.
    pub secrets: Vec<WebhookSecret>,
    /// What it tells.
    pub facts: EventFacts,
    /// This attempt's number, 1 for the first (since the last replay).
    pub attempt: u32,
}

/// The JSON body of a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookPayload<'a> {
    /// The event's name.
    #[serde(rename = "type")]
    pub event: WebhookEvent,
    /// When the change was observed (RFC 3339).
    pub timestamp: Timestamp,
    /// The message as the event left it.
    pub data: PayloadMessage<'a>,
}

/// The message in a [`WebhookPayload`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadMessage<'a> {
    /// Twilio's SID.
    pub sid: &'a str,
    /// `outbound-api`, `inbound`, ...
    pub direction: &'a str,
    /// Sender.
    pub from: &'a str,
    /// Recipient.
    pub to: &'a str,
    /// The sender's reference.
    pub reference: Option<&'a str>,
    /// The status the event recorded.
    pub status: &'a str,
    /// Twilio's error code, if any.
    pub error_code: Option<u32>,
    /// Twilio's error text, if any.
    pub error_message: Option<&'a str>,
    /// Where the observation came from (`send`, `callback`, `refresh`, `sweep`, ...).
    pub source: &'a str,
}

impl EventFacts {
    /// The delivery's body.
    pub fn payload(&self) -> WebhookPayload<'_> {
        WebhookPayload {
            event: self.event,
            timestamp: self.observed_at,
            data: PayloadMessage {
                sid: self.sid.as_str(),
                direction: self.direction.as_str(),
                from: self.from.as_str(),
                to: self.to.as_str(),
                reference: self.reference.as_ref().map(MessageReference::as_str),
                status: self.state.status.as_str(),
                error_code: self.state.error_code,
                error_message: self.state.error_message.as_deref(),
                source: self.source.as_str(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default()
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_test_vector() {
        // Published by the Standard Webhooks specification and every reference library.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&secret, id, 1_614_265_330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            &format!("v1,bm9wZQ== {signature}"),
            id,
            1_614_265_330,
            body,
            at(1_614_265_330 + 60)
        ));
        assert!(
            !verify(
                &secret,
                &signature,
                id,
                1_614_265_330,
                b"{}",
                at(1_614_265_330)
            ),
            "another body"
        );
        assert!(
            !verify(
                &secret,
                &signature,
                id,
                1_614_265_330,
                body,
                at(1_614_265_330 + 301)
            ),
            "too old"
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let old = WebhookSecret::from_key(&[1; 32]).expect("key");
        let new = WebhookSecret::from_key(&[2; 32]).expect("key");
        let header = signature_header(&[new.clone(), old.clone()], "evt_1", 100, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        for secret in [&old, &new] {
            assert!(verify(secret, &header, "evt_1", 100, b"{}", at(100)));
        }
        assert_eq!(
            format!("{new:?}"),
            "WebhookSecret(whsec_…)",
            "never in logs"
        );
        assert!(
            WebhookSecret::parse("whsec_c2hvcnQ=").is_err(),
            "a short key"
        );
    }

    #[test]
    fn the_schedule_spans_more_than_a_day_with_bounded_jitter() {
        let schedule = RetrySchedule::STANDARD;
        assert_eq!(schedule.attempts(), 8);
        assert!(
            schedule.span() > Duration::from_secs(24 * 3600),
            "{:?}",
            schedule.span()
        );
        let now = at(1_000_000);
        for attempt in 1..=7 {
            let base = schedule.delays[attempt as usize - 1].as_secs_f64();
            for spread in [0, 1, 7, 12_345, u64::MAX] {
                let next = schedule
                    .after_failure(attempt, now, spread)
                    .expect("a retry");
                let waited = (next - now).num_milliseconds() as f64 / 1000.0;
                assert!(
                    (base * 0.9 - 0.001..=base * 1.1 + 0.001).contains(&waited),
                    "attempt {attempt}: waited {waited}s of {base}s"
                );
            }
        }
        assert_eq!(
            schedule.after_failure(8, now, 1),
            None,
            "the eighth failure is the last"
        );
        assert_eq!(schedule.after_failure(0, now, 1), None);
        let spread: std::collections::HashSet<_> = (0..50)
            .map(|id| schedule.after_failure(3, now, id))
            .collect();
        assert!(
            spread.len() > 10,
            "deliveries that failed together spread out"
        );
    }

    #[test]
    fn answers_become_verdicts() {
        assert_eq!(AttemptVerdict::of(Some(204)), AttemptVerdict::Delivered);
        assert_eq!(AttemptVerdict::of(Some(410)), AttemptVerdict::Gone);
        for failed in [Some(301), Some(404), Some(429), Some(500), None] {
            assert_eq!(
                AttemptVerdict::of(failed),
                AttemptVerdict::Failed,
                "{failed:?}"
            );
        }
    }

    #[test]
    fn urls_are_held_to_the_policy() {
        let prod = UrlPolicy::PRODUCTION;
        let dev = UrlPolicy::DEVELOPMENT;
        assert!(EndpointUrl::parse("https://hooks.example.com/sms", prod).is_ok());
        for (raw, refused) in [
            ("http://hooks.example.com/sms", InvalidEndpointUrl::NotHttps),
            ("https://127.0.0.1/x", InvalidEndpointUrl::NonPublicAddress),
            (
                "https://localhost:8080/x",
                InvalidEndpointUrl::NonPublicAddress,
            ),
            ("https://10.1.2.3/x", InvalidEndpointUrl::NonPublicAddress),
            (
                "https://169.254.169.254/latest",
                InvalidEndpointUrl::NonPublicAddress,
            ),
            ("https://[::1]/x", InvalidEndpointUrl::NonPublicAddress),
            (
                "https://[::ffff:192.168.0.1]/x",
                InvalidEndpointUrl::NonPublicAddress,
            ),
            ("https://[fd00::1]/x", InvalidEndpointUrl::NonPublicAddress),
            (
                "https://user:pw@hooks.example.com/",
                InvalidEndpointUrl::Malformed,
            ),
            ("ftp://hooks.example.com/", InvalidEndpointUrl::Malformed),
            ("hooks.example.com/sms", InvalidEndpointUrl::Malformed),
        ] {
            assert_eq!(EndpointUrl::parse(raw, prod), Err(refused), "{raw}");
        }
        assert!(EndpointUrl::parse("http://127.0.0.1:9000/hook", dev).is_ok());
        assert!(EndpointUrl::parse("ftp://127.0.0.1/", dev).is_err());
        assert!(is_public_address("8.8.8.8".parse().expect("ip")));
        assert!(!is_public_address("100.64.0.1".parse().expect("ip")));
    }

    #[test]
    fn event_selections_and_ids_parse_strictly() {
        let both = EventSelection::parse(&["message.received", "message.status_changed"]);
        assert_eq!(both, Ok(EventSelection::ALL));
        assert_eq!(
            EventSelection::parse::<&str>(&[]),
            Err(InvalidEventSelection::Empty)
        );
        assert!(EventSelection::parse(&["message.deleted"]).is_err());
        assert_eq!(EndpointId::parse("we_12").map(EndpointId::get), Some(12));
        for bad in ["12", "we_", "we_0", "we_-1", "we_1x", "wd_1"] {
            assert_eq!(EndpointId::parse(bad), None, "{bad}");
        }
        assert_eq!(DeliveryId::new(9).to_string(), "wd_9");
        assert_eq!(
            WebhookEvent::for_history(ObservationSource::Inbound, true),
            Some(WebhookEvent::Received)
        );
        assert_eq!(
            WebhookEvent::for_history(ObservationSource::Callback, true),
            Some(WebhookEvent::StatusChanged)
        );
        assert_eq!(
            WebhookEvent::for_history(ObservationSource::Callback, false),
            None
        );
    }

    #[test]
    fn kept_bodies_are_cut_at_a_character_boundary() {
        let body = "é".repeat(600);
        let kept = kept_response_body(body.as_bytes());
        assert!(kept.len() <= RESPONSE_BODY_KEPT && kept.chars().all(|c| c == 'é'));
        assert_eq!(kept.chars().count(), 512);
        assert_eq!(kept_response_body(b"ok"), "ok");
    }
}
