//! # smsdesk-store
//!
//! smsdesk's storage on sea-orm, for SQLite (the embedded default: a file, or `sqlite::memory:`
//! in tests) and PostgreSQL (production). A [`Store`] implements the domain's ports
//! (`MessageRepository`, `IntegrationRepository`, `RefreshLimiter`, `ApiKeyAuthenticator`,
//! `CallbackInbox`);
//! driver errors become the domain's `RepositoryError` here, and no sea-orm type appears in a
//! signature the domain sees.
//!
//! Layout:
//! - [`store`]: [`Store`], [`StoreOptions`], connecting and migrating;
//! - [`messages`]: messages, history, the bulk candidate query, conditional status writes;
//! - [`change_log`]: the history read as one log in commit order (live streams follow it), and
//!   the fleet's doorbell (`LISTEN/NOTIFY`);
//! - [`integrations`]: Twilio integrations, secrets encrypted with the [`cipher`];
//! - [`limiter`]: cool-downs claimed atomically in the database;
//! - `batches` (with `batched_writes`, `batched_finds`, `batched_claims`): on PostgreSQL, calls
//!   of one kind that arrive together share one statement; on a SQLite file, `group_commit`
//!   shares one transaction instead;
//! - [`inbox`]: status callbacks parked until their message is stored;
//! - [`idempotency`]: sends' idempotency keys, claimed atomically;
//! - [`admin`]: teams, users, API keys (issue, revoke, authenticate), secret re-encryption;
//! - [`data_migrations`]: one-off data fixes, such as decrypting stored account SIDs;
//! - [`cipher`]: AES-256-GCM for secrets at rest, with key rotation;
//! - [`error`]: [`StoreError`] and the driver-error translation;
//! - [`connection_health`]: which pooled PostgreSQL connections are pinged before use.
//!
//! **Building it into another workspace:** set `LIBSQLITE3_FLAGS=-DSQLITE_ENABLE_QPSG` as this
//! workspace's `.cargo/config.toml` does. The store works without it, but SQLite then re-prepares
//! its hottest statements on every run (see `docs/architecture.md`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), smsdesk_store::StoreError> {
//! use smsdesk_store::{SecretCipher, Store, StoreOptions};
//! use smsdesk_domain::{Plan, Role};
//!
//! let cipher = SecretCipher::from_base64_keys::<&str>(&SecretCipher::generate_key(), &[])?;
//! let store = Store::connect("sqlite://smsdesk.db?mode=rwc", StoreOptions::new(cipher)).await?;
//! store.migrate().await?;
//! let team = store.create_team("Demo", Plan::Pro).await?;
//! let user = store.create_user(team.id, "Ada", "ada@example.com", Role::Admin).await?;
//! let key = store.create_api_key(user.id).await?;
//! // `key.key` is shown once; only its hash is stored.
//! # Ok(()) }
//! ```

pub mod admin;
mod batched_claims;
mod batched_finds;
mod batched_writes;
mod batches;
#[cfg(feature = "bench-support")]
pub mod bench_support;
pub mod change_log;
pub mod cipher;
pub mod connection_health;
pub mod data_migrations;
pub mod error;
mod group_commit;
pub mod idempotency;
pub mod inbox;
pub mod integrations;
pub mod leases;
pub mod limiter;
pub mod messages;
mod schema;
pub mod store;
pub mod webhooks;

pub use admin::{IssuedApiKey, ReencryptReport, TeamRecord, UserRecord};
pub use cipher::{CipherError, SecretCipher};
pub use data_migrations::{DecryptOptions, DecryptReport, decrypt_account_sids};
pub use error::StoreError;
pub use messages::QueryPlan;
pub use store::{Backend, Store, StoreOptions};
pub use webhooks::RandomSecrets;
