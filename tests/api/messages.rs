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

/// The list shares identical concurrent reads (`smsdesk_web::coalesce`): under a flood of the
/// same request from two teams, a message sent is on the very next page its team asks for, and
/// never on the other team's, though both ask with the same URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_list_read_is_never_stale_and_never_another_teams() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let app = Arc::new(spawn_app().await);
    let (_, other_key) = app.new_team("Other", smsdesk_domain::Plan::Pro).await;
    let url = app.url("/api/messages?limit=50");
    let page = {
        let (app, url) = (app.clone(), url.clone());
        move |key: String| {
            let (app, url) = (app.clone(), url.clone());
            async move {
                let answer = app
                    .http
                    .get(&url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .expect("answered");
                assert_eq!(answer.status(), StatusCode::OK);
                let page: serde_json::Value = answer.json().await.expect("JSON");
                page["messages"]
                    .as_array()
                    .expect("a page")
                    .iter()
                    .filter_map(|message| message["sid"].as_str().map(str::to_owned))
                    .collect::<Vec<String>>()
            }
        }
    };
    let before = page(app.api_key.clone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..16)
        .map(|n| {
            let key = if n % 2 == 0 {
                app.api_key.clone()
            } else {
                other_key.clone()
            };
            let (stop, page) = (stop.clone(), page.clone());
            tokio::spawn(async move {
                let mut pages = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    pages.push(page(key.clone()).await);
                }
                pages
            })
        })
        .collect();
    let mut sent = Vec::new();
    for n in 0..20 {
        let message = app.send("+14155550100", &format!("flood {n}")).await;
        let listed = page(app.api_key.clone()).await;
        assert!(
            listed.contains(&message.sid),
            "send {n}: the page asked for after the send answered holds it"
        );
        assert_eq!(listed.len(), (before.len() + n + 1).min(50));
        sent.push(message.sid);
    }
    stop.store(true, Ordering::Relaxed);
    let mut other_pages = 0;
    for (n, task) in flood.into_iter().enumerate() {
        let pages = task.await.expect("the flood ends");
        if n % 2 == 1 {
            other_pages += pages.len();
            for listed in pages {
                assert!(
                    listed.iter().all(|sid| !sent.contains(sid)),
                    "another team's page never holds the demo team's messages"
                );
            }
        }
    }
    assert!(
        other_pages > 0,
        "the other team's flood ran beside the sends"
    );
}
