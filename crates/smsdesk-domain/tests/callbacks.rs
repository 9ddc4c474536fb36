//! Status callbacks and inbound SMS against the in-memory fakes: out-of-order delivery,
//! duplicates, callbacks that beat their message, inbound idempotency, and a property test that
//! interleaves callbacks with refresh polls.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use proptest::prelude::*;
use smsdesk_domain::fakes::{FakeSmsProvider, InMemoryStore, ManualClock};
use smsdesk_domain::ports::{IntegrationRepository, MessageRepository, NewIntegration, Sender};
use smsdesk_domain::rules::StaleReason;
use smsdesk_domain::secrecy::SecretString;
use smsdesk_domain::services::{
    ApplyStatusCallback, CallbackOutcome, InboundSms, ReceiveOutcome, ReceiveSms, Reconcile,
    ReconcilePolicy, RefreshStatus, StatusCallback, WebhookError,
};
use smsdesk_domain::status::KNOWN_STATUSES;
use smsdesk_domain::sweep::{SweepPolicy, TrafficEstimates};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, Plan, RefreshPolicy, Requester, Role, StatusObservation,
    TeamId, UserId,
};

const ACCOUNT: &str = "AC00000000000000000000000000000001";

fn account() -> AccountSid {
    AccountSid::parse(ACCOUNT).expect("valid")
}

fn team() -> TeamId {
    TeamId::new(1).expect("positive")
}

fn sid(n: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{n:032x}")).expect("valid sid")
}

struct World {
    store: InMemoryStore,
    provider: FakeSmsProvider,
    clock: ManualClock,
    callbacks: ApplyStatusCallback,
    inbound: ReceiveSms,
    refresh: RefreshStatus,
    reconcile: Reconcile,
    /// When the world's messages are created (the clock's start).
    created: smsdesk_domain::Timestamp,
}

impl World {
    async fn new() -> Self {
        let store = InMemoryStore::new();
        let provider = FakeSmsProvider::new();
        let clock = ManualClock::new(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
                .single()
                .expect("valid"),
        );
        store
            .upsert(
                team(),
                NewIntegration {
                    account_sid: account(),
                    auth_token: SecretString::from("token"),
                    api_key: None,
                    sender: Sender::Number(PhoneNumber::parse("+15005550006").expect("valid")),
                },
            )
            .await
            .expect("integration stored");
        let callbacks = ApplyStatusCallback::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(clock.clone()),
        );
        let inbound = ReceiveSms::new(Arc::new(store.clone()), Arc::new(clock.clone()));
        let refresh = RefreshStatus::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(provider.clone()),
            Arc::new(store.clone()),
            Arc::new(clock.clone()),
            RefreshPolicy::default(),
        );
        // Every step's sweep covers the message: no minimum age, and sweeps even for one message.
        let sweeps = SweepPolicy {
            min_candidates: 1,
            ..SweepPolicy::default()
        };
        let traffic = Arc::new(TrafficEstimates::new());
        let refresh = refresh.with_sweeps(sweeps, traffic.clone());
        let reconcile = Reconcile::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(provider.clone()),
            Arc::new(clock.clone()),
            ReconcilePolicy {
                min_age: Duration::ZERO,
                ..ReconcilePolicy::default()
            },
        )
        .with_sweeps(sweeps, traffic);
        let created = smsdesk_domain::ports::Clock::now(&clock);
        Self {
            store,
            provider,
            clock,
            callbacks,
            inbound,
            refresh,
            reconcile,
            created,
        }
    }

    /// Twilio now lists `sid` in `status` (sent when the message was created).
    fn listed_as(&self, sid: &MessageSid, status: MessageStatus) {
        self.provider.set_state(sid, DeliveryState::new(status));
        self.provider.set_sent_at(sid, self.created);
    }

    async fn sent_message(&self, n: u32, status: MessageStatus) -> MessageSid {
        let now = smsdesk_domain::ports::Clock::now(&self.clock);
        self.store
            .insert(NewMessage {
                sid: sid(n),
                team_id: team(),
                account_sid: account(),
                direction: Direction::OutboundApi,
                from: Address::parse("+15005550006").expect("valid"),
                to: Address::parse("+14155550100").expect("valid"),
                body: "hello".into(),
                first_observation: StatusObservation {
                    state: DeliveryState::new(status),
                    source: ObservationSource::Send,
                    observed_at: now,
                },
                created_at: now,
                reference: None,
            })
            .await
            .expect("stored");
        sid(n)
    }

    async fn callback(&self, sid: &MessageSid, status: MessageStatus) -> CallbackOutcome {
        self.callbacks
            .apply(
                team(),
                StatusCallback {
                    sid: sid.clone(),
                    state: DeliveryState::new(status),
                },
            )
            .await
            .expect("store up")
    }

    async fn status_of(&self, sid: &MessageSid) -> MessageStatus {
        self.store
            .find(team(), sid)
            .await
            .expect("store up")
            .expect("exists")
            .delivery
            .status
    }
}

