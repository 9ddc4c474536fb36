//! The quick form of the benchmarks, run by `cargo test` in CI so they never rot. Timing on a
//! shared CI machine is noisy, so these tests assert only relations that hold under load, never
//! a wall-clock threshold.

use std::sync::Arc;
use std::time::Duration;

use smsdesk_bench::Size;
use smsdesk_bench::endpoint::{self, EndpointConfig};
use smsdesk_bench::engine::{self, ConcurrentConfig, EngineConfig};
use smsdesk_bench::service::{Backend, RunningService};
use smsdesk_bench::throughput::{BareServer, drive};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sliding_window_is_no_slower_than_barrier_batches_and_keeps_its_width() {
    let config = EngineConfig::hundred(Size::Quick);
    let comparison = engine::compare(config).await.expect("the comparison runs");

    for run in comparison.sliding.iter().chain(&comparison.barrier) {
        assert_eq!(
            run.requests, config.messages as u64,
            "each strategy asks about every message exactly once"
        );
        assert_eq!(run.failed, 0, "the simulator answers every fetch");
        assert!(
            run.max_in_flight <= config.window as u64,
            "never more than {} calls in flight, saw {}",
            config.window,
            run.max_in_flight
        );
        assert!(
            run.elapsed >= run.bound,
            "no schedule beats the lower bound ({:?} < {:?})",
            run.elapsed,
            run.bound
        );
    }
    let (sliding, barrier) = (comparison.sliding_medians(), comparison.barrier_medians());
    assert!(
        sliding.elapsed <= barrier.elapsed,
        "a slow call holds up only its own slot in a sliding window, a whole batch with barriers \
         (sliding {:?}, barrier {:?})",
        sliding.elapsed,
        barrier.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bulk_refreshes_share_the_account_cap_and_draw_no_429() {
    let config = ConcurrentConfig::for_size(Size::Quick);
    assert!(
        config.users * config.window > config.simulator_limit,
        "the refreshes together want more than the simulator allows, or the test proves nothing"
    );
    let result = engine::concurrent_bulk(config)
        .await
        .expect("the refreshes run");
    assert_eq!(
        result.run.rate_limited, 0,
        "the client's per-account cap keeps every request under the simulator's limit"
    );
    assert!(
        result.run.max_in_flight <= config.account_cap as u64,
        "at most the cap in flight, saw {}",
        result.run.max_in_flight
    );
    assert_eq!(
        result.run.requests,
        (config.users * config.messages) as u64,
        "every user's refresh asked about every message once"
    );
    assert_eq!(result.run.failed, 0, "no refresh outcome failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_answers_every_benchmark_refresh_with_200() {
    let service = RunningService::start(Backend::Sqlite, 20)
        .await
        .expect("the service starts on SQLite");
    let measured = endpoint::measure(&service, EndpointConfig::for_size(Size::Quick)).await;
    service.stop().await;
    let measured = measured.expect("every refresh answers 200 with the cool-downs off");
    assert_eq!(
        measured.single.provider_calls, 1,
        "a single refresh is one Twilio call"
    );
    assert!(
        measured.bulk.provider_calls >= 20,
        "a bulk refresh asks about every seeded message, made {} calls",
        measured.bulk.provider_calls
    );
    assert!(
        measured.single.p50 <= measured.single.p99,
        "percentiles are ordered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_counts_answers_from_the_bare_handler() {
    let bare = BareServer::start().expect("the bare server starts");
    let url = format!("http://{}/bare", bare.addr);
    let load = drive(
        4,
        Duration::from_millis(200),
        Arc::new(move |client, _| client.get(&url)),
    )
    .await
    .expect("the load runs");
    bare.stop().await;
    assert!(load.ok > 0, "some requests were answered");
    assert_eq!(
        load.errors, 0,
        "the bare handler answers every request with 200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_says_what_failed() {
    let bare = BareServer::start().expect("the bare server starts");
    let url = format!("http://{}/no-such-route", bare.addr);
    let load = drive(
        2,
        Duration::from_millis(100),
        Arc::new(move |client, _| client.get(&url)),
    )
    .await
    .expect("the load runs");
    bare.stop().await;
    assert_eq!(load.ok, 0, "a missing route never answers 2xx");
    assert!(load.errors > 0, "every answer counts as an error");
    assert_eq!(
        load.error_kinds.len(),
        1,
        "one kind of failure: {:?}",
        load.error_kinds
    );
    assert!(
        load.error_kinds[0].0.starts_with("HTTP 404"),
        "the status is named: {:?}",
        load.error_kinds
    );
    assert_eq!(
        load.error_kinds[0].1, load.errors,
        "every failure of the same kind is counted under it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_split_the_account_cap_and_draw_no_429() {
    // The fleet needs PostgreSQL: the bench's own server, or the suites' one.
    let Some(url) = [smsdesk_bench::POSTGRES_ENV, "SMSDESK_TEST_POSTGRES_URL"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|url| !url.is_empty()))
    else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED three_replicas_split_the_account_cap: set SMSDESK_TEST_POSTGRES_URL"
        );
        return;
    };
    let config = smsdesk_bench::fleet::FleetConfig::for_size(Size::Quick);
    let fleet = smsdesk_bench::fleet::fleet_bulks(config, &url)
        .await
        .expect("the fleet runs");
    assert_eq!(
        fleet.run.rate_limited, 0,
        "the replicas' shares keep under the cap"
    );
    assert!(fleet.run.max_in_flight <= config.account_cap as u64);
    assert_eq!(fleet.refused, 0, "every bulk was answered");
    assert_eq!(fleet.run.failed, 0, "every outcome succeeded");
    assert_eq!(
        fleet.run.requests,
        (config.users * config.messages) as u64,
        "every user's refresh asked about every message once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_account_is_swept_in_one_request_and_a_busy_one_gets_the_window() {
    let config = engine::PlanConfig::for_size(Size::Quick);
    let plans = engine::compare_plans(config).await.expect("the plans run");
    let row = |rows: &[engine::PlanRow], name: &str| {
        rows.iter()
            .find(|row| row.strategy.starts_with(name))
            .cloned()
            .expect("a row")
    };
    let quiet = row(&plans.quiet, "planner");
    assert_eq!((quiet.plan, quiet.requests), ("sweep", 1.0), "{quiet:?}");
    assert_eq!(quiet.failed, 0);
    assert_eq!(
        row(&plans.quiet, "sliding").requests,
        config.messages as f64,
        "the window fetches each message"
    );
    let busy = row(&plans.busy, "planner");
    assert_eq!(busy.plan, "window", "{busy:?}");
    assert_eq!(busy.requests, config.messages as f64);
    assert_eq!(
        plans.reconcile.0,
        config.reconciled.div_ceil(1000) as u64,
        "the reconciler reads pages of 1,000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_change_reaches_the_webhook_receiver() {
    let config = smsdesk_bench::webhooks::WebhookConfig::for_size(Size::Quick);
    let run = smsdesk_bench::webhooks::measure(Backend::Sqlite, config)
        .await
        .expect("the workload runs");
    assert_eq!(run.refused, 0, "every callback is taken");
    assert_eq!(run.committed, config.changes());
    assert_eq!(
        run.delivered, run.committed,
        "each committed change is delivered (at least once)"
    );
    assert!(run.requests >= run.delivered);
    assert_eq!(run.latencies.len(), run.delivered);
}
