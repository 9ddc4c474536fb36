//! Twilio's webhooks as use cases: `ApplyStatusCallback` (a status callback for a message we
//! sent) and `ReceiveSms` (an inbound message).
//!
//! The HTTP layer finds the integration by the callback's account SID
//! ([`ApplyStatusCallback::integration_for`]), checks Twilio's signature with that integration's
//! auth token, and only then calls these. So everything here may trust its input's origin.
//!
//! **The integration is reused for a few seconds.** Every webhook needs its account's
//! integration (one query and an AES-GCM decryption), and Twilio posts many per message, so an
//! integration read is reused for [`super::INTEGRATION_FRESH_FOR`]. A token that does not verify is no
//! reason to trust the copy: [`ApplyStatusCallback::signed_integration`] reads it again before
//! refusing, so a rotated auth token is accepted at once,
//! and an old one stops verifying within that time on every replica (the same bound as an API
//! key's revocation). Unknown accounts are never remembered, so nobody can fill the memory.
//!
//! Status callbacks go through the same forward-only rule as refresh polls ([`super::apply`]):
//! Twilio does not promise order, so a late `sent` after `delivered` is recorded and ignored.
//! Twilio retries callbacks, so a second callback with the same (SID, status) is a duplicate and is
//! neither applied nor recorded again. A callback that beats its message's row into the store is
//! parked in the [`CallbackInbox`] and replayed when the message is stored.
//!
//! **The send/callback race.** Twilio can post a message's first callbacks before the send that
//! created it has stored its row. Both sides close the race here, in the domain, so every caller
//! (the HTTP service, the CLI's demo, an embedder) behaves alike:
//! - a callback that finds no row parks itself, then looks once more: if the send stored the row
//!   and replayed the inbox between the first look and the park, this second look replays it;
//! - [`super::SendSms`] replays what was parked right after storing the message
//!   ([`replay_parked`]) and answers with the message as it is then.
//!
//! Every change committed here is handed to the [`ChangeNotifier`]; what each callback did is
//! reported as [`Activity`].

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::apply::{Stored, store_observations};
use super::recent_integrations::RecentIntegrations;
use crate::changes::{Activity, ChangeKind, ChangeNotifier, CommittedChange, IgnoreChanges};
use crate::ids::{AccountSid, Address, MessageSid, TeamId};
use crate::message::{
    DeliveryState, Message, NewMessage, ObservationSource, StatusObservation, Timestamp,
};
use crate::ports::{
    CallbackInbox, Clock, IntegrationRepository, MessageRepository, RepositoryError,
    TwilioIntegration,
};
use crate::rules::{StaleReason, StatusDecision};
use crate::status::{Direction, MessageStatus};

/// A status callback, after its signature was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// The message.
    pub sid: MessageSid,
    /// What Twilio says now (`MessageStatus`, `ErrorCode`, ...).
    pub state: DeliveryState,
}

/// What a status callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The status moved forward.
    Advanced {
        /// The status before.
        from: MessageStatus,
        /// The status now.
        to: MessageStatus,
    },
    /// Same status, new details stored.
    Enriched,
    /// Nothing new.
    Unchanged,
    /// Older than what is stored: recorded, ignored.
    Stale {
        /// Why it was ignored.
        reason: StaleReason,
    },
    /// The same (SID, status) was already received: Twilio retried. Not recorded again.
    Duplicate,
    /// The message is not stored yet; the callback is kept and replayed when it is.
    Parked,
    /// The message kept changing under us; the callback was not applied.
    GaveUp,
}

impl CallbackOutcome {
    fn from_stored(stored: Stored) -> Self {
        match stored {
            Stored::Decided { before, decision } => match decision {
                StatusDecision::Advanced { next, .. } => Self::Advanced {
                    from: before.status,
                    to: next.status,
                },
                StatusDecision::Enriched { .. } => Self::Enriched,
                StatusDecision::Unchanged => Self::Unchanged,
                StatusDecision::Stale { reason } => Self::Stale { reason },
            },
            // The row vanished between our read and our write: keep the news for when it returns.
            Stored::Missing => Self::Parked,
            Stored::GaveUp => Self::GaveUp,
        }
    }
}

