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

use std::sync::Arc;

use super::apply::{Stored, store_observations};
use crate::ids::{AccountSid, Address, MessageSid, TeamId};
use crate::message::{DeliveryState, NewMessage, ObservationSource, StatusObservation};
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
    /// The store failed; Twilio will retry the webhook.
    #[error(transparent)]
    Store(RepositoryError),
}

/// Applies Twilio's status callbacks. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ApplyStatusCallback {
    messages: Arc<dyn MessageRepository>,
    integrations: Arc<dyn IntegrationRepository>,
    inbox: Arc<dyn CallbackInbox>,
    clock: Arc<dyn Clock>,
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
        }
    }

    /// The integration a webhook from `account` belongs to: its auth token checks the signature
    /// and its team owns the message.
    ///
    /// # Errors
    /// [`WebhookError::UnknownAccount`] when no team has this account;
    /// [`WebhookError::Store`] when the store fails.
    pub async fn integration_for(
        &self,
        account: &AccountSid,
    ) -> Result<TwilioIntegration, WebhookError> {
        self.integrations
            .for_account(account)
            .await
            .map_err(WebhookError::Store)?
            .ok_or(WebhookError::UnknownAccount)
    }

    /// Applies one callback for a message of `team`.
    ///
    /// # Errors
    /// [`WebhookError::Store`] when the store fails (answer 5xx so that Twilio retries).
    pub async fn apply(
        &self,
        team: TeamId,
        callback: StatusCallback,
    ) -> Result<CallbackOutcome, WebhookError> {
        let observation = StatusObservation {
            state: callback.state,
            source: ObservationSource::Callback,
            observed_at: self.clock.now(),
        };
        let Some(message) = self
            .messages
            .find(team, &callback.sid)
            .await
            .map_err(WebhookError::Store)?
        else {
            self.inbox
                .park(team, &callback.sid, observation)
                .await
                .map_err(WebhookError::Store)?;
            return Ok(CallbackOutcome::Parked);
        };

        let history = self
            .messages
            .history(team, &callback.sid)
            .await
            .map_err(WebhookError::Store)?;
        let already_seen = history.iter().any(|event| {
            event.observation.source == ObservationSource::Callback
                && event.observation.state.status == observation.state.status
        });
        if already_seen {
            return Ok(CallbackOutcome::Duplicate);
        }

        let mut stored = store_observations(
            self.messages.as_ref(),
            team,
            vec![(message, observation.clone())],
        )
        .await
        .map_err(WebhookError::Store)?;
        let outcome = CallbackOutcome::from_stored(stored.pop().unwrap_or(Stored::GaveUp));
        if outcome == CallbackOutcome::Parked {
            self.inbox
                .park(team, &callback.sid, observation)
                .await
                .map_err(WebhookError::Store)?;
        }
        Ok(outcome)
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
        let parked = self.inbox.take_parked(team, sid).await?;
        let mut outcomes = Vec::with_capacity(parked.len());
        for observation in parked {
            let Some(message) = self.messages.find(team, sid).await? else {
                // Still not there (a replay raced a delete): park it again.
                self.inbox.park(team, sid, observation).await?;
                outcomes.push(CallbackOutcome::Parked);
                continue;
            };
            let mut stored =
                store_observations(self.messages.as_ref(), team, vec![(message, observation)])
                    .await?;
            outcomes.push(CallbackOutcome::from_stored(
                stored.pop().unwrap_or(Stored::GaveUp),
            ));
        }
        Ok(outcomes)
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
}

impl ReceiveSms {
    /// Builds the use case over its ports.
    pub fn new(messages: Arc<dyn MessageRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, clock }
    }

    /// Stores `sms` as an inbound message of `integration`'s team with status `received`, once
    /// per SID.
    ///
    /// # Errors
    /// [`WebhookError::UnknownAccount`] when the SMS's account is not the integration's;
    /// [`WebhookError::Store`] when the store fails.
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
        };
        match self.messages.insert(new).await {
            Ok(_) => Ok(ReceiveOutcome::Stored),
            Err(RepositoryError::Duplicate(_)) => Ok(ReceiveOutcome::AlreadyStored),
            Err(error) => Err(WebhookError::Store(error)),
        }
    }
}
