//! Group commit on a SQLite file: concurrent `apply_observations` calls, and the per-message
//! cool-down claims of refreshes (`claim_messages`, `claim_and_read`), share one write
//! transaction.
//!
//! SQLite has one writer ([`crate::Store`]'s writer connection), and every statement, `BEGIN`
//! and `COMMIT` included, is a round trip to the connection's thread. When status changes
//! arrive together (a burst of Twilio callbacks), the first caller becomes the leader: it takes
//! what is queued (at most 64 calls) and applies them in one transaction, with one read of the
//! messages (the claims' last claims and messages, the writes' ids), one webhook-endpoint
//! lookup, one `UPDATE` per round of changes and one history insert for the whole group, then
//! hands each caller its own outcomes. Callers that arrive meanwhile queue for the next group.
//! A refresh claims its message before asking Twilio; alone, each claim would be a commit of its
//! own on the one writer, which cost a single refresh more than its status write did.
//!
//! The outcome is the one serial execution would give: inside the transaction the writes to one
//! message run in the order their calls queued and each sees the writes before it, so the
//! forward-only rule holds exactly as between separate transactions. The group's claims run
//! first, decided together in queue order (`limiter::claim_group_in`: one read shared with the
//! group's writes, the domain's cool-down rule claim by claim, one UPDATE), so of two claims on
//! one message in a group only the first is granted under a cool-down, as between separate
//! transactions; claims and status writes of one group were all in flight together, so either
//! order is one a serial execution could have taken. If any call fails, the whole group is
//! rolled back and each call runs again in a transaction of its own, so one
//! caller's failure is never another's. The queue and the leadership are the ones PostgreSQL's
//! batches use ([`crate::batches::Batcher`]); the group runs in a task of its own, on a thread
//! kept for groups ([`spawn_group`]), so a leader whose request is cancelled (a client that hung
//! up) does not take the others' writes with it.

use std::collections::VecDeque;

use sea_orm::DbErr;
use smsdesk_domain::TeamId;
use smsdesk_domain::ports::{ObservationWrite, RepositoryError, WriteOutcome};

use crate::batches::{BatchResult, Batcher, BoxFuture};
use crate::limiter::{Claimed, MessageClaim, claim_alone, claim_group_in};
use crate::messages::{TeamWrites, apply_known_in, message_keys, push_written};
use crate::store::Store;

/// What a caller queues.
pub(crate) enum Work {
    /// `apply_observations` of one team.
    Apply {
        team: TeamId,
        writes: Vec<ObservationWrite>,
    },
    /// A refresh's per-message cool-down claim.
    Claim(MessageClaim),
}

/// What a call's work gave: a write's outcomes, or a claim's answer.
#[allow(
    clippy::large_enum_variant,
    reason = "one answer per call, moved once: boxing would only add an allocation"
)]
pub(crate) enum Done {
    Outcomes(Vec<WriteOutcome>),
    Claimed(Claimed),
}

/// The group commit of a SQLite file: the queue of calls and the leadership of the next group.
pub(crate) struct GroupCommit(Batcher<Work, Done>);

impl Default for GroupCommit {
    fn default() -> Self {
        Self(Batcher::new(
            "group commit",
            |_| None,
            |store, group| {
                Box::pin(async move {
                    let answers = run(&store, &group).await;
                    (group, answers)
                })
            },
            |store, work| Box::pin(async move { alone(&store, work).await }),
            spawn_group,
        ))
    }
}

impl GroupCommit {
    /// Applies `writes` of `team` in the next group and returns their outcomes.
    pub(crate) async fn apply(
        &self,
        store: &Store,
        team: TeamId,
        writes: Vec<ObservationWrite>,
    ) -> Result<Vec<WriteOutcome>, RepositoryError> {
        match self.0.call(store, Work::Apply { team, writes }).await? {
            Done::Outcomes(outcomes) => Ok(outcomes),
            Done::Claimed(_) => Err(mismatched()),
        }
    }

    /// Runs `claim` in the next group and returns its answer.
    pub(crate) async fn claim(
        &self,
        store: &Store,
        claim: MessageClaim,
    ) -> Result<Claimed, RepositoryError> {
        match self.0.call(store, Work::Claim(claim)).await? {
            Done::Claimed(claimed) => Ok(claimed),
            Done::Outcomes(_) => Err(mismatched()),
        }
    }
}

/// An answer of the other kind of call (a bug: each call is answered for its own work).
fn mismatched() -> RepositoryError {
    RepositoryError::Unexpected("the group transaction answered another kind of call".into())
}

