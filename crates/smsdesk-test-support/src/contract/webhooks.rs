//! The `WebhookRepository` contract and the outbox the message writes fill: endpoints scoped to
//! their team, one delivery per applied change and subscribed enabled endpoint, claims that are
//! exclusive, leased, in order per message and due on time, 410 disabling, dead and replay.
#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use std::collections::HashSet;
use std::time::Duration;

use smsdesk_domain::ports::{MessageRepository, ObservationWrite, StuckMessages, WriteOutcome};
use smsdesk_domain::webhooks::{
    AfterAttempt, DeliveryAttempt, DeliveryStatus, DisabledReason, DueDelivery, EndpointId,
    EndpointPatch, EndpointUrl, EventSelection, NewEndpoint, UrlPolicy, WebhookEndpoint,
    WebhookEvent, WebhookSecret,
};
use smsdesk_domain::{Direction, MessageStatus, ObservationSource, TeamId, Timestamp};

use super::{
    ContractSubject, PortSet, at, change_write, new_message, observation, sid, stored, team,
};

const LEASE: Duration = Duration::from_secs(60);

fn secret(n: u8) -> WebhookSecret {
    WebhookSecret::from_key(&[n; 32]).expect("a key")
}

fn url(path: &str) -> EndpointUrl {
    EndpointUrl::parse(
        &format!("http://127.0.0.1:9/{path}"),
        UrlPolicy::DEVELOPMENT,
    )
    .expect("url")
}

async fn endpoint(
    store: &PortSet,
    team: TeamId,
    path: &str,
    events: EventSelection,
    enabled: bool,
) -> WebhookEndpoint {
    store
        .webhooks()
        .create_endpoint(
            team,
            NewEndpoint {
                url: url(path),
                events,
                enabled,
            },
            &secret(1),
            at(0),
        )
        .await
        .expect("endpoint stored")
}

const STATUS_ONLY: EventSelection = EventSelection {
    status_changed: true,
    received: false,
};
const RECEIVED_ONLY: EventSelection = EventSelection {
    status_changed: false,
    received: true,
};

fn answered(status: u16, at_secs: i64) -> DeliveryAttempt {
    DeliveryAttempt {
        attempted_at: at(at_secs),
        status_code: Some(status),
        response_body: format!("answer {status}"),
        error: None,
        duration_ms: 3,
    }
}

async fn claim(store: &PortSet, now: Timestamp) -> Vec<DueDelivery> {
    store
        .webhooks()
        .claim_due(now, 100, LEASE)
        .await
        .expect("claimable")
}

async fn outbound(store: &PortSet, team: TeamId, n: u32, created: i64) {
    stored(
        store,
        new_message(
            team,
            n,
            Direction::OutboundApi,
            MessageStatus::Queued,
            at(created),
        ),
    )
    .await;
}

pub async fn endpoints_belong_to_their_team_and_keep_their_changes(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let hooks = store.webhooks();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let created = endpoint(store, a, "a", EventSelection::ALL, true).await;
    assert_eq!(
        hooks.list_endpoints(a).await.expect("list"),
        vec![created.clone()]
    );
    assert!(hooks.list_endpoints(b).await.expect("list").is_empty());
    assert_eq!(
        hooks.find_endpoint(b, created.id).await.expect("find"),
        None
    );
    assert_eq!(
        hooks
            .update_endpoint(b, created.id, EndpointPatch::default(), at(1))
            .await
            .expect("update"),
        None,
        "another team's endpoint is not changed"
    );
    assert!(!hooks.delete_endpoint(b, created.id).await.expect("delete"));

    let changed = hooks
        .update_endpoint(
            a,
            created.id,
            EndpointPatch {
                url: Some(url("moved")),
                events: Some(RECEIVED_ONLY),
                enabled: Some(false),
            },
            at(5),
        )
        .await
        .expect("update")
        .expect("found");
    assert_eq!(changed.url, url("moved"));
    assert_eq!(changed.events, RECEIVED_ONLY);
    assert!(!changed.enabled);
    assert_eq!(changed.updated_at, at(5));
    assert_eq!(
        hooks.find_endpoint(a, created.id).await.expect("find"),
        Some(changed)
    );

    let rotated = hooks
        .rotate_secret(a, created.id, &secret(2), at(86_400), at(6))
        .await
        .expect("rotate")
        .expect("found");
    assert_eq!(rotated.previous_secret_expires_at, Some(at(86_400)));
    assert!(hooks.delete_endpoint(a, created.id).await.expect("delete"));
    assert!(hooks.list_endpoints(a).await.expect("list").is_empty());
    assert_eq!(
        hooks
            .find_endpoint(a, EndpointId::new(created.id.get()))
            .await
            .expect("find"),
        None
    );
}

