//! The `retention` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

pub async fn old_messages_are_redacted_in_batches_once_and_keep_their_history(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    for (n, created) in [(1, 0), (2, 10), (3, 100)] {
        stored(
            store,
            new_message(
                a,
                n,
                Direction::OutboundApi,
                MessageStatus::Sent,
                at(created),
            ),
        )
        .await;
    }
    let policy = RetentionPolicy::after_days(1, true);
    let cutoff = at(50);
    let batches = [
        store.redact_batch(cutoff, &policy, 1, at(1000)).await,
        store.redact_batch(cutoff, &policy, 1, at(1000)).await,
        store.redact_batch(cutoff, &policy, 1, at(1000)).await,
    ];
    assert_eq!(
        batches,
        [Ok(1), Ok(1), Ok(0)],
        "one per batch, then none left"
    );

    for n in [1, 2] {
        let message = store
            .find(a, &sid(n))
            .await
            .expect("readable")
            .expect("kept");
        assert_eq!(message.body, "", "message {n}'s body is gone");
        assert_eq!(message.from.as_str(), "+*********00", "message {n}");
        assert_eq!(message.to.as_str(), "+*********99", "message {n}");
        assert_eq!(message.redacted_at, Some(at(1000)), "message {n}");
        assert_eq!(message.delivery.status, MessageStatus::Sent, "status kept");
        assert_eq!(
            store.history(a, &sid(n)).await.expect("readable").len(),
            1,
            "history kept"
        );
    }
    let recent = store
        .find(a, &sid(3))
        .await
        .expect("readable")
        .expect("kept");
    assert_eq!(
        recent.body, "message 3",
        "a message younger than the cutoff stays"
    );
    assert_eq!(recent.redacted_at, None);
}

pub async fn without_masking_the_numbers_stay_and_concurrent_runs_redact_each_message_once(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    for n in 1..=10 {
        stored(
            store,
            new_message(a, n, Direction::Inbound, MessageStatus::Received, at(0)),
        )
        .await;
    }
    let policy = RetentionPolicy::after_days(1, false);
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redact_batch(at(5), &policy, 10, at(9)).await })
        })
        .collect();
    let mut total = 0;
    for run in futures::future::join_all(runs).await {
        total += run.expect("joins").expect("no store error");
    }
    assert_eq!(total, 10, "each message redacted by exactly one run");
    let message = store
        .find(a, &sid(4))
        .await
        .expect("readable")
        .expect("kept");
    assert_eq!(message.body, "");
    assert_eq!(message.from.as_str(), "+14155550100", "numbers kept");
}
