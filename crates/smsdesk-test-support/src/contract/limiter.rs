//! The `limiter` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

pub async fn a_cooldown_is_claimed_by_exactly_one_of_twenty_concurrent_claimers(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let user = subject.new_user(a).await;
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

pub async fn message_claims_answer_in_order_with_the_time_left(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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

pub async fn claims_and_status_writes_arriving_together_keep_the_outcomes_of_a_serial_order(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    for n in 1..=11 {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
    }
    stored(
        store,
        new_message(b, 12, Direction::OutboundApi, MessageStatus::Sent, at(0)),
    )
    .await;
    let deliver = |n: u32| ObservationWrite {
        sid: sid(n),
        observation: observation(MessageStatus::Delivered, ObservationSource::Poll, at(100)),
        change: Some(StateChange {
            expected_status: MessageStatus::Sent,
            expected_updated_at: None,
            next: DeliveryState::new(MessageStatus::Delivered),
        }),
    };
    // The lone claims each at a time of their own, as requests' clocks read: a group stamps
    // each granted message with its own claim's time.
    let claimed_at = |n: u32| {
        at(if (2..=11).contains(&n) {
            100 + i64::from(n)
        } else {
            100
        })
    };
    // All at once, as a burst of refreshes sends them (on a SQLite file they share group
    // transactions): ten claims racing for message 1, one claim and one status write for each
    // of messages 2 to 11, and five claims of team B's message made as team A.
    let claimed: Vec<u32> = std::iter::repeat_n(1, 10)
        .chain(2..=11)
        .chain(std::iter::repeat_n(12, 5))
        .collect();
    let claims: Vec<_> = claimed
        .iter()
        .map(|n| async move {
            store
                .claim_messages(a, &[sid(*n)], claimed_at(*n), MINUTE)
                .await
        })
        .collect();
    let writes = (2..=11).map(|n| store.apply_observations(a, vec![deliver(n)]));
    let (claims, writes) = futures::join!(
        futures::future::join_all(claims),
        futures::future::join_all(writes)
    );
    let claims: Vec<CooldownClaim> = claims
        .into_iter()
        .map(|claim| claim.expect("no store error")[0])
        .collect();
    assert_eq!(
        claims[..10].iter().filter(|c| c.is_granted()).count(),
        1,
        "exactly one of ten racing claims: {:?}",
        &claims[..10]
    );
    assert!(
        claims[..10].iter().all(|c| c.is_granted()
            || *c
                == CooldownClaim::Denied {
                    retry_after_secs: 60
                }),
        "the others denied at the moment of the claim: {claims:?}"
    );
    assert!(
        claims[10..].iter().all(|c| c.is_granted()),
        "each lone claim, and each claim of a message the team does not own: {claims:?}"
    );
    for outcome in writes {
        assert_eq!(
            outcome.expect("writable"),
            vec![WriteOutcome::Written],
            "every status write applied"
        );
    }
    for n in 1..=11 {
        let message = store
            .find(a, &sid(n))
            .await
            .expect("readable")
            .expect("present");
        assert_eq!(
            message.last_refreshed_at,
            Some(claimed_at(n)),
            "message {n}"
        );
        if n > 1 {
            assert_eq!(message.delivery.status, MessageStatus::Delivered);
        }
    }
    assert_eq!(
        store
            .find(b, &sid(12))
            .await
            .expect("readable")
            .expect("present")
            .last_refreshed_at,
        None,
        "another team's claim never touches team B's message"
    );
}

/// The subject claims and reads in one step ([`RefreshLimiter::claim_and_read`] answers `Some`),
/// and answers what a read beside a claim would: the message as stored before the claim's
/// stamp, the claim decided as [`RefreshLimiter::claim_messages`] decides it, and nothing
/// claimed for a SID the team has no message under.
pub async fn a_claim_with_its_read_answers_as_a_read_beside_a_claim(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Sent, at(0)),
    )
    .await;
    stored(
        store,
        new_message(b, 2, Direction::OutboundApi, MessageStatus::Sent, at(0)),
    )
    .await;
    let before = store
        .find(a, &sid(1))
        .await
        .expect("readable")
        .expect("stored");

    let first = store
        .claim_and_read(a, &sid(1), at(100), MINUTE)
        .await
        .expect("no store error");
    assert_eq!(
        first,
        Some(ClaimedRead::Found {
            message: before.clone(),
            claim: CooldownClaim::Granted,
        }),
        "the message as stored before the claim, and the claim granted"
    );
    let second = store
        .claim_and_read(a, &sid(1), at(145), MINUTE)
        .await
        .expect("no store error");
    assert_eq!(
        second,
        Some(ClaimedRead::Found {
            message: Message {
                last_refreshed_at: Some(at(100)),
                ..before.clone()
            },
            claim: CooldownClaim::Denied {
                retry_after_secs: 15
            },
        }),
        "45 s into the cool-down the first claim's stamp refuses the second"
    );
    assert_eq!(
        store
            .claim_and_read(a, &sid(1), at(160), Duration::ZERO)
            .await,
        Ok(Some(ClaimedRead::Found {
            message: Message {
                last_refreshed_at: Some(at(100)),
                ..before
            },
            claim: CooldownClaim::Granted,
        })),
        "without a cool-down every claim is granted"
    );

    for (claimer, unknown) in [(a, sid(2)), (a, sid(9)), (b, sid(1))] {
        assert_eq!(
            store
                .claim_and_read(claimer, &unknown, at(200), MINUTE)
                .await,
            Ok(Some(ClaimedRead::NotFound)),
            "another team's message, or none, is not found"
        );
    }
    assert_eq!(
        store
            .find(b, &sid(2))
            .await
            .expect("readable")
            .and_then(|m| m.last_refreshed_at),
        None,
        "a claim made as another team stamps nothing"
    );
    assert_eq!(
        store
            .find(a, &sid(1))
            .await
            .expect("readable")
            .and_then(|m| m.last_refreshed_at),
        Some(at(160)),
        "team B's claim of A's message stamped nothing either"
    );

    // Twenty at once, and five of the same message made as team B among them (on a SQLite
    // file they share group transactions): exactly one granted, each of A's read the message,
    // none of B's found it.
    let racing: Vec<_> = (0..25)
        .map(|n| {
            let store = store.clone();
            let claimer = if n % 5 == 4 { b } else { a };
            tokio::spawn(async move {
                let answer = store
                    .claim_and_read(claimer, &sid(1), at(300), MINUTE)
                    .await;
                (claimer, answer)
            })
        })
        .collect();
    let mut granted = 0;
    for joined in futures::future::join_all(racing).await {
        let (claimer, answer) = joined.expect("joins");
        let answer = answer.expect("no store error");
        if claimer == b {
            assert_eq!(answer, Some(ClaimedRead::NotFound), "not team B's message");
            continue;
        }
        match answer {
            Some(ClaimedRead::Found { message, claim }) => {
                assert_eq!(message.sid, sid(1));
                match claim {
                    CooldownClaim::Granted => granted += 1,
                    CooldownClaim::Denied { retry_after_secs } => {
                        assert_eq!(retry_after_secs, 60, "denied at the moment of the claim");
                    }
                }
            }
            other => panic!("a racing claim answered {other:?}"),
        }
    }
    assert_eq!(granted, 1, "exactly one of twenty racing claims");
}
