//! `idempotency_keys`: one row per team and `Idempotency-Key` of a send: a SHA-256 of the
//! request it was first used for (never the request itself: the body stays in `sms_messages`
//! alone, where retention can redact it), the SID of the message it created once it completed,
//! and until when the row holds (a running request's lock, then the answer's 24 hours). Claimed
//! with one conditional upsert, so concurrent requests with one key, on any replicas, get one
//! claim.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    TeamId,
    Key,
    RequestHash,
    MessageSid,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(IdempotencyKeys::TeamId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::Key)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::RequestHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::MessageSid)
                            .string_len(34)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::TeamId)
                            .col(IdempotencyKeys::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_idempotency_keys_team")
                            .from(IdempotencyKeys::Table, IdempotencyKeys::TeamId)
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
                    .table(IdempotencyKeys::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
