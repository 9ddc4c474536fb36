//! Races: concurrent refreshes of one message, refreshes interleaved with Twilio's callbacks,
//! and two replicas of the service sharing one PostgreSQL database.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use reqwest::StatusCode;
use smsdesk_domain::MessageStatus;

use smsdesk_test_support::app::{concurrent_bulks, error_code, spawn_app, spawn_app_with};
use smsdesk_test_support::app::{
    credentials, fresh_postgres, rank, signed_callback, stored_status,
};

#[tokio::test]
async fn a_hundred_concurrent_refreshes_of_one_message_make_exactly_one_twilio_call() {
    let app = spawn_app().await;
    let team = app.demo_team().await;
    let sid = app
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;
    app.sim.reset_stats();

    let answers = futures::future::join_all(
        (0..100).map(|_| async { app.refresh_one(&app.api_key, &sid).await.status() }),
    )
    .await;

    let ok = answers.iter().filter(|s| **s == StatusCode::OK).count();
    let cooling = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (ok, cooling),
        (1, 99),
        "one refresh wins, the rest cool down: {answers:?}"
    );
    assert_eq!(app.sim.stats().fetches, 1, "exactly one Twilio call");
    assert_eq!(stored_status(&app, &sid).await, "delivered");
}

/// Where a message may go next at Twilio from `status` (empty: it is final).
fn next_statuses(status: &str) -> &'static [&'static str] {
    match status {
        "queued" => &["sending", "sent"],
        "sending" => &["sent", "failed"],
        "sent" => &["delivered", "undelivered"],
        _ => &[],
    }
}

#[tokio::test]
async fn refreshes_and_callbacks_interleaved_at_random_never_regress_a_message() {
    const SEED: u64 = 0x5EED_0009;
    const MESSAGES: usize = 6;
    let app = spawn_app_with(|settings| settings.message_cooldown_secs = 0).await;
    let team = app.demo_team().await;
    let (account, token) = credentials(&app, team).await;
    let mut rng = StdRng::seed_from_u64(SEED);

    for round in 0..MESSAGES {
        let sent = app.send("+14155550123", &format!("race {round}")).await;
        let sid = sent.sid;
        let mut at_twilio = "queued".to_owned();
        let mut seen: Vec<String> = vec![at_twilio.clone()];
        let mut highest = rank("queued").expect("queued is ordered");
        for step in 0..12 {
            let why = format!("seed {SEED:#x}, message {round}, step {step}");
            match rng.random_range(0..4) {
                // Twilio moves on (and its callback is handled before this returns) while a
                // refresh of the same message runs.
                0 => {
                    let choices = next_statuses(&at_twilio);
                    if choices.is_empty() {
                        continue;
                    }
                    let next = choices[rng.random_range(0..choices.len())];
                    let move_on = app.twilio_moves(&sid, MessageStatus::parse(next), None);
                    let refresh = app.refresh_one(&app.api_key, &sid);
                    let ((), refreshed) = tokio::join!(move_on, refresh);
                    assert!(
                        refreshed.status().is_success(),
                        "{why}: refresh answered {}",
                        refreshed.status()
                    );
                    at_twilio = next.to_owned();
                    seen.push(at_twilio.clone());
                }
                // A late, duplicated or out-of-order callback of a status Twilio already passed.
                1 => {
                    let old = seen[rng.random_range(0..seen.len())].clone();
                    let status = signed_callback(&app, &account, &token, &sid, &old).await;
                    assert!(
                        status.is_success(),
                        "{why}: replayed {old} answered {status}"
                    );
                }
                // Two refreshes at once.
                2 => {
                    let (a, b) = tokio::join!(
                        app.refresh_one(&app.api_key, &sid),
                        app.refresh_one(&app.api_key, &sid)
                    );
                    for answer in [a.status(), b.status()] {
                        assert!(
                            answer.is_success() || answer == StatusCode::TOO_MANY_REQUESTS,
                            "{why}: refresh answered {answer}"
                        );
                    }
                }
                // A refresh racing a replayed callback.
                _ => {
                    let old = seen[rng.random_range(0..seen.len())].clone();
                    let (refreshed, replayed) = tokio::join!(
                        app.refresh_one(&app.api_key, &sid),
                        signed_callback(&app, &account, &token, &sid, &old)
                    );
                    assert!(refreshed.status().is_success(), "{why}: refresh failed");
                    assert!(replayed.is_success(), "{why}: callback failed");
                }
            }
            let stored = stored_status(&app, &sid).await;
            let stored_rank = rank(&stored).unwrap_or_else(|| panic!("{why}: {stored} unranked"));
            assert!(
                stored_rank >= highest,
                "{why}: regressed to {stored} (Twilio: {at_twilio})"
            );
            highest = stored_rank;
        }
        assert_eq!(
            stored_status(&app, &sid).await,
            at_twilio,
            "seed {SEED:#x}, message {round}: ends where Twilio is"
        );
    }
}

