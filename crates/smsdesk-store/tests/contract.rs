//! The repository contract, written once and run against SQLite (a temporary file, so that
//! concurrent writers really contend) and PostgreSQL (a fresh database per test, created from
//! `SMSDESK_TEST_POSTGRES_URL`; without it the PostgreSQL variants say SKIPPED and return).

use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeZone;
use sea_orm::{ConnectionTrait, Database, Statement};
use secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::ports::{
    ApiKeyAuthenticator, CallbackInbox, IntegrationRepository, MessageCursor, MessageQuery,
    MessageRepository, NewIntegration, ObservationWrite, RefreshLimiter, RepositoryError, Sender,
    StateChange, TwilioAuth, WriteOutcome,
};
use smsdesk_domain::{
    AccountSid, Address, ApiKeySid, CooldownClaim, DeliveryState, Direction, MessageSid,
    MessageStatus, MessagingServiceSid, NewMessage, ObservationSource, PhoneNumber, Plan, Role,
    StatusObservation, TeamId, Timestamp,
};
use smsdesk_store::cipher::is_encrypted;
use smsdesk_store::{
    DecryptOptions, SecretCipher, Store, StoreError, StoreOptions, decrypt_account_sids,
};

const POSTGRES_ENV: &str = "SMSDESK_TEST_POSTGRES_URL";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER_ACCOUNT: &str = "ACfedcba9876543210fedcba9876543210";
const MINUTE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Test databases

enum Cleanup {
    SqliteFile(PathBuf),
    Postgres { admin_url: String, name: String },
}

/// A migrated, empty database of one backend, with its URL so a test can open more stores on it.
struct TestDb {
    url: String,
    key: String,
    store: Store,
    cleanup: Cleanup,
}

fn random_suffix() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(12)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

fn cipher(current: &str, old: &[&str]) -> SecretCipher {
    SecretCipher::from_base64_keys(current, old).expect("test keys are valid")
}

async fn open(url: &str, cipher: SecretCipher) -> Store {
    let store = Store::connect(url, StoreOptions::new(cipher))
        .await
        .expect("test database opens");
    store.migrate().await.expect("migrations apply");
    store
        .migrate()
        .await
        .expect("migrating an up-to-date database is a no-op");
    store
}

impl TestDb {
    async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("smsdesk_t_{}.db", random_suffix()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::at(url, Cleanup::SqliteFile(path)).await
    }

    async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            eprintln!("SKIPPED: {POSTGRES_ENV} not set");
            return None;
        };
        let name = format!("smsdesk_t_{}", random_suffix());
        let admin = Database::connect(admin_url.as_str())
            .await
            .expect("the PostgreSQL server in SMSDESK_TEST_POSTGRES_URL is reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a test database can be created");
        admin.close().await.ok();
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = format!("{server}/{name}{query}");
        Some(Self::at(url, Cleanup::Postgres { admin_url, name }).await)
    }

    async fn at(url: String, cleanup: Cleanup) -> Self {
        let key = SecretCipher::generate_key();
        let store = open(&url, cipher(&key, &[])).await;
        Self {
            url,
            key,
            store,
            cleanup,
        }
    }

    /// Another store on the same database, with other keys.
    async fn reopen(&self, cipher: SecretCipher) -> Store {
        open(&self.url, cipher).await
    }

    /// Runs raw SQL (test set-up that the public API rightly does not offer).
    async fn raw(&self, sql: &str) {
        let db = Database::connect(self.url.as_str())
            .await
            .expect("raw connection opens");
        db.execute_unprepared(sql).await.expect("raw SQL runs");
        db.close().await.ok();
    }

    async fn raw_text(&self, sql: &str) -> Vec<String> {
        let db = Database::connect(self.url.as_str())
            .await
            .expect("raw connection opens");
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .expect("raw query runs");
        db.close().await.ok();
        rows.iter()
            .map(|row| row.try_get_by_index::<String>(0).expect("a text column"))
            .collect()
    }

    async fn finish(self) {
        self.store.close().await.ok();
        match self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    std::fs::remove_file(file).ok();
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                    admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok();
                    admin.close().await.ok();
                }
            }
        }
    }
}

/// Runs one contract case and removes its database even when the case fails.
async fn run<F>(db: TestDb, case: F)
where
    F: for<'a> FnOnce(&'a TestDb) -> futures::future::BoxFuture<'a, ()>,
{
    use futures::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(case(&db)).catch_unwind().await;
    db.finish().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = super::TestDb::sqlite().await;
                    super::run(db, |db| Box::pin(super::$case(db))).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(db) = super::TestDb::postgres().await else {
                        return;
                    };
                    super::run(db, |db| Box::pin(super::$case(db))).await;
                }
            )*
        }
    };
}