/// Why a callback or inbound message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No team has an integration for the webhook's account SID.
    #[error("no integration for this Twilio account")]
    UnknownAccount,
    /// The message kept changing while the callback was applied; nothing was written for it.
    /// Worth retrying (Twilio retries a 5xx).
    #[error("the message kept changing while the callback was applied; retry")]
    KeptChanging,
    /// The store cannot be reached, or a concurrent write won a race; Twilio's retry is
    /// harmless and will likely succeed.
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// The store failed in a way a retry will not fix (an unreadable row, a bug).
    #[error("unexpected store error: {0}")]
    Unexpected(String),
}

impl From<RepositoryError> for WebhookError {
    fn from(error: RepositoryError) -> Self {
        match error {
            // A duplicate here is a race with another writer of the same row: retry.
            RepositoryError::Unavailable(detail) | RepositoryError::Duplicate(detail) => {
                Self::StoreUnavailable(detail)
            }
            RepositoryError::Unexpected(detail) => Self::Unexpected(detail),
        }
    }
}

/// What [`ApplyStatusCallback::signed_integration`] found.
#[derive(Debug, Clone)]
pub enum SignedBy {
    /// The signature verifies with this integration's auth token.
    Integration(TwilioIntegration),
    /// The account is known, but the signature is missing or does not verify.
    WrongSignature,
    /// No team has this account.
    UnknownAccount,
}

/// Applies Twilio's status callbacks. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ApplyStatusCallback {
    messages: Arc<dyn MessageRepository>,
    integrations: Arc<RecentIntegrations>,
    inbox: Arc<dyn CallbackInbox>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn ChangeNotifier>,
}

