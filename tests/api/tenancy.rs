//! Authentication, plans and tenant isolation.

use reqwest::StatusCode;
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
    let sid = app
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;
    let before = app.snapshot().await;

    for response in [
        app.refresh_one(&key, &sid).await,
        app.refresh_recent(&key, "?hours=24").await,
    ] {
        let (status, code, body) = error_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "plan_required"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Pro or Enterprise"),
            "{body}"
        );
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
    let before = app.snapshot().await;

    let (status, code, _) = error_code(app.get_message(&key_b, &sid).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, code, _) = error_code(app.refresh_one(&key_b, &sid).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    let listed: serde_json::Value = app
        .http
        .get(app.url("/api/messages"))
        .bearer_auth(&key_b)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        listed["messages"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.sim.stats().fetches, 0);
}
