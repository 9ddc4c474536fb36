//! Workload 1: the refresh engine against the simulator.
//!
//! Three ways to ask Twilio about the same messages, measured side by side and alternated run by
//! run so that machine noise hits each alike:
//! - **sliding window**: our `RefreshStatus::refresh_recent` (a real `TwilioClient`, the messages
//!   seeded both in the simulator and in an `InMemoryStore`), at most `window` calls in flight,
//!   a new call starting as soon as any ends;
//! - **barrier batches**: the original's strategy, implemented here for comparison: chunks of
//!   `window` calls with `join_all`, each chunk waiting for its slowest call. It makes only the
//!   provider calls (no store work), which if anything flatters it;
//! - **lower bound**: `max(longest call, sum of calls / window)` over the latencies the simulator
//!   actually served in that run.
//!
//! [`concurrent_bulk`] runs many users' bulk refreshes at once against a simulator that answers
//! 429 above a number of requests in flight, through one shared client whose per-account cap
//! should keep every 429 away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::future::join_all;
use smsdesk_domain::fakes::InMemoryStore;
use smsdesk_domain::ports::{
    IntegrationRepository, MessageRepository, NewIntegration, Sender, SmsProvider, SystemClock,
    TwilioCredentials,
};
use smsdesk_domain::secrecy::SecretString;
use smsdesk_domain::services::{Reconcile, ReconcilePolicy, RefreshStatus};
use smsdesk_domain::sweep::{PlanMode, SweepPolicy, TrafficEstimates};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, Plan, RefreshPolicy, RefreshWindow, Requester, Role,
    StatusObservation, TeamId, UserId,
};
use smsdesk_twilio::{TwilioClient, TwilioConfig};
use smsdesk_twilio_sim::{
    FaultConfig, LatencyConfig, SeedMessage, SimAccount, SimConfig, SimHandle, SimServer,
};

use crate::Size;
use crate::stats::{lower_bound, median, median_duration};

/// The simulator's seed: the same latency draws in the same order on every run.
const SIM_SEED: u64 = 8;

/// One strategy comparison: how many messages, how slow the simulator, how wide the window.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Messages refreshed per run.
    pub messages: usize,
    /// The simulator's latency.
    pub latency: LatencyConfig,
    /// Calls in flight at most.
    pub window: usize,
    /// Runs of each strategy (alternated).
    pub runs: usize,
}

impl EngineConfig {
    /// Issue 8's comparison (100 messages, median 150 ms, sigma 0.6, 10 in flight, 5 runs), or
    /// its quick form (50 messages at a 20 ms median, 3 runs).
    pub fn hundred(size: Size) -> Self {
        match size {
            Size::Full => Self {
                messages: 100,
                latency: log_normal(150, 0.6),
                window: 10,
                runs: 5,
            },
            // Five windows' worth, so that the barriers' waiting shows through timing noise.
            Size::Quick => Self {
                messages: 50,
                latency: log_normal(20, 0.6),
                window: 10,
                runs: 3,
            },
        }
    }

    /// The same at 1,000 messages, one run each (100 messages at a 20 ms median when quick).
    pub fn thousand(size: Size) -> Self {
        match size {
            Size::Full => Self {
                messages: 1000,
                runs: 1,
                ..Self::hundred(size)
            },
            Size::Quick => Self {
                messages: 100,
                runs: 1,
                ..Self::hundred(size)
            },
        }
    }
}

/// A log-normal latency with the given median in milliseconds.
pub fn log_normal(median_ms: u64, sigma: f64) -> LatencyConfig {
    LatencyConfig {
        median: Duration::from_millis(median_ms),
        sigma,
    }
}

/// One run of one strategy.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Wall-clock time of the whole strategy.
    pub elapsed: Duration,
    /// The lower bound over the latencies the simulator served during the run.
    pub bound: Duration,
    /// API requests the simulator received.
    pub requests: u64,
    /// Of which answered 429.
    pub rate_limited: u64,
    /// The most requests in flight at the simulator at once.
    pub max_in_flight: u64,
    /// Messages whose refresh did not succeed.
    pub failed: usize,
}

impl Run {
    /// `elapsed / bound`: 1.0 is a perfect schedule.
    pub fn ratio_to_bound(&self) -> f64 {
        if self.bound.is_zero() {
            return f64::NAN;
        }
        self.elapsed.as_secs_f64() / self.bound.as_secs_f64()
    }
}

