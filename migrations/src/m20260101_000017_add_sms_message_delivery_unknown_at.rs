//! `sms_messages.delivery_unknown_at`: when the message was declared stuck (outbound, not final
//! long past the stuck limit, so its delivery is unknown). Null until then, and again after any
//! later change: a real receipt that arrives late still applies and clears it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SmsMessages {
    Table,
    DeliveryUnknownAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager
            .has_column("sms_messages", "delivery_unknown_at")
            .await?
        {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(SmsMessages::Table)
                    .add_column(
                        ColumnDef::new(SmsMessages::DeliveryUnknownAt)
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
                    .drop_column(SmsMessages::DeliveryUnknownAt)
                    .to_owned(),
            )
            .await
    }
}
