//! Table and column names for the query builder. They mirror the migrations in
//! `smsdesk-migrations`, which stay frozen; these follow the current schema.

use sea_orm::DeriveIden;

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Teams {
    Table,
    Id,
    Name,
    Plan,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Users {
    Table,
    Id,
    TeamId,
    Name,
    Email,
    Role,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum ApiKeys {
    Table,
    Id,
    UserId,
    Prefix,
    KeyHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
    Label,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum TwilioIntegrations {
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

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum SmsMessages {
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
    RedactedAt,
    DeliveryUnknownAt,
    Reference,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum MessageStatusEvents {
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

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum BulkRefreshClaims {
    Table,
    TeamId,
    UserId,
    LastClaimedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum ParkedCallbacks {
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

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Leases {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Replicas {
    Table,
    Id,
    AliveUntil,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum IdempotencyKeys {
    Table,
    TeamId,
    Key,
    RequestHash,
    MessageSid,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum WebhookEndpoints {
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

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum WebhookDeliveries {
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

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    AttemptedAt,
    StatusCode,
    ResponseBody,
    Error,
    DurationMs,
}