pub async fn every_applied_change_is_one_delivery_per_subscribed_enabled_endpoint(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let statuses = endpoint(store, a, "statuses", STATUS_ONLY, true).await;
    let inbound = endpoint(store, a, "inbound", RECEIVED_ONLY, true).await;
    endpoint(store, a, "disabled", EventSelection::ALL, false).await;
    endpoint(store, b, "other-team", EventSelection::ALL, true).await;

    outbound(store, a, 1, 0).await;
    store
        .apply_observations(
            a,
            vec![
                change_write(1, MessageStatus::Queued, MessageStatus::Delivered, at(10)),
                // Not news: recorded in the history, told to nobody.
                ObservationWrite {
                    sid: sid(1),
                    observation: observation(
                        MessageStatus::Delivered,
                        ObservationSource::Callback,
                        at(11),
                    ),
                    change: None,
                },
            ],
        )
        .await
        .expect("applied");
    let mut arrival = new_message(a, 2, Direction::Inbound, MessageStatus::Received, at(20));
    arrival.first_observation.source = ObservationSource::Inbound;
    stored(store, arrival).await;

    let first = claim(store, at(100)).await;
    let mut seen: Vec<(String, WebhookEvent, MessageStatus)> = first
        .iter()
        .map(|d| {
            (
                d.url.as_str().to_owned(),
                d.facts.event,
                d.facts.state.status.clone(),
            )
        })
        .collect();
    seen.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        seen,
        vec![
            (
                inbound.url.as_str().to_owned(),
                WebhookEvent::Received,
                MessageStatus::Received
            ),
            (
                statuses.url.as_str().to_owned(),
                WebhookEvent::StatusChanged,
                MessageStatus::Queued
            ),
        ],
        "the message's creation and the inbound arrival; its change waits behind its creation"
    );
    for delivery in &first {
        assert_eq!(delivery.attempt, 1);
        assert_eq!(delivery.secrets.len(), 1);
        assert!(delivery.facts.webhook_id().starts_with("evt_"));
        store
            .webhooks()
            .record_attempt(delivery.id, answered(200, 100), AfterAttempt::Delivered)
            .await
            .expect("recorded");
    }
    let second = claim(store, at(101)).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].facts.state.status, MessageStatus::Delivered);
    assert_eq!(second[0].facts.source, ObservationSource::Poll);
    assert_eq!(second[0].url, statuses.url);
    assert!(
        second[0].facts.event_id > first.iter().map(|d| d.facts.event_id).min().unwrap_or(0),
        "one event id per history row, in order"
    );
    let listed = store
        .webhooks()
        .list_deliveries(b, statuses.id, None, 50)
        .await
        .expect("listable");
    assert!(listed.is_empty(), "another team lists none of them");
}

