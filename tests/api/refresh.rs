//! Sending, status moving at Twilio, single and bulk refresh, cool-downs.

use reqwest::StatusCode;
use serde_json::Value;
use smsdesk_domain::MessageStatus;

use smsdesk_test_support::app::{error_code, spawn_app};

#[tokio::test]
async fn a_sent_message_follows_twilio_through_callbacks_and_keeps_its_history() {
    let app = spawn_app().await;
    let sent = app.send("+14155550123", "Hello").await;
    let sid = sent["sid"].as_str().expect("sid").to_owned();
    assert_eq!(
        sent["status"], "queued",
        "Twilio's initial status is stored: {sent}"
    );

    app.twilio_moves(&sid, MessageStatus::Sent, None).await;
    app.twilio_moves(&sid, MessageStatus::Delivered, None).await;

    let message: Value = app
        .get_message(&app.api_key, &sid)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(message["status"], "delivered", "{message}");
    let statuses: Vec<&str> = message["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|event| event["status"].as_str())
        .collect();
    assert_eq!(statuses, ["queued", "sent", "delivered"]);
}

#[tokio::test]
async fn a_single_refresh_learns_what_twilio_knows_and_a_second_within_a_minute_is_429() {
    let app = spawn_app().await;
    let team = app.demo_team().await;
    let sid = app
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;

    let first = app.refresh_one(&app.api_key, &sid).await;
    assert_eq!(first.status(), StatusCode::OK);
    let body: Value = first.json().await.expect("JSON");
    let outcome = &body["outcomes"][0];
    assert_eq!(outcome["sid"], sid.as_str());
    assert_eq!(outcome["previousStatus"], "queued");
    assert_eq!(outcome["newStatus"], "delivered", "{body}");

    let message: Value = app
        .get_message(&app.api_key, &sid)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(message["status"], "delivered");

    let second = app.refresh_one(&app.api_key, &sid).await;
    let retry_after: u64 = second
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=60).contains(&retry_after), "retry after {retry_after}");
    let (status, code, body) = error_code(second).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code, "cooling_down", "{body}");
    assert_eq!(
        body["error"]["retryAfterSeconds"].as_u64(),
        Some(retry_after)
    );
}

#[tokio::test]
async fn a_bulk_refresh_reports_every_messages_outcome() {
    let app = spawn_app().await;
    let team = app.demo_team().await;
    let delivered = app
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;
    let undelivered = app
        .message_at_twilio(team, MessageStatus::Undelivered, Some(30003))
        .await;
    let still_queued = app
        .message_without_callbacks(team, MessageStatus::Queued)
        .await;
    let deleted = app
        .message_without_callbacks(team, MessageStatus::Sent)
        .await;
    app.sim
        .delete_message(&smsdesk_domain::MessageSid::parse(&deleted).expect("valid"))
        .expect("deleted at Twilio");

    let response = app.refresh_recent(&app.api_key, "?hours=24").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    let outcome_of = |sid: &str| {
        body["outcomes"]
            .as_array()
            .expect("outcomes")
            .iter()
            .find(|o| o["sid"] == sid)
            .cloned()
            .unwrap_or_else(|| panic!("no outcome for {sid} in {body}"))
    };
    assert_eq!(outcome_of(&delivered)["newStatus"], "delivered");
    assert_eq!(outcome_of(&undelivered)["newStatus"], "undelivered");
    assert_eq!(outcome_of(&undelivered)["errorCode"], 30003, "{body}");
    assert_eq!(outcome_of(&still_queued)["newStatus"], "queued");
    assert_ne!(outcome_of(&deleted)["outcome"], "updated");
    let summary = &body["summary"];
    assert!(summary["updated"].as_u64().unwrap_or(0) >= 2, "{summary}");
    assert!(
        summary["twilioCalls"].as_u64().unwrap_or(0) >= 4,
        "{summary}"
    );

    let again = app.refresh_recent(&app.api_key, "?hours=24").await;
    let (status, code, _) = error_code(again).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "cooling_down")
    );
}
