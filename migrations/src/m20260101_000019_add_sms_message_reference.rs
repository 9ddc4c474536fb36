//! `sms_messages.reference`: the sender's own identifier for a message (≤ 128 characters), given
//! on send and searchable; null for messages sent without one and for inbound messages. The
//! index serves `GET /api/messages?reference=`: a team's messages with one reference are few, so
//! the page is read from them, not from the team's whole list.

use sea_orm_migration::prelude::*;

/// The index on `(team_id, reference)`.
pub const INDEX_NAME: &str = "idx_sms_messages_team_reference";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SmsMessages {
    Table,
    TeamId,
    Reference,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("sms_messages", "reference").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(SmsMessages::Table)
                        .add_column(
                            ColumnDef::new(SmsMessages::Reference)
                                .string_len(128)
                                .null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX_NAME)
                    .table(SmsMessages::Table)
                    .col(SmsMessages::TeamId)
                    .col(SmsMessages::Reference)
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
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SmsMessages::Table)
                    .drop_column(SmsMessages::Reference)
                    .to_owned(),
            )
            .await
    }
}