pub async fn a_single_change_alone_is_one_delivery_per_subscribed_enabled_endpoint(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let statuses = endpoint(store, a, "statuses", STATUS_ONLY, true).await;
    endpoint(store, a, "inbound", RECEIVED_ONLY, true).await;
    endpoint(store, a, "disabled", EventSelection::ALL, false).await;
    endpoint(store, b, "other-team", EventSelection::ALL, true).await;
    outbound(store, a, 1, 0).await;
    let created: Vec<DueDelivery> = claim(store, at(50)).await;
    assert_eq!(
        created.len(),
        1,
        "the creation, to the status endpoint: {created:?}"
    );
    store
        .webhooks()
        .record_attempt(created[0].id, answered(200, 100), AfterAttempt::Delivered)
        .await
        .expect("recorded");

    // One call, one change (a status callback): PostgreSQL writes it as one statement.
    let outcomes = store
        .apply_observations(
            a,
            vec![change_write(
                1,
                MessageStatus::Queued,
                MessageStatus::Delivered,
                at(60),
            )],
        )
        .await
        .expect("applied");
    assert_eq!(outcomes, vec![smsdesk_domain::ports::WriteOutcome::Written]);
    // A stale one and one naming another team's message: nothing written, nobody told.
    for (team, expected) in [
        (a, smsdesk_domain::ports::WriteOutcome::Conflict),
        (b, smsdesk_domain::ports::WriteOutcome::Missing),
    ] {
        let outcome = store
            .apply_observations(
                team,
                vec![change_write(
                    1,
                    MessageStatus::Queued,
                    MessageStatus::Sent,
                    at(61),
                )],
            )
            .await
            .expect("decided");
        assert_eq!(outcome, vec![expected]);
    }
    // Nothing new, only recorded (a refresh that found the same status): told to nobody, and
    // missing to another team.
    let repeat = |at_second| ObservationWrite {
        sid: sid(1),
        observation: observation(
            MessageStatus::Delivered,
            ObservationSource::Poll,
            at(at_second),
        ),
        change: None,
    };
    for (team, expected) in [
        (a, smsdesk_domain::ports::WriteOutcome::Recorded),
        (b, smsdesk_domain::ports::WriteOutcome::Missing),
    ] {
        let outcome = store
            .apply_observations(team, vec![repeat(62)])
            .await
            .expect("recorded");
        assert_eq!(outcome, vec![expected]);
    }
    assert!(
        claim(store, at(59)).await.is_empty(),
        "not due before it was observed"
    );
    let told = claim(store, at(100)).await;
    assert_eq!(
        told.len(),
        1,
        "one delivery, to the one subscribed endpoint: {told:?}"
    );
    assert_eq!(told[0].url, statuses.url);
    assert_eq!(told[0].facts.event, WebhookEvent::StatusChanged);
    assert_eq!(told[0].facts.state.status, MessageStatus::Delivered);
    let history = store.history(a, &sid(1)).await.expect("readable");
    assert_eq!(
        history
            .iter()
            .map(|event| (event.observation.state.status.clone(), event.applied))
            .collect::<Vec<_>>(),
        vec![
            (MessageStatus::Queued, true),
            (MessageStatus::Delivered, true),
            (MessageStatus::Delivered, false)
        ],
        "the change's history row and the recorded one; none for the stale or the stranger's \
         writes"
    );
}

