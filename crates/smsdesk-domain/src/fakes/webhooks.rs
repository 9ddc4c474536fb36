//! The in-memory store's delivery webhooks: endpoints, the outbox (filled by
//! [`StoreState::record_event`] under the same lock as the change, like the database's
//! transaction) and attempts, with the database adapter's contract.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{InMemoryStore, StoreState, after};
use crate::ids::{MessageSid, TeamId};
use crate::message::{StatusEvent, Timestamp};
use crate::ports::{RepositoryError, SecretGenerator, WebhookRepository};
use crate::webhooks::{
    AfterAttempt, DeliveryAttempt, DeliveryId, DeliveryStatus, DisabledReason, DueDelivery,
    EndpointId, EndpointPatch, EventFacts, NewEndpoint, WebhookDelivery, WebhookEndpoint,
    WebhookEvent, WebhookSecret,
};

struct StoredEndpoint {
    endpoint: WebhookEndpoint,
    secret: WebhookSecret,
    previous: Option<WebhookSecret>,
}

struct StoredDelivery {
    endpoint_id: EndpointId,
    /// Index into the store's history.
    event_index: usize,
    sid: MessageSid,
    event: WebhookEvent,
    status: DeliveryStatus,
    attempt_count: u32,
    next_attempt_at: Option<Timestamp>,
    locked_until: Option<Timestamp>,
    created_at: Timestamp,
    /// Oldest first.
    attempts: Vec<DeliveryAttempt>,
}

/// The webhook part of the in-memory store.
#[derive(Default)]
pub(super) struct WebhookState {
    endpoints: BTreeMap<i64, StoredEndpoint>,
    deliveries: BTreeMap<i64, StoredDelivery>,
    next_endpoint: i64,
    next_delivery: i64,
}

impl StoreState {
    /// Appends a history event and, when it is news, one delivery per subscribed enabled
    /// endpoint of the message's team.
    pub(super) fn record_event(&mut self, sid: MessageSid, event: StatusEvent) {
        let kind = WebhookEvent::for_history(event.observation.source, event.applied);
        let due = event.observation.observed_at;
        self.events.push((sid.clone(), event));
        let (Some(kind), Some(team)) = (kind, self.messages.get(&sid).map(|m| m.team_id)) else {
            return;
        };
        let event_index = self.events.len() - 1;
        let subscribers: Vec<EndpointId> = self
            .webhooks
            .endpoints
            .values()
            .filter(|stored| {
                stored.endpoint.team_id == team
                    && stored.endpoint.enabled
                    && stored.endpoint.events.contains(kind)
            })
            .map(|stored| stored.endpoint.id)
            .collect();
        for endpoint_id in subscribers {
            self.webhooks.next_delivery += 1;
            self.webhooks.deliveries.insert(
                self.webhooks.next_delivery,
                StoredDelivery {
                    endpoint_id,
                    event_index,
                    sid: sid.clone(),
                    event: kind,
                    status: DeliveryStatus::Pending,
                    attempt_count: 0,
                    next_attempt_at: Some(due),
                    locked_until: None,
                    created_at: due,
                    attempts: Vec::new(),
                },
            );
        }
    }

    fn facts(&self, delivery: &StoredDelivery) -> Option<EventFacts> {
        let (sid, event) = self.events.get(delivery.event_index)?;
        let message = self.messages.get(sid)?;
        Some(EventFacts {
            event_id: i64::try_from(delivery.event_index + 1).ok()?,
            event: delivery.event,
            sid: sid.clone(),
            direction: message.direction,
            from: message.from.clone(),
            to: message.to.clone(),
            reference: message.reference.clone(),
            state: event.observation.state.clone(),
            source: event.observation.source,
            observed_at: event.observation.observed_at,
        })
    }

    fn listed(&self, id: i64, delivery: &StoredDelivery) -> Option<WebhookDelivery> {
        Some(WebhookDelivery {
            id: DeliveryId::new(id),
            endpoint_id: delivery.endpoint_id,
            facts: self.facts(delivery)?,
            status: delivery.status,
            attempt_count: delivery.attempt_count,
            next_attempt_at: delivery.next_attempt_at,
            created_at: delivery.created_at,
            attempts: delivery.attempts.iter().rev().cloned().collect(),
        })
    }

    fn team_endpoint(&mut self, team: TeamId, id: EndpointId) -> Option<&mut StoredEndpoint> {
        self.webhooks
            .endpoints
            .get_mut(&id.get())
            .filter(|stored| stored.endpoint.team_id == team)
    }
}

/// Secrets counted up from a seed: distinct and repeatable, for tests.
#[derive(Debug, Default)]
pub struct CountingSecrets {
    next: std::sync::atomic::AtomicU8,
}

impl SecretGenerator for CountingSecrets {
    fn webhook_secret(&self) -> WebhookSecret {
        let n = self
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1);
        WebhookSecret::from_key(&[n; 32]).unwrap_or_else(|_| unreachable!("32 bytes"))
    }
}