#[tokio::test]
async fn out_of_order_callbacks_end_at_the_furthest_status() {
    let world = World::new().await;
    let message = world.sent_message(1, MessageStatus::Queued).await;
    assert_eq!(
        world.callback(&message, MessageStatus::Delivered).await,
        CallbackOutcome::Advanced {
            from: MessageStatus::Queued,
            to: MessageStatus::Delivered
        }
    );
    assert_eq!(
        world.callback(&message, MessageStatus::Sent).await,
        CallbackOutcome::Stale {
            reason: StaleReason::AlreadyTerminal
        }
    );
    assert_eq!(world.status_of(&message).await, MessageStatus::Delivered);
    let history = world.store.history(team(), &message).await.expect("up");
    let recorded: Vec<(MessageStatus, bool)> = history
        .iter()
        .map(|e| (e.observation.state.status.clone(), e.applied))
        .collect();
    assert_eq!(
        recorded,
        [
            (MessageStatus::Queued, true),
            (MessageStatus::Delivered, true),
            (MessageStatus::Sent, false)
        ],
        "every observation is recorded, applied or not"
    );
}

#[tokio::test]
async fn a_retried_callback_is_counted_once() {
    let world = World::new().await;
    let message = world.sent_message(1, MessageStatus::Sent).await;
    assert!(matches!(
        world.callback(&message, MessageStatus::Delivered).await,
        CallbackOutcome::Advanced { .. }
    ));
    assert_eq!(
        world.callback(&message, MessageStatus::Delivered).await,
        CallbackOutcome::Duplicate
    );
    assert_eq!(world.store.event_count(), 2, "the send and one callback");
}

#[tokio::test]
async fn a_callback_that_beats_its_message_is_applied_once_the_message_is_stored() {
    let world = World::new().await;
    let early = sid(9);
    assert_eq!(
        world.callback(&early, MessageStatus::Sent).await,
        CallbackOutcome::Parked
    );
    assert_eq!(
        world.callback(&early, MessageStatus::Sent).await,
        CallbackOutcome::Parked,
        "parking twice keeps one"
    );
    world.sent_message(9, MessageStatus::Queued).await;
    let replayed = world
        .callbacks
        .replay_parked(team(), &early)
        .await
        .expect("store up");
    assert_eq!(
        replayed,
        [CallbackOutcome::Advanced {
            from: MessageStatus::Queued,
            to: MessageStatus::Sent
        }]
    );
    assert_eq!(world.status_of(&early).await, MessageStatus::Sent);
    assert!(
        world
            .callbacks
            .replay_parked(team(), &early)
            .await
            .expect("up")
            .is_empty(),
        "a replay takes the parked callbacks away"
    );
}

#[tokio::test]
async fn parked_callbacks_whose_message_never_appears_are_discarded() {
    let world = World::new().await;
    world.callback(&sid(3), MessageStatus::Sent).await;
    world.clock.advance(Duration::from_secs(3600));
    let cutoff = smsdesk_domain::ports::Clock::now(&world.clock) - chrono::Duration::minutes(10);
    let discarded =
        smsdesk_domain::ports::CallbackInbox::discard_parked_before(&world.store, cutoff)
            .await
            .expect("up");
    assert_eq!(discarded, 1);
}

#[tokio::test]
async fn a_webhook_from_an_unknown_account_is_refused() {
    let world = World::new().await;
    let stranger = AccountSid::parse("AC99999999999999999999999999999999").expect("valid");
    assert!(matches!(
        world.callbacks.integration_for(&stranger).await,
        Err(WebhookError::UnknownAccount)
    ));
    assert!(world.callbacks.integration_for(&account()).await.is_ok());
}

