//! The delivery-webhook use cases against the in-memory fakes and a manual clock: retries with
//! one `webhook-id`, signatures a receiver verifies, a receiver down for an hour catching up in
//! order, 410 disabling, and the admin rules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use smsdesk_domain::fakes::{CountingSecrets, InMemoryStore, ManualClock, RecordingTransport};
use smsdesk_domain::ports::{
    Clock, MessageRepository, ObservationWrite, StateChange, WebhookRepository,
};
use smsdesk_domain::services::{
    DeliverWebhooks, EndpointRequest, ManageWebhooks, ManageWebhooksError,
};
use smsdesk_domain::webhooks::{
    DeliveryStatus, DisabledReason, InvalidEndpointUrl, UrlPolicy, WebhookSecret, verify,
};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, Plan, Requester, Role, StatusObservation, TeamId, Timestamp, UserId,
};

fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn sid(n: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{n:032x}")).expect("valid sid")
}

fn admin_of(team: i64) -> Requester {
    Requester {
        team_id: TeamId::new(team).expect("team"),
        user_id: UserId::new(1).expect("user"),
        plan: Plan::Pro,
        role: Role::Admin,
    }
}

struct Harness {
    store: InMemoryStore,
    clock: ManualClock,
    receiver: RecordingTransport,
    manage: ManageWebhooks,
    deliver: DeliverWebhooks,
    team: TeamId,
}

impl Harness {
    fn new() -> Self {
        let store = InMemoryStore::new();
        let clock = ManualClock::new(t0());
        let receiver = RecordingTransport::new();
        let manage = ManageWebhooks::new(
            Arc::new(store.clone()),
            Arc::new(CountingSecrets::default()),
            UrlPolicy::DEVELOPMENT,
        )
        .with_clock(Arc::new(clock.clone()));
        let deliver = DeliverWebhooks::new(Arc::new(store.clone()), Arc::new(receiver.clone()))
            .with_clock(Arc::new(clock.clone()));
        Self {
            store,
            clock,
            receiver,
            manage,
            deliver,
            team: TeamId::new(1).expect("team"),
        }
    }

    async fn endpoint(&self) -> WebhookSecret {
        let admin = ManageWebhooks::authorize(&admin_of(1)).expect("admin");
        self.manage
            .create(
                admin,
                EndpointRequest {
                    url: Some("http://127.0.0.1:9/hooks".into()),
                    ..EndpointRequest::default()
                },
            )
            .await
            .expect("created")
            .secret
    }

    async fn message(&self, n: u32) {
        self.store
            .insert(NewMessage {
                sid: sid(n),
                team_id: self.team,
                account_sid: AccountSid::parse("AC00000000000000000000000000000001")
                    .expect("valid"),
                direction: Direction::OutboundApi,
                from: Address::parse("+15005550006").expect("valid"),
                to: Address::parse("+14155550100").expect("valid"),
                body: "hi".into(),
                first_observation: StatusObservation {
                    state: DeliveryState::new(MessageStatus::Queued),
                    source: ObservationSource::Send,
                    observed_at: self.clock.now(),
                },
                created_at: self.clock.now(),
                reference: None,
            })
            .await
            .expect("stored");
    }

    async fn advance(&self, n: u32, from: MessageStatus, to: MessageStatus) {
        let outcome = self
            .store
            .apply_observations(
                self.team,
                vec![ObservationWrite {
                    sid: sid(n),
                    observation: StatusObservation {
                        state: DeliveryState::new(to.clone()),
                        source: ObservationSource::Callback,
                        observed_at: self.clock.now(),
                    },
                    change: Some(StateChange {
                        expected_status: from,
                        expected_updated_at: None,
                        next: DeliveryState::new(to),
                    }),
                }],
            )
            .await
            .expect("applied");
        assert_eq!(outcome.len(), 1);
    }

    /// Runs the worker every `step` for `span`, as the service's loop would.
    async fn run_for(&self, span: Duration, step: Duration) {
        let mut waited = Duration::ZERO;
        while waited <= span {
            self.deliver.deliver_due().await.expect("a round");
            self.clock.advance(step);
            waited += step;
        }
    }
}

