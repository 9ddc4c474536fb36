//! The one path of a change, against the in-memory fakes: every use case that stores something
//! hands what it committed to the `ChangeNotifier`, and the race between a send and its early
//! callbacks is closed inside the domain, so an embedder behaves like the HTTP service.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::TimeZone;
use smsdesk_domain::changes::{Activity, ChangeKind, CooldownScope, RefreshMode};
use smsdesk_domain::fakes::{FakeSmsProvider, InMemoryStore, ManualClock, RecordingNotifier};
use smsdesk_domain::ports::{
    CallbackInbox, IntegrationRepository, MessageRepository, RepositoryError,
};
use smsdesk_domain::secrecy::SecretString;
use smsdesk_domain::services::{
    ApplyStatusCallback, CallbackOutcome, ConfigureIntegration, InboundSms, IntegrationSettings,
    ReceiveSms, RefreshStatus, RefreshTarget, SendRequest, SendSms, StatusCallback, TeamAdmin,
};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Message, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, Plan, RefreshPolicy, RefreshWindow, Requester, Role,
    StatusObservation, TeamId, Timestamp, UserId,
};

const ACCOUNT: &str = "AC00000000000000000000000000000001";

fn team() -> TeamId {
    TeamId::new(1).expect("positive")
}

fn pro() -> Requester {
    Requester {
        team_id: team(),
        user_id: UserId::new(1).expect("positive"),
        plan: Plan::Pro,
        role: Role::Member,
    }
}

/// The SID the fake provider gives the `n`th message it sends.
fn nth_sent(n: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{n:032x}")).expect("valid sid")
}

fn callback(sid: &MessageSid, status: MessageStatus) -> StatusCallback {
    StatusCallback {
        sid: sid.clone(),
        state: DeliveryState::new(status),
    }
}

struct World {
    provider: FakeSmsProvider,
    notifier: RecordingNotifier,
    send: SendSms,
    callbacks: ApplyStatusCallback,
    refresh: RefreshStatus,
}

impl World {
    async fn new() -> Self {
        Self::over(InMemoryStore::new()).await
    }

    /// Another world on the same store (its own notifier and provider).
    async fn new_sharing(store: &InMemoryStore) -> Self {
        Self::over(store.clone()).await
    }

    /// A world over `store`, with its own notifier and provider.
    async fn over(store: InMemoryStore) -> Self {
        let messages: Arc<dyn MessageRepository> = Arc::new(store.clone());
        let provider = FakeSmsProvider::new();
        let clock = ManualClock::new(
            chrono::Utc
                .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
                .single()
                .expect("valid"),
        );
        ConfigureIntegration::new(Arc::new(store.clone()))
            .configure(
                TeamAdmin::operator(team()),
                IntegrationSettings {
                    account_sid: ACCOUNT.into(),
                    auth_token: SecretString::from("token"),
                    from_number: Some("+15005550006".into()),
                    ..IntegrationSettings::default()
                },
            )
            .await
            .expect("integration stored");
        let notifier = RecordingNotifier::new();
        let send = SendSms::new(
            messages.clone(),
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(provider.clone()),
            Arc::new(clock.clone()),
        )
        .with_notifier(Arc::new(notifier.clone()));
        let callbacks = ApplyStatusCallback::new(
            messages.clone(),
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(clock.clone()),
        )
        .with_notifier(Arc::new(notifier.clone()));
        let refresh = RefreshStatus::new(
            messages,
            Arc::new(store.clone()),
            Arc::new(provider.clone()),
            Arc::new(store.clone()),
            Arc::new(clock),
            RefreshPolicy::default(),
        )
        .with_notifier(Arc::new(notifier.clone()));
        Self {
            provider,
            notifier,
            send,
            callbacks,
            refresh,
        }
    }

    async fn send_one(&self) -> Message {
        self.send
            .send(
                &pro(),
                SendRequest {
                    to: PhoneNumber::parse("+14155550100").expect("valid"),
                    body: "hello".into(),
                    sender: None,
                    reference: None,
                },
            )
            .await
            .expect("sent")
    }

    /// (kind, status now, source) of every change announced so far.
    fn announced(&self) -> Vec<(ChangeKind, MessageStatus, ObservationSource)> {
        self.notifier
            .changes()
            .into_iter()
            .map(|change| (change.kind, change.state.status, change.source))
            .collect()
    }
}