#[tokio::test]
async fn two_replicas_on_one_postgresql_database_honour_the_same_cooldowns() {
    let Some(database) = fresh_postgres("two_replicas_honour_the_same_cooldowns").await else {
        return;
    };
    // Replicas share the database and, so that each can read the other's secrets, the key.
    let key = smsdesk_store::SecretCipher::generate_key();
    let replica = |settings: &mut smsdesk::Settings| {
        settings.database_url = Some(database.url.clone());
        settings.encryption_key = Some(key.clone());
    };
    let first = spawn_app_with(replica).await;
    let second = spawn_app_with(replica).await;
    let team = first.demo_team().await;
    let sid = first
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;

    let one = first.refresh_one(&first.api_key, &sid).await;
    assert_eq!(one.status(), StatusCode::OK, "the first replica refreshes");
    let (status, code, body) = error_code(second.refresh_one(&first.api_key, &sid).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "cooling_down"),
        "the second replica sees the first one's message cool-down: {body}"
    );

    let bulk = first.refresh_recent(&first.api_key, "?hours=24").await;
    assert_eq!(
        bulk.status(),
        StatusCode::OK,
        "the first replica's bulk runs"
    );
    let calls_by_first = first.sim.stats().fetches;
    let (status, code, body) =
        error_code(second.refresh_recent(&first.api_key, "?hours=24").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "cooling_down"),
        "the second replica sees the same user's bulk cool-down: {body}"
    );
    assert_eq!(
        first.sim.stats().fetches,
        calls_by_first,
        "the refused requests made no Twilio call"
    );
    assert_eq!(
        second.sim.stats().fetches,
        0,
        "the second replica never called"
    );
}

/// The deadlocks PostgreSQL has broken in `url`'s database so far.
async fn deadlocks(url: &str) -> i64 {
    use sea_orm::ConnectionTrait as _;
    let db = sea_orm::Database::connect(url)
        .await
        .expect("PostgreSQL reachable");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        ))
        .await
        .expect("statistics readable")
        .expect("a row for the database");
    let count = row.try_get_by_index::<i64>(0).expect("a count");
    db.close().await.ok();
    count
}

#[tokio::test]
async fn thirty_concurrent_bulks_over_the_same_messages_never_deadlock_on_postgresql() {
    let Some(database) = fresh_postgres("thirty_concurrent_bulks_never_deadlock").await else {
        return;
    };
    let app = spawn_app_with(|settings| {
        settings.database_url = Some(database.url.clone());
        settings.bulk_cooldown_secs = 0;
        settings.message_cooldown_secs = 0;
    })
    .await;
    let team = app.demo_team().await;
    let statuses = [
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Undelivered,
    ];
    for n in 0..60 {
        app.message_without_callbacks(team, statuses[n % statuses.len()].clone())
            .await;
    }
    let before = deadlocks(&database.url).await;

    let mut failed = 0;
    for (status, body) in concurrent_bulks(&[&app], &app.api_key, 30).await {
        assert_eq!(status, StatusCode::OK, "no bulk is refused: {body}");
        failed += body["summary"]["failed"].as_u64().unwrap_or(0);
    }
    assert_eq!(failed, 0, "no outcome failed");
    // Statistics reach pg_stat_database when each backend's transaction ends; the service's
    // connections have all answered by now.
    assert_eq!(
        deadlocks(&database.url).await,
        before,
        "PostgreSQL never had to break a deadlock"
    );
}
