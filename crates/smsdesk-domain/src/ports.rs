//! The ports: what the domain needs from the outside world, as traits.
//!
//! Adapters implement them (`smsdesk-store` for the repositories and the limiter,
//! `smsdesk-twilio` for the provider); the use cases in [`crate::services`] hold them as
//! `Arc<dyn Port>`. With the `mocks` feature every port has a mockall mock (`MockMessageRepository`,
//! ...); `crate::fakes` (feature `fakes`) has in-memory implementations for tests that want behaviour, not
//! expectations.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use crate::api_keys::{ApiKeyId, ApiKeyLabel, ApiKeySummary, IssuedKey};
use crate::ids::{
    AccountSid, Address, ApiKeySid, MessageReference, MessageSid, MessagingServiceSid, PhoneNumber,
    TeamId, UserId,
};
use crate::message::{
    DeliveryState, Message, NewMessage, ObservationSource, StatusEvent, StatusObservation,
    Timestamp,
};
use crate::refresh_rules::CooldownClaim;
use crate::retention::RetentionPolicy;
use crate::status::{Direction, MessageStatus};
use crate::webhooks::{
    AfterAttempt, DeliveryAttempt, DeliveryId, DueDelivery, EndpointId, EndpointPatch, NewEndpoint,
    WebhookDelivery, WebhookEndpoint, WebhookSecret,
};

/// A failure of a repository or limiter, already translated from the driver's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// The store cannot be reached (connection refused or lost, pool exhausted). Worth retrying.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A row with the same unique key exists (e.g. a message SID stored twice).
    #[error("already exists: {0}")]
    Duplicate(String),
    /// A stored value could not be read back into a domain type, or a constraint was violated.
    #[error("unexpected store error: {0}")]
    Unexpected(String),
}

/// A status change to store, conditional on the message still having `expected_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The status the decision was made from. If the stored status differs when the write lands,
    /// another writer got there first: the write is refused ([`WriteOutcome::Conflict`]) rather
    /// than allowed to overwrite a newer status.
    pub expected_status: MessageStatus,
    /// When set, also conditional on the stored row's `updated_at` still being this: a
    /// concurrent write that kept the status but filled in other details (an error code, a
    /// price) is then a conflict too, instead of being overwritten by a state decided from the
    /// older read. The use cases always set it.
    pub expected_updated_at: Option<Timestamp>,
    /// The state to store.
    pub next: DeliveryState,
}

/// One observation to record, with the change it causes, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationWrite {
    /// The message observed.
    pub sid: MessageSid,
    /// What was observed; always recorded as a history event unless the change conflicts.
    pub observation: StatusObservation,
    /// The change to make; `None` records the observation as not applied (duplicate or stale).
    pub change: Option<StateChange>,
}

/// What happened to one [`ObservationWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The change was stored and the observation recorded as applied.
    Written,
    /// The observation was recorded as not applied (it carried no change).
    Recorded,
    /// The stored status no longer matched `expected_status`; nothing was written for this
    /// message. The caller re-reads and decides again.
    Conflict,
    /// No such message in this team; nothing was written.
    Missing,
}

/// Filters and paging for [`MessageRepository::list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageQuery {
    /// Only this direction.
    pub direction: Option<Direction>,
    /// Only these statuses (any of them); empty means every status.
    pub statuses: Vec<MessageStatus>,
    /// Only messages created at or after this time.
    pub created_since: Option<Timestamp>,
    /// Only messages created before this time.
    pub created_until: Option<Timestamp>,
    /// Only messages with this reference.
    pub reference: Option<MessageReference>,
    /// Only messages to this address.
    pub to: Option<Address>,
    /// Only messages from this address.
    pub from: Option<Address>,
    /// Only messages to or from this address (the other party, whichever the direction).
    pub party: Option<Address>,
    /// Continue after this position (from a previous page's `next`).
    pub after: Option<MessageCursor>,
    /// Page size; adapters cap it at 200.
    pub limit: usize,
}