impl ApplyStatusCallback {
    /// Builds the use case over its ports.
    pub fn new(
        messages: Arc<dyn MessageRepository>,
        integrations: Arc<dyn IntegrationRepository>,
        inbox: Arc<dyn CallbackInbox>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            messages,
            integrations: Arc::new(RecentIntegrations::new(integrations, clock.clone())),
            inbox,
            clock,
            notifier: Arc::new(IgnoreChanges),
        }
    }

    /// Hands every change this use case commits, and what each callback did, to `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// The integration a webhook from `account` belongs to: its auth token checks the signature
    /// and its team owns the message. May be a copy read up to [`super::INTEGRATION_FRESH_FOR`] ago;
    /// to check a signature, use [`ApplyStatusCallback::signed_integration`].
    ///
    /// # Errors
    /// [`WebhookError::UnknownAccount`] when no team has this account;
    /// [`WebhookError::StoreUnavailable`] or [`WebhookError::Unexpected`] when the store fails.
    pub async fn integration_for(
        &self,
        account: &AccountSid,
    ) -> Result<TwilioIntegration, WebhookError> {
        self.integrations
            .for_account(account)
            .await
            .map_err(WebhookError::from)?
            .ok_or(WebhookError::UnknownAccount)
    }

    /// Who signed a webhook from `account`: the integration whose auth token `verifies` accepts.
    ///
    /// `verifies` checks the request's signature with a token; it is called with `None` for an
    /// unknown account, so the adapter can check a decoy token and make that refusal cost what
    /// any other does. A remembered copy whose token does not verify is read again before the
    /// webhook is refused, and checked again only if its token changed.
    ///
    /// # Errors
    /// [`WebhookError::StoreUnavailable`] or [`WebhookError::Unexpected`] when the store fails.
    pub async fn signed_integration(
        &self,
        account: &AccountSid,
        verifies: impl Fn(Option<&SecretString>) -> bool,
    ) -> Result<SignedBy, WebhookError> {
        let copy = match self.integration_for(account).await {
            Ok(copy) => copy,
            Err(WebhookError::UnknownAccount) => {
                verifies(None);
                return Ok(SignedBy::UnknownAccount);
            }
            Err(error) => return Err(error),
        };
        if verifies(Some(&copy.auth_token)) {
            return Ok(SignedBy::Integration(copy));
        }
        match self.integration_for_fresh(account).await {
            Ok(fresh)
                if fresh.auth_token.expose_secret() != copy.auth_token.expose_secret()
                    && verifies(Some(&fresh.auth_token)) =>
            {
                Ok(SignedBy::Integration(fresh))
            }
            Ok(_) => Ok(SignedBy::WrongSignature),
            Err(WebhookError::UnknownAccount) => Ok(SignedBy::UnknownAccount),
            Err(error) => Err(error),
        }
    }

    /// As [`ApplyStatusCallback::integration_for`], read from the store now (and remembered).
    async fn integration_for_fresh(
        &self,
        account: &AccountSid,
    ) -> Result<TwilioIntegration, WebhookError> {
        self.integrations
            .for_account_now(account)
            .await
            .map_err(WebhookError::from)?
            .ok_or(WebhookError::UnknownAccount)
    }

    /// The integration port this use case reads through. Give it to
    /// [`super::ConfigureIntegration`], so a replaced integration is forgotten here at once.
    #[must_use]
    pub fn integrations(&self) -> Arc<dyn IntegrationRepository> {
        self.integrations.clone()
    }

    /// Applies one callback for a message of `team`.
    ///
    /// # Errors
    /// [`WebhookError::KeptChanging`] when the message kept changing under the write;
    /// [`WebhookError::StoreUnavailable`] or [`WebhookError::Unexpected`] when the store fails. Answer both with a 5xx so that Twilio
    /// retries; the retry is harmless.
    pub async fn apply(
        &self,
        team: TeamId,
        callback: StatusCallback,
    ) -> Result<CallbackOutcome, WebhookError> {
        let outcome = self.decide_and_store(team, callback).await?;
        self.notifier
            .activity(&Activity::CallbackTaken(outcome.clone()));
        match outcome {
            CallbackOutcome::GaveUp => Err(WebhookError::KeptChanging),
            outcome => Ok(outcome),
        }
    }

    async fn decide_and_store(
        &self,
        team: TeamId,
        callback: StatusCallback,
    ) -> Result<CallbackOutcome, WebhookError> {
        let observation = StatusObservation {
            state: callback.state,
            source: ObservationSource::Callback,
            observed_at: self.clock.now(),
        };
        let sid = callback.sid;
        // Twilio retries a callback it got no answer to: the same status twice is a duplicate.
        // The message and that question are one read.
        let Some(found) = self
            .messages
            .find_with_observed(
                team,
                &sid,
                ObservationSource::Callback,
                &observation.state.status,
            )
            .await
            .map_err(WebhookError::from)?
        else {
            return self.park(team, &sid, observation).await;
        };
        if found.already_observed {
            return Ok(CallbackOutcome::Duplicate);
        }
        let message = found.message;

        let mut stored = store_observations(
            self.messages.as_ref(),
            self.notifier.as_ref(),
            team,
            vec![(message, observation.clone())],
        )
        .await
        .map_err(WebhookError::from)?;
        match CallbackOutcome::from_stored(stored.pop().unwrap_or(Stored::GaveUp)) {
            CallbackOutcome::Parked => self.park(team, &sid, observation).await,
            outcome => Ok(outcome),
        }
    }

    /// Parks `observation`, then looks once more: the send may have stored the message and
    /// replayed the inbox between our lookup and our park, and then nobody else would replay it.
    async fn park(
        &self,
        team: TeamId,
        sid: &MessageSid,
        observation: StatusObservation,
    ) -> Result<CallbackOutcome, WebhookError> {
        self.inbox
            .park(team, sid, observation)
            .await
            .map_err(WebhookError::from)?;
        let stored_meanwhile = self
            .messages
            .find(team, sid)
            .await
            .map_err(WebhookError::from)?
            .is_some();
        if stored_meanwhile {
            self.replay_parked(team, sid)
                .await
                .map_err(WebhookError::from)?;
        }
        Ok(CallbackOutcome::Parked)
    }

    /// Replays the callbacks parked for a message that has just been stored, oldest first.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; callbacks not yet replayed stay parked only if
    /// the failure happened before they were taken.
    pub async fn replay_parked(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<CallbackOutcome>, RepositoryError> {
        replay_parked(
            self.messages.as_ref(),
            self.inbox.as_ref(),
            self.notifier.as_ref(),
            team,
            sid,
        )
        .await
    }

    /// Discards the callbacks parked longer than `older_than` (their message never appeared: it
    /// was sent by something else on the account, or its send failed after Twilio accepted it)
    /// and returns how many. An hour is a generous `older_than`: a callback normally waits only
    /// for the send's own write.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; nothing is lost, the next run retries.
    pub async fn discard_stale_parked(&self, older_than: Duration) -> Result<u64, RepositoryError> {
        let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let cutoff = self
            .clock
            .now()
            .checked_sub_signed(age)
            .unwrap_or(Timestamp::MIN_UTC);
        let discarded = self.inbox.discard_parked_before(cutoff).await?;
        if discarded > 0 {
            self.notifier
                .activity(&Activity::ParkedDiscarded(discarded));
        }
        Ok(discarded)
    }
}

