//! The typed client (`smsdesk-client`) against the whole service: idempotent sends, references
//! and filters, API keys, and delivery webhooks to a real receiver on loopback (signed, in order
//! per message, listed with their attempts, surviving a secret rotation).

use std::time::Duration;

use smsdesk_client::{ClientError, MessageFilter, SendSmsDto, WebhookEndpointRequestDto};
use smsdesk_domain::webhooks::WebhookSecret;
use smsdesk_domain::{MessageStatus, Plan};
use smsdesk_test_support::app::{
    RECEIVE_PATH, credentials, error_code, post_webhook, sign, spawn_app,
};
use smsdesk_test_support::receiver::{WebhookReceiver, statuses_per_message};

fn send_request(to: &str, body: &str, reference: &str) -> SendSmsDto {
    SendSmsDto {
        to: to.to_owned(),
        body: body.to_owned(),
        from: None,
        messaging_service_sid: None,
        reference: Some(reference.to_owned()),
    }
}

#[tokio::test]
async fn a_retried_send_with_its_key_sends_once_and_references_filter_the_list() {
    let app = spawn_app().await;
    let client = app.client();
    let request = send_request("+14155550170", "Your code is 4711", "order-4711");

    let creates_before = app.sim.stats().creates;
    let first = client
        .send_sms(&request, Some("order-4711-code"))
        .await
        .expect("sent");
    let retried = client
        .send_sms(&request, Some("order-4711-code"))
        .await
        .expect("answered again");
    assert!(!first.replayed);
    assert!(retried.replayed, "the retry is the first answer");
    assert_eq!(retried.message, first.message);
    assert_eq!(
        app.sim.stats().creates - creates_before,
        1,
        "Twilio was asked once"
    );
    assert_eq!(first.message.reference.as_deref(), Some("order-4711"));

    let reused = client
        .send_sms(
            &send_request("+14155550170", "another text", "order-4711"),
            Some("order-4711-code"),
        )
        .await
        .expect_err("the key names another request");
    assert_eq!(
        (reused.status(), reused.code()),
        (Some(422), Some("idempotency_key_reused")),
        "{reused}"
    );
    assert_eq!(
        app.sim.stats().creates - creates_before,
        1,
        "nothing more was sent"
    );

    client
        .send_sms(&send_request("+14155550171", "other", "order-4712"), None)
        .await
        .expect("sent");
    let by_reference = client
        .list_messages(&MessageFilter {
            reference: Some("order-4711".into()),
            ..MessageFilter::default()
        })
        .await
        .expect("listed");
    let sids: Vec<&str> = by_reference
        .messages
        .iter()
        .map(|m| m.sid.as_str())
        .collect();
    assert_eq!(sids, [first.message.sid.as_str()]);
    let combined = client
        .list_messages(&MessageFilter {
            statuses: vec!["delivered".into(), "queued".into()],
            to: Some("+14155550171".into()),
            ..MessageFilter::default()
        })
        .await
        .expect("listed");
    assert_eq!(combined.messages.len(), 1, "{combined:?}");
    assert_eq!(
        combined.messages[0].reference.as_deref(),
        Some("order-4712")
    );

    let refused = client
        .list_messages(&MessageFilter {
            statuses: vec!["teleported".into()],
            ..MessageFilter::default()
        })
        .await
        .expect_err("not a status");
    assert!(
        matches!(&refused, ClientError::Api { status: 400, error, .. }
            if error.code == "invalid_parameter" && error.field.as_deref() == Some("status")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_and_another_team_cannot_touch_them() {
    let app = spawn_app().await;
    let admin = app.client();
    let issued = admin
        .create_api_key(Some("billing job"))
        .await
        .expect("created");
    assert!(
        issued
            .key
            .starts_with(&format!("smsd_{}_", issued.summary.id))
    );
    let listed = admin.list_api_keys().await.expect("listed");
    assert!(
        listed
            .keys
            .iter()
            .any(|key| key.id == issued.summary.id && key.label.as_deref() == Some("billing job"))
    );

    let with_new_key = app.client_with(&issued.key);
    with_new_key
        .list_messages(&MessageFilter::default())
        .await
        .expect("the new key works");
    let revoked = admin
        .revoke_api_key(&issued.summary.id)
        .await
        .expect("revoked");
    assert!(revoked.revoked_at.is_some());
    let listed = admin.list_api_keys().await.expect("listed");
    assert!(
        listed
            .keys
            .iter()
            .any(|key| key.id == issued.summary.id && key.revoked_at.is_some()),
        "revoked keys stay listed, with the time"
    );

    let (_team, other_admin) = app.new_team("Members", Plan::Pro).await;
    let other = app.client_with(&other_admin);
    let error = other
        .revoke_api_key(&issued.summary.id)
        .await
        .expect_err("not that team's key");
    assert_eq!(error.status(), Some(404), "{error}");
}

#[tokio::test]
async fn delivery_webhooks_reach_a_real_receiver_signed_in_order_and_listed() {
    let app = spawn_app().await;
    let client = app.client();
    let receiver = WebhookReceiver::start();
    let created = client
        .create_webhook_endpoint(&WebhookEndpointRequestDto {
            url: Some(receiver.url.clone()),
            events: Some(vec!["message.status_changed".into()]),
            enabled: None,
        })
        .await
        .expect("created");
    assert!(created.secret.starts_with("whsec_"));
    let secret = WebhookSecret::parse(&created.secret).expect("a usable secret");
    let endpoint = created.endpoint.id.clone();

    let sent = app.send("+14155550172", "tracked").await;
    app.twilio_moves(&sent.sid, MessageStatus::Sent, None).await;
    app.twilio_moves(&sent.sid, MessageStatus::Delivered, None)
        .await;

    let received = receiver
        .wait_for(Duration::from_secs(30), "three deliveries", |seen| {
            seen.iter().filter(|d| d.accepted).count() >= 3
        })
        .await;
    assert_eq!(
        statuses_per_message(&received).get(&sent.sid),
        Some(&vec![
            "queued".to_owned(),
            "sent".to_owned(),
            "delivered".to_owned()
        ]),
        "every change, in order"
    );
    for delivery in &received {
        assert!(
            delivery.verifies(&secret),
            "the signature verifies: {delivery:?}"
        );
    }

    // The receiver answers before the worker records that answer: wait (bounded) until the
    // listing has caught up with what the receiver saw.
    let caught_up = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = client
            .webhook_deliveries(&endpoint, None)
            .await
            .expect("listed");
        let recorded = page.deliveries.iter().all(|d| !d.attempts.is_empty());
        if recorded || std::time::Instant::now() > caught_up {
            break page;
        }
        // A polling interval, not a wait for the outcome.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(page.deliveries.len(), 3, "{page:?}");
    for delivery in &page.deliveries {
        assert_eq!(delivery.status, "delivered", "{delivery:?}");
        assert_eq!(delivery.attempts.len(), 1);
        assert_eq!(delivery.attempts[0].status_code, Some(200));
        assert_eq!(delivery.attempts[0].response_body, "thanks");
        assert!(received.iter().any(|r| r.id == delivery.webhook_id));
    }
    let first_of_two = client
        .webhook_deliveries(&endpoint, Some(2))
        .await
        .expect("listed");
    let rest = client
        .next_webhook_deliveries(&first_of_two)
        .await
        .expect("listed")
        .expect("a second page");
    assert_eq!(
        (first_of_two.deliveries.len(), rest.deliveries.len()),
        (2, 1)
    );

    // After a rotation both secrets sign, so a receiver may switch at its own pace.
    let rotated = client
        .rotate_webhook_secret(&endpoint)
        .await
        .expect("rotated");
    let new_secret = WebhookSecret::parse(&rotated.secret).expect("a usable secret");
    assert_ne!(rotated.secret, created.secret);
    let failed = app.send("+14155550173", "after the rotation").await;
    let received = receiver
        .wait_for(
            Duration::from_secs(30),
            "the delivery after rotation",
            |seen| seen.len() >= 4,
        )
        .await;
    let last = received.last().expect("one more");
    for (which, key) in [("old", &secret), ("new", &new_secret)] {
        assert!(last.verifies(key), "the {which} secret verifies");
    }
    assert!(String::from_utf8_lossy(&last.body).contains(&failed.sid));

    let disabled = client
        .update_webhook_endpoint(
            &endpoint,
            &WebhookEndpointRequestDto {
                enabled: Some(false),
                ..WebhookEndpointRequestDto::default()
            },
        )
        .await
        .expect("disabled");
    assert!(!disabled.enabled);
    client
        .delete_webhook_endpoint(&endpoint)
        .await
        .expect("deleted");
    let gone = client
        .get_webhook_endpoint(&endpoint)
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Some("not_found"));
    assert!(
        client
            .list_webhook_endpoints()
            .await
            .expect("listed")
            .endpoints
            .is_empty()
    );
}

#[tokio::test]
async fn the_summary_counts_the_window_by_status_and_the_party_filter_finds_both_directions() {
    let app = spawn_app().await;
    let client = app.client();
    // The demo team starts with a few messages of its own: count what this test adds.
    let before = client.delivery_summary(Some(1)).await.expect("summary");
    let customer = "+14155550180";
    let mut sids = Vec::new();
    for n in 0..4 {
        let sent = client
            .send_sms(
                &send_request(customer, &format!("note {n}"), "summary"),
                None,
            )
            .await
            .expect("sent");
        sids.push(sent.message.sid);
    }
    client
        .send_sms(
            &send_request("+14155550181", "someone else", "summary"),
            None,
        )
        .await
        .expect("sent");
    app.twilio_moves(&sids[0], MessageStatus::Delivered, None)
        .await;
    app.twilio_moves(&sids[1], MessageStatus::Delivered, None)
        .await;
    app.twilio_moves(&sids[2], MessageStatus::Undelivered, Some(30_003))
        .await;
    // The customer writes back: an inbound message from the same number.
    let team = app.demo_team().await;
    let (account, token) = credentials(&app, team).await;
    let inbound = vec![
        ("AccountSid".to_owned(), account),
        (
            "MessageSid".to_owned(),
            "SMfeedfacefeedfacefeedfacefeedface".to_owned(),
        ),
        ("From".to_owned(), customer.to_owned()),
        ("To".to_owned(), "+15005550006".to_owned()),
        ("Body".to_owned(), "thanks".to_owned()),
    ];
    let signature = sign(&app, RECEIVE_PATH, &token, &inbound);
    let received = post_webhook(&app, RECEIVE_PATH, &inbound, Some(&signature)).await;
    assert!(received.status().is_success(), "{}", received.status());

    let summary = client.delivery_summary(Some(1)).await.expect("summary");
    assert_eq!(summary.window_hours, 1);
    assert_eq!(
        summary.total - before.total,
        6,
        "{before:?} then {summary:?}"
    );
    assert_eq!(
        (
            summary.delivered - before.delivered,
            summary.settled - before.settled
        ),
        (2, 3)
    );
    let rate = summary.delivery_rate.expect("settled messages");
    let expected = summary.delivered as f64 / summary.settled as f64;
    assert!((rate - expected).abs() < 1e-9, "{rate}");
    let added = |status: &str| {
        let count = |summary: &smsdesk_client::DeliverySummaryDto| {
            summary
                .counts
                .iter()
                .find(|c| c.status == status)
                .map_or(0, |c| c.count)
        };
        count(&summary) - count(&before)
    };
    assert_eq!(
        ["queued", "delivered", "undelivered", "received"].map(added),
        [2, 2, 1, 1]
    );
    let order: Vec<&str> = summary.counts.iter().map(|c| c.status.as_str()).collect();
    let mut ranked = order.clone();
    ranked.sort_by_key(|status| {
        smsdesk_domain::status::KNOWN_STATUSES
            .iter()
            .position(|known| known.as_str() == *status)
    });
    assert_eq!(order, ranked, "the counts come in rank order");
    let default_window = client.delivery_summary(None).await.expect("summary");
    assert_eq!(default_window.window_hours, 24);

    // The history explains each error code it carries.
    let detail = client.get_message(&sids[2]).await.expect("found");
    let last = detail.history.last().expect("history");
    assert_eq!(last.status, "undelivered");
    assert_eq!(last.error_code, Some(30_003));
    assert!(
        last.error_reason
            .as_deref()
            .is_some_and(|reason| reason.contains("Unreachable")),
        "{last:?}"
    );

    let conversation = client
        .list_messages(&MessageFilter {
            party: Some(customer.into()),
            ..MessageFilter::default()
        })
        .await
        .expect("listed");
    let directions: Vec<&str> = conversation
        .messages
        .iter()
        .map(|m| m.direction.as_str())
        .collect();
    assert_eq!(
        directions,
        [
            "inbound",
            "outbound-api",
            "outbound-api",
            "outbound-api",
            "outbound-api"
        ]
    );

    for (hours, why) in [(0, "below the window"), (721, "above 30 days")] {
        let refused = client.delivery_summary(Some(hours)).await.expect_err(why);
        assert!(
            matches!(&refused, ClientError::Api { status: 400, error, .. }
                if error.code == "invalid_parameter" && error.field.as_deref() == Some("hours")),
            "{why}: {refused:?}"
        );
    }
    let key = app.api_key.clone();
    for (query, code) in [
        ("hours=abc", "invalid_parameter"),
        ("hours=1&hours=2", "invalid_parameter"),
        ("days=1", "unknown_parameter"),
    ] {
        let response = app
            .http
            .get(app.url(&format!("/api/messages/summary?{query}")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("answered");
        let (status, found, _) = error_code(response).await;
        assert_eq!((status.as_u16(), found.as_str()), (400, code), "{query}");
    }
    let unsigned = app
        .http
        .get(app.url("/api/messages/summary"))
        .send()
        .await
        .expect("answered");
    assert_eq!(unsigned.status(), 401);
}
