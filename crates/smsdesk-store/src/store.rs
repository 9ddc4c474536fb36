//! The [`Store`]: its connection pools, the secret cipher, and the helpers every repository uses.
//!
//! A SQLite file gets two pools: readers (`query_only`, several connections, reading in
//! parallel under WAL) and one writer connection every write goes through. Writers then queue in
//! the pool, in order and without sleeping, instead of contending for SQLite's write lock on its
//! busy timeout (which retries by sleeping), and a read never waits for a write. PostgreSQL and an
//! in-memory SQLite database use one pool for both.

use std::sync::Arc;
use std::time::Duration;

use chrono::SubsecRound;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, StatementBuilder, TransactionOptions, TransactionTrait,
};
use smsdesk_domain::Timestamp;
use smsdesk_domain::ports::{FoundMessage, WriteOutcome};
use smsdesk_migrations::{Migrator, MigratorTrait};

use crate::batched_finds::FindCall;
use crate::batched_writes::SingleWrite;
use crate::batches::Batcher;
use crate::cipher::SecretCipher;
use crate::error::{StoreError, store_err};
use crate::group_commit::GroupCommit;
use crate::limiter::MessageClaim;

/// How long a SQLite writer waits for another writer's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How to connect.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Encrypts and decrypts integration secrets.
    pub cipher: Arc<SecretCipher>,
    /// Pool size. PostgreSQL default 10; a SQLite file default 4 readers (plus its one writer);
    /// `sqlite::memory:` always uses one shared connection.
    pub max_connections: Option<u32>,
    /// How long a caller waits for a pooled connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
}

