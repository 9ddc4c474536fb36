//! The `RefreshStatus` use case: ask Twilio for the current status of one message or of a team's
//! recent outbound messages, and store what moved forward.
//!
//! How a bulk refresh runs:
//! 1. plan gate, then the user's bulk cool-down;
//! 2. candidates: outbound, non-terminal, inside the window, newest first, at most 100;
//! 3. the per-message cool-downs, claimed for all candidates in one call (claimed ones skip);
//! 4. the plan ([`crate::sweep::choose_plan`]): on a quiet account, one **sweep** of the
//!    account's Messages list (a page or two, up to 1,000 messages each) learns most statuses in
//!    one request; every candidate the pages did not list, or every candidate on a busy account,
//!    is fetched on its own in a **sliding window** of at most `max_in_flight`: a new call starts
//!    as soon as any call ends, so one slow call never holds up the nine slots next to it (the
//!    original's barrier batches of 10 waited for each batch's slowest call);
//! 5. every result through [`crate::rules::decide`], and all writes handed to the repository as
//!    one batch (one transaction). A write that lost a race to another writer is decided again
//!    against the newer state.
//!
//! A failure of one message never aborts the others: every candidate gets its own outcome.
//!
//! Every status the refresh moved is handed to the [`ChangeNotifier`] as it is committed;
//! cool-down refusals and the refresh's duration are reported as [`Activity`].

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use super::apply::{Stored, store_observations};
use crate::access::{Plan, Requester};
use crate::changes::{Activity, ChangeNotifier, CooldownScope, IgnoreChanges, RefreshMode};
use crate::ids::{MessageSid, TeamId};
use crate::message::{DeliveryState, Message, ObservationSource, StatusObservation, Timestamp};
use crate::ports::{
    ClaimedRead, Clock, IntegrationRepository, MessageRepository, ProviderError, RefreshLimiter,
    RepositoryError, SmsProvider, TwilioCredentials,
};
use crate::refresh_rules::{CooldownClaim, RefreshPolicy, RefreshWindow, describe_period};
use crate::status::MessageStatus;
use crate::sweep::{
    BulkPlan, PlanInputs, SweepPolicy, TrafficEstimates, choose_plan, read_account,
};

/// What a refresh did with one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageOutcome {
    /// The message.
    pub sid: MessageSid,
    /// Its status before the refresh.
    pub previous_status: MessageStatus,
    /// Its status after the refresh (the same unless `result` is `updated`).
    pub new_status: MessageStatus,
    /// Its error code after the refresh.
    pub error_code: Option<u32>,
    /// Its error message after the refresh.
    pub error_message: Option<String>,
    /// What happened.
    pub result: OutcomeKind,
}

/// The kinds of per-message result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum OutcomeKind {
    /// Twilio reported something newer, and it was stored.
    Updated,
    /// Twilio reported nothing newer (or something older, which was recorded and ignored).
    Unchanged,
    /// Twilio was asked and the call failed.
    Failed {
        /// Why.
        reason: FailureReason,
        /// Twilio's error code, when it gave one.
        code: Option<u32>,
        /// A description safe to show to the team.
        message: String,
    },
    /// Twilio was not asked.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
}

/// Why a provider call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureReason {
    /// Twilio answered 429 even after backing off.
    RateLimited,
    /// Twilio could not be reached or failed.
    ProviderUnavailable,
    /// Twilio refused the team's credentials.
    CredentialsRejected,
    /// Twilio refused the request.
    Rejected,
    /// Twilio's answer could not be read, or the write lost too many races.
    Unexpected,
}

/// Why a message was not asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// The message was refreshed less than a cool-down ago.
    CoolingDown {
        /// Seconds until it may be refreshed again.
        retry_after_secs: u64,
    },
    /// Twilio no longer knows the message (deleted, or another account's).
    NotFoundAtProvider,
    /// The team has no Twilio integration configured.
    IntegrationMissing,
}

/// Counts over a bulk refresh's outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshSummary {
    /// Messages considered.
    pub candidates: usize,
    /// Outcomes `updated`.
    pub updated: usize,
    /// Outcomes `unchanged`.
    pub unchanged: usize,
    /// Outcomes `failed`.
    pub failed: usize,
    /// Outcomes `skipped`.
    pub skipped: usize,
    /// Requests made to Twilio (list pages and fetches).
    pub provider_calls: usize,
    /// Of which Messages list pages.
    pub list_pages: usize,
}