/// Runs a group on the process's writer thread: a thread of its own with a single-threaded
/// runtime that does nothing else, so between a group's statements the group is resumed at once
/// instead of waiting its turn among an HTTP worker's requests (the group holds the one writer
/// meanwhile). Measured on a single refresh: 5,306 -> 6,604 req/s. Falls back to the caller's
/// runtime if the thread cannot be started.
fn spawn_group(group: BoxFuture<()>) {
    static GROUPS: std::sync::OnceLock<Option<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    let groups = GROUPS.get_or_init(|| {
        // The runtime is built on its own thread and only its handle comes back, so a thread
        // that cannot start leaves no runtime to drop here (inside an async context, where
        // dropping one panics).
        let (handle, handed) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("smsdesk-sqlite-groups".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        let _ = handle.send(Some(runtime.handle().clone()));
                        runtime.block_on(std::future::pending::<()>());
                    }
                    Err(_) => {
                        let _ = handle.send(None);
                    }
                }
            })
            .ok()?;
        handed.recv().ok().flatten()
    });
    match groups {
        Some(groups) => drop(groups.spawn(group)),
        None => drop(tokio::spawn(group)),
    }
}

/// One call in a transaction of its own (a group of one, or after its group failed).
async fn alone(store: &Store, work: Work) -> Result<Done, RepositoryError> {
    match work {
        Work::Apply { team, writes } => store.apply_alone(team, &writes).await.map(Done::Outcomes),
        Work::Claim(claim) => claim_alone(store, &claim).await.map(Done::Claimed),
    }
}

/// Runs `group` in one transaction, or each call alone when it is a group of one or the group
/// failed (rolled back, so nothing of it was written): the group always answers every call.
async fn run(store: &Store, group: &[Work]) -> BatchResult<Done> {
    if group.len() > 1
        && let Ok(answers) = together(store, group).await
    {
        return Ok(answers.into_iter().map(|answer| Some(Ok(answer))).collect());
    }
    let mut answers = Vec::with_capacity(group.len());
    for work in group {
        let work = match work {
            Work::Apply { team, writes } => Work::Apply {
                team: *team,
                writes: writes.clone(),
            },
            Work::Claim(claim) => Work::Claim(claim.clone()),
        };
        answers.push(Some(alone(store, work).await));
    }
    Ok(answers)
}

/// The group in one transaction: one read of its messages, its claims decided together, then
/// its writes applied together, then one commit. Answers in the group's order.
async fn together(store: &Store, group: &[Work]) -> Result<Vec<Done>, DbErr> {
    let tx = store.begin_write().await?;
    let mut claims: Vec<&MessageClaim> = Vec::new();
    let mut calls: Vec<TeamWrites<'_>> = Vec::with_capacity(group.len());
    for work in group {
        match work {
            Work::Claim(claim) => claims.push(claim),
            Work::Apply { team, writes } => calls.push(TeamWrites {
                team: *team,
                writes,
            }),
        }
    }
    // One read of every message the group claims or writes: the claims' last claims and the
    // writes' ids. Claims stamp only the cool-down, so the ids the writes need stay as read.
    let mut wanted: Vec<(TeamId, &str)> = Vec::with_capacity(group.len());
    for claim in &claims {
        wanted.extend(claim.sids.iter().map(|sid| (claim.team, sid.as_str())));
    }
    push_written(&mut wanted, &calls);
    // Whole messages only when a claim reads its message (a refresh's claim).
    let whole = claims
        .iter()
        .any(|claim| claim.read)
        .then_some(&*store.cipher);
    let known = message_keys(&tx, &wanted, whole).await?;
    let mut granted: VecDeque<Vec<String>> = if claims.is_empty() {
        VecDeque::new()
    } else {
        claim_group_in(&tx, &claims, &known).await?.into()
    };
    let mut outcomes: VecDeque<Vec<WriteOutcome>> = if calls.is_empty() {
        VecDeque::new()
    } else {
        apply_known_in(&tx, &calls, &known).await?.into()
    };
    tx.commit().await?;
    group
        .iter()
        .map(|work| {
            let answer = match work {
                Work::Claim(claim) => granted.pop_front().map(|granted| {
                    let message = claim
                        .sids
                        .first()
                        .filter(|_| claim.read)
                        .and_then(|sid| known.get(sid.as_str()))
                        .filter(|key| key.team == claim.team.get())
                        .and_then(|key| key.message.clone());
                    Done::Claimed(Claimed { granted, message })
                }),
                Work::Apply { .. } => outcomes.pop_front().map(Done::Outcomes),
            };
            answer
                .ok_or_else(|| DbErr::Custom("the group transaction gave a call no answer".into()))
        })
        .collect()
}
