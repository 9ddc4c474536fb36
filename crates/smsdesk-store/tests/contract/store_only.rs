//! What only the database adapter promises, beyond the ports' contract: secrets encrypted at
//! rest and surviving a key rotation, API keys stored as hashes, the account-SID data migration,
//! the query plans of the hot queries, a closed pool reported as unavailable, the batch
//! statements on PostgreSQL (their locks, and values carried exactly).

use secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::ports::{
    ApiKeyAuthenticator, IntegrationRepository, MessageCursor, MessageQuery, MessageRepository,
    RefreshLimiter, RepositoryError, StuckMessages,
};
use smsdesk_domain::{ApiKeySid, Direction, MessageStatus, ObservationSource, Plan, Role};
use smsdesk_store::cipher::is_encrypted;
use smsdesk_store::{
    DecryptOptions, SecretCipher, Store, StoreError, StoreOptions, decrypt_account_sids,
};
use smsdesk_test_support::contract::{
    ACCOUNT, MINUTE, OTHER_ACCOUNT, at, integration, new_message, sid, stored, team, token_of,
};

use crate::{TestDb, cipher, open};

crate::on_both_databases!(
    crate::store_only =>
    integration_secrets_are_stored_encrypted,
    secrets_survive_key_rotation_and_reencryption_moves_them_to_the_new_key,
    api_keys_authenticate_only_when_right_and_not_revoked,
    the_account_sid_migration_dry_runs_applies_once_and_leaves_undecryptable_rows,
    the_bulk_candidate_and_list_queries_are_served_by_the_composite_indexes,
    the_change_log_is_read_by_an_index_range_never_a_scan,
    a_closed_pool_is_reported_as_unavailable,
    row_locks_never_wait_on_a_history_inserts_key_share,
    batches_share_statements_and_never_wait_on_another_transactions_lock,
    a_write_carries_any_text_and_its_time_to_the_microsecond,
);

pub(crate) async fn the_change_log_is_read_by_an_index_range_never_a_scan(db: &TestDb) {
    use smsdesk_domain::changes::LogPosition;
    let store = &db.store;
    let a = team(db, "A").await;
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
    let after = LogPosition { epoch: 0, id: 10 };
    // The follower's read, after every commit: a range of the log from the position on.
    let plan = store
        .explain_change_log_read(after, None)
        .await
        .expect("explainable");
    eprintln!("change log read plan ({:?}):\n{plan}", store.backend());
    let ranged = match store.backend() {
        smsdesk_store::Backend::Sqlite => plan
            .text()
            .contains("SEARCH e USING INTEGER PRIMARY KEY (rowid>?)"),
        smsdesk_store::Backend::Postgres => {
            plan.uses_index(smsdesk_migrations::CHANGE_LOG_INDEX)
                && plan.text().contains("ROW(commit_tx, id) >")
        }
    };
    assert!(
        ranged,
        "an index range from the position, not a scan:\n{plan}"
    );
    // A team's catch-up on reconnect may start from the team's messages instead; never a scan
    // of the whole history.
    let plan = store
        .explain_change_log_read(after, Some(a))
        .await
        .expect("explainable");
    assert!(
        !plan.text().contains("SCAN e")
            && !plan.text().contains("Seq Scan on message_status_events"),
        "{plan}"
    );
}

pub(crate) async fn integration_secrets_are_stored_encrypted(db: &TestDb) {
    let a = team(db, "A").await;
    let mut with_key = integration(ACCOUNT, "token-a");
    with_key.api_key = Some((
        ApiKeySid::parse("SK0123456789abcdef0123456789abcdef").expect("valid"),
        SecretString::from("key-secret".to_owned()),
    ));
    db.store.upsert(a, with_key).await.expect("stored");
    let raw = db
        .raw_text("SELECT auth_token_encrypted FROM twilio_integrations UNION ALL SELECT api_key_secret_encrypted FROM twilio_integrations")
        .await;
    assert_eq!(raw.len(), 2, "{raw:?}");
    for value in &raw {
        assert!(is_encrypted(value), "stored encrypted: {value}");
        assert!(!value.contains("token-a") && !value.contains("key-secret"));
    }
}

