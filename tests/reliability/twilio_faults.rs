//! Twilio failing, through the simulator's fault controls: 429 storms, 5xx, hangs, truncated
//! JSON, a message deleted at Twilio, and credentials revoked in the middle of a bulk refresh.
//! In each, the bulk answer arrives in time, every message has exactly one outcome, and no
//! message is corrupted or moved backwards.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use smsdesk_domain::MessageStatus;
use smsdesk_twilio_sim::{FaultConfig, LatencyConfig, SimAccount};

use smsdesk_test_support::app::{TestApp, spawn_app, spawn_app_with};
use smsdesk_test_support::app::{credentials, outcome_of, stored_status};

/// The bulk answer must arrive within this, whatever Twilio does.
const DEADLINE: Duration = Duration::from_secs(30);

/// What Twilio knows of each seeded message (we store them all as `queued`).
const TRUTHS: [(MessageStatus, Option<u32>); 4] = [
    (MessageStatus::Sent, None),
    (MessageStatus::Delivered, None),
    (MessageStatus::Undelivered, Some(30003)),
    (MessageStatus::Failed, Some(30007)),
];

/// Seeds `count` messages at Twilio (stored as `queued`); returns each SID with Twilio's status.
async fn seed(app: &TestApp, count: usize) -> Vec<(String, String)> {
    let team = app.demo_team().await;
    let mut seeded = Vec::new();
    for i in 0..count {
        let (status, code) = TRUTHS[i % TRUTHS.len()].clone();
        let truth = status.as_str().to_owned();
        seeded.push((app.message_at_twilio(team, status, code).await, truth));
    }
    seeded
}

/// A bulk refresh that must answer 200 within [`DEADLINE`].
async fn bulk_in_time(app: &TestApp) -> Value {
    bulk_within(app, DEADLINE).await
}

