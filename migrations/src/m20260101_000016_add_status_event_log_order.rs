//! The history as a log every process can follow: `message_status_events.commit_tx` and the log
//! index `(commit_tx, id) WHERE applied`.
//!
//! On PostgreSQL, ids come from a sequence when a row is inserted, but transactions commit in
//! any order: a reader that saw id 11 could later see id 10 appear. `commit_tx` is the writing
//! transaction's id (`pg_current_xact_id()`), and a reader only reads rows whose transaction is
//! older than every transaction still open (`pg_snapshot_xmin`), in `(commit_tx, id)` order, so
//! what it has read is final and "after the last row read" misses nothing. On SQLite one writer
//! commits at a time, rows become visible in id order, and `commit_tx` is always 0.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The log index's name.
pub const INDEX_NAME: &str = "idx_message_status_events_log";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        if !manager
            .has_column("message_status_events", "commit_tx")
            .await?
        {
            let column = match manager.get_database_backend() {
                DbBackend::Postgres => "xid8 NOT NULL DEFAULT pg_current_xact_id()",
                _ => "BIGINT NOT NULL DEFAULT 0",
            };
            connection
                .execute_unprepared(&format!(
                    "ALTER TABLE message_status_events ADD COLUMN commit_tx {column}"
                ))
                .await?;
        }
        connection
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON message_status_events \
                 (commit_tx, id) WHERE applied"
            ))
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!("DROP INDEX IF EXISTS {INDEX_NAME}"))
            .await?;
        connection
            .execute_unprepared("ALTER TABLE message_status_events DROP COLUMN commit_tx")
            .await
            .map(|_| ())
    }
}
