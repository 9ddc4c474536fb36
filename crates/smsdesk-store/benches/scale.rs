//! The "Scale" benchmark of issue 8 (workload 4): with 1,000,000 messages over 1,000 teams,
//! how long do the bulk candidate query (`refresh_candidates`) and a page of the message list
//! (`list`, 50 rows, with and without a status filter) take, p50 and p99 over queries on random
//! teams, on SQLite (a file) and PostgreSQL, and which composite index serves each plan, with or
//! without a sort?
//! Target: p99 under 5 ms.
//!
//! Run the full form (loading takes minutes):
//!
//! ```text
//! SMSDESK_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p smsdesk-store --bench scale
//! ```
//!
//! and the quick form, for CI (20,000 messages over 50 teams, 50 queries, seconds):
//! `SMSDESK_BENCH_QUICK=1 cargo bench -p smsdesk-store --bench scale`. Run by `cargo test
//! --all-targets` (without `--bench`), it takes the quick form too.
//!
//! Settings (environment): `SMSDESK_BENCH_MESSAGES`, `SMSDESK_BENCH_TEAMS`,
//! `SMSDESK_BENCH_QUERIES` override the sizes; `SMSDESK_BENCH_POSTGRES_URL` is a server on which
//! the database `smsdesk_bench_scale` is created (and dropped afterwards); without it PostgreSQL
//! is skipped, loudly. The table goes to stdout and to `target/bench-scale.md`.
//!
//! The data: created times spread uniformly over the 30 days before a fixed "now"; 78% outbound
//! (mostly `outbound-api`), 22% inbound; about 72% of messages in a terminal status. The data
//! is generated from a fixed seed, so every run loads the same rows.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, Database};
use smsdesk_domain::ports::{MessageQuery, MessageRepository};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, Plan, StatusObservation, TeamId, Timestamp,
};
use smsdesk_store::{QueryPlan, SecretCipher, Store, StoreOptions};

const POSTGRES_ENV: &str = "SMSDESK_BENCH_POSTGRES_URL";
const POSTGRES_DATABASE: &str = "smsdesk_bench_scale";
/// Messages per bulk-load transaction.
const LOAD_BATCH: usize = 50_000;
/// The bulk refresh's default window and cap (see the domain's `RefreshWindow` and policy).
const CANDIDATE_WINDOW_HOURS: i64 = 24;
const CANDIDATE_LIMIT: usize = 100;
const PAGE_SIZE: usize = 50;
/// The status of the filtered list: what someone hunting delivery problems looks for.
const FILTER_STATUS: MessageStatus = MessageStatus::Failed;
const DATA_DAYS: i64 = 30;
const TARGET_P99: Duration = Duration::from_millis(5);

struct Settings {
    messages: usize,
    teams: usize,
    queries: usize,
    warmup: usize,
    postgres_url: Option<String>,
    /// Whether to write `target/bench-scale.md` (not from a `cargo test` smoke run, which would
    /// overwrite a real run's table).
    write_report: bool,
}

impl Settings {
    fn from_env() -> Self {
        // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
        // and then it should be a smoke test, not minutes of loading.
        let under_cargo_test = !std::env::args().any(|arg| arg == "--bench");
        let quick = under_cargo_test
            || std::env::var("SMSDESK_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let (messages, teams, queries) = if quick {
            (20_000, 50, 50)
        } else {
            (1_000_000, 1_000, 500)
        };
        let queries = env_number("SMSDESK_BENCH_QUERIES", queries);
        Self {
            messages: env_number("SMSDESK_BENCH_MESSAGES", messages),
            teams: env_number("SMSDESK_BENCH_TEAMS", teams).max(1),
            queries: queries.max(1),
            warmup: (queries / 10).max(5),
            postgres_url: std::env::var(POSTGRES_ENV)
                .ok()
                .filter(|url| !url.is_empty()),
            write_report: !under_cargo_test,
        }
    }
}

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(raw) => raw
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {raw:?}")),
        Err(_) => default,
    }
}