/// The runs of both strategies over the same messages.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// What was compared.
    pub config: EngineConfig,
    /// Our sliding window's runs.
    pub sliding: Vec<Run>,
    /// The barrier batches' runs.
    pub barrier: Vec<Run>,
}

/// Medians over a strategy's runs.
#[derive(Debug, Clone, Copy)]
pub struct Medians {
    /// Median time.
    pub elapsed: Duration,
    /// Median lower bound.
    pub bound: Duration,
    /// Median of the per-run ratios to the bound.
    pub ratio_to_bound: f64,
}

fn medians(runs: &[Run]) -> Medians {
    let elapsed: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
    let bounds: Vec<Duration> = runs.iter().map(|r| r.bound).collect();
    let ratios: Vec<f64> = runs.iter().map(Run::ratio_to_bound).collect();
    Medians {
        elapsed: median_duration(&elapsed),
        bound: median_duration(&bounds),
        ratio_to_bound: median(&ratios),
    }
}

impl Comparison {
    /// Medians of the sliding window's runs.
    pub fn sliding_medians(&self) -> Medians {
        medians(&self.sliding)
    }

    /// Medians of the barrier batches' runs.
    pub fn barrier_medians(&self) -> Medians {
        medians(&self.barrier)
    }

    /// Median barrier time over median sliding-window time.
    pub fn speedup(&self) -> f64 {
        self.barrier_medians().elapsed.as_secs_f64() / self.sliding_medians().elapsed.as_secs_f64()
    }
}

/// A simulator with one account, its messages in both the simulator and an in-memory store, and
/// the refresh use case over them.
struct Rig {
    sim: SimHandle,
    client: TwilioClient,
    store: Arc<InMemoryStore>,
    team: TeamId,
    credentials: TwilioCredentials,
    sids: Vec<MessageSid>,
}

impl Rig {
    async fn start(
        messages: usize,
        latency: LatencyConfig,
        sim_max_in_flight: Option<usize>,
        account_cap: usize,
    ) -> anyhow::Result<Self> {
        let account = AccountSid::parse("AC00000000000000000000000000000008")?;
        let token = "bench-auth-token-0000000000000008";
        let sim = SimServer::start(
            SimConfig {
                workers: 2,
                // Frozen: every message stays `sent`, so each run refreshes all of them again.
                speed: 0.0,
                latency: LatencyConfig::zero(),
                faults: FaultConfig {
                    max_in_flight: sim_max_in_flight,
                    ..FaultConfig::default()
                },
                seed: Some(SIM_SEED),
                ..SimConfig::default()
            }
            .with_account(SimAccount::new(account.clone(), token)),
        )
        .await
        .context("starting the simulator")?;
        let client = TwilioClient::new(TwilioConfig {
            base_url: sim.base_url().to_owned(),
            per_account_concurrency: account_cap,
            ..TwilioConfig::default()
        })?;

        let store = Arc::new(InMemoryStore::new());
        let team = TeamId::new(1)?;
        store
            .upsert(
                team,
                NewIntegration {
                    account_sid: account.clone(),
                    auth_token: SecretString::from(token),
                    api_key: None,
                    sender: Sender::Number(PhoneNumber::parse("+15005550006")?),
                },
            )
            .await?;
        let credentials = store
            .for_team(team)
            .await?
            .context("the integration was just stored")?
            .credentials;
        let sids = seed_messages(&sim, store.as_ref(), team, &account, messages).await?;
        // Seeding used no API route; latency applies from here on.
        sim.set_latency(latency);
        Ok(Self {
            sim,
            client,
            store,
            team,
            credentials,
            sids,
        })
    }

    /// The use case with the sliding window only: workload 1 measures the window itself.
    fn refresh(&self, window: usize, max_bulk_messages: usize) -> RefreshStatus {
        self.refresh_planned(window, max_bulk_messages, PlanMode::Window)
    }

    /// The use case whose bulk refreshes plan in `mode`.
    fn refresh_planned(
        &self,
        window: usize,
        max_bulk_messages: usize,
        mode: PlanMode,
    ) -> RefreshStatus {
        RefreshStatus::new(
            self.store.clone(),
            self.store.clone(),
            Arc::new(self.client.clone()),
            self.store.clone(),
            Arc::new(SystemClock),
            RefreshPolicy {
                max_bulk_messages,
                max_in_flight: window,
                // Every run refreshes the same messages again, at once.
                message_cooldown: Duration::ZERO,
                bulk_cooldown: Duration::ZERO,
            },
        )
        .with_sweeps(
            SweepPolicy {
                mode,
                ..SweepPolicy::default()
            },
            Arc::new(TrafficEstimates::new()),
        )
    }

