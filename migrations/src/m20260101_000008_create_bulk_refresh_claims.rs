//! The bulk refresh cool-down, one row per (team, user): when the user's last bulk refresh was
//! granted. Claimed with a conditional upsert so that concurrent claims let exactly one through,
//! across restarts and replicas. (The per-message cool-down is `sms_messages.last_refreshed_at`.)

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum BulkRefreshClaims {
    Table,
    TeamId,
    UserId,
    LastClaimedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BulkRefreshClaims::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(BulkRefreshClaims::TeamId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BulkRefreshClaims::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BulkRefreshClaims::LastClaimedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(BulkRefreshClaims::TeamId)
                            .col(BulkRefreshClaims::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_bulk_refresh_claims_team")
                            .from(BulkRefreshClaims::Table, BulkRefreshClaims::TeamId)
                            .to(Teams::Table, Teams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_bulk_refresh_claims_user")
                            .from(BulkRefreshClaims::Table, BulkRefreshClaims::UserId)
                            .to(Users::Table, Users::Id)
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
                    .table(BulkRefreshClaims::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
