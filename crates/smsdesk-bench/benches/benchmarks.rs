//! `cargo bench -p smsdesk-bench`: runs workloads 1, 2, 3, 5, 6 and 7 and writes `docs/benchmarks.md`
//! (full form), or prints the report of the quick form (`SMSDESK_BENCH_QUICK=1`).
//!
//! The order keeps the memory readings clean: the service starts first and its idle memory is
//! read before anything else has grown the process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use smsdesk_bench::endpoint::{self, EndpointConfig};
use smsdesk_bench::engine::{self, ConcurrentConfig, EngineConfig, PlanConfig};
use smsdesk_bench::fleet::{self, FleetConfig};
use smsdesk_bench::memory::{self, rss_kib};
use smsdesk_bench::report::{Machine, Report, load_average};
use smsdesk_bench::service::{Backend, RunningService};
use smsdesk_bench::webhooks::{self, WebhookConfig};
use smsdesk_bench::{ONLY_ENV, POSTGRES_ENV, Size, throughput};

/// The allocator the `smsdesk` binary runs with, so the service measured here allocates as it
/// does in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Extra messages seeded into the service (a bulk refresh takes at most 100).
const SERVICE_MESSAGES: usize = 100;

/// Identical loads in a row for the memory readings.
const MEMORY_ROUNDS: usize = 3;

/// Status callbacks with a new status each, on a service of their own (it needs many messages).
async fn new_statuses(
    backend: Backend,
    size: Size,
    load_time: Duration,
) -> anyhow::Result<throughput::Row> {
    eprintln!("workload 3: new-status callbacks on {}", backend.name());
    let service = RunningService::start(backend, throughput::new_status_messages(size)).await?;
    let row = throughput::measure_new_statuses(&service, load_time).await;
    service.stop().await;
    row
}

/// `SMSDESK_BENCH_ONLY=throughput`: workload 3 alone (SQLite, and PostgreSQL when configured;
/// `SMSDESK_BENCH_TARGETS` narrows it to some targets),
/// printed as its table; for measuring one change at a time.
async fn throughput_only(size: Size) -> anyhow::Result<()> {
    let load_time = throughput::duration_for(size);
    let targets = throughput::Targets::from_env()?;
    let mut rows = vec![throughput::ceiling(load_time).await?];
    let mut backends = vec![Backend::Sqlite];
    if let Ok(url) = std::env::var(POSTGRES_ENV)
        && !url.is_empty()
    {
        backends.push(Backend::Postgres(url));
    }
    for backend in backends {
        let service = RunningService::start(backend.clone(), SERVICE_MESSAGES).await?;
        rows.extend(throughput::measure_selected(&service, load_time, &targets).await?);
        service.stop().await;
        if targets.includes("new") {
            rows.push(new_statuses(backend, size, load_time).await?);
        }
    }
    println!("{}", Report::throughput_table(&rows));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let size = Size::from_env();
    if std::env::var(ONLY_ENV).is_ok_and(|only| only == "throughput") {
        return throughput_only(size).await;
    }
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let machine = Machine::detect();
    eprintln!("smsdesk benchmarks, {} form", size.name());

    let service = RunningService::start(Backend::Sqlite, SERVICE_MESSAGES).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = rss_kib();

    eprintln!("workload 2: endpoint overhead on SQLite");
    let mut endpoints = vec![endpoint::measure(&service, EndpointConfig::for_size(size)).await?];

    eprintln!("workload 3: throughput");
    let load_time = throughput::duration_for(size);
    let mut rows = vec![throughput::ceiling(load_time).await?];
    rows.extend(throughput::measure(&service, load_time).await?);
    // Forget what the simulator kept of the load (one latency per request) before reading.
    service.simulator.reset_stats();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_load_kib = rss_kib();

    eprintln!("workload 5: repeated loads, for memory");
    let rounds = vec![
        memory::rounds(
            &service,
            "GET /api/messages (reads only)",
            throughput::list_request(&service),
            load_time,
            MEMORY_ROUNDS,
        )
        .await?,
        memory::rounds(
            &service,
            "POST refresh-status?messageSid (each adds a history row)",
            throughput::refresh_request(&service),
            load_time,
            MEMORY_ROUNDS,
        )
        .await?,
    ];

    eprintln!("workload 5: edge rate limiter");
    let limiter = memory::edge_limiter(memory::limiter_keys(size)).await;
    service.stop().await;
    rows.push(new_statuses(Backend::Sqlite, size, load_time).await?);

    let postgres_note = match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => {
            eprintln!("workload 2: endpoint overhead on PostgreSQL");
            let service = RunningService::start(Backend::Postgres(url.clone()), SERVICE_MESSAGES)
                .await
                .context("starting the service on PostgreSQL")?;
            let measured = endpoint::measure(&service, EndpointConfig::for_size(size)).await;
            eprintln!("workload 3: throughput on PostgreSQL");
            let loaded = throughput::measure(&service, load_time).await;
            service.stop().await;
            endpoints.push(measured?);
            rows.extend(loaded?);
            rows.push(new_statuses(Backend::Postgres(url), size, load_time).await?);
            None
        }
        _ => Some(format!(
            "PostgreSQL was not measured in this run: set `{POSTGRES_ENV}` to include it."
        )),
    };

    eprintln!("workload 1: refresh engine, 100 messages");
    let engine_hundred = engine::compare(EngineConfig::hundred(size)).await?;
    eprintln!("workload 1: refresh engine, 1,000 messages");
    let engine_thousand = engine::compare(EngineConfig::thousand(size)).await?;
    eprintln!("workload 1: plans (sweep or window)");
    let plans = engine::compare_plans(PlanConfig::for_size(size)).await?;
    eprintln!("workload 1: concurrent bulk refreshes");
    let concurrent = engine::concurrent_bulk(ConcurrentConfig::for_size(size)).await?;
    let fleet = match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => {
            eprintln!("workload 6: a fleet of three replicas");
            Ok(fleet::fleet_bulks(FleetConfig::for_size(size), &url).await?)
        }
        _ => Err(format!(
            "The fleet was not measured in this run: set `{POSTGRES_ENV}` to include it."
        )),
    };

    eprintln!("workload 7: delivery webhooks on SQLite");
    let mut webhook_runs =
        vec![webhooks::measure(Backend::Sqlite, WebhookConfig::for_size(size)).await?];
    if let Ok(url) = std::env::var(POSTGRES_ENV)
        && !url.is_empty()
    {
        eprintln!("workload 7: delivery webhooks on PostgreSQL");
        webhook_runs
            .push(webhooks::measure(Backend::Postgres(url), WebhookConfig::for_size(size)).await?);
    }

    let report = Report {
        size,
        machine,
        started,
        total_time: clock.elapsed(),
        engine_hundred,
        engine_thousand,
        concurrent,
        plans,
        endpoint: endpoints,
        postgres_note,
        throughput: rows,
        throughput_secs: load_time.as_secs(),
        idle_kib,
        after_load_kib,
        memory_rounds: rounds,
        load_average_at_end: load_average(),
        limiter,
        fleet,
        webhooks: webhook_runs,
    };
    let markdown = report.to_markdown();
    println!("{markdown}");
    if size == Size::Full {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
        std::fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
