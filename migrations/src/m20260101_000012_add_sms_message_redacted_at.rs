//! `sms_messages.redacted_at`: when retention emptied the message's body (and masked its
//! numbers, if configured). Null until then; the status history is never redacted.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SmsMessages {
    Table,
    RedactedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SmsMessages::Table)
                    .add_column(
                        ColumnDef::new(SmsMessages::RedactedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SmsMessages::Table)
                    .drop_column(SmsMessages::RedactedAt)
                    .to_owned(),
            )
            .await
    }
}
