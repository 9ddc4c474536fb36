//! [`ChangeLog`] on SQL: the history's applied rows read as one log, in commit order, and the
//! fleet's doorbell on PostgreSQL (`NOTIFY` / `LISTEN` on [`CHANGES_CHANNEL`]).
//!
//! The order is `(commit_tx, id)` (see the migration that added `commit_tx`). On PostgreSQL a
//! read returns only rows whose writing transaction is older than every transaction still open
//! (`commit_tx < pg_snapshot_xmin(pg_current_snapshot())`), so no row can later appear before
//! one already read: a row of an open transaction waits for it, and then sorts after. On SQLite
//! one writer commits at a time, ids are in commit order, and `commit_tx` is always 0.
//!
//! Every query is served by the partial log index `(commit_tx, id) WHERE applied`; a team's read
//! joins its messages to keep to that team.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait as _, QueryResult, Statement, Value};
use smsdesk_domain::changes::{LogPosition, LoggedChange};
use smsdesk_domain::ports::{ChangeLog, RepositoryError};
use smsdesk_domain::{MessageSid, ObservationSource, TeamId};

use crate::error::{StoreError, corrupt, repo_err};
use crate::messages::QueryPlan;
use crate::messages::{delivery_from_row, get};
use crate::store::{Backend, Store};

/// The PostgreSQL channel replicas announce new changes on. The payload is empty: listeners
/// read the log to learn what changed.
pub const CHANGES_CHANNEL: &str = "smsdesk_changes";

/// What each read selects: the position, the message's team and SID, the state and the source.
const LOGGED_COLUMNS: &str = "e.id, CAST(e.commit_tx AS TEXT) AS epoch, m.team_id, m.sid, \
     e.status, e.error_code, e.error_message, e.num_segments, e.price, e.price_unit, e.source, \
     e.observed_at";

/// Only rows no open transaction can precede (PostgreSQL); SQLite needs no such bound.
fn final_rows(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " AND e.commit_tx < pg_snapshot_xmin(pg_current_snapshot())",
        Backend::Sqlite => "",
    }
}

/// Numbered placeholders for PostgreSQL, `?` for SQLite.
struct Placeholders {
    backend: Backend,
    next: usize,
}

impl Placeholders {
    fn new(backend: Backend) -> Self {
        Self { backend, next: 0 }
    }

    fn next(&mut self) -> String {
        self.next += 1;
        match self.backend {
            Backend::Postgres => format!("${}", self.next),
            Backend::Sqlite => "?".to_owned(),
        }
    }

    /// A placeholder for an epoch, which PostgreSQL compares as `xid8` (bound as text).
    fn epoch(&mut self) -> String {
        format!("CAST({} AS xid8)", self.next())
    }
}

fn position_from_row(row: &QueryResult) -> Result<LogPosition, RepositoryError> {
    let epoch = get::<String>(row, "epoch")?;
    Ok(LogPosition {
        epoch: epoch
            .parse()
            .map_err(|err| corrupt("history commit order", err))?,
        id: get(row, "id")?,
    })
}

fn logged_from_row(row: &QueryResult) -> Result<LoggedChange, RepositoryError> {
    let source = get::<String>(row, "source")?;
    Ok(LoggedChange {
        position: position_from_row(row)?,
        team_id: TeamId::new(get(row, "team_id")?).map_err(|err| corrupt("team_id", err))?,
        sid: MessageSid::parse(&get::<String>(row, "sid")?).map_err(|err| corrupt("sid", err))?,
        state: delivery_from_row(row)?,
        source: ObservationSource::parse(&source)
            .ok_or_else(|| corrupt("event source", &source))?,
        observed_at: get(row, "observed_at")?,
    })
}

#[async_trait]
impl ChangeLog for Store {
    async fn head(&self) -> Result<LogPosition, RepositoryError> {
        let sql = format!(
            "SELECT CAST(e.commit_tx AS TEXT) AS epoch, e.id FROM message_status_events e \
             WHERE e.applied{} ORDER BY e.commit_tx DESC, e.id DESC LIMIT 1",
            final_rows(self.backend())
        );
        let statement = Statement::from_string(self.db_backend(), sql);
        match self
            .reader
            .query_one_raw(statement)
            .await
            .map_err(repo_err)?
        {
            Some(row) => position_from_row(&row),
            None => Ok(LogPosition::START),
        }
    }

    async fn position_of(
        &self,
        team: TeamId,
        id: i64,
    ) -> Result<Option<LogPosition>, RepositoryError> {
        let mut slots = Placeholders::new(self.backend());
        let sql = format!(
            "SELECT CAST(e.commit_tx AS TEXT) AS epoch, e.id FROM message_status_events e \
             JOIN sms_messages m ON m.id = e.message_id \
             WHERE e.applied AND e.id = {} AND m.team_id = {}",
            slots.next(),
            slots.next()
        );
        let statement =
            Statement::from_sql_and_values(self.db_backend(), sql, [id.into(), team.get().into()]);
        self.reader
            .query_one_raw(statement)
            .await
            .map_err(repo_err)?
            .map(|row| position_from_row(&row))
            .transpose()
    }

