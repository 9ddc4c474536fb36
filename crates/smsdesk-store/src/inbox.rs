//! [`CallbackInbox`] on SQL: status callbacks that beat their message into the store wait in
//! `parked_callbacks`. Parking is an INSERT that does nothing on a repeat of the same
//! (team, SID, status); taking is one `DELETE … RETURNING`, so of two concurrent takers each row
//! goes to exactly one; discarding deletes by age.

use async_trait::async_trait;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use smsdesk_domain::ports::{CallbackInbox, RepositoryError};
use smsdesk_domain::{
    DeliveryState, MessageSid, MessageStatus, ObservationSource, StatusObservation, TeamId,
    Timestamp,
};

use crate::error::{corrupt, repo_err};
use crate::messages::observation_values;
use crate::schema::ParkedCallbacks;
use crate::store::{Store, execute, stored_time};

fn get<T: sea_orm::TryGetable>(
    row: &sea_orm::QueryResult,
    column: &str,
) -> Result<T, RepositoryError> {
    row.try_get::<T>("", column)
        .map_err(|err| corrupt(column, err))
}

fn optional_u32(row: &sea_orm::QueryResult, column: &str) -> Result<Option<u32>, RepositoryError> {
    get::<Option<i64>>(row, column)?
        .map(|value| u32::try_from(value).map_err(|err| corrupt(column, err)))
        .transpose()
}

/// A taken row: its id (the parking order) and what it held.
fn parked_from_row(
    row: &sea_orm::QueryResult,
) -> Result<(i64, StatusObservation), RepositoryError> {
    let source = get::<String>(row, "source")?;
    let observation = StatusObservation {
        state: DeliveryState {
            status: MessageStatus::parse(&get::<String>(row, "status")?),
            error_code: optional_u32(row, "error_code")?,
            error_message: get(row, "error_message")?,
            num_segments: optional_u32(row, "num_segments")?,
            price: get(row, "price")?,
            price_unit: get(row, "price_unit")?,
        },
        source: ObservationSource::parse(&source)
            .ok_or_else(|| corrupt("parked callback source", &source))?,
        observed_at: get(row, "observed_at")?,
    };
    Ok((get::<i64>(row, "id")?, observation))
}

/// The columns of a parked callback that hold its observation, in the order they are written
/// and read.
const PARKED_OBSERVATION_COLUMNS: [ParkedCallbacks; 8] = [
    ParkedCallbacks::Status,
    ParkedCallbacks::ErrorCode,
    ParkedCallbacks::ErrorMessage,
    ParkedCallbacks::NumSegments,
    ParkedCallbacks::Price,
    ParkedCallbacks::PriceUnit,
    ParkedCallbacks::Source,
    ParkedCallbacks::ObservedAt,
];
#[async_trait]
impl CallbackInbox for Store {
    async fn park(
        &self,
        team: TeamId,
        sid: &MessageSid,
        observation: StatusObservation,
    ) -> Result<(), RepositoryError> {
        let insert = Query::insert()
            .into_table(ParkedCallbacks::Table)
            .columns(
                [ParkedCallbacks::TeamId, ParkedCallbacks::MessageSid]
                    .into_iter()
                    .chain(PARKED_OBSERVATION_COLUMNS),
            )
            .values_panic(
                [team.get().into(), sid.as_str().into()]
                    .into_iter()
                    .chain(observation_values(&observation))
                    .map(Expr::val),
            )
            .on_conflict(
                OnConflict::columns([
                    ParkedCallbacks::TeamId,
                    ParkedCallbacks::MessageSid,
                    ParkedCallbacks::Status,
                ])
                .do_nothing()
                .to_owned(),
            )
            .to_owned();
        execute(self.writer(), &insert).await.map_err(repo_err)?;
        tracing::debug!(%sid, %team, status = %observation.state.status.as_str(), "callback parked");
        Ok(())
    }

    async fn take_parked(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusObservation>, RepositoryError> {
        let take =
            Query::delete()
                .from_table(ParkedCallbacks::Table)
                .and_where(Expr::col(ParkedCallbacks::TeamId).eq(team.get()))
                .and_where(Expr::col(ParkedCallbacks::MessageSid).eq(sid.as_str()))
                .returning(Query::returning().columns(
                    std::iter::once(ParkedCallbacks::Id).chain(PARKED_OBSERVATION_COLUMNS),
                ))
                .to_owned();
        let rows = self.writer().query_all(&take).await.map_err(repo_err)?;
        let mut taken = rows
            .iter()
            .map(parked_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING promises no order; replay wants the oldest first, ties in parking order.
        taken.sort_by_key(|(id, observation)| (observation.observed_at, *id));
        Ok(taken
            .into_iter()
            .map(|(_, observation)| observation)
            .collect())
    }

    async fn discard_parked_before(&self, cutoff: Timestamp) -> Result<u64, RepositoryError> {
        let discard = Query::delete()
            .from_table(ParkedCallbacks::Table)
            .and_where(Expr::col(ParkedCallbacks::ObservedAt).lt(stored_time(cutoff)))
            .to_owned();
        execute(self.writer(), &discard).await.map_err(repo_err)
    }
}