    fn requester(&self, user: i64) -> anyhow::Result<Requester> {
        Ok(Requester {
            team_id: self.team,
            user_id: UserId::new(user)?,
            plan: Plan::Pro,
            role: Role::Member,
        })
    }

    /// Measures `strategy`: resets the simulator's counters first, reads them after.
    async fn measure<F, Fut>(&self, width: usize, strategy: F) -> anyhow::Result<Run>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<usize>>,
    {
        self.sim.reset_stats();
        let started = Instant::now();
        let failed = strategy().await?;
        let elapsed = started.elapsed();
        let stats = self.sim.stats();
        Ok(Run {
            elapsed,
            bound: lower_bound(&self.sim.latencies(), width),
            requests: stats.requests,
            rate_limited: stats.rate_limited,
            max_in_flight: stats.max_in_flight,
            failed,
        })
    }

    async fn sliding(&self, window: usize) -> anyhow::Result<Run> {
        let refresh = self.refresh(window, self.sids.len());
        let requester = self.requester(1)?;
        self.measure(window, || async {
            let report = refresh
                .refresh_recent(&requester, RefreshWindow::default())
                .await?;
            if report.summary.provider_calls != self.sids.len() {
                bail!(
                    "the refresh asked about {} of {} messages",
                    report.summary.provider_calls,
                    self.sids.len()
                );
            }
            Ok(report.summary.failed + report.summary.skipped)
        })
        .await
    }

    async fn barrier(&self, window: usize) -> anyhow::Result<Run> {
        self.measure(window, || async {
            let mut failed = 0;
            for batch in self.sids.chunks(window) {
                let results = join_all(
                    batch
                        .iter()
                        .map(|sid| self.client.fetch_message(&self.credentials, sid)),
                )
                .await;
                failed += results.iter().filter(|r| r.is_err()).count();
            }
            Ok(failed)
        })
        .await
    }
}

/// Places `count` outbound messages, all `sent`, in the simulator and the store under the same
/// SIDs.
async fn seed_messages(
    sim: &SimHandle,
    store: &dyn MessageRepository,
    team: TeamId,
    account: &AccountSid,
    count: usize,
) -> anyhow::Result<Vec<MessageSid>> {
    let now = chrono::Utc::now();
    let mut sids = Vec::with_capacity(count);
    for _ in 0..count {
        let seeded = sim.seed_message(SeedMessage::new(account.clone(), MessageStatus::Sent))?;
        store
            .insert(NewMessage {
                sid: seeded.sid.clone(),
                team_id: team,
                account_sid: account.clone(),
                direction: Direction::OutboundApi,
                from: Address::parse("+15005550006")?,
                to: Address::parse(&seeded.to)?,
                body: seeded.body.clone(),
                first_observation: StatusObservation {
                    state: DeliveryState::new(MessageStatus::Sent),
                    source: ObservationSource::Send,
                    observed_at: now,
                },
                created_at: now,
                reference: None,
            })
            .await?;
        sids.push(seeded.sid);
    }
    Ok(sids)
}

/// Workload 1's comparison: alternates sliding-window and barrier runs over the same messages.
///
/// # Errors
/// When the simulator cannot start or a strategy fails as a whole.
pub async fn compare(config: EngineConfig) -> anyhow::Result<Comparison> {
    let rig = Rig::start(config.messages, config.latency, None, 50).await?;
    let mut sliding = Vec::with_capacity(config.runs);
    let mut barrier = Vec::with_capacity(config.runs);
    for _ in 0..config.runs {
        sliding.push(rig.sliding(config.window).await?);
        barrier.push(rig.barrier(config.window).await?);
    }
    rig.sim.stop().await;
    Ok(Comparison {
        config,
        sliding,
        barrier,
    })
}

/// Many users of one team (one Twilio account) starting bulk refreshes at the same moment.
#[derive(Debug, Clone, Copy)]
pub struct ConcurrentConfig {
    /// Users, each starting one bulk refresh.
    pub users: usize,
    /// Messages of the team (each refresh asks about all of them).
    pub messages: usize,
    /// The simulator's latency.
    pub latency: LatencyConfig,
    /// Calls in flight per refresh.
    pub window: usize,
    /// The client's per-account cap.
    pub account_cap: usize,
    /// The simulator answers 429 above this many requests in flight.
    pub simulator_limit: usize,
}

