//! Listing messages (through the typed client), probes and metrics.

use reqwest::StatusCode;
use smsdesk_client::MessageFilter;

use smsdesk_test_support::app::spawn_app;

#[tokio::test]
async fn the_demo_team_starts_with_messages_listed_newest_first_with_paging() {
    let app = spawn_app().await;
    let client = app.client();
    for n in 0..3 {
        app.send(&format!("+1415555020{n}"), "paging").await;
    }
    let first = client
        .list_messages(&MessageFilter {
            limit: Some(2),
            ..MessageFilter::default()
        })
        .await
        .expect("a page");
    assert_eq!(first.messages.len(), 2, "{first:?}");
    assert!(first.next_cursor.is_some(), "a next page");
    let second = client
        .next_messages(&first)
        .await
        .expect("the next page")
        .expect("there is one");
    assert_eq!(second.messages.len(), 2, "the link keeps limit=2");
    let seen: Vec<&str> = first
        .messages
        .iter()
        .chain(&second.messages)
        .map(|m| m.sid.as_str())
        .collect();
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(seen.len(), unique.len(), "no message on two pages");
    let created: Vec<_> = first
        .messages
        .iter()
        .chain(&second.messages)
        .map(|m| m.created_at)
        .collect();
    assert!(
        created.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {created:?}"
    );
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