contract!(
    a_stored_message_reads_back_with_its_first_event_and_a_duplicate_sid_is_refused,
    another_teams_rows_are_invisible_and_untouchable_through_every_method,
    observations_are_applied_conditionally_and_recorded_in_order,
    of_two_concurrent_writers_from_the_same_status_exactly_one_wins,
    two_batches_over_the_same_messages_in_opposite_orders_both_finish,
    a_cooldown_is_claimed_by_exactly_one_of_twenty_concurrent_claimers,
    message_claims_answer_in_order_with_the_time_left,
    bulk_candidates_are_the_windows_outbound_unfinished_messages_newest_first_at_most_100,
    listing_filters_and_pages_without_gaps_or_repeats,
    integrations_round_trip_with_secrets_encrypted_at_rest,
    secrets_survive_key_rotation_and_reencryption_moves_them_to_the_new_key,
    api_keys_authenticate_only_when_right_and_not_revoked,
    the_account_sid_migration_dry_runs_applies_once_and_leaves_undecryptable_rows,
    the_bulk_candidate_and_list_queries_are_served_by_the_composite_indexes,
    a_closed_pool_is_reported_as_unavailable,
    a_parked_callback_is_taken_back_with_every_field_oldest_first,
    parking_the_same_sid_and_status_twice_keeps_one,
    another_team_cannot_take_a_teams_parked_callbacks,
    taking_removes_what_was_parked,
    parked_callbacks_older_than_the_cutoff_are_discarded_and_counted,
    two_concurrent_takers_receive_each_parked_callback_exactly_once,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn at(offset_secs: i64) -> Timestamp {
    // 2026-01-01T00:00:00Z plus an offset.
    chrono::Utc
        .timestamp_opt(1_767_225_600 + offset_secs, 0)
        .single()
        .expect("a valid time")
}

fn sid(n: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{n:032x}")).expect("valid SID")
}

fn account() -> AccountSid {
    AccountSid::parse(ACCOUNT).expect("valid account")
}

fn observation(
    status: MessageStatus,
    source: ObservationSource,
    at: Timestamp,
) -> StatusObservation {
    StatusObservation {
        state: DeliveryState::new(status),
        source,
        observed_at: at,
    }
}

fn new_message(
    team: TeamId,
    n: u32,
    direction: Direction,
    status: MessageStatus,
    created_at: Timestamp,
) -> NewMessage {
    NewMessage {
        sid: sid(n),
        team_id: team,
        account_sid: account(),
        direction,
        from: Address::parse("+14155550100").expect("valid"),
        to: Address::parse("+14155550199").expect("valid"),
        body: format!("message {n}"),
        first_observation: observation(status, ObservationSource::Send, created_at),
        created_at,
    }
}

async fn team(store: &Store, name: &str) -> TeamId {
    store
        .create_team(name, Plan::Pro)
        .await
        .expect("team is created")
        .id
}

async fn stored(store: &Store, message: NewMessage) {
    store.insert(message).await.expect("message is stored");
}

fn change_write(
    n: u32,
    expected: MessageStatus,
    next: MessageStatus,
    at: Timestamp,
) -> ObservationWrite {
    ObservationWrite {
        sid: sid(n),
        observation: observation(next.clone(), ObservationSource::Poll, at),
        change: Some(StateChange {
            expected_status: expected,
            next: DeliveryState::new(next),
        }),
    }
}

fn integration(account_sid: &str, token: &str) -> NewIntegration {
    NewIntegration {
        account_sid: AccountSid::parse(account_sid).expect("valid"),
        auth_token: SecretString::from(token.to_owned()),
        api_key: None,
        sender: Sender::Number(PhoneNumber::parse("+14155550100").expect("valid")),
    }
}

fn token_of(integration: &smsdesk_domain::ports::TwilioIntegration) -> String {
    integration.auth_token.expose_secret().to_owned()
}

// ---------------------------------------------------------------------------------------------
// The contract

async fn a_stored_message_reads_back_with_its_first_event_and_a_duplicate_sid_is_refused(
    db: &TestDb,
) {
    let store = &db.store;
    let a = team(store, "A").await;
    let b = team(store, "B").await;
    let mut message = new_message(a, 1, Direction::OutboundApi, MessageStatus::Queued, at(0));
    message.first_observation.state = DeliveryState {
        status: MessageStatus::Queued,
        error_code: None,
        error_message: None,
        num_segments: Some(2),
        price: Some("-0.00750".into()),
        price_unit: Some("USD".into()),
    };
    let inserted = store.insert(message.clone()).await.expect("stored");
    let found = store.find(a, &sid(1)).await.expect("readable");
    assert_eq!(
        found.as_ref(),
        Some(&inserted),
        "find returns what insert returned"
    );
    let found = found.expect("present");
    assert_eq!(
        found.delivery.price.as_deref(),
        Some("-0.00750"),
        "price kept verbatim"
    );
    assert_eq!(found.delivery.num_segments, Some(2));
    assert_eq!(found.created_at, at(0));
    assert_eq!(found.last_refreshed_at, None);

    let history = store.history(a, &sid(1)).await.expect("readable");
    assert_eq!(history.len(), 1, "the first observation is the first event");
    assert!(history[0].applied);
    assert_eq!(history[0].observation, message.first_observation);

    let mut again = message.clone();
    again.team_id = b;
    assert!(
        matches!(
            store.insert(again).await,
            Err(RepositoryError::Duplicate(_))
        ),
        "a SID is unique across teams"
    );
    assert_eq!(store.find(a, &sid(2)).await, Ok(None), "unknown SID");
}

async fn another_teams_rows_are_invisible_and_untouchable_through_every_method(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let b = team(store, "B").await;
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Queued, at(0)),
    )
    .await;
    store
        .upsert(a, integration(ACCOUNT, "token-a"))
        .await
        .expect("integration stored");

    assert_eq!(store.find(b, &sid(1)).await, Ok(None), "find");
    assert_eq!(store.history(b, &sid(1)).await, Ok(vec![]), "history");
    assert_eq!(
        store.refresh_candidates(b, at(-3600), 100).await,
        Ok(vec![]),
        "refresh_candidates"
    );
    let page = store
        .list(
            b,
            MessageQuery {
                limit: 50,
                ..MessageQuery::default()
            },
        )
        .await
        .expect("list");
    assert!(page.messages.is_empty(), "list");
    assert!(
        store.for_team(b).await.expect("readable").is_none(),
        "for_team"
    );

    let outcomes = store
        .apply_observations(
            b,
            vec![change_write(
                1,
                MessageStatus::Queued,
                MessageStatus::Delivered,
                at(10),
            )],
        )
        .await
        .expect("applies");
    assert_eq!(outcomes, vec![WriteOutcome::Missing], "apply_observations");

    let claims = store
        .claim_messages(b, &[sid(1)], at(20), MINUTE)
        .await
        .expect("claims");
    assert_eq!(
        claims,
        vec![CooldownClaim::Granted],
        "nothing of B's to cool down"
    );
    let user = store
        .create_user(a, "Ada", "ada@example.com", Role::Member)
        .await
        .expect("user")
        .id;
    assert_eq!(
        store.claim_bulk(a, user, at(20), MINUTE).await,
        Ok(CooldownClaim::Granted)
    );
    assert_eq!(
        store.claim_bulk(b, user, at(21), MINUTE).await,
        Ok(CooldownClaim::Granted),
        "bulk cool-downs are kept per team"
    );

    let untouched = store
        .find(a, &sid(1))
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(
        untouched.delivery.status,
        MessageStatus::Queued,
        "B cannot write A's status"
    );
    assert_eq!(
        untouched.last_refreshed_at, None,
        "B's claim did not start A's cool-down"
    );
    assert_eq!(
        store.history(a, &sid(1)).await.map(|h| h.len()),
        Ok(1),
        "no event added"
    );
    assert_eq!(
        store.claim_messages(a, &[sid(1)], at(20), MINUTE).await,
        Ok(vec![CooldownClaim::Granted]),
        "A's own claim is still free"
    );
}

