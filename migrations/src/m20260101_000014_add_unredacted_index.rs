//! A partial index over the messages retention has not redacted yet, `(created_at, id) WHERE
//! redacted_at IS NULL`, so finding the next batch reads only due rows in order instead of
//! walking the whole table (the other indexes all lead with the team). Both SQLite and
//! PostgreSQL support partial indexes with the same statement.

use sea_orm_migration::prelude::*;

/// The index's name.
pub const INDEX_NAME: &str = "idx_sms_messages_unredacted_created";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON sms_messages (created_at, id) \
                 WHERE redacted_at IS NULL"
            ))
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!("DROP INDEX IF EXISTS {INDEX_NAME}"))
            .await
            .map(|_| ())
    }
}