#[tokio::test]
async fn a_receiver_failing_three_times_then_answering_gets_the_event_once_with_one_webhook_id() {
    let world = Harness::new();
    let secret = world.endpoint().await;
    world.receiver.answer_next([
        Ok(500),
        Err("timed out after 10 s".to_owned()),
        Ok(503),
        Ok(204),
    ]);
    world.message(1).await;
    // 5 s, 5 min and 30 min of back-off (each within ±10 %) fit in 40 minutes.
    world
        .run_for(Duration::from_secs(40 * 60), Duration::from_secs(1))
        .await;

    let posted = world.receiver.posted();
    assert_eq!(
        posted.len(),
        4,
        "three failures, then the success, then nothing more"
    );
    let ids: Vec<&str> = posted
        .iter()
        .filter_map(|p| p.header("webhook-id"))
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    for post in &posted {
        let timestamp: i64 = post
            .header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .expect("a timestamp");
        let signature = post.header("webhook-signature").expect("signed");
        let at = chrono::DateTime::from_timestamp(timestamp, 0).expect("time");
        assert!(
            verify(&secret, signature, ids[0], timestamp, &post.body, at),
            "{signature}"
        );
        assert_eq!(post.json()["type"], "message.status_changed");
        assert_eq!(post.json()["data"]["sid"], sid(1).to_string());
    }
    let gaps: Vec<i64> = posted
        .windows(2)
        .map(|pair| {
            let at = |p: &smsdesk_domain::fakes::PostedDelivery| {
                p.header("webhook-timestamp")
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or_default()
            };
            at(&pair[1]) - at(&pair[0])
        })
        .collect();
    for (gap, base) in gaps.iter().zip([5, 300, 1800]) {
        assert!(
            (base * 9 / 10..=base * 11 / 10 + 1).contains(gap),
            "waited {gap}s where the schedule says {base}s ±10 %"
        );
    }
    let listed = world
        .store
        .list_deliveries(
            world.team,
            smsdesk_domain::webhooks::EndpointId::new(1),
            None,
            10,
        )
        .await
        .expect("listed");
    assert_eq!(listed[0].status, DeliveryStatus::Delivered);
    assert_eq!(listed[0].attempts.len(), 4);
    assert_eq!(listed[0].attempts[0].status_code, Some(204));
    assert_eq!(
        listed[0].attempts[2].error.as_deref(),
        Some("timed out after 10 s"),
        "no answer is kept as its reason"
    );
}