#[async_trait]
impl WebhookRepository for InMemoryStore {
    async fn create_endpoint(
        &self,
        team: TeamId,
        endpoint: NewEndpoint,
        secret: &WebhookSecret,
        now: Timestamp,
    ) -> Result<WebhookEndpoint, RepositoryError> {
        let mut state = self.guard()?;
        state.webhooks.next_endpoint += 1;
        let stored = WebhookEndpoint {
            id: EndpointId::new(state.webhooks.next_endpoint),
            team_id: team,
            url: endpoint.url,
            events: endpoint.events,
            enabled: endpoint.enabled,
            disabled_reason: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
        };
        state.webhooks.endpoints.insert(
            stored.id.get(),
            StoredEndpoint {
                endpoint: stored.clone(),
                secret: secret.clone(),
                previous: None,
            },
        );
        Ok(stored)
    }

    async fn list_endpoints(&self, team: TeamId) -> Result<Vec<WebhookEndpoint>, RepositoryError> {
        let state = self.guard()?;
        Ok(state
            .webhooks
            .endpoints
            .values()
            .filter(|stored| stored.endpoint.team_id == team)
            .map(|stored| stored.endpoint.clone())
            .collect())
    }

    async fn find_endpoint(
        &self,
        team: TeamId,
        id: EndpointId,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let mut state = self.guard()?;
        Ok(state.team_endpoint(team, id).map(|s| s.endpoint.clone()))
    }

    async fn update_endpoint(
        &self,
        team: TeamId,
        id: EndpointId,
        patch: EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let mut state = self.guard()?;
        let Some(stored) = state.team_endpoint(team, id) else {
            return Ok(None);
        };
        let endpoint = &mut stored.endpoint;
        if let Some(url) = patch.url {
            endpoint.url = url;
        }
        if let Some(events) = patch.events {
            endpoint.events = events;
        }
        if let Some(enabled) = patch.enabled {
            endpoint.enabled = enabled;
            if enabled {
                endpoint.disabled_reason = None;
            }
        }
        endpoint.updated_at = now;
        Ok(Some(endpoint.clone()))
    }

    async fn delete_endpoint(&self, team: TeamId, id: EndpointId) -> Result<bool, RepositoryError> {
        let mut state = self.guard()?;
        if state.team_endpoint(team, id).is_none() {
            return Ok(false);
        }
        state.webhooks.endpoints.remove(&id.get());
        state
            .webhooks
            .deliveries
            .retain(|_, delivery| delivery.endpoint_id != id);
        Ok(true)
    }

    async fn rotate_secret(
        &self,
        team: TeamId,
        id: EndpointId,
        secret: &WebhookSecret,
        previous_valid_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let mut state = self.guard()?;
        let Some(stored) = state.team_endpoint(team, id) else {
            return Ok(None);
        };
        stored.previous = Some(std::mem::replace(&mut stored.secret, secret.clone()));
        stored.endpoint.previous_secret_expires_at = Some(previous_valid_until);
        stored.endpoint.updated_at = now;
        Ok(Some(stored.endpoint.clone()))
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, RepositoryError> {
        let mut state = self.guard()?;
        let mut candidates: Vec<(Timestamp, i64)> = Vec::new();
        for (&id, delivery) in &state.webhooks.deliveries {
            let enabled = state
                .webhooks
                .endpoints
                .get(&delivery.endpoint_id.get())
                .is_some_and(|stored| stored.endpoint.enabled);
            let due = delivery.status == DeliveryStatus::Pending
                && delivery.next_attempt_at.is_some_and(|at| at <= now)
                && delivery.locked_until.is_none_or(|until| until <= now);
            let first_of_message = !state.webhooks.deliveries.range(..id).any(|(_, earlier)| {
                earlier.status == DeliveryStatus::Pending
                    && earlier.endpoint_id == delivery.endpoint_id
                    && earlier.sid == delivery.sid
            });
            if enabled && due && first_of_message {
                candidates.push((delivery.next_attempt_at.unwrap_or(now), id));
            }
        }
        candidates.sort();
        candidates.truncate(limit);
        let mut claimed = Vec::with_capacity(candidates.len());
        for (_, id) in candidates {
            let Some(delivery) = state.webhooks.deliveries.get_mut(&id) else {
                continue;
            };
            delivery.locked_until = Some(after(now, lease));
            delivery.attempt_count += 1;
            let attempt = delivery.attempt_count;
            let Some(delivery) = state.webhooks.deliveries.get(&id) else {
                continue;
            };
            let Some(stored) = state.webhooks.endpoints.get(&delivery.endpoint_id.get()) else {
                continue;
            };
            let mut secrets = vec![stored.secret.clone()];
            if let (Some(previous), Some(until)) =
                (&stored.previous, stored.endpoint.previous_secret_expires_at)
                && until > now
            {
                secrets.push(previous.clone());
            }
            let Some(facts) = state.facts(delivery) else {
                continue;
            };
            claimed.push(DueDelivery {
                id: DeliveryId::new(id),
                url: stored.endpoint.url.clone(),
                secrets,
                facts,
                attempt,
            });
        }
        Ok(claimed)
    }

    async fn record_attempt(
        &self,
        id: DeliveryId,
        attempt: DeliveryAttempt,
        next: AfterAttempt,
    ) -> Result<(), RepositoryError> {
        let mut state = self.guard()?;
        let Some(delivery) = state.webhooks.deliveries.get_mut(&id.get()) else {
            return Ok(());
        };
        delivery.attempts.push(attempt);
        delivery.locked_until = None;
        let endpoint = delivery.endpoint_id;
        match next {
            AfterAttempt::Delivered => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.next_attempt_at = None;
            }
            AfterAttempt::Dead => {
                delivery.status = DeliveryStatus::Dead;
                delivery.next_attempt_at = None;
            }
            AfterAttempt::RetryAt(at) => delivery.next_attempt_at = Some(at),
            AfterAttempt::EndpointGone => {
                if let Some(stored) = state.webhooks.endpoints.get_mut(&endpoint.get()) {
                    stored.endpoint.enabled = false;
                    stored.endpoint.disabled_reason = Some(DisabledReason::Gone);
                }
            }
        }
        Ok(())
    }