/// A bulk refresh of the last 24 hours that must answer 200 within `deadline`; its body.
async fn bulk_within(app: &TestApp, deadline: Duration) -> Value {
    let response = tokio::time::timeout(deadline, app.refresh_recent(&app.api_key, "?hours=24"))
        .await
        .expect("the bulk answer arrives before its deadline");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

/// Checks every seeded message: one outcome; updated means stored and answered as Twilio has
/// it; anything else means left exactly as it was (`queued`) with a reason from `allowed`.
/// Returns how many were updated.
async fn check_outcomes(
    app: &TestApp,
    body: &Value,
    seeded: &[(String, String)],
    allowed: &[&str],
    why: &str,
) -> usize {
    let mut updated = 0;
    for (sid, truth) in seeded {
        let outcome = outcome_of(body, sid);
        let stored = stored_status(app, sid).await;
        if outcome["outcome"] == "updated" {
            updated += 1;
            assert_eq!(&stored, truth, "{why}: {sid} stored as Twilio has it");
            assert_eq!(outcome["newStatus"], truth.as_str(), "{why}: {outcome}");
        } else {
            assert_eq!(stored, "queued", "{why}: {sid} left as it was: {outcome}");
            let reason = outcome["reason"].as_str().unwrap_or_default();
            assert!(
                allowed.contains(&reason),
                "{why}: {sid} has reason {reason:?}, expected one of {allowed:?}: {outcome}"
            );
        }
    }
    updated
}

#[tokio::test]
async fn every_message_gets_an_outcome_when_twilio_fails_every_request() {
    let cases: [(&str, FaultConfig, &[&str]); 3] = [
        (
            "every request a 5xx",
            FaultConfig {
                server_error_share: 1.0,
                ..FaultConfig::default()
            },
            &["providerUnavailable", "unexpected"],
        ),
        (
            "every request hangs, then 504",
            FaultConfig {
                timeout_share: 1.0,
                timeout_hang: Duration::from_millis(150),
                ..FaultConfig::default()
            },
            &["providerUnavailable"],
        ),
        (
            "every answer's JSON cut in half",
            FaultConfig {
                malformed_share: 1.0,
                ..FaultConfig::default()
            },
            &["unexpected", "providerUnavailable"],
        ),
    ];
    let runs = cases.map(|(why, faults, allowed)| async move {
        let app = spawn_app().await;
        let seeded = seed(&app, 8).await;
        let before = app.snapshot().await;
        app.sim.set_faults(faults);
        let body = bulk_in_time(&app).await;
        let updated = check_outcomes(&app, &body, &seeded, allowed, why).await;
        assert_eq!(updated, 0, "{why}: nothing can be learnt");
        assert_eq!(app.snapshot().await, before, "{why}: nothing was written");
        assert_eq!(
            body["summary"]["failed"].as_u64(),
            body["outcomes"].as_array().map(|o| o.len() as u64),
            "{why}: every outcome is a failure: {}",
            body["summary"]
        );
    });
    futures::future::join_all(runs).await;
}

/// A Twilio that accepts the connection and then never answers: the service's own request
/// timeout (`SMSDESK_TWILIO_REQUEST_TIMEOUT_MS`, 300 ms here) cuts every call off, so the bulk
/// answers long before Twilio would and every message gets an outcome.
#[tokio::test]
async fn a_twilio_that_never_answers_is_cut_off_by_the_request_timeout() {
    let app = spawn_app_with(|settings| settings.twilio_request_timeout_ms = 300).await;
    let seeded = seed(&app, 4).await;
    let before = app.snapshot().await;
    app.sim.set_faults(FaultConfig {
        timeout_share: 1.0,
        // An hour: far past the test's deadline, so only the client's timeout can end a call.
        timeout_hang: Duration::from_secs(3_600),
        ..FaultConfig::default()
    });
    // Five seconds: ample for 300 ms calls and their retries, impossible with the default
    // 15 s timeout, so the answer shows the setting took effect.
    let body = bulk_within(&app, Duration::from_secs(5)).await;
    let updated = check_outcomes(
        &app,
        &body,
        &seeded,
        &["providerUnavailable"],
        "Twilio never answers",
    )
    .await;
    assert_eq!(updated, 0, "nothing can be learnt");
    assert_eq!(app.snapshot().await, before, "nothing was written");
}

#[tokio::test]
async fn a_429_storm_rate_limits_some_messages_and_corrupts_none() {
    let app = spawn_app().await;
    let seeded = seed(&app, 20).await;
    // Twilio allows one request in flight; the refresh sends ten at once.
    app.sim
        .set_latency(LatencyConfig::fixed(Duration::from_millis(20)));
    app.sim.set_faults(FaultConfig {
        max_in_flight: Some(1),
        ..FaultConfig::default()
    });
    let body = bulk_in_time(&app).await;
    let updated = check_outcomes(&app, &body, &seeded, &["rateLimited"], "429 storm").await;
    assert!(app.sim.stats().rate_limited > 0, "Twilio did answer 429s");
    assert!(updated > 0, "the requests Twilio took were applied");
}

#[tokio::test]
async fn a_message_deleted_at_twilio_is_skipped_and_kept() {
    let app = spawn_app().await;
    let seeded = seed(&app, 4).await;
    let deleted = &seeded[1].0;
    app.sim
        .delete_message(&smsdesk_domain::MessageSid::parse(deleted).expect("valid"))
        .expect("deleted at Twilio");
    let body = bulk_in_time(&app).await;
    let outcome = outcome_of(&body, deleted);
    assert_eq!(outcome["outcome"], "skipped", "{outcome}");
    assert_eq!(outcome["reason"], "notFoundAtProvider", "{outcome}");
    assert_eq!(
        stored_status(&app, deleted).await,
        "queued",
        "kept as it was"
    );
    let others: Vec<(String, String)> = seeded
        .iter()
        .filter(|(sid, _)| sid != deleted)
        .cloned()
        .collect();
    let updated = check_outcomes(&app, &body, &others, &[], "others").await;
    assert_eq!(updated, others.len(), "the other messages were refreshed");
}

#[tokio::test]
async fn credentials_revoked_in_the_middle_of_a_bulk_refresh_fail_the_rest_cleanly() {
    // Waves of single fetches, so the revocation lands between them.
    let app = spawn_app_with(|settings| settings.refresh_plan = smsdesk::RefreshPlan::Window).await;
    let team = app.demo_team().await;
    let (account, _) = credentials(&app, team).await;
    let seeded = seed(&app, 30).await;
    // Long enough that the revocation below lands well before the last wave, even on a busy
    // machine.
    app.sim
        .set_latency(LatencyConfig::fixed(Duration::from_millis(250)));

    let bulk = tokio::spawn({
        let http = app.http.clone();
        let url = app.url("/api/integrations/twilio/messages/refresh-status?hours=24");
        let key = app.api_key.clone();
        async move {
            let response = http.post(url).bearer_auth(key).send().await;
            response.expect("sent").json::<Value>().await.expect("JSON")
        }
    });
    // Once the first wave (ten in flight) was answered and the second is at Twilio, the
    // account's auth token changes there. (The simulator checks credentials after its latency,
    // so the second wave fails too.)
    tokio::time::timeout(DEADLINE, async {
        while app.sim.stats().fetches < 15 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the bulk reached Twilio");
    app.sim.add_account(SimAccount::new(
        smsdesk_domain::AccountSid::parse(&account).expect("valid"),
        "a-rotated-token",
    ));
    let body = tokio::time::timeout(DEADLINE, bulk)
        .await
        .expect("the bulk answer arrives before its deadline")
        .expect("the request task ran");

    let updated = check_outcomes(
        &app,
        &body,
        &seeded,
        &["credentialsRejected"],
        "credentials revoked",
    )
    .await;
    assert!(updated > 0, "the wave before the revocation was applied");
    assert!(updated < seeded.len(), "the revocation failed the rest");
    assert!(app.sim.stats().unauthorized > 0, "Twilio did answer 401");
}
