//! Group commit on a SQLite file: concurrent `apply_observations` calls share one write
//! transaction.
//!
//! SQLite has one writer ([`crate::Store`]'s writer connection), and every transaction costs a
//! `BEGIN` and a `COMMIT`, each a round trip to the connection's thread. When status changes
//! arrive together (a burst of Twilio callbacks), the first caller becomes the leader: it takes
//! what is queued (at most [`MAX_GROUP`] calls) and applies them in one transaction, with one
//! id lookup, one webhook-endpoint lookup and one history insert for the whole group, then hands
//! each caller its own outcomes. Callers that arrive meanwhile queue for the next group.
//!
//! The outcome is the one serial execution would give: inside the transaction the writes to one
//! message run in the order their calls queued and each sees the writes before it, so the
//! forward-only rule holds exactly as between separate transactions. If any call fails, the
//! whole group is rolled back and each call runs again in a transaction of its own, so one
//! caller's failure is never another's. The group runs in a task of its own, so a leader whose request is cancelled
//! (a client that hung up) does not take the others' writes with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use smsdesk_domain::TeamId;
use smsdesk_domain::ports::{ObservationWrite, RepositoryError, WriteOutcome};
use tokio::sync::oneshot;

use crate::error::repo_err;
use crate::messages::{TeamWrites, apply_in};
use crate::store::Store;

/// The most calls one group transaction takes, so a group never holds the writer for long.
pub(crate) const MAX_GROUP: usize = 64;

type Answer = Result<Vec<WriteOutcome>, RepositoryError>;

/// One caller's writes and where its outcomes go.
struct Call {
    id: u64,
    team: TeamId,
    writes: Vec<ObservationWrite>,
    reply: oneshot::Sender<Answer>,
}

/// The queue of calls and the leadership of the next group.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queued: Mutex<Vec<Call>>,
    leader: Arc<tokio::sync::Mutex<()>>,
    next_id: AtomicU64,
}

/// Takes a caller's call back out of the queue if the caller goes away (its request was
/// cancelled) before a group took it: a write nobody waits for is not applied at some later
/// moment.
struct Withdraw<'a> {
    group: &'a GroupCommit,
    id: u64,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.group.queue().retain(|call| call.id != self.id);
    }
}

impl GroupCommit {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Call>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `writes` of `team` in the next group and returns their outcomes.
    pub(crate) async fn apply(
        &self,
        store: &Store,
        team: TeamId,
        writes: Vec<ObservationWrite>,
    ) -> Answer {
        let (reply, mut answer) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.queue().push(Call {
            id,
            team,
            writes,
            reply,
        });
        // Dropped on every return too, when the call has already left the queue: a no-op then.
        let _withdraw = Withdraw { group: self, id };
        loop {
            let leadership = tokio::select! {
                answered = &mut answer => return lost_if_dropped(answered),
                leadership = self.leader.clone().lock_owned() => leadership,
            };
            // A group that ended just now may have answered this call.
            if let Ok(answered) = answer.try_recv() {
                return answered;
            }
            let group: Vec<Call> = {
                let mut queued = self.queue();
                let take = queued.len().min(MAX_GROUP);
                queued.drain(..take).collect()
            };
            if group.is_empty() {
                continue;
            }
            let store = store.clone();
            tokio::spawn(async move {
                run(&store, group).await;
                drop(leadership);
            });
        }
    }
}

fn lost_if_dropped(answered: Result<Answer, oneshot::error::RecvError>) -> Answer {
    answered.unwrap_or_else(|_| {
        Err(RepositoryError::Unavailable(
            "the group transaction ended without an answer".into(),
        ))
    })
}

/// Runs `group` in one transaction, or each call alone when the group fails.
async fn run(store: &Store, group: Vec<Call>) {
    if group.len() > 1
        && let Ok(outcomes) = together(store, &group).await
    {
        for (call, outcomes) in group.into_iter().zip(outcomes) {
            let _ = call.reply.send(Ok(outcomes));
        }
        return;
    }
    for call in group {
        let answer = store.apply_alone(call.team, &call.writes).await;
        let _ = call.reply.send(answer);
    }
}

async fn together(
    store: &Store,
    group: &[Call],
) -> Result<Vec<Vec<WriteOutcome>>, RepositoryError> {
    let tx = store.begin_write().await.map_err(repo_err)?;
    let calls: Vec<TeamWrites<'_>> = group
        .iter()
        .map(|call| TeamWrites {
            team: call.team,
            writes: &call.writes,
        })
        .collect();
    let outcomes = apply_in(&tx, &calls).await.map_err(repo_err)?;
    tx.commit().await.map_err(repo_err)?;
    Ok(outcomes)
}
