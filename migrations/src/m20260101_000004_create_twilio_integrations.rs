//! Twilio integrations, one per team. The account SID is a public identifier, stored in
//! plaintext and unique so inbound webhooks can be routed to their team; the auth token and the
//! optional API key secret are stored encrypted (`v1:` + base64 of nonce and ciphertext).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TwilioIntegrations {
    Table,
    Id,
    TeamId,
    AccountSid,
    AuthTokenEncrypted,
    ApiKeySid,
    ApiKeySecretEncrypted,
    SenderNumber,
    MessagingServiceSid,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TwilioIntegrations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(TwilioIntegrations::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TwilioIntegrations::TeamId)
                            .big_integer()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(TwilioIntegrations::AccountSid)
                            .string_len(34)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(TwilioIntegrations::AuthTokenEncrypted)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TwilioIntegrations::ApiKeySid)
                            .string_len(34)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TwilioIntegrations::ApiKeySecretEncrypted)
                            .text()
                            .null(),
                    )
                    // Exactly one of the two sender columns is set (enforced by the store).
                    .col(
                        ColumnDef::new(TwilioIntegrations::SenderNumber)
                            .string_len(16)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TwilioIntegrations::MessagingServiceSid)
                            .string_len(34)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TwilioIntegrations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TwilioIntegrations::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_twilio_integrations_team")
                            .from(TwilioIntegrations::Table, TwilioIntegrations::TeamId)
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
                    .table(TwilioIntegrations::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