#[tokio::test]
async fn a_send_replays_the_callbacks_that_beat_it_and_answers_with_the_newest_status() {
    let world = World::new().await;
    let early = world
        .callbacks
        .apply(team(), callback(&nth_sent(1), MessageStatus::Delivered))
        .await
        .expect("store up");
    assert_eq!(early, CallbackOutcome::Parked, "no row yet: parked");

    let sent = world.send_one().await;

    assert_eq!(sent.sid, nth_sent(1));
    assert_eq!(
        sent.delivery.status,
        MessageStatus::Delivered,
        "the send answers with the parked delivered, not Twilio's queued"
    );
    assert_eq!(
        world.announced(),
        vec![
            (
                ChangeKind::Created {
                    direction: smsdesk_domain::Direction::OutboundApi
                },
                MessageStatus::Queued,
                ObservationSource::Send
            ),
            (
                ChangeKind::Advanced {
                    from: MessageStatus::Queued
                },
                MessageStatus::Delivered,
                ObservationSource::Callback
            ),
        ],
        "the creation, then the replayed callback's change, each announced once"
    );
    assert!(
        world
            .notifier
            .activities()
            .contains(&Activity::ParkedReplayed(CallbackOutcome::Advanced {
                from: MessageStatus::Queued,
                to: MessageStatus::Delivered,
            })),
        "the replay is reported: {:?}",
        world.notifier.activities()
    );
}

/// An inbox that, on its first park, lets "the send" store its message first: the window in
/// which a send stores its row and replays the (still empty) inbox between a callback's lookup
/// and its park.
struct SendWinsTheRace {
    store: InMemoryStore,
    send_stores: Mutex<Option<NewMessage>>,
}

#[async_trait]
impl CallbackInbox for SendWinsTheRace {
    async fn park(
        &self,
        team: TeamId,
        sid: &MessageSid,
        observation: StatusObservation,
    ) -> Result<(), RepositoryError> {
        let racing_send = self
            .send_stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(message) = racing_send {
            self.store.insert(message).await?;
        }
        self.store.park(team, sid, observation).await
    }

