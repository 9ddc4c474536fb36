//! Fresh PostgreSQL databases for suites that need the production store: one per test, created
//! on the server named by `SMSDESK_TEST_POSTGRES_URL` and dropped with the value. Without the
//! variable the suite says SKIPPED on stderr and returns.

/// A fresh, empty PostgreSQL database, dropped when this value is.
pub struct TestDatabase {
    /// The URL to give the service.
    pub url: String,
    admin_url: String,
    name: String,
}

/// A fresh database on the server named by `SMSDESK_TEST_POSTGRES_URL`, or `None` (said loudly
/// on stderr) when the variable is unset.
pub async fn fresh_postgres(test: &str) -> Option<TestDatabase> {
    let Ok(admin_url) = std::env::var("SMSDESK_TEST_POSTGRES_URL") else {
        // Straight to the process's stderr: the test harness captures `eprintln!` of passing
        // tests, and a skip must be seen.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: set SMSDESK_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run it"
        );
        return None;
    };
    let name = format!("smsdesk_rel_{}", rand::random::<u64>());
    execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    Some(TestDatabase {
        url: format!("{base}/{name}"),
        admin_url,
        name,
    })
}

/// Runs one statement on the database at `url`.
pub async fn execute(url: &str, sql: &str) {
    use sea_orm::ConnectionTrait as _;
    let db = sea_orm::Database::connect(url)
        .await
        .expect("PostgreSQL reachable");
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    db.close().await.expect("closed");
}

impl TestDatabase {
    /// Takes the database down for its clients, or brings it back: while down it refuses new
    /// connections and every open one (except the admin's own) is terminated.
    pub async fn set_reachable(&self, reachable: bool) {
        let allow = if reachable { "true" } else { "false" };
        execute(
            &self.admin_url,
            &format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
                self.name
            ),
        )
        .await;
        if !reachable {
            self.terminate_connections().await;
        }
    }

    /// Ends every client connection to the database (`pg_terminate_backend`), as a failover or
    /// a restart would; new connections are still accepted.
    pub async fn terminate_connections(&self) {
        execute(
            &self.admin_url,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.name
            ),
        )
        .await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs outside async; a short-lived thread with its own runtime does the work.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(execute(&admin_url, &sql));
        })
        .join();
    }
}
