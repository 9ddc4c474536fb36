//! The contract of the domain's storage ports, written once: every implementation of
//! `MessageRepository`, `IntegrationRepository`, `RefreshLimiter`, `CallbackInbox` and
//! `ApiKeyRepository`, `MessageRetention`, `Leases`, `ReplicaRegistry` and `ChangeLog` must pass
//! these cases. `smsdesk-store` runs them on SQLite and PostgreSQL; this crate's own tests run them
//! on the domain's in-memory fake (`fakes::InMemoryStore`), which claims to honour the same
//! contract; an embedder with its own adapter can run them too.
//!
//! A case takes a [`ContractSubject`]: the ports under test (as one [`PortSet`]) and a way to
//! create teams and users, which a database needs rows for and a fake does not. One module per
//! port; each case is a plain `async fn`, so the caller picks the runtime and wraps it in a test.
//!
//! ```no_run
//! use smsdesk_test_support::contract::{self, InMemorySubject};
//!
//! #[tokio::test(flavor = "multi_thread")]
//! async fn the_fake_keeps_claims_atomic() {
//!     contract::limiter::a_cooldown_is_claimed_by_exactly_one_of_twenty_concurrent_claimers(
//!         &InMemorySubject::new(),
//!     )
//!     .await;
//! }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeZone;
use smsdesk_domain::api_keys::{ApiKeyId, ApiKeyLabel, ApiKeySummary, IssuedKey};
use smsdesk_domain::changes::{LogPosition, LoggedChange};
use smsdesk_domain::fakes::InMemoryStore;
use smsdesk_domain::idempotency::{IdempotencyClaim, IdempotencyKey};
use smsdesk_domain::ports::{
    ApiKeyRepository, CallbackInbox, ChangeLog, ClaimedRead, FoundMessage, IdempotencyStore,
    IntegrationRepository, Leases, MessageCursor, MessagePage, MessageQuery, MessageRepository,
    MessageRetention, NewIntegration, ObservationWrite, RefreshLimiter, ReplicaRegistry,
    RepositoryError, Sender, StateChange, StuckMessages, TwilioAuth, TwilioIntegration,
    UnfinishedMessages, UnfinishedTeam, WebhookRepository, WriteOutcome,
};
use smsdesk_domain::retention::RetentionPolicy;
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::summary::StatusCount;
use smsdesk_domain::{
    AccountSid, Address, ApiKeySid, CooldownClaim, DeliveryState, Direction, Message, MessageSid,
    MessageStatus, MessagingServiceSid, NewMessage, ObservationSource, PhoneNumber, StatusEvent,
    StatusObservation, TeamId, Timestamp, UserId,
};

pub mod api_keys;
pub mod change_log;
pub mod idempotency;
pub mod inbox;
pub mod integrations;
pub mod leases;
pub mod limiter;
pub mod messages;
pub mod reconcile;
pub mod replicas;
pub mod retention;
pub mod webhooks;

/// The account most cases store messages under.
pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// Another account.
pub const OTHER_ACCOUNT: &str = "ACfedcba9876543210fedcba9876543210";
/// The cool-down the limiter cases claim with.
pub const MINUTE: Duration = Duration::from_secs(60);

/// What a contract case runs against.
#[async_trait]
pub trait ContractSubject: Send + Sync {
    /// The ports under test. Cheap to clone; clones share the same storage.
    fn ports(&self) -> PortSet;

    /// A new team named `name` (a row where the implementation needs one).
    async fn new_team(&self, name: &str) -> TeamId;

    /// A new member of `team` (a row where the implementation needs one).
    async fn new_user(&self, team: TeamId) -> UserId;
}

/// The four storage ports of one implementation, callable as one value (each method goes to the
/// port that defines it).
#[derive(Clone)]
pub struct PortSet {
    messages: Arc<dyn MessageRepository>,
    integrations: Arc<dyn IntegrationRepository>,
    limiter: Arc<dyn RefreshLimiter>,
    inbox: Arc<dyn CallbackInbox>,
    keys: Arc<dyn ApiKeyRepository>,
    retention: Arc<dyn MessageRetention>,
    leases: Arc<dyn Leases>,
    replicas: Arc<dyn ReplicaRegistry>,
    log: Arc<dyn ChangeLog>,
    unfinished: Arc<dyn UnfinishedMessages>,
    stuck: Arc<dyn StuckMessages>,
    idempotency: Arc<dyn IdempotencyStore>,
    webhooks: Arc<dyn WebhookRepository>,
}