impl StoreOptions {
    /// Default pool settings with this cipher.
    pub fn new(cipher: SecretCipher) -> Self {
        Self {
            cipher: Arc::new(cipher),
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file, or in memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// What shares statements on PostgreSQL ([`crate::batches`]).
pub(crate) struct PostgresBatches {
    /// Single writes: [`crate::batched_writes`].
    pub(crate) writes: Batcher<SingleWrite, WriteOutcome>,
    /// Reads of one message by SID: [`crate::batched_finds`].
    pub(crate) finds: Batcher<FindCall, Option<FoundMessage>>,
    /// Single-message cool-down claims: [`crate::batched_claims`].
    pub(crate) claims: Batcher<MessageClaim, crate::limiter::Claimed>,
}

impl PostgresBatches {
    fn new() -> Self {
        Self {
            writes: crate::batched_writes::batcher(),
            finds: crate::batched_finds::batcher(),
            claims: crate::batched_claims::batcher(),
        }
    }
}

/// smsdesk's storage: implements `MessageRepository`, `IntegrationRepository`, `RefreshLimiter`,
/// `ApiKeyAuthenticator` and `CallbackInbox`, plus the administrative functions. Cheap to clone (the pool and
/// the cipher are shared).
#[derive(Clone)]
pub struct Store {
    /// Reads. On a SQLite file, `query_only` connections: a write sent here fails loudly.
    pub(crate) reader: DatabaseConnection,
    /// Writes (and transactions that write): one connection on a SQLite file, else `reader`.
    writer: DatabaseConnection,
    /// On a SQLite file, concurrent status writes share a transaction ([`crate::group_commit`]).
    group_commit: Option<Arc<GroupCommit>>,
    /// On PostgreSQL, concurrent single writes, reads by SID and cool-down claims share statements.
    batches: Option<Arc<PostgresBatches>>,
    pub(crate) cipher: Arc<SecretCipher>,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `url`: `sqlite://path/to/file.db?mode=rwc` (created if missing),
    /// `sqlite::memory:` (tests), or `postgres://user@host:port/db`. Does not migrate; call
    /// [`Store::migrate`].
    ///
    /// SQLite files are opened in WAL mode with a busy timeout, so concurrent writers wait for
    /// each other instead of failing; foreign keys are enforced.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] for another scheme; [`StoreError::Unavailable`] when the
    /// database cannot be opened.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(StoreError::UnsupportedUrl(format!("scheme '{scheme}'")));
        };
        let base = |max_connections: u32| {
            let mut connect = ConnectOptions::new(url.to_owned());
            connect
                .acquire_timeout(options.acquire_timeout)
                .connect_timeout(options.acquire_timeout)
                .max_connections(max_connections)
                // No ping on every acquire: on PostgreSQL only a connection that may have died
                // is pinged ([`crate::connection_health`]); a SQLite connection is a file handle
                // no server can drop, and its ping would be one more hand-off to the
                // connection's thread and back per query.
                .test_before_acquire(false)
                .map_sqlx_postgres_before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if crate::connection_health::suspect(meta.idle_for) {
                            // A failed ping discards the connection; the pool tries another.
                            sea_orm::sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .sqlx_logging(false);
            connect
        };
        let connect = |connect: ConnectOptions| async move {
            Database::connect(connect)
                .await
                .map_err(|err| StoreError::Unavailable(err.to_string()))
        };
        let file = backend == Backend::Sqlite && !is_memory(url);
        let (reader, writer) = match backend {
            Backend::Sqlite if is_memory(url) => {
                // Each connection to an in-memory database is its own database: keep exactly one,
                // forever, for reads and writes alike.
                let mut options = base(1);
                options
                    .min_connections(1)
                    .idle_timeout(None::<Duration>)
                    .max_lifetime(None::<Duration>);
                let db = connect(options).await?;
                (db.clone(), db)
            }
            Backend::Sqlite => {
                // The writer first: it creates the file and puts it in WAL mode, which lasts.
                let mut writer = base(1);
                writer.map_sqlx_sqlite_opts(|opts| {
                    opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                });
                let writer = connect(writer).await?;
                let mut readers = base(options.max_connections.unwrap_or(4));
                readers.map_sqlx_sqlite_opts(|opts| {
                    opts.busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                        .pragma("query_only", "ON")
                });
                (connect(readers).await?, writer)
            }
            Backend::Postgres => {
                let db = connect(base(options.max_connections.unwrap_or(10))).await?;
                (db.clone(), db)
            }
        };
        let store = Self {
            reader,
            writer,
            group_commit: file.then(Arc::default),
            batches: (backend == Backend::Postgres).then(|| Arc::new(PostgresBatches::new())),
            cipher: options.cipher,
            backend,
        };
        if store.sqlite_keeps_plans().await? == Some(false) {
            tracing::warn!(
                "this binary's SQLite was built without SQLITE_ENABLE_QPSG: it re-prepares its \
                 hottest statements on every run; build with \
                 LIBSQLITE3_FLAGS=-DSQLITE_ENABLE_QPSG (docs/operations.md)"
            );
        }
        Ok(store)
    }

    /// Whether this store's SQLite keeps a statement's plan whatever its bound values (built
    /// with `SQLITE_ENABLE_QPSG`; see `docs/architecture.md`). `None` on PostgreSQL.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database does not answer.
    pub async fn sqlite_keeps_plans(&self) -> Result<Option<bool>, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let rows = self
            .reader
            .query_all_raw(sea_orm::Statement::from_string(
                self.reader.get_database_backend(),
                "PRAGMA compile_options",
            ))
            .await
            .map_err(store_err)?;
        Ok(Some(rows.iter().any(|row| {
            row.try_get_by_index::<String>(0)
                .is_ok_and(|option| option == "ENABLE_QPSG")
        })))
    }

    /// Applies every pending migration; a no-op on an up-to-date database.
    ///
    /// # Errors
    /// [`StoreError::Migration`] naming the failure.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.writer, None)
            .await
            .map_err(|err| StoreError::Migration(err.to_string()))
    }

