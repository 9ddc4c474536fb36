//! Authentication at the edge against the real service: varying the API key does not buy more
//! requests or database lookups, and a revoked key stops working on every replica within 5 s.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use smsdesk_test_support::app::{TestApp, fresh_postgres, spawn_app, spawn_app_with};

/// `smsdesk_api_key_lookups_total` of `app`.
async fn lookups(app: &TestApp) -> u64 {
    app.metric("smsdesk_api_key_lookups_total")
        .await
        .map_or(0, |count| count as u64)
}

async fn list_with(app: &TestApp, key: &str) -> StatusCode {
    app.http
        .get(app.url("/api/messages"))
        .bearer_auth(key)
        .send()
        .await
        .expect("answered")
        .status()
}

#[tokio::test]
async fn three_hundred_random_keys_from_one_address_cost_one_burst_of_lookups_and_the_real_key_still_works()
 {
    let app = spawn_app().await;
    assert_eq!(
        list_with(&app, &app.api_key).await,
        StatusCode::OK,
        "signed in"
    );
    let before = lookups(&app).await;

    let started = Instant::now();
    let mut answered = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..300_u32 {
        let token = format!("smsd_{n:08x}_{}", "r".repeat(40));
        *answered
            .entry(list_with(&app, &token).await.as_u16())
            .or_default() += 1;
    }
    let took = started.elapsed();
    let spent = lookups(&app).await - before;
    // Straight to stderr so the figures show with --nocapture (docs/reliability.md quotes them).
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "300 random keys from one address: {answered:?} in {took:?}, {spent} lookups"
    );
    assert_eq!(
        answered.get(&401).copied().unwrap_or(0),
        29,
        "the burst of 30, less the real key's first request: {answered:?}"
    );
    assert_eq!(
        answered.get(&429).copied().unwrap_or(0),
        271,
        "{answered:?}"
    );
    assert_eq!(spent, 29, "a refused key costs no lookup");
    assert_eq!(
        list_with(&app, &app.api_key).await,
        StatusCode::OK,
        "the real key keeps working from the same address"
    );
}

#[tokio::test]
async fn a_revoked_key_stops_working_on_every_replica_within_five_seconds() {
    // Two services on one database: PostgreSQL when configured, else one SQLite file.
    let postgres = fresh_postgres("a_revoked_key_stops_working_on_every_replica").await;
    let shared = tempfile::tempdir().expect("a directory");
    let url = postgres.as_ref().map_or_else(
        || format!("sqlite://{}/shared.db?mode=rwc", shared.path().display()),
        |database| database.url.clone(),
    );
    let key = smsdesk_store::SecretCipher::generate_key();
    let replica = |settings: &mut smsdesk::Settings| {
        settings.database_url = Some(url.clone());
        settings.encryption_key = Some(key.clone());
    };
    let first = spawn_app_with(replica).await;
    let second = spawn_app_with(replica).await;

    let created: Value = first
        .http
        .post(first.url("/api/keys"))
        .bearer_auth(&first.api_key)
        .json(&serde_json::json!({"label": "to revoke"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let id = created["id"].as_str().expect("an id").to_owned();
    let issued = created["key"].as_str().expect("the key").to_owned();
    for replica in [&first, &second] {
        assert_eq!(
            list_with(replica, &issued).await,
            StatusCode::OK,
            "works everywhere"
        );
    }

    let revoked = first
        .http
        .delete(first.url(&format!("/api/keys/{id}")))
        .bearer_auth(&first.api_key)
        .send()
        .await
        .expect("answered");
    assert_eq!(revoked.status(), StatusCode::OK);
    let since = Instant::now();
    for replica in [&first, &second] {
        loop {
            if list_with(replica, &issued).await == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "the revoked key still works after 5 s"
            );
            // A polling interval, not a wait for the outcome.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "revocation seen by both replicas after {:?}",
        since.elapsed()
    );
}
