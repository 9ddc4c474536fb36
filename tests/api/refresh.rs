//! Sending, status moving at Twilio, single and bulk refresh, cool-downs, through the typed
//! client (the raw wire, headers included, is `errors.rs`' and the reliability suite's).

use smsdesk_client::{ClientError, OutcomeDto, RefreshResponseDto};
use smsdesk_domain::MessageStatus;

use smsdesk_test_support::app::spawn_app;

fn outcome<'a>(answer: &'a RefreshResponseDto, sid: &str) -> &'a OutcomeDto {
    answer
        .outcomes
        .iter()
        .find(|o| o.sid == sid)
        .unwrap_or_else(|| panic!("no outcome for {sid} in {answer:?}"))
}

fn cooling_down(error: &ClientError) -> u64 {
    match error {
        ClientError::Api {
            status: 429,
            error,
            retry_after_seconds: Some(seconds),
        } if error.code == "cooling_down" => *seconds,
        other => panic!("expected 429 cooling_down with a retry time, got {other:?}"),
    }
}

#[tokio::test]
async fn a_sent_message_follows_twilio_through_callbacks_and_keeps_its_history() {
    let app = spawn_app().await;
    let client = app.client();
    let sent = app.send("+14155550123", "Hello").await;
    let sid = sent.sid.clone();
    assert_eq!(
        sent.status, "queued",
        "Twilio's initial status is stored: {sent:?}"
    );

    app.twilio_moves(&sid, MessageStatus::Sent, None).await;
    app.twilio_moves(&sid, MessageStatus::Delivered, None).await;

    let message = client.get_message(&sid).await.expect("found");
    assert_eq!(message.message.status, "delivered", "{message:?}");
    let statuses: Vec<&str> = message.history.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["queued", "sent", "delivered"]);
    assert!(message.history.iter().all(|event| event.applied));
}

#[tokio::test]
async fn a_single_refresh_learns_what_twilio_knows_and_a_second_within_a_minute_is_429() {
    let app = spawn_app().await;
    let team = app.demo_team().await;
    let sid = app
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;

    let client = app.client();

    let first = client.refresh_message(&sid).await.expect("refreshed");
    assert_eq!(first.mode, "single");
    let learned = outcome(&first, &sid);
    assert_eq!(learned.previous_status, "queued");
    assert_eq!(learned.new_status, "delivered", "{first:?}");
    assert_eq!(learned.outcome, "updated");

    let message = client.get_message(&sid).await.expect("found");
    assert_eq!(message.message.status, "delivered");

    let second = client
        .refresh_message(&sid)
        .await
        .expect_err("a second refresh within the cool-down");
    let retry_after = cooling_down(&second);
    assert!((1..=60).contains(&retry_after), "retry after {retry_after}");
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

    let client = app.client();
    let body = client.refresh_recent(Some(24)).await.expect("refreshed");
    assert_eq!((body.mode.as_str(), body.window_hours), ("bulk", Some(24)));
    assert_eq!(outcome(&body, &delivered).new_status, "delivered");
    assert_eq!(outcome(&body, &undelivered).new_status, "undelivered");
    assert_eq!(outcome(&body, &undelivered).error_code, Some(30003));
    assert_eq!(outcome(&body, &still_queued).new_status, "queued");
    assert_ne!(outcome(&body, &deleted).outcome, "updated");
    assert!(body.summary.updated >= 2, "{:?}", body.summary);
    assert!(body.summary.twilio_calls >= 4, "{:?}", body.summary);

    let again = client
        .refresh_recent(Some(24))
        .await
        .expect_err("a second bulk refresh within the cool-down");
    cooling_down(&again);
}
