//! Delivery webhooks survive `kill -9`: a real `smsdesk` process on PostgreSQL records a delivery
//! in the transaction of each change, fails to reach a receiver that is down, and is killed with
//! SIGKILL while every delivery is still pending. A second process on the same database, started
//! once the receiver is up, delivers every one of them, each message's in order, signed with the
//! endpoint's secret.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use smsdesk_client::{SendSmsDto, WebhookEndpointRequestDto};
use smsdesk_domain::Plan;
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_domain::webhooks::WebhookSecret;
use smsdesk_test_support::app::{callback_params, credentials, fresh_postgres, post_webhook, sign};
use smsdesk_test_support::processes::{FleetSpec, ReplicaProcess, smsdesk_binary};
use smsdesk_test_support::receiver::{WebhookReceiver, reserve_port, statuses_per_message};
use smsdesk_twilio_sim::{SimConfig, SimServer};

/// Messages sent; each then moves to `sent` and `delivered` by callback: three changes each.
const MESSAGES: usize = 8;
const STATUSES: [&str; 3] = ["queued", "sent", "delivered"];

#[tokio::test]
async fn kill_9_with_deliveries_pending_loses_none_after_a_restart() {
    let test = "kill_9_with_deliveries_pending";
    let Some(binary) = smsdesk_binary(test) else {
        return;
    };
    let Some(database) = fresh_postgres(test).await else {
        return;
    };
    let sim = Arc::new(
        SimServer::start(SimConfig {
            speed: 0.0,
            ..SimConfig::default()
        })
        .await
        .expect("the simulator starts"),
    );
    let fleet = FleetSpec {
        binary,
        database_url: database.url.clone(),
        encryption_key: smsdesk_store::SecretCipher::generate_key(),
        sim,
        // Development: the receiver is plain http on loopback, which production refuses.
        env: vec![("SMSDESK_ENV".into(), "development".into())],
    };
    let receiver_address = reserve_port();
    let mut first = ReplicaProcess::start(&fleet, 1).await;
    let (team, key) = first.app.new_team("Hooks", Plan::Pro).await;
    let client = first.app.client_with(&key);
    let created = client
        .create_webhook_endpoint(&WebhookEndpointRequestDto {
            url: Some(format!("http://{receiver_address}/hook")),
            ..WebhookEndpointRequestDto::default()
        })
        .await
        .expect("the endpoint is created");
    let secret = WebhookSecret::parse(&created.secret).expect("a usable secret");
    let endpoint = created.endpoint.id;

    let (account, token) = credentials(&first.app, team).await;
    let mut sids = Vec::new();
    for n in 0..MESSAGES {
        let sent = client
            .send_sms(
                &SendSmsDto {
                    to: format!("+1415555031{n}"),
                    body: format!("crash {n}"),
                    from: None,
                    messaging_service_sid: None,
                    reference: None,
                },
                None,
            )
            .await
            .expect("sent");
        for status in &STATUSES[1..] {
            let params = callback_params(&account, &sent.message.sid, status);
            let signature = sign(&first.app, STATUS_CALLBACK_PATH, &token, &params);
            let answer =
                post_webhook(&first.app, STATUS_CALLBACK_PATH, &params, Some(&signature)).await;
            assert_eq!(answer.status(), StatusCode::OK, "the callback is taken");
        }
        sids.push(sent.message.sid);
    }

    // Every change has its delivery, and each message's first has failed against the closed
    // port (the next waits behind it): the process dies with all of them pending.
    let started = Instant::now();
    loop {
        let page = client
            .webhook_deliveries(&endpoint, Some(200))
            .await
            .expect("listed");
        let tried = page
            .deliveries
            .iter()
            .filter(|d| !d.attempts.is_empty())
            .count();
        if page.deliveries.len() == MESSAGES * STATUSES.len() && tried == MESSAGES {
            assert!(
                page.deliveries.iter().all(|d| d.status == "pending"),
                "nothing could be delivered: {page:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first attempts were not made: {} deliveries, {tried} tried",
            page.deliveries.len()
        );
        // A polling interval while the process attempts, not a wait for time to pass.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();

    let receiver = WebhookReceiver::start_on(receiver_address);
    let second = ReplicaProcess::start(&fleet, 2).await;
    let expected = MESSAGES * STATUSES.len();
    let received = receiver
        .wait_for(Duration::from_secs(60), "every pending delivery", |seen| {
            seen.iter()
                .filter(|d| d.accepted)
                .map(|d| &d.id)
                .collect::<HashSet<_>>()
                .len()
                >= expected
        })
        .await;

    for delivery in &received {
        assert!(
            delivery.verifies(&secret),
            "signed with the endpoint's secret: {delivery:?}"
        );
    }
    let ids: HashSet<&str> = received.iter().map(|d| d.id.as_str()).collect();
    let per_message = statuses_per_message(&received);
    for sid in &sids {
        assert_eq!(
            per_message.get(sid).map(Vec::as_slice),
            Some(&STATUSES.map(str::to_owned)[..]),
            "{sid}: every change, in order"
        );
    }
    let after = second
        .app
        .client_with(&key)
        .webhook_deliveries(&endpoint, Some(200))
        .await
        .expect("listed");
    assert_eq!(after.deliveries.len(), expected);
    for delivery in &after.deliveries {
        assert!(
            ids.contains(delivery.webhook_id.as_str()),
            "{} arrived",
            delivery.webhook_id
        );
    }
    let settled = Instant::now();
    loop {
        let page = second
            .app
            .client_with(&key)
            .webhook_deliveries(&endpoint, Some(200))
            .await
            .expect("listed");
        if page.deliveries.iter().all(|d| d.status == "delivered") {
            break;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(10),
            "every delivery is recorded as delivered: {page:?}"
        );
        // A polling interval while the last attempt's outcome is written.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