/// The fixed "now" of the data set: 2026-11-01T00:00:00Z.
fn now() -> Timestamp {
    chrono::Utc
        .timestamp_opt(1_793_491_200, 0)
        .single()
        .expect("a valid time")
}

// ---------------------------------------------------------------------------------------------
// Data

fn pick<T: Clone>(rng: &mut StdRng, weighted: &[(u32, T)]) -> T {
    let total: u32 = weighted.iter().map(|(weight, _)| weight).sum();
    let mut roll = rng.random_range(0..total);
    for (weight, value) in weighted {
        if roll < *weight {
            return value.clone();
        }
        roll -= weight;
    }
    unreachable!("the roll is below the total weight")
}

fn delivery(rng: &mut StdRng, direction: Direction) -> DeliveryState {
    use MessageStatus as S;
    let status = if direction == Direction::Inbound {
        pick(rng, &[(95, S::Received), (5, S::Receiving)])
    } else {
        pick(
            rng,
            &[
                // Terminal, 66% of outbound.
                (53, S::Delivered),
                (5, S::Undelivered),
                (7, S::Failed),
                (1, S::Canceled),
                // Still moving.
                (17, S::Sent),
                (7, S::Queued),
                (5, S::Sending),
                (3, S::Accepted),
                (2, S::Scheduled),
            ],
        )
    };
    let mut state = DeliveryState::new(status.clone());
    if matches!(status, S::Failed | S::Undelivered) {
        state.error_code = Some(30_003);
        state.error_message = Some("Unreachable destination handset".into());
    }
    if matches!(
        status,
        S::Delivered | S::Undelivered | S::Sent | S::Received
    ) {
        state.num_segments = Some(rng.random_range(1..=3));
        state.price = Some("-0.00790".into());
        state.price_unit = Some("USD".into());
    }
    state
}

fn generate(rng: &mut StdRng, n: usize, teams: &[TeamId]) -> NewMessage {
    let direction = pick(
        rng,
        &[
            (70, Direction::OutboundApi),
            (5, Direction::OutboundReply),
            (3, Direction::OutboundCall),
            (22, Direction::Inbound),
        ],
    );
    let age_micros = rng.random_range(0..DATA_DAYS * 86_400 * 1_000_000);
    let created_at = now() - chrono::Duration::microseconds(age_micros);
    let updated_at = created_at + chrono::Duration::milliseconds(rng.random_range(0..120_000));
    let team = teams[n % teams.len()];
    let (ours, theirs) = (
        format!("+1415555{:04}", team.get() % 10_000),
        format!("+1646555{:04}", rng.random_range(0..10_000)),
    );
    let (from, to) = if direction == Direction::Inbound {
        (theirs, ours)
    } else {
        (ours, theirs)
    };
    NewMessage {
        sid: MessageSid::parse(&format!("SM{n:032x}")).expect("a valid SID"),
        team_id: team,
        account_sid: AccountSid::parse(&format!("AC{:032x}", team.get())).expect("valid"),
        direction,
        from: Address::parse(&from).expect("a valid number"),
        to: Address::parse(&to).expect("a valid number"),
        body: format!("Your appointment #{n} is confirmed. Reply STOP to opt out."),
        first_observation: StatusObservation {
            state: delivery(rng, direction),
            source: ObservationSource::Send,
            observed_at: updated_at,
        },
        created_at,
        reference: None,
    }
}

