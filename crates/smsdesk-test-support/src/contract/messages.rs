//! The `messages` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;
use smsdesk_domain::MessageReference;

pub async fn a_stored_message_reads_back_with_its_first_event_and_a_duplicate_sid_is_refused(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
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

pub async fn another_teams_rows_are_invisible_and_untouchable_through_every_method(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
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
    let user = subject.new_user(a).await;
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

pub async fn observations_are_applied_conditionally_and_recorded_in_order(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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

pub async fn of_two_concurrent_writers_from_the_same_status_exactly_one_wins(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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

pub async fn two_batches_over_the_same_messages_in_opposite_orders_both_finish(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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

pub async fn bulk_candidates_are_the_windows_outbound_unfinished_messages_newest_first_at_most_100(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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

pub async fn listing_filters_and_pages_without_gaps_or_repeats(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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
            statuses: vec![MessageStatus::Delivered],
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

pub async fn references_are_stored_and_every_list_filter_combines(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let order = MessageReference::parse("order-42").expect("valid");
    let statuses = [
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Failed,
        MessageStatus::Undelivered,
    ];
    for n in 1..=8_u32 {
        let mut message = new_message(
            a,
            n,
            Direction::OutboundApi,
            statuses[(n as usize) % statuses.len()].clone(),
            at(i64::from(n)),
        );
        if n % 2 == 0 {
            message.reference = Some(order.clone());
            message.to = Address::parse("+14155550111").expect("valid");
        }
        if n > 6 {
            message.from = Address::parse("+15005550006").expect("valid");
        }
        if n == 5 {
            // The number others are sent to writes in once: `party` finds it both ways.
            message.from = Address::parse("+14155550111").expect("valid");
        }
        stored(store, message).await;
    }
    // Another team's message with the same reference is never listed for team A.
    let mut other = new_message(b, 100, Direction::OutboundApi, MessageStatus::Sent, at(4));
    other.reference = Some(order.clone());
    stored(store, other).await;

    let found = store
        .find(a, &sid(2))
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(
        found.reference,
        Some(order.clone()),
        "the reference is stored"
    );
    let listed = |query: MessageQuery| async move {
        store
            .list(a, MessageQuery { limit: 50, ..query })
            .await
            .expect("readable")
            .messages
            .into_iter()
            .map(|m| m.sid)
            .collect::<Vec<_>>()
    };
    let cases = [
        (
            MessageQuery {
                reference: Some(order.clone()),
                ..MessageQuery::default()
            },
            vec![sid(8), sid(6), sid(4), sid(2)],
            "reference",
        ),
        (
            MessageQuery {
                to: Some(Address::parse("+14155550111").expect("valid")),
                created_until: Some(at(6)),
                ..MessageQuery::default()
            },
            vec![sid(4), sid(2)],
            "to, created before until (exclusive)",
        ),
        (
            MessageQuery {
                from: Some(Address::parse("+15005550006").expect("valid")),
                ..MessageQuery::default()
            },
            vec![sid(8), sid(7)],
            "from",
        ),
        (
            MessageQuery {
                party: Some(Address::parse("+14155550111").expect("valid")),
                ..MessageQuery::default()
            },
            vec![sid(8), sid(6), sid(5), sid(4), sid(2)],
            "party: to or from",
        ),
        (
            MessageQuery {
                party: Some(Address::parse("+14155550111").expect("valid")),
                from: Some(Address::parse("+15005550006").expect("valid")),
                ..MessageQuery::default()
            },
            vec![sid(8)],
            "party and from together",
        ),
        (
            MessageQuery {
                statuses: vec![MessageStatus::Failed, MessageStatus::Undelivered],
                ..MessageQuery::default()
            },
            vec![sid(7), sid(6), sid(3), sid(2)],
            "any of several statuses",
        ),
        (
            MessageQuery {
                statuses: vec![MessageStatus::Failed, MessageStatus::Delivered],
                reference: Some(order.clone()),
                created_since: Some(at(3)),
                ..MessageQuery::default()
            },
            vec![sid(6)],
            "statuses, reference and since together",
        ),
    ];
    for (query, expected, why) in cases {
        assert_eq!(listed(query).await, expected, "{why}");
    }
}

pub async fn reads_arriving_together_answer_as_each_read_alone(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    for n in 1..=6_u32 {
        let owner = if n % 2 == 0 { b } else { a };
        stored(
            store,
            new_message(owner, n, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
    }
    let delivered = |n: u32| ObservationWrite {
        sid: sid(n),
        observation: observation(MessageStatus::Delivered, ObservationSource::Callback, at(1)),
        change: Some(StateChange {
            expected_status: MessageStatus::Sent,
            expected_updated_at: None,
            next: DeliveryState::new(MessageStatus::Delivered),
        }),
    };
    for n in [1, 2] {
        let owner = if n % 2 == 0 { b } else { a };
        let written = store
            .apply_observations(owner, vec![delivered(n)])
            .await
            .expect("writable");
        assert_eq!(written, vec![WriteOutcome::Written]);
    }
    // Every kind of read by SID: its own team's and a stranger's messages, one nobody has, with
    // and without asking about an observation its history holds (or does not).
    // Who reads, which message, and the observation asked about (if any).
    type Read = (TeamId, u32, Option<(ObservationSource, MessageStatus)>);
    let mut reads: Vec<Read> = Vec::new();
    for n in [1, 2, 3, 4, 5, 6, 99] {
        for reader in [a, b] {
            reads.push((reader, n, None));
            reads.push((
                reader,
                n,
                Some((ObservationSource::Callback, MessageStatus::Delivered)),
            ));
            reads.push((
                reader,
                n,
                Some((ObservationSource::Poll, MessageStatus::Delivered)),
            ));
            reads.push((
                reader,
                n,
                Some((ObservationSource::Send, MessageStatus::Sent)),
            ));
            reads.push((
                reader,
                n,
                Some((ObservationSource::Send, MessageStatus::Delivered)),
            ));
        }
    }
    let read = |(reader, n, observed): (
        TeamId,
        u32,
        Option<(ObservationSource, MessageStatus)>,
    )| async move {
        match observed {
            Some((source, status)) => store
                .find_with_observed(reader, &sid(n), source, &status)
                .await
                .expect("readable")
                .map(|found| (found.message, Some(found.already_observed))),
            None => store
                .find(reader, &sid(n))
                .await
                .expect("readable")
                .map(|message| (message, None)),
        }
    };
    let together = futures::future::join_all(reads.iter().cloned().map(read)).await;
    let mut alone = Vec::new();
    for call in reads.iter().cloned() {
        alone.push(read(call).await);
    }
    assert_eq!(
        together, alone,
        "a read among many answers as it does alone"
    );
    let found: Vec<_> = reads
        .iter()
        .zip(&alone)
        .map(|(call, answer)| {
            (
                call.clone(),
                answer
                    .as_ref()
                    .map(|(m, seen)| (m.delivery.status.clone(), *seen)),
            )
        })
        .collect();
    for ((reader, n, observed), answer) in found {
        let owner = if n % 2 == 0 { b } else { a };
        if n == 99 || reader != owner {
            assert_eq!(answer, None, "message {n} is missing to another team");
            continue;
        }
        let status = if n <= 2 {
            MessageStatus::Delivered
        } else {
            MessageStatus::Sent
        };
        let seen = observed.map(|(source, asked)| match source {
            ObservationSource::Callback => n <= 2 && asked == MessageStatus::Delivered,
            ObservationSource::Send => asked == MessageStatus::Sent,
            _ => false,
        });
        assert_eq!(answer, Some((status, seen)), "message {n} read by its team");
    }
}

pub async fn forty_concurrent_status_writes_keep_the_outcomes_of_a_serial_order(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    for n in 1..=21_u32 {
        let owner = if n % 2 == 0 { b } else { a };
        stored(
            store,
            new_message(owner, n, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
    }
    let deliver = |n: u32, second: i64| ObservationWrite {
        sid: sid(n),
        observation: observation(
            MessageStatus::Delivered,
            ObservationSource::Callback,
            at(second),
        ),
        change: Some(StateChange {
            expected_status: MessageStatus::Sent,
            expected_updated_at: None,
            next: DeliveryState::new(MessageStatus::Delivered),
        }),
    };
    // Twenty messages of two teams written once each, and twenty writers racing for message 21,
    // all at once: on a SQLite file they share group transactions (and their lookups).
    let mut calls = Vec::new();
    for n in 1..=20_u32 {
        let owner = if n % 2 == 0 { b } else { a };
        calls.push((owner, deliver(n, 1)));
    }
    for racer in 0..20 {
        calls.push((a, deliver(21, 2 + racer)));
    }
    // And ten writers naming another team's message, in the same groups as its owner's write:
    // a group's shared id lookup must still keep each call to its own team. Half of them only
    // record (no change), whose history insert has no team condition of its own.
    for n in 1..=10_u32 {
        let stranger = if n % 2 == 0 { a } else { b };
        let mut write = deliver(n, 1);
        if n % 2 == 1 {
            write.change = None;
        }
        calls.push((stranger, write));
    }
    let outcomes =
        futures::future::join_all(calls.into_iter().map(|(owner, write)| async move {
            store.apply_observations(owner, vec![write]).await
        }))
        .await;
    let outcomes: Vec<WriteOutcome> = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("writable").pop().expect("one outcome"))
        .collect();
    assert!(
        outcomes[..20].iter().all(|o| *o == WriteOutcome::Written),
        "each message written once: {outcomes:?}"
    );
    let racers = &outcomes[20..40];
    assert!(
        outcomes[40..].iter().all(|o| *o == WriteOutcome::Missing),
        "another team's message is missing to a writer, grouped or not: {:?}",
        &outcomes[40..]
    );
    assert_eq!(
        racers
            .iter()
            .filter(|o| **o == WriteOutcome::Written)
            .count(),
        1,
        "exactly one racer wins: {racers:?}"
    );
    assert!(
        racers
            .iter()
            .all(|o| matches!(o, WriteOutcome::Written | WriteOutcome::Conflict))
    );
    for n in 1..=21_u32 {
        let owner = if n % 2 == 0 { b } else { a };
        let found = store
            .find(owner, &sid(n))
            .await
            .expect("readable")
            .expect("present");
        assert_eq!(
            found.delivery.status,
            MessageStatus::Delivered,
            "message {n}"
        );
        let callbacks: Vec<bool> = store
            .history(owner, &sid(n))
            .await
            .expect("readable")
            .iter()
            .filter(|event| event.observation.source == ObservationSource::Callback)
            .map(|event| event.applied)
            .collect();
        if n <= 20 {
            assert_eq!(
                callbacks,
                [true],
                "message {n}: its owner's callback, and nothing a stranger recorded"
            );
        } else {
            assert_eq!(
                callbacks.iter().filter(|applied| **applied).count(),
                1,
                "one applied callback for message {n}"
            );
        }
    }
}

pub async fn find_with_observed_reads_the_message_and_whether_its_history_holds_a_source_and_status(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Sent, at(0)),
    )
    .await;
    // A late `sent` callback after the send's own `sent`: recorded, not applied.
    store
        .apply_observations(
            a,
            vec![ObservationWrite {
                sid: sid(1),
                observation: observation(MessageStatus::Sent, ObservationSource::Callback, at(5)),
                change: None,
            }],
        )
        .await
        .expect("recorded");
    let message = store.find(a, &sid(1)).await.expect("readable");
    let found = |team, source, status: MessageStatus| async move {
        store
            .find_with_observed(team, &sid(1), source, &status)
            .await
            .expect("readable")
    };
    let seen = |team, source, status| async move {
        found(team, source, status)
            .await
            .expect("the message is found")
            .already_observed
    };
    assert_eq!(
        found(a, ObservationSource::Callback, MessageStatus::Delivered)
            .await
            .map(|found| found.message),
        message,
        "the message as stored, whatever its history"
    );
    assert!(
        seen(a, ObservationSource::Callback, MessageStatus::Sent).await,
        "recorded, even unapplied"
    );
    assert!(seen(a, ObservationSource::Send, MessageStatus::Sent).await);
    assert!(
        !seen(a, ObservationSource::Callback, MessageStatus::Delivered).await,
        "another status"
    );
    assert!(
        !seen(a, ObservationSource::Poll, MessageStatus::Sent).await,
        "another source"
    );
    assert_eq!(
        found(b, ObservationSource::Callback, MessageStatus::Sent).await,
        None,
        "another team's message is not found"
    );
    assert_eq!(
        store
            .find_with_observed(a, &sid(2), ObservationSource::Send, &MessageStatus::Sent)
            .await
            .expect("readable"),
        None,
        "no such message"
    );
}

pub async fn status_counts_cover_the_teams_messages_created_in_the_window_by_current_status(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let statuses = [
        MessageStatus::Delivered,
        MessageStatus::Delivered,
        MessageStatus::Failed,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Unknown("carrier_hold".into()),
    ];
    for (n, status) in (1_u32..).zip(statuses) {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, status, at(i64::from(n))),
        )
        .await;
    }
    stored(
        store,
        new_message(a, 7, Direction::Inbound, MessageStatus::Received, at(7)),
    )
    .await;
    // Another team's messages in the same window are never counted for A.
    for n in 20..23 {
        stored(
            store,
            new_message(b, n, Direction::OutboundApi, MessageStatus::Failed, at(5)),
        )
        .await;
    }
    // The current status counts, not the first: message 4 moves on from `sent`.
    let written = store
        .apply_observations(
            a,
            vec![ObservationWrite {
                sid: sid(4),
                observation: observation(
                    MessageStatus::Undelivered,
                    ObservationSource::Callback,
                    at(9),
                ),
                change: Some(StateChange {
                    expected_status: MessageStatus::Sent,
                    expected_updated_at: None,
                    next: DeliveryState::new(MessageStatus::Undelivered),
                }),
            }],
        )
        .await
        .expect("writable");
    assert_eq!(written.len(), 1);

    let counted = |since: i64| async move {
        let mut counts: Vec<(String, u64)> = store
            .status_counts(a, at(since))
            .await
            .expect("readable")
            .into_iter()
            .map(|c| (c.status.as_str().to_owned(), c.count))
            .collect();
        counts.sort();
        counts
    };
    let pairs = |list: &[(&str, u64)]| {
        list.iter()
            .map(|(status, count)| ((*status).to_owned(), *count))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counted(0).await,
        pairs(&[
            ("carrier_hold", 1),
            ("delivered", 3),
            ("failed", 1),
            ("received", 1),
            ("undelivered", 1),
        ]),
        "every message of A, by its status now"
    );
    assert_eq!(
        counted(3).await,
        pairs(&[
            ("carrier_hold", 1),
            ("delivered", 1),
            ("failed", 1),
            ("received", 1),
            ("undelivered", 1),
        ]),
        "created at or after the start only"
    );
    assert_eq!(counted(8).await, pairs(&[]), "nothing created since");
}

pub async fn of_two_writers_enriching_the_same_status_from_one_read_exactly_one_wins(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    stored(
        store,
        new_message(
            a,
            1,
            Direction::OutboundApi,
            MessageStatus::Undelivered,
            at(0),
        ),
    )
    .await;
    let read = store
        .find(a, &sid(1))
        .await
        .expect("readable")
        .expect("present");
    let enrich = |state: DeliveryState, when: i64| ObservationWrite {
        sid: sid(1),
        observation: StatusObservation {
            state: state.clone(),
            source: ObservationSource::Callback,
            observed_at: at(when),
        },
        change: Some(StateChange {
            expected_status: MessageStatus::Undelivered,
            expected_updated_at: Some(read.updated_at),
            next: state,
        }),
    };
    let with_code = DeliveryState {
        error_code: Some(30_003),
        ..DeliveryState::new(MessageStatus::Undelivered)
    };
    let with_price = DeliveryState {
        price: Some("-0.00750".into()),
        ..DeliveryState::new(MessageStatus::Undelivered)
    };
    let first = store
        .apply_observations(a, vec![enrich(with_code.clone(), 10)])
        .await
        .expect("no store error");
    let second = store
        .apply_observations(a, vec![enrich(with_price, 11)])
        .await
        .expect("no store error");
    assert_eq!(
        (first, second),
        (vec![WriteOutcome::Written], vec![WriteOutcome::Conflict]),
        "the second writer decided from a read the first one changed"
    );
    let stored_now = store
        .find(a, &sid(1))
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(
        stored_now.delivery, with_code,
        "the first writer's details were not overwritten"
    );
}
