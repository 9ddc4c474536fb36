//! The RefreshStatus use case against the in-memory fakes: plan gating, cool-downs, windows,
//! partial failure, the sliding window of provider calls and the order of outcomes.
//!
//! Provider latency is simulated with `tokio::time::sleep` under paused time, so the timing
//! assertions are exact and the tests take no real time.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use futures::FutureExt;
use smsdesk_domain::fakes::{FakeSmsProvider, InMemoryStore, ManualClock};
use smsdesk_domain::ports::{
    IntegrationRepository, MessageRepository, NewIntegration, ProviderError, Sender,
};
use smsdesk_domain::secrecy::SecretString;
use smsdesk_domain::services::{
    FailureReason, OutcomeKind, RefreshOneError, RefreshRecentError, RefreshStatus, SkipReason,
};
use smsdesk_domain::sweep::BulkPlan;
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, Plan, RefreshPolicy, RefreshWindow, Requester, Role,
    StatusObservation, TeamId, Timestamp, UserId,
};

const ACCOUNT: &str = "AC00000000000000000000000000000001";

fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn sid(n: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{n:032x}")).expect("valid sid")
}

fn team(n: i64) -> TeamId {
    TeamId::new(n).expect("positive")
}

fn requester(team_no: i64, user_no: i64, plan: Plan) -> Requester {
    Requester {
        team_id: team(team_no),
        user_id: UserId::new(user_no).expect("positive"),
        plan,
        role: Role::Member,
    }
}

struct World {
    store: InMemoryStore,
    provider: FakeSmsProvider,
    clock: ManualClock,
    service: RefreshStatus,
}

impl World {
    async fn new(provider: FakeSmsProvider) -> Self {
        let store = InMemoryStore::new();
        let clock = ManualClock::new(t0());
        for team_no in [1, 2] {
            store
                .upsert(
                    team(team_no),
                    NewIntegration {
                        account_sid: AccountSid::parse(&format!("AC{team_no:032x}"))
                            .expect("valid"),
                        auth_token: SecretString::from("token"),
                        api_key: None,
                        sender: Sender::Number(PhoneNumber::parse("+15005550006").expect("valid")),
                    },
                )
                .await
                .expect("integration stored");
        }
        let service = RefreshStatus::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(provider.clone()),
            Arc::new(store.clone()),
            Arc::new(clock.clone()),
            RefreshPolicy::default(),
        );
        Self {
            store,
            provider,
            clock,
            service,
        }
    }

    /// Stores an outbound message of `team_no`, created `age` before t0, with `status`.
    async fn message(
        &self,
        n: u32,
        team_no: i64,
        status: MessageStatus,
        age: Duration,
    ) -> MessageSid {
        self.message_with(n, team_no, status, age, Direction::OutboundApi)
            .await
    }

    async fn message_with(
        &self,
        n: u32,
        team_no: i64,
        status: MessageStatus,
        age: Duration,
        direction: Direction,
    ) -> MessageSid {
        let created_at = t0() - chrono::Duration::from_std(age).expect("small");
        self.store
            .insert(NewMessage {
                sid: sid(n),
                team_id: team(team_no),
                account_sid: AccountSid::parse(ACCOUNT).expect("valid"),
                direction,
                from: Address::parse("+15005550006").expect("valid"),
                to: Address::parse("+14155550100").expect("valid"),
                body: format!("message {n}"),
                first_observation: StatusObservation {
                    state: DeliveryState::new(status),
                    source: ObservationSource::Send,
                    observed_at: created_at,
                },
                created_at,
                reference: None,
            })
            .await
            .expect("stored");
        sid(n)
    }

    async fn status_of(&self, team_no: i64, sid: &MessageSid) -> MessageStatus {
        self.store
            .find(team(team_no), sid)
            .await
            .expect("store up")
            .expect("message exists")
            .delivery
            .status
    }
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// A provider whose call for message `n` takes `latency(n)` of (paused) tokio time.
fn provider_with_latency(latency: fn(&MessageSid) -> Duration) -> FakeSmsProvider {
    FakeSmsProvider::new().with_delay(Arc::new(move |sid: &MessageSid| {
        tokio::time::sleep(latency(sid)).boxed()
    }))
}

