//! A fleet on one PostgreSQL database: replicas share one Twilio account's cap between them, so
//! together they never draw a 429 from a Twilio that refuses above its cap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use smsdesk_domain::MessageStatus;
use smsdesk_test_support::app::{concurrent_bulks, fresh_postgres, spawn_replica};
use smsdesk_twilio_sim::{FaultConfig, LatencyConfig, SimConfig, SimServer};

/// A simulator the replicas share, frozen (messages move only when a test moves them).
async fn shared_sim(config: SimConfig) -> Arc<smsdesk_twilio_sim::SimHandle> {
    Arc::new(
        SimServer::start(SimConfig {
            speed: 0.0,
            ..config
        })
        .await
        .expect("the simulator starts"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_split_the_account_cap_and_twenty_bulks_draw_no_429() {
    let Some(database) = fresh_postgres("two_replicas_split_the_account_cap").await else {
        return;
    };
    // Twilio's per-account concurrency limit, as the simulator enforces it.
    const CAP: usize = 50;
    let sim = shared_sim(SimConfig {
        latency: LatencyConfig::fixed(Duration::from_millis(20)),
        faults: FaultConfig {
            max_in_flight: Some(CAP),
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let key = smsdesk_store::SecretCipher::generate_key();
    let replica = |settings: &mut smsdesk::Settings| {
        settings.database_url = Some(database.url.clone());
        settings.encryption_key = Some(key.clone());
        settings.twilio_account_concurrency = CAP;
        settings.bulk_cooldown_secs = 0;
        settings.message_cooldown_secs = 0;
        // The cap is about single fetches: 2,000 of them.
        settings.refresh_plan = smsdesk::RefreshPlan::Window;
    };
    let first = spawn_replica(sim.clone(), replica).await;
    let second = spawn_replica(sim.clone(), replica).await;

    // The first replica learns of the second at its next heartbeat (every 5 s).
    let since = Instant::now();
    while first.metric("smsdesk_fleet_replicas").await != Some(2.0) {
        assert!(
            since.elapsed() < Duration::from_secs(12),
            "the first replica never saw the second"
        );
        // A polling interval, not a wait for the outcome.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for app in [&first, &second] {
        assert_eq!(
            app.metric("smsdesk_twilio_account_share").await,
            Some((CAP / 2) as f64),
            "each replica takes half the cap"
        );
    }

    let team = first.demo_team().await;
    let statuses = [MessageStatus::Sent, MessageStatus::Delivered];
    for n in 0..100 {
        first
            .message_without_callbacks(team, statuses[n % statuses.len()].clone())
            .await;
    }
    let mut fetched = 0;
    for (status, body) in concurrent_bulks(&[&first, &second], &first.api_key, 20).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["summary"]["failed"], 0, "no failed outcome: {body}");
        fetched += body["summary"]["twilioCalls"].as_u64().unwrap_or(0);
    }
    let stats = sim.stats();
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "two replicas, 20 bulks: {fetched} fetches, {} answered 429, at most {} in flight",
        stats.rate_limited,
        stats.max_in_flight
    );
    assert_eq!(fetched, 2000, "every bulk asked about every message");
    assert_eq!(stats.rate_limited, 0, "the fleet never went over the cap");
    assert!(stats.max_in_flight <= CAP as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconciler_runs_in_one_replica_and_brings_lost_callbacks_home() {
    let Some(database) = fresh_postgres("the_reconciler_runs_in_one_replica").await else {
        return;
    };
    let sim = shared_sim(SimConfig::default()).await;
    let key = smsdesk_store::SecretCipher::generate_key();
    let replica = |settings: &mut smsdesk::Settings| {
        settings.database_url = Some(database.url.clone());
        settings.encryption_key = Some(key.clone());
        // Every 2 s, so its lease (3 s) outlives a tick delayed by a busy machine.
        settings.reconciler_interval_secs = 2;
        settings.reconciler_min_age_secs = 0;
    };
    let first = spawn_replica(sim.clone(), replica).await;
    let second = spawn_replica(sim.clone(), replica).await;
    let team = first.demo_team().await;
    // Stored as queued; Twilio has them delivered and never called back.
    let mut sids = Vec::new();
    for _ in 0..20 {
        sids.push(
            first
                .message_without_callbacks(team, MessageStatus::Delivered)
                .await,
        );
    }
    let since = Instant::now();
    for sid in &sids {
        while smsdesk_test_support::app::stored_status(&first, sid).await != "delivered" {
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "the reconciler never brought {sid} home"
            );
            // A polling interval, not a wait for the outcome.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let runs = [
        first
            .metric("smsdesk_reconciler_runs_total")
            .await
            .unwrap_or(0.0),
        second
            .metric("smsdesk_reconciler_runs_total")
            .await
            .unwrap_or(0.0),
    ];
    let moved = first
        .metric("smsdesk_reconciler_messages_moved_total")
        .await
        .unwrap_or(0.0)
        + second
            .metric("smsdesk_reconciler_messages_moved_total")
            .await
            .unwrap_or(0.0);
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "reconciler: runs per replica {runs:?}, {moved} messages moved, {} list pages at Twilio, \
         {} fetches, {:?} after the messages were stored",
        sim.stats().lists,
        sim.stats().fetches,
        since.elapsed()
    );
    assert!(
        runs.iter().filter(|runs| **runs > 0.0).count() == 1,
        "one replica holds the reconciler's lease: {runs:?}"
    );
    assert_eq!(moved, 20.0, "each message moved once");
    assert_eq!(sim.stats().fetches, 0, "learned from the list alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_sends_once_across_two_replicas() {
    let Some(database) = fresh_postgres("one_idempotency_key_sends_once").await else {
        return;
    };
    let sim = shared_sim(SimConfig {
        latency: LatencyConfig::fixed(Duration::from_millis(200)),
        ..SimConfig::default()
    })
    .await;
    let key = smsdesk_store::SecretCipher::generate_key();
    let replica = |settings: &mut smsdesk::Settings| {
        settings.database_url = Some(database.url.clone());
        settings.encryption_key = Some(key.clone());
    };
    let first = spawn_replica(sim.clone(), replica).await;
    let second = spawn_replica(sim.clone(), replica).await;
    let sends: Vec<_> = (0..10)
        .map(|n| {
            let app = if n % 2 == 0 { &first } else { &second };
            let request = app
                .http
                .post(app.url("/api/integrations/twilio/sms/send"))
                .bearer_auth(&first.api_key)
                .header("Idempotency-Key", "welcome-4711")
                .json(&serde_json::json!({"to": "+14155550100", "body": "Welcome!"}));
            tokio::spawn(async move {
                let answer = request.send().await.expect("answered");
                let status = answer.status();
                let body: serde_json::Value = answer.json().await.expect("JSON");
                (status, body)
            })
        })
        .collect();
    let answers: Vec<(StatusCode, serde_json::Value)> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|answer| answer.expect("the task ends"))
        .collect();
    let created: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::CREATED
                || (*status == StatusCode::CONFLICT
                    && body["error"]["code"] == "idempotency_key_in_progress"),
            "{status}: {body}"
        );
    }
    assert!(!created.is_empty(), "the first send answered 201");
    assert!(
        created.iter().all(|body| body["sid"] == created[0]["sid"]),
        "every 201 is the same message"
    );
    assert_eq!(sim.stats().creates, 1, "one SMS reached Twilio");
    // After the first answered, a retry on either replica replays it.
    for app in [&first, &second] {
        let replay = app
            .http
            .post(app.url("/api/integrations/twilio/sms/send"))
            .bearer_auth(&first.api_key)
            .header("Idempotency-Key", "welcome-4711")
            .json(&serde_json::json!({"to": "+14155550100", "body": "Welcome!"}))
            .send()
            .await
            .expect("answered");
        assert_eq!(replay.status(), StatusCode::CREATED);
        assert_eq!(
            replay
                .headers()
                .get("idempotent-replayed")
                .and_then(|v| v.to_str().ok()),
            Some("true")
        );
    }
    assert_eq!(sim.stats().creates, 1);
}

/// The list shares identical concurrent reads (`smsdesk_web::coalesce`) but never serves a read
/// older than the request: while one replica is flooded with the same list request, a message
/// sent through the other replica is on the very next page asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_list_under_a_flood_of_identical_requests_shows_what_another_replica_just_sent() {
    let Some(database) = fresh_postgres("a_shared_list_read_is_never_stale").await else {
        return;
    };
    let sim = shared_sim(SimConfig::default()).await;
    let key = smsdesk_store::SecretCipher::generate_key();
    let replica = |settings: &mut smsdesk::Settings| {
        settings.database_url = Some(database.url.clone());
        settings.encryption_key = Some(key.clone());
    };
    let sender = spawn_replica(sim.clone(), replica).await;
    let reader = Arc::new(spawn_replica(sim.clone(), replica).await);
    // The demo team's key, as the sender created it; the replicas share the database.
    let list_url = reader.url("/api/messages?limit=50");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..16)
        .map(|_| {
            let (reader, stop, url) = (reader.clone(), stop.clone(), list_url.clone());
            let api_key = sender.api_key.clone();
            tokio::spawn(async move {
                let mut answered = 0_u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let answer = reader
                        .http
                        .get(&url)
                        .bearer_auth(&api_key)
                        .send()
                        .await
                        .expect("answered");
                    let status = answer.status();
                    assert_eq!(
                        status,
                        StatusCode::OK,
                        "{}",
                        answer.text().await.unwrap_or_default()
                    );
                    answered += 1;
                }
                answered
            })
        })
        .collect();

    for n in 0..20 {
        let sent = sender.send("+14155550100", &format!("flood {n}")).await;
        let page: serde_json::Value = reader
            .http
            .get(&list_url)
            .bearer_auth(&sender.api_key)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        let sids: Vec<&str> = page["messages"]
            .as_array()
            .expect("a page")
            .iter()
            .filter_map(|message| message["sid"].as_str())
            .collect();
        assert!(
            sids.contains(&sent.sid.as_str()),
            "send {n}: the page asked for after the send answered holds it: {page}"
        );
        assert_eq!(sids.len(), n + 1, "every message sent so far: {page}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut flooded = 0;
    for task in flood {
        flooded += task.await.expect("the flood ends");
    }
    assert!(flooded > 0, "the flood ran beside the sends");
}
