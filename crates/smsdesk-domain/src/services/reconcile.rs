//! The `Reconcile` use case: keeps statuses true without being asked. Callbacks get lost, so
//! every run sweeps the Messages list of each account whose team has outbound messages still not
//! final after [`ReconcilePolicy::min_age`] (and younger than [`ReconcilePolicy::lookback`]),
//! from its oldest such message on, at most [`ReconcilePolicy::max_pages_per_account`] pages per
//! account, and passes every listed message smsdesk holds whose state differs from the stored one
//! through the forward-only rule (source `sweep`), on the one path every change takes.
//!
//! A run then declares the outbound messages still not final after
//! [`ReconcilePolicy::stuck_after`] (default 72 h) stuck: their delivery is unknown, they stop
//! being refresh candidates, and the declaration is a change in their history (source
//! `timeout`) that the page and the API show; a real receipt that arrives later still applies
//! and clears it.
//!
//! A run is meant for one replica of a fleet at a time (the app holds a lease); its Twilio
//! requests go through the same client, so they count against the fleet's account cap like any
//! other. What a run did is reported as [`Activity::Reconciled`] for the metrics.

use std::sync::Arc;
use std::time::Duration;

use super::apply::{Stored, store_observations};
use crate::changes::{Activity, ChangeKind, ChangeNotifier, CommittedChange, IgnoreChanges};
use crate::message::{Message, ObservationSource, StatusObservation, Timestamp};
use crate::ports::{
    Clock, IntegrationRepository, MessageRepository, RepositoryError, SmsProvider, StuckMessages,
    UnfinishedMessages,
};
use crate::sweep::{SweepPolicy, TrafficEstimates, read_account};

/// When and how much the reconciler sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilePolicy {
    /// A message is left to its callbacks this long before a sweep looks for it (default 10 min).
    pub min_age: Duration,
    /// Messages older than this are not looked for (default 72 h, the stuck limit).
    pub lookback: Duration,
    /// Pages of an account's list one run may read (default 5: 5,000 messages).
    pub max_pages_per_account: u32,
    /// Accounts one run sweeps at most, those with the oldest unfinished messages first.
    pub max_accounts: usize,
    /// A message still not final this long after it was created is declared stuck (default
    /// 72 h, as long as the reconciler looks back).
    pub stuck_after: Duration,
}

/// Messages declared stuck per store call; a run makes at most [`MAX_TIMEOUT_BATCHES`].
const TIMEOUT_BATCH: usize = 500;

/// Batches of timeouts one run declares at most, so a backlog spreads over runs.
const MAX_TIMEOUT_BATCHES: usize = 10;