/// Applies the callbacks parked for `sid`, oldest first, through the forward-only rule, and
/// reports each as [`Activity::ParkedReplayed`]. Shared by the callback path (its second look)
/// and by [`super::SendSms`] (right after the message is stored).
///
/// # Errors
/// [`RepositoryError`] when the store fails.
pub(crate) async fn replay_parked(
    messages: &dyn MessageRepository,
    inbox: &dyn CallbackInbox,
    notifier: &dyn ChangeNotifier,
    team: TeamId,
    sid: &MessageSid,
) -> Result<Vec<CallbackOutcome>, RepositoryError> {
    let parked = inbox.take_parked(team, sid).await?;
    let mut outcomes = Vec::with_capacity(parked.len());
    for observation in parked {
        let outcome = match messages.find(team, sid).await? {
            Some(message) => {
                let mut stored = store_observations(
                    messages,
                    notifier,
                    team,
                    vec![(message, observation.clone())],
                )
                .await?;
                let outcome = CallbackOutcome::from_stored(stored.pop().unwrap_or(Stored::GaveUp));
                if matches!(outcome, CallbackOutcome::GaveUp | CallbackOutcome::Parked) {
                    // Twilio was already answered; keep the news for the next replay or look.
                    inbox.park(team, sid, observation).await?;
                }
                outcome
            }
            None => {
                // Still not there (a replay raced a delete): park it again.
                inbox.park(team, sid, observation).await?;
                CallbackOutcome::Parked
            }
        };
        notifier.activity(&Activity::ParkedReplayed(outcome.clone()));
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The change a newly stored message is announced as.
pub(crate) fn created_change(message: &Message, source: ObservationSource) -> CommittedChange {
    CommittedChange {
        team_id: message.team_id,
        sid: message.sid.clone(),
        kind: ChangeKind::Created {
            direction: message.direction,
        },
        state: message.delivery.clone(),
        source,
        observed_at: message.updated_at,
    }
}

/// An inbound SMS, after its signature was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// Twilio's id for it.
    pub sid: MessageSid,
    /// The account it arrived on, compared in plaintext with the team's integration.
    pub account_sid: AccountSid,
    /// Sender.
    pub from: Address,
    /// The team's number it was sent to.
    pub to: Address,
    /// The text.
    pub body: String,
    /// Segments, if Twilio said.
    pub num_segments: Option<u32>,
}

/// What receiving an inbound SMS did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// Stored for the first time.
    Stored,
    /// Already stored (Twilio retried the webhook); nothing changed.
    AlreadyStored,
}

/// Stores inbound SMS. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ReceiveSms {
    messages: Arc<dyn MessageRepository>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn ChangeNotifier>,
}

impl ReceiveSms {
    /// Builds the use case over its ports.
    pub fn new(messages: Arc<dyn MessageRepository>, clock: Arc<dyn Clock>) -> Self {
        Self {
            messages,
            clock,
            notifier: Arc::new(IgnoreChanges),
        }
    }

