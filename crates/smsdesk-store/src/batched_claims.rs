//! On PostgreSQL, concurrent single-message cool-down claims (a single refresh's, before it asks
//! Twilio) share one statement ([`crate::batches`]).
//!
//! Without batches a claim is one conditional UPDATE ([`crate::limiter::claim_in`], still what a
//! claim handed back to run alone runs); here the claims that arrive together, at most 64 and one
//! per message, are one
//! statement with the same rule for each: a message of the claimer's own team is stamped with
//! the claim's time only if its last claim is older than the claim's cool-down (or it has none),
//! so of concurrent claimers of one message exactly one wins, in a batch or across replicas. A
//! second claim of the same message waits for the next batch, where it sees the first's stamp.
//! The rows are locked in message-id order with the lock an UPDATE of non-key columns takes, as
//! every write of this store locks them; a due message another transaction holds is skipped and
//! its claim runs alone, which waits for that row only.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use std::sync::OnceLock;

use crate::batches::{BatchResult, Batcher, input_opening, input_rows, on_this_runtime};
use crate::error::repo_err;
use crate::limiter::{MessageClaim, claim_in, cutoff};
use crate::store::Backend;

/// The batcher of single-message claims, at most one per message in a batch; each answers the
/// SIDs it was granted.
pub(crate) fn batcher() -> Batcher<MessageClaim, Vec<String>> {
    Batcher::new(
        "cool-down claims",
        |claim| claim.sids.first().map(String::as_str),
        |store, claims| {
            Box::pin(async move {
                let result = claim_batch(store.writer(), &claims).await;
                (claims, result)
            })
        },
        |store, claim| {
            Box::pin(async move {
                claim_in(store.writer(), Backend::Postgres, &claim)
                    .await
                    .map_err(repo_err)
            })
        },
        on_this_runtime,
    )
}

/// The columns of the batch's input rows after the claim's index: the team, the SID, the claim's
/// time and the latest last claim it lets through (`NULL`: no cool-down, always through).
const INPUT_COLUMNS: [(&str, &str); 4] = [
    ("team_id", "bigint"),
    ("sid", "text"),
    ("claimed_at", "timestamptz"),
    ("cutoff", "timestamptz"),
];

/// The batch statement after its input rows: `due` finds each claim's message of its own team
/// if its cool-down has passed, `in_order` locks those in id order (skipping rows another
/// transaction holds), `stamped` stamps each with its claim's time under the same condition.
/// The answer says per claim whether it was granted, or its message locked (then it runs alone).
const BATCH_STATEMENT: &str = "
due AS (
    SELECT m.id, input.i FROM sms_messages m
    JOIN input ON m.team_id = input.team_id AND m.sid = input.sid
    WHERE input.cutoff IS NULL OR m.last_refreshed_at IS NULL
        OR m.last_refreshed_at <= input.cutoff
),
in_order AS (
    SELECT m.id, due.i FROM sms_messages m
    JOIN due ON due.id = m.id
    ORDER BY m.id
    FOR NO KEY UPDATE OF m SKIP LOCKED
),
stamped AS (
    UPDATE sms_messages m SET last_refreshed_at = input.claimed_at
    FROM in_order JOIN input ON input.i = in_order.i
    WHERE m.id = in_order.id
      AND (input.cutoff IS NULL OR m.last_refreshed_at IS NULL
        OR m.last_refreshed_at <= input.cutoff)
    RETURNING input.i
)
SELECT input.i,
    (stamped.i IS NOT NULL) AS granted,
    (due.i IS NOT NULL AND in_order.i IS NULL) AS locked
FROM input
LEFT JOIN due ON due.i = input.i
LEFT JOIN in_order ON in_order.i = input.i
LEFT JOIN stamped ON stamped.i = input.i
ORDER BY input.i";

/// The whole statement: the input rows (parameters 1 and 2), then [`BATCH_STATEMENT`].
fn statement() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| format!("{},{BATCH_STATEMENT}", input_opening(&INPUT_COLUMNS, 1)))
}

/// Runs `claims` (one message each, no two the same) as one statement in autocommit and returns
/// each claim's granted SIDs, in the batch's order.
async fn claim_batch<C: ConnectionTrait>(
    db: &C,
    claims: &[MessageClaim],
) -> BatchResult<Vec<String>> {
    if claims.iter().any(|claim| claim.sids.len() != 1) {
        return Err(DbErr::Custom("a batched claim names one message".into()));
    }
    let mut values: Vec<Value> = Vec::with_capacity(claims.len() * 5);
    input_rows(
        &INPUT_COLUMNS,
        claims,
        |claim| {
            [
                claim.team.get().into(),
                claim.sids.first().map(String::as_str).into(),
                claim.now.into(),
                cutoff(claim.now, claim.cooldown).into(),
            ]
        },
        &mut values,
    )?;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            statement(),
            values,
        ))
        .await?;
    rows.iter()
        .zip(claims)
        .map(|(row, claim)| {
            let granted: bool = row.try_get("", "granted")?;
            let locked: bool = row.try_get("", "locked")?;
            Ok(match (locked, granted) {
                (true, _) => None,
                (false, true) => Some(Ok(claim.sids.clone())),
                (false, false) => Some(Ok(Vec::new())),
            })
        })
        .collect()
}