impl PortSet {
    /// The delivery-webhook port (endpoints and the outbox).
    pub fn webhooks(&self) -> &dyn WebhookRepository {
        self.webhooks.as_ref()
    }

    /// The ports of `implementation`, which implements all four.
    pub fn of<T>(implementation: T) -> Self
    where
        T: MessageRepository + IntegrationRepository + RefreshLimiter + CallbackInbox,
        T: ApiKeyRepository + MessageRetention + Leases + ReplicaRegistry + ChangeLog,
        T: UnfinishedMessages + StuckMessages + IdempotencyStore + WebhookRepository,
        T: Clone + 'static,
    {
        Self {
            messages: Arc::new(implementation.clone()),
            integrations: Arc::new(implementation.clone()),
            limiter: Arc::new(implementation.clone()),
            inbox: Arc::new(implementation.clone()),
            keys: Arc::new(implementation.clone()),
            retention: Arc::new(implementation.clone()),
            leases: Arc::new(implementation.clone()),
            replicas: Arc::new(implementation.clone()),
            log: Arc::new(implementation.clone()),
            unfinished: Arc::new(implementation.clone()),
            stuck: Arc::new(implementation.clone()),
            idempotency: Arc::new(implementation.clone()),
            webhooks: Arc::new(implementation),
        }
    }
}

#[async_trait]
impl MessageRepository for PortSet {
    async fn insert(&self, message: NewMessage) -> Result<Message, RepositoryError> {
        self.messages.insert(message).await
    }