fn number_of(sid: &MessageSid) -> u32 {
    u32::from_str_radix(&sid.as_str()[2..], 16).expect("hex")
}

#[tokio::test]
async fn a_free_team_may_not_refresh_and_twilio_is_not_asked() {
    let world = World::new(FakeSmsProvider::new()).await;
    let message = world.message(1, 1, MessageStatus::Sent, minutes(5)).await;

    let single = world
        .service
        .refresh_one(&requester(1, 1, Plan::Free), &message)
        .await;
    assert_eq!(
        single,
        Err(RefreshOneError::PlanNotAllowed { plan: Plan::Free })
    );
    let bulk = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Free), RefreshWindow::default())
        .await;
    assert_eq!(
        bulk,
        Err(RefreshRecentError::PlanNotAllowed { plan: Plan::Free })
    );
    assert_eq!(world.provider.calls(), 0);
}

#[tokio::test]
async fn a_single_refresh_stores_the_newer_status_and_records_it() {
    let world = World::new(FakeSmsProvider::new()).await;
    let message = world.message(1, 1, MessageStatus::Sent, minutes(5)).await;
    world
        .provider
        .set_state(&message, DeliveryState::new(MessageStatus::Delivered));

    let outcome = world
        .service
        .refresh_one(&requester(1, 1, Plan::Pro), &message)
        .await
        .expect("refreshed");
    assert_eq!(outcome.result, OutcomeKind::Updated);
    assert_eq!(
        (outcome.previous_status, outcome.new_status.clone()),
        (MessageStatus::Sent, MessageStatus::Delivered)
    );
    assert_eq!(world.status_of(1, &message).await, MessageStatus::Delivered);
    let history = world
        .store
        .history(team(1), &message)
        .await
        .expect("store up");
    assert_eq!(history.len(), 2, "the send and the poll");
    assert_eq!(history[1].observation.source, ObservationSource::Poll);
    assert!(history[1].applied);
}

#[tokio::test]
async fn a_second_single_refresh_within_a_minute_is_refused_with_the_wait() {
    let world = World::new(FakeSmsProvider::new()).await;
    let message = world.message(1, 1, MessageStatus::Sent, minutes(5)).await;
    world
        .provider
        .set_state(&message, DeliveryState::new(MessageStatus::Sent));
    let who = requester(1, 1, Plan::Pro);

    world
        .service
        .refresh_one(&who, &message)
        .await
        .expect("first refresh");
    world.clock.advance(Duration::from_secs(20));
    let second = world.service.refresh_one(&who, &message).await;
    assert_eq!(
        second,
        Err(RefreshOneError::CoolingDown {
            retry_after_secs: 40,
            cooldown_secs: 60,
        })
    );
    assert_eq!(
        world.provider.calls(),
        1,
        "the refused refresh did not ask Twilio"
    );

    world.clock.advance(Duration::from_secs(40));
    assert!(
        world.service.refresh_one(&who, &message).await.is_ok(),
        "a minute later it is allowed"
    );
    assert_eq!(world.provider.calls(), 2);
}

#[tokio::test]
async fn another_teams_message_is_not_found_rather_than_forbidden() {
    let world = World::new(FakeSmsProvider::new()).await;
    let message = world.message(1, 1, MessageStatus::Sent, minutes(5)).await;
    let result = world
        .service
        .refresh_one(&requester(2, 7, Plan::Enterprise), &message)
        .await;
    assert_eq!(result, Err(RefreshOneError::MessageNotFound));
    assert_eq!(world.provider.calls(), 0);
}

#[tokio::test]
async fn a_single_refresh_reports_twilios_failure_and_keeps_the_status() {
    let world = World::new(FakeSmsProvider::new()).await;
    let message = world.message(1, 1, MessageStatus::Sent, minutes(5)).await;
    let error = ProviderError::Unavailable {
        reason: "503 from Twilio".into(),
    };
    world.provider.set_error(&message, error.clone());

    let result = world
        .service
        .refresh_one(&requester(1, 1, Plan::Pro), &message)
        .await;
    assert_eq!(result, Err(RefreshOneError::Provider(error)));
    assert_eq!(world.status_of(1, &message).await, MessageStatus::Sent);
}