impl MessageQuery {
    /// Whether `message` is on this query's pages: every filter given holds, and it comes after
    /// the cursor in the newest-first order. The in-memory store filters with this; the database
    /// adapter says the same in SQL.
    #[must_use]
    pub fn matches(&self, message: &Message) -> bool {
        self.direction.is_none_or(|d| message.direction == d)
            && (self.statuses.is_empty() || self.statuses.contains(&message.delivery.status))
            && self.created_since.is_none_or(|t| message.created_at >= t)
            && self.created_until.is_none_or(|t| message.created_at < t)
            && self
                .reference
                .as_ref()
                .is_none_or(|r| message.reference.as_ref() == Some(r))
            && self.to.as_ref().is_none_or(|to| message.to == *to)
            && self.from.as_ref().is_none_or(|from| message.from == *from)
            && self
                .party
                .as_ref()
                .is_none_or(|party| message.to == *party || message.from == *party)
            && self.after.as_ref().is_none_or(|cursor| {
                (message.created_at, &message.sid) < (cursor.created_at, &cursor.sid)
            })
    }
}

/// A position in the newest-first message order: creation time, then SID as the tie-breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCursor {
    /// Creation time of the last message on the previous page.
    pub created_at: Timestamp,
    /// Its SID.
    pub sid: MessageSid,
}

/// One page of messages, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePage {
    /// The messages.
    pub messages: Vec<Message>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<MessageCursor>,
}

/// A stored message, and whether its history already held the observation asked about
/// ([`MessageRepository::find_with_observed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMessage {
    /// The message as stored.
    pub message: Message,
    /// Its history holds an observation from that source with that status.
    pub already_observed: bool,
}

/// Stored messages and their status history. Every method is scoped by team: a message of
/// another team is indistinguishable from a missing one.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MessageRepository: Send + Sync {
    /// Stores a new message and its first observation as one history event.
    ///
    /// # Errors
    /// [`RepositoryError::Duplicate`] when the SID is already stored (in any team);
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn insert(&self, message: NewMessage) -> Result<Message, RepositoryError>;

    /// The team's message with this SID.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn find(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Option<Message>, RepositoryError>;

    /// Messages a bulk refresh should ask Twilio about: the team's outbound, non-terminal messages
    /// created at or after `created_since`, newest first (SID descending breaks ties), at most
    /// `limit`.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn refresh_candidates(
        &self,
        team: TeamId,
        created_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Message>, RepositoryError>;

    /// Records observations and applies their changes, all in **one transaction**: either every
    /// write that did not conflict lands with its history event, or (on error) none does. Each
    /// change is conditional on the stored status still being `expected_status`, so two writers
    /// racing can never regress a status. Returns one outcome per write, in order.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached; nothing was written.
    async fn apply_observations(
        &self,
        team: TeamId,
        writes: Vec<ObservationWrite>,
    ) -> Result<Vec<WriteOutcome>, RepositoryError>;

    /// The message's history, oldest first.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn history(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusEvent>, RepositoryError>;

    /// A page of the team's messages, newest first.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn list(&self, team: TeamId, query: MessageQuery)
    -> Result<MessagePage, RepositoryError>;

    /// The team's message with this SID and whether its history already holds an observation
    /// from `source` with `status` (a callback Twilio is retrying, say), in one read. The
    /// default reads the message, then its whole history; the database adapter answers both
    /// with one statement and one indexed lookup, whatever the history's length.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn find_with_observed(
        &self,
        team: TeamId,
        sid: &MessageSid,
        source: ObservationSource,
        status: &MessageStatus,
    ) -> Result<Option<FoundMessage>, RepositoryError> {
        let Some(message) = self.find(team, sid).await? else {
            return Ok(None);
        };
        let already_observed = self.history(team, sid).await?.iter().any(|event| {
            event.observation.source == source && event.observation.state.status == *status
        });
        Ok(Some(FoundMessage {
            message,
            already_observed,
        }))
    }

    /// How many of the team's messages created at or after `created_since` are in each status
    /// now, one entry per status that has any (for [`crate::summary`]).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn status_counts(
        &self,
        team: TeamId,
        created_since: Timestamp,
    ) -> Result<Vec<crate::summary::StatusCount>, RepositoryError>;
}

