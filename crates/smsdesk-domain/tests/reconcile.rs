//! The `Reconcile` use case against the in-memory fakes: what it sweeps, what it moves, what it
//! leaves alone, and what it reports.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use smsdesk_domain::changes::Activity;
use smsdesk_domain::fakes::{FakeSmsProvider, InMemoryStore, ManualClock, RecordingNotifier};
use smsdesk_domain::ports::{IntegrationRepository, MessageRepository, NewIntegration, Sender};
use smsdesk_domain::secrecy::SecretString;
use smsdesk_domain::services::{Reconcile, ReconcilePolicy, ReconcileReport};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, StatusObservation, TeamId, Timestamp,
};

fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn team(n: i64) -> TeamId {
    TeamId::new(n).expect("positive")
}

fn sid(n: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{n:032x}")).expect("valid sid")
}

struct World {
    store: InMemoryStore,
    provider: FakeSmsProvider,
    notifier: RecordingNotifier,
    reconcile: Reconcile,
}

impl World {
    async fn new() -> Self {
        let store = InMemoryStore::new();
        let provider = FakeSmsProvider::new();
        let clock = ManualClock::new(t0());
        let notifier = RecordingNotifier::default();
        store
            .upsert(
                team(1),
                NewIntegration {
                    account_sid: AccountSid::parse("AC00000000000000000000000000000001")
                        .expect("valid"),
                    auth_token: SecretString::from("token"),
                    api_key: None,
                    sender: Sender::Number(PhoneNumber::parse("+15005550006").expect("valid")),
                },
            )
            .await
            .expect("integration");
        let reconcile = Reconcile::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(provider.clone()),
            Arc::new(clock),
            ReconcilePolicy::default(),
        )
        .with_stuck_timeouts(Arc::new(store.clone()))
        .with_notifier(Arc::new(notifier.clone()));
        Self {
            store,
            provider,
            notifier,
            reconcile,
        }
    }

    /// Message `n` of `team_no`, created `minutes` before t0, stored as `stored`; Twilio lists
    /// it as `at_twilio`, sent a second after it was created.
    async fn message(
        &self,
        n: u32,
        team_no: i64,
        minutes: i64,
        stored: MessageStatus,
        at_twilio: MessageStatus,
    ) {
        let created_at = t0() - chrono::Duration::minutes(minutes);
        self.store
            .insert(NewMessage {
                sid: sid(n),
                team_id: team(team_no),
                account_sid: AccountSid::parse("AC00000000000000000000000000000001")
                    .expect("valid"),
                direction: Direction::OutboundApi,
                from: Address::parse("+15005550006").expect("valid"),
                to: Address::parse("+14155550100").expect("valid"),
                body: "hello".into(),
                first_observation: StatusObservation {
                    state: DeliveryState::new(stored),
                    source: ObservationSource::Send,
                    observed_at: created_at,
                },
                created_at,
                reference: None,
            })
            .await
            .expect("stored");
        self.provider
            .set_state(&sid(n), DeliveryState::new(at_twilio));
        self.provider
            .set_sent_at(&sid(n), created_at + chrono::Duration::seconds(1));
    }

    async fn status(&self, team_no: i64, n: u32) -> MessageStatus {
        self.store
            .find(team(team_no), &sid(n))
            .await
            .expect("up")
            .expect("present")
            .delivery
            .status
    }
}