    async fn list_deliveries(
        &self,
        team: TeamId,
        endpoint: EndpointId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, RepositoryError> {
        let mut state = self.guard()?;
        if state.team_endpoint(team, endpoint).is_none() {
            return Ok(Vec::new());
        }
        let end = before.map_or(i64::MAX, DeliveryId::get);
        Ok(state
            .webhooks
            .deliveries
            .range(..end)
            .rev()
            .filter(|(_, delivery)| delivery.endpoint_id == endpoint)
            .take(limit)
            .filter_map(|(&id, delivery)| state.listed(id, delivery))
            .collect())
    }

    async fn replay_delivery(
        &self,
        team: TeamId,
        endpoint: EndpointId,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Option<WebhookDelivery>, RepositoryError> {
        let mut state = self.guard()?;
        if state.team_endpoint(team, endpoint).is_none() {
            return Ok(None);
        }
        let Some(delivery) = state
            .webhooks
            .deliveries
            .get_mut(&id.get())
            .filter(|delivery| delivery.endpoint_id == endpoint)
        else {
            return Ok(None);
        };
        delivery.status = DeliveryStatus::Pending;
        delivery.attempt_count = 0;
        delivery.next_attempt_at = Some(now);
        delivery.locked_until = None;
        let Some(delivery) = state.webhooks.deliveries.get(&id.get()) else {
            return Ok(None);
        };
        Ok(state.listed(id.get(), delivery))
    }
}

/// One POST a [`RecordingTransport`] took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedDelivery {
    /// Where it was posted.
    pub url: String,
    /// Its headers, as sent.
    pub headers: Vec<(&'static str, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

impl PostedDelivery {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A receiver's answer, scripted: a status, or no answer at all (the error's text).
pub type ScriptedAnswer = Result<u16, String>;

#[derive(Default)]
struct TransportState {
    script: std::collections::VecDeque<ScriptedAnswer>,
    otherwise: Option<ScriptedAnswer>,
    posted: Vec<PostedDelivery>,
}

/// A [`crate::ports::WebhookTransport`] that records every POST and answers from a script (then
/// 200, or what [`RecordingTransport::answer_otherwise`] set).
#[derive(Default, Clone)]
pub struct RecordingTransport {
    state: std::sync::Arc<std::sync::Mutex<TransportState>>,
}

impl RecordingTransport {
    /// Answers 200 to everything until scripted.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next POSTs get these answers, in order.
    pub fn answer_next(&self, answers: impl IntoIterator<Item = ScriptedAnswer>) {
        super::lock(&self.state).script.extend(answers);
    }

    /// Once the script is spent, every POST gets `answer`.
    pub fn answer_otherwise(&self, answer: ScriptedAnswer) {
        super::lock(&self.state).otherwise = Some(answer);
    }

    /// Every POST so far, in order.
    pub fn posted(&self) -> Vec<PostedDelivery> {
        super::lock(&self.state).posted.clone()
    }
}

#[async_trait]
impl crate::ports::WebhookTransport for RecordingTransport {
    async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Result<crate::ports::WebhookResponse, crate::ports::WebhookTransportError> {
        let mut state = super::lock(&self.state);
        state.posted.push(PostedDelivery {
            url: url.to_owned(),
            headers,
            body,
        });
        let answer = state
            .script
            .pop_front()
            .or_else(|| state.otherwise.clone())
            .unwrap_or(Ok(200));
        match answer {
            Ok(status) => Ok(crate::ports::WebhookResponse {
                status,
                body: format!("answered {status}").into_bytes(),
            }),
            Err(error) => Err(crate::ports::WebhookTransportError(error)),
        }
    }
}