/// A team with outbound messages that are not final yet, as the reconciler looks for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedTeam {
    /// The team.
    pub team_id: TeamId,
    /// When its oldest such message (in the range asked about) was created.
    pub oldest_created_at: Timestamp,
    /// How many such messages it has in that range.
    pub messages: u64,
}

/// What the reconciler reads: which teams have unfinished messages, and the messages a sweep
/// listed. Scoped by team like every other read.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UnfinishedMessages: Send + Sync {
    /// Teams with outbound, non-terminal messages created at or after `created_since` and before
    /// `created_before`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn unfinished_teams(
        &self,
        created_since: Timestamp,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<UnfinishedTeam>, RepositoryError>;

    /// The team's messages among `sids` (unknown and other teams' SIDs are left out), in no
    /// particular order.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn find_many(
        &self,
        team: TeamId,
        sids: &[MessageSid],
    ) -> Result<Vec<Message>, RepositoryError>;
}

/// Messages whose delivery stays unknown: outbound, not final long after they were sent.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait StuckMessages: Send + Sync {
    /// Declares up to `limit` outbound, non-terminal messages created before `created_before`
    /// and not declared yet stuck at `now`: each gets `delivery_unknown_at = now` and a history
    /// row (its state unchanged, source `timeout`, applied), in one transaction; returns them as
    /// they are now. Each message is declared once, even when several processes run this at the
    /// same time.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached; nothing was written.
    async fn time_out_stuck(
        &self,
        created_before: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Message>, RepositoryError>;
}

/// Idempotency keys of sends (see [`crate::idempotency`]). Every decision is atomic in the
/// store, so concurrent requests with one key, on any replicas, get one [`IdempotencyClaim::Claimed`].
///
/// [`IdempotencyClaim::Claimed`]: crate::idempotency::IdempotencyClaim::Claimed
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request whose canonical text is `request` (the store keeps only a hash
    /// of it) until `now + lock`, unless the key is held: a completed request's answer until it
    /// expires, or a running one until its lock runs out.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached; nothing was claimed.
    async fn claim_key(
        &self,
        team: TeamId,
        key: &crate::idempotency::IdempotencyKey,
        request: &str,
        now: Timestamp,
        lock: Duration,
    ) -> Result<crate::idempotency::IdempotencyClaim, RepositoryError>;

    /// Records that the claimed request created the message `sid`, kept until `now + keep`.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn complete_key(
        &self,
        team: TeamId,
        key: &crate::idempotency::IdempotencyKey,
        sid: &MessageSid,
        now: Timestamp,
        keep: Duration,
    ) -> Result<(), RepositoryError>;

    /// Gives a claimed key back (its request failed), so the client may retry with it.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached (the claim then frees
    /// itself when its lock runs out).
    async fn release_key(
        &self,
        team: TeamId,
        key: &crate::idempotency::IdempotencyKey,
    ) -> Result<(), RepositoryError>;
}

/// How smsdesk authenticates to Twilio's REST API for one account.
#[derive(Debug, Clone)]
pub struct TwilioCredentials {
    /// The account, which is also part of every API path.
    pub account_sid: AccountSid,
    /// The username/password pair for HTTP Basic auth.
    pub auth: TwilioAuth,
}

