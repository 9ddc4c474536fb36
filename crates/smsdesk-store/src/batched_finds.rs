//! On PostgreSQL, concurrent reads of one message by SID (a status callback's
//! `find_with_observed`, a single refresh's `find`) share one statement ([`crate::batches`]).
//!
//! The reads that arrive together (at most 64) are one statement: each read's team and SID
//! (and, for a callback, the observation it asks about) as an input row, each looked up by the
//! same index and scoped to its own team, so another team's SID finds nothing, as alone. A read
//! of a batch sees at least every write committed before the read was asked for: the batch's
//! statement starts after every call in it was queued.

use std::sync::OnceLock;

use sea_orm::sea_query::PostgresQueryBuilder;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use smsdesk_domain::ports::{FoundMessage, RepositoryError};
use smsdesk_domain::{MessageSid, MessageStatus, ObservationSource, TeamId};

use crate::batches::{
    BatchResult, Batcher, input_opening, input_rows, message_of_input, on_this_runtime,
};
use crate::messages::found_message;
use crate::schema::SmsMessages;
use crate::store::Store;

/// One caller's read: a team's message by SID and, for a callback, whether its history holds
/// an observation of this source and status ([`FoundMessage::already_observed`]).
pub(crate) struct FindCall {
    pub(crate) team: TeamId,
    pub(crate) sid: MessageSid,
    pub(crate) observed: Option<(ObservationSource, MessageStatus)>,
}

/// The batcher of reads by SID.
pub(crate) fn batcher() -> Batcher<FindCall, Option<FoundMessage>> {
    Batcher::new(
        "reads by SID",
        |_| None,
        |store, calls| {
            Box::pin(async move {
                let result = find_batch(&store, &calls).await;
                (calls, result)
            })
        },
        |store, call| Box::pin(async move { store.find_alone(&call).await }),
        on_this_runtime,
    )
}

/// The whole statement: the input rows (parameters 1 and 2), then for each its message and id
/// ([`message_of_input`]) and whether its history holds the observation asked about.
fn statement() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let message_of_input = message_of_input()
            .column((SmsMessages::Table, SmsMessages::Id))
            .to_string(PostgresQueryBuilder);
        format!(
            "{} SELECT input.i, m.*, EXISTS (SELECT 1 FROM message_status_events e \
             WHERE e.message_id = m.id AND e.source = input.source AND e.status = input.status) \
             AS already_observed FROM input CROSS JOIN LATERAL ({message_of_input}) m",
            input_opening(&INPUT_COLUMNS, 1)
        )
    })
}

/// The columns of the batch's input rows after the read's index: the team, the SID, and the
/// observation's source and status a callback asks about (`NULL` for a plain read).
const INPUT_COLUMNS: [(&str, &str); 4] = [
    ("team_id", "bigint"),
    ("sid", "text"),
    ("source", "text"),
    ("status", "text"),
];

/// Reads `calls` in one statement; answers in their order.
async fn find_batch(store: &Store, calls: &[FindCall]) -> BatchResult<Option<FoundMessage>> {
    let mut values: Vec<Value> = Vec::with_capacity(2);
    input_rows(
        &INPUT_COLUMNS,
        calls,
        |call| {
            let (source, status) = call
                .observed
                .as_ref()
                .map(|(source, status)| (source.as_str(), status.as_str().to_owned()))
                .unzip();
            [
                call.team.get().into(),
                call.sid.as_str().into(),
                source.into(),
                status.into(),
            ]
        },
        &mut values,
    )?;
    let rows = store
        .reader
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            statement(),
            values,
        ))
        .await?;
    // Found or not, every read is answered here: none runs alone.
    let mut found: Vec<Option<Result<Option<FoundMessage>, RepositoryError>>> =
        calls.iter().map(|_| Some(Ok(None))).collect();
    for row in &rows {
        let index: i64 = row.try_get("", "i")?;
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        let (Some(slot), Some(call)) = (found.get_mut(index), calls.get(index)) else {
            return Err(sea_orm::DbErr::Custom(
                "a batched read's row is no call's".into(),
            ));
        };
        *slot = Some(found_message(row, &store.cipher, call.observed.is_some()).map(Some));
    }
    Ok(found)
}