pub async fn single_writes_arriving_together_keep_every_rule_of_a_write_alone(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let statuses = endpoint(store, a, "statuses", STATUS_ONLY, true).await;
    let inbound = endpoint(store, a, "inbound", RECEIVED_ONLY, true).await;
    let disabled = endpoint(store, a, "disabled", EventSelection::ALL, false).await;
    let others = endpoint(store, b, "other-team", EventSelection::ALL, true).await;
    for n in 1..=20 {
        outbound(store, a, n, 0).await;
    }
    outbound(store, b, 100, 0).await;
    // The creations' deliveries, answered (a message's deliveries go out in order).
    let created = claim(store, at(50)).await;
    assert_eq!(created.len(), 21);
    for delivery in created {
        store
            .webhooks()
            .record_attempt(delivery.id, answered(200, 51), AfterAttempt::Delivered)
            .await
            .expect("recorded");
    }

    let mut calls: Vec<(TeamId, ObservationWrite)> = Vec::new();
    // Messages 1 to 12: a change each, as a status callback would write it; 12's stored state
    // is more than what was observed (the row keeps the state decided, history the observation).
    for n in 1..=12 {
        let mut write = change_write(n, MessageStatus::Queued, MessageStatus::Delivered, at(60));
        if n == 12
            && let Some(change) = write.change.as_mut()
        {
            change.next.price = Some("-0.0079".into());
            change.next.price_unit = Some("USD".into());
        }
        calls.push((a, write));
    }
    // 13: decided from an older time, so a conflict; 14: from the stored time, so written.
    for (n, read_at) in [(13, 5), (14, 0)] {
        let mut write = change_write(n, MessageStatus::Queued, MessageStatus::Sent, at(61));
        if let Some(change) = write.change.as_mut() {
            change.expected_updated_at = Some(at(read_at));
        }
        calls.push((a, write));
    }
    // 15: a change from an inbound observation, told to the endpoint that wants received ones.
    let mut received = change_write(15, MessageStatus::Queued, MessageStatus::Received, at(62));
    received.observation.source = ObservationSource::Inbound;
    calls.push((a, received));
    // 16: decided from a status it no longer has; 17: only recorded.
    calls.push((
        a,
        change_write(16, MessageStatus::Sent, MessageStatus::Delivered, at(63)),
    ));
    let mut recorded = change_write(17, MessageStatus::Queued, MessageStatus::Queued, at(64));
    recorded.change = None;
    calls.push((a, recorded.clone()));
    // Strangers: B naming A's messages (a change and a record), A naming one nobody has.
    calls.push((
        b,
        change_write(18, MessageStatus::Queued, MessageStatus::Sent, at(65)),
    ));
    let mut strangers_record = recorded.clone();
    strangers_record.sid = sid(19);
    calls.push((b, strangers_record));
    calls.push((
        a,
        change_write(999, MessageStatus::Queued, MessageStatus::Sent, at(66)),
    ));
    // B's own change, and a second writer racing the first for message 1.
    calls.push((
        b,
        change_write(100, MessageStatus::Queued, MessageStatus::Sent, at(67)),
    ));
    calls.push((
        a,
        change_write(1, MessageStatus::Queued, MessageStatus::Sent, at(68)),
    ));

    let outcomes: Vec<WriteOutcome> =
        futures::future::join_all(calls.into_iter().map(|(owner, write)| async move {
            store.apply_observations(owner, vec![write]).await
        }))
        .await
        .into_iter()
        .map(|outcome| outcome.expect("writable").pop().expect("one outcome"))
        .collect();
    let racers = [outcomes[0].clone(), outcomes[21].clone()];
    let mut expected = vec![WriteOutcome::Written; 22];
    expected[0] = racers[0].clone();
    expected[12] = WriteOutcome::Conflict;
    expected[15] = WriteOutcome::Conflict;
    expected[16] = WriteOutcome::Recorded;
    expected[17..=19].fill(WriteOutcome::Missing);
    expected[21] = racers[1].clone();
    assert_eq!(outcomes, expected);
    assert!(
        racers.contains(&WriteOutcome::Written) && racers.contains(&WriteOutcome::Conflict),
        "of two writers racing for one status, one wins: {racers:?}"
    );
    let winner = if racers[0] == WriteOutcome::Written {
        MessageStatus::Delivered
    } else {
        MessageStatus::Sent
    };

    let status_of = |owner: TeamId, n: u32| async move {
        store
            .find(owner, &sid(n))
            .await
            .expect("readable")
            .expect("present")
            .delivery
            .status
    };
    assert_eq!(status_of(a, 1).await, winner);
    for (n, status) in [
        (2, MessageStatus::Delivered),
        (12, MessageStatus::Delivered),
        (13, MessageStatus::Queued),
        (14, MessageStatus::Sent),
        (15, MessageStatus::Received),
        (16, MessageStatus::Queued),
        (17, MessageStatus::Queued),
        (18, MessageStatus::Queued),
        (19, MessageStatus::Queued),
    ] {
        assert_eq!(status_of(a, n).await, status, "message {n}");
    }
    assert_eq!(status_of(b, 100).await, MessageStatus::Sent);
    let decided = store
        .find(a, &sid(12))
        .await
        .expect("readable")
        .expect("present")
        .delivery;
    assert_eq!(
        (decided.price.as_deref(), decided.price_unit.as_deref()),
        (Some("-0.0079"), Some("USD")),
        "the row holds the state the change decided"
    );
    let observed = store.history(a, &sid(12)).await.expect("readable");
    assert_eq!(
        observed
            .last()
            .map(|event| event.observation.state.price.clone()),
        Some(None),
        "the history holds what was observed"
    );
    let history = |n: u32| async move {
        store
            .history(a, &sid(n))
            .await
            .expect("readable")
            .iter()
            .map(|event| (event.observation.state.status.clone(), event.applied))
            .collect::<Vec<_>>()
    };
    let created = (MessageStatus::Queued, true);
    assert_eq!(
        history(2).await,
        vec![created.clone(), (MessageStatus::Delivered, true)]
    );
    assert_eq!(
        history(17).await,
        vec![created.clone(), (MessageStatus::Queued, false)],
        "the recorded observation, not applied"
    );
    for untouched in [13, 16, 18, 19] {
        assert_eq!(
            history(untouched).await,
            vec![created.clone()],
            "message {untouched}: nothing for a conflict or a stranger"
        );
    }

    // One delivery per applied change and enabled endpoint of its team that wants its event.
    let told = claim(store, at(100)).await;
    let to = |url: &EndpointUrl| {
        let mut sids: Vec<String> = told
            .iter()
            .filter(|delivery| delivery.url == *url)
            .map(|delivery| delivery.facts.sid.as_str().to_owned())
            .collect();
        sids.sort();
        sids
    };
    let mut status_changes: Vec<String> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]
        .map(|n| sid(n).as_str().to_owned())
        .to_vec();
    status_changes.sort();
    assert_eq!(to(&statuses.url), status_changes);
    assert_eq!(to(&inbound.url), vec![sid(15).as_str().to_owned()]);
    assert_eq!(to(&others.url), vec![sid(100).as_str().to_owned()]);
    assert_eq!(told.len(), 15, "none to the disabled endpoint: {told:?}");
    for delivery in &told {
        let stored = store
            .find(
                if delivery.url == others.url { b } else { a },
                &delivery.facts.sid,
            )
            .await
            .expect("readable")
            .expect("present");
        assert_eq!(
            delivery.facts.state.status, stored.delivery.status,
            "each delivery tells the status its change wrote"
        );
    }
    // Nothing was kept back for the disabled endpoint either, to go out once it is enabled.
    store
        .webhooks()
        .update_endpoint(
            a,
            disabled.id,
            EndpointPatch {
                enabled: Some(true),
                ..EndpointPatch::default()
            },
            at(101),
        )
        .await
        .expect("enabled");
    assert!(claim(store, at(102)).await.is_empty());
}

