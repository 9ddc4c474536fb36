//! Delivery webhooks: `webhook_endpoints` (a team's URLs, the events each wants, its signing
//! secrets encrypted like every secret), `webhook_deliveries` (the outbox: one row per event and
//! endpoint, written in the transaction of the change it tells of) and `webhook_attempts` (each
//! POST and its answer, the body cut to 1 KiB).
//!
//! The partial index `(next_attempt_at, id) WHERE status = 'pending'` is what workers claim
//! from, so a claim reads only due rows however many deliveries were ever made; the partial
//! index `(endpoint_id, message_id, id) WHERE status = 'pending'` answers "is an earlier
//! delivery of this message still pending?" (deliveries of a message are made in order).

use sea_orm_migration::prelude::*;

/// The claim index on `webhook_deliveries`.
pub const DUE_INDEX: &str = "idx_webhook_deliveries_due";
/// The per-message order index on `webhook_deliveries`.
pub const ORDER_INDEX: &str = "idx_webhook_deliveries_message_order";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    TeamId,
    Url,
    WantsStatusChanged,
    WantsReceived,
    Enabled,
    DisabledReason,
    Secret,
    PreviousSecret,
    PreviousSecretExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    EventId,
    MessageId,
    EventType,
    Status,
    AttemptCount,
    NextAttemptAt,
    LockedUntil,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    AttemptedAt,
    StatusCode,
    ResponseBody,
    Error,
    DurationMs,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MessageStatusEvents {
    Table,
    Id,
}

fn id<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn time<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .if_not_exists()
                    .col(id(WebhookEndpoints::Id))
                    .col(
                        ColumnDef::new(WebhookEndpoints::TeamId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                    .col(
                        ColumnDef::new(WebhookEndpoints::WantsStatusChanged)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::WantsReceived)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::Enabled)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::DisabledReason)
                            .string_len(32)
                            .null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::Secret).text().not_null())
                    .col(
                        ColumnDef::new(WebhookEndpoints::PreviousSecret)
                            .text()
                            .null(),
                    )
                    .col(time(WebhookEndpoints::PreviousSecretExpiresAt).null())
                    .col(time(WebhookEndpoints::CreatedAt).not_null())
                    .col(time(WebhookEndpoints::UpdatedAt).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_endpoints_team")
                            .from(WebhookEndpoints::Table, WebhookEndpoints::TeamId)
                            .to(Teams::Table, Teams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_webhook_endpoints_team")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::TeamId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(id(WebhookDeliveries::Id))
                    .col(
                        ColumnDef::new(WebhookDeliveries::EndpointId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::EventId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::MessageId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::EventType)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::AttemptCount)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(time(WebhookDeliveries::NextAttemptAt).null())
                    .col(time(WebhookDeliveries::LockedUntil).null())
                    .col(time(WebhookDeliveries::CreatedAt).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_endpoint")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                            .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_event")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EventId)
                            .to(MessageStatusEvents::Table, MessageStatusEvents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .unique()
                    .name("idx_webhook_deliveries_endpoint_event")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::EventId)
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {DUE_INDEX} ON webhook_deliveries \
                 (next_attempt_at, id) WHERE status = 'pending'"
            ))
            .await?;
        connection
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {ORDER_INDEX} ON webhook_deliveries \
                 (endpoint_id, message_id, id) WHERE status = 'pending'"
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .if_not_exists()
                    .col(id(WebhookAttempts::Id))
                    .col(
                        ColumnDef::new(WebhookAttempts::DeliveryId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(time(WebhookAttempts::AttemptedAt).not_null())
                    .col(ColumnDef::new(WebhookAttempts::StatusCode).integer().null())
                    .col(
                        ColumnDef::new(WebhookAttempts::ResponseBody)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookAttempts::Error).text().null())
                    .col(
                        ColumnDef::new(WebhookAttempts::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_attempts_delivery")
                            .from(WebhookAttempts::Table, WebhookAttempts::DeliveryId)
                            .to(WebhookDeliveries::Table, WebhookDeliveries::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .col(WebhookAttempts::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "webhook_attempts",
            "webhook_deliveries",
            "webhook_endpoints",
        ] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