pub(crate) async fn secrets_survive_key_rotation_and_reencryption_moves_them_to_the_new_key(
    db: &TestDb,
) {
    let a = team(db, "A").await;
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
    let b = team(db, "B").await;
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

pub(crate) async fn api_keys_authenticate_only_when_right_and_not_revoked(db: &TestDb) {
    let store = &db.store;
    let a = team(db, "A").await;
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
    store
        .authenticate(&SecretString::from(key.clone()))
        .await
        .expect("no store error")
        .expect("authenticates again");
    assert_eq!(
        store.list_api_keys(a).await.expect("listed")[0].last_used_at,
        keys[0].last_used_at,
        "a second use within minutes writes nothing"
    );

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

pub(crate) async fn the_account_sid_migration_dry_runs_applies_once_and_leaves_undecryptable_rows(
    db: &TestDb,
) {
    let store = &db.store;
    let sealer = cipher(&db.key, &[]);
    let a = team(db, "A").await;
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

pub(crate) async fn the_bulk_candidate_and_list_queries_are_served_by_the_composite_indexes(
    db: &TestDb,
) {
    let store = &db.store;
    let a = team(db, "A").await;
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
    let duplicate_check = store
        .explain_find_with_observed(
            a,
            &sid(1),
            ObservationSource::Callback,
            &MessageStatus::Sent,
        )
        .await
        .expect("explainable");
    assert!(
        duplicate_check.uses_index(smsdesk_migrations::STATUS_EVENT_SOURCE_INDEX),
        "a retried callback is found by one probe of the (message, source, status) index, not by \
         reading the message's history:\n{duplicate_check}"
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
                statuses: vec![MessageStatus::Sent],
                ..MessageQuery::default()
            },
            "direction and status",
        ),
        (
            MessageQuery {
                statuses: vec![MessageStatus::Failed],
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

pub(crate) async fn a_closed_pool_is_reported_as_unavailable(db: &TestDb) {
    let store = db.reopen(cipher(&db.key, &[])).await;
    let a = team(db, "A").await;
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

// // In-memory SQLite, as the app's tests use it.

#[tokio::test]
async fn an_in_memory_sqlite_store_works_and_keeps_its_data_on_one_connection() {
    let store = open(
        "sqlite::memory:",
        cipher(&SecretCipher::generate_key(), &[]),
    )
    .await;
    let a = store
        .create_team("A", Plan::Pro)
        .await
        .expect("team is created")
        .id;
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

/// Every row lock this store takes on PostgreSQL is `FOR NO KEY UPDATE`, the lock an UPDATE of
/// non-key columns takes, so none waits on a transaction holding `KEY SHARE` on the message: the
/// lock a history insert's foreign key takes. With `FOR UPDATE` the two conflict, and a batch
/// write that records an unapplied observation of a lower message id after updating a higher one
/// closes a circle with a concurrent cool-down claim: a deadlock PostgreSQL has to break.
/// (SQLite has no row locks: its one writer serialises every write.)
pub(crate) async fn row_locks_never_wait_on_a_history_inserts_key_share(db: &TestDb) {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    use std::time::Duration;
    if db.store.backend() != smsdesk_store::Backend::Postgres {
        return;
    }
    let store = &db.store;
    let a = team(db, "A").await;
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Sent, at(0)),
    )
    .await;
    let holder = Database::connect(db.url.as_str())
        .await
        .expect("second connection");
    let history_insert = holder.begin().await.expect("transaction");
    history_insert
        .execute_unprepared(&format!(
            "SELECT id FROM sms_messages WHERE sid = '{}' FOR KEY SHARE",
            sid(1).as_str()
        ))
        .await
        .expect("key share taken");

    // A claim that waited would wait until the holder ends: the bound only turns a hang into
    // a failure.
    let bound = Duration::from_secs(30);
    let claim =
        tokio::time::timeout(bound, store.claim_messages(a, &[sid(1)], at(60), MINUTE)).await;
    let timed_out = tokio::time::timeout(bound, store.time_out_stuck(at(60), at(60), 10)).await;
    history_insert.rollback().await.ok();
    holder.close().await.ok();

    let claims = claim
        .expect("the cool-down claim does not wait on KEY SHARE")
        .expect("claimed");
    assert_eq!(claims, vec![smsdesk_domain::CooldownClaim::Granted]);
    let stuck = timed_out
        .expect("the stuck timeout does not wait on KEY SHARE")
        .expect("timed out");
    assert_eq!(
        stuck.len(),
        1,
        "a row under KEY SHARE is not skipped as if another replica held it"
    );
}

/// On PostgreSQL, single writes, reads and cool-down claims that arrive together share
/// statements (`batch_counts` counts them, and none of those statements may fail: a failing
/// one would hand its calls back to run alone, which the contract cases could not tell apart).
/// A row another transaction holds (another replica's write in progress) holds up only the
/// calls for that row: the batch skips it and hands its calls back, which then wait for the
/// lock alone and see the row as it is once released. (SQLite's group commit has no row locks.)
pub(crate) async fn batches_share_statements_and_never_wait_on_another_transactions_lock(
    db: &TestDb,
) {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    use smsdesk_domain::CooldownClaim;
    use smsdesk_domain::ports::WriteOutcome;
    use std::time::Duration;
    if db.store.backend() != smsdesk_store::Backend::Postgres {
        assert_eq!(db.store.batch_counts(), None);
        return;
    }
    let store = &db.store;
    let a = team(db, "A").await;
    for n in 1..=12 {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
    }
    let delivered = |n: u32| {
        smsdesk_test_support::contract::change_write(
            n,
            MessageStatus::Sent,
            MessageStatus::Delivered,
            at(30),
        )
    };
    let holder = Database::connect(db.url.as_str())
        .await
        .expect("second connection");
    let other_replica = holder.begin().await.expect("transaction");
    other_replica
        .execute_unprepared(&format!(
            "SELECT id FROM sms_messages WHERE sid = '{}' FOR NO KEY UPDATE",
            sid(1).as_str()
        ))
        .await
        .expect("row locked");

    let locked_write = tokio::spawn({
        let store = store.clone();
        async move { store.apply_observations(a, vec![delivered(1)]).await }
    });
    let locked_claim = tokio::spawn({
        let store = store.clone();
        async move { store.claim_messages(a, &[sid(1)], at(40), MINUTE).await }
    });
    let burst = async {
        let writes = futures::future::join_all(
            (2..=12).map(|n| store.apply_observations(a, vec![delivered(n)])),
        );
        let claims = futures::future::join_all(
            (2..=12)
                .map(|n| async move { store.claim_messages(a, &[sid(n)], at(40), MINUTE).await }),
        );
        let reads = futures::future::join_all(
            (1..=12).map(|n| async move { store.find(a, &sid(n)).await }),
        );
        futures::join!(writes, claims, reads)
    };
    // Calls that waited would wait until the holder ends: the bound only turns a hang into a
    // failure.
    let bound = Duration::from_secs(30);
    let (writes, claims, reads) = tokio::time::timeout(bound, burst)
        .await
        .expect("the other messages' calls do not wait on message 1's lock");
    for outcome in writes {
        assert_eq!(outcome.expect("writable"), vec![WriteOutcome::Written]);
    }
    for claim in claims {
        assert_eq!(claim.expect("claimable"), vec![CooldownClaim::Granted]);
    }
    for (n, read) in (1..=12).zip(reads) {
        let message = read.expect("readable").expect("present");
        assert_eq!(message.sid, sid(n), "each read answers its own message");
    }
    other_replica.rollback().await.ok();
    holder.close().await.ok();
    let write = tokio::time::timeout(bound, locked_write)
        .await
        .expect("the locked message's write ends once the lock is released")
        .expect("joins");
    assert_eq!(
        write.expect("writable"),
        vec![WriteOutcome::Written],
        "skipped by a batch, then written alone, not refused"
    );
    let claim = tokio::time::timeout(bound, locked_claim)
        .await
        .expect("the locked message's claim ends once the lock is released")
        .expect("joins");
    assert_eq!(claim.expect("claimable"), vec![CooldownClaim::Granted]);

    // Without a cool-down every claim goes through, in a batch too.
    let again = futures::future::join_all((1..=12).map(|n| async move {
        store
            .claim_messages(a, &[sid(n)], at(41), Duration::ZERO)
            .await
    }))
    .await;
    for claim in again {
        assert_eq!(claim.expect("claimable"), vec![CooldownClaim::Granted]);
    }
    let (run, failed) = store.batch_counts().expect("PostgreSQL batches");
    assert!(run >= 3, "the bursts ran as batches: {run}");
    assert_eq!(failed, 0, "no batch statement failed");
}

/// A write's values reach the database as they were given, whatever their text: on PostgreSQL
/// a batch carries its calls as one JSON parameter, so quotes, backslashes, control characters
/// and non-ASCII text must survive the trip, and a time must come back to the microsecond, or
/// the next write's condition on it (the message's time as its caller read it) would never hold.
pub(crate) async fn a_write_carries_any_text_and_its_time_to_the_microsecond(db: &TestDb) {
    use smsdesk_domain::ports::{ObservationWrite, StateChange, WriteOutcome};
    use smsdesk_domain::{DeliveryState, StatusObservation};
    let store = &db.store;
    let a = team(db, "A").await;
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Sent, at(0)),
    )
    .await;
    let text = "\"quoted\" \\ back\\slash\n\ttab \u{7f} \u{1} caf\u{e9} \u{2603} \u{1f680} ' ; --";
    let observed_at = at(30) + chrono::Duration::microseconds(123_457);
    let undelivered = DeliveryState {
        error_code: Some(30_003),
        error_message: Some(text.to_owned()),
        price: Some("-0.00750".to_owned()),
        price_unit: Some("USD".to_owned()),
        num_segments: Some(3),
        ..DeliveryState::new(MessageStatus::Undelivered)
    };
    let write = |expected_updated_at, next: &DeliveryState, when| ObservationWrite {
        sid: sid(1),
        observation: StatusObservation {
            state: next.clone(),
            source: ObservationSource::Callback,
            observed_at: when,
        },
        change: Some(StateChange {
            expected_status: MessageStatus::Sent,
            expected_updated_at,
            next: next.clone(),
        }),
    };
    let outcome = store
        .apply_observations(a, vec![write(None, &undelivered, observed_at)])
        .await
        .expect("writable");
    assert_eq!(outcome, vec![WriteOutcome::Written]);
    let message = store
        .find(a, &sid(1))
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(message.delivery, undelivered, "every value as it was given");
    assert_eq!(message.updated_at, observed_at, "to the microsecond");
    // A page of the list reads it the same (on SQLite, from the page the database aggregated
    // into one JSON text, escapes and all).
    let page = store
        .list(
            a,
            smsdesk_domain::ports::MessageQuery {
                limit: 50,
                ..smsdesk_domain::ports::MessageQuery::default()
            },
        )
        .await
        .expect("listable");
    assert_eq!(
        page.messages,
        vec![message],
        "a listed message reads as found"
    );

    // The next change is conditional on the time just stored: one microsecond off is a
    // conflict, the time itself lands.
    let mut sent_again = undelivered.clone();
    sent_again.status = MessageStatus::Sent;
    let from_undelivered = |expected_updated_at| {
        let mut write = write(Some(expected_updated_at), &sent_again, at(40));
        if let Some(change) = write.change.as_mut() {
            change.expected_status = MessageStatus::Undelivered;
        }
        write
    };
    let off = store
        .apply_observations(
            a,
            vec![from_undelivered(
                observed_at - chrono::Duration::microseconds(1),
            )],
        )
        .await
        .expect("writable");
    assert_eq!(off, vec![WriteOutcome::Conflict]);
    let exact = store
        .apply_observations(a, vec![from_undelivered(observed_at)])
        .await
        .expect("writable");
    assert_eq!(exact, vec![WriteOutcome::Written]);
}
