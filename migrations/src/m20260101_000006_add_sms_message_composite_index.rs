//! The composite index `(team_id, direction, status, created_at)` on `sms_messages`, which the
//! bulk refresh query ("this team's outbound, non-terminal messages of the last N hours") and the
//! filtered message list use. Its own migration, as in the original, so it can be reasoned about
//! (and rebuilt) on its own.

use sea_orm_migration::prelude::*;

/// The index's name, which query-plan checks look for.
pub const INDEX_NAME: &str = "idx_sms_messages_team_direction_status_created";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SmsMessages {
    Table,
    TeamId,
    Direction,
    Status,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX_NAME)
                    .table(SmsMessages::Table)
                    .col(SmsMessages::TeamId)
                    .col(SmsMessages::Direction)
                    .col(SmsMessages::Status)
                    .col(SmsMessages::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX_NAME)
                    .table(SmsMessages::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
