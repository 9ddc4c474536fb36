//! Storing observations under the forward-only rule, for every use case that learns a status
//! (refresh polls, status callbacks, parked callbacks replayed after a send).
//!
//! Each observation is decided against the message as last read, and written conditionally on
//! that status still being stored. A write that lost a race to another writer comes back as a
//! conflict; the message is read again and the observation decided again, a bounded number of
//! times. All writes of one round go to the repository as one batch (one transaction).
//!
//! Every write that changed a message is handed to the [`ChangeNotifier`] once its round is
//! committed: this is the one place where status changes are announced.

use crate::changes::{ChangeKind, ChangeNotifier, CommittedChange};
use crate::ids::{MessageSid, TeamId};
use crate::message::{DeliveryState, Message, StatusObservation};
use crate::ports::{
    MessageRepository, ObservationWrite, RepositoryError, StateChange, WriteOutcome,
};
use crate::rules::{StatusDecision, decide};

/// How many times a write that lost a race is decided again before giving up on it. Each round
/// re-reads the message, so more than a couple of rounds means something keeps writing it.
pub(crate) const MAX_WRITE_ROUNDS: usize = 3;

/// What storing one observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived, one per observation in a batch; boxing would only add allocations"
)]
pub(crate) enum Stored {
    /// Decided and written (applied or recorded as not applied).
    Decided {
        /// The message's delivery state the final decision was made against.
        before: DeliveryState,
        /// The decision.
        decision: StatusDecision,
    },
    /// The message is not (or no longer) stored in the team.
    Missing,
    /// The message kept changing under us; nothing was written for this observation.
    GaveUp,
}

/// Decides and writes `items` (each a message as last read, and what was observed about it),
/// and hands every change written to `notifier`. Returns one result per item, in order.
///
/// # Errors
/// The repository's error; no later round is attempted (changes of earlier rounds were
/// committed and announced).
pub(crate) async fn store_observations(
    messages: &dyn MessageRepository,
    notifier: &dyn ChangeNotifier,
    team: TeamId,
    items: Vec<(Message, StatusObservation)>,
) -> Result<Vec<Stored>, RepositoryError> {
    let mut results: Vec<Option<Stored>> = vec![None; items.len()];
    let mut pending: Vec<(usize, Message, StatusObservation)> = items
        .into_iter()
        .enumerate()
        .map(|(index, (message, observation))| (index, message, observation))
        .collect();

    for round in 0..MAX_WRITE_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let decisions: Vec<StatusDecision> = pending
            .iter()
            .map(|(_, message, observation)| decide(&message.delivery, observation))
            .collect();
        let writes = pending
            .iter()
            .zip(&decisions)
            .map(|((_, message, observation), decision)| ObservationWrite {
                sid: message.sid.clone(),
                observation: observation.clone(),
                change: decision.next_state().map(|next| StateChange {
                    expected_status: message.delivery.status.clone(),
                    expected_updated_at: Some(message.updated_at),
                    next: next.clone(),
                }),
            })
            .collect();
        let written = messages.apply_observations(team, writes).await?;

        let mut conflicted = Vec::new();
        for ((index, message, observation), (decision, write)) in
            pending.into_iter().zip(decisions.into_iter().zip(written))
        {
            match write {
                WriteOutcome::Written | WriteOutcome::Recorded => {
                    if write == WriteOutcome::Written
                        && let Some(change) =
                            committed_change(team, &message, &observation, &decision)
                    {
                        notifier.committed(&change);
                    }
                    results[index] = Some(Stored::Decided {
                        before: message.delivery,
                        decision,
                    });
                }
                WriteOutcome::Missing => results[index] = Some(Stored::Missing),
                WriteOutcome::Conflict => conflicted.push((index, message.sid, observation)),
            }
        }

        pending = Vec::new();
        for (index, sid, observation) in conflicted {
            if round + 1 == MAX_WRITE_ROUNDS {
                results[index] = Some(Stored::GaveUp);
                continue;
            }
            match reread(messages, team, &sid).await? {
                Some(fresh) => pending.push((index, fresh, observation)),
                None => results[index] = Some(Stored::Missing),
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Stored::GaveUp))
        .collect())
}

/// The change a decision committed, if it changed anything.
fn committed_change(
    team: TeamId,
    message: &Message,
    observation: &StatusObservation,
    decision: &StatusDecision,
) -> Option<CommittedChange> {
    let (kind, next) = match decision {
        StatusDecision::Advanced { from, next } => {
            (ChangeKind::Advanced { from: from.clone() }, next)
        }
        StatusDecision::Enriched { next } => (ChangeKind::Enriched, next),
        StatusDecision::Unchanged | StatusDecision::Stale { .. } => return None,
    };
    Some(CommittedChange {
        team_id: team,
        sid: message.sid.clone(),
        kind,
        state: next.clone(),
        source: observation.source,
        observed_at: observation.observed_at,
    })
}

async fn reread(
    messages: &dyn MessageRepository,
    team: TeamId,
    sid: &MessageSid,
) -> Result<Option<Message>, RepositoryError> {
    messages.find(team, sid).await
}