/// The HTTP Basic credentials for Twilio's REST API.
#[derive(Debug, Clone)]
pub enum TwilioAuth {
    /// The account SID with its auth token.
    AuthToken(SecretString),
    /// An API key SID with its secret (preferred: revocable without changing the auth token).
    ApiKey {
        /// The key's SID (`SK…`).
        sid: ApiKeySid,
        /// The key's secret.
        secret: SecretString,
    },
}

/// Who a message is sent from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum Sender {
    /// One of the account's numbers.
    Number(PhoneNumber),
    /// A messaging service, which picks the number.
    MessagingService(MessagingServiceSid),
}

/// A team's Twilio integration, with its secrets decrypted.
#[derive(Debug, Clone)]
pub struct TwilioIntegration {
    /// The owning team.
    pub team_id: TeamId,
    /// Credentials for the REST API (API key if configured, else the auth token).
    pub credentials: TwilioCredentials,
    /// The account's auth token: Twilio signs webhooks with it, even when an API key is used
    /// for REST calls.
    pub auth_token: SecretString,
    /// The default sender.
    pub sender: Sender,
}

/// What to store as a team's integration; the adapter encrypts the secrets.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    /// The account.
    pub account_sid: AccountSid,
    /// The account's auth token.
    pub auth_token: SecretString,
    /// An API key to use for REST calls instead of the auth token.
    pub api_key: Option<(ApiKeySid, SecretString)>,
    /// The default sender.
    pub sender: Sender,
}

/// Teams' Twilio integrations.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IntegrationRepository: Send + Sync {
    /// The team's integration, secrets decrypted.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached;
    /// [`RepositoryError::Unexpected`] when a secret cannot be decrypted with the configured keys.
    async fn for_team(&self, team: TeamId) -> Result<Option<TwilioIntegration>, RepositoryError>;

    /// The integration for a Twilio account, to route its webhooks to a team. Account SIDs are
    /// compared in plaintext.
    ///
    /// # Errors
    /// As [`IntegrationRepository::for_team`].
    async fn for_account(
        &self,
        account: &AccountSid,
    ) -> Result<Option<TwilioIntegration>, RepositoryError>;

    /// Sets or replaces the team's integration.
    ///
    /// # Errors
    /// [`RepositoryError::Duplicate`] when another team already uses this account SID;
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn upsert(
        &self,
        team: TeamId,
        integration: NewIntegration,
    ) -> Result<TwilioIntegration, RepositoryError>;
}

/// A message Twilio reported (fetch or create). Twilio makes every field nullable; only what the
/// domain relies on is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMessage {
    /// Twilio's id.
    pub sid: MessageSid,
    /// The delivery facts.
    pub state: DeliveryState,
    /// The account, if reported.
    pub account_sid: Option<AccountSid>,
    /// The direction, if reported and recognised.
    pub direction: Option<Direction>,
    /// Sender, if reported.
    pub from: Option<Address>,
    /// Recipient, if reported.
    pub to: Option<Address>,
    /// The text, if reported.
    pub body: Option<String>,
    /// When Twilio created it.
    pub date_created: Option<Timestamp>,
    /// When Twilio sent it (absent until it is sent: queued and scheduled messages have none).
    pub date_sent: Option<Timestamp>,
}

/// The largest page Twilio's Messages list serves.
pub const MAX_LIST_PAGE_SIZE: u32 = 1000;

/// Which page of an account's Messages list to read (Twilio lists newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageListQuery {
    /// Only messages Twilio sent at or after this time (`DateSent>`): messages not sent yet never
    /// match, and must be fetched one by one.
    pub sent_since: Timestamp,
    /// Messages per page, 1 to [`MAX_LIST_PAGE_SIZE`].
    pub page_size: u32,
    /// The next page, as the previous page named it (relative to the API's host); `None` for
    /// the first page.
    pub page_uri: Option<String>,
}

/// One page of an account's Messages list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageListPage {
    /// The messages on the page, newest first; entries that could not be read are left out.
    pub messages: Vec<ProviderMessage>,
    /// Entries on the page that could not be read (no SID, no status).
    pub unreadable: usize,
    /// The next page, when there is one.
    pub next_page_uri: Option<String>,
}