impl RefreshSummary {
    /// Counts `outcomes` of a refresh that made `provider_calls` requests to Twilio, of which
    /// `list_pages` list pages.
    pub fn of(outcomes: &[MessageOutcome], provider_calls: usize, list_pages: usize) -> Self {
        let mut summary = Self {
            candidates: outcomes.len(),
            provider_calls,
            list_pages,
            ..Self::default()
        };
        for outcome in outcomes {
            match outcome.result {
                OutcomeKind::Updated => summary.updated += 1,
                OutcomeKind::Unchanged => summary.unchanged += 1,
                OutcomeKind::Failed { .. } => summary.failed += 1,
                OutcomeKind::Skipped { .. } => summary.skipped += 1,
            }
        }
        summary
    }
}

/// What a refresh request asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshTarget {
    /// One message of the requester's team.
    One(MessageSid),
    /// The team's recent outbound messages that are not final yet.
    Recent(RefreshWindow),
}

/// The answer to a refresh request of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshAnswer {
    /// Single or bulk.
    pub mode: RefreshMode,
    /// The bulk window, for a bulk refresh.
    pub window_hours: Option<u32>,
    /// How a bulk refresh learned the statuses.
    pub plan: Option<BulkPlan>,
    /// One outcome per message considered, newest first.
    pub outcomes: Vec<MessageOutcome>,
    /// Counts.
    pub summary: RefreshSummary,
    /// How long the refresh took, by the use case's clock.
    pub took: std::time::Duration,
}

/// Why a refresh request of either kind did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// A single refresh failed.
    #[error(transparent)]
    One(RefreshOneError),
    /// A bulk refresh failed.
    #[error(transparent)]
    Recent(RefreshRecentError),
}

/// The answer to a bulk refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReport {
    /// The window used.
    pub window_hours: u32,
    /// How the statuses were learned: a sweep of the account's list, or the window alone.
    pub plan: BulkPlan,
    /// One outcome per candidate, newest message first.
    pub outcomes: Vec<MessageOutcome>,
    /// Counts.
    pub summary: RefreshSummary,
    /// When the refresh started.
    pub started_at: Timestamp,
    /// When it finished.
    pub finished_at: Timestamp,
}

/// Why a single-message refresh did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshOneError {
    /// The team's plan does not include refresh.
    #[error("status refresh needs the Pro or Enterprise plan (this team is on {plan})")]
    PlanNotAllowed {
        /// The team's plan.
        plan: Plan,
    },
    /// No such message in the caller's team.
    #[error("message not found")]
    MessageNotFound,
    /// The message was refreshed too recently.
    #[error(
        "this message was refreshed less than {} ago; retry in {retry_after_secs} s",
        describe_period(*.cooldown_secs)
    )]
    CoolingDown {
        /// Seconds to wait.
        retry_after_secs: u64,
        /// The configured per-message cool-down, in seconds.
        cooldown_secs: u64,
    },
    /// The team has no Twilio integration.
    #[error("the team has no Twilio integration configured")]
    IntegrationMissing,
    /// Twilio failed.
    #[error(transparent)]
    Provider(ProviderError),
    /// The store failed.
    #[error(transparent)]
    Store(RepositoryError),
}

/// Why a bulk refresh did not happen (per-message problems are outcomes, not errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRecentError {
    /// The team's plan does not include refresh.
    #[error("status refresh needs the Pro or Enterprise plan (this team is on {plan})")]
    PlanNotAllowed {
        /// The team's plan.
        plan: Plan,
    },
    /// The user started a bulk refresh too recently.
    #[error(
        "a bulk refresh ran less than {} ago; retry in {retry_after_secs} s",
        describe_period(*.cooldown_secs)
    )]
    CoolingDown {
        /// Seconds to wait.
        retry_after_secs: u64,
        /// The configured bulk cool-down, in seconds.
        cooldown_secs: u64,
    },
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(RepositoryError),
}

/// The refresh use case. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct RefreshStatus {
    messages: Arc<dyn MessageRepository>,
    integrations: Arc<dyn IntegrationRepository>,
    provider: Arc<dyn SmsProvider>,
    limiter: Arc<dyn RefreshLimiter>,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
    sweeps: SweepPolicy,
    traffic: Arc<TrafficEstimates>,
    notifier: Arc<dyn ChangeNotifier>,
}

/// What Twilio said of one message, before it is decided and written.
enum Fetched {
    /// Its state, from a fetch (`poll`) or a list page (`sweep`).
    State(DeliveryState, ObservationSource),
    Failed(ProviderError),
}

