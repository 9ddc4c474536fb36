//! Authentication, plans and tenant isolation.

use reqwest::StatusCode;
use smsdesk_client::MessageFilter;
use smsdesk_domain::{MessageStatus, Plan};

use smsdesk_test_support::app::{error_code, spawn_app};

#[tokio::test]
async fn a_missing_or_invalid_key_is_401_and_changes_nothing() {
    let app = spawn_app().await;
    let before = app.snapshot().await;
    let cases = [
        (None, "no Authorization header"),
        (Some("Bearer".to_owned()), "scheme without a key"),
        (Some("Bearer smsd_nope_nope".to_owned()), "unknown key"),
        (Some(format!("Basic {}", app.api_key)), "wrong scheme"),
        (
            Some(format!("Bearer {}x", app.api_key)),
            "key with an extra character",
        ),
    ];
    for (header, why) in cases {
        let mut request = app
            .http
            .post(app.url("/api/integrations/twilio/messages/refresh-status?hours=24"));
        if let Some(value) = header {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.expect("request sent");
        assert!(response.headers().contains_key("www-authenticate"), "{why}");
        let (status, code, _) = error_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{why}"
        );
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_free_team_may_not_refresh_on_either_path() {
    let app = spawn_app().await;
    let (team, key) = app.new_team("Free team", Plan::Free).await;
    let free = app.client_with(&key);
    let sid = app
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;
    let before = app.snapshot().await;

    for refused in [
        free.refresh_message(&sid).await.map(|_| ()),
        free.refresh_recent(Some(24)).await.map(|_| ()),
    ] {
        let error = refused.expect_err("a free team may not refresh");
        assert_eq!(
            (error.status(), error.code()),
            (Some(403), Some("plan_required")),
            "{error}"
        );
        assert!(error.to_string().contains("Pro or Enterprise"), "{error}");
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused refresh changes nothing"
    );
    assert_eq!(app.sim.stats().fetches, 0, "Twilio was not asked");
}

#[tokio::test]
async fn another_teams_message_is_404_never_403() {
    let app = spawn_app().await;
    let demo = app.demo_team().await;
    let sid = app
        .message_without_callbacks(demo, MessageStatus::Sent)
        .await;
    let (_team_b, key_b) = app.new_team("Team B", Plan::Enterprise).await;
    let team_b = app.client_with(&key_b);
    let before = app.snapshot().await;

    let error = team_b.get_message(&sid).await.expect_err("not B's");
    assert_eq!(
        (error.status(), error.code()),
        (Some(404), Some("not_found"))
    );
    let error = team_b.refresh_message(&sid).await.expect_err("not B's");
    assert_eq!(
        (error.status(), error.code()),
        (Some(404), Some("not_found"))
    );

    let listed = team_b
        .list_messages(&MessageFilter::default())
        .await
        .expect("B's own (empty) list");
    assert!(listed.messages.is_empty(), "{listed:?}");
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.sim.stats().fetches, 0);
}