/// An SMS to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSms {
    /// Recipient.
    pub to: PhoneNumber,
    /// Text, at most 1600 characters.
    pub body: String,
    /// Sender.
    pub sender: Sender,
    /// Where Twilio should post status callbacks (absent: no callbacks).
    pub status_callback: Option<String>,
}

/// `{before}20003{after}`, or nothing when Twilio gave no code: messages are read by people,
/// who should not see `Some(20003)` or `None`.
fn twilio_code(before: &str, code: Option<u32>, after: &str) -> String {
    code.map(|code| format!("{before}{code}{after}"))
        .unwrap_or_default()
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Twilio does not know the message (404 / 20404): deleted, or another account's.
    #[error("Twilio has no such message")]
    NotFound,
    /// Twilio refused the credentials (401 / 20003): the integration is misconfigured.
    #[error("Twilio rejected the credentials{}: {message}", twilio_code(" (Twilio code ", *.code, ")"))]
    CredentialsRejected {
        /// Twilio's error code.
        code: Option<u32>,
        /// Twilio's error message.
        message: String,
    },
    /// Too many requests (429 / 20429), still so after the adapter's retries.
    #[error("Twilio is rate limiting this account")]
    RateLimited {
        /// Twilio's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Twilio refused the request itself (4xx other than the above, e.g. 21211 invalid To).
    #[error("Twilio refused the request (HTTP {status}{}): {message}", twilio_code(", Twilio code ", *.code, ""))]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code.
        code: Option<u32>,
        /// Twilio's error message.
        message: String,
    },
    /// Twilio could not be reached or failed (5xx, timeout, connection error).
    #[error("Twilio is unavailable: {reason}")]
    Unavailable {
        /// What went wrong, without secrets.
        reason: String,
    },
    /// Twilio answered something this client cannot read (malformed JSON, missing SID).
    #[error("unexpected answer from Twilio: {reason}")]
    Unexpected {
        /// What went wrong, without secrets.
        reason: String,
    },
}

/// Twilio's Programmable Messaging API, as the domain needs it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SmsProvider: Send + Sync {
    /// Fetches a message's current state.
    ///
    /// # Errors
    /// Any [`ProviderError`]; [`ProviderError::NotFound`] for an unknown SID.
    async fn fetch_message(
        &self,
        credentials: &TwilioCredentials,
        sid: &MessageSid,
    ) -> Result<ProviderMessage, ProviderError>;

    /// Sends a message and returns Twilio's record of it, including its initial status.
    ///
    /// # Errors
    /// Any [`ProviderError`]; [`ProviderError::Rejected`] for a request Twilio refuses (invalid
    /// number, unsubscribed recipient, ...).
    async fn send_message(
        &self,
        credentials: &TwilioCredentials,
        sms: &OutboundSms,
    ) -> Result<ProviderMessage, ProviderError>;

    /// Reads one page of the account's Messages list (`GET …/Messages.json`), newest first.
    ///
    /// # Errors
    /// Any [`ProviderError`]; [`ProviderError::Unexpected`] for a page that is not a list.
    async fn list_messages(
        &self,
        credentials: &TwilioCredentials,
        query: &MessageListQuery,
    ) -> Result<MessageListPage, ProviderError>;
}

/// What [`RefreshLimiter::claim_and_read`] found: no message of the team under the SID (nothing
/// was claimed), or the message and its claim's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one answer per refresh, moved once: boxing would only add an allocation"
)]
pub enum ClaimedRead {
    /// The team has no message under the SID; nothing was claimed.
    NotFound,
    /// The message, as stored before the claim's stamp, and whether the claim was granted.
    Found {
        /// The message.
        message: Message,
        /// The claim's answer.
        claim: CooldownClaim,
    },
}