async fn load(store: &Store, settings: &Settings) -> Vec<TeamId> {
    let started = Instant::now();
    let mut teams = Vec::with_capacity(settings.teams);
    for n in 0..settings.teams {
        let team = store
            .create_team(&format!("Team {n}"), Plan::Pro)
            .await
            .expect("a team is created");
        teams.push(team.id);
    }
    let mut rng = StdRng::seed_from_u64(8);
    let mut next = 0;
    while next < settings.messages {
        let end = (next + LOAD_BATCH).min(settings.messages);
        let batch: Vec<NewMessage> = (next..end).map(|n| generate(&mut rng, n, &teams)).collect();
        store
            .bulk_load_for_benchmarks(&batch)
            .await
            .expect("a batch loads");
        next = end;
        eprintln!(
            "  loaded {next}/{} messages ({:.0} s)",
            settings.messages,
            started.elapsed().as_secs_f64()
        );
    }
    store
        .refresh_statistics_for_benchmarks()
        .await
        .expect("statistics refresh");
    eprintln!(
        "  loaded and analysed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    teams
}

// ---------------------------------------------------------------------------------------------
// Measuring

#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    Candidates,
    ListPage,
    ListPageByStatus,
}

impl Probe {
    const ALL: [Self; 3] = [Self::Candidates, Self::ListPage, Self::ListPageByStatus];

    fn label(self) -> String {
        match self {
            Self::Candidates => {
                format!("refresh_candidates ({CANDIDATE_WINDOW_HOURS} h, limit {CANDIDATE_LIMIT})")
            }
            Self::ListPage => format!("list (limit {PAGE_SIZE})"),
            Self::ListPageByStatus => format!(
                "list (limit {PAGE_SIZE}, status={})",
                FILTER_STATUS.as_str()
            ),
        }
    }

    fn list_query(self) -> MessageQuery {
        MessageQuery {
            statuses: (self == Self::ListPageByStatus)
                .then_some(FILTER_STATUS)
                .into_iter()
                .collect(),
            limit: PAGE_SIZE,
            ..MessageQuery::default()
        }
    }

    /// Runs the query once; how many rows it returned.
    async fn run(self, store: &Store, team: TeamId) -> usize {
        match self {
            Self::Candidates => store
                .refresh_candidates(team, candidates_since(), CANDIDATE_LIMIT)
                .await
                .expect("candidates query runs")
                .len(),
            Self::ListPage | Self::ListPageByStatus => store
                .list(team, self.list_query())
                .await
                .expect("list query runs")
                .messages
                .len(),
        }
    }

    async fn plan(self, store: &Store, team: TeamId) -> QueryPlan {
        match self {
            Self::Candidates => store
                .explain_refresh_candidates(team, candidates_since(), CANDIDATE_LIMIT)
                .await
                .expect("explainable"),
            Self::ListPage | Self::ListPageByStatus => store
                .explain_list(team, &self.list_query())
                .await
                .expect("explainable"),
        }
    }
}

fn candidates_since() -> Timestamp {
    now() - chrono::Duration::hours(CANDIDATE_WINDOW_HOURS)
}

struct Measured {
    backend: &'static str,
    /// Measured after dropping the list index: the schema before migration 10.
    composite_only: bool,
    probe: Probe,
    mean_rows: f64,
    p50: Duration,
    p99: Duration,
    plan: QueryPlan,
}

