//! The storage contract on the real databases: the ports' cases of
//! `smsdesk_test_support::contract` (written once, also run on the domain's in-memory fake) and
//! the store's own cases (secrets at rest, key rotation, API keys, data migrations, query plans,
//! pool failures), each run against SQLite (a temporary file, so that concurrent writers really
//! contend) and PostgreSQL (a fresh database per test, created from `SMSDESK_TEST_POSTGRES_URL`;
//! without it the PostgreSQL variants say SKIPPED and return, or fail when CI requires them).
//!
//! One module per port, and one for what only the store promises.

use std::path::PathBuf;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, Database, Statement};
use smsdesk_domain::{Plan, Role, TeamId, UserId};
use smsdesk_store::{SecretCipher, Store, StoreOptions};
use smsdesk_test_support::contract::{ContractSubject, PortSet};

mod api_keys;
mod change_log;
mod idempotency;
mod inbox;
mod integrations;
mod leases;
mod limiter;
mod messages;
mod reconcile;
mod replicas;
mod retention;
mod store_only;
mod webhooks;

const POSTGRES_ENV: &str = "SMSDESK_TEST_POSTGRES_URL";

// ---------------------------------------------------------------------------------------------
// Test databases

enum Cleanup {
    SqliteFile(PathBuf),
    Postgres { admin_url: String, name: String },
}

/// A migrated, empty database of one backend, with its URL so a test can open more stores on it.
struct TestDb {
    url: String,
    key: String,
    store: Store,
    cleanup: Cleanup,
}

fn random_suffix() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(12)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

fn cipher(current: &str, old: &[&str]) -> SecretCipher {
    SecretCipher::from_base64_keys(current, old).expect("test keys are valid")
}

async fn open(url: &str, cipher: SecretCipher) -> Store {
    let store = Store::connect(url, StoreOptions::new(cipher))
        .await
        .expect("test database opens");
    store.migrate().await.expect("migrations apply");
    store
        .migrate()
        .await
        .expect("migrating an up-to-date database is a no-op");
    store
}

impl TestDb {
    async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("smsdesk_t_{}.db", random_suffix()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::at(url, Cleanup::SqliteFile(path)).await
    }

    async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            // Straight to the process's stderr: the harness swallows a passing test's output.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED: {POSTGRES_ENV} not set");
            return None;
        };
        let name = format!("smsdesk_t_{}", random_suffix());
        let admin = Database::connect(admin_url.as_str())
            .await
            .expect("the PostgreSQL server in SMSDESK_TEST_POSTGRES_URL is reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a test database can be created");
        admin.close().await.ok();
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = format!("{server}/{name}{query}");
        Some(Self::at(url, Cleanup::Postgres { admin_url, name }).await)
    }

    async fn at(url: String, cleanup: Cleanup) -> Self {
        let key = SecretCipher::generate_key();
        let store = open(&url, cipher(&key, &[])).await;
        Self {
            url,
            key,
            store,
            cleanup,
        }
    }

    /// Another store on the same database, with other keys.
    async fn reopen(&self, cipher: SecretCipher) -> Store {
        open(&self.url, cipher).await
    }

    /// Runs raw SQL (test set-up that the public API rightly does not offer).
    async fn raw(&self, sql: &str) {
        let db = Database::connect(self.url.as_str())
            .await
            .expect("raw connection opens");
        db.execute_unprepared(sql).await.expect("raw SQL runs");
        db.close().await.ok();
    }

    async fn raw_text(&self, sql: &str) -> Vec<String> {
        let db = Database::connect(self.url.as_str())
            .await
            .expect("raw connection opens");
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .expect("raw query runs");
        db.close().await.ok();
        rows.iter()
            .map(|row| row.try_get_by_index::<String>(0).expect("a text column"))
            .collect()
    }

    async fn finish(self) {
        self.store.close().await.ok();
        match self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    std::fs::remove_file(file).ok();
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                    admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok();
                    admin.close().await.ok();
                }
            }
        }
    }
}

/// Runs one contract case and removes its database even when the case fails.
async fn run<F>(db: TestDb, case: F)
where
    F: for<'a> FnOnce(&'a TestDb) -> futures::future::BoxFuture<'a, ()>,
{
    use futures::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(case(&db)).catch_unwind().await;
    db.finish().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[async_trait]
impl ContractSubject for TestDb {
    fn ports(&self) -> PortSet {
        PortSet::of(self.store.clone())
    }

    async fn new_team(&self, name: &str) -> TeamId {
        self.store
            .create_team(name, Plan::Pro)
            .await
            .expect("team is created")
            .id
    }

    async fn new_user(&self, team: TeamId) -> UserId {
        let email = format!("user{}@example.test", rand::random::<u64>());
        self.store
            .create_user(team, "A user", &email, Role::Member)
            .await
            .expect("user is created")
            .id
    }
}

/// One test per case and database: each `case` is an `async fn` of the module `source` taking the
/// database (`&TestDb`, or the `&dyn ContractSubject` it is).
macro_rules! on_both_databases {
    ($($source:ident)::+ => $($case:ident),* $(,)?) => {
        mod on_sqlite {
            use $($source)::+ as cases;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = crate::TestDb::sqlite().await;
                    crate::run(db, |db| Box::pin(cases::$case(db))).await;
                }
            )*
        }
        mod on_postgres {
            use $($source)::+ as cases;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(db) = crate::TestDb::postgres().await else {
                        return;
                    };
                    crate::run(db, |db| Box::pin(cases::$case(db))).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_databases;