    /// Hands every message this use case stores, and what each webhook did, to `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Stores `sms` as an inbound message of `integration`'s team with status `received`, once
    /// per SID.
    ///
    /// # Errors
    /// [`WebhookError::UnknownAccount`] when the SMS's account is not the integration's;
    /// [`WebhookError::StoreUnavailable`] or [`WebhookError::Unexpected`] when the store fails.
    pub async fn receive(
        &self,
        integration: &TwilioIntegration,
        sms: InboundSms,
    ) -> Result<ReceiveOutcome, WebhookError> {
        if sms.account_sid != integration.credentials.account_sid {
            return Err(WebhookError::UnknownAccount);
        }
        let now = self.clock.now();
        let mut state = DeliveryState::new(MessageStatus::Received);
        state.num_segments = sms.num_segments;
        let new = NewMessage {
            sid: sms.sid,
            team_id: integration.team_id,
            account_sid: sms.account_sid,
            direction: Direction::Inbound,
            from: sms.from,
            to: sms.to,
            body: sms.body,
            first_observation: StatusObservation {
                state,
                source: ObservationSource::Inbound,
                observed_at: now,
            },
            created_at: now,
            reference: None,
        };
        let outcome = match self.messages.insert(new).await {
            Ok(message) => {
                self.notifier
                    .committed(&created_change(&message, ObservationSource::Inbound));
                ReceiveOutcome::Stored
            }
            Err(RepositoryError::Duplicate(_)) => ReceiveOutcome::AlreadyStored,
            Err(error) => return Err(error.into()),
        };
        self.notifier
            .activity(&Activity::InboundTaken(outcome.clone()));
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::fakes::{InMemoryStore, ManualClock};
    use crate::ids::PhoneNumber;
    use crate::ports::{NewIntegration, Sender};
    use crate::services::INTEGRATION_FRESH_FOR;

    /// The in-memory store, counting account lookups; a lookup can be held after it has read,
    /// until `release` is sent, to let a write happen in between.
    struct Counting {
        store: InMemoryStore,
        lookups: AtomicUsize,
        team_lookups: AtomicUsize,
        hold: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    }

    #[async_trait::async_trait]
    impl IntegrationRepository for Counting {
        async fn for_team(
            &self,
            team: TeamId,
        ) -> Result<Option<TwilioIntegration>, RepositoryError> {
            self.team_lookups.fetch_add(1, Ordering::SeqCst);
            self.store.for_team(team).await
        }

        async fn for_account(
            &self,
            account: &AccountSid,
        ) -> Result<Option<TwilioIntegration>, RepositoryError> {
            let found = self.store.for_account(account).await;
            let held = self.hold.lock().unwrap().take();
            self.lookups.fetch_add(1, Ordering::SeqCst);
            if let Some(release) = held {
                let _ = release.await;
            }
            found
        }

        async fn upsert(
            &self,
            team: TeamId,
            integration: NewIntegration,
        ) -> Result<TwilioIntegration, RepositoryError> {
            self.store.upsert(team, integration).await
        }
    }

    fn account() -> AccountSid {
        AccountSid::parse("AC00000000000000000000000000000001").unwrap()
    }

    fn integration(token: &str) -> NewIntegration {
        NewIntegration {
            account_sid: account(),
            auth_token: SecretString::from(token),
            api_key: None,
            sender: Sender::Number(PhoneNumber::parse("+15005550006").unwrap()),
        }
    }

    async fn world() -> (ApplyStatusCallback, Arc<Counting>, ManualClock) {
        let counting = Arc::new(Counting {
            store: InMemoryStore::new(),
            lookups: AtomicUsize::new(0),
            team_lookups: AtomicUsize::new(0),
            hold: std::sync::Mutex::new(None),
        });
        let team = TeamId::new(1).unwrap();
        counting.upsert(team, integration("first")).await.unwrap();
        let clock = ManualClock::new(chrono::Utc::now());
        let callbacks = ApplyStatusCallback::new(
            Arc::new(InMemoryStore::new()),
            counting.clone(),
            Arc::new(InMemoryStore::new()),
            Arc::new(clock.clone()),
        );
        (callbacks, counting, clock)
    }

    async fn token(callbacks: &ApplyStatusCallback) -> String {
        let found = callbacks.integration_for(&account()).await.unwrap();
        found.auth_token.expose_secret().to_owned()
    }

    #[tokio::test]
    async fn a_webhooks_integration_is_read_once_for_a_few_seconds_then_again() {
        let (callbacks, counting, clock) = world().await;
        for _ in 0..5 {
            assert_eq!(token(&callbacks).await, "first");
        }
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 1);
        clock.advance(INTEGRATION_FRESH_FOR);
        token(&callbacks).await;
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 2, "expired");
        // A clock stepped back never makes an old copy fresh.
        clock.set(clock.now() - chrono::Duration::hours(1));
        token(&callbacks).await;
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_teams_integration_is_read_once_for_a_few_seconds_and_forgotten_when_replaced_here() {
        let (callbacks, counting, clock) = world().await;
        let integrations = callbacks.integrations();
        let team = TeamId::new(1).unwrap();
        let team_token = || async {
            let found = integrations.for_team(team).await.unwrap().unwrap();
            found.auth_token.expose_secret().to_owned()
        };
        for _ in 0..5 {
            assert_eq!(team_token().await, "first");
        }
        assert_eq!(counting.team_lookups.load(Ordering::SeqCst), 1);
        clock.advance(INTEGRATION_FRESH_FOR);
        team_token().await;
        assert_eq!(counting.team_lookups.load(Ordering::SeqCst), 2, "expired");
        // Its account's copy is forgotten with it: a webhook verifies with the new token too.
        assert_eq!(token(&callbacks).await, "first");
        integrations
            .upsert(team, integration("second"))
            .await
            .unwrap();
        assert_eq!(team_token().await, "second", "replaced here: read again");
        assert_eq!(token(&callbacks).await, "second");
        for _ in 0..2 {
            let none = integrations.for_team(TeamId::new(2).unwrap()).await;
            assert!(matches!(none, Ok(None)), "no integration for team 2");
        }
        assert_eq!(
            counting.team_lookups.load(Ordering::SeqCst),
            5,
            "a team without an integration is never remembered"
        );
    }

