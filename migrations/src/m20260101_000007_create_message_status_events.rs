//! Every observation of a message's status (from the send, a poll, a callback or an inbound
//! webhook), whether it changed the message (`applied`) or was ignored as stale or duplicate.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SmsMessages {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MessageStatusEvents {
    Table,
    Id,
    MessageId,
    Status,
    ErrorCode,
    ErrorMessage,
    NumSegments,
    Price,
    PriceUnit,
    Source,
    ObservedAt,
    Applied,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MessageStatusEvents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(MessageStatusEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::MessageId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::Status)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::ErrorCode)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::ErrorMessage)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::NumSegments)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::Price)
                            .string_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::PriceUnit)
                            .string_len(8)
                            .null(),
                    )
                    // send | poll | callback | inbound
                    .col(
                        ColumnDef::new(MessageStatusEvents::Source)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::ObservedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MessageStatusEvents::Applied)
                            .boolean()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_message_status_events_message")
                            .from(MessageStatusEvents::Table, MessageStatusEvents::MessageId)
                            .to(SmsMessages::Table, SmsMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_message_status_events_message")
                    .table(MessageStatusEvents::Table)
                    .col(MessageStatusEvents::MessageId)
                    .col(MessageStatusEvents::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(MessageStatusEvents::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
