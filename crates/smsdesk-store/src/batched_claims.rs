//! On PostgreSQL, concurrent single-message cool-down claims (a single refresh's, before it asks
//! Twilio) share one statement ([`crate::batches`]), which also reads each claimed message for a
//! claim that asks (`RefreshLimiter::claim_and_read`): a refresh's read and claim are one
//! statement.
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

use sea_orm::sea_query::PostgresQueryBuilder;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use std::sync::OnceLock;

use crate::batches::{
    BatchResult, Batcher, input_opening, input_rows, message_of_input, on_this_runtime,
};
use crate::cipher::SecretCipher;
use crate::limiter::{Claimed, MessageClaim, claim_alone, cutoff};
use crate::messages::message_from_row;

/// The batcher of single-message claims, at most one per message in a batch; each answers the
/// SIDs it was granted and, for a claim that reads, its message.
pub(crate) fn batcher() -> Batcher<MessageClaim, Claimed> {
    Batcher::new(
        "cool-down claims",
        |claim| claim.sids.first().map(String::as_str),
        |store, claims| {
            Box::pin(async move {
                let result = claim_batch(store.writer(), &store.cipher, &claims).await;
                (claims, result)
            })
        },
        |store, claim| Box::pin(async move { claim_alone(&store, &claim).await }),
        on_this_runtime,
    )
}

/// The columns of the batch's input rows after the claim's index: the team, the SID, the claim's
/// time, the latest last claim it lets through (`NULL`: no cool-down, always through) and
/// whether the claim reads its message.
const INPUT_COLUMNS: [(&str, &str); 5] = [
    ("team_id", "bigint"),
    ("sid", "text"),
    ("claimed_at", "timestamptz"),
    ("cutoff", "timestamptz"),
    ("read", "boolean"),
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
    (due.i IS NOT NULL AND in_order.i IS NULL) AS locked,
    message.*
FROM input
LEFT JOIN due ON due.i = input.i
LEFT JOIN in_order ON in_order.i = input.i
LEFT JOIN stamped ON stamped.i = input.i
LEFT JOIN LATERAL ({message}) message ON input.read
ORDER BY input.i";

/// The whole statement: the input rows (parameters 1 and 2), then [`BATCH_STATEMENT`] with the
/// message of each claim that reads ([`message_of_input`]). The final SELECT reads it in the
/// statement's snapshot, so as stored before the claim's stamp.
fn statement() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let message = message_of_input().to_string(PostgresQueryBuilder);
        format!(
            "{},{}",
            input_opening(&INPUT_COLUMNS, 1),
            BATCH_STATEMENT.replace("{message}", &message)
        )
    })
}

/// Runs `claims` (one message each, no two the same) as one statement in autocommit and returns
/// each claim's answer, in the batch's order.
async fn claim_batch<C: ConnectionTrait>(
    db: &C,
    cipher: &SecretCipher,
    claims: &[MessageClaim],
) -> BatchResult<Claimed> {
    if claims.iter().any(|claim| claim.sids.len() != 1) {
        return Err(DbErr::Custom("a batched claim names one message".into()));
    }
    let mut values: Vec<Value> = Vec::with_capacity(2);
    input_rows(
        &INPUT_COLUMNS,
        claims,
        |claim| {
            [
                claim.team.get().into(),
                claim.sids.first().map(String::as_str).into(),
                claim.now.into(),
                cutoff(claim.now, claim.cooldown).into(),
                claim.read.into(),
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
            if locked {
                return Ok(None);
            }
            // A row without a message (none of the team's, or a claim that does not read) has
            // NULL in every message column.
            let message = row
                .try_get::<Option<String>>("", "sid")?
                .map(|_| message_from_row(row, cipher));
            // A message that does not decode is this claim's error alone; its claim stands.
            let answer = message.transpose().map(|message| Claimed {
                granted: if granted {
                    claim.sids.clone()
                } else {
                    Vec::new()
                },
                message,
            });
            Ok(Some(answer))
        })
        .collect()
}
