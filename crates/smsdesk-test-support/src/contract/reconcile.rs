//! The reconciler's ports' contract cases, `UnfinishedMessages` and `StuckMessages` (see the
//! parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

pub async fn unfinished_teams_are_counted_in_the_range_oldest_first(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let c = team(subject, "C").await;
    let message = |team, n, status, at| new_message(team, n, Direction::OutboundApi, status, at);
    stored(store, message(a, 1, MessageStatus::Sent, at(100))).await;
    stored(store, message(a, 2, MessageStatus::Queued, at(200))).await;
    stored(store, message(a, 3, MessageStatus::Delivered, at(50))).await;
    stored(store, message(b, 4, MessageStatus::Sending, at(60))).await;
    stored(store, message(b, 5, MessageStatus::Sent, at(900))).await;
    stored(
        store,
        new_message(c, 6, Direction::Inbound, MessageStatus::Receiving, at(10)),
    )
    .await;
    stored(store, message(c, 7, MessageStatus::Sent, at(5))).await;

    let found = store
        .unfinished_teams(at(50), at(500), 10)
        .await
        .expect("readable");
    assert_eq!(
        found,
        vec![
            UnfinishedTeam {
                team_id: b,
                oldest_created_at: at(60),
                messages: 1,
            },
            UnfinishedTeam {
                team_id: a,
                oldest_created_at: at(100),
                messages: 2,
            },
        ],
        "outbound, unfinished, in [since, before): terminal, inbound, too old and too young are left out"
    );
    assert_eq!(
        store
            .unfinished_teams(at(50), at(500), 1)
            .await
            .map(|t| t.len()),
        Ok(1),
        "at most the limit"
    );
}

pub async fn find_many_reads_the_teams_messages_among_the_sids_only(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    for n in 1..=3 {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
    }
    stored(
        store,
        new_message(b, 4, Direction::OutboundApi, MessageStatus::Sent, at(0)),
    )
    .await;
    let mut found: Vec<MessageSid> = store
        .find_many(a, &[sid(1), sid(3), sid(4), sid(99)])
        .await
        .expect("readable")
        .into_iter()
        .map(|m| m.sid)
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![sid(1), sid(3)],
        "another team's and unknown SIDs are left out"
    );
    assert_eq!(store.find_many(a, &[]).await, Ok(Vec::new()));
}

pub async fn stuck_messages_are_declared_once_with_a_history_row_and_a_late_change_clears_them(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let message = |n, status, at| new_message(a, n, Direction::OutboundApi, status, at);
    stored(store, message(1, MessageStatus::Sent, at(0))).await;
    stored(store, message(2, MessageStatus::Delivered, at(0))).await;
    stored(store, message(3, MessageStatus::Queued, at(500))).await;
    stored(
        store,
        new_message(a, 4, Direction::Inbound, MessageStatus::Receiving, at(0)),
    )
    .await;

    let declared = store
        .time_out_stuck(at(100), at(1000), 10)
        .await
        .expect("written");
    assert_eq!(
        declared.iter().map(|m| m.sid.clone()).collect::<Vec<_>>(),
        vec![sid(1)],
        "outbound, not final, created before the cutoff"
    );
    assert_eq!(declared[0].delivery_unknown_at, Some(at(1000)));
    let found = store.find(a, &sid(1)).await.expect("up").expect("present");
    assert_eq!(found.delivery_unknown_at, Some(at(1000)));
    assert_eq!(
        found.delivery.status,
        MessageStatus::Sent,
        "the status stays"
    );
    let history = store.history(a, &sid(1)).await.expect("up");
    assert_eq!(
        history
            .last()
            .map(|e| (e.observation.source, e.applied, e.observation.observed_at)),
        Some((ObservationSource::Timeout, true, at(1000))),
        "the declaration is in the history"
    );
    assert_eq!(
        store
            .time_out_stuck(at(100), at(1001), 10)
            .await
            .map(|m| m.len()),
        Ok(0),
        "declared once"
    );
    assert!(
        store
            .refresh_candidates(a, at(-10), 100)
            .await
            .expect("up")
            .iter()
            .all(|m| m.sid != sid(1)),
        "no longer a refresh candidate"
    );

    let mut late = change_write(1, MessageStatus::Sent, MessageStatus::Delivered, at(2000));
    late.observation.source = ObservationSource::Callback;
    assert_eq!(
        store.apply_observations(a, vec![late]).await,
        Ok(vec![WriteOutcome::Written])
    );
    let found = store.find(a, &sid(1)).await.expect("up").expect("present");
    assert_eq!(
        (found.delivery.status, found.delivery_unknown_at),
        (MessageStatus::Delivered, None),
        "a late receipt applies and clears it"
    );
}

pub async fn concurrent_timeout_runs_declare_each_message_once(subject: &dyn ContractSubject) {
    let store = subject.ports();
    let a = team(subject, "A").await;
    for n in 0..40 {
        stored(
            &store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Sent, at(0)),
        )
        .await;
    }
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut declared = Vec::new();
                loop {
                    let batch = store
                        .time_out_stuck(at(100), at(1000), 7)
                        .await
                        .expect("written");
                    if batch.is_empty() {
                        return declared;
                    }
                    declared.extend(batch.into_iter().map(|m| m.sid));
                }
            })
        })
        .collect();
    let mut all: Vec<MessageSid> = Vec::new();
    for run in futures::future::join_all(runs).await {
        all.extend(run.expect("the run finished"));
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(
        (before, all.len()),
        (40, 40),
        "each of the 40 declared exactly once"
    );
}