    async fn take_parked(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusObservation>, RepositoryError> {
        self.store.take_parked(team, sid).await
    }

    async fn discard_parked_before(&self, cutoff: Timestamp) -> Result<u64, RepositoryError> {
        self.store.discard_parked_before(cutoff).await
    }
}

#[tokio::test]
async fn a_callback_that_parks_after_the_send_replayed_looks_again_and_applies_itself() {
    let store = InMemoryStore::new();
    let sid = nth_sent(7);
    let at = chrono::Utc::now();
    let inbox = Arc::new(SendWinsTheRace {
        store: store.clone(),
        send_stores: Mutex::new(Some(NewMessage {
            sid: sid.clone(),
            team_id: team(),
            account_sid: AccountSid::parse(ACCOUNT).expect("valid"),
            direction: smsdesk_domain::Direction::OutboundApi,
            from: Address::parse("+15005550006").expect("valid"),
            to: Address::parse("+14155550100").expect("valid"),
            body: "hello".into(),
            first_observation: StatusObservation {
                state: DeliveryState::new(MessageStatus::Queued),
                source: ObservationSource::Send,
                observed_at: at,
            },
            created_at: at,
            reference: None,
        })),
    });
    let notifier = RecordingNotifier::new();
    let callbacks = ApplyStatusCallback::new(
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        inbox,
        Arc::new(ManualClock::new(at)),
    )
    .with_notifier(Arc::new(notifier.clone()));

    let outcome = callbacks
        .apply(team(), callback(&sid, MessageStatus::Delivered))
        .await
        .expect("store up");

    assert_eq!(
        outcome,
        CallbackOutcome::Parked,
        "the first look found no row"
    );
    let stored = store
        .find(team(), &sid)
        .await
        .expect("store up")
        .expect("the send stored it");
    assert_eq!(
        stored.delivery.status,
        MessageStatus::Delivered,
        "the second look found the row and replayed the parked callback"
    );
    assert_eq!(
        notifier
            .changes()
            .into_iter()
            .map(|change| (change.kind, change.state.status))
            .collect::<Vec<_>>(),
        vec![(
            ChangeKind::Advanced {
                from: MessageStatus::Queued
            },
            MessageStatus::Delivered
        )]
    );
}

#[tokio::test]
async fn refreshes_and_callbacks_announce_only_what_they_changed() {
    let world = World::new().await;
    let first = world.send_one().await;
    let second = world.send_one().await;
    world
        .provider
        .set_state(&first.sid, DeliveryState::new(MessageStatus::Sent));
    let answer = world
        .refresh
        .refresh(&pro(), RefreshTarget::Recent(RefreshWindow::default()))
        .await
        .expect("refreshed");
    assert_eq!(answer.mode, RefreshMode::Bulk);
    assert_eq!(answer.summary.updated, 1, "{:?}", answer.outcomes);
    assert_eq!(answer.summary.unchanged, 1);

    // A duplicate and a stale callback change nothing and announce nothing.
    let delivered = world
        .callbacks
        .apply(team(), callback(&first.sid, MessageStatus::Delivered))
        .await
        .expect("store up");
    let duplicate = world
        .callbacks
        .apply(team(), callback(&first.sid, MessageStatus::Delivered))
        .await
        .expect("store up");
    let stale = world
        .callbacks
        .apply(team(), callback(&first.sid, MessageStatus::Sending))
        .await
        .expect("store up");
    assert!(matches!(delivered, CallbackOutcome::Advanced { .. }));
    assert_eq!(duplicate, CallbackOutcome::Duplicate);
    assert!(matches!(stale, CallbackOutcome::Stale { .. }));

    let advanced: Vec<_> = world
        .announced()
        .into_iter()
        .filter(|(kind, _, _)| matches!(kind, ChangeKind::Advanced { .. }))
        .map(|(_, status, source)| (status, source))
        .collect();
    assert_eq!(
        advanced,
        vec![
            (MessageStatus::Sent, ObservationSource::Poll),
            (MessageStatus::Delivered, ObservationSource::Callback),
        ],
        "the poll's move and the callback's move, nothing for the queued message or the repeats"
    );
    assert!(
        world
            .announced()
            .iter()
            .all(|(kind, _, _)| !matches!(kind, ChangeKind::Enriched)),
        "nothing was enriched"
    );
    let _ = second;

    // A second bulk inside the cool-down is refused and counted, and still timed.
    let refused = world
        .refresh
        .refresh(&pro(), RefreshTarget::Recent(RefreshWindow::default()))
        .await;
    assert!(refused.is_err());
    let activities = world.notifier.activities();
    assert!(activities.contains(&Activity::CooldownRefused {
        scope: CooldownScope::Bulk,
        count: 1
    }));
    assert_eq!(
        activities
            .iter()
            .filter(|a| matches!(
                a,
                Activity::RefreshFinished {
                    mode: RefreshMode::Bulk,
                    ..
                }
            ))
            .count(),
        2,
        "both refreshes were timed"
    );
}

#[tokio::test]
async fn an_inbound_message_is_announced_once_however_often_twilio_posts_it() {
    let store = InMemoryStore::new();
    let world = World::new_sharing(&store).await;
    let notifier = RecordingNotifier::new();
    let receive = ReceiveSms::new(
        Arc::new(store.clone()),
        Arc::new(ManualClock::new(chrono::Utc::now())),
    )
    .with_notifier(Arc::new(notifier.clone()));
    let integration = store
        .for_team(team())
        .await
        .expect("store up")
        .expect("configured");
    let sms = InboundSms {
        sid: MessageSid::parse("SM0000000000000000000000000000abcd").expect("valid"),
        account_sid: AccountSid::parse(ACCOUNT).expect("valid"),
        from: Address::parse("+14155550100").expect("valid"),
        to: Address::parse("+15005550006").expect("valid"),
        body: "hi".into(),
        num_segments: Some(1),
    };
    for _ in 0..2 {
        receive
            .receive(&integration, sms.clone())
            .await
            .expect("store up");
    }
    let changes = notifier.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].source, ObservationSource::Inbound);
    assert_eq!(changes[0].state.status, MessageStatus::Received);
    assert_eq!(notifier.activities().len(), 2, "both webhooks counted");
    assert!(world.announced().is_empty(), "another notifier saw nothing");
}
