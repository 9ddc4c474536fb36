//! Delivery webhooks' use cases: team admins manage their endpoints ([`ManageWebhooks`]), and
//! a worker on every replica makes the due deliveries ([`DeliverWebhooks`]). The rules are in
//! [`crate::webhooks`]; the outbox is filled by the message repository in each change's own
//! transaction.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;

use crate::access::{Requester, TeamAdmin};
use crate::changes::{Activity, ChangeNotifier, IgnoreChanges};
use crate::ports::{
    Clock, RepositoryError, SecretGenerator, SystemClock, WebhookRepository, WebhookTransport,
};
use crate::webhooks::{
    AfterAttempt, AttemptVerdict, DeliveryAttempt, DeliveryId, DueDelivery, EndpointId,
    EndpointPatch, EndpointUrl, EventSelection, InvalidEndpointUrl, InvalidEventSelection,
    NewEndpoint, PREVIOUS_SECRET_VALID_FOR, RetrySchedule, UrlPolicy, WebhookDelivery,
    WebhookEndpoint, WebhookSecret, kept_response_body, signature_header,
};

/// Why an endpoint operation did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManageWebhooksError {
    /// The requester is not an admin of the team.
    #[error("only team admins may manage the team's webhook endpoints")]
    NotAdmin,
    /// The URL breaks a rule.
    #[error("url: {0}")]
    InvalidUrl(#[from] InvalidEndpointUrl),
    /// The events are not a selection.
    #[error("events: {0}")]
    InvalidEvents(#[from] InvalidEventSelection),
    /// The team has no such endpoint (or, for a replay, the endpoint no such delivery).
    #[error("no such webhook endpoint or delivery")]
    NotFound,
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(RepositoryError),
}

/// An endpoint as a team admin describes it, unchecked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointRequest {
    /// Where to post (checked against the deployment's [`UrlPolicy`]).
    pub url: Option<String>,
    /// Event names.
    pub events: Option<Vec<String>>,
    /// Enabled or not.
    pub enabled: Option<bool>,
}

/// An endpoint with the secret that signs its deliveries: answered only by creation and
/// rotation.
#[derive(Debug, Clone)]
pub struct EndpointWithSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// Its new signing secret.
    pub secret: WebhookSecret,
}

/// Managing a team's endpoints. Cheap to clone.
#[derive(Clone)]
pub struct ManageWebhooks {
    repository: Arc<dyn WebhookRepository>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    policy: UrlPolicy,
}