impl RefreshStatus {
    /// Builds the use case over its ports.
    pub fn new(
        messages: Arc<dyn MessageRepository>,
        integrations: Arc<dyn IntegrationRepository>,
        provider: Arc<dyn SmsProvider>,
        limiter: Arc<dyn RefreshLimiter>,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
    ) -> Self {
        Self {
            messages,
            integrations,
            provider,
            limiter,
            clock,
            policy,
            sweeps: SweepPolicy::default(),
            traffic: Arc::new(TrafficEstimates::new()),
            notifier: Arc::new(IgnoreChanges),
        }
    }

    /// Sizes bulk refreshes' sweeps and says when they may run (default:
    /// [`SweepPolicy::default`], the planner decides), learning accounts' traffic into
    /// `traffic` (share it with the reconciler, whose sweeps teach it too).
    #[must_use]
    pub fn with_sweeps(mut self, sweeps: SweepPolicy, traffic: Arc<TrafficEstimates>) -> Self {
        self.sweeps = sweeps;
        self.traffic = traffic;
        self
    }

    /// Hands every status this use case moves, its cool-down refusals and its durations to
    /// `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Runs a refresh of either kind and answers with its outcomes, counts and duration: what
    /// the HTTP endpoint serves.
    ///
    /// # Errors
    /// [`RefreshError::One`] or [`RefreshError::Recent`], as [`RefreshStatus::refresh_one`] and
    /// [`RefreshStatus::refresh_recent`].
    pub async fn refresh(
        &self,
        requester: &Requester,
        target: RefreshTarget,
    ) -> Result<RefreshAnswer, RefreshError> {
        let started = self.clock.now();
        let (mode, result) = match target {
            RefreshTarget::One(sid) => (
                RefreshMode::Single,
                self.refresh_one(requester, &sid)
                    .await
                    .map(|outcome| {
                        let summary = RefreshSummary::of(std::slice::from_ref(&outcome), 1, 0);
                        (None, None, vec![outcome], summary)
                    })
                    .map_err(RefreshError::One),
            ),
            RefreshTarget::Recent(window) => (
                RefreshMode::Bulk,
                self.refresh_recent(requester, window)
                    .await
                    .map(|report| {
                        (
                            Some(report.window_hours),
                            Some(report.plan),
                            report.outcomes,
                            report.summary,
                        )
                    })
                    .map_err(RefreshError::Recent),
            ),
        };
        let took = (self.clock.now() - started).to_std().unwrap_or_default();
        self.notifier
            .activity(&Activity::RefreshFinished { mode, took });
        let (window_hours, plan, outcomes, summary) = result?;
        Ok(RefreshAnswer {
            mode,
            window_hours,
            plan,
            outcomes,
            summary,
            took,
        })
    }

    /// The limits in force.
    pub fn policy(&self) -> RefreshPolicy {
        self.policy
    }

    /// Refreshes one message of the requester's team. Terminal messages are asked too (a
    /// delivered message may still become read); the per-message cool-down applies. The
    /// message is read while its cool-down is claimed, so a read that fails may leave the
    /// cool-down started, as a failed call to Twilio does.
    ///
    /// # Errors
    /// See [`RefreshOneError`]: the plan, a missing message (also another team's), the
    /// cool-down, a missing integration, Twilio's failure, or the store's.
    pub async fn refresh_one(
        &self,
        requester: &Requester,
        sid: &MessageSid,
    ) -> Result<MessageOutcome, RefreshOneError> {
        if !requester.plan.allows_status_refresh() {
            return Err(RefreshOneError::PlanNotAllowed {
                plan: requester.plan,
            });
        }
        let team = requester.team_id;
        // The integration comes from a cache, so it is asked first; the message's read and its
        // cool-down claim then go to the store in one step where it can (one statement), or
        // together rather than one after the other (one round trip of waiting instead of two).
        // A claim of a SID the team has no message under stamps nothing, so running it before
        // the read knows the message changes nothing. The answers keep their order: a missing
        // message, then a missing integration, then the cool-down.
        let integration = self
            .integrations
            .for_team(team)
            .await
            .map_err(RefreshOneError::Store)?;
        let Some(integration) = integration else {
            self.messages
                .find(team, sid)
                .await
                .map_err(RefreshOneError::Store)?
                .ok_or(RefreshOneError::MessageNotFound)?;
            return Err(RefreshOneError::IntegrationMissing);
        };
        let (message, claim) = self.claim_and_read(team, sid).await?;
        let credentials = integration.credentials;
        if let CooldownClaim::Denied { retry_after_secs } = claim {
            self.notifier.activity(&Activity::CooldownRefused {
                scope: CooldownScope::Message,
                count: 1,
            });
            return Err(RefreshOneError::CoolingDown {
                retry_after_secs,
                cooldown_secs: self.policy.message_cooldown.as_secs(),
            });
        }

        let state = self
            .provider
            .fetch_message(&credentials, sid)
            .await
            .map_err(RefreshOneError::Provider)?
            .state;
        let mut outcomes = self
            .store_results(
                requester,
                vec![(message, Fetched::State(state, ObservationSource::Poll))],
            )
            .await
            .map_err(RefreshOneError::Store)?;
        outcomes.pop().ok_or_else(|| {
            RefreshOneError::Store(RepositoryError::Unexpected(
                "no outcome for the message".into(),
            ))
        })
    }