impl ConcurrentConfig {
    /// 50 users × 100 messages at median 150 ms (quick: 20 × 20 at 20 ms), cap and limit 50.
    pub fn for_size(size: Size) -> Self {
        let (users, messages, latency) = match size {
            Size::Full => (50, 100, log_normal(150, 0.6)),
            Size::Quick => (20, 20, log_normal(20, 0.6)),
        };
        Self {
            users,
            messages,
            latency,
            window: 10,
            account_cap: 50,
            simulator_limit: 50,
        }
    }
}

/// What the concurrent refreshes did.
#[derive(Debug, Clone, Copy)]
pub struct ConcurrentRun {
    /// What ran.
    pub config: ConcurrentConfig,
    /// The measurement (the bound is for the per-account cap's width).
    pub run: Run,
}

/// Starts every user's bulk refresh at once through one shared client, and counts the 429s the
/// simulator had to give.
///
/// # Errors
/// When the simulator cannot start or a refresh fails as a whole.
pub async fn concurrent_bulk(config: ConcurrentConfig) -> anyhow::Result<ConcurrentRun> {
    let rig = Rig::start(
        config.messages,
        config.latency,
        Some(config.simulator_limit),
        config.account_cap,
    )
    .await?;
    let refresh = rig.refresh(config.window, config.messages);
    let requesters = (1..=config.users)
        .map(|user| rig.requester(i64::try_from(user).unwrap_or(i64::MAX)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let run = rig
        .measure(config.account_cap, || async {
            // One task polls all of them: the refreshes wait on I/O, not on the CPU.
            let refreshes = requesters
                .iter()
                .map(|requester| refresh.refresh_recent(requester, RefreshWindow::default()));
            let mut failed = 0;
            for finished in join_all(refreshes).await {
                let report = finished?;
                failed += report.summary.failed + report.summary.skipped;
            }
            Ok(failed)
        })
        .await?;
    rig.sim.stop().await;
    Ok(ConcurrentRun { config, run })
}

/// Workload 1's plans: a bulk refresh of the team's messages as barrier batches, the sliding
/// window, and the planner (a sweep of the account's list when it is quiet), on a quiet account
/// and on one with pages of other traffic; and the reconciler's requests.
#[derive(Debug, Clone, Copy)]
pub struct PlanConfig {
    /// The team's messages (each bulk refresh asks about all of them).
    pub messages: usize,
    /// The simulator's latency per request (list pages add 1 ms per message listed).
    pub latency: LatencyConfig,
    /// Calls in flight per refresh.
    pub window: usize,
    /// Runs of each strategy (alternating).
    pub runs: usize,
    /// Other messages the busy account sent more recently than the team's.
    pub other_traffic: usize,
    /// Unfinished messages the reconciler's run covers.
    pub reconciled: usize,
}

impl PlanConfig {
    /// 100 messages at median 150 ms, 5 runs, 10,000 others, 10,000 reconciled (quick: 30 at
    /// 20 ms, 2 runs, 2,500 others, 2,000 reconciled).
    pub fn for_size(size: Size) -> Self {
        match size {
            Size::Full => Self {
                messages: 100,
                latency: log_normal(150, 0.6),
                window: 10,
                runs: 5,
                other_traffic: 10_000,
                reconciled: 10_000,
            },
            Size::Quick => Self {
                messages: 30,
                latency: log_normal(20, 0.6),
                window: 10,
                runs: 2,
                other_traffic: 2_500,
                reconciled: 2_000,
            },
        }
    }
}

/// The median run of one strategy, with the plan it ran.
#[derive(Debug, Clone)]
pub struct PlanRow {
    /// What ran.
    pub strategy: &'static str,
    /// The plan a bulk refresh reported (`-` for the barrier batches).
    pub plan: &'static str,
    /// Median wall-clock time.
    pub elapsed: Duration,
    /// Median requests at the simulator.
    pub requests: f64,
    /// Median of each run's time over its own lower bound (the latencies it drew).
    pub ratio_to_bound: f64,
    /// Runs whose messages did not all refresh.
    pub failed: usize,
}

/// What the plans did.
#[derive(Debug, Clone)]
pub struct PlanComparison {
    /// What ran.
    pub config: PlanConfig,
    /// Quiet account: barrier, window, planner.
    pub quiet: Vec<PlanRow>,
    /// Busy account: window, planner (after one bulk refresh taught it the traffic).
    pub busy: Vec<PlanRow>,
    /// The reconciler's run over `config.reconciled` unfinished messages: list requests and time.
    pub reconcile: (u64, Duration),
}

impl Rig {
    /// One bulk refresh with `refresh`; returns its plan with the run.
    async fn planned(
        &self,
        refresh: &RefreshStatus,
        width: usize,
    ) -> anyhow::Result<(&'static str, Run)> {
        let requester = self.requester(1)?;
        let mut plan = "";
        let run = self
            .measure(width, || async {
                let report = refresh
                    .refresh_recent(&requester, RefreshWindow::default())
                    .await?;
                plan = report.plan.as_str();
                Ok(report.summary.failed + report.summary.skipped)
            })
            .await?;
        Ok((plan, run))
    }
}

fn median_row(strategy: &'static str, plan: &'static str, runs: &[Run]) -> PlanRow {
    PlanRow {
        strategy,
        plan,
        elapsed: median_duration(&runs.iter().map(|r| r.elapsed).collect::<Vec<_>>()),
        requests: median(&runs.iter().map(|r| r.requests as f64).collect::<Vec<_>>()),
        ratio_to_bound: median(&runs.iter().map(Run::ratio_to_bound).collect::<Vec<_>>()),
        failed: runs.iter().filter(|r| r.failed > 0).count(),
    }
}

/// Runs the plans' comparison.
///
/// # Errors
/// When the simulator cannot start or a refresh fails as a whole.
pub async fn compare_plans(config: PlanConfig) -> anyhow::Result<PlanComparison> {
    let rig = Rig::start(config.messages, config.latency, None, 50).await?;
    let window = rig.refresh_planned(config.window, config.messages, PlanMode::Window);
    let planner = rig.refresh_planned(config.window, config.messages, PlanMode::Auto);
    let (mut barrier_runs, mut window_runs, mut planner_runs) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut planner_plan = "";
    for _ in 0..config.runs {
        barrier_runs.push(rig.barrier(config.window).await?);
        window_runs.push(rig.planned(&window, config.window).await?.1);
        let (plan, run) = rig.planned(&planner, config.window).await?;
        planner_plan = plan;
        planner_runs.push(run);
    }
    let quiet = vec![
        median_row("barrier batches of 10", "-", &barrier_runs),
        median_row("sliding window", "window", &window_runs),
        median_row("planner (ours)", planner_plan, &planner_runs),
    ];

    // Other traffic of the account, sent after the team's messages: listed before them.
    let account = rig.credentials.account_sid.clone();
    for _ in 0..config.other_traffic {
        rig.sim
            .seed_message(SeedMessage::new(account.clone(), MessageStatus::Delivered))?;
    }
    let planner = rig.refresh_planned(config.window, config.messages, PlanMode::Auto);
    // The first bulk refresh learns the traffic (its sweep spends the page budget on others).
    rig.planned(&planner, config.window).await?;
    let (mut window_runs, mut planner_runs) = (Vec::new(), Vec::new());
    // Both run the window here, so only the draw of latencies tells them apart: more runs.
    for _ in 0..config.runs + 4 {
        window_runs.push(rig.planned(&window, config.window).await?.1);
        let (plan, run) = rig.planned(&planner, config.window).await?;
        planner_plan = plan;
        planner_runs.push(run);
    }
    let busy = vec![
        median_row("sliding window", "window", &window_runs),
        median_row(
            "planner (ours), after one refresh",
            planner_plan,
            &planner_runs,
        ),
    ];
    rig.sim.stop().await;

    let reconcile = reconcile_run(config).await?;
    Ok(PlanComparison {
        config,
        quiet,
        busy,
        reconcile,
    })
}

/// One reconciler run over `config.reconciled` unfinished messages older than its minimum age.
async fn reconcile_run(config: PlanConfig) -> anyhow::Result<(u64, Duration)> {
    let rig = Rig::start(config.reconciled, config.latency, None, 50).await?;
    let pages = u32::try_from(config.reconciled.div_ceil(1000)).unwrap_or(u32::MAX);
    let reconcile = Reconcile::new(
        rig.store.clone(),
        rig.store.clone(),
        rig.store.clone(),
        Arc::new(rig.client.clone()),
        Arc::new(SystemClock),
        ReconcilePolicy {
            min_age: Duration::ZERO,
            max_pages_per_account: pages,
            ..ReconcilePolicy::default()
        },
    );
    rig.sim.reset_stats();
    let started = Instant::now();
    let report = reconcile.run().await?;
    let took = started.elapsed();
    rig.sim.stop().await;
    Ok((report.twilio_requests, took))
}