impl ManageWebhooks {
    /// Over `repository`, with secrets from `secrets`, URLs held to `policy`.
    pub fn new(
        repository: Arc<dyn WebhookRepository>,
        secrets: Arc<dyn SecretGenerator>,
        policy: UrlPolicy,
    ) -> Self {
        Self {
            repository,
            secrets,
            clock: Arc::new(SystemClock),
            policy,
        }
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The URL policy in force.
    pub fn policy(&self) -> UrlPolicy {
        self.policy
    }

    /// The admin rule, checked before anything else is read.
    ///
    /// # Errors
    /// [`ManageWebhooksError::NotAdmin`] for members.
    pub fn authorize(requester: &Requester) -> Result<TeamAdmin, ManageWebhooksError> {
        TeamAdmin::of(requester).ok_or(ManageWebhooksError::NotAdmin)
    }

    /// Creates an endpoint (enabled unless asked otherwise) with a fresh secret.
    ///
    /// # Errors
    /// An invalid URL or event list ([`ManageWebhooksError`]) stores nothing; so does a store
    /// failure.
    pub async fn create(
        &self,
        admin: TeamAdmin,
        request: EndpointRequest,
    ) -> Result<EndpointWithSecret, ManageWebhooksError> {
        let url = EndpointUrl::parse(request.url.as_deref().unwrap_or_default(), self.policy)?;
        let events = match &request.events {
            Some(names) => EventSelection::parse(names)?,
            None => EventSelection::ALL,
        };
        let endpoint = NewEndpoint {
            url,
            events,
            enabled: request.enabled.unwrap_or(true),
        };
        let secret = self.secrets.webhook_secret();
        let endpoint = self
            .repository
            .create_endpoint(admin.team(), endpoint, &secret, self.clock.now())
            .await
            .map_err(ManageWebhooksError::Store)?;
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// The team's endpoints.
    ///
    /// # Errors
    /// [`ManageWebhooksError::Store`].
    pub async fn list(
        &self,
        admin: TeamAdmin,
    ) -> Result<Vec<WebhookEndpoint>, ManageWebhooksError> {
        self.repository
            .list_endpoints(admin.team())
            .await
            .map_err(ManageWebhooksError::Store)
    }

    /// One endpoint.
    ///
    /// # Errors
    /// [`ManageWebhooksError::NotFound`], or the store's failure.
    pub async fn get(
        &self,
        admin: TeamAdmin,
        id: EndpointId,
    ) -> Result<WebhookEndpoint, ManageWebhooksError> {
        self.repository
            .find_endpoint(admin.team(), id)
            .await
            .map_err(ManageWebhooksError::Store)?
            .ok_or(ManageWebhooksError::NotFound)
    }

    /// Changes the fields given.
    ///
    /// # Errors
    /// An invalid URL or event list changes nothing; see [`ManageWebhooksError`].
    pub async fn update(
        &self,
        admin: TeamAdmin,
        id: EndpointId,
        request: EndpointRequest,
    ) -> Result<WebhookEndpoint, ManageWebhooksError> {
        let patch = EndpointPatch {
            url: request
                .url
                .as_deref()
                .map(|raw| EndpointUrl::parse(raw, self.policy))
                .transpose()?,
            events: request
                .events
                .as_deref()
                .map(EventSelection::parse)
                .transpose()?,
            enabled: request.enabled,
        };
        self.repository
            .update_endpoint(admin.team(), id, patch, self.clock.now())
            .await
            .map_err(ManageWebhooksError::Store)?
            .ok_or(ManageWebhooksError::NotFound)
    }

    /// Deletes an endpoint and its deliveries.
    ///
    /// # Errors
    /// [`ManageWebhooksError::NotFound`], or the store's failure.
    pub async fn delete(
        &self,
        admin: TeamAdmin,
        id: EndpointId,
    ) -> Result<(), ManageWebhooksError> {
        if self
            .repository
            .delete_endpoint(admin.team(), id)
            .await
            .map_err(ManageWebhooksError::Store)?
        {
            Ok(())
        } else {
            Err(ManageWebhooksError::NotFound)
        }
    }

    /// A new signing secret; the old one keeps signing for [`PREVIOUS_SECRET_VALID_FOR`].
    ///
    /// # Errors
    /// [`ManageWebhooksError::NotFound`], or the store's failure.
    pub async fn rotate_secret(
        &self,
        admin: TeamAdmin,
        id: EndpointId,
    ) -> Result<EndpointWithSecret, ManageWebhooksError> {
        let now = self.clock.now();
        let until = now
            + chrono::Duration::from_std(PREVIOUS_SECRET_VALID_FOR)
                .unwrap_or_else(|_| chrono::Duration::days(1));
        let secret = self.secrets.webhook_secret();
        let endpoint = self
            .repository
            .rotate_secret(admin.team(), id, &secret, until, now)
            .await
            .map_err(ManageWebhooksError::Store)?
            .ok_or(ManageWebhooksError::NotFound)?;
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// The endpoint's deliveries, newest first.
    ///
    /// # Errors
    /// [`ManageWebhooksError::NotFound`] for another team's or no endpoint; the store's failure.
    pub async fn deliveries(
        &self,
        admin: TeamAdmin,
        id: EndpointId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, ManageWebhooksError> {
        self.get(admin, id).await?;
        self.repository
            .list_deliveries(admin.team(), id, before, limit)
            .await
            .map_err(ManageWebhooksError::Store)
    }

    /// Delivers again: the delivery is pending, due now, with a fresh schedule.
    ///
    /// # Errors
    /// [`ManageWebhooksError::NotFound`], or the store's failure.
    pub async fn replay(
        &self,
        admin: TeamAdmin,
        id: EndpointId,
        delivery: DeliveryId,
    ) -> Result<WebhookDelivery, ManageWebhooksError> {
        self.repository
            .replay_delivery(admin.team(), id, delivery, self.clock.now())
            .await
            .map_err(ManageWebhooksError::Store)?
            .ok_or(ManageWebhooksError::NotFound)
    }
}

/// What one [`DeliverWebhooks::deliver_due`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryRound {
    /// Deliveries claimed and attempted.
    pub attempted: u64,
    /// Answered 2xx.
    pub delivered: u64,
    /// Failed and scheduled again.
    pub retrying: u64,
    /// Failed for the last time.
    pub dead: u64,
    /// Answered 410: their endpoints are disabled.
    pub gone: u64,
    /// Attempted, but the outcome could not be stored (the claim lapses; attempted again).
    pub unrecorded: u64,
}

/// The worker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// When failed deliveries are tried again.
    pub schedule: RetrySchedule,
    /// Deliveries claimed per round.
    pub batch: usize,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// How long a claim holds: longer than an attempt's timeout (10 s) with room to record it.
    pub lease: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::STANDARD,
            batch: 64,
            concurrency: 16,
            lease: Duration::from_secs(60),
        }
    }
}