#[tokio::test]
async fn bulk_selects_the_teams_recent_outbound_live_messages_newest_first() {
    let world = World::new(FakeSmsProvider::new()).await;
    let newest = world.message(1, 1, MessageStatus::Queued, minutes(1)).await;
    let older = world.message(2, 1, MessageStatus::Sent, minutes(60)).await;
    let _outside_window = world
        .message(3, 1, MessageStatus::Sent, minutes(25 * 60))
        .await;
    let _terminal = world
        .message(4, 1, MessageStatus::Delivered, minutes(2))
        .await;
    let _inbound = world
        .message_with(
            5,
            1,
            MessageStatus::Receiving,
            minutes(2),
            Direction::Inbound,
        )
        .await;
    let _other_team = world.message(6, 2, MessageStatus::Sent, minutes(2)).await;
    let at_the_edge = world
        .message(7, 1, MessageStatus::Sending, minutes(24 * 60))
        .await;
    for s in [&newest, &older, &at_the_edge] {
        world
            .provider
            .set_state(s, DeliveryState::new(MessageStatus::Delivered));
    }

    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    let sids: Vec<&MessageSid> = report.outcomes.iter().map(|o| &o.sid).collect();
    assert_eq!(sids, [&newest, &older, &at_the_edge]);
    assert_eq!(report.summary.updated, 3);
    assert_eq!(
        report.plan,
        BulkPlan::Sweep { pages: 2 },
        "three candidates on an account never swept: a sweep first"
    );
    assert_eq!(
        (report.summary.list_pages, report.summary.provider_calls),
        (1, 4),
        "the fake lists nothing it was not told was sent: one page, then three fetches"
    );
    assert_eq!(report.window_hours, 24);
    assert_eq!(
        world.status_of(2, &sid(6)).await,
        MessageStatus::Sent,
        "other team untouched"
    );
}

#[tokio::test]
async fn bulk_asks_about_at_most_100_messages() {
    let world = World::new(FakeSmsProvider::new()).await;
    for n in 1..=130 {
        let s = world
            .message(n, 1, MessageStatus::Sent, Duration::from_secs(u64::from(n)))
            .await;
        world
            .provider
            .set_state(&s, DeliveryState::new(MessageStatus::Sent));
    }
    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    assert_eq!(report.outcomes.len(), 100);
    assert_eq!(report.summary.unchanged, 100);
    assert_eq!(
        report.outcomes.first().map(|o| o.sid.clone()),
        Some(sid(1)),
        "newest first"
    );
    assert_eq!(
        report.outcomes.last().map(|o| o.sid.clone()),
        Some(sid(100))
    );
}

