//! Twilio's webhooks as use cases: `ApplyStatusCallback` (a status callback for a message we
//! sent) and `ReceiveSms` (an inbound message).
//!
//! The HTTP layer finds the integration by the callback's account SID
//! ([`ApplyStatusCallback::integration_for`]), checks Twilio's signature with that integration's
//! auth token, and only then calls these. So everything here may trust its input's origin.
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

use super::apply::{Stored, store_observations};
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

/// Applies Twilio's status callbacks. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ApplyStatusCallback {
    messages: Arc<dyn MessageRepository>,
    integrations: Arc<dyn IntegrationRepository>,
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
            integrations,
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
    /// and its team owns the message.
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
        let Some(message) = self
            .messages
            .find(team, &sid)
            .await
            .map_err(WebhookError::from)?
        else {
            return self.park(team, &sid, observation).await;
        };

        let history = self
            .messages
            .history(team, &sid)
            .await
            .map_err(WebhookError::from)?;
        let already_seen = history.iter().any(|event| {
            event.observation.source == ObservationSource::Callback
                && event.observation.state.status == observation.state.status
        });
        if already_seen {
            return Ok(CallbackOutcome::Duplicate);
        }

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