async fn observations_are_applied_conditionally_and_recorded_in_order(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    for n in 1..=3 {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Queued, at(0)),
        )
        .await;
    }
    let stale = ObservationWrite {
        sid: sid(2),
        observation: observation(MessageStatus::Queued, ObservationSource::Callback, at(5)),
        change: None,
    };
    let outcomes = store
        .apply_observations(
            a,
            vec![
                change_write(1, MessageStatus::Queued, MessageStatus::Sent, at(5)),
                stale,
                change_write(3, MessageStatus::Sending, MessageStatus::Delivered, at(5)),
                change_write(9, MessageStatus::Queued, MessageStatus::Sent, at(5)),
                change_write(1, MessageStatus::Sent, MessageStatus::Delivered, at(6)),
            ],
        )
        .await
        .expect("applies");
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Written,
            WriteOutcome::Recorded,
            WriteOutcome::Conflict,
            WriteOutcome::Missing,
            WriteOutcome::Written,
        ],
        "written, recorded without change, stale expectation, unknown SID, second step of 1"
    );
    let one = store
        .find(a, &sid(1))
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(one.delivery.status, MessageStatus::Delivered);
    assert_eq!(
        one.updated_at,
        at(6),
        "updated_at follows the applied observation"
    );
    let applied: Vec<(String, bool)> = store
        .history(a, &sid(1))
        .await
        .expect("readable")
        .into_iter()
        .map(|e| (e.observation.state.status.to_string(), e.applied))
        .collect();
    assert_eq!(
        applied,
        vec![
            ("queued".to_owned(), true),
            ("sent".to_owned(), true),
            ("delivered".to_owned(), true)
        ]
    );
    let two = store.history(a, &sid(2)).await.expect("readable");
    assert_eq!(two.len(), 2, "the unapplied observation is recorded");
    assert!(!two[1].applied);
    assert_eq!(
        store.history(a, &sid(3)).await.map(|h| h.len()),
        Ok(1),
        "a conflicting write records nothing"
    );
    assert_eq!(
        store
            .find(a, &sid(3))
            .await
            .expect("readable")
            .map(|m| m.delivery.status),
        Some(MessageStatus::Queued)
    );
    assert_eq!(store.apply_observations(a, vec![]).await, Ok(vec![]));
}

async fn of_two_concurrent_writers_from_the_same_status_exactly_one_wins(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    for round in 1..=10_u32 {
        stored(
            store,
            new_message(a, round, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
        let (left, right) = (store.clone(), store.clone());
        let delivered = tokio::spawn(async move {
            left.apply_observations(
                a,
                vec![change_write(
                    round,
                    MessageStatus::Sent,
                    MessageStatus::Delivered,
                    at(10),
                )],
            )
            .await
        });
        let failed = tokio::spawn(async move {
            right
                .apply_observations(
                    a,
                    vec![change_write(
                        round,
                        MessageStatus::Sent,
                        MessageStatus::Failed,
                        at(11),
                    )],
                )
                .await
        });
        let delivered = delivered.await.expect("joins").expect("no store error");
        let failed = failed.await.expect("joins").expect("no store error");
        let outcomes = [delivered[0].clone(), failed[0].clone()];
        let written = outcomes
            .iter()
            .filter(|o| **o == WriteOutcome::Written)
            .count();
        let conflicts = outcomes
            .iter()
            .filter(|o| **o == WriteOutcome::Conflict)
            .count();
        assert_eq!((written, conflicts), (1, 1), "round {round}: {outcomes:?}");
        let status = store
            .find(a, &sid(round))
            .await
            .expect("readable")
            .expect("present")
            .delivery
            .status;
        let winner = if outcomes[0] == WriteOutcome::Written {
            MessageStatus::Delivered
        } else {
            MessageStatus::Failed
        };
        assert_eq!(
            status, winner,
            "round {round}: the stored status is the winner's"
        );
        let events = store.history(a, &sid(round)).await.expect("readable");
        assert_eq!(
            events.len(),
            2,
            "round {round}: only the winner's event is recorded"
        );
    }
}

async fn two_batches_over_the_same_messages_in_opposite_orders_both_finish(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    for n in 1..=20 {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
    }
    let forward: Vec<_> = (1..=20)
        .map(|n| change_write(n, MessageStatus::Sent, MessageStatus::Delivered, at(10)))
        .collect();
    let backward: Vec<_> = (1..=20)
        .rev()
        .map(|n| change_write(n, MessageStatus::Sent, MessageStatus::Failed, at(11)))
        .collect();
    let (left, right) = (store.clone(), store.clone());
    let first = tokio::spawn(async move { left.apply_observations(a, forward).await });
    let second = tokio::spawn(async move { right.apply_observations(a, backward).await });
    let first = first
        .await
        .expect("joins")
        .expect("no deadlock or store error");
    let second = second
        .await
        .expect("joins")
        .expect("no deadlock or store error");
    for n in 1..=20_usize {
        let outcomes = [&first[n - 1], &second[20 - n]];
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| ***o == WriteOutcome::Written)
                .count(),
            1,
            "message {n}: exactly one batch wins, {outcomes:?}"
        );
    }
}