/// Makes due deliveries. Cheap to clone; every replica runs one.
#[derive(Clone)]
pub struct DeliverWebhooks {
    repository: Arc<dyn WebhookRepository>,
    transport: Arc<dyn WebhookTransport>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn ChangeNotifier>,
    policy: DeliveryPolicy,
}

/// The `User-Agent` of deliveries.
pub const USER_AGENT: &str = concat!("smsdesk-webhooks/", env!("CARGO_PKG_VERSION"));

impl DeliverWebhooks {
    /// Over `repository`, posting through `transport`.
    pub fn new(
        repository: Arc<dyn WebhookRepository>,
        transport: Arc<dyn WebhookTransport>,
    ) -> Self {
        Self {
            repository,
            transport,
            clock: Arc::new(SystemClock),
            notifier: Arc::new(IgnoreChanges),
            policy: DeliveryPolicy::default(),
        }
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reports each round to `notifier` ([`Activity::WebhooksDelivered`]).
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Uses `policy` instead of the default.
    #[must_use]
    pub fn with_policy(mut self, policy: DeliveryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The worker's settings.
    pub fn policy(&self) -> DeliveryPolicy {
        self.policy
    }

    /// Claims the due deliveries (at most one batch) and attempts each once.
    ///
    /// # Errors
    /// [`RepositoryError`] when nothing could be claimed.
    pub async fn deliver_due(&self) -> Result<DeliveryRound, RepositoryError> {
        let claimed = self
            .repository
            .claim_due(self.clock.now(), self.policy.batch, self.policy.lease)
            .await?;
        let mut round = DeliveryRound::default();
        let mut attempts = futures::stream::iter(claimed)
            .map(|delivery| self.attempt(delivery))
            .buffer_unordered(self.policy.concurrency.max(1));
        while let Some(outcome) = attempts.next().await {
            round.attempted += 1;
            match outcome {
                Err(_) => round.unrecorded += 1,
                Ok(AfterAttempt::Delivered) => round.delivered += 1,
                Ok(AfterAttempt::RetryAt(_)) => round.retrying += 1,
                Ok(AfterAttempt::Dead) => round.dead += 1,
                Ok(AfterAttempt::EndpointGone) => round.gone += 1,
            }
        }
        if round.attempted > 0 {
            self.notifier.activity(&Activity::WebhooksDelivered(round));
        }
        Ok(round)
    }

    /// One attempt, recorded.
    async fn attempt(&self, delivery: DueDelivery) -> Result<AfterAttempt, RepositoryError> {
        let body = serde_json::to_vec(&delivery.facts.payload())
            .map_err(|error| RepositoryError::Unexpected(error.to_string()))?;
        let webhook_id = delivery.facts.webhook_id();
        let started = self.clock.now();
        let timestamp = started.timestamp();
        let headers = vec![
            ("content-type", "application/json".to_owned()),
            ("user-agent", USER_AGENT.to_owned()),
            ("webhook-id", webhook_id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                signature_header(&delivery.secrets, &webhook_id, timestamp, &body),
            ),
        ];
        let answer = self
            .transport
            .post(delivery.url.as_str(), headers, body)
            .await;
        let finished = self.clock.now();
        let (status, response_body, error) = match answer {
            Ok(response) => (
                Some(response.status),
                kept_response_body(&response.body),
                None,
            ),
            Err(error) => (None, String::new(), Some(error.0)),
        };
        let next = match AttemptVerdict::of(status) {
            AttemptVerdict::Delivered => AfterAttempt::Delivered,
            AttemptVerdict::Gone => AfterAttempt::EndpointGone,
            AttemptVerdict::Failed => self
                .policy
                .schedule
                .after_failure(
                    delivery.attempt,
                    finished,
                    u64::try_from(delivery.id.get()).unwrap_or_default(),
                )
                .map_or(AfterAttempt::Dead, AfterAttempt::RetryAt),
        };
        let attempt = DeliveryAttempt {
            attempted_at: started,
            status_code: status,
            response_body,
            error,
            duration_ms: u64::try_from((finished - started).num_milliseconds()).unwrap_or(0),
        };
        self.repository
            .record_attempt(delivery.id, attempt, next)
            .await?;
        Ok(next)
    }
}