    #[tokio::test]
    async fn a_token_replaced_elsewhere_is_read_fresh_and_one_replaced_here_is_forgotten() {
        let (callbacks, counting, _clock) = world().await;
        assert_eq!(token(&callbacks).await, "first");
        // Replaced by another replica: this one still holds the copy until asked fresh.
        let team = TeamId::new(1).unwrap();
        counting.upsert(team, integration("second")).await.unwrap();
        assert_eq!(token(&callbacks).await, "first");
        let fresh = callbacks.integration_for_fresh(&account()).await.unwrap();
        assert_eq!(fresh.auth_token.expose_secret(), "second");
        assert_eq!(token(&callbacks).await, "second", "the fresh read is kept");
        // Replaced through this use case's port: forgotten at once.
        callbacks
            .integrations()
            .upsert(team, integration("third"))
            .await
            .unwrap();
        assert_eq!(token(&callbacks).await, "third");
    }

    #[tokio::test]
    async fn a_read_under_way_while_the_token_is_replaced_is_not_remembered() {
        let (callbacks, counting, _clock) = world().await;
        let (release, held) = tokio::sync::oneshot::channel();
        *counting.hold.lock().unwrap() = Some(held);
        let reading = tokio::spawn({
            let callbacks = callbacks.clone();
            async move { token(&callbacks).await }
        });
        while counting.lookups.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The read has the old row in hand; the token is replaced before it returns.
        callbacks
            .integrations()
            .upsert(TeamId::new(1).unwrap(), integration("second"))
            .await
            .unwrap();
        release.send(()).unwrap();
        assert_eq!(reading.await.unwrap(), "first", "it read before the write");
        assert_eq!(token(&callbacks).await, "second", "but was not remembered");
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_signature_is_checked_against_a_fresh_read_only_when_the_token_changed() {
        let (callbacks, counting, _clock) = world().await;
        let signed_with = |expected: &'static str| {
            move |token: Option<&SecretString>| token.is_some_and(|t| t.expose_secret() == expected)
        };
        let found = callbacks
            .signed_integration(&account(), signed_with("first"))
            .await;
        assert!(matches!(found, Ok(SignedBy::Integration(_))));
        // Replaced by another replica: the copy fails, the fresh read verifies.
        let team = TeamId::new(1).unwrap();
        counting.upsert(team, integration("second")).await.unwrap();
        let found = callbacks
            .signed_integration(&account(), signed_with("second"))
            .await;
        assert!(
            matches!(found, Ok(SignedBy::Integration(i)) if i.auth_token.expose_secret() == "second")
        );
        // A wrong signature: one fresh read, then refused without checking the same token again.
        let checks = AtomicUsize::new(0);
        let lookups_before = counting.lookups.load(Ordering::SeqCst);
        let found = callbacks
            .signed_integration(&account(), |_| {
                checks.fetch_add(1, Ordering::SeqCst);
                false
            })
            .await;
        assert!(matches!(found, Ok(SignedBy::WrongSignature)));
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        assert_eq!(counting.lookups.load(Ordering::SeqCst), lookups_before + 1);
        // An unknown account is checked against the adapter's decoy (`None`) and refused.
        let decoy_checked = AtomicUsize::new(0);
        let stranger = AccountSid::parse("AC99999999999999999999999999999999").unwrap();
        let found = callbacks
            .signed_integration(&stranger, |token| {
                assert!(token.is_none());
                decoy_checked.fetch_add(1, Ordering::SeqCst);
                true
            })
            .await;
        assert!(matches!(found, Ok(SignedBy::UnknownAccount)));
        assert_eq!(decoy_checked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unknown_accounts_are_never_remembered() {
        let (callbacks, counting, _clock) = world().await;
        let stranger = AccountSid::parse("AC99999999999999999999999999999999").unwrap();
        for _ in 0..3 {
            assert!(matches!(
                callbacks.integration_for(&stranger).await,
                Err(WebhookError::UnknownAccount)
            ));
        }
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 3);
    }
}
