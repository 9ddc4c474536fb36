//! The `inbox` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

pub async fn a_parked_callback_is_taken_back_with_every_field_oldest_first(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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

pub async fn parking_the_same_sid_and_status_twice_keeps_one(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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

pub async fn another_team_cannot_take_a_teams_parked_callbacks(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
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

pub async fn taking_removes_what_was_parked(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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

pub async fn parked_callbacks_older_than_the_cutoff_are_discarded_and_counted(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
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

pub async fn two_concurrent_takers_receive_each_parked_callback_exactly_once(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
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