async fn a_cooldown_is_claimed_by_exactly_one_of_twenty_concurrent_claimers(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let user = store
        .create_user(a, "Ada", "ada@example.com", Role::Member)
        .await
        .expect("user")
        .id;
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Queued, at(0)),
    )
    .await;

    let message_claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_messages(a, &[sid(1)], at(100), MINUTE).await })
        })
        .collect();
    let bulk_claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_bulk(a, user, at(100), MINUTE).await })
        })
        .collect();
    let mut granted_messages = 0;
    for claim in futures::future::join_all(message_claims).await {
        match claim.expect("joins").expect("no store error")[0] {
            CooldownClaim::Granted => granted_messages += 1,
            CooldownClaim::Denied { retry_after_secs } => {
                assert_eq!(retry_after_secs, 60, "denied at the moment of the claim");
            }
        }
    }
    let mut granted_bulk = 0;
    for claim in futures::future::join_all(bulk_claims).await {
        match claim.expect("joins").expect("no store error") {
            CooldownClaim::Granted => granted_bulk += 1,
            CooldownClaim::Denied { retry_after_secs } => assert_eq!(retry_after_secs, 60),
        }
    }
    assert_eq!(granted_messages, 1, "exactly one message claim of twenty");
    assert_eq!(granted_bulk, 1, "exactly one bulk claim of twenty");

    assert_eq!(
        store
            .find(a, &sid(1))
            .await
            .expect("readable")
            .and_then(|m| m.last_refreshed_at),
        Some(at(100)),
        "the granted claim started the cool-down"
    );
    assert_eq!(
        store.claim_bulk(a, user, at(159), MINUTE).await,
        Ok(CooldownClaim::Denied {
            retry_after_secs: 1
        })
    );
    assert_eq!(
        store.claim_bulk(a, user, at(160), MINUTE).await,
        Ok(CooldownClaim::Granted)
    );
    assert_eq!(
        store.claim_messages(a, &[sid(1)], at(160), MINUTE).await,
        Ok(vec![CooldownClaim::Granted]),
        "free again once the cool-down has passed"
    );
}

async fn message_claims_answer_in_order_with_the_time_left(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    for n in 1..=3 {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Queued, at(0)),
        )
        .await;
    }
    assert_eq!(
        store.claim_messages(a, &[sid(2)], at(100), MINUTE).await,
        Ok(vec![CooldownClaim::Granted])
    );
    let claims = store
        .claim_messages(a, &[sid(1), sid(2), sid(3), sid(9)], at(145), MINUTE)
        .await
        .expect("claims");
    assert_eq!(
        claims,
        vec![
            CooldownClaim::Granted,
            CooldownClaim::Denied {
                retry_after_secs: 15
            },
            CooldownClaim::Granted,
            CooldownClaim::Granted,
        ],
        "never claimed, claimed 45 s ago, never claimed, not stored"
    );
    assert_eq!(
        store.claim_messages(a, &[], at(145), MINUTE).await,
        Ok(vec![])
    );
}

async fn bulk_candidates_are_the_windows_outbound_unfinished_messages_newest_first_at_most_100(
    db: &TestDb,
) {
    let store = &db.store;
    let a = team(store, "A").await;
    let window_start = at(0);
    let cases = [
        (
            1,
            Direction::OutboundApi,
            MessageStatus::Queued,
            -1,
            false,
            "just before the window",
        ),
        (
            2,
            Direction::OutboundApi,
            MessageStatus::Queued,
            0,
            true,
            "at the window's start",
        ),
        (
            3,
            Direction::Inbound,
            MessageStatus::Receiving,
            10,
            false,
            "inbound",
        ),
        (
            4,
            Direction::OutboundApi,
            MessageStatus::Delivered,
            10,
            false,
            "terminal",
        ),
        (
            5,
            Direction::OutboundApi,
            MessageStatus::Failed,
            10,
            false,
            "terminal failure",
        ),
        (
            6,
            Direction::OutboundCall,
            MessageStatus::Sent,
            20,
            true,
            "outbound-call sent",
        ),
        (
            7,
            Direction::OutboundReply,
            MessageStatus::PartiallyDelivered,
            20,
            true,
            "partial",
        ),
        (
            8,
            Direction::OutboundApi,
            MessageStatus::Unknown("teleported".into()),
            30,
            true,
            "unknown status",
        ),
    ];
    for (n, direction, status, offset, _, _) in &cases {
        stored(
            store,
            new_message(a, *n, *direction, status.clone(), at(*offset)),
        )
        .await;
    }
    let found: Vec<MessageSid> = store
        .refresh_candidates(a, window_start, 100)
        .await
        .expect("readable")
        .into_iter()
        .map(|m| m.sid)
        .collect();
    for (n, _, _, _, included, why) in &cases {
        assert_eq!(found.contains(&sid(*n)), *included, "{why}");
    }
    assert_eq!(
        found,
        vec![sid(8), sid(7), sid(6), sid(2)],
        "newest first, SID descending on equal times"
    );

    for n in 100..205 {
        stored(
            store,
            new_message(
                a,
                n,
                Direction::OutboundApi,
                MessageStatus::Sent,
                at(1000 + i64::from(n)),
            ),
        )
        .await;
    }
    let capped = store
        .refresh_candidates(a, window_start, 100)
        .await
        .expect("readable");
    assert_eq!(capped.len(), 100, "at most the limit");
    assert_eq!(capped[0].sid, sid(204), "the newest first");
    assert_eq!(capped[99].sid, sid(105), "the 100 newest");
}

