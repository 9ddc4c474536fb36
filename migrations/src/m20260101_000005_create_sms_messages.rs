//! SMS messages. The SID is Twilio's and unique across all teams. `account_sid` is text wide
//! enough for an encrypted value, because older deployments stored it encrypted; the
//! `decrypt-account-sids` data migration turns such values back into plaintext.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SmsMessages {
    Table,
    Id,
    Sid,
    TeamId,
    Direction,
    FromAddress,
    ToAddress,
    Body,
    Status,
    ErrorCode,
    ErrorMessage,
    NumSegments,
    Price,
    PriceUnit,
    AccountSid,
    CreatedAt,
    UpdatedAt,
    LastRefreshedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SmsMessages::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SmsMessages::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SmsMessages::Sid)
                            .string_len(34)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(SmsMessages::TeamId).big_integer().not_null())
                    .col(
                        ColumnDef::new(SmsMessages::Direction)
                            .string_len(20)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SmsMessages::FromAddress)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SmsMessages::ToAddress)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SmsMessages::Body).text().not_null())
                    // Twilio may invent statuses; they are kept verbatim, so no enum here.
                    .col(
                        ColumnDef::new(SmsMessages::Status)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SmsMessages::ErrorCode).big_integer().null())
                    .col(ColumnDef::new(SmsMessages::ErrorMessage).text().null())
                    .col(
                        ColumnDef::new(SmsMessages::NumSegments)
                            .big_integer()
                            .null(),
                    )
                    // Twilio's decimal string, kept as text so it is never rounded.
                    .col(ColumnDef::new(SmsMessages::Price).string_len(32).null())
                    .col(ColumnDef::new(SmsMessages::PriceUnit).string_len(8).null())
                    .col(ColumnDef::new(SmsMessages::AccountSid).text().not_null())
                    .col(
                        ColumnDef::new(SmsMessages::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SmsMessages::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SmsMessages::LastRefreshedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sms_messages_team")
                            .from(SmsMessages::Table, SmsMessages::TeamId)
                            .to(Teams::Table, Teams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SmsMessages::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
