//! In-memory implementations of the ports, for tests and examples that want behaviour rather
//! than mock expectations.
//!
//! - [`InMemoryStore`]: messages, history, integrations and cool-downs (implements
//!   [`MessageRepository`], [`IntegrationRepository`], [`RefreshLimiter`], [`CallbackInbox`] and
//!   [`ApiKeyRepository`], [`ChangeLog`] and more), honouring the same
//!   contracts as the database adapter, including conditional writes and tenant scoping.
//! - [`FakeSmsProvider`]: answers from a table, counts calls and the most calls in flight at once,
//!   and can delay each call through a hook you supply (e.g. `tokio::time::sleep` under paused time)
//!   so this crate stays free of any runtime.
//! - [`ManualClock`]: a clock that moves only when told.
//! - [`RecordingNotifier`]: a [`ChangeNotifier`] that keeps every committed change and activity.
//! - [`RecordingTransport`]: a webhook receiver that records every delivery and answers from a
//!   script; [`CountingSecrets`]: repeatable signing secrets.
//!
//! They are plain `std` code, so they are always compiled; they cost nothing unless used.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::api_keys::{ApiKeyId, ApiKeyLabel, ApiKeySummary, IssuedKey};
use crate::changes::{Activity, ChangeNotifier, CommittedChange, LogPosition, LoggedChange};
use crate::idempotency::{IdempotencyClaim, IdempotencyKey};
use crate::ids::{AccountSid, Address, MessageSid, TeamId, UserId};
use crate::message::{
    DeliveryState, Message, NewMessage, StatusEvent, StatusObservation, Timestamp,
};
use crate::ports::{
    ApiKeyRepository, CallbackInbox, ChangeLog, ClaimedRead, Clock, IdempotencyStore,
    IntegrationRepository, Leases, MAX_LIST_PAGE_SIZE, MessageCursor, MessageListPage,
    MessageListQuery, MessagePage, MessageQuery, MessageRepository, MessageRetention,
    NewIntegration, ObservationWrite, OutboundSms, ProviderError, ProviderMessage, RefreshLimiter,
    ReplicaRegistry, RepositoryError, SmsProvider, StuckMessages, TwilioAuth, TwilioCredentials,
    TwilioIntegration, UnfinishedMessages, UnfinishedTeam, WriteOutcome,
};
use crate::refresh_rules::CooldownClaim;
use crate::retention::RetentionPolicy;
use crate::status::{Direction, MessageStatus};
use crate::summary::StatusCount;

mod webhooks;
pub use webhooks::{CountingSecrets, PostedDelivery, RecordingTransport, ScriptedAnswer};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another test thread must not hide this one's result behind a poisoned lock.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `period` after `now`, as the stores compute expiries.
fn after(now: Timestamp, period: Duration) -> Timestamp {
    now + chrono::Duration::from_std(period).unwrap_or_default()
}

#[derive(Default)]
struct StoreState {
    messages: BTreeMap<MessageSid, Message>,
    events: Vec<(MessageSid, StatusEvent)>,
    integrations: HashMap<TeamId, TwilioIntegration>,
    bulk_claims: HashMap<(TeamId, UserId), Timestamp>,
    parked: Vec<(TeamId, MessageSid, StatusObservation)>,
    api_keys: Vec<(TeamId, ApiKeySummary)>,
    leases: HashMap<String, (String, Timestamp)>,
    /// (team, key) → (request, answer's SID, expires at).
    idempotency: HashMap<(TeamId, String), (String, Option<MessageSid>, Timestamp)>,
    replicas: HashMap<String, Timestamp>,
    webhooks: webhooks::WebhookState,
    unavailable: bool,
}

