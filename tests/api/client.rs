//! The typed client (`smsdesk-client`) against the whole service: idempotent sends, references
//! and filters, API keys, and delivery webhooks to a real receiver on loopback (signed, in order
//! per message, listed with their attempts, surviving a secret rotation).

use std::time::Duration;

use smsdesk_client::{ClientError, MessageFilter, SendSmsDto, WebhookEndpointRequestDto};
use smsdesk_domain::webhooks::WebhookSecret;
use smsdesk_domain::{MessageStatus, Plan};
use smsdesk_test_support::app::spawn_app;
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

    let page = client
        .webhook_deliveries(&endpoint, None)
        .await
        .expect("listed");
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