impl Measured {
    /// Which indexes were in place.
    fn schema(&self) -> &'static str {
        if self.composite_only {
            "composite only"
        } else {
            "composite + list"
        }
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    // Nearest rank: the smallest sample with at least `fraction` of the samples at or below it.
    let samples = sorted.len() as f64;
    let rank = (fraction * samples).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Measures with every index, then again with only the composite index (the list index
/// dropped), so the report can give the list index's effect as a ratio from one run.
async fn measure_with_and_without_list_index(
    store: &Store,
    backend: &'static str,
    teams: &[TeamId],
    settings: &Settings,
) -> Vec<Measured> {
    let mut results = measure(store, backend, false, teams, settings).await;
    store
        .drop_index_for_benchmarks(smsdesk_migrations::SMS_MESSAGE_LIST_INDEX)
        .await
        .expect("the list index drops");
    eprintln!("  list index dropped; measuring again");
    results.extend(measure(store, backend, true, teams, settings).await);
    results
}

async fn measure(
    store: &Store,
    backend: &'static str,
    composite_only: bool,
    teams: &[TeamId],
    settings: &Settings,
) -> Vec<Measured> {
    let mut rng = StdRng::seed_from_u64(4);
    for _ in 0..settings.warmup {
        let team = teams[rng.random_range(0..teams.len())];
        for probe in Probe::ALL {
            probe.run(store, team).await;
        }
    }
    let mut samples: [Vec<Duration>; 3] =
        std::array::from_fn(|_| Vec::with_capacity(settings.queries));
    let mut rows = [0_usize; 3];
    for _ in 0..settings.queries {
        let team = teams[rng.random_range(0..teams.len())];
        // Interleaved, so that every query sees the same cache and background conditions.
        for (index, probe) in Probe::ALL.into_iter().enumerate() {
            let started = Instant::now();
            rows[index] += probe.run(store, team).await;
            samples[index].push(started.elapsed());
        }
    }
    let plan_team = teams[rng.random_range(0..teams.len())];
    let mut results = Vec::new();
    for (index, probe) in Probe::ALL.into_iter().enumerate() {
        let sorted = &mut samples[index];
        sorted.sort();
        let plan = probe.plan(store, plan_team).await;
        results.push(Measured {
            backend,
            composite_only,
            probe,
            mean_rows: rows[index] as f64 / settings.queries as f64,
            p50: percentile(sorted, 0.50),
            p99: percentile(sorted, 0.99),
            plan,
        });
    }
    results
}

// ---------------------------------------------------------------------------------------------
// Backends

fn options() -> StoreOptions {
    let key = SecretCipher::generate_key();
    StoreOptions::new(SecretCipher::from_base64_keys::<&str>(&key, &[]).expect("a fresh key"))
}

fn sqlite_files(path: &std::path::Path) -> [PathBuf; 3] {
    ["", "-wal", "-shm"].map(|suffix| {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        PathBuf::from(file)
    })
}

async fn on_sqlite(settings: &Settings) -> Vec<Measured> {
    let path = std::env::temp_dir().join(format!("smsdesk_bench_scale_{}.db", std::process::id()));
    for file in sqlite_files(&path) {
        std::fs::remove_file(file).ok();
    }
    eprintln!("SQLite: {}", path.display());
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()), options())
        .await
        .expect("the SQLite file opens");
    store.migrate().await.expect("migrations apply");
    let teams = load(&store, settings).await;
    let results =
        measure_with_and_without_list_index(&store, "SQLite (file)", &teams, settings).await;
    store.close().await.ok();
    for file in sqlite_files(&path) {
        std::fs::remove_file(file).ok();
    }
    results
}

async fn on_postgres(admin_url: &str, settings: &Settings) -> Vec<Measured> {
    let admin = Database::connect(admin_url)
        .await
        .unwrap_or_else(|err| panic!("{POSTGRES_ENV} is not reachable: {err}"));
    let recreate = [
        format!("DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {POSTGRES_DATABASE}"),
    ];
    for sql in recreate {
        admin
            .execute_unprepared(&sql)
            .await
            .expect("the benchmark database is recreated");
    }
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    eprintln!("PostgreSQL: database {POSTGRES_DATABASE}");
    let store = Store::connect(&format!("{server}/{POSTGRES_DATABASE}{query}"), options())
        .await
        .expect("the benchmark database opens");
    store.migrate().await.expect("migrations apply");
    let teams = load(&store, settings).await;
    let results = measure_with_and_without_list_index(&store, "PostgreSQL", &teams, settings).await;
    store.close().await.ok();
    admin
        .execute_unprepared(&format!(
            "DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)"
        ))
        .await
        .ok();
    admin.close().await.ok();
    results
}

// ---------------------------------------------------------------------------------------------
// Report

