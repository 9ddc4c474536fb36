//! The `UnfinishedMessages` port's contract cases (see the parent module).

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
