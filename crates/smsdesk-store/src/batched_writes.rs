//! On PostgreSQL, concurrent single writes (a status callback's, a single refresh's) share one
//! statement ([`crate::batches`]).
//!
//! Without batches a single write is already one statement
//! ([`crate::messages::apply_one_change_in_one_statement`], still what a write handed back to run
//! alone runs); here the writes that arrive together (a burst of Twilio callbacks), at most 64
//! and one per message, are one statement. The batch statement keeps every rule of the single
//! write:
//! - each change is conditional on the status (and time) its caller read, so a concurrent writer
//!   that got there first makes it a [`WriteOutcome::Conflict`] and the caller decides again;
//! - each write is scoped to its caller's team: another team's SID is [`WriteOutcome::Missing`];
//! - every applied change gets its history row and one webhook delivery per enabled endpoint of
//!   its team that wants the event; a write that only records gets its history row;
//! - all of it commits or none of it does.
//!
//! The rows a batch changes are locked in message-id order before they are updated, as a
//! multi-write transaction locks them ([`crate::messages::apply_in`]), so batches of different
//! replicas touching the same messages cannot deadlock; a row another transaction holds is
//! skipped, and its write runs alone, waiting for that row only. A batch holds one write per
//! message, so no write in it can depend on another; a second write to the same message waits
//! for the next batch. A batch statement the server refused wrote nothing, and each of its
//! writes runs alone, so one write's failure is never another's.

use std::sync::OnceLock;

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use smsdesk_domain::TeamId;
use smsdesk_domain::ports::{ObservationWrite, RepositoryError, WriteOutcome};
use smsdesk_domain::webhooks::{DeliveryStatus, WebhookEvent};

use crate::batches::{BatchResult, Batcher, input_opening, input_rows, on_this_runtime};
use crate::messages::{observation_values, state_values};
use crate::store::stored_time;

/// One caller's single write: its team and the write.
pub(crate) type SingleWrite = (TeamId, ObservationWrite);

/// The batcher of single writes: at most one per message in a batch.
pub(crate) fn batcher() -> Batcher<SingleWrite, WriteOutcome> {
    Batcher::new(
        "status writes",
        |(_, write)| Some(write.sid.as_str()),
        |store, batch| {
            Box::pin(async move {
                let result = apply_batch(store.writer(), &batch).await;
                (batch, result)
            })
        },
        |store, (team, write)| {
            Box::pin(async move {
                let mut outcomes = store
                    .apply_alone(team, std::slice::from_ref(&write))
                    .await?;
                outcomes.pop().ok_or_else(|| {
                    RepositoryError::Unexpected("a single write gave no outcome".into())
                })
            })
        },
        on_this_runtime,
    )
}

/// The columns of the batch's input rows after the write's index, each with its type: the team
/// and SID it names, whether it changes the message, the status and time the change expects and
/// the state it stores (`next_…`), then the observation as history stores it (state, source,
/// time) and the webhook event an applied change raises.
const INPUT_COLUMNS: [(&str, &str); 20] = [
    ("team_id", "bigint"),
    ("sid", "text"),
    ("has_change", "boolean"),
    ("expected_status", "text"),
    ("expected_updated_at", "timestamptz"),
    ("next_status", "text"),
    ("next_error_code", "bigint"),
    ("next_error_message", "text"),
    ("next_num_segments", "bigint"),
    ("next_price", "text"),
    ("next_price_unit", "text"),
    ("status", "text"),
    ("error_code", "bigint"),
    ("error_message", "text"),
    ("num_segments", "bigint"),
    ("price", "text"),
    ("price_unit", "text"),
    ("source", "text"),
    ("observed_at", "timestamptz"),
    ("event_type", "text"),
];