/// Cool-downs that must hold across requests, restarts and replicas. A claim is atomic: of
/// concurrent claims for the same key exactly one is granted (a message's cool-down is its own:
/// a SID the team has no message under has none to keep, and every claim of it is granted).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RefreshLimiter: Send + Sync {
    /// Claims the per-message cool-down for each SID (one answer per SID, in order). A granted
    /// claim starts the message's cool-down at `now`; a denied one changes nothing.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached; no claim was made.
    async fn claim_messages(
        &self,
        team: TeamId,
        sids: &[MessageSid],
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<Vec<CooldownClaim>, RepositoryError>;

    /// A single refresh's claim and read in one step: claims the per-message cool-down of
    /// `team`'s message `sid` at `now`, as [`Self::claim_messages`] does, and reads the message
    /// (as stored before this claim's stamp). A store that can do both with one statement
    /// implements it. The default answers `Ok(None)`, "not in one step": the caller then reads
    /// ([`MessageRepository::find`]) and claims apart, which answers the same.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached; the claim may have been
    /// made (as when the answer to a claim is lost).
    async fn claim_and_read(
        &self,
        _team: TeamId,
        _sid: &MessageSid,
        _now: Timestamp,
        _cooldown: Duration,
    ) -> Result<Option<ClaimedRead>, RepositoryError> {
        Ok(None)
    }

    /// Claims the user's bulk-refresh cool-down.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached; no claim was made.
    async fn claim_bulk(
        &self,
        team: TeamId,
        user: UserId,
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<CooldownClaim, RepositoryError>;
}

/// The time. Injected so that cool-downs and windows can be tested without waiting.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// Resolves a presented API key to the requester it belongs to. Implementations store only a hash
/// of each key and compare in constant time; a revoked key resolves to `None`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ApiKeyAuthenticator: Send + Sync {
    /// The requester for `presented_key`, or `None` when the key is unknown, malformed or
    /// revoked (callers must not tell these apart in their answer).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn authenticate(
        &self,
        presented_key: &SecretString,
    ) -> Result<Option<crate::access::Requester>, RepositoryError>;
}

/// The fleet's roll call: each replica checks in on a heartbeat and learns how many are alive,
/// which sets its share of each Twilio account's cap.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ReplicaRegistry: Send + Sync {
    /// Records that `replica` is alive until `now + ttl` and returns how many replicas are
    /// alive at `now`, itself included. A replica that stops checking in drops out of the count
    /// once its time has passed.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached (keep the last share).
    async fn heartbeat(
        &self,
        replica: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<usize, RepositoryError>;

    /// Removes `replica` from the roll (on shutdown), so the others take its share at once.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn leave(&self, replica: &str) -> Result<(), RepositoryError>;
}

/// The change log's read side: every applied history row, in commit order, for live streams
/// that follow it (one reader per process, for all teams) and clients that resume from an event
/// id (scoped by team). See [`crate::changes::LogPosition`] for the order.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// The position after every change readable now: a reader starting here sees every change
    /// that becomes visible later, and none before.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn head(&self) -> Result<crate::changes::LogPosition, RepositoryError>;

    /// The position of the change with history id `id`, if it exists and belongs to `team`
    /// (another team's id is `None`, like an unknown one).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn position_of(
        &self,
        team: TeamId,
        id: i64,
    ) -> Result<Option<crate::changes::LogPosition>, RepositoryError>;

    /// Up to `limit` changes after `after`, oldest first, of `team` only when given. Only
    /// changes whose position is final are returned (on PostgreSQL, none of a transaction still
    /// open before them), so reading again after the last one returned misses nothing.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn read_after(
        &self,
        after: crate::changes::LogPosition,
        team: Option<TeamId>,
        limit: usize,
    ) -> Result<Vec<crate::changes::LoggedChange>, RepositoryError>;
}