/// An in-memory store implementing every repository port and the refresh limiter.
#[derive(Default, Clone)]
pub struct InMemoryStore {
    state: Arc<Mutex<StoreState>>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail with [`RepositoryError::Unavailable`] (or work again), to test how
    /// callers behave when the database is down.
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.state).unavailable = unavailable;
    }

    /// Every stored message, whatever its team (for assertions).
    pub fn all_messages(&self) -> Vec<Message> {
        lock(&self.state).messages.values().cloned().collect()
    }

    /// How many history events are stored (for assertions).
    pub fn event_count(&self) -> usize {
        lock(&self.state).events.len()
    }

    fn guard(&self) -> Result<MutexGuard<'_, StoreState>, RepositoryError> {
        let state = lock(&self.state);
        if state.unavailable {
            return Err(RepositoryError::Unavailable(
                "the in-memory store is switched off".into(),
            ));
        }
        Ok(state)
    }
}

fn newest_first(a: &Message, b: &Message) -> std::cmp::Ordering {
    b.created_at
        .cmp(&a.created_at)
        .then_with(|| b.sid.cmp(&a.sid))
}

#[async_trait]
impl MessageRepository for InMemoryStore {
    async fn insert(&self, message: NewMessage) -> Result<Message, RepositoryError> {
        let mut state = self.guard()?;
        if state.messages.contains_key(&message.sid) {
            return Err(RepositoryError::Duplicate(format!(
                "message {}",
                message.sid
            )));
        }
        let stored = Message {
            sid: message.sid.clone(),
            team_id: message.team_id,
            account_sid: message.account_sid,
            direction: message.direction,
            from: message.from,
            to: message.to,
            body: message.body,
            reference: message.reference,
            delivery: message.first_observation.state.clone(),
            created_at: message.created_at,
            updated_at: message.first_observation.observed_at,
            last_refreshed_at: None,
            redacted_at: None,
            delivery_unknown_at: None,
        };
        state.messages.insert(message.sid.clone(), stored.clone());
        state.record_event(
            message.sid,
            StatusEvent {
                observation: message.first_observation,
                applied: true,
            },
        );
        Ok(stored)
    }