pub async fn claims_are_leased_retried_on_time_dead_after_the_last_and_replayable(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let hooks = store.webhooks();
    let a = team(subject, "A").await;
    let hook = endpoint(store, a, "h", EventSelection::ALL, true).await;
    outbound(store, a, 1, 0).await;

    assert!(
        claim(store, at(-1)).await.is_empty(),
        "not due before the change was observed"
    );
    let first = claim(store, at(0)).await;
    assert_eq!(first.len(), 1);
    assert!(
        claim(store, at(30)).await.is_empty(),
        "leased to its claimer"
    );
    let lapsed = claim(store, at(61)).await;
    assert_eq!(
        lapsed.len(),
        1,
        "a claimer that died lets it go when the lease ends"
    );
    assert_eq!((lapsed[0].id, lapsed[0].attempt), (first[0].id, 2));

    hooks
        .record_attempt(
            lapsed[0].id,
            answered(500, 61),
            AfterAttempt::RetryAt(at(600)),
        )
        .await
        .expect("recorded");
    assert!(
        claim(store, at(599)).await.is_empty(),
        "not before its retry time"
    );
    let retried = claim(store, at(600)).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempt, 3);
    hooks
        .record_attempt(retried[0].id, answered(503, 600), AfterAttempt::Dead)
        .await
        .expect("recorded");
    assert!(
        claim(store, at(100_000)).await.is_empty(),
        "dead is never claimed"
    );

    let listed = hooks
        .list_deliveries(a, hook.id, None, 50)
        .await
        .expect("listable");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, DeliveryStatus::Dead);
    assert_eq!(listed[0].next_attempt_at, None);
    assert_eq!(
        listed[0]
            .attempts
            .iter()
            .map(|attempt| attempt.status_code)
            .collect::<Vec<_>>(),
        vec![Some(503), Some(500)],
        "attempts newest first"
    );
    assert_eq!(listed[0].attempts[0].response_body, "answer 503");

    let replayed = hooks
        .replay_delivery(a, hook.id, listed[0].id, at(200_000))
        .await
        .expect("replayable")
        .expect("found");
    assert_eq!(replayed.status, DeliveryStatus::Pending);
    assert_eq!(replayed.attempts.len(), 2, "earlier attempts stay listed");
    let again = claim(store, at(200_000)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 1, "a fresh schedule");
    assert_eq!(
        again[0].facts.webhook_id(),
        first[0].facts.webhook_id(),
        "the same webhook-id"
    );
    let other = team(subject, "B").await;
    assert_eq!(
        hooks
            .replay_delivery(other, hook.id, listed[0].id, at(200_001))
            .await
            .expect("answers"),
        None,
        "another team cannot replay it"
    );
}