/// Named leases that give each background job to one process of the fleet at a time.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease `name` for `holder` until `now + ttl`, or renews it if `holder` already
    /// has it. Granted when nobody holds it or its holder's lease expired at or before `now`; of
    /// concurrent takers exactly one is granted.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached (treat as not held).
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, RepositoryError>;

    /// Gives the lease back if `holder` has it (on shutdown), so another takes over at once.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn release(&self, name: &str, holder: &str) -> Result<(), RepositoryError>;
}

/// Retention's side of the message store: redacting old messages in batches.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MessageRetention: Send + Sync {
    /// Redacts up to `limit` messages created before `cutoff` that are not redacted yet: the body
    /// becomes empty, the addresses become `policy.redact_address(..)`, `redacted_at` is `now`;
    /// the history stays. Returns how many were redacted. Each message is redacted once, even
    /// when several processes run this at the same time (they share the work).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached; that batch's changes
    /// are rolled back and the next run retries.
    async fn redact_batch(
        &self,
        cutoff: Timestamp,
        policy: &RetentionPolicy,
        limit: usize,
        now: Timestamp,
    ) -> Result<u64, RepositoryError>;
}

/// A team's API keys, as its admins manage them. Every method is scoped by team: another team's
/// key is indistinguishable from a missing one.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// The team's keys, oldest first, revoked ones included.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn list_keys(&self, team: TeamId) -> Result<Vec<ApiKeySummary>, RepositoryError>;

    /// Issues a key for `user` of `team`; only its hash is stored.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn issue_key(
        &self,
        team: TeamId,
        user: UserId,
        label: Option<ApiKeyLabel>,
    ) -> Result<IssuedKey, RepositoryError>;

    /// Revokes the team's key `id` (again is harmless) and returns it; `None` when the team has
    /// no such key.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn revoke_key(
        &self,
        team: TeamId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<Option<ApiKeySummary>, RepositoryError>;
}

/// Status callbacks that arrived before their message was stored (Twilio's first callback can
/// beat the send's own write). They are parked here and replayed when the message appears, or
/// discarded after a bounded time.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CallbackInbox: Send + Sync {
    /// Keeps `observation` for a message of `team` that is not stored yet. Parking the same
    /// (SID, status) twice keeps one.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn park(
        &self,
        team: TeamId,
        sid: &MessageSid,
        observation: StatusObservation,
    ) -> Result<(), RepositoryError>;

    /// Removes and returns the observations parked for the message, oldest first.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached; nothing was removed.
    async fn take_parked(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusObservation>, RepositoryError>;

    /// Discards observations parked before `cutoff` (their message never appeared); returns how
    /// many.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached.
    async fn discard_parked_before(&self, cutoff: Timestamp) -> Result<u64, RepositoryError>;
}

#[cfg(test)]
mod tests {
    use super::ProviderError;

    #[test]
    fn provider_errors_read_as_sentences_with_or_without_twilio_code() {
        let with_code = ProviderError::CredentialsRejected {
            code: Some(20003),
            message: "Authenticate".to_owned(),
        };
        let without = ProviderError::CredentialsRejected {
            code: None,
            message: "HTTP 401 without a Twilio error body".to_owned(),
        };
        let rejected = ProviderError::Rejected {
            status: 400,
            code: Some(21211),
            message: "Invalid 'To' Phone Number".to_owned(),
        };
        assert_eq!(
            with_code.to_string(),
            "Twilio rejected the credentials (Twilio code 20003): Authenticate"
        );
        assert_eq!(
            without.to_string(),
            "Twilio rejected the credentials: HTTP 401 without a Twilio error body"
        );
        assert_eq!(
            rejected.to_string(),
            "Twilio refused the request (HTTP 400, Twilio code 21211): Invalid 'To' Phone Number"
        );
    }
}