impl Default for ReconcilePolicy {
    fn default() -> Self {
        Self {
            min_age: Duration::from_secs(600),
            lookback: Duration::from_secs(72 * 3600),
            max_pages_per_account: 5,
            max_accounts: 100,
            stuck_after: Duration::from_secs(72 * 3600),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconcileReport {
    /// Accounts whose list was read.
    pub accounts_swept: u64,
    /// Accounts whose list could not be read (Twilio failed; the next run retries).
    pub accounts_failed: u64,
    /// Messages whose stored state changed.
    pub messages_moved: u64,
    /// Requests made to Twilio (list pages).
    pub twilio_requests: u64,
    /// Messages declared stuck (delivery unknown).
    pub timed_out: u64,
}

/// `period` before `now` (a period too long for a timestamp reaches back to its start).
fn before(now: Timestamp, period: Duration) -> Timestamp {
    now - chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX)
}

/// The use case. Cheap to clone.
#[derive(Clone)]
pub struct Reconcile {
    unfinished: Arc<dyn UnfinishedMessages>,
    messages: Arc<dyn MessageRepository>,
    integrations: Arc<dyn IntegrationRepository>,
    provider: Arc<dyn SmsProvider>,
    clock: Arc<dyn Clock>,
    policy: ReconcilePolicy,
    sweeps: SweepPolicy,
    traffic: Arc<TrafficEstimates>,
    notifier: Arc<dyn ChangeNotifier>,
    stuck: Option<Arc<dyn StuckMessages>>,
}

impl Reconcile {
    /// Builds the use case over its ports.
    pub fn new(
        unfinished: Arc<dyn UnfinishedMessages>,
        messages: Arc<dyn MessageRepository>,
        integrations: Arc<dyn IntegrationRepository>,
        provider: Arc<dyn SmsProvider>,
        clock: Arc<dyn Clock>,
        policy: ReconcilePolicy,
    ) -> Self {
        Self {
            unfinished,
            messages,
            integrations,
            provider,
            clock,
            policy,
            sweeps: SweepPolicy::default(),
            traffic: Arc::new(TrafficEstimates::new()),
            notifier: Arc::new(IgnoreChanges),
            stuck: None,
        }
    }

    /// Also declares stuck messages (see the module documentation) through `stuck`; without it
    /// a run only sweeps.
    #[must_use]
    pub fn with_stuck_timeouts(mut self, stuck: Arc<dyn StuckMessages>) -> Self {
        self.stuck = Some(stuck);
        self
    }

    /// Pages of `sweeps.page_size`, and what the sweeps see recorded into `traffic` (share it
    /// with bulk refreshes, whose plans it informs).
    #[must_use]
    pub fn with_sweeps(mut self, sweeps: SweepPolicy, traffic: Arc<TrafficEstimates>) -> Self {
        self.sweeps = sweeps;
        self.traffic = traffic;
        self
    }

    /// Hands every change a run commits, and its report, to `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> ReconcilePolicy {
        self.policy
    }

    /// One run over every account with unfinished messages (up to `max_accounts`).
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; changes already committed stay, and the next
    /// run goes on. A Twilio failure only counts the account as failed.
    pub async fn run(&self) -> Result<ReconcileReport, RepositoryError> {
        let now = self.clock.now();
        let teams = self
            .unfinished
            .unfinished_teams(
                before(now, self.policy.lookback),
                before(now, self.policy.min_age),
                self.policy.max_accounts,
            )
            .await?;
        let mut report = ReconcileReport::default();
        for team in teams {
            let Some(integration) = self.integrations.for_team(team.team_id).await? else {
                continue;
            };
            let credentials = &integration.credentials;
            let since = self.sweeps.since(team.oldest_created_at);
            let swept = match read_account(
                self.provider.as_ref(),
                credentials,
                since,
                self.sweeps.page_size,
                self.policy.max_pages_per_account,
            )
            .await
            {
                Ok(swept) => swept,
                Err(_) => {
                    report.accounts_failed += 1;
                    report.twilio_requests += 1;
                    continue;
                }
            };
            report.accounts_swept += 1;
            report.twilio_requests += u64::try_from(swept.requests).unwrap_or(u64::MAX);
            self.traffic.record(
                &credentials.account_sid,
                swept.traffic(since, self.clock.now()),
            );
            let sids: Vec<_> = swept.states.keys().cloned().collect();
            let held = self.unfinished.find_many(team.team_id, &sids).await?;
            let observed_at = self.clock.now();
            // Only what differs is worth a history row: an unchanged listing is no news.
            let items: Vec<(Message, StatusObservation)> = held
                .into_iter()
                .filter_map(|message| {
                    let state = swept.states.get(&message.sid)?.clone();
                    (state != message.delivery).then(|| {
                        let observation = StatusObservation {
                            state,
                            source: ObservationSource::Sweep,
                            observed_at,
                        };
                        (message, observation)
                    })
                })
                .collect();
            let stored = store_observations(
                self.messages.as_ref(),
                self.notifier.as_ref(),
                team.team_id,
                items,
            )
            .await?;
            report.messages_moved += stored
                .iter()
                .filter(|result| {
                    matches!(result, Stored::Decided { decision, .. } if decision.next_state().is_some())
                })
                .count() as u64;
        }
        report.timed_out = self.time_out_stuck().await?;
        self.notifier.activity(&Activity::Reconciled(report));
        Ok(report)
    }

    /// Declares the messages past the stuck limit, batch by batch, each a committed change.
    async fn time_out_stuck(&self) -> Result<u64, RepositoryError> {
        let Some(stuck) = &self.stuck else {
            return Ok(0);
        };
        let now = self.clock.now();
        let cutoff = before(now, self.policy.stuck_after);
        let mut total = 0;
        for _ in 0..MAX_TIMEOUT_BATCHES {
            let declared = stuck.time_out_stuck(cutoff, now, TIMEOUT_BATCH).await?;
            for message in &declared {
                self.notifier.committed(&CommittedChange {
                    team_id: message.team_id,
                    sid: message.sid.clone(),
                    kind: ChangeKind::Enriched,
                    state: message.delivery.clone(),
                    source: ObservationSource::Timeout,
                    observed_at: now,
                });
            }
            total += declared.len() as u64;
            if declared.len() < TIMEOUT_BATCH {
                break;
            }
        }
        Ok(total)
    }
}
