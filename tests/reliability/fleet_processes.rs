//! Three real `smsdesk` processes on one PostgreSQL database behave as one service: together
//! they keep under one Twilio account's cap, share cool-downs, carry every change to every
//! replica's live streams (and resume them anywhere), and survive `kill -9` of one of them in
//! the middle of a bulk refresh with nothing half-written, the cap whole again and the
//! background jobs taken over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait as _, Statement};
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_domain::{MessageStatus, Plan, Role};
use smsdesk_test_support::app::{
    TestApp, bulks_with_keys, callback_params, credentials, fresh_postgres, post_webhook, sign,
};
use smsdesk_test_support::processes::{FleetSpec, ReplicaProcess, smsdesk_binary};
use smsdesk_twilio_sim::{FaultConfig, LatencyConfig, SimConfig, SimServer};

/// Twilio's per-account concurrency limit, as the simulator enforces it.
const CAP: usize = 50;

/// The replicas' heartbeat, and how long a check-in counts (two heartbeats).
const HEARTBEAT: Duration = Duration::from_secs(5);

fn say(line: String) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Polls `check` every 100 ms until it holds or `limit` passes; returns how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        // A polling interval, not a wait for the outcome.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// A live event stream read frame by frame.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(app: &TestApp, last_event_id: Option<&str>) -> Self {
        let mut request = app
            .http
            .get(app.url("/api/messages/events"))
            .bearer_auth(&app.api_key);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("the stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame that is not a comment, within `limit`.
    async fn next(&mut self, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if !frame.starts_with(':') {
                    return frame;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {limit:?}"))
                .expect("the stream reads")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn event_id(frame: &str) -> String {
    frame
        .lines()
        .find_map(|line| line.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("the event has an id: {frame}"))
        .to_owned()
}

/// Messages whose stored status is not the one their newest applied history row says: a status
/// written without its history, or the other way round.
async fn half_written(url: &str) -> i64 {
    let db = sea_orm::Database::connect(url).await.expect("PostgreSQL");
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM sms_messages m WHERE m.status IS DISTINCT FROM \
             (SELECT e.status FROM message_status_events e WHERE e.message_id = m.id \
              AND e.applied ORDER BY e.commit_tx DESC, e.id DESC LIMIT 1)",
        ))
        .await
        .expect("the query runs")
        .expect("a count");
    row.try_get::<i64>("", "n").expect("a count")
}

async fn lease_holder(url: &str, job: &str) -> Option<String> {
    let db = sea_orm::Database::connect(url).await.expect("PostgreSQL");
    db.query_one_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT holder FROM leases WHERE name = $1",
        [job.into()],
    ))
    .await
    .expect("the query runs")
    .and_then(|row| row.try_get::<String>("", "holder").ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_smsdesk_processes_on_one_database_behave_as_one_service() {
    let test = "three_smsdesk_processes_on_one_database";
    let Some(binary) = smsdesk_binary(test) else {
        return;
    };
    let Some(database) = fresh_postgres(test).await else {
        return;
    };
    let sim = Arc::new(
        SimServer::start(SimConfig {
            speed: 0.0,
            latency: LatencyConfig::fixed(Duration::from_millis(20)),
            faults: FaultConfig {
                max_in_flight: Some(CAP),
                ..FaultConfig::default()
            },
            ..SimConfig::default()
        })
        .await
        .expect("the simulator starts"),
    );
    let fleet = FleetSpec {
        binary,
        database_url: database.url.clone(),
        encryption_key: smsdesk_store::SecretCipher::generate_key(),
        sim: sim.clone(),
        env: vec![
            ("SMSDESK_TWILIO_ACCOUNT_CONCURRENCY".into(), CAP.to_string()),
            ("SMSDESK_MESSAGE_COOLDOWN_SECS".into(), "0".into()),
            ("SMSDESK_BULK_COOLDOWN_SECS".into(), "60".into()),
            // The cap is about single fetches (3,000 of them); sweeps have their own tests.
            ("SMSDESK_REFRESH_PLAN".into(), "window".into()),
        ],
    };
    // One after the other: the first migrates the new database.
    let mut replicas = Vec::new();
    for n in 1..=3 {
        replicas.push(ReplicaProcess::start(&fleet, n).await);
    }
    for replica in &replicas {
        within(HEARTBEAT * 3, "every replica sees three", || async {
            replica.app.metric("smsdesk_fleet_replicas").await == Some(3.0)
        })
        .await;
        assert_eq!(
            replica.app.metric("smsdesk_twilio_account_share").await,
            Some((CAP / 3) as f64),
            "each replica takes a third of the cap"
        );
    }

    // One team, one Twilio account, 30 members each with a key of their own (the bulk
    // cool-down is per member).
    let (team, admin_key) = replicas[0].app.new_team("Fleet", Plan::Pro).await;
    for replica in &mut replicas {
        replica.app.api_key = admin_key.clone();
    }
    let first = &replicas[0].app;
    let mut keys = Vec::new();
    for n in 0..30 {
        let user = first
            .store
            .create_user(
                team,
                &format!("member {n}"),
                &format!("m{n}@example.test"),
                Role::Member,
            )
            .await
            .expect("a member");
        let key = first.store.create_api_key(user.id).await.expect("a key");
        use smsdesk_domain::secrecy::ExposeSecret as _;
        keys.push(key.key.expose_secret().to_owned());
    }
    // Sent at Twilio, so every bulk asks about every one of them.
    let mut sids = Vec::new();
    for _ in 0..100 {
        sids.push(
            first
                .message_without_callbacks(team, MessageStatus::Sent)
                .await,
        );
    }

    // ---- 30 concurrent bulks over the three: one cap, no 429, no failure, no 503. ----------
    sim.reset_stats();
    let apps: Vec<&TestApp> = replicas.iter().map(|r| &r.app).collect();
    let started = Instant::now();
    let answers = bulks_with_keys(&apps, &keys).await;
    let took = started.elapsed();
    let mut fetched = 0;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["summary"]["failed"], 0, "no failed outcome: {body}");
        fetched += body["summary"]["twilioCalls"].as_u64().unwrap_or(0);
    }
    let stats = sim.stats();
    say(format!(
        "three processes, 30 bulks of 100: {fetched} fetches in {took:?}, {} answered 429, at \
         most {} in flight (cap {CAP})",
        stats.rate_limited, stats.max_in_flight
    ));
    assert_eq!(fetched, 3000, "every bulk asked about every message");
    assert_eq!(stats.fetches, 3000, "and Twilio saw each fetch once");
    assert_eq!(stats.rate_limited, 0, "the fleet never went over the cap");
    assert!(stats.max_in_flight <= CAP as u64, "{stats:?}");

    // The bulk cool-down is honoured once for the fleet: each member's second bulk is refused,
    // whichever replica it reaches, and Twilio hears nothing more.
    let again = bulks_with_keys(&[apps[1], apps[2], apps[0]], &keys).await;
    for (status, body) in &again {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["code"], "cooling_down", "{body}");
    }
    assert_eq!(sim.stats().fetches, 3000, "no request reached Twilio");

    // ---- A callback posted to replica 1 reaches streams on replicas 2 and 3. -------------
    let mut on_second = EventStream::open(&replicas[1].app, None).await;
    let mut on_third = EventStream::open(&replicas[2].app, None).await;
    assert!(
        on_second
            .next(Duration::from_secs(5))
            .await
            .contains("event: ready")
    );
    assert!(
        on_third
            .next(Duration::from_secs(5))
            .await
            .contains("event: ready")
    );
    let (account, token) = credentials(first, team).await;
    let callback = |sid: &str, status: &str| {
        let params = callback_params(&account, sid, status);
        let signature = sign(first, STATUS_CALLBACK_PATH, &token, &params);
        async move {
            let answer = post_webhook(first, STATUS_CALLBACK_PATH, &params, Some(&signature)).await;
            assert_eq!(answer.status(), StatusCode::OK, "the callback is taken");
        }
    };
    let posted = Instant::now();
    callback(&sids[0], "delivered").await;
    let mut last_id = String::new();
    for (stream, name) in [(&mut on_second, "replica 2"), (&mut on_third, "replica 3")] {
        let frame = stream.next(Duration::from_secs(5)).await;
        assert!(
            frame.contains(&sids[0]) && frame.contains("\"status\":\"delivered\""),
            "{name} carries the change made through replica 1: {frame}"
        );
        last_id = event_id(&frame);
        say(format!(
            "a callback on replica 1 reached the stream on {name} {:?} after it was answered",
            posted.elapsed()
        ));
    }
    drop(on_second);

    // While that client is away, two more changes land through replica 1; it resumes on
    // replica 3 and misses nothing.
    callback(&sids[1], "delivered").await;
    callback(&sids[2], "undelivered").await;
    let mut resumed = EventStream::open(&replicas[2].app, Some(&last_id)).await;
    assert!(
        resumed
            .next(Duration::from_secs(5))
            .await
            .contains("\"resumed\":true")
    );
    for (sid, status) in [(&sids[1], "delivered"), (&sids[2], "undelivered")] {
        let frame = resumed.next(Duration::from_secs(5)).await;
        assert!(
            frame.contains(sid.as_str()) && frame.contains(&format!("\"status\":\"{status}\"")),
            "the missed change to {sid} is replayed, in order: {frame}"
        );
    }
    drop((on_third, resumed));

    // ---- kill -9 of the replica running the background jobs, in the middle of a bulk. ------
    let job = "parked-callback-cleanup";
    let holder = lease_holder(&database.url, job)
        .await
        .expect("a replica holds the clean-up's lease");
    let victim = replicas
        .iter()
        .position(|r| {
            r.pid()
                .is_some_and(|pid| holder.starts_with(&format!("{pid}-")))
        })
        .expect("the holder is one of the three");
    // Slow Twilio down so the bulks are still running when the victim dies; fresh keys (the
    // first ones are cooling down).
    sim.set_latency(LatencyConfig::fixed(Duration::from_millis(200)));
    let mut fresh_keys = Vec::new();
    for n in 0..3 {
        let user = first
            .store
            .create_user(
                team,
                &format!("late {n}"),
                &format!("late{n}@example.test"),
                Role::Member,
            )
            .await
            .expect("a member");
        use smsdesk_domain::secrecy::ExposeSecret as _;
        fresh_keys.push(
            first
                .store
                .create_api_key(user.id)
                .await
                .expect("a key")
                .key
                .expose_secret()
                .to_owned(),
        );
    }
    let mut victim = replicas.remove(victim);
    let survivors = replicas;
    let doomed = {
        let request = victim
            .app
            .http
            .post(
                victim
                    .app
                    .url("/api/integrations/twilio/messages/refresh-status?hours=24"),
            )
            .bearer_auth(&fresh_keys[0]);
        tokio::spawn(async move { request.send().await.map(|answer| answer.status()) })
    };
    let fetches_before = sim.stats().fetches;
    within(
        Duration::from_secs(10),
        "the doomed bulk reached Twilio",
        || async { sim.stats().fetches > fetches_before },
    )
    .await;
    // The survivors' bulks start first (join polls them first), then the victim dies.
    let survivor_apps: Vec<&TestApp> = survivors.iter().map(|r| &r.app).collect();
    let (others, killed_at) =
        tokio::join!(bulks_with_keys(&survivor_apps, &fresh_keys[1..]), async {
            victim.kill();
            Instant::now()
        });
    assert!(
        doomed.await.expect("the task ends").is_err(),
        "the killed replica never answered"
    );
    for (status, body) in &others {
        assert_eq!(*status, StatusCode::OK, "the others go on: {body}");
        assert_eq!(body["summary"]["failed"], 0, "{body}");
    }
    assert_eq!(
        half_written(&database.url).await,
        0,
        "every stored status is its newest history row's: nothing half-written"
    );
    assert_eq!(sim.stats().rate_limited, 0, "still no 429");

    for (n, survivor) in survivors.iter().enumerate() {
        let app = &survivor.app;
        let took = within(HEARTBEAT * 4, "the survivors take the cap back", || async {
            app.metric("smsdesk_twilio_account_share").await == Some((CAP / 2) as f64)
        })
        .await;
        say(format!(
            "survivor {} took half the cap back {:?} after the kill",
            n + 1,
            killed_at.elapsed().max(took)
        ));
    }
    // The clean-up's lease lasts 30 s and is tried every 10 s: a survivor holds it within 40 s.
    let takeover = within(
        Duration::from_secs(45),
        "a survivor takes the clean-up over",
        || {
            let url = database.url.clone();
            let holder = holder.clone();
            async move {
                lease_holder(&url, job)
                    .await
                    .is_some_and(|now| now != holder)
            }
        },
    )
    .await;
    say(format!(
        "a survivor took the parked-callback clean-up over {:?} after the kill",
        killed_at.elapsed().max(takeover)
    ));
}