#[tokio::test]
async fn bulk_runs_once_a_minute_per_user() {
    let world = World::new(FakeSmsProvider::new()).await;
    let alice = requester(1, 1, Plan::Pro);
    let bob = requester(1, 2, Plan::Pro);
    world
        .service
        .refresh_recent(&alice, RefreshWindow::default())
        .await
        .expect("first");
    world.clock.advance(Duration::from_millis(59_500));
    assert_eq!(
        world
            .service
            .refresh_recent(&alice, RefreshWindow::default())
            .await,
        Err(RefreshRecentError::CoolingDown {
            retry_after_secs: 1,
            cooldown_secs: 60,
        })
    );
    assert!(
        world
            .service
            .refresh_recent(&bob, RefreshWindow::default())
            .await
            .is_ok(),
        "another user is not held back"
    );
    world.clock.advance(Duration::from_millis(500));
    assert!(
        world
            .service
            .refresh_recent(&alice, RefreshWindow::default())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn bulk_skips_messages_in_their_cooldown_and_says_so() {
    let world = World::new(FakeSmsProvider::new()).await;
    let fresh = world.message(1, 1, MessageStatus::Sent, minutes(1)).await;
    let other = world.message(2, 1, MessageStatus::Sent, minutes(2)).await;
    world
        .provider
        .set_state(&fresh, DeliveryState::new(MessageStatus::Sent));
    world
        .provider
        .set_state(&other, DeliveryState::new(MessageStatus::Delivered));
    world
        .service
        .refresh_one(&requester(1, 1, Plan::Pro), &fresh)
        .await
        .expect("single");
    world.clock.advance(Duration::from_secs(15));

    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("bulk");
    assert_eq!(
        report.outcomes[0].result,
        OutcomeKind::Skipped {
            reason: SkipReason::CoolingDown {
                retry_after_secs: 45
            }
        }
    );
    assert_eq!(report.outcomes[1].result, OutcomeKind::Updated);
    assert_eq!(report.summary.skipped, 1);
    assert_eq!(report.summary.provider_calls, 1);
    assert_eq!(
        world.provider.calls(),
        2,
        "one single refresh and one bulk call"
    );
}

#[tokio::test]
async fn one_failure_never_aborts_the_others() {
    let world = World::new(FakeSmsProvider::new()).await;
    let ok = world.message(1, 1, MessageStatus::Sent, minutes(1)).await;
    let limited = world.message(2, 1, MessageStatus::Sent, minutes(2)).await;
    let down = world.message(3, 1, MessageStatus::Sent, minutes(3)).await;
    let gone = world.message(4, 1, MessageStatus::Sent, minutes(4)).await;
    let revoked = world.message(5, 1, MessageStatus::Sent, minutes(5)).await;
    world
        .provider
        .set_state(&ok, DeliveryState::new(MessageStatus::Delivered));
    world
        .provider
        .set_error(&limited, ProviderError::RateLimited { retry_after: None });
    world.provider.set_error(
        &down,
        ProviderError::Unavailable {
            reason: "timeout".into(),
        },
    );
    world.provider.set_error(&gone, ProviderError::NotFound);
    world.provider.set_error(
        &revoked,
        ProviderError::CredentialsRejected {
            code: Some(20003),
            message: "Authenticate".into(),
        },
    );

    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("the bulk answer still arrives");
    let kinds: Vec<&OutcomeKind> = report.outcomes.iter().map(|o| &o.result).collect();
    assert_eq!(kinds[0], &OutcomeKind::Updated);
    assert!(matches!(
        kinds[1],
        OutcomeKind::Failed {
            reason: FailureReason::RateLimited,
            code: Some(20429),
            ..
        }
    ));
    assert!(matches!(
        kinds[2],
        OutcomeKind::Failed {
            reason: FailureReason::ProviderUnavailable,
            ..
        }
    ));
    assert_eq!(
        kinds[3],
        &OutcomeKind::Skipped {
            reason: SkipReason::NotFoundAtProvider
        }
    );
    assert!(matches!(
        kinds[4],
        OutcomeKind::Failed {
            reason: FailureReason::CredentialsRejected,
            code: Some(20003),
            ..
        }
    ));
    assert_eq!(
        (
            report.summary.updated,
            report.summary.failed,
            report.summary.skipped
        ),
        (1, 3, 1)
    );
    for s in [&limited, &down, &gone, &revoked] {
        assert_eq!(
            world.status_of(1, s).await,
            MessageStatus::Sent,
            "failed refreshes change nothing"
        );
    }
}

#[tokio::test]
async fn without_an_integration_every_candidate_is_skipped_and_single_refresh_says_why() {
    let world = World::new(FakeSmsProvider::new()).await;
    // Team 3 has messages but no integration.
    let message = world.message(1, 3, MessageStatus::Sent, minutes(1)).await;
    let report = world
        .service
        .refresh_recent(&requester(3, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("bulk");
    assert_eq!(
        report.outcomes[0].result,
        OutcomeKind::Skipped {
            reason: SkipReason::IntegrationMissing
        }
    );
    assert_eq!(
        world
            .service
            .refresh_one(&requester(3, 1, Plan::Pro), &message)
            .await,
        Err(RefreshOneError::IntegrationMissing)
    );
    assert_eq!(world.provider.calls(), 0);
}

#[tokio::test]
async fn a_store_outage_fails_the_request_cleanly() {
    let world = World::new(FakeSmsProvider::new()).await;
    world.message(1, 1, MessageStatus::Sent, minutes(1)).await;
    world.store.set_unavailable(true);
    let result = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await;
    assert!(
        matches!(result, Err(RefreshRecentError::Store(_))),
        "{result:?}"
    );
    assert_eq!(world.provider.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn provider_calls_never_exceed_ten_in_flight() {
    let world = World::new(provider_with_latency(|sid| {
        Duration::from_millis(50 + u64::from(number_of(sid) % 7) * 30)
    }))
    .await;
    for n in 1..=100 {
        let s = world
            .message(n, 1, MessageStatus::Sent, Duration::from_secs(u64::from(n)))
            .await;
        world
            .provider
            .set_state(&s, DeliveryState::new(MessageStatus::Delivered));
    }
    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    assert_eq!(report.summary.updated, 100);
    assert_eq!(
        world.provider.max_in_flight(),
        10,
        "the window is full but never over"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_does_not_hold_up_the_other_slots() {
    // Message 1 takes 1000 ms, the 19 others 100 ms. A sliding window finishes when the slow call
    // does (the others run through the 9 free slots meanwhile); barrier batches of 10 would need
    // 1000 ms for the first batch plus 100 ms for the second.
    let world = World::new(provider_with_latency(|sid| {
        Duration::from_millis(if number_of(sid) == 1 { 1000 } else { 100 })
    }))
    .await;
    for n in 1..=20 {
        let s = world
            .message(n, 1, MessageStatus::Sent, Duration::from_secs(u64::from(n)))
            .await;
        world
            .provider
            .set_state(&s, DeliveryState::new(MessageStatus::Delivered));
    }
    let started = tokio::time::Instant::now();
    world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    let elapsed = started.elapsed();
    assert_eq!(
        elapsed,
        Duration::from_millis(1000),
        "bound: the slowest call; barrier batches take 1100 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn outcomes_keep_the_candidate_order_whatever_order_calls_finish_in() {
    // Newer messages answer slower, so calls finish in reverse order.
    let world = World::new(provider_with_latency(|sid| {
        Duration::from_millis(1000 - u64::from(number_of(sid)) * 10)
    }))
    .await;
    for n in 1..=30 {
        let s = world
            .message(n, 1, MessageStatus::Sent, Duration::from_secs(u64::from(n)))
            .await;
        world
            .provider
            .set_state(&s, DeliveryState::new(MessageStatus::Delivered));
    }
    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    let order: Vec<MessageSid> = report.outcomes.iter().map(|o| o.sid.clone()).collect();
    let expected: Vec<MessageSid> = (1..=30).map(sid).collect();
    assert_eq!(order, expected);
}

#[tokio::test]
async fn a_poll_older_than_the_stored_status_is_recorded_but_ignored() {
    let world = World::new(FakeSmsProvider::new()).await;
    let message = world.message(1, 1, MessageStatus::Sent, minutes(1)).await;
    world
        .provider
        .set_state(&message, DeliveryState::new(MessageStatus::Queued));
    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    assert_eq!(report.outcomes[0].result, OutcomeKind::Unchanged);
    assert_eq!(world.status_of(1, &message).await, MessageStatus::Sent);
    let history = world
        .store
        .history(team(1), &message)
        .await
        .expect("store up");
    assert_eq!(
        history
            .last()
            .map(|e| (e.applied, e.observation.state.status.clone())),
        Some((false, MessageStatus::Queued))
    );
}

// ---- sweeps -------------------------------------------------------------------------------

fn no_cooldowns() -> RefreshPolicy {
    RefreshPolicy {
        message_cooldown: Duration::ZERO,
        bulk_cooldown: Duration::ZERO,
        ..RefreshPolicy::default()
    }
}

impl World {
    fn without_cooldowns(mut self) -> Self {
        self.service = RefreshStatus::new(
            Arc::new(self.store.clone()),
            Arc::new(self.store.clone()),
            Arc::new(self.provider.clone()),
            Arc::new(self.store.clone()),
            Arc::new(self.clock.clone()),
            no_cooldowns(),
        );
        self
    }

    /// Messages `range` of team 1, created `age` ago and stored `queued`; Twilio has them
    /// `delivered`, listed as sent a second after creation when `listed`.
    async fn at_twilio(&self, range: std::ops::Range<u32>, age: Duration, listed: bool) {
        for n in range {
            let sid = self.message(n, 1, MessageStatus::Queued, age).await;
            self.provider
                .set_state(&sid, DeliveryState::new(MessageStatus::Delivered));
            if listed {
                let sent = t0() - chrono::Duration::from_std(age).expect("small")
                    + chrono::Duration::seconds(1);
                self.provider.set_sent_at(&sid, sent);
            }
        }
    }
}

#[tokio::test]
async fn a_quiet_account_is_learned_from_one_list_page_with_the_sweep_as_the_source() {
    let world = World::new(FakeSmsProvider::new()).await.without_cooldowns();
    world.at_twilio(0..50, minutes(30), true).await;
    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    assert_eq!(report.plan, BulkPlan::Sweep { pages: 2 });
    assert_eq!(report.summary.updated, 50);
    assert_eq!(
        (report.summary.list_pages, report.summary.provider_calls),
        (1, 1),
        "one page, no fetch"
    );
    assert_eq!(world.provider.calls(), 0, "nothing fetched on its own");
    let history = world
        .store
        .history(team(1), &sid(7))
        .await
        .expect("history");
    assert_eq!(
        history.last().map(|e| (e.observation.source, e.applied)),
        Some((ObservationSource::Sweep, true)),
        "recorded with its own source"
    );
}

#[tokio::test]
async fn what_the_list_does_not_show_is_fetched_on_its_own() {
    let world = World::new(FakeSmsProvider::new()).await.without_cooldowns();
    world.at_twilio(0..10, minutes(20), true).await;
    // Not sent yet at Twilio when listed: no date_sent, so no DateSent filter shows them.
    world.at_twilio(10..15, minutes(20), false).await;
    let report = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    assert_eq!(report.summary.updated, 15, "all fifteen learned");
    assert_eq!(
        (report.summary.list_pages, report.summary.provider_calls),
        (1, 6),
        "one page, then the five it did not list"
    );
    assert_eq!(world.provider.calls(), 5);
}

#[tokio::test]
async fn a_busy_account_is_swept_once_then_refreshed_in_the_window() {
    let world = World::new(FakeSmsProvider::new()).await.without_cooldowns();
    world.at_twilio(0..20, minutes(60), false).await;
    // 2,500 other messages sent in the last half hour, all listed before the team's.
    for n in 0..2500u32 {
        let other = MessageSid::parse(&format!("SM{:032x}", 0xa000_0000u32 + n)).expect("sid");
        world
            .provider
            .set_state(&other, DeliveryState::new(MessageStatus::Delivered));
        world.provider.set_sent_at(
            &other,
            t0() - chrono::Duration::seconds(i64::from(n % 1800)),
        );
    }
    let first = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    assert_eq!(first.plan, BulkPlan::Sweep { pages: 2 }, "never swept: try");
    assert_eq!(
        (first.summary.list_pages, first.summary.provider_calls),
        (2, 22),
        "the page budget spent on others' traffic, then every candidate fetched"
    );
    assert_eq!(first.summary.updated, 20);

    world.at_twilio(20..40, minutes(50), false).await;
    let second = world
        .service
        .refresh_recent(&requester(1, 1, Plan::Pro), RefreshWindow::default())
        .await
        .expect("refreshed");
    assert_eq!(
        second.plan,
        BulkPlan::Window,
        "5,000 an hour: more pages than the budget"
    );
    assert_eq!(second.summary.list_pages, 0);
    assert_eq!(
        world.provider.list_calls(),
        2,
        "no page read the second time"
    );
}
