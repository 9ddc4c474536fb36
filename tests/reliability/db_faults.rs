//! The database failing under load (PostgreSQL): it goes away in the middle of a bulk refresh
//! (new connections refused, open ones terminated with `pg_terminate_backend`) and comes back.
//! While it is down the service answers 503 in the error shape; it recovers without a restart;
//! and every message is either wholly refreshed (status and history event) or not at all (a
//! bulk refresh writes all its results in one transaction after its Twilio calls).

use std::time::Duration;

use reqwest::StatusCode;
use smsdesk_domain::MessageStatus;
use smsdesk_domain::ports::MessageRepository;
use smsdesk_twilio_sim::LatencyConfig;

use smsdesk_test_support::app::fresh_postgres;
use smsdesk_test_support::app::{error_code, spawn_app_with};

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_database_going_away_mid_bulk_is_503_then_recovers_with_no_half_written_refresh() {
    let Some(database) = fresh_postgres("the_database_going_away_mid_bulk").await else {
        return;
    };
    let app = spawn_app_with(|settings| {
        settings.database_url = Some(database.url.clone());
        settings.bulk_cooldown_secs = 0;
        settings.message_cooldown_secs = 0;
        // Waves of single fetches, so the outage lands between them.
        settings.refresh_plan = smsdesk::RefreshPlan::Window;
    })
    .await;
    let team = app.demo_team().await;
    let mut seeded = Vec::new();
    for _ in 0..30 {
        seeded.push(
            app.message_without_callbacks(team, MessageStatus::Delivered)
                .await,
        );
    }
    // Three waves of calls at 250 ms each: the outage below lands well before the bulk's write,
    // even on a busy machine.
    app.sim
        .set_latency(LatencyConfig::fixed(Duration::from_millis(250)));

    let bulk = tokio::spawn({
        let http = app.http.clone();
        let url = app.url("/api/integrations/twilio/messages/refresh-status?hours=24");
        let key = app.api_key.clone();
        async move {
            let response = http.post(url).bearer_auth(key).send().await.expect("sent");
            response.status()
        }
    });
    tokio::time::timeout(DEADLINE, async {
        while app.sim.stats().fetches < 15 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the bulk reached Twilio");
    database.set_reachable(false).await;

    let bulk_status = tokio::time::timeout(DEADLINE, bulk)
        .await
        .expect("the bulk answers although the database went away")
        .expect("the request task ran");

    for path in ["/api/messages", "/readyz"] {
        let response = tokio::time::timeout(
            DEADLINE,
            app.http.get(app.url(path)).bearer_auth(&app.api_key).send(),
        )
        .await
        .expect("an answer while the database is down")
        .expect("sent");
        let (status, code, body) = error_code(response).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path} while down: {code} {body}"
        );
    }

    database.set_reachable(true).await;
    let recovered = tokio::time::timeout(DEADLINE, async {
        loop {
            let response = app.http.get(app.url("/readyz")).send().await.expect("sent");
            if response.status() == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(recovered.is_ok(), "ready again without a restart");
    let list = app
        .http
        .get(app.url("/api/messages"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .expect("sent");
    assert_eq!(list.status(), StatusCode::OK, "the API serves again");

    // All or nothing: a message is `queued` with its one send event, or `delivered` with both.
    let mut refreshed_before = 0;
    for sid in &seeded {
        let sid = smsdesk_domain::MessageSid::parse(sid).expect("valid");
        let message = app
            .store
            .find(team, &sid)
            .await
            .expect("store up")
            .expect("kept");
        let history = app.store.history(team, &sid).await.expect("store up");
        let statuses: Vec<&str> = history
            .iter()
            .map(|e| e.observation.state.status.as_str())
            .collect();
        match message.delivery.status.as_str() {
            "queued" => assert_eq!(statuses, ["queued"], "{sid}: untouched"),
            "delivered" => {
                refreshed_before += 1;
                assert_eq!(statuses, ["queued", "delivered"], "{sid}: wholly refreshed");
            }
            other => panic!("{sid}: unexpected status {other}"),
        }
    }
    // A bulk refresh writes all its results in one transaction, after its Twilio calls; the
    // database went away during the calls, so that transaction could not happen at all.
    assert_eq!(
        (bulk_status, refreshed_before),
        (StatusCode::SERVICE_UNAVAILABLE, 0),
        "the interrupted bulk wrote nothing and said so"
    );

    // And the next bulk finishes the job.
    let again = app.refresh_recent(&app.api_key, "?hours=24").await;
    assert_eq!(again.status(), StatusCode::OK);
    for sid in &seeded {
        let message: serde_json::Value = app
            .get_message(&app.api_key, sid)
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(message["status"], "delivered", "{sid} after recovery");
    }
}

#[tokio::test]
async fn connections_killed_between_requests_are_replaced_without_a_restart() {
    let Some(database) = fresh_postgres("connections_killed_between_requests").await else {
        return;
    };
    let app = spawn_app_with(|settings| settings.database_url = Some(database.url.clone())).await;
    let team = app.demo_team().await;
    let sid = app
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;
    let list = || async {
        app.http
            .get(app.url("/api/messages"))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .expect("sent")
            .status()
    };
    assert_eq!(list().await, StatusCode::OK);

    for round in 0..3 {
        database.terminate_connections().await;
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(list().await);
        }
        // A connection that died idle may fail the one request that finds it; never more, and
        // never anything but 503.
        let failed = answers.iter().filter(|s| **s != StatusCode::OK).count();
        assert!(
            failed <= 1
                && answers
                    .iter()
                    .all(|s| s.is_success() || *s == StatusCode::SERVICE_UNAVAILABLE),
            "round {round}: {answers:?}"
        );
        assert_eq!(
            answers.last(),
            Some(&StatusCode::OK),
            "round {round}: recovered"
        );
    }
    let refreshed = app.refresh_one(&app.api_key, &sid).await;
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "refresh writes on new connections"
    );
}