#[tokio::test]
async fn a_receiver_down_for_an_hour_gets_everything_in_order_when_it_returns() {
    let world = Harness::new();
    world.endpoint().await;
    world
        .receiver
        .answer_otherwise(Err("could not connect".to_owned()));
    let journeys = [
        vec![
            MessageStatus::Queued,
            MessageStatus::Sent,
            MessageStatus::Delivered,
        ],
        vec![
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Sent,
            MessageStatus::Undelivered,
        ],
        vec![MessageStatus::Queued, MessageStatus::Failed],
    ];
    for (n, _) in (1..).zip(&journeys) {
        world.message(n).await;
    }
    // The changes happen over the hour the receiver is down.
    for step in 1..4 {
        world
            .run_for(Duration::from_secs(10 * 60), Duration::from_secs(30))
            .await;
        for (n, journey) in (1..).zip(&journeys) {
            if let [.., from, to] = journey.get(..=step).unwrap_or_default() {
                world.advance(n, from.clone(), to.clone()).await;
            }
        }
    }
    world
        .run_for(Duration::from_secs(30 * 60), Duration::from_secs(30))
        .await;
    let while_down = world.receiver.posted().len();
    world.receiver.answer_otherwise(Ok(200));
    // The longest back-off reached in an hour is 2 h; 4 h covers every retry that follows it.
    world
        .run_for(Duration::from_secs(4 * 3600), Duration::from_secs(60))
        .await;

    let after: Vec<_> = world.receiver.posted().split_off(while_down);
    let mut delivered: HashMap<String, Vec<String>> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for post in &after {
        let body = post.json();
        assert!(
            ids.insert(post.header("webhook-id").unwrap_or_default().to_owned()),
            "each event delivered once after the return"
        );
        delivered
            .entry(body["data"]["sid"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(
                body["data"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
    }
    for (n, journey) in (1..).zip(&journeys) {
        let expected: Vec<String> = journey.iter().map(|s| s.as_str().to_owned()).collect();
        assert_eq!(
            delivered.get(&sid(n).to_string()),
            Some(&expected),
            "message {n}: every change, in the order it happened"
        );
    }
    assert!(while_down > 0, "attempts were made while it was down");
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_holds_its_deliveries() {
    let world = Harness::new();
    world.endpoint().await;
    world.receiver.answer_next([Ok(410)]);
    world.message(1).await;
    let round = world.deliver.deliver_due().await.expect("a round");
    assert_eq!((round.attempted, round.gone), (1, 1));
    let admin = ManageWebhooks::authorize(&admin_of(1)).expect("admin");
    let endpoint = world.manage.list(admin).await.expect("listed").remove(0);
    assert!(!endpoint.enabled);
    assert_eq!(endpoint.disabled_reason, Some(DisabledReason::Gone));
    world.message(2).await;
    world
        .run_for(Duration::from_secs(3600), Duration::from_secs(60))
        .await;
    assert_eq!(
        world.receiver.posted().len(),
        1,
        "nothing is posted while it is disabled"
    );
}

#[tokio::test]
async fn only_admins_manage_endpoints_and_urls_follow_the_deployments_policy() {
    let member = Requester {
        role: Role::Member,
        ..admin_of(1)
    };
    assert_eq!(
        ManageWebhooks::authorize(&member).err(),
        Some(ManageWebhooksError::NotAdmin)
    );
    let store = InMemoryStore::new();
    let production = ManageWebhooks::new(
        Arc::new(store.clone()),
        Arc::new(CountingSecrets::default()),
        UrlPolicy::PRODUCTION,
    );
    let admin = ManageWebhooks::authorize(&admin_of(1)).expect("admin");
    for (url, refused) in [
        ("http://hooks.example.com/", InvalidEndpointUrl::NotHttps),
        (
            "https://192.168.1.10/",
            InvalidEndpointUrl::NonPublicAddress,
        ),
    ] {
        let answer = production
            .create(
                admin,
                EndpointRequest {
                    url: Some(url.into()),
                    ..EndpointRequest::default()
                },
            )
            .await;
        assert_eq!(
            answer.err(),
            Some(ManageWebhooksError::InvalidUrl(refused)),
            "{url}"
        );
    }
    let unknown = production
        .create(
            admin,
            EndpointRequest {
                url: Some("https://hooks.example.com/".into()),
                events: Some(vec!["message.deleted".into()]),
                ..EndpointRequest::default()
            },
        )
        .await;
    assert!(matches!(
        unknown,
        Err(ManageWebhooksError::InvalidEvents(_))
    ));
    assert!(
        store
            .list_endpoints(admin.team())
            .await
            .expect("listed")
            .is_empty(),
        "nothing stored for refused input"
    );
    let created = production
        .create(
            admin,
            EndpointRequest {
                url: Some("https://hooks.example.com/sms".into()),
                ..EndpointRequest::default()
            },
        )
        .await
        .expect("created");
    let rotated = production
        .rotate_secret(admin, created.endpoint.id)
        .await
        .expect("rotated");
    assert_ne!(rotated.secret.expose(), created.secret.expose());
    assert!(rotated.endpoint.previous_secret_expires_at.is_some());
    let other = ManageWebhooks::authorize(&admin_of(2)).expect("admin");
    assert_eq!(
        production.get(other, created.endpoint.id).await.err(),
        Some(ManageWebhooksError::NotFound),
        "another team's admin cannot see it"
    );
}