    async fn read_after(
        &self,
        after: LogPosition,
        team: Option<TeamId>,
        limit: usize,
    ) -> Result<Vec<LoggedChange>, RepositoryError> {
        let statement = self.read_after_statement(after, team, limit);
        self.reader
            .query_all_raw(statement)
            .await
            .map_err(repo_err)?
            .iter()
            .map(logged_from_row)
            .collect()
    }
}

impl Store {
    /// The database's plan for [`ChangeLog::read_after`], which every live follower runs after
    /// every commit: it must be an index range, never a scan of the history.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Unexpected`] from the database.
    pub async fn explain_change_log_read(
        &self,
        after: LogPosition,
        team: Option<TeamId>,
    ) -> Result<QueryPlan, StoreError> {
        self.explain_statement(self.read_after_statement(after, team, 500))
            .await
    }

    fn read_after_statement(
        &self,
        after: LogPosition,
        team: Option<TeamId>,
        limit: usize,
    ) -> Statement {
        let backend = self.backend();
        let mut slots = Placeholders::new(backend);
        // PostgreSQL searches its log index with the row comparison; SQLite would scan every
        // row of epoch 0 for it (all of its rows), so it compares the id alone, its commit order.
        let (mut sql, mut values): (String, Vec<Value>) = match backend {
            Backend::Postgres => (
                format!(
                    "SELECT {LOGGED_COLUMNS} FROM message_status_events e \
                     JOIN sms_messages m ON m.id = e.message_id \
                     WHERE e.applied AND (e.commit_tx, e.id) > ({}, {}){}",
                    slots.epoch(),
                    slots.next(),
                    final_rows(backend)
                ),
                // Text, for PostgreSQL's `xid8`.
                vec![after.epoch.to_string().into(), after.id.into()],
            ),
            Backend::Sqlite => (
                format!(
                    "SELECT {LOGGED_COLUMNS} FROM message_status_events e \
                     JOIN sms_messages m ON m.id = e.message_id \
                     WHERE e.applied AND e.id > {}",
                    slots.next()
                ),
                vec![after.id.into()],
            ),
        };
        if let Some(team) = team {
            sql.push_str(&format!(" AND m.team_id = {}", slots.next()));
            values.push(team.get().into());
        }
        sql.push_str(match backend {
            Backend::Postgres => " ORDER BY e.commit_tx, e.id",
            Backend::Sqlite => " ORDER BY e.id",
        });
        sql.push_str(&format!(" LIMIT {}", slots.next()));
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        Statement::from_sql_and_values(self.db_backend(), sql, values)
    }
}

impl Store {
    /// Tells every process listening on this database (see [`Store::listen_for_changes`]) that
    /// the change log has news: `NOTIFY` on PostgreSQL, in its own short statement after the
    /// changes committed (never inside a write, whose commit would then queue behind every other
    /// notifying commit). Does nothing on SQLite, whose one process rings in memory.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the database cannot be reached.
    pub async fn announce_changes(&self) -> Result<(), RepositoryError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        self.reader
            .execute_unprepared(&format!("SELECT pg_notify('{CHANGES_CHANNEL}', '')"))
            .await
            .map(|_| ())
            .map_err(repo_err)
    }

    /// Calls `on_news` once listening starts (announcements made before were missed) and then
    /// for every announcement any process makes, until the connection fails; it reconnects by
    /// itself after a dropped connection (calling `on_news` again) and returns only on an error
    /// it cannot recover from, for the caller to retry after a pause. The listener holds one
    /// connection of the pool. On SQLite it returns at once.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when listening fails.
    pub async fn listen_for_changes(
        &self,
        on_news: &(dyn Fn() + Send + Sync),
    ) -> Result<(), RepositoryError> {
        use sea_orm::sqlx::postgres::PgListener;
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        let unavailable = |err: sea_orm::sqlx::Error| RepositoryError::Unavailable(err.to_string());
        let mut listener = PgListener::connect_with(self.reader.get_postgres_connection_pool())
            .await
            .map_err(unavailable)?;
        listener
            .listen(CHANGES_CHANNEL)
            .await
            .map_err(unavailable)?;
        on_news();
        loop {
            // `None`: the connection dropped and the listener reconnects on the next call;
            // whatever was announced meanwhile is lost, so look at the log now.
            let _notification = listener.try_recv().await.map_err(unavailable)?;
            on_news();
        }
    }
}
