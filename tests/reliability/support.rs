//! What the reliability suites share beyond `api/helpers.rs`: signed webhooks, the demo team's
//! Twilio credentials, outcome lookups, and fresh PostgreSQL databases.

use reqwest::{Response, StatusCode};
use serde_json::Value;
use smsdesk_domain::ports::IntegrationRepository;
use smsdesk_domain::secrecy::ExposeSecret;
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_domain::{MessageStatus, TeamId};

use crate::helpers::TestApp;

/// The path of Twilio's inbound-SMS webhook.
pub const RECEIVE_PATH: &str = "/api/integrations/twilio/sms/receive";

/// A team's Twilio account SID and auth token, as stored.
pub async fn credentials(app: &TestApp, team: TeamId) -> (String, String) {
    let integration = app
        .store
        .for_team(team)
        .await
        .expect("store up")
        .expect("the team has an integration");
    (
        integration.credentials.account_sid.to_string(),
        integration.auth_token.expose_secret().to_owned(),
    )
}

/// `params` as an `application/x-www-form-urlencoded` body.
pub fn form_body(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The signature Twilio would put on a form webhook to `path` of this app.
pub fn sign(app: &TestApp, path: &str, token: &str, params: &[(String, String)]) -> String {
    smsdesk_twilio::compute_signature(token, &app.url(path), params)
}

/// The parameters of a status callback.
pub fn callback_params(account: &str, sid: &str, status: &str) -> Vec<(String, String)> {
    vec![
        ("AccountSid".to_owned(), account.to_owned()),
        ("MessageSid".to_owned(), sid.to_owned()),
        ("MessageStatus".to_owned(), status.to_owned()),
    ]
}

/// Posts a form webhook to `path` with `signature` (none: no header).
pub async fn post_webhook(
    app: &TestApp,
    path: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> Response {
    let mut request = app
        .http
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(params));
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    request.send().await.expect("request sent")
}

/// Posts a correctly signed status callback; returns the HTTP status.
pub async fn signed_callback(
    app: &TestApp,
    account: &str,
    token: &str,
    sid: &str,
    status: &str,
) -> StatusCode {
    let params = callback_params(account, sid, status);
    let signature = sign(app, STATUS_CALLBACK_PATH, token, &params);
    post_webhook(app, STATUS_CALLBACK_PATH, &params, Some(&signature))
        .await
        .status()
}

/// The stored status of `sid` as the API shows it.
pub async fn stored_status(app: &TestApp, sid: &str) -> String {
    let message: Value = app
        .get_message(&app.api_key, sid)
        .await
        .json()
        .await
        .expect("JSON");
    message["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no status in {message}"))
        .to_owned()
}

/// A status's place in the delivery order (`None` for unordered ones).
pub fn rank(status: &str) -> Option<u8> {
    MessageStatus::parse(status).rank()
}

/// The outcome for `sid` in a refresh answer.
pub fn outcome_of(body: &Value, sid: &str) -> Value {
    let matching: Vec<&Value> = body["outcomes"]
        .as_array()
        .unwrap_or_else(|| panic!("no outcomes in {body}"))
        .iter()
        .filter(|o| o["sid"] == sid)
        .collect();
    assert_eq!(matching.len(), 1, "exactly one outcome for {sid} in {body}");
    matching[0].clone()
}

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