    async fn find(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Option<Message>, RepositoryError> {
        self.messages.find(team, sid).await
    }

    async fn refresh_candidates(
        &self,
        team: TeamId,
        created_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Message>, RepositoryError> {
        self.messages
            .refresh_candidates(team, created_since, limit)
            .await
    }

    async fn apply_observations(
        &self,
        team: TeamId,
        writes: Vec<ObservationWrite>,
    ) -> Result<Vec<WriteOutcome>, RepositoryError> {
        self.messages.apply_observations(team, writes).await
    }

    async fn history(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusEvent>, RepositoryError> {
        self.messages.history(team, sid).await
    }

    async fn list(
        &self,
        team: TeamId,
        query: MessageQuery,
    ) -> Result<MessagePage, RepositoryError> {
        self.messages.list(team, query).await
    }

    async fn status_counts(
        &self,
        team: TeamId,
        created_since: Timestamp,
    ) -> Result<Vec<StatusCount>, RepositoryError> {
        self.messages.status_counts(team, created_since).await
    }

    async fn find_with_observed(
        &self,
        team: TeamId,
        sid: &MessageSid,
        source: ObservationSource,
        status: &MessageStatus,
    ) -> Result<Option<FoundMessage>, RepositoryError> {
        self.messages
            .find_with_observed(team, sid, source, status)
            .await
    }
}

#[async_trait]
impl IntegrationRepository for PortSet {
    async fn for_team(&self, team: TeamId) -> Result<Option<TwilioIntegration>, RepositoryError> {
        self.integrations.for_team(team).await
    }

    async fn for_account(
        &self,
        account: &AccountSid,
    ) -> Result<Option<TwilioIntegration>, RepositoryError> {
        self.integrations.for_account(account).await
    }

    async fn upsert(
        &self,
        team: TeamId,
        integration: NewIntegration,
    ) -> Result<TwilioIntegration, RepositoryError> {
        self.integrations.upsert(team, integration).await
    }
}

#[async_trait]
impl RefreshLimiter for PortSet {
    async fn claim_messages(
        &self,
        team: TeamId,
        sids: &[MessageSid],
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<Vec<CooldownClaim>, RepositoryError> {
        self.limiter.claim_messages(team, sids, now, cooldown).await
    }

    async fn claim_and_read(
        &self,
        team: TeamId,
        sid: &MessageSid,
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<Option<ClaimedRead>, RepositoryError> {
        self.limiter.claim_and_read(team, sid, now, cooldown).await
    }

    async fn claim_bulk(
        &self,
        team: TeamId,
        user: UserId,
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<CooldownClaim, RepositoryError> {
        self.limiter.claim_bulk(team, user, now, cooldown).await
    }
}

#[async_trait]
impl CallbackInbox for PortSet {
    async fn park(
        &self,
        team: TeamId,
        sid: &MessageSid,
        observation: StatusObservation,
    ) -> Result<(), RepositoryError> {
        self.inbox.park(team, sid, observation).await
    }

    async fn take_parked(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusObservation>, RepositoryError> {
        self.inbox.take_parked(team, sid).await
    }

    async fn discard_parked_before(&self, cutoff: Timestamp) -> Result<u64, RepositoryError> {
        self.inbox.discard_parked_before(cutoff).await
    }
}

#[async_trait]
impl ApiKeyRepository for PortSet {
    async fn list_keys(&self, team: TeamId) -> Result<Vec<ApiKeySummary>, RepositoryError> {
        self.keys.list_keys(team).await
    }

    async fn issue_key(
        &self,
        team: TeamId,
        user: UserId,
        label: Option<ApiKeyLabel>,
    ) -> Result<IssuedKey, RepositoryError> {
        self.keys.issue_key(team, user, label).await
    }

    async fn revoke_key(
        &self,
        team: TeamId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<Option<ApiKeySummary>, RepositoryError> {
        self.keys.revoke_key(team, id, now).await
    }
}

#[async_trait]
impl MessageRetention for PortSet {
    async fn redact_batch(
        &self,
        cutoff: Timestamp,
        policy: &RetentionPolicy,
        limit: usize,
        now: Timestamp,
    ) -> Result<u64, RepositoryError> {
        self.retention
            .redact_batch(cutoff, policy, limit, now)
            .await
    }
}

#[async_trait]
impl Leases for PortSet {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, RepositoryError> {
        self.leases.acquire(name, holder, now, ttl).await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), RepositoryError> {
        self.leases.release(name, holder).await
    }
}

#[async_trait]
impl ReplicaRegistry for PortSet {
    async fn heartbeat(
        &self,
        replica: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<usize, RepositoryError> {
        self.replicas.heartbeat(replica, now, ttl).await
    }

    async fn leave(&self, replica: &str) -> Result<(), RepositoryError> {
        self.replicas.leave(replica).await
    }
}

#[async_trait]
impl ChangeLog for PortSet {
    async fn head(&self) -> Result<LogPosition, RepositoryError> {
        self.log.head().await
    }

    async fn position_of(
        &self,
        team: TeamId,
        id: i64,
    ) -> Result<Option<LogPosition>, RepositoryError> {
        self.log.position_of(team, id).await
    }

    async fn read_after(
        &self,
        after: LogPosition,
        team: Option<TeamId>,
        limit: usize,
    ) -> Result<Vec<LoggedChange>, RepositoryError> {
        self.log.read_after(after, team, limit).await
    }
}

#[async_trait]
impl UnfinishedMessages for PortSet {
    async fn unfinished_teams(
        &self,
        created_since: Timestamp,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<UnfinishedTeam>, RepositoryError> {
        self.unfinished
            .unfinished_teams(created_since, created_before, limit)
            .await
    }

    async fn find_many(
        &self,
        team: TeamId,
        sids: &[MessageSid],
    ) -> Result<Vec<Message>, RepositoryError> {
        self.unfinished.find_many(team, sids).await
    }
}

#[async_trait]
impl StuckMessages for PortSet {
    async fn time_out_stuck(
        &self,
        created_before: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Message>, RepositoryError> {
        self.stuck.time_out_stuck(created_before, now, limit).await
    }
}

#[async_trait]
impl IdempotencyStore for PortSet {
    async fn claim_key(
        &self,
        team: TeamId,
        key: &IdempotencyKey,
        request: &str,
        now: Timestamp,
        lock: Duration,
    ) -> Result<IdempotencyClaim, RepositoryError> {
        self.idempotency
            .claim_key(team, key, request, now, lock)
            .await
    }

    async fn complete_key(
        &self,
        team: TeamId,
        key: &IdempotencyKey,
        sid: &MessageSid,
        now: Timestamp,
        keep: Duration,
    ) -> Result<(), RepositoryError> {
        self.idempotency
            .complete_key(team, key, sid, now, keep)
            .await
    }

    async fn release_key(&self, team: TeamId, key: &IdempotencyKey) -> Result<(), RepositoryError> {
        self.idempotency.release_key(team, key).await
    }
}

/// The domain's in-memory fake as a contract subject: teams and users are just new numbers.
#[derive(Default)]
pub struct InMemorySubject {
    store: InMemoryStore,
    next_id: AtomicI64,
}

impl InMemorySubject {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ContractSubject for InMemorySubject {
    fn ports(&self) -> PortSet {
        PortSet::of(self.store.clone())
    }

    async fn new_team(&self, _name: &str) -> TeamId {
        TeamId::new(self.next_id.fetch_add(1, Ordering::SeqCst) + 1).expect("a positive id")
    }

    async fn new_user(&self, _team: TeamId) -> UserId {
        UserId::new(self.next_id.fetch_add(1, Ordering::SeqCst) + 1).expect("a positive id")
    }
}

// ---- fixtures ------------------------------------------------------------------------------

/// 2026-01-01T00:00:00Z plus `offset_secs`.
pub fn at(offset_secs: i64) -> Timestamp {
    chrono::Utc
        .timestamp_opt(1_767_225_600 + offset_secs, 0)
        .single()
        .expect("a valid time")
}

/// The `n`th test SID.
pub fn sid(n: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{n:032x}")).expect("valid SID")
}

/// [`ACCOUNT`].
pub fn account() -> AccountSid {
    AccountSid::parse(ACCOUNT).expect("valid account")
}

/// An observation of `status` from `source` at `at`.
pub fn observation(
    status: MessageStatus,
    source: ObservationSource,
    at: Timestamp,
) -> StatusObservation {
    StatusObservation {
        state: DeliveryState::new(status),
        source,
        observed_at: at,
    }
}

/// A status callback observed at `at`.
pub fn callback(status: MessageStatus, at: Timestamp) -> StatusObservation {
    observation(status, ObservationSource::Callback, at)
}

/// Message `n` of `team`, first observed as `status` when created at `created_at`.
pub fn new_message(
    team: TeamId,
    n: u32,
    direction: Direction,
    status: MessageStatus,
    created_at: Timestamp,
) -> NewMessage {
    NewMessage {
        sid: sid(n),
        team_id: team,
        account_sid: account(),
        direction,
        from: Address::parse("+14155550100").expect("valid"),
        to: Address::parse("+14155550199").expect("valid"),
        body: format!("message {n}"),
        first_observation: observation(status, ObservationSource::Send, created_at),
        created_at,
        reference: None,
    }
}

/// A new team of `subject`.
pub async fn team(subject: &dyn ContractSubject, name: &str) -> TeamId {
    subject.new_team(name).await
}

/// Stores `message`, which must succeed.
pub async fn stored(messages: &dyn MessageRepository, message: NewMessage) {
    messages.insert(message).await.expect("message is stored");
}

/// A poll of message `n` moving it from `expected` to `next` at `at`.
pub fn change_write(
    n: u32,
    expected: MessageStatus,
    next: MessageStatus,
    at: Timestamp,
) -> ObservationWrite {
    ObservationWrite {
        sid: sid(n),
        observation: observation(next.clone(), ObservationSource::Poll, at),
        change: Some(StateChange {
            expected_status: expected,
            expected_updated_at: None,
            next: DeliveryState::new(next),
        }),
    }
}

/// An integration of `account_sid` with `token`, sending from a number.
pub fn integration(account_sid: &str, token: &str) -> NewIntegration {
    NewIntegration {
        account_sid: AccountSid::parse(account_sid).expect("valid"),
        auth_token: SecretString::from(token.to_owned()),
        api_key: None,
        sender: Sender::Number(PhoneNumber::parse("+14155550100").expect("valid")),
    }
}

/// The integration's auth token, as text.
pub fn token_of(integration: &TwilioIntegration) -> String {
    integration.auth_token.expose_secret().to_owned()
}