#[tokio::test]
async fn a_run_moves_what_the_list_shows_changed_and_records_nothing_else() {
    let world = World::new().await;
    world
        .message(1, 1, 30, MessageStatus::Sent, MessageStatus::Delivered)
        .await;
    world
        .message(2, 1, 25, MessageStatus::Sent, MessageStatus::Sent)
        .await;
    world
        .message(3, 1, 20, MessageStatus::Queued, MessageStatus::Undelivered)
        .await;
    let events_before = world.store.event_count();

    let report = world.reconcile.run().await.expect("ran");
    assert_eq!(
        report,
        ReconcileReport {
            accounts_swept: 1,
            accounts_failed: 0,
            messages_moved: 2,
            twilio_requests: 1,
            timed_out: 0,
        }
    );
    assert_eq!(world.status(1, 1).await, MessageStatus::Delivered);
    assert_eq!(world.status(1, 3).await, MessageStatus::Undelivered);
    assert_eq!(
        world.store.event_count(),
        events_before + 2,
        "an unchanged listing is no news: no history row"
    );
    let history = world.store.history(team(1), &sid(1)).await.expect("up");
    assert_eq!(
        history.last().map(|e| e.observation.source),
        Some(ObservationSource::Sweep)
    );
    assert_eq!(
        world.notifier.changes().len(),
        2,
        "each move is a committed change"
    );
    assert!(
        world
            .notifier
            .activities()
            .contains(&Activity::Reconciled(report)),
        "the run's report reaches the metrics"
    );

    let again = world.reconcile.run().await.expect("ran");
    assert_eq!(
        (again.accounts_swept, again.messages_moved),
        (1, 0),
        "message 2 is still unfinished, so the account is looked at again, and nothing moves"
    );
}

#[tokio::test]
async fn young_messages_and_teams_without_twilio_are_left_alone() {
    let world = World::new().await;
    // Younger than the minimum age: left to its callbacks.
    world
        .message(1, 1, 5, MessageStatus::Sent, MessageStatus::Delivered)
        .await;
    // Team 2 has no integration.
    world
        .message(2, 2, 30, MessageStatus::Sent, MessageStatus::Delivered)
        .await;
    let report = world.reconcile.run().await.expect("ran");
    assert_eq!(report, ReconcileReport::default(), "nothing to sweep");
    assert_eq!(world.status(1, 1).await, MessageStatus::Sent);
    assert_eq!(world.provider.list_calls(), 0, "Twilio was not asked");
    assert_eq!(
        world.reconcile.policy().min_age,
        Duration::from_secs(600),
        "ten minutes by default"
    );
}

#[tokio::test]
async fn a_message_stuck_past_the_limit_is_declared_unknown_until_a_late_receipt() {
    let world = World::new().await;
    // 73 hours old, still `sent`: past the 72-hour limit, and older than the sweeps look.
    world
        .message(1, 1, 73 * 60, MessageStatus::Sent, MessageStatus::Sent)
        .await;
    world
        .message(2, 1, 60, MessageStatus::Sent, MessageStatus::Sent)
        .await;
    let report = world.reconcile.run().await.expect("ran");
    assert_eq!(report.timed_out, 1, "{report:?}");
    let stuck = world
        .store
        .find(team(1), &sid(1))
        .await
        .expect("up")
        .expect("present");
    assert_eq!(stuck.delivery_unknown_at, Some(t0()));
    assert_eq!(stuck.delivery.status, MessageStatus::Sent);
    let announced: Vec<_> = world
        .notifier
        .changes()
        .into_iter()
        .filter(|change| change.source == ObservationSource::Timeout)
        .map(|change| change.sid)
        .collect();
    assert_eq!(
        announced,
        vec![sid(1)],
        "the declaration is a committed change"
    );
    assert_eq!(
        world.reconcile.run().await.expect("ran").timed_out,
        0,
        "declared once"
    );

    // Twilio's receipt arrives days late: it still applies, and the message is no longer stuck.
    let callbacks = smsdesk_domain::services::ApplyStatusCallback::new(
        Arc::new(world.store.clone()),
        Arc::new(world.store.clone()),
        Arc::new(world.store.clone()),
        Arc::new(ManualClock::new(t0() + chrono::Duration::hours(1))),
    );
    callbacks
        .apply(
            team(1),
            smsdesk_domain::services::StatusCallback {
                sid: sid(1),
                state: DeliveryState::new(MessageStatus::Delivered),
            },
        )
        .await
        .expect("applied");
    let home = world
        .store
        .find(team(1), &sid(1))
        .await
        .expect("up")
        .expect("present");
    assert_eq!(
        (home.delivery.status, home.delivery_unknown_at),
        (MessageStatus::Delivered, None)
    );
}
