//! The `ChangeLog` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

/// Everything after `from`, read in pages of `page` (as the live follower reads).
async fn read_all(
    log: &dyn ChangeLog,
    from: LogPosition,
    team: Option<TeamId>,
    page: usize,
) -> Vec<LoggedChange> {
    let mut all: Vec<LoggedChange> = Vec::new();
    loop {
        let after = all.last().map_or(from, |change| change.position);
        let next = log
            .read_after(after, team, page)
            .await
            .expect("the log reads");
        let done = next.len() < page;
        all.extend(next);
        if done {
            return all;
        }
    }
}

/// Everything after `from`, once at least `count` changes are readable. On PostgreSQL a committed
/// change becomes readable only once every older transaction of the cluster has ended (other
/// tests' included), so a read right after a commit may come back short; a later one never
/// returns less.
async fn read_at_least(
    log: &dyn ChangeLog,
    from: LogPosition,
    team: Option<TeamId>,
    count: usize,
) -> Vec<LoggedChange> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = read_all(log, from, team, 100).await;
        if all.len() >= count || std::time::Instant::now() > deadline {
            return all;
        }
        // A polling interval while another transaction of the cluster ends.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn applied_changes_are_read_in_order_with_their_team_state_and_source(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let start = store.head().await.expect("head");
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Queued, at(0)),
    )
    .await;
    stored(
        store,
        new_message(b, 2, Direction::Inbound, MessageStatus::Received, at(1)),
    )
    .await;
    let mut failed = change_write(1, MessageStatus::Queued, MessageStatus::Undelivered, at(2));
    failed.observation.state.error_code = Some(30003);
    if let Some(change) = failed.change.as_mut() {
        change.next.error_code = Some(30003);
    }
    let stale = ObservationWrite {
        sid: sid(1),
        observation: callback(MessageStatus::Sent, at(3)),
        change: None,
    };
    store
        .apply_observations(a, vec![failed, stale])
        .await
        .expect("written");

    let all = read_at_least(store, start, None, 3).await;
    let seen: Vec<(TeamId, MessageSid, MessageStatus, ObservationSource)> = all
        .iter()
        .map(|c| (c.team_id, c.sid.clone(), c.state.status.clone(), c.source))
        .collect();
    assert_eq!(
        seen,
        vec![
            (a, sid(1), MessageStatus::Queued, ObservationSource::Send),
            (b, sid(2), MessageStatus::Received, ObservationSource::Send),
            (
                a,
                sid(1),
                MessageStatus::Undelivered,
                ObservationSource::Poll
            ),
        ],
        "applied rows only (the stale callback is history, not a change), in commit order"
    );
    assert_eq!(all[2].state.error_code, Some(30003), "the state as written");
    assert_eq!(all[2].observed_at, at(2));
    assert!(all[0].created_the_message() && !all[2].created_the_message());
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position),
        "positions increase"
    );

    let of_a = read_all(store, start, Some(a), 100).await;
    assert_eq!(
        of_a.iter().map(|c| c.position).collect::<Vec<_>>(),
        vec![all[0].position, all[2].position],
        "a team's read is that team's changes only"
    );
    let paged = read_all(store, start, None, 1).await;
    assert_eq!(paged, all, "reading in pages of one misses nothing");
    let head = store.head().await.expect("head");
    assert!(
        head >= all[2].position,
        "the head is at or after the last readable change"
    );
    assert_eq!(
        store.read_after(head, None, 10).await.expect("reads"),
        Vec::new(),
        "nothing after the head"
    );
}

pub async fn an_event_id_resolves_to_its_position_for_its_own_team_only(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let start = store.head().await.expect("head");
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Queued, at(0)),
    )
    .await;
    stored(
        store,
        new_message(b, 2, Direction::OutboundApi, MessageStatus::Queued, at(1)),
    )
    .await;
    let all = read_at_least(store, start, None, 2).await;
    let (ours, theirs) = (&all[0], &all[1]);
    assert_eq!(
        store.position_of(a, ours.position.id).await,
        Ok(Some(ours.position))
    );
    assert_eq!(
        store.position_of(a, theirs.position.id).await,
        Ok(None),
        "another team's id is unknown, like one that never existed"
    );
    assert_eq!(
        store.position_of(a, theirs.position.id + 1000).await,
        Ok(None)
    );
    let resumed = store
        .read_after(ours.position, Some(b), 10)
        .await
        .expect("reads");
    assert_eq!(resumed, vec![theirs.clone()], "resuming after a position");
}

pub async fn a_reader_following_concurrent_writers_misses_no_change(subject: &dyn ContractSubject) {
    const WRITERS: u32 = 16;
    const STEPS: u32 = 10;
    let store = subject.ports();
    let a = team(subject, "A").await;
    let start = store.head().await.expect("head");
    for n in 0..WRITERS {
        stored(
            &store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Queued, at(0)),
        )
        .await;
    }
    let after_inserts = read_at_least(&store, start, None, WRITERS as usize).await;
    let from = after_inserts.last().map_or(start, |change| change.position);

    let expected = (WRITERS * STEPS) as usize;
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            // Follows the log as the live follower does, while the writers commit, until every
            // change has been read. A change can show up late (on PostgreSQL, while any older
            // transaction of the cluster is still open), never before one already read.
            let mut seen: Vec<LoggedChange> = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while seen.len() < expected && std::time::Instant::now() < deadline {
                let after = seen.last().map_or(from, |change| change.position);
                seen.extend(read_all(&store, after, None, 7).await);
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let order = [
                    MessageStatus::Queued,
                    MessageStatus::Sending,
                    MessageStatus::Sent,
                    MessageStatus::Delivered,
                ];
                for step in 0..STEPS {
                    let k = (step % 3) as usize;
                    let mut write = change_write(
                        n,
                        order[k].clone(),
                        order[k + 1].clone(),
                        at(i64::from(step) + 1),
                    );
                    // Back to queued between rounds; the store does not judge the order.
                    if k == 2 {
                        write.change = Some(StateChange {
                            expected_status: order[2].clone(),
                            expected_updated_at: None,
                            next: DeliveryState::new(order[0].clone()),
                        });
                    }
                    store
                        .apply_observations(a, vec![write])
                        .await
                        .expect("written");
                }
            })
        })
        .collect();
    for writer in futures::future::join_all(writers).await {
        writer.expect("the writer finished");
    }
    let followed = reader.await.expect("the reader finished");
    let everything = read_at_least(&store, from, None, expected).await;
    assert_eq!(everything.len(), expected, "every write is a change");
    assert_eq!(
        followed.iter().map(|c| c.position).collect::<Vec<_>>(),
        everything.iter().map(|c| c.position).collect::<Vec<_>>(),
        "following the log while writers commit sees every change once, in the log's order"
    );
}
