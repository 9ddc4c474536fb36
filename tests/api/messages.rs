//! Listing messages, probes and metrics.

use reqwest::StatusCode;
use serde_json::Value;

use smsdesk_test_support::app::spawn_app;

#[tokio::test]
async fn the_demo_team_starts_with_messages_listed_newest_first_with_paging() {
    let app = spawn_app().await;
    for n in 0..3 {
        app.send(&format!("+1415555020{n}"), "paging").await;
    }
    let first: Value = app
        .http
        .get(app.url("/api/messages?limit=2"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        first["messages"].as_array().map(Vec::len),
        Some(2),
        "{first}"
    );
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let second: Value = app
        .http
        .get(app.url(&format!("/api/messages?limit=2&cursor={cursor}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let seen: Vec<&str> = first["messages"]
        .as_array()
        .into_iter()
        .chain(second["messages"].as_array())
        .flatten()
        .filter_map(|m| m["sid"].as_str())
        .collect();
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(seen.len(), unique.len(), "no message on two pages");
    assert!(seen.len() >= 4, "demo messages plus ours: {seen:?}");
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let app = spawn_app().await;
    for (path, expected) in [("/healthz", StatusCode::OK), ("/readyz", StatusCode::OK)] {
        let response = app.http.get(app.url(path)).send().await.expect("sent");
        assert_eq!(response.status(), expected, "{path}");
    }
    app.send("+14155550300", "metrics").await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("http_requests"), "{metrics}");
    assert!(metrics.contains("twilio"), "{metrics}");
}