    /// Checks the database answers (for readiness probes).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        // Both pools: a store that can read but not write is not ready.
        for pool in [&self.reader, &self.writer] {
            pool.ping()
                .await
                .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        }
        Ok(())
    }

    /// Closes the pools; further calls fail as unavailable.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if closing failed.
    pub async fn close(self) -> Result<(), StoreError> {
        // Shared pools (PostgreSQL, memory) close once; closing a clone again is harmless.
        self.writer.close().await.map_err(store_err)?;
        self.reader.close().await.map_err(store_err)
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn db_backend(&self) -> DbBackend {
        self.reader.get_database_backend()
    }

    /// Starts a write transaction. On SQLite it takes the write lock at `BEGIN` (IMMEDIATE), so a
    /// transaction that reads before it writes waits on the busy timeout instead of failing
    /// when another writer commits in between.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: match self.backend {
                Backend::Sqlite => Some(SqliteTransactionMode::Immediate),
                Backend::Postgres => None,
            },
            ..TransactionOptions::default()
        };
        self.writer.begin_with_options(options).await
    }

    /// The group commit of a SQLite file, if this store has one.
    pub(crate) fn group_commit(&self) -> Option<&GroupCommit> {
        self.group_commit.as_deref()
    }

    /// On PostgreSQL, the batchers of single writes, reads by SID and single-message claims
    /// ([`crate::batches`]).
    pub(crate) fn batches(&self) -> Option<&PostgresBatches> {
        self.batches.as_deref()
    }

    /// On PostgreSQL, how many batches of calls ran as one statement and how many of those
    /// statements failed (their calls then ran alone or got the error), over every kind since
    /// this store was connected; `None` elsewhere. Operators and tests read it to know the
    /// batch statements work.
    #[must_use]
    pub fn batch_counts(&self) -> Option<(u64, u64)> {
        self.batches().map(|batches| {
            [
                batches.writes.counts(),
                batches.finds.counts(),
                batches.claims.counts(),
            ]
            .into_iter()
            .fold((0, 0), |(run, failed), (r, f)| (run + r, failed + f))
        })
    }

    /// The connection every write goes through (see the module's documentation).
    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }
}

/// Whether `url` names an in-memory SQLite database (each connection its own database).
fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Timestamps are stored with microsecond precision (PostgreSQL's), on both databases, so a value
/// read back equals the value written.
pub(crate) fn stored_time(at: Timestamp) -> Timestamp {
    at.trunc_subsecs(6)
}

/// `period` after `now`, stored as [`stored_time`]: the expiry of a lease, a check-in or an
/// idempotency key.
pub(crate) fn stored_until(now: Timestamp, period: Duration) -> Timestamp {
    stored_time(now + chrono::Duration::from_std(period).unwrap_or_default())
}

/// Runs `statement` and returns how many rows it changed.
pub(crate) async fn execute<C: ConnectionTrait, S: StatementBuilder>(
    conn: &C,
    statement: &S,
) -> Result<u64, DbErr> {
    Ok(conn.execute(statement).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::{Store, StoreOptions};
    use crate::SecretCipher;

    #[tokio::test]
    async fn the_bundled_sqlite_keeps_a_statements_plan_whatever_its_bound_values() {
        // The query planner stability guarantee (`.cargo/config.toml`): without it SQLite
        // re-prepares a cached statement on each run whose bound values could change its plan,
        // which every `LIMIT ?` does (docs/benchmarks-hot-path.md, step 11).
        let cipher = SecretCipher::from_base64_keys::<&str>(&SecretCipher::generate_key(), &[])
            .expect("a fresh key");
        let store = Store::connect("sqlite::memory:", StoreOptions::new(cipher))
            .await
            .expect("an in-memory store");
        assert_eq!(
            store.sqlite_keeps_plans().await.expect("compile options"),
            Some(true),
            "SQLite was built without SQLITE_ENABLE_QPSG (is LIBSQLITE3_FLAGS set?)"
        );
    }
}
