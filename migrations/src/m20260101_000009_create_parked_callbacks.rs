//! Status callbacks that arrived before their message was stored, parked until the message
//! appears (then taken and replayed) or until they are too old (then discarded). One row per
//! (team, SID, status): Twilio retries callbacks, and a retry of a parked one is kept once.

use sea_orm_migration::prelude::*;

/// The unique index that keeps one parked callback per (team, SID, status).
pub const UNIQUE_INDEX_NAME: &str = "idx_parked_callbacks_team_sid_status";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ParkedCallbacks {
    Table,
    Id,
    TeamId,
    MessageSid,
    Status,
    ErrorCode,
    ErrorMessage,
    NumSegments,
    Price,
    PriceUnit,
    Source,
    ObservedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ParkedCallbacks::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ParkedCallbacks::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ParkedCallbacks::TeamId)
                            .big_integer()
                            .not_null(),
                    )
                    // Not a foreign key: the message does not exist yet, which is the point.
                    .col(
                        ColumnDef::new(ParkedCallbacks::MessageSid)
                            .string_len(34)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ParkedCallbacks::Status)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ParkedCallbacks::ErrorCode)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(ParkedCallbacks::ErrorMessage).text().null())
                    .col(
                        ColumnDef::new(ParkedCallbacks::NumSegments)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(ParkedCallbacks::Price).string_len(32).null())
                    .col(
                        ColumnDef::new(ParkedCallbacks::PriceUnit)
                            .string_len(8)
                            .null(),
                    )
                    // send | poll | callback | inbound (in practice always callback).
                    .col(
                        ColumnDef::new(ParkedCallbacks::Source)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ParkedCallbacks::ObservedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_parked_callbacks_team")
                            .from(ParkedCallbacks::Table, ParkedCallbacks::TeamId)
                            .to(Teams::Table, Teams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(UNIQUE_INDEX_NAME)
                    .table(ParkedCallbacks::Table)
                    .col(ParkedCallbacks::TeamId)
                    .col(ParkedCallbacks::MessageSid)
                    .col(ParkedCallbacks::Status)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The periodic discard deletes by age across all teams.
        manager
            .create_index(
                Index::create()
                    .name("idx_parked_callbacks_observed_at")
                    .table(ParkedCallbacks::Table)
                    .col(ParkedCallbacks::ObservedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ParkedCallbacks::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