#[tokio::test]
async fn inbound_sms_is_stored_once_per_sid() {
    let world = World::new().await;
    let integration = world
        .callbacks
        .integration_for(&account())
        .await
        .expect("known");
    let sms = InboundSms {
        sid: sid(42),
        account_sid: account(),
        from: Address::parse("+14155550100").expect("valid"),
        to: Address::parse("+15005550006").expect("valid"),
        body: "STOP".into(),
        num_segments: Some(1),
    };
    assert_eq!(
        world.inbound.receive(&integration, sms.clone()).await,
        Ok(ReceiveOutcome::Stored)
    );
    assert_eq!(
        world.inbound.receive(&integration, sms.clone()).await,
        Ok(ReceiveOutcome::AlreadyStored)
    );
    let stored = world
        .store
        .find(team(), &sid(42))
        .await
        .expect("up")
        .expect("stored");
    assert_eq!(
        (stored.direction, stored.delivery.status),
        (Direction::Inbound, MessageStatus::Received)
    );
    assert_eq!(world.store.all_messages().len(), 1);

    let mut foreign = sms;
    foreign.sid = sid(43);
    foreign.account_sid = AccountSid::parse("AC99999999999999999999999999999999").expect("valid");
    assert_eq!(
        world.inbound.receive(&integration, foreign).await,
        Err(WebhookError::UnknownAccount)
    );
}

/// One step of the interleaving property test.
#[derive(Debug, Clone)]
enum Step {
    Callback(MessageStatus),
    Poll(MessageStatus),
    /// A bulk refresh whose sweep lists the message in this status.
    BulkSweep(MessageStatus),
    /// A reconciler run whose sweep lists the message in this status.
    Reconcile(MessageStatus),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let status = proptest::sample::select(KNOWN_STATUSES.to_vec());
    proptest::collection::vec(
        prop_oneof![
            status.clone().prop_map(Step::Callback),
            status.clone().prop_map(Step::Poll),
            status.clone().prop_map(Step::BulkSweep),
            status.prop_map(Step::Reconcile),
        ],
        1..25,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Callbacks, refresh polls, bulk refreshes' sweeps and reconciler sweeps interleaved at
    /// random never leave the stored status below an observation that was applied, and once
    /// terminal it changes only from delivered to read.
    #[test]
    fn callbacks_refreshes_and_sweeps_interleaved_never_regress_a_message(
        start in proptest::sample::select(vec![MessageStatus::Queued, MessageStatus::Accepted, MessageStatus::Sending]),
        steps in steps(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let world = World::new().await;
            let message = world.sent_message(1, start).await;
            let requester = Requester {
                team_id: team(),
                user_id: UserId::new(1).expect("positive"),
                plan: Plan::Pro,
                role: Role::Member,
            };
            let mut previous = world.status_of(&message).await;
            for step in steps {
                match step {
                    Step::Callback(status) => {
                        world.callback(&message, status).await;
                    }
                    Step::Poll(status) => {
                        world.provider.set_state(&message, DeliveryState::new(status));
                        world.clock.advance(Duration::from_secs(61));
                        world.refresh.refresh_one(&requester, &message).await.expect("refresh");
                    }
                    Step::BulkSweep(status) => {
                        world.listed_as(&message, status);
                        world.clock.advance(Duration::from_secs(61));
                        world
                            .refresh
                            .refresh_recent(&requester, smsdesk_domain::RefreshWindow::default())
                            .await
                            .expect("bulk refresh");
                    }
                    Step::Reconcile(status) => {
                        world.listed_as(&message, status);
                        world.clock.advance(Duration::from_secs(1));
                        world.reconcile.run().await.expect("reconciled");
                    }
                }
                let now = world.status_of(&message).await;
                let history = world.store.history(team(), &message).await.expect("up");
                let highest_applied = history
                    .iter()
                    .filter(|e| e.applied)
                    .filter_map(|e| e.observation.state.status.rank())
                    .max();
                prop_assert!(now.rank() >= highest_applied, "{now} ranks below an applied observation");
                if previous.is_terminal() && previous != now {
                    prop_assert_eq!((&previous, &now), (&MessageStatus::Delivered, &MessageStatus::Read));
                }
                previous = now;
            }
            Ok(())
        })?;
    }
}