    async fn find(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Option<Message>, RepositoryError> {
        let state = self.guard()?;
        Ok(state
            .messages
            .get(sid)
            .filter(|m| m.team_id == team)
            .cloned())
    }

    async fn refresh_candidates(
        &self,
        team: TeamId,
        created_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Message>, RepositoryError> {
        let state = self.guard()?;
        let mut found: Vec<Message> = state
            .messages
            .values()
            .filter(|m| {
                m.team_id == team
                    && m.direction.is_outbound()
                    && !m.delivery.status.is_terminal()
                    && m.created_at >= created_since
                    && m.delivery_unknown_at.is_none()
            })
            .cloned()
            .collect();
        found.sort_by(newest_first);
        found.truncate(limit);
        Ok(found)
    }

    async fn apply_observations(
        &self,
        team: TeamId,
        writes: Vec<ObservationWrite>,
    ) -> Result<Vec<WriteOutcome>, RepositoryError> {
        let mut state = self.guard()?;
        // All or nothing, like the database's transaction: decide every outcome on a copy first.
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut staged_messages = Vec::new();
        let mut staged_events = Vec::new();
        for write in writes {
            let Some(current) = state.messages.get(&write.sid).filter(|m| m.team_id == team) else {
                outcomes.push(WriteOutcome::Missing);
                continue;
            };
            let staged = staged_messages
                .iter()
                .rev()
                .find(|m: &&Message| m.sid == write.sid)
                .unwrap_or(current);
            let moved_on = |change: &crate::ports::StateChange| {
                change.expected_status != staged.delivery.status
                    || change
                        .expected_updated_at
                        .is_some_and(|at| at != staged.updated_at)
            };
            match &write.change {
                Some(change) if moved_on(change) => {
                    outcomes.push(WriteOutcome::Conflict);
                }
                Some(change) => {
                    let mut updated = current.clone();
                    updated.delivery = change.next.clone();
                    updated.updated_at = write.observation.observed_at;
                    updated.delivery_unknown_at = None;
                    staged_messages.push(updated);
                    staged_events.push((
                        write.sid,
                        StatusEvent {
                            observation: write.observation,
                            applied: true,
                        },
                    ));
                    outcomes.push(WriteOutcome::Written);
                }
                None => {
                    staged_events.push((
                        write.sid,
                        StatusEvent {
                            observation: write.observation,
                            applied: false,
                        },
                    ));
                    outcomes.push(WriteOutcome::Recorded);
                }
            }
        }
        for message in staged_messages {
            state.messages.insert(message.sid.clone(), message);
        }
        for (sid, event) in staged_events {
            state.record_event(sid, event);
        }
        Ok(outcomes)
    }

    async fn history(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusEvent>, RepositoryError> {
        let state = self.guard()?;
        if state.messages.get(sid).is_none_or(|m| m.team_id != team) {
            return Ok(Vec::new());
        }
        Ok(state
            .events
            .iter()
            .filter(|(event_sid, _)| event_sid == sid)
            .map(|(_, event)| event.clone())
            .collect())
    }

    async fn list(
        &self,
        team: TeamId,
        query: MessageQuery,
    ) -> Result<MessagePage, RepositoryError> {
        let state = self.guard()?;
        let limit = query.limit.clamp(1, 200);
        let mut found: Vec<Message> = state
            .messages
            .values()
            .filter(|m| m.team_id == team)
            .filter(|m| query.matches(m))
            .cloned()
            .collect();
        found.sort_by(newest_first);
        let more = found.len() > limit;
        found.truncate(limit);
        let next = if more {
            found.last().map(|m| MessageCursor {
                created_at: m.created_at,
                sid: m.sid.clone(),
            })
        } else {
            None
        };
        Ok(MessagePage {
            messages: found,
            next,
        })
    }

    async fn status_counts(
        &self,
        team: TeamId,
        created_since: Timestamp,
    ) -> Result<Vec<StatusCount>, RepositoryError> {
        let state = self.guard()?;
        let mut counts: Vec<StatusCount> = Vec::new();
        for message in state
            .messages
            .values()
            .filter(|m| m.team_id == team && m.created_at >= created_since)
        {
            match counts
                .iter_mut()
                .find(|c| c.status == message.delivery.status)
            {
                Some(entry) => entry.count += 1,
                None => counts.push(StatusCount {
                    status: message.delivery.status.clone(),
                    count: 1,
                }),
            }
        }
        Ok(counts)
    }
}

#[async_trait]
impl IntegrationRepository for InMemoryStore {
    async fn for_team(&self, team: TeamId) -> Result<Option<TwilioIntegration>, RepositoryError> {
        Ok(self.guard()?.integrations.get(&team).cloned())
    }

    async fn for_account(
        &self,
        account: &AccountSid,
    ) -> Result<Option<TwilioIntegration>, RepositoryError> {
        Ok(self
            .guard()?
            .integrations
            .values()
            .find(|i| i.credentials.account_sid == *account)
            .cloned())
    }

    async fn upsert(
        &self,
        team: TeamId,
        integration: NewIntegration,
    ) -> Result<TwilioIntegration, RepositoryError> {
        let mut state = self.guard()?;
        if state
            .integrations
            .values()
            .any(|i| i.team_id != team && i.credentials.account_sid == integration.account_sid)
        {
            return Err(RepositoryError::Duplicate(format!(
                "account {} belongs to another team",
                integration.account_sid
            )));
        }
        let auth = match integration.api_key {
            Some((sid, secret)) => TwilioAuth::ApiKey { sid, secret },
            None => TwilioAuth::AuthToken(integration.auth_token.clone()),
        };
        let stored = TwilioIntegration {
            team_id: team,
            credentials: TwilioCredentials {
                account_sid: integration.account_sid,
                auth,
            },
            auth_token: integration.auth_token,
            sender: integration.sender,
        };
        state.integrations.insert(team, stored.clone());
        Ok(stored)
    }
}

/// Claims `message`'s cool-down at `now` by the domain's rule: a granted claim stamps it.
fn claim_cooldown(message: &mut Message, now: Timestamp, cooldown: Duration) -> CooldownClaim {
    let claim = CooldownClaim::decide(message.last_refreshed_at, now, cooldown);
    if claim.is_granted() {
        message.last_refreshed_at = Some(now);
    }
    claim
}

#[async_trait]
impl RefreshLimiter for InMemoryStore {
    async fn claim_messages(
        &self,
        team: TeamId,
        sids: &[MessageSid],
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<Vec<CooldownClaim>, RepositoryError> {
        let mut state = self.guard()?;
        Ok(sids
            .iter()
            .map(|sid| {
                // As on SQL: the cool-down is the message's own last refresh, so a SID the team
                // does not own has none to keep and is granted (the caller found no message).
                let Some(message) = state.messages.get_mut(sid).filter(|m| m.team_id == team)
                else {
                    return CooldownClaim::Granted;
                };
                claim_cooldown(message, now, cooldown)
            })
            .collect())
    }

    /// In one step under the fake's lock, as the SQL store does in one statement.
    async fn claim_and_read(
        &self,
        team: TeamId,
        sid: &MessageSid,
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<Option<ClaimedRead>, RepositoryError> {
        let mut state = self.guard()?;
        let Some(stored) = state.messages.get_mut(sid).filter(|m| m.team_id == team) else {
            return Ok(Some(ClaimedRead::NotFound));
        };
        let message = stored.clone();
        let claim = claim_cooldown(stored, now, cooldown);
        Ok(Some(ClaimedRead::Found { message, claim }))
    }

    async fn claim_bulk(
        &self,
        team: TeamId,
        user: UserId,
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<CooldownClaim, RepositoryError> {
        let mut state = self.guard()?;
        let claim =
            CooldownClaim::decide(state.bulk_claims.get(&(team, user)).copied(), now, cooldown);
        if claim.is_granted() {
            state.bulk_claims.insert((team, user), now);
        }
        Ok(claim)
    }
}

#[async_trait]
impl CallbackInbox for InMemoryStore {
    async fn park(
        &self,
        team: TeamId,
        sid: &MessageSid,
        observation: StatusObservation,
    ) -> Result<(), RepositoryError> {
        let mut state = self.guard()?;
        let known = state
            .parked
            .iter()
            .any(|(t, s, o)| *t == team && s == sid && o.state.status == observation.state.status);
        if !known {
            state.parked.push((team, sid.clone(), observation));
        }
        Ok(())
    }

    async fn take_parked(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusObservation>, RepositoryError> {
        let mut state = self.guard()?;
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.parked)
            .into_iter()
            .partition(|(t, s, _)| *t == team && s == sid);
        state.parked = kept;
        // Oldest first by observation time, as the contract says (not in parking order).
        let mut taken: Vec<StatusObservation> = taken.into_iter().map(|(_, _, o)| o).collect();
        taken.sort_by_key(|observation| observation.observed_at);
        Ok(taken)
    }

    async fn discard_parked_before(&self, cutoff: Timestamp) -> Result<u64, RepositoryError> {
        let mut state = self.guard()?;
        let before = state.parked.len();
        state.parked.retain(|(_, _, o)| o.observed_at >= cutoff);
        Ok(u64::try_from(before - state.parked.len()).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl ApiKeyRepository for InMemoryStore {
    async fn list_keys(&self, team: TeamId) -> Result<Vec<ApiKeySummary>, RepositoryError> {
        let state = self.guard()?;
        Ok(state
            .api_keys
            .iter()
            .filter(|(owner, _)| *owner == team)
            .map(|(_, key)| key.clone())
            .collect())
    }

    async fn issue_key(
        &self,
        team: TeamId,
        user: UserId,
        label: Option<ApiKeyLabel>,
    ) -> Result<IssuedKey, RepositoryError> {
        let mut state = self.guard()?;
        let id = ApiKeyId::parse(&format!("k{:07}", state.api_keys.len() + 1))
            .map_err(|e| RepositoryError::Unexpected(e.to_string()))?;
        let summary = ApiKeySummary {
            id: id.clone(),
            label,
            user_id: user,
            created_at: chrono::Utc::now(),
            last_used_at: None,
            revoked_at: None,
        };
        state.api_keys.push((team, summary.clone()));
        Ok(IssuedKey {
            summary,
            key: secrecy::SecretString::from(format!("smsd_{id}_{}", "f".repeat(40))),
        })
    }

    async fn revoke_key(
        &self,
        team: TeamId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<Option<ApiKeySummary>, RepositoryError> {
        let mut state = self.guard()?;
        Ok(state
            .api_keys
            .iter_mut()
            .find(|(owner, key)| *owner == team && key.id == *id)
            .map(|(_, key)| {
                key.revoked_at.get_or_insert(now);
                key.clone()
            }))
    }
}

#[async_trait]
impl MessageRetention for InMemoryStore {
    async fn redact_batch(
        &self,
        cutoff: Timestamp,
        policy: &RetentionPolicy,
        limit: usize,
        now: Timestamp,
    ) -> Result<u64, RepositoryError> {
        let mut state = self.guard()?;
        let mut redacted = 0;
        for message in state.messages.values_mut() {
            if redacted as usize == limit {
                break;
            }
            if message.redacted_at.is_none() && message.created_at < cutoff {
                message.body.clear();
                message.from = Address::parse(&policy.redact_address(message.from.as_str()))
                    .map_err(|e| RepositoryError::Unexpected(e.to_string()))?;
                message.to = Address::parse(&policy.redact_address(message.to.as_str()))
                    .map_err(|e| RepositoryError::Unexpected(e.to_string()))?;
                message.redacted_at = Some(now);
                redacted += 1;
            }
        }
        Ok(redacted)
    }
}

#[async_trait]
impl Leases for InMemoryStore {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, RepositoryError> {
        let mut state = self.guard()?;
        let free = state
            .leases
            .get(name)
            .is_none_or(|(current, until)| current == holder || *until <= now);
        if free {
            let until = after(now, ttl);
            state
                .leases
                .insert(name.to_owned(), (holder.to_owned(), until));
        }
        Ok(free)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), RepositoryError> {
        let mut state = self.guard()?;
        if state
            .leases
            .get(name)
            .is_some_and(|(current, _)| current == holder)
        {
            state.leases.remove(name);
        }
        Ok(())
    }
}

#[async_trait]
impl UnfinishedMessages for InMemoryStore {
    async fn unfinished_teams(
        &self,
        created_since: Timestamp,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<UnfinishedTeam>, RepositoryError> {
        let state = self.guard()?;
        let mut teams: HashMap<TeamId, UnfinishedTeam> = HashMap::new();
        for message in state.messages.values().filter(|m| {
            m.direction.is_outbound()
                && !m.delivery.status.is_terminal()
                && m.created_at >= created_since
                && m.created_at < created_before
                && m.delivery_unknown_at.is_none()
        }) {
            let team = teams.entry(message.team_id).or_insert(UnfinishedTeam {
                team_id: message.team_id,
                oldest_created_at: message.created_at,
                messages: 0,
            });
            team.oldest_created_at = team.oldest_created_at.min(message.created_at);
            team.messages += 1;
        }
        let mut teams: Vec<UnfinishedTeam> = teams.into_values().collect();
        teams.sort_by(|a, b| {
            a.oldest_created_at
                .cmp(&b.oldest_created_at)
                .then(a.team_id.cmp(&b.team_id))
        });
        teams.truncate(limit);
        Ok(teams)
    }

    async fn find_many(
        &self,
        team: TeamId,
        sids: &[MessageSid],
    ) -> Result<Vec<Message>, RepositoryError> {
        let state = self.guard()?;
        Ok(sids
            .iter()
            .filter_map(|sid| state.messages.get(sid))
            .filter(|m| m.team_id == team)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryStore {
    async fn claim_key(
        &self,
        team: TeamId,
        key: &IdempotencyKey,
        request: &str,
        now: Timestamp,
        lock: Duration,
    ) -> Result<IdempotencyClaim, RepositoryError> {
        let mut state = self.guard()?;
        let slot = (team, key.as_str().to_owned());
        if let Some((held_for, answer, until)) = state.idempotency.get(&slot)
            && *until > now
        {
            return Ok(if held_for != request {
                IdempotencyClaim::Mismatch
            } else {
                match answer {
                    Some(sid) => IdempotencyClaim::Completed(sid.clone()),
                    None => IdempotencyClaim::InProgress,
                }
            });
        }
        let until = after(now, lock);
        state
            .idempotency
            .insert(slot, (request.to_owned(), None, until));
        Ok(IdempotencyClaim::Claimed)
    }

    async fn complete_key(
        &self,
        team: TeamId,
        key: &IdempotencyKey,
        sid: &MessageSid,
        now: Timestamp,
        keep: Duration,
    ) -> Result<(), RepositoryError> {
        let mut state = self.guard()?;
        if let Some(entry) = state.idempotency.get_mut(&(team, key.as_str().to_owned())) {
            entry.1 = Some(sid.clone());
            entry.2 = after(now, keep);
        }
        Ok(())
    }

    async fn release_key(&self, team: TeamId, key: &IdempotencyKey) -> Result<(), RepositoryError> {
        let mut state = self.guard()?;
        let slot = (team, key.as_str().to_owned());
        if state
            .idempotency
            .get(&slot)
            .is_some_and(|(_, answer, _)| answer.is_none())
        {
            state.idempotency.remove(&slot);
        }
        Ok(())
    }
}

#[async_trait]
impl StuckMessages for InMemoryStore {
    async fn time_out_stuck(
        &self,
        created_before: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Message>, RepositoryError> {
        let mut state = self.guard()?;
        let due: Vec<MessageSid> = state
            .messages
            .values()
            .filter(|m| {
                m.direction.is_outbound()
                    && !m.delivery.status.is_terminal()
                    && m.created_at < created_before
                    && m.delivery_unknown_at.is_none()
            })
            .map(|m| m.sid.clone())
            .take(limit)
            .collect();
        let mut timed_out = Vec::with_capacity(due.len());
        for sid in due {
            let Some(message) = state.messages.get_mut(&sid) else {
                continue;
            };
            message.delivery_unknown_at = Some(now);
            let observation = StatusObservation {
                state: message.delivery.clone(),
                source: crate::message::ObservationSource::Timeout,
                observed_at: now,
            };
            timed_out.push(message.clone());
            state.record_event(
                sid,
                StatusEvent {
                    observation,
                    applied: true,
                },
            );
        }
        Ok(timed_out)
    }
}

/// The fake's log: history row `n` (from 1) is at position `(0, n)`, as rows become visible in
/// insertion order under the one lock.
fn logged_change(state: &StoreState, index: usize) -> Option<LoggedChange> {
    let (sid, event) = state.events.get(index)?;
    let message = state.messages.get(sid)?;
    event.applied.then(|| LoggedChange {
        position: LogPosition {
            epoch: 0,
            id: i64::try_from(index + 1).unwrap_or(i64::MAX),
        },
        team_id: message.team_id,
        sid: sid.clone(),
        state: event.observation.state.clone(),
        source: event.observation.source,
        observed_at: event.observation.observed_at,
    })
}

#[async_trait]
impl ChangeLog for InMemoryStore {
    async fn head(&self) -> Result<LogPosition, RepositoryError> {
        let state = self.guard()?;
        Ok(LogPosition {
            epoch: 0,
            id: i64::try_from(state.events.len()).unwrap_or(i64::MAX),
        })
    }

    async fn position_of(
        &self,
        team: TeamId,
        id: i64,
    ) -> Result<Option<LogPosition>, RepositoryError> {
        let state = self.guard()?;
        let index = usize::try_from(id).ok().and_then(|id| id.checked_sub(1));
        Ok(index
            .and_then(|index| logged_change(&state, index))
            .filter(|change| change.team_id == team)
            .map(|change| change.position))
    }

    async fn read_after(
        &self,
        after: LogPosition,
        team: Option<TeamId>,
        limit: usize,
    ) -> Result<Vec<LoggedChange>, RepositoryError> {
        let state = self.guard()?;
        let first = usize::try_from(after.id.max(0)).unwrap_or(usize::MAX);
        Ok((first..state.events.len())
            .filter_map(|index| logged_change(&state, index))
            .filter(|change| team.is_none_or(|team| change.team_id == team))
            .take(limit)
            .collect())
    }
}

#[async_trait]
impl ReplicaRegistry for InMemoryStore {
    async fn heartbeat(
        &self,
        replica: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<usize, RepositoryError> {
        let mut state = self.guard()?;
        let until = after(now, ttl);
        state.replicas.insert(replica.to_owned(), until);
        Ok(state
            .replicas
            .values()
            .filter(|until| **until > now)
            .count())
    }

    async fn leave(&self, replica: &str) -> Result<(), RepositoryError> {
        self.guard()?.replicas.remove(replica);
        Ok(())
    }
}

/// A hook that delays one provider call; given the SID being fetched.
pub type DelayHook = Arc<dyn Fn(&MessageSid) -> BoxFuture<'static, ()> + Send + Sync>;

/// A scripted SMS provider.
///
/// `fetch_message` answers from the table set with [`FakeSmsProvider::set_state`] /
/// [`FakeSmsProvider::set_error`] (an unknown SID is [`ProviderError::NotFound`]);
/// `send_message` invents a SID and answers `queued`; `list_messages` lists, newest first, the
/// messages given a sending time with [`FakeSmsProvider::set_sent_at`], with their answers'
/// states, in pages whose `next_page_uri` is `?Page=N`.
#[derive(Clone, Default)]
pub struct FakeSmsProvider {
    answers: Arc<Mutex<HashMap<MessageSid, Result<DeliveryState, ProviderError>>>>,
    sent_at: Arc<Mutex<HashMap<MessageSid, Timestamp>>>,
    list_calls: Arc<AtomicUsize>,
    delay: Option<DelayHook>,
    calls: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    sent: Arc<Mutex<Vec<OutboundSms>>>,
}

impl FakeSmsProvider {
    /// A provider that knows no messages yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delays every call by awaiting `hook(sid)` before answering.
    #[must_use]
    pub fn with_delay(mut self, hook: DelayHook) -> Self {
        self.delay = Some(hook);
        self
    }

    /// From now on, fetching `sid` answers `state`.
    pub fn set_state(&self, sid: &MessageSid, state: DeliveryState) {
        lock(&self.answers).insert(sid.clone(), Ok(state));
    }

    /// From now on, fetching `sid` fails with `error`.
    pub fn set_error(&self, sid: &MessageSid, error: ProviderError) {
        lock(&self.answers).insert(sid.clone(), Err(error));
    }

    /// From now on, `sid` appears in the account's list as sent at `at`.
    pub fn set_sent_at(&self, sid: &MessageSid, at: Timestamp) {
        lock(&self.sent_at).insert(sid.clone(), at);
    }

    /// List pages read so far.
    pub fn list_calls(&self) -> usize {
        self.list_calls.load(Ordering::SeqCst)
    }

    /// Calls made so far (fetch and send).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The most calls that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Messages sent so far.
    pub fn sent(&self) -> Vec<OutboundSms> {
        lock(&self.sent).clone()
    }

    async fn enter(&self, sid: &MessageSid) -> InFlight {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let guard = InFlight(self.in_flight.clone());
        if let Some(delay) = &self.delay {
            delay(sid).await;
        }
        guard
    }
}

/// Decrements the in-flight count when a call ends, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl SmsProvider for FakeSmsProvider {
    async fn fetch_message(
        &self,
        _credentials: &TwilioCredentials,
        sid: &MessageSid,
    ) -> Result<ProviderMessage, ProviderError> {
        let _in_flight = self.enter(sid).await;
        let answer = lock(&self.answers).get(sid).cloned();
        let state = answer.unwrap_or(Err(ProviderError::NotFound))?;
        Ok(ProviderMessage {
            sid: sid.clone(),
            state,
            account_sid: None,
            direction: Some(Direction::OutboundApi),
            from: None,
            to: None,
            body: None,
            date_created: None,
            date_sent: lock(&self.sent_at).get(sid).copied(),
        })
    }

    async fn send_message(
        &self,
        credentials: &TwilioCredentials,
        sms: &OutboundSms,
    ) -> Result<ProviderMessage, ProviderError> {
        let number = {
            let mut sent = lock(&self.sent);
            sent.push(sms.clone());
            sent.len()
        };
        let sid = MessageSid::parse(&format!("SM{number:032x}")).map_err(|e| {
            ProviderError::Unexpected {
                reason: e.to_string(),
            }
        })?;
        let _in_flight = self.enter(&sid).await;
        let state = DeliveryState::new(MessageStatus::Queued);
        self.set_state(&sid, state.clone());
        Ok(ProviderMessage {
            sid,
            state,
            account_sid: Some(credentials.account_sid.clone()),
            direction: Some(Direction::OutboundApi),
            from: None,
            to: Some(sms.to.clone().into()),
            body: Some(sms.body.clone()),
            date_created: None,
            date_sent: None,
        })
    }

    async fn list_messages(
        &self,
        credentials: &TwilioCredentials,
        query: &MessageListQuery,
    ) -> Result<MessageListPage, ProviderError> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        let page = query
            .page_uri
            .as_deref()
            .and_then(|uri| uri.strip_prefix("?Page="))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let answers = lock(&self.answers);
        let mut listed: Vec<(Timestamp, MessageSid, DeliveryState)> = lock(&self.sent_at)
            .iter()
            .filter(|(_, at)| **at >= query.sent_since)
            .filter_map(|(sid, at)| match answers.get(sid) {
                Some(Ok(state)) => Some((*at, sid.clone(), state.clone())),
                _ => None,
            })
            .collect();
        listed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let size = usize::try_from(query.page_size.clamp(1, MAX_LIST_PAGE_SIZE)).unwrap_or(1);
        let more = listed.len() > (page + 1) * size;
        Ok(MessageListPage {
            messages: listed
                .into_iter()
                .skip(page * size)
                .take(size)
                .map(|(at, sid, state)| ProviderMessage {
                    sid,
                    state,
                    account_sid: Some(credentials.account_sid.clone()),
                    direction: Some(Direction::OutboundApi),
                    from: None,
                    to: None,
                    body: None,
                    date_created: None,
                    date_sent: Some(at),
                })
                .collect(),
            unreadable: 0,
            next_page_uri: more.then(|| format!("?Page={}", page + 1)),
        })
    }
}

/// A clock that stands still until moved.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        *lock(&self.now) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *lock(&self.now)
    }
}

/// A notifier that keeps everything it is told, for tests and examples.
#[derive(Clone, Default)]
pub struct RecordingNotifier {
    changes: Arc<Mutex<Vec<CommittedChange>>>,
    activities: Arc<Mutex<Vec<Activity>>>,
}

impl RecordingNotifier {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The changes so far, in the order they were committed.
    pub fn changes(&self) -> Vec<CommittedChange> {
        lock(&self.changes).clone()
    }

    /// The activity so far.
    pub fn activities(&self) -> Vec<Activity> {
        lock(&self.activities).clone()
    }
}

impl ChangeNotifier for RecordingNotifier {
    fn committed(&self, change: &CommittedChange) {
        lock(&self.changes).push(change.clone());
    }

    fn activity(&self, activity: &Activity) {
        lock(&self.activities).push(activity.clone());
    }
}

impl std::fmt::Debug for RecordingNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingNotifier")
            .field("changes", &self.changes().len())
            .finish()
    }
}