/// The batch statement after its input rows. `target` locks the messages to change, in id
/// order, skipping those another transaction holds; `present` finds every write's message by
/// its own team; `changed` applies each change under its condition; `history` and `recorded`
/// write the history (applied changes, and writes that only record); `delivered` the webhook
/// outbox. The answer is one row per write: whether its message was found, whether it was
/// locked by another transaction (then it runs alone, which waits for the lock), and whether
/// its change landed.
const BATCH_STATEMENT: &str = "
target AS (
    SELECT m.id, input.i FROM sms_messages m
    JOIN input ON m.team_id = input.team_id AND m.sid = input.sid
    WHERE input.has_change
    ORDER BY m.id
    FOR NO KEY UPDATE OF m SKIP LOCKED
),
present AS (
    SELECT m.id, input.i FROM sms_messages m
    JOIN input ON m.team_id = input.team_id AND m.sid = input.sid
),
changed AS (
    UPDATE sms_messages m SET
        status = input.next_status, error_code = input.next_error_code,
        error_message = input.next_error_message, num_segments = input.next_num_segments,
        price = input.next_price, price_unit = input.next_price_unit,
        updated_at = input.observed_at, delivery_unknown_at = NULL
    FROM target JOIN input ON input.i = target.i
    WHERE m.id = target.id
      AND m.status = input.expected_status
      AND (input.expected_updated_at IS NULL OR m.updated_at = input.expected_updated_at)
    RETURNING m.id, input.i
),
history AS (
    SELECT id, i, TRUE AS applied FROM changed
    UNION ALL
    SELECT present.id, present.i, FALSE AS applied
    FROM present JOIN input ON input.i = present.i
    WHERE NOT input.has_change
),
recorded AS (
    INSERT INTO message_status_events (message_id, status, error_code, error_message,
        num_segments, price, price_unit, source, observed_at, applied)
    SELECT history.id, input.status, input.error_code, input.error_message,
        input.num_segments, input.price, input.price_unit, input.source, input.observed_at,
        history.applied
    FROM history JOIN input ON input.i = history.i
    ORDER BY input.i
    RETURNING id, message_id, applied
),
delivered AS (
    INSERT INTO webhook_deliveries (endpoint_id, event_id, message_id, event_type, status,
        attempt_count, next_attempt_at, created_at)
    SELECT e.id, recorded.id, recorded.message_id, input.event_type, $1, 0,
        input.observed_at, input.observed_at
    FROM recorded
    JOIN changed ON changed.id = recorded.message_id
    JOIN input ON input.i = changed.i
    JOIN webhook_endpoints e ON e.team_id = input.team_id AND e.enabled
    WHERE recorded.applied
      AND ((input.event_type = $2 AND e.wants_status_changed)
        OR (input.event_type = $3 AND e.wants_received))
)
SELECT input.i,
    (present.id IS NOT NULL) AS found,
    (input.has_change AND present.id IS NOT NULL AND target.id IS NULL) AS locked,
    (changed.id IS NOT NULL) AS written
FROM input
LEFT JOIN present ON present.i = input.i
LEFT JOIN target ON target.i = input.i
LEFT JOIN changed ON changed.i = input.i
ORDER BY input.i";

/// The whole statement: the delivery status and the two events (parameters 1 to 3), the input
/// rows (4 and 5), then [`BATCH_STATEMENT`].
fn statement() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| format!("{},{BATCH_STATEMENT}", input_opening(&INPUT_COLUMNS, 4)))
}

/// Runs `batch` (at most one write per message) as one statement in autocommit and returns each
/// write's outcome, in the batch's order.
async fn apply_batch<C: ConnectionTrait>(
    db: &C,
    batch: &[SingleWrite],
) -> BatchResult<WriteOutcome> {
    let mut values: Vec<Value> = vec![
        DeliveryStatus::Pending.as_str().into(),
        WebhookEvent::StatusChanged.as_str().into(),
        WebhookEvent::Received.as_str().into(),
    ];
    input_rows(
        &INPUT_COLUMNS,
        batch,
        |(team, write)| {
            let change = write.change.as_ref();
            [
                team.get().into(),
                write.sid.as_str().into(),
                change.is_some().into(),
                change.map(|change| change.expected_status.as_str()).into(),
                change
                    .and_then(|change| change.expected_updated_at)
                    .map(stored_time)
                    .into(),
            ]
            .into_iter()
            .chain(match change {
                Some(change) => state_values(&change.next),
                // NULLs for the values `state_values` gives a change.
                None => [
                    Value::String(None),
                    Value::BigInt(None),
                    Value::String(None),
                    Value::BigInt(None),
                    Value::String(None),
                    Value::String(None),
                ],
            })
            .chain(observation_values(&write.observation))
            .chain(std::iter::once(
                WebhookEvent::for_history(write.observation.source, change.is_some())
                    .map(WebhookEvent::as_str)
                    .into(),
            ))
            .collect::<Vec<Value>>()
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
        .zip(batch)
        .map(|(row, (_, write))| {
            let found: bool = row.try_get("", "found")?;
            let locked: bool = row.try_get("", "locked")?;
            let written: bool = row.try_get("", "written")?;
            Ok(match (found, locked, written, write.change.is_some()) {
                (_, true, _, _) => None,
                (false, ..) => Some(Ok(WriteOutcome::Missing)),
                (true, false, true, _) => Some(Ok(WriteOutcome::Written)),
                (true, false, false, true) => Some(Ok(WriteOutcome::Conflict)),
                (true, false, false, false) => Some(Ok(WriteOutcome::Recorded)),
            })
        })
        .collect()
}
