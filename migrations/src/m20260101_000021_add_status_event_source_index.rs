//! The index `(message_id, source, status)` on `message_status_events`: it answers "did this
//! source already report this status for the message?" (a status callback Twilio is retrying)
//! with one index probe, however many refreshes grew the message's history. The history's own
//! index `(message_id, id)` would read every event of the message.

use sea_orm_migration::prelude::*;

/// The index on `(message_id, source, status)`.
pub const INDEX_NAME: &str = "idx_message_status_events_source";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MessageStatusEvents {
    Table,
    MessageId,
    Source,
    Status,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX_NAME)
                    .table(MessageStatusEvents::Table)
                    .col(MessageStatusEvents::MessageId)
                    .col(MessageStatusEvents::Source)
                    .col(MessageStatusEvents::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX_NAME)
                    .table(MessageStatusEvents::Table)
                    .to_owned(),
            )
            .await
    }
}
