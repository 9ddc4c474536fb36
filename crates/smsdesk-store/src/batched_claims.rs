//! On PostgreSQL, concurrent single-message cool-down claims (a single refresh's, before it asks
//! Twilio) share one statement ([`crate::batches`]).
//!
//! Alone, a claim is the conditional UPDATE it always was ([`crate::limiter::claim_in`]). When
//! claims arrive together, a batch of them (at most [`MAX_BATCH`], one per message) is one
//! statement with the same rule for each: a message of the claimer's own team is stamped with
//! the claim's time only if its last claim is older than the claim's cool-down (or it has none),
//! so of concurrent claimers of one message exactly one wins, in a batch or across replicas. A
//! second claim of the same message waits for the next batch, where it sees the first's stamp.
//! The rows are locked in message-id order with the lock an UPDATE of non-key columns takes, as
//! every write of this store locks them.

use std::collections::HashSet;
use std::fmt::Write as _;

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use smsdesk_domain::ports::RepositoryError;

use crate::batches::{BatchAnswers, Batcher, together_or_alone};
use crate::error::repo_err;
use crate::limiter::{MessageClaim, claim_in, cutoff};
use crate::store::{Backend, Store};

/// The most claims one batch statement takes (5 parameters each).
const MAX_BATCH: usize = 64;

/// The batcher of single-message claims; each answers the SIDs it was granted.
pub(crate) fn batcher() -> Batcher<MessageClaim, Vec<String>> {
    Batcher::new(
        MAX_BATCH,
        |claim| claim.sids.first().map(String::as_str),
        |store, claims| Box::pin(async move { run(&store, claims).await }),
    )
}

async fn run(store: &Store, claims: Vec<MessageClaim>) -> BatchAnswers<Vec<String>> {
    together_or_alone(
        claims.len(),
        "cool-down claims",
        claim_batch(store.writer(), &claims),
        |index| {
            let claim = &claims[index];
            async move {
                claim_in(store.writer(), Backend::Postgres, claim)
                    .await
                    .map_err(repo_err)
            }
        },
    )
    .await
}

/// The batch statement after its input rows: `in_order` locks the due messages in id order,
/// `stamped` stamps each with its claim's time under the same condition; the answer is the
/// index of every claim granted.
const BATCH_STATEMENT: &str = "
in_order AS (
    SELECT m.id, input.i FROM sms_messages m
    JOIN input ON m.team_id = input.team_id AND m.sid = input.sid
    WHERE input.cutoff IS NULL OR m.last_refreshed_at IS NULL
        OR m.last_refreshed_at <= input.cutoff
    ORDER BY m.id
    FOR NO KEY UPDATE OF m
),
stamped AS (
    UPDATE sms_messages m SET last_refreshed_at = input.claimed_at
    FROM in_order JOIN input ON input.i = in_order.i
    WHERE m.id = in_order.id
      AND (input.cutoff IS NULL OR m.last_refreshed_at IS NULL
        OR m.last_refreshed_at <= input.cutoff)
    RETURNING input.i
)
SELECT i FROM stamped";

/// Runs `claims` (one message each, no two the same) as one statement in autocommit and returns
/// each claim's granted SIDs, in the batch's order.
async fn claim_batch<C: ConnectionTrait>(
    db: &C,
    claims: &[MessageClaim],
) -> Result<Vec<Vec<String>>, RepositoryError> {
    let mut values: Vec<Value> = Vec::with_capacity(claims.len() * 5);
    let mut sql = String::from("WITH input (i, team_id, sid, claimed_at, cutoff) AS (VALUES ");
    for (index, claim) in claims.iter().enumerate() {
        let [sid] = claim.sids.as_slice() else {
            return Err(RepositoryError::Unexpected(
                "a batched claim names one message".into(),
            ));
        };
        values.extend([
            i64::try_from(index).unwrap_or(i64::MAX).into(),
            claim.team.get().into(),
            sid.as_str().into(),
            claim.now.into(),
            cutoff(claim.now, claim.cooldown).into(),
        ]);
        let n = values.len();
        let _ = write!(
            sql,
            "{}(${}::bigint, ${}::bigint, ${}::text, ${}::timestamptz, ${}::timestamptz)",
            if index == 0 { "" } else { ", " },
            n - 4,
            n - 3,
            n - 2,
            n - 1,
            n
        );
    }
    sql.push_str("),");
    sql.push_str(BATCH_STATEMENT);
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await
        .map_err(repo_err)?;
    let granted: HashSet<i64> = rows
        .iter()
        .map(|row| row.try_get::<i64>("", "i"))
        .collect::<Result<_, _>>()
        .map_err(repo_err)?;
    Ok(claims
        .iter()
        .enumerate()
        .map(|(index, claim)| {
            if granted.contains(&i64::try_from(index).unwrap_or(i64::MAX)) {
                claim.sids.clone()
            } else {
                Vec::new()
            }
        })
        .collect())
}