    /// Claims the cool-down of `team`'s message `sid` and reads the message: in one step where
    /// the limiter can ([`RefreshLimiter::claim_and_read`]), else the read beside the claim.
    async fn claim_and_read(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<(Message, CooldownClaim), RefreshOneError> {
        let (now, cooldown) = (self.clock.now(), self.policy.message_cooldown);
        let in_one_step = self
            .limiter
            .claim_and_read(team, sid, now, cooldown)
            .await
            .map_err(RefreshOneError::Store)?;
        match in_one_step {
            Some(ClaimedRead::Found { message, claim }) => Ok((message, claim)),
            Some(ClaimedRead::NotFound) => Err(RefreshOneError::MessageNotFound),
            None => {
                let (found, claims) = futures::join!(
                    self.messages.find(team, sid),
                    self.limiter
                        .claim_messages(team, std::slice::from_ref(sid), now, cooldown)
                );
                let message = found
                    .map_err(RefreshOneError::Store)?
                    .ok_or(RefreshOneError::MessageNotFound)?;
                let claims = claims.map_err(RefreshOneError::Store)?;
                let claim = claims.into_iter().next().ok_or_else(|| {
                    RefreshOneError::Store(RepositoryError::Unexpected(
                        "no answer to the message's claim".into(),
                    ))
                })?;
                Ok((message, claim))
            }
        }
    }

    /// Refreshes the requester's team's recent outbound messages that are not final yet.
    ///
    /// # Errors
    /// See [`RefreshRecentError`]: the plan, the user's bulk cool-down, or the store. Problems
    /// with single messages are reported in their outcomes instead.
    pub async fn refresh_recent(
        &self,
        requester: &Requester,
        window: RefreshWindow,
    ) -> Result<RefreshReport, RefreshRecentError> {
        if !requester.plan.allows_status_refresh() {
            return Err(RefreshRecentError::PlanNotAllowed {
                plan: requester.plan,
            });
        }
        let team = requester.team_id;
        let started_at = self.clock.now();
        match self
            .limiter
            .claim_bulk(
                team,
                requester.user_id,
                started_at,
                self.policy.bulk_cooldown,
            )
            .await
            .map_err(RefreshRecentError::Store)?
        {
            CooldownClaim::Granted => {}
            CooldownClaim::Denied { retry_after_secs } => {
                self.notifier.activity(&Activity::CooldownRefused {
                    scope: CooldownScope::Bulk,
                    count: 1,
                });
                return Err(RefreshRecentError::CoolingDown {
                    retry_after_secs,
                    cooldown_secs: self.policy.bulk_cooldown.as_secs(),
                });
            }
        }

        let candidates = self
            .messages
            .refresh_candidates(
                team,
                window.since(started_at),
                self.policy.max_bulk_messages,
            )
            .await
            .map_err(RefreshRecentError::Store)?;

        let mut outcomes: Vec<Option<MessageOutcome>> = vec![None; candidates.len()];
        let integration = if candidates.is_empty() {
            None
        } else {
            self.integrations
                .for_team(team)
                .await
                .map_err(RefreshRecentError::Store)?
        };

        let mut provider_calls = 0;
        let mut list_pages = 0;
        let mut plan = BulkPlan::Window;
        if let Some(integration) = integration {
            let sids: Vec<MessageSid> = candidates.iter().map(|m| m.sid.clone()).collect();
            let claims = self
                .limiter
                .claim_messages(team, &sids, started_at, self.policy.message_cooldown)
                .await
                .map_err(RefreshRecentError::Store)?;

            let mut to_fetch = Vec::new();
            for (index, (message, claim)) in candidates.iter().zip(claims).enumerate() {
                match claim {
                    CooldownClaim::Granted => to_fetch.push((index, message)),
                    CooldownClaim::Denied { retry_after_secs } => {
                        outcomes[index] = Some(skipped(
                            message,
                            SkipReason::CoolingDown { retry_after_secs },
                        ));
                    }
                }
            }
            let cooling = candidates.len() - to_fetch.len();
            if cooling > 0 {
                self.notifier.activity(&Activity::CooldownRefused {
                    scope: CooldownScope::Message,
                    count: u64::try_from(cooling).unwrap_or(u64::MAX),
                });
            }

            let credentials = &integration.credentials;
            let oldest = to_fetch
                .iter()
                .map(|(_, m)| m.created_at)
                .min()
                .unwrap_or(started_at);
            plan = self.plan(credentials, to_fetch.len(), oldest, started_at);
            let mut fetched = Vec::new();
            if let BulkPlan::Sweep { pages } = plan {
                let (listed, requests) = self.sweep(credentials, &to_fetch, oldest, pages).await;
                list_pages = requests;
                to_fetch.retain(|(index, message)| match listed.get(&message.sid) {
                    Some(state) => {
                        fetched.push((
                            *index,
                            Fetched::State(state.clone(), ObservationSource::Sweep),
                        ));
                        false
                    }
                    None => true,
                });
            }
            provider_calls = list_pages + to_fetch.len();
            fetched.extend(self.fetch_all(credentials, to_fetch).await);
            let mut to_store = Vec::new();
            let mut positions = Vec::new();
            for (index, result) in fetched {
                let message = &candidates[index];
                match result {
                    Fetched::Failed(ProviderError::NotFound) => {
                        outcomes[index] = Some(skipped(message, SkipReason::NotFoundAtProvider));
                    }
                    Fetched::Failed(error) => outcomes[index] = Some(failed(message, &error)),
                    state @ Fetched::State(..) => {
                        positions.push(index);
                        to_store.push((message.clone(), state));
                    }
                }
            }
            let stored = self
                .store_results(requester, to_store)
                .await
                .map_err(RefreshRecentError::Store)?;
            for (index, outcome) in positions.into_iter().zip(stored) {
                outcomes[index] = Some(outcome);
            }
        } else {
            for (slot, message) in outcomes.iter_mut().zip(&candidates) {
                *slot = Some(skipped(message, SkipReason::IntegrationMissing));
            }
        }

        let outcomes: Vec<MessageOutcome> = outcomes.into_iter().flatten().collect();
        let summary = RefreshSummary::of(&outcomes, provider_calls, list_pages);
        Ok(RefreshReport {
            window_hours: window.hours(),
            plan,
            outcomes,
            summary,
            started_at,
            finished_at: self.clock.now(),
        })
    }

    /// The plan for asking about `candidates` messages, the oldest created at `oldest`, from
    /// the account's traffic as this process last saw it.
    fn plan(
        &self,
        credentials: &TwilioCredentials,
        candidates: usize,
        oldest: Timestamp,
        now: Timestamp,
    ) -> BulkPlan {
        choose_plan(
            PlanInputs {
                candidates,
                oldest_age: (now - oldest).to_std().unwrap_or_default(),
                traffic: self.traffic.get(&credentials.account_sid),
            },
            &self.sweeps,
        )
    }

    /// Sweeps the account's list since `oldest` (the oldest of `to_fetch`'s creation times),
    /// up to `pages` pages, and learns the account's traffic and how much of `to_fetch` the
    /// pages listed. Returns the listed states and the pages requested; a failed sweep lists
    /// nothing (every message is then fetched on its own).
    async fn sweep(
        &self,
        credentials: &TwilioCredentials,
        to_fetch: &[(usize, &Message)],
        oldest: Timestamp,
        pages: u32,
    ) -> (HashMap<MessageSid, DeliveryState>, usize) {
        let since = self.sweeps.since(oldest);
        match read_account(
            self.provider.as_ref(),
            credentials,
            since,
            self.sweeps.page_size,
            pages,
        )
        .await
        {
            Ok(swept) => {
                let covered = to_fetch
                    .iter()
                    .filter(|(_, m)| swept.states.contains_key(&m.sid))
                    .count();
                let mut traffic = swept.traffic(since, self.clock.now());
                traffic.covered_share = Some(covered as f64 / to_fetch.len().max(1) as f64);
                self.traffic.record(&credentials.account_sid, traffic);
                (swept.states, swept.requests)
            }
            // One request failed; the window asks about everything instead.
            Err(_) => (HashMap::new(), 1),
        }
    }

    /// Calls the provider for every message in a sliding window of `max_in_flight`, returning
    /// results tagged with their position (in completion order; callers place them by index).
    async fn fetch_all(
        &self,
        credentials: &TwilioCredentials,
        messages: Vec<(usize, &Message)>,
    ) -> Vec<(usize, Fetched)> {
        futures::stream::iter(messages)
            .map(|(index, message)| async move {
                let result = match self.provider.fetch_message(credentials, &message.sid).await {
                    Ok(found) => Fetched::State(found.state, ObservationSource::Poll),
                    Err(error) => Fetched::Failed(error),
                };
                (index, result)
            })
            .buffer_unordered(self.policy.max_in_flight.max(1))
            .collect()
            .await
    }

    /// Decides every fetched state against its message and writes them all as one batch (see
    /// [`super::apply`]). Returns one outcome per input, in order.
    async fn store_results(
        &self,
        requester: &Requester,
        results: Vec<(Message, Fetched)>,
    ) -> Result<Vec<MessageOutcome>, RepositoryError> {
        let observed_at = self.clock.now();
        let mut outcomes: Vec<Option<MessageOutcome>> = vec![None; results.len()];
        let mut positions = Vec::new();
        let mut items = Vec::new();
        for (index, (message, fetched)) in results.into_iter().enumerate() {
            match fetched {
                Fetched::State(state, source) => {
                    positions.push(index);
                    let observation = StatusObservation {
                        state,
                        source,
                        observed_at,
                    };
                    items.push((message, observation));
                }
                Fetched::Failed(error) => outcomes[index] = Some(failed(&message, &error)),
            }
        }
        let originals: Vec<Message> = items.iter().map(|(m, _)| m.clone()).collect();
        let stored = store_observations(
            self.messages.as_ref(),
            self.notifier.as_ref(),
            requester.team_id,
            items,
        )
        .await?;
        for ((index, message), result) in positions.into_iter().zip(originals).zip(stored) {
            outcomes[index] = Some(match result {
                Stored::Decided { before, decision } => match decision.next_state() {
                    Some(next) => outcome(&message, next, OutcomeKind::Updated),
                    None => outcome(&message, &before, OutcomeKind::Unchanged),
                },
                Stored::Missing => skipped(&message, SkipReason::NotFoundAtProvider),
                Stored::GaveUp => unresolved(&message),
            });
        }
        Ok(outcomes.into_iter().flatten().collect())
    }
}

fn outcome(message: &Message, after: &DeliveryState, result: OutcomeKind) -> MessageOutcome {
    MessageOutcome {
        sid: message.sid.clone(),
        previous_status: message.delivery.status.clone(),
        new_status: after.status.clone(),
        error_code: after.error_code,
        error_message: after.error_message.clone(),
        result,
    }
}

fn skipped(message: &Message, reason: SkipReason) -> MessageOutcome {
    outcome(message, &message.delivery, OutcomeKind::Skipped { reason })
}

fn unresolved(message: &Message) -> MessageOutcome {
    outcome(
        message,
        &message.delivery,
        OutcomeKind::Failed {
            reason: FailureReason::Unexpected,
            code: None,
            message: "the message kept changing while it was being refreshed; try again".into(),
        },
    )
}

fn failed(message: &Message, error: &ProviderError) -> MessageOutcome {
    let (reason, code) = match error {
        ProviderError::RateLimited { .. } => (FailureReason::RateLimited, Some(20429)),
        ProviderError::Unavailable { .. } => (FailureReason::ProviderUnavailable, None),
        ProviderError::CredentialsRejected { code, .. } => {
            (FailureReason::CredentialsRejected, *code)
        }
        ProviderError::Rejected { code, .. } => (FailureReason::Rejected, *code),
        ProviderError::NotFound | ProviderError::Unexpected { .. } => {
            (FailureReason::Unexpected, None)
        }
    };
    outcome(
        message,
        &message.delivery,
        OutcomeKind::Failed {
            reason,
            code,
            message: error.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    //! The race paths, which the in-memory fakes cannot provoke: mockall scripts a repository
    //! whose message changes between the read and the conditional write.

    use super::*;
    use crate::access::Role;
    use crate::fakes::{FakeSmsProvider, InMemoryStore, ManualClock};
    use crate::ids::{AccountSid, Address, TeamId, UserId};
    use crate::ports::WriteOutcome;
    use crate::ports::{
        ClaimedRead, MockMessageRepository, MockRefreshLimiter, NewIntegration, Sender,
    };
    use crate::services::apply::MAX_WRITE_ROUNDS;
    use crate::status::Direction;
    use chrono::TimeZone;
    use secrecy::SecretString;

    fn t0() -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn message(status: MessageStatus) -> Message {
        Message {
            sid: MessageSid::parse("SM0123456789abcdef0123456789abcdef").expect("valid"),
            team_id: TeamId::new(1).expect("valid"),
            account_sid: AccountSid::parse("AC0123456789abcdef0123456789abcdef").expect("valid"),
            direction: Direction::OutboundApi,
            from: Address::parse("+15005550006").expect("valid"),
            to: Address::parse("+14155550100").expect("valid"),
            body: "hi".into(),
            delivery: DeliveryState::new(status),
            created_at: t0(),
            updated_at: t0(),
            last_refreshed_at: None,
            redacted_at: None,
            delivery_unknown_at: None,
            reference: None,
        }
    }

    fn pro() -> Requester {
        Requester {
            team_id: TeamId::new(1).expect("valid"),
            user_id: UserId::new(1).expect("valid"),
            plan: Plan::Pro,
            role: Role::Member,
        }
    }

    /// A limiter that claims apart from the read (no one-step claim) and grants every claim.
    fn granting_limiter() -> MockRefreshLimiter {
        let mut limiter = MockRefreshLimiter::new();
        limiter
            .expect_claim_and_read()
            .returning(|_, _, _, _| Ok(None));
        limiter
            .expect_claim_messages()
            .returning(|_, sids, _, _| Ok(vec![CooldownClaim::Granted; sids.len()]));
        limiter
    }

    async fn service(messages: MockMessageRepository, twilio_says: MessageStatus) -> RefreshStatus {
        service_with(messages, twilio_says, granting_limiter()).await
    }

    async fn service_with(
        messages: MockMessageRepository,
        twilio_says: MessageStatus,
        limiter: MockRefreshLimiter,
    ) -> RefreshStatus {
        let integrations = InMemoryStore::new();
        integrations
            .upsert(
                TeamId::new(1).expect("valid"),
                NewIntegration {
                    account_sid: AccountSid::parse("AC0123456789abcdef0123456789abcdef")
                        .expect("valid"),
                    auth_token: SecretString::from("t"),
                    api_key: None,
                    sender: Sender::Number(
                        crate::ids::PhoneNumber::parse("+15005550006").expect("valid"),
                    ),
                },
            )
            .await
            .expect("stored");
        let provider = FakeSmsProvider::new();
        provider.set_state(
            &message(MessageStatus::Sent).sid,
            DeliveryState::new(twilio_says),
        );
        RefreshStatus::new(
            Arc::new(messages),
            Arc::new(integrations),
            Arc::new(provider),
            Arc::new(limiter),
            Arc::new(ManualClock::new(t0())),
            RefreshPolicy::default(),
        )
    }

    /// A limiter that claims and reads in one step, answering `found` (and never claims apart).
    fn one_step_limiter(found: ClaimedRead) -> MockRefreshLimiter {
        let mut limiter = MockRefreshLimiter::new();
        limiter
            .expect_claim_and_read()
            .times(1)
            .returning(move |_, _, _, _| Ok(Some(found.clone())));
        limiter.expect_claim_messages().never();
        limiter
    }

    #[tokio::test]
    async fn a_claim_and_read_in_one_step_takes_the_place_of_the_read() {
        // No `find` expectation: a read beside the one-step claim would fail the test.
        let mut messages = MockMessageRepository::new();
        messages
            .expect_apply_observations()
            .times(1)
            .returning(|_, writes| Ok(vec![WriteOutcome::Written; writes.len()]));
        let limiter = one_step_limiter(ClaimedRead::Found {
            message: message(MessageStatus::Sent),
            claim: CooldownClaim::Granted,
        });
        let refresh = service_with(messages, MessageStatus::Delivered, limiter).await;
        let outcome = refresh
            .refresh_one(&pro(), &message(MessageStatus::Sent).sid)
            .await
            .expect("refreshed");
        assert_eq!(outcome.result, OutcomeKind::Updated);
        assert_eq!(outcome.previous_status, MessageStatus::Sent);
        assert_eq!(outcome.new_status, MessageStatus::Delivered);
    }

    #[tokio::test]
    async fn a_denied_claim_in_one_step_is_the_cool_down_and_writes_nothing() {
        let mut messages = MockMessageRepository::new();
        messages.expect_apply_observations().never();
        let limiter = one_step_limiter(ClaimedRead::Found {
            message: message(MessageStatus::Sent),
            claim: CooldownClaim::Denied {
                retry_after_secs: 42,
            },
        });
        let refresh = service_with(messages, MessageStatus::Delivered, limiter).await;
        let answer = refresh
            .refresh_one(&pro(), &message(MessageStatus::Sent).sid)
            .await;
        assert_eq!(
            answer.err(),
            Some(RefreshOneError::CoolingDown {
                retry_after_secs: 42,
                cooldown_secs: RefreshPolicy::default().message_cooldown.as_secs(),
            })
        );
    }

    #[tokio::test]
    async fn no_message_found_in_one_step_is_not_found() {
        let mut messages = MockMessageRepository::new();
        messages.expect_apply_observations().never();
        let limiter = one_step_limiter(ClaimedRead::NotFound);
        let refresh = service_with(messages, MessageStatus::Delivered, limiter).await;
        let answer = refresh
            .refresh_one(&pro(), &message(MessageStatus::Sent).sid)
            .await;
        assert_eq!(answer.err(), Some(RefreshOneError::MessageNotFound));
    }

    #[tokio::test]
    async fn a_write_that_loses_a_race_is_decided_again_against_the_newer_state() {
        // We read `sent`; Twilio says `sent`→`delivered`... but a callback stores `read` first.
        let mut messages = MockMessageRepository::new();
        let mut reads = 0;
        messages.expect_find().times(2).returning(move |_, _| {
            reads += 1;
            Ok(Some(message(if reads == 1 {
                MessageStatus::Sent
            } else {
                MessageStatus::Read
            })))
        });
        let mut rounds = 0;
        messages
            .expect_apply_observations()
            .times(2)
            .returning(move |_, writes| {
                rounds += 1;
                assert_eq!(writes.len(), 1);
                if rounds == 1 {
                    assert_eq!(
                        writes[0].change.as_ref().map(|c| c.expected_status.clone()),
                        Some(MessageStatus::Sent)
                    );
                    Ok(vec![WriteOutcome::Conflict])
                } else {
                    assert!(
                        writes[0].change.is_none(),
                        "delivered after read is stale: record only"
                    );
                    Ok(vec![WriteOutcome::Recorded])
                }
            });
        let refresh = service(messages, MessageStatus::Delivered).await;
        let outcome = refresh
            .refresh_one(&pro(), &message(MessageStatus::Sent).sid)
            .await
            .expect("refreshed");
        assert_eq!(outcome.result, OutcomeKind::Unchanged);
        assert_eq!(outcome.new_status, MessageStatus::Read);
    }

    #[tokio::test]
    async fn a_write_that_keeps_losing_races_fails_instead_of_looping() {
        let mut messages = MockMessageRepository::new();
        messages
            .expect_find()
            .returning(|_, _| Ok(Some(message(MessageStatus::Sent))));
        messages
            .expect_apply_observations()
            .times(MAX_WRITE_ROUNDS)
            .returning(|_, writes| Ok(vec![WriteOutcome::Conflict; writes.len()]));
        let refresh = service(messages, MessageStatus::Delivered).await;
        let outcome = refresh
            .refresh_one(&pro(), &message(MessageStatus::Sent).sid)
            .await
            .expect("answered");
        assert!(matches!(
            outcome.result,
            OutcomeKind::Failed {
                reason: FailureReason::Unexpected,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_store_failure_while_writing_is_the_requests_error() {
        let mut messages = MockMessageRepository::new();
        messages
            .expect_find()
            .returning(|_, _| Ok(Some(message(MessageStatus::Sent))));
        messages
            .expect_apply_observations()
            .returning(|_, _| Err(RepositoryError::Unavailable("connection reset".into())));
        let refresh = service(messages, MessageStatus::Delivered).await;
        let result = refresh
            .refresh_one(&pro(), &message(MessageStatus::Sent).sid)
            .await;
        assert_eq!(
            result,
            Err(RefreshOneError::Store(RepositoryError::Unavailable(
                "connection reset".into()
            )))
        );
    }
}