/// Which of the two composite indexes the plan reads.
fn index_in(plan: &QueryPlan) -> &'static str {
    let composite = plan.uses_index(smsdesk_migrations::SMS_MESSAGE_COMPOSITE_INDEX);
    let list = plan.uses_index(smsdesk_migrations::SMS_MESSAGE_LIST_INDEX);
    match (composite, list) {
        (true, true) => "both",
        (true, false) => "composite",
        (false, true) => "list",
        (false, false) => "NONE",
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1_000.0)
}

fn report(settings: &Settings, results: &[Measured], postgres_skipped: bool) -> String {
    let mut out = format!(
        "### Scale: {} messages over {} teams, {} queries per row on random teams \
         ({} warm-up rounds first)\n\n",
        settings.messages, settings.teams, settings.queries, settings.warmup
    );
    out.push_str(
        "| Backend | Indexes | Query | Rows returned (mean) | p50 ms | p99 ms | Index in the plan | Sorts |\n\
         |---|---|---|---:|---:|---:|---|---|\n",
    );
    for result in results {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} |\n",
            result.backend,
            result.schema(),
            result.probe.label(),
            result.mean_rows,
            millis(result.p50),
            millis(result.p99),
            index_in(&result.plan),
            if result.plan.sorts() { "yes" } else { "no" },
        ));
    }
    if postgres_skipped {
        out.push_str(&format!(
            "\nPostgreSQL: SKIPPED ({POSTGRES_ENV} not set).\n"
        ));
    }
    out.push_str(
        "\nThe list index's effect (same data, same run; composite only ÷ composite + list):\n\n",
    );
    for with in results.iter().filter(|result| !result.composite_only) {
        let without = results.iter().find(|other| {
            other.composite_only && other.backend == with.backend && other.probe == with.probe
        });
        if let Some(without) = without {
            out.push_str(&format!(
                "- {} {}: p50 {:.1}×, p99 {:.1}×\n",
                with.backend,
                with.probe.label(),
                without.p50.as_secs_f64() / with.p50.as_secs_f64(),
                without.p99.as_secs_f64() / with.p99.as_secs_f64(),
            ));
        }
    }
    let missed: Vec<String> = results
        .iter()
        .filter(|result| !result.composite_only && result.p99 >= TARGET_P99)
        .map(|result| format!("{} {}", result.backend, result.probe.label()))
        .collect();
    out.push_str(&format!(
        "\nTarget p99 < {} ms: {}\n",
        TARGET_P99.as_millis(),
        if missed.is_empty() {
            "met by every query".to_owned()
        } else {
            format!("MISSED by {}", missed.join(", "))
        }
    ));
    out.push_str(&format!(
        "\nIndexes: composite = `{}` `(team_id, direction, status, created_at)`, \
         list = `{}` `(team_id, created_at, sid, direction, status)`. Plans (one random team):\n",
        smsdesk_migrations::SMS_MESSAGE_COMPOSITE_INDEX,
        smsdesk_migrations::SMS_MESSAGE_LIST_INDEX
    ));
    for result in results {
        out.push_str(&format!(
            "\n{}, {} — {}:\n\n```text\n{}\n```\n",
            result.backend,
            result.schema(),
            result.probe.label(),
            result.plan
        ));
    }
    out
}

fn report_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    std::fs::canonicalize(&target)
        .unwrap_or(target)
        .join("bench-scale.md")
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let (results, postgres_skipped) = runtime.block_on(async {
        let mut results = on_sqlite(&settings).await;
        let skipped = match &settings.postgres_url {
            Some(url) => {
                results.extend(on_postgres(url, &settings).await);
                false
            }
            None => {
                eprintln!("!!! PostgreSQL SKIPPED: set {POSTGRES_ENV} to benchmark it too !!!");
                true
            }
        };
        (results, skipped)
    });
    let table = report(&settings, &results, postgres_skipped);
    println!("{table}");
    if settings.write_report {
        let path = report_path();
        match std::fs::write(&path, &table) {
            Ok(()) => eprintln!("written to {}", path.display()),
            Err(err) => eprintln!("could not write {}: {err}", path.display()),
        }
    }
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
}