pub async fn a_gone_endpoint_is_disabled_and_its_deliveries_wait_for_it(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let hooks = store.webhooks();
    let a = team(subject, "A").await;
    let hook = endpoint(store, a, "gone", EventSelection::ALL, true).await;
    outbound(store, a, 1, 0).await;
    let first = claim(store, at(1)).await;
    hooks
        .record_attempt(first[0].id, answered(410, 1), AfterAttempt::EndpointGone)
        .await
        .expect("recorded");
    let disabled = hooks
        .find_endpoint(a, hook.id)
        .await
        .expect("find")
        .expect("kept");
    assert!(!disabled.enabled);
    assert_eq!(disabled.disabled_reason, Some(DisabledReason::Gone));
    assert!(claim(store, at(2)).await.is_empty());
    outbound(store, a, 2, 3).await;
    let enabled = hooks
        .update_endpoint(
            a,
            hook.id,
            EndpointPatch {
                enabled: Some(true),
                ..EndpointPatch::default()
            },
            at(4),
        )
        .await
        .expect("update")
        .expect("found");
    assert_eq!(enabled.disabled_reason, None);
    let resumed = claim(store, at(5)).await;
    assert_eq!(
        resumed
            .iter()
            .map(|d| d.facts.sid.clone())
            .collect::<Vec<_>>(),
        vec![sid(1)],
        "the waiting delivery is made; the change while disabled was told to nobody"
    );
}

pub async fn a_rotated_secret_signs_beside_the_new_one_until_it_expires(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let hooks = store.webhooks();
    let a = team(subject, "A").await;
    let hook = endpoint(store, a, "r", EventSelection::ALL, true).await;
    hooks
        .rotate_secret(a, hook.id, &secret(2), at(1000), at(0))
        .await
        .expect("rotate");
    outbound(store, a, 1, 0).await;
    outbound(store, a, 2, 0).await;
    let during = store
        .webhooks()
        .claim_due(at(10), 1, LEASE)
        .await
        .expect("claim");
    let secrets: Vec<String> = during[0]
        .secrets
        .iter()
        .map(|s| s.expose().to_owned())
        .collect();
    assert_eq!(
        secrets,
        vec![secret(2).expose().to_owned(), secret(1).expose().to_owned()],
        "new first, then the previous"
    );
    hooks
        .record_attempt(during[0].id, answered(200, 10), AfterAttempt::Delivered)
        .await
        .expect("recorded");
    let after = claim(store, at(1001)).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].secrets.len(), 1, "the previous secret has expired");
}

pub async fn timeouts_are_told_as_status_changes(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    endpoint(store, a, "t", STATUS_ONLY, true).await;
    outbound(store, a, 1, 0).await;
    let created = claim(store, at(1)).await;
    store
        .webhooks()
        .record_attempt(created[0].id, answered(204, 1), AfterAttempt::Delivered)
        .await
        .expect("recorded");
    let stuck = store
        .time_out_stuck(at(100), at(200), 10)
        .await
        .expect("timed out");
    assert_eq!(stuck.len(), 1);
    let told = claim(store, at(200)).await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].facts.source, ObservationSource::Timeout);
}

pub async fn concurrent_claimers_never_share_a_delivery(subject: &dyn ContractSubject) {
    let store = subject.ports();
    let a = team(subject, "A").await;
    endpoint(&store, a, "c", EventSelection::ALL, true).await;
    for n in 1..=30 {
        outbound(&store, a, n, 0).await;
    }
    let claimers: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .webhooks()
                        .claim_due(at(5), 4, LEASE)
                        .await
                        .expect("claim");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|d| d.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.expect("joins"));
    }
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "no delivery claimed twice");
    assert_eq!(all.len(), 30, "every delivery claimed");
}
