//! # smsdesk-migrations
//!
//! smsdesk's database schema as sea-orm migrations, for SQLite and PostgreSQL alike. One file per
//! migration, applied in name order and recorded in `seaql_migrations`, so running
//! [`Migrator`]'s `up` again on a migrated database does nothing. Every statement also says
//! `IF NOT EXISTS`, so a half-applied schema can be completed.
//!
//! Layout (tables in dependency order):
//! - `teams` (plan) and `users` (team, role);
//! - `api_keys` (a SHA-256 hash and a visible prefix, never the key);
//! - `twilio_integrations` (one per team; account SID in plaintext, secrets encrypted);
//! - `sms_messages`, then the composite index the bulk refresh query uses, in its own migration;
//! - `message_status_events` (every observation of a status, applied or not);
//! - `bulk_refresh_claims` (the per-user bulk refresh cool-down);
//! - `parked_callbacks` (status callbacks that beat their message into the store);
//! - the list index on `sms_messages`, in the list's own order (newest first per team);
//! - later: API key labels, redaction, `leases`, `replicas`, and the history's log order
//!   (`commit_tx` and the log index, which live streams follow across processes), and when a
//!   stuck message's delivery became unknown; `idempotency_keys` of sends; delivery webhooks;
//!   the history's `(message_id, source, status)` index for the duplicate-callback check.
//!
//! Run it with `Migrator::up(&db, None)` (the store's `migrate()` does).

pub use sea_orm_migration::prelude::*;

mod m20260101_000001_create_teams;
mod m20260101_000002_create_users;
mod m20260101_000003_create_api_keys;
mod m20260101_000004_create_twilio_integrations;
mod m20260101_000005_create_sms_messages;
mod m20260101_000006_add_sms_message_composite_index;
mod m20260101_000007_create_message_status_events;
mod m20260101_000008_create_bulk_refresh_claims;
mod m20260101_000009_create_parked_callbacks;
mod m20260101_000010_add_sms_message_list_index;
mod m20260101_000011_add_api_key_label;
mod m20260101_000012_add_sms_message_redacted_at;
mod m20260101_000013_create_leases;
mod m20260101_000014_add_unredacted_index;
mod m20260101_000015_create_replicas;
mod m20260101_000016_add_status_event_log_order;
mod m20260101_000017_add_sms_message_delivery_unknown_at;
mod m20260101_000018_create_idempotency_keys;
mod m20260101_000019_add_sms_message_reference;
mod m20260101_000020_create_webhooks;
mod m20260101_000021_add_status_event_source_index;

/// The name of the composite index `(team_id, direction, status, created_at)` on `sms_messages`,
/// built for the bulk refresh query.
pub const SMS_MESSAGE_COMPOSITE_INDEX: &str =
    m20260101_000006_add_sms_message_composite_index::INDEX_NAME;

/// The name of the list index `(team_id, created_at, sid, direction, status)` on `sms_messages`:
/// the message list's order, so a page needs no sort whatever its filters.
pub const SMS_MESSAGE_LIST_INDEX: &str = m20260101_000010_add_sms_message_list_index::INDEX_NAME;

/// The partial index webhook workers claim due deliveries from.
pub const WEBHOOK_DUE_INDEX: &str = m20260101_000020_create_webhooks::DUE_INDEX;

/// The partial index that keeps a message's deliveries in order.
pub const WEBHOOK_ORDER_INDEX: &str = m20260101_000020_create_webhooks::ORDER_INDEX;

/// The name of the index on `sms_messages (team_id, reference)`.
pub const SMS_MESSAGE_REFERENCE_INDEX: &str =
    m20260101_000019_add_sms_message_reference::INDEX_NAME;

/// The change log's index `(commit_tx, id) WHERE applied` on `message_status_events`, which
/// live followers read in order.
pub const CHANGE_LOG_INDEX: &str = m20260101_000016_add_status_event_log_order::INDEX_NAME;

/// The index `(message_id, source, status)` on `message_status_events` that finds a status a
/// source already reported (a retried callback) in one probe.
pub const STATUS_EVENT_SOURCE_INDEX: &str =
    m20260101_000021_add_status_event_source_index::INDEX_NAME;

/// The name of the unique index `(team_id, message_sid, status)` on `parked_callbacks`.
pub const PARKED_CALLBACK_UNIQUE_INDEX: &str =
    m20260101_000009_create_parked_callbacks::UNIQUE_INDEX_NAME;

/// Every migration of smsdesk, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_create_teams::Migration),
            Box::new(m20260101_000002_create_users::Migration),
            Box::new(m20260101_000003_create_api_keys::Migration),
            Box::new(m20260101_000004_create_twilio_integrations::Migration),
            Box::new(m20260101_000005_create_sms_messages::Migration),
            Box::new(m20260101_000006_add_sms_message_composite_index::Migration),
            Box::new(m20260101_000007_create_message_status_events::Migration),
            Box::new(m20260101_000008_create_bulk_refresh_claims::Migration),
            Box::new(m20260101_000009_create_parked_callbacks::Migration),
            Box::new(m20260101_000010_add_sms_message_list_index::Migration),
            Box::new(m20260101_000011_add_api_key_label::Migration),
            Box::new(m20260101_000012_add_sms_message_redacted_at::Migration),
            Box::new(m20260101_000013_create_leases::Migration),
            Box::new(m20260101_000014_add_unredacted_index::Migration),
            Box::new(m20260101_000015_create_replicas::Migration),
            Box::new(m20260101_000016_add_status_event_log_order::Migration),
            Box::new(m20260101_000017_add_sms_message_delivery_unknown_at::Migration),
            Box::new(m20260101_000018_create_idempotency_keys::Migration),
            Box::new(m20260101_000019_add_sms_message_reference::Migration),
            Box::new(m20260101_000020_create_webhooks::Migration),
            Box::new(m20260101_000021_add_status_event_source_index::Migration),
        ]
    }
}