/// A team's delivery-webhook endpoints and the deliveries to them (the outbox).
///
/// Deliveries are not created through this port: the message repository records them in the
/// transaction of every applied change, one per enabled endpoint of the team subscribed to the
/// change's [`crate::webhooks::WebhookEvent`], so a crash never loses one. Every method but the
/// worker's (`claim_due`, `record_attempt`) is scoped to one team.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Stores a new endpoint with its signing secret (encrypted at rest).
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; nothing is stored.
    async fn create_endpoint(
        &self,
        team: TeamId,
        endpoint: NewEndpoint,
        secret: &WebhookSecret,
        now: Timestamp,
    ) -> Result<WebhookEndpoint, RepositoryError>;

    /// The team's endpoints, oldest first.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails.
    async fn list_endpoints(&self, team: TeamId) -> Result<Vec<WebhookEndpoint>, RepositoryError>;

    /// One of the team's endpoints.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails.
    async fn find_endpoint(
        &self,
        team: TeamId,
        id: EndpointId,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    /// Changes an endpoint; enabling it clears its disabled reason. `None` when the team has
    /// no such endpoint.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; nothing changed.
    async fn update_endpoint(
        &self,
        team: TeamId,
        id: EndpointId,
        patch: EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    /// Deletes an endpoint and its deliveries. `false` when the team has no such endpoint.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; nothing changed.
    async fn delete_endpoint(&self, team: TeamId, id: EndpointId) -> Result<bool, RepositoryError>;

    /// Makes `secret` the endpoint's signing secret; the one it replaces still signs until
    /// `previous_valid_until`. `None` when the team has no such endpoint.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; nothing changed.
    async fn rotate_secret(
        &self,
        team: TeamId,
        id: EndpointId,
        secret: &WebhookSecret,
        previous_valid_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    /// Claims up to `limit` due deliveries of enabled endpoints for one attempt each, for
    /// `lease` (after which an attempt whose worker died is claimed again): pending, due by
    /// `now`, and the oldest undelivered one of their message for their endpoint (deliveries of
    /// a message are made in order). Workers on every replica call this; none gets a delivery
    /// another holds.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; nothing was claimed.
    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, RepositoryError>;

    /// Records an attempt and what follows it (and, for [`AfterAttempt::EndpointGone`],
    /// disables the endpoint with [`crate::webhooks::DisabledReason::Gone`]).
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; the claim then lapses and the delivery is
    /// attempted again.
    async fn record_attempt(
        &self,
        id: DeliveryId,
        attempt: DeliveryAttempt,
        next: AfterAttempt,
    ) -> Result<(), RepositoryError>;

    /// The endpoint's deliveries, newest first, before `before` if given, with their attempts.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails.
    async fn list_deliveries(
        &self,
        team: TeamId,
        endpoint: EndpointId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, RepositoryError>;

    /// Makes a delivery pending again, due at `now`, with a fresh schedule (its attempts stay
    /// listed). `None` when the team's endpoint has no such delivery.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; nothing changed.
    async fn replay_delivery(
        &self,
        team: TeamId,
        endpoint: EndpointId,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Option<WebhookDelivery>, RepositoryError>;
}

/// A receiver's answer to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// The HTTP status.
    pub status: u16,
    /// The start of the body (adapters read at most a few KiB).
    pub body: Vec<u8>,
}

/// Why a delivery got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebhookTransportError(pub String);

/// Posts signed deliveries to endpoints. The HTTP adapter follows no redirect, gives up after
/// 10 s, and refuses addresses the [`crate::webhooks::UrlPolicy`] refuses, after resolving.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// POSTs `body` (JSON) to `url` with `headers`.
    ///
    /// # Errors
    /// [`WebhookTransportError`] when there is no HTTP answer (timeout, refused connection or
    /// address, TLS failure).
    async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Result<WebhookResponse, WebhookTransportError>;
}

/// Makes new signing secrets (randomness is the adapter's).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// A fresh secret.
    fn webhook_secret(&self) -> WebhookSecret;
}