async fn listing_filters_and_pages_without_gaps_or_repeats(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    for n in 1..=7 {
        // Two messages share each timestamp, so the SID must break ties.
        let direction = if n % 3 == 0 {
            Direction::Inbound
        } else {
            Direction::OutboundApi
        };
        let status = if n % 2 == 0 {
            MessageStatus::Delivered
        } else {
            MessageStatus::Sent
        };
        stored(
            store,
            new_message(a, n, direction, status, at(i64::from(n / 2))),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut after: Option<MessageCursor> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(
                a,
                MessageQuery {
                    limit: 3,
                    after: after.clone(),
                    ..MessageQuery::default()
                },
            )
            .await
            .expect("readable");
        pages += 1;
        seen.extend(page.messages.iter().map(|m| m.sid.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(pages, 3, "7 messages in pages of 3");
    assert_eq!(
        seen,
        vec![sid(7), sid(6), sid(5), sid(4), sid(3), sid(2), sid(1)],
        "newest first, every message once"
    );

    let filtered = |query: MessageQuery| async move {
        store
            .list(a, MessageQuery { limit: 50, ..query })
            .await
            .expect("readable")
            .messages
            .into_iter()
            .map(|m| m.sid)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        filtered(MessageQuery {
            direction: Some(Direction::Inbound),
            ..MessageQuery::default()
        })
        .await,
        vec![sid(6), sid(3)],
        "direction filter"
    );
    assert_eq!(
        filtered(MessageQuery {
            status: Some(MessageStatus::Delivered),
            ..MessageQuery::default()
        })
        .await,
        vec![sid(6), sid(4), sid(2)],
        "status filter"
    );
    assert_eq!(
        filtered(MessageQuery {
            created_since: Some(at(3)),
            ..MessageQuery::default()
        })
        .await,
        vec![sid(7), sid(6)],
        "created_since filter"
    );
    let capped = store
        .list(
            a,
            MessageQuery {
                limit: 10_000,
                ..MessageQuery::default()
            },
        )
        .await
        .expect("readable");
    assert_eq!(
        capped.messages.len(),
        7,
        "a huge limit is capped, not an error"
    );
}

async fn integrations_round_trip_with_secrets_encrypted_at_rest(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let b = team(store, "B").await;
    let api_key = ApiKeySid::parse("SK0123456789abcdef0123456789abcdef").expect("valid");
    let mut with_key = integration(ACCOUNT, "token-a");
    with_key.api_key = Some((api_key.clone(), SecretString::from("key-secret".to_owned())));
    with_key.sender = Sender::MessagingService(
        MessagingServiceSid::parse("MG0123456789abcdef0123456789abcdef").expect("valid"),
    );
    store.upsert(a, with_key.clone()).await.expect("stored");

    let read = store.for_team(a).await.expect("readable").expect("present");
    assert_eq!(token_of(&read), "token-a");
    assert_eq!(read.sender, with_key.sender);
    match &read.credentials.auth {
        TwilioAuth::ApiKey { sid, secret } => {
            assert_eq!(sid, &api_key);
            assert_eq!(secret.expose_secret(), "key-secret");
        }
        TwilioAuth::AuthToken(_) => panic!("the API key is preferred when configured"),
    }
    let by_account = store
        .for_account(&account())
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(
        by_account.team_id, a,
        "webhooks route by plaintext account SID"
    );

    let raw = db
        .raw_text("SELECT auth_token_encrypted FROM twilio_integrations UNION ALL SELECT api_key_secret_encrypted FROM twilio_integrations")
        .await;
    for value in &raw {
        assert!(is_encrypted(value), "stored encrypted: {value}");
        assert!(!value.contains("token-a") && !value.contains("key-secret"));
    }

    store
        .upsert(a, integration(ACCOUNT, "token-a2"))
        .await
        .expect("replaced");
    let replaced = store.for_team(a).await.expect("readable").expect("present");
    assert_eq!(token_of(&replaced), "token-a2");
    assert!(
        matches!(replaced.credentials.auth, TwilioAuth::AuthToken(_)),
        "API key removed"
    );

    assert!(
        matches!(
            store.upsert(b, integration(ACCOUNT, "token-b")).await,
            Err(RepositoryError::Duplicate(_))
        ),
        "one Twilio account belongs to one team"
    );
    store
        .upsert(b, integration(OTHER_ACCOUNT, "token-b"))
        .await
        .expect("own account");
    assert_eq!(
        store
            .for_team(b)
            .await
            .expect("readable")
            .map(|i| token_of(&i)),
        Some("token-b".to_owned())
    );
}

async fn secrets_survive_key_rotation_and_reencryption_moves_them_to_the_new_key(db: &TestDb) {
    let a = team(&db.store, "A").await;
    db.store
        .upsert(a, integration(ACCOUNT, "token-a"))
        .await
        .expect("stored");

    let new_key = SecretCipher::generate_key();
    let rotating = db.reopen(cipher(&new_key, &[&db.key])).await;
    assert_eq!(
        rotating
            .for_team(a)
            .await
            .expect("old key decrypts")
            .map(|i| token_of(&i)),
        Some("token-a".to_owned())
    );
    // A legacy row whose token was stored in plaintext is refused, never used as is.
    let b = team(&db.store, "B").await;
    db.store
        .upsert(b, integration(OTHER_ACCOUNT, "token-b"))
        .await
        .expect("stored");
    db.raw(&format!(
        "UPDATE twilio_integrations SET auth_token_encrypted = 'token-b' WHERE team_id = {b}"
    ))
    .await;
    assert!(
        matches!(
            rotating.for_team(b).await,
            Err(RepositoryError::Unexpected(_))
        ),
        "a plaintext secret is an error until re-encrypted"
    );

    let report = rotating.reencrypt_secrets().await.expect("re-encrypts");
    assert_eq!(
        (
            report.scanned,
            report.reencrypted,
            report.already_current,
            report.encrypted_from_plaintext
        ),
        (2, 1, 0, 1),
        "A's token moves to the new key, B's plaintext token is encrypted"
    );
    assert_eq!(
        rotating
            .for_team(b)
            .await
            .expect("now encrypted")
            .map(|i| token_of(&i)),
        Some("token-b".to_owned())
    );
    assert!(report.failed.is_empty());
    let again = rotating.reencrypt_secrets().await.expect("re-encrypts");
    assert_eq!(
        (
            again.reencrypted,
            again.encrypted_from_plaintext,
            again.already_current
        ),
        (0, 0, 2),
        "a second run changes nothing"
    );

    let new_only = db.reopen(cipher(&new_key, &[])).await;
    assert_eq!(
        new_only
            .for_team(a)
            .await
            .expect("new key decrypts")
            .map(|i| token_of(&i)),
        Some("token-a".to_owned()),
        "the old key is no longer needed"
    );
    let old_only = db.reopen(cipher(&db.key, &[])).await;
    assert!(
        matches!(
            old_only.for_team(a).await,
            Err(RepositoryError::Unexpected(_))
        ),
        "a wrong key is an error, never garbage or plaintext"
    );
    for store in [rotating, new_only, old_only] {
        store.close().await.ok();
    }
}

async fn api_keys_authenticate_only_when_right_and_not_revoked(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let user = store
        .create_user(a, "Ada", "ada@example.com", Role::Admin)
        .await
        .expect("user");
    assert!(matches!(
        store
            .create_user(a, "Ada 2", "ada@example.com", Role::Member)
            .await,
        Err(StoreError::Duplicate(_))
    ));
    let issued = store.create_api_key(user.id).await.expect("issued");
    let key = issued.key.expose_secret().to_owned();
    assert!(
        key.starts_with(&format!("smsd_{}_", issued.prefix)),
        "{}",
        issued.prefix
    );
    let stored_hashes = db.raw_text("SELECT key_hash FROM api_keys").await;
    assert!(
        !stored_hashes.iter().any(|h| h.contains(&key[14..])),
        "only a hash is stored"
    );

    let requester = store
        .authenticate(&SecretString::from(key.clone()))
        .await
        .expect("no store error")
        .expect("the right key authenticates");
    assert_eq!((requester.team_id, requester.user_id), (a, user.id));
    assert_eq!((requester.plan, requester.role), (Plan::Pro, Role::Admin));
    let keys = store.list_api_keys(a).await.expect("listed");
    assert!(keys[0].last_used_at.is_some(), "use is recorded");

    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('x') { 'y' } else { 'x' });
    for (presented, why) in [
        (wrong.as_str(), "right prefix, wrong secret"),
        (
            "smsd_nothere_0123456789012345678901234567890123456789",
            "unknown prefix",
        ),
        ("Bearer nonsense", "not a key"),
        ("", "empty"),
    ] {
        assert_eq!(
            store
                .authenticate(&SecretString::from(presented.to_owned()))
                .await,
            Ok(None),
            "{why}"
        );
    }

    store.set_plan(a, Plan::Free).await.expect("plan changed");
    let requester = store
        .authenticate(&SecretString::from(key.clone()))
        .await
        .expect("ok");
    assert_eq!(
        requester.map(|r| r.plan),
        Some(Plan::Free),
        "the plan is read per request"
    );

    store.revoke_api_key(&issued.prefix).await.expect("revoked");
    store
        .revoke_api_key(&issued.prefix)
        .await
        .expect("revoking twice is fine");
    assert_eq!(
        store.authenticate(&SecretString::from(key)).await,
        Ok(None),
        "revoked"
    );
    assert!(matches!(
        store.revoke_api_key("zzzzzzzz").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .list_teams()
            .await
            .expect("listed")
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![a]
    );
}

async fn the_account_sid_migration_dry_runs_applies_once_and_leaves_undecryptable_rows(
    db: &TestDb,
) {
    let store = &db.store;
    let sealer = cipher(&db.key, &[]);
    let a = team(store, "A").await;
    for n in 1..=5 {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
    }
    let encrypted = |value: &str| sealer.encrypt(value).expect("encrypts");
    let foreign = cipher(&SecretCipher::generate_key(), &[])
        .encrypt(ACCOUNT)
        .expect("encrypts");
    let not_a_sid = encrypted("hello");
    for (n, value) in [
        (1, encrypted(ACCOUNT)),
        (2, encrypted(OTHER_ACCOUNT)),
        (3, encrypted(ACCOUNT)),
        (4, foreign.clone()),
        (5, not_a_sid.clone()),
    ] {
        db.raw(&format!(
            "UPDATE sms_messages SET account_sid = '{value}' WHERE sid = '{}'",
            sid(n)
        ))
        .await;
    }
    stored(
        store,
        new_message(a, 6, Direction::OutboundApi, MessageStatus::Sent, at(0)),
    )
    .await;
    let snapshot = || db.raw_text("SELECT account_sid FROM sms_messages ORDER BY id");
    let before = snapshot().await;

    let dry = decrypt_account_sids(store, &sealer, DecryptOptions::default())
        .await
        .expect("dry run");
    assert_eq!(
        (
            dry.applied,
            dry.scanned,
            dry.already_plaintext,
            dry.decrypted
        ),
        (false, 6, 1, 3)
    );
    assert_eq!(dry.undecryptable.len(), 2, "{:?}", dry.undecryptable);
    assert_eq!(snapshot().await, before, "a dry run writes nothing");

    let options = DecryptOptions {
        apply: true,
        batch_size: 2,
    };
    let applied = decrypt_account_sids(store, &sealer, options)
        .await
        .expect("applies");
    assert_eq!((applied.decrypted, applied.already_plaintext), (3, 1));
    let listed: Vec<&str> = applied
        .undecryptable
        .iter()
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(listed, vec![sid(4).as_str(), sid(5).as_str()]);
    assert!(
        applied.undecryptable[1].1.contains("not an account SID"),
        "{:?}",
        applied.undecryptable
    );

    let after = snapshot().await;
    assert_eq!(
        after,
        vec![
            ACCOUNT.to_owned(),
            OTHER_ACCOUNT.to_owned(),
            ACCOUNT.to_owned(),
            foreign,
            not_a_sid,
            ACCOUNT.to_owned(),
        ],
        "decrypted rows are plaintext; undecryptable rows are untouched"
    );
    assert_eq!(
        store
            .find(a, &sid(2))
            .await
            .expect("readable")
            .map(|m| m.account_sid.to_string()),
        Some(OTHER_ACCOUNT.to_owned())
    );

    let second = decrypt_account_sids(store, &sealer, options)
        .await
        .expect("applies");
    assert_eq!(
        (second.decrypted, second.already_plaintext),
        (0, 4),
        "nothing left to do"
    );
    assert_eq!(snapshot().await, after, "a second run changes nothing");
}

async fn the_bulk_candidate_and_list_queries_are_served_by_the_composite_indexes(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    for n in 1..=20 {
        stored(
            store,
            new_message(
                a,
                n,
                Direction::OutboundApi,
                MessageStatus::Sent,
                at(i64::from(n)),
            ),
        )
        .await;
    }
    use smsdesk_migrations::{SMS_MESSAGE_COMPOSITE_INDEX, SMS_MESSAGE_LIST_INDEX};
    let plan = store
        .explain_refresh_candidates(a, at(0), 100)
        .await
        .expect("explainable");
    eprintln!("bulk candidate query plan ({:?}):\n{plan}", store.backend());
    assert!(
        plan.uses_index(SMS_MESSAGE_COMPOSITE_INDEX) || plan.uses_index(SMS_MESSAGE_LIST_INDEX),
        "the bulk query must be served by one of the two composite indexes:\n{plan}"
    );
    let unfiltered = store
        .explain_list(
            a,
            &MessageQuery {
                limit: 50,
                ..MessageQuery::default()
            },
        )
        .await
        .expect("explainable");
    assert!(
        unfiltered.uses_index(SMS_MESSAGE_LIST_INDEX) && !unfiltered.sorts(),
        "an unfiltered page must be read in the list index's order, without a sort:\n{unfiltered}"
    );
    let lists = [
        (
            MessageQuery {
                direction: Some(Direction::OutboundApi),
                status: Some(MessageStatus::Sent),
                ..MessageQuery::default()
            },
            "direction and status",
        ),
        (
            MessageQuery {
                status: Some(MessageStatus::Failed),
                ..MessageQuery::default()
            },
            "status only",
        ),
        (
            MessageQuery {
                created_since: Some(at(5)),
                after: Some(MessageCursor {
                    created_at: at(10),
                    sid: sid(10),
                }),
                ..MessageQuery::default()
            },
            "window and cursor",
        ),
    ];
    for (query, why) in lists {
        let plan = store
            .explain_list(a, &MessageQuery { limit: 50, ..query })
            .await
            .expect("explainable");
        assert!(
            plan.uses_index(SMS_MESSAGE_LIST_INDEX) || plan.uses_index(SMS_MESSAGE_COMPOSITE_INDEX),
            "{why}: the list must be served by a composite index:\n{plan}"
        );
    }
}

async fn a_closed_pool_is_reported_as_unavailable(db: &TestDb) {
    let store = db.reopen(cipher(&db.key, &[])).await;
    let a = team(&store, "A").await;
    let clone = store.clone();
    store.close().await.expect("closes");
    assert!(
        matches!(
            clone.find(a, &sid(1)).await,
            Err(RepositoryError::Unavailable(_))
        ),
        "a closed pool is unavailable, not unexpected"
    );
}

// ---------------------------------------------------------------------------------------------
// The callback inbox

fn callback(status: MessageStatus, at: Timestamp) -> StatusObservation {
    observation(status, ObservationSource::Callback, at)
}

async fn a_parked_callback_is_taken_back_with_every_field_oldest_first(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let failed = StatusObservation {
        state: DeliveryState {
            status: MessageStatus::Undelivered,
            error_code: Some(30_003),
            error_message: Some("Unreachable destination handset".into()),
            num_segments: Some(3),
            price: Some("-0.02250".into()),
            price_unit: Some("USD".into()),
        },
        source: ObservationSource::Callback,
        observed_at: at(20) + chrono::Duration::microseconds(123_456),
    };
    let sent = callback(MessageStatus::Sent, at(10));
    // Parked newest first, to show the order comes from the observation time.
    store.park(a, &sid(1), failed.clone()).await.expect("parks");
    store.park(a, &sid(1), sent.clone()).await.expect("parks");
    store
        .park(a, &sid(2), callback(MessageStatus::Queued, at(5)))
        .await
        .expect("parks");
    let taken = store.take_parked(a, &sid(1)).await.expect("takes");
    assert_eq!(
        taken,
        vec![sent, failed],
        "every field reads back, microseconds included, and the oldest comes first"
    );
    assert_eq!(
        store.take_parked(a, &sid(2)).await.expect("takes").len(),
        1,
        "another SID's callback is not taken with the first"
    );
}

async fn parking_the_same_sid_and_status_twice_keeps_one(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let first = callback(MessageStatus::Delivered, at(1));
    store.park(a, &sid(1), first.clone()).await.expect("parks");
    store
        .park(a, &sid(1), callback(MessageStatus::Delivered, at(2)))
        .await
        .expect("a retried callback parks without error");
    store
        .park(a, &sid(1), callback(MessageStatus::Sent, at(3)))
        .await
        .expect("another status parks");
    let taken = store.take_parked(a, &sid(1)).await.expect("takes");
    assert_eq!(
        taken,
        vec![first, callback(MessageStatus::Sent, at(3))],
        "the retry of (SID, delivered) is dropped and the first one kept; another status is kept"
    );
}

async fn another_team_cannot_take_a_teams_parked_callbacks(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let b = team(store, "B").await;
    let parked = callback(MessageStatus::Sent, at(1));
    store.park(a, &sid(1), parked.clone()).await.expect("parks");
    store
        .park(b, &sid(1), callback(MessageStatus::Sent, at(2)))
        .await
        .expect("the same (SID, status) parks separately for another team");
    let b_taken = store.take_parked(b, &sid(1)).await.expect("takes");
    assert_eq!(
        b_taken,
        vec![callback(MessageStatus::Sent, at(2))],
        "team B takes only its own"
    );
    assert!(
        store
            .take_parked(b, &sid(1))
            .await
            .expect("takes")
            .is_empty(),
        "team B has nothing left and cannot reach team A's"
    );
    assert_eq!(
        store.take_parked(a, &sid(1)).await.expect("takes"),
        vec![parked],
        "team A's callback is still there after team B's takes"
    );
}

async fn taking_removes_what_was_parked(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    assert!(
        store
            .take_parked(a, &sid(1))
            .await
            .expect("takes")
            .is_empty(),
        "nothing parked, nothing taken"
    );
    store
        .park(a, &sid(1), callback(MessageStatus::Sent, at(1)))
        .await
        .expect("parks");
    assert_eq!(store.take_parked(a, &sid(1)).await.expect("takes").len(), 1);
    assert!(
        store
            .take_parked(a, &sid(1))
            .await
            .expect("takes")
            .is_empty(),
        "a second take finds nothing"
    );
    assert_eq!(
        store
            .discard_parked_before(at(1_000))
            .await
            .expect("discards"),
        0,
        "the taken row is gone from the table"
    );
    store
        .park(a, &sid(1), callback(MessageStatus::Sent, at(2)))
        .await
        .expect("the same (SID, status) can be parked again once taken");
    assert_eq!(store.take_parked(a, &sid(1)).await.expect("takes").len(), 1);
}

async fn parked_callbacks_older_than_the_cutoff_are_discarded_and_counted(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let b = team(store, "B").await;
    store
        .park(a, &sid(1), callback(MessageStatus::Sent, at(10)))
        .await
        .expect("parks");
    store
        .park(b, &sid(2), callback(MessageStatus::Sent, at(20)))
        .await
        .expect("parks");
    store
        .park(a, &sid(3), callback(MessageStatus::Sent, at(30)))
        .await
        .expect("parks");
    assert_eq!(
        store.discard_parked_before(at(10)).await.expect("discards"),
        0,
        "the cutoff is exclusive: a callback observed at the cutoff stays"
    );
    assert_eq!(
        store.discard_parked_before(at(30)).await.expect("discards"),
        2,
        "older callbacks of every team are discarded"
    );
    assert!(
        store
            .take_parked(a, &sid(1))
            .await
            .expect("takes")
            .is_empty()
    );
    assert!(
        store
            .take_parked(b, &sid(2))
            .await
            .expect("takes")
            .is_empty()
    );
    assert_eq!(
        store.take_parked(a, &sid(3)).await.expect("takes").len(),
        1,
        "the callback at the cutoff is kept"
    );
}

async fn two_concurrent_takers_receive_each_parked_callback_exactly_once(db: &TestDb) {
    let store = &db.store;
    let a = team(store, "A").await;
    let statuses = [
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
    ];
    for round in 1..=10_u32 {
        for (offset, status) in (0_i64..).zip(statuses.iter()) {
            store
                .park(a, &sid(round), callback(status.clone(), at(offset)))
                .await
                .expect("parks");
        }
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.take_parked(a, &sid(round)).await })
            })
            .collect();
        let mut taken: Vec<MessageStatus> = Vec::new();
        for taker in futures::future::join_all(takers).await {
            let observations = taker.expect("joins").expect("no store error");
            taken.extend(observations.into_iter().map(|o| o.state.status));
        }
        taken.sort_by_key(|status| status.as_str().to_owned());
        let mut expected = statuses.to_vec();
        expected.sort_by_key(|status| status.as_str().to_owned());
        assert_eq!(
            taken, expected,
            "round {round}: between them the takers got every callback once"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory SQLite, as the app's tests use it.

#[tokio::test]
async fn an_in_memory_sqlite_store_works_and_keeps_its_data_on_one_connection() {
    let store = open(
        "sqlite::memory:",
        cipher(&SecretCipher::generate_key(), &[]),
    )
    .await;
    let a = team(&store, "A").await;
    stored(
        &store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Queued, at(0)),
    )
    .await;
    let claims: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_messages(a, &[sid(1)], at(5), MINUTE).await })
        })
        .collect();
    let granted = futures::future::join_all(claims)
        .await
        .into_iter()
        .filter(|c| matches!(c, Ok(Ok(v)) if v[0].is_granted()))
        .count();
    assert_eq!(granted, 1);
    assert!(store.find(a, &sid(1)).await.expect("readable").is_some());
}

#[tokio::test]
async fn an_unknown_url_scheme_is_refused_clearly() {
    let err = Store::connect(
        "mysql://localhost/x",
        StoreOptions::new(cipher(&SecretCipher::generate_key(), &[])),
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err}");
}
