//! The whole application for end-to-end suites: [`spawn_app`] builds `smsdesk::Application` on
//! port 0 with its own SQLite file (or another database) and the built-in Twilio simulator, and
//! [`TestApp`] talks to it over HTTP as a user of the API would. Beside it: signed Twilio
//! webhooks, outcome lookups, and fresh PostgreSQL databases ([`fresh_postgres`]).

use std::sync::Arc;

use reqwest::{Response, StatusCode};
use serde_json::Value;
use smsdesk::{Application, Environment, LogFormat, Settings};
use smsdesk_client::{Client, MessageDto, SendSmsDto};
use smsdesk_domain::ports::{
    IntegrationRepository, MessageQuery, MessageRepository, NewIntegration, Sender,
};
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_domain::{AccountSid, MessageSid, MessageStatus, PhoneNumber, Plan, Role, TeamId};
use smsdesk_store::Store;
use smsdesk_twilio_sim::{SimAccount, SimHandle};

pub use crate::postgres::{TestDatabase, execute, fresh_postgres};

/// A running service and what a test needs to steer and inspect it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The demo team's (Pro plan, admin) API key.
    pub api_key: String,
    /// The Twilio simulator the service talks to.
    pub sim: Arc<SimHandle>,
    /// The service's store, to seed and inspect.
    pub store: Store,
    /// A client for the service.
    pub http: reqwest::Client,
    // Keeps the data directory alive for the test's duration.
    _data_dir: tempfile::TempDir,
}

/// Settings for a test: port 0, a fresh data directory, the simulator frozen (tests move
/// messages with `sim.set_status`), and a generous edge rate limit.
pub fn test_settings(data_dir: &std::path::Path) -> Settings {
    let generous = std::num::NonZeroU32::new(100_000).expect("non-zero");
    Settings {
        environment: Environment::Development,
        bind: "127.0.0.1:0".parse().expect("valid address"),
        data_dir: data_dir.to_path_buf(),
        database_url: None,
        encryption_key: None,
        twilio_base_url: None,
        simulator_speed: 0.0,
        rate_limit_per_key: generous,
        rate_limit_per_key_burst: generous,
        rate_limit_per_ip: generous,
        rate_limit_per_ip_burst: generous,
        log_format: LogFormat::Pretty,
        ..Settings::default()
    }
}

/// Builds and starts the service in the background.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with the test settings adjusted by `configure` first (another database,
/// production mode, other cool-downs). In production mode the service needs a real Twilio and an
/// encryption key, so a simulator is started beside it and named as Twilio's base URL (unless
/// `configure` named another, e.g. a proxy in front of `sim`); and as no
/// demo team is seeded there (nor when the database already has one), `api_key` is then a new
/// Pro team's admin key.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(None, configure).await
}

/// One replica of a fleet in production mode: Twilio is `sim`, shared with the other replicas,
/// and `configure` names the shared database and encryption key. The replica's `api_key` is a
/// new Pro team's admin key, whose account is registered on `sim`.
pub async fn spawn_replica(sim: Arc<SimHandle>, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(Some(sim), |settings| {
        settings.environment = Environment::Production;
        configure(settings);
    })
    .await
}

async fn spawn(
    shared_sim: Option<Arc<SimHandle>>,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let mut settings = test_settings(data_dir.path());
    configure(&mut settings);
    let outside_sim = match shared_sim {
        Some(sim) => {
            settings.twilio_base_url = Some(sim.base_url().to_owned());
            Some(sim)
        }
        None if settings.environment == Environment::Production => {
            let sim = smsdesk_twilio_sim::SimServer::start(smsdesk_twilio_sim::SimConfig {
                speed: 0.0,
                ..smsdesk_twilio_sim::SimConfig::default()
            })
            .await
            .expect("the simulator starts");
            // A test may put something (a faulty proxy) between the service and the simulator.
            if settings.twilio_base_url.is_none() {
                settings.twilio_base_url = Some(sim.base_url().to_owned());
            }
            Some(Arc::new(sim))
        }
        None => None,
    };
    if settings.environment == Environment::Production && settings.encryption_key.is_none() {
        settings.encryption_key = Some(smsdesk_store::SecretCipher::generate_key());
    }
    let app = Application::build(settings)
        .await
        .expect("the application starts");
    let address = format!("http://{}", app.addr());
    let demo_key = app.demo_api_key().map(str::to_owned);
    let sim = outside_sim.unwrap_or_else(|| app.simulator().expect("the built-in simulator runs"));
    let store = app.store().clone();
    tokio::spawn(app.run_until_stopped());
    let mut test_app = TestApp {
        address,
        api_key: String::new(),
        sim,
        store,
        http: reqwest::Client::new(),
        _data_dir: data_dir,
    };
    test_app.api_key = match demo_key {
        Some(key) => key,
        None => test_app.new_team("Operations", Plan::Pro).await.1,
    };
    test_app
}

impl TestApp {
    /// A client for a service already running at `address` (another process, say) over
    /// `store`'s database and `sim`, with no API key yet.
    pub fn attach(address: String, sim: Arc<SimHandle>, store: Store) -> Self {
        Self {
            address,
            api_key: String::new(),
            sim,
            store,
            http: reqwest::Client::new(),
            _data_dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The directory holding this service's SQLite database (unless another URL was set).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// The service's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The typed client, as the demo team's admin.
    pub fn client(&self) -> Client {
        self.client_with(&self.api_key)
    }

    /// The typed client with another API key.
    pub fn client_with(&self, api_key: &str) -> Client {
        Client::with_http(self.http.clone(), &self.address, api_key).expect("the service's URL")
    }

    /// Sends an SMS as the demo team through the typed client; returns the stored message.
    pub async fn send(&self, to: &str, body: &str) -> MessageDto {
        let request = SendSmsDto {
            to: to.to_owned(),
            body: body.to_owned(),
            from: None,
            messaging_service_sid: None,
            reference: None,
        };
        self.client()
            .send_sms(&request, None)
            .await
            .expect("send should succeed")
            .message
    }

    /// The value of metric `name` (an unlabelled one) as `/metrics` serves it now.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
    }

    /// `POST …/refresh-status?messageSid=` with `key`.
    pub async fn refresh_one(&self, key: &str, sid: &str) -> Response {
        self.http
            .post(self.url(&format!(
                "/api/integrations/twilio/messages/refresh-status?messageSid={sid}"
            )))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST …/refresh-status{query}` with `key` (a bulk refresh).
    pub async fn refresh_recent(&self, key: &str, query: &str) -> Response {
        self.http
            .post(self.url(&format!(
                "/api/integrations/twilio/messages/refresh-status{query}"
            )))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET /api/messages/{sid}` with `key`.
    pub async fn get_message(&self, key: &str, sid: &str) -> Response {
        self.http
            .get(self.url(&format!("/api/messages/{sid}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent")
    }

    /// A second team with its own admin key and its own Twilio account on the simulator.
    pub async fn new_team(&self, name: &str, plan: Plan) -> (TeamId, String) {
        let team = self
            .store
            .create_team(name, plan)
            .await
            .expect("team created");
        let user = self
            .store
            .create_user(
                team.id,
                name,
                &format!("{}@example.test", team.id),
                Role::Admin,
            )
            .await
            .expect("user created");
        let key = self
            .store
            .create_api_key(user.id)
            .await
            .expect("key created");
        let account =
            AccountSid::parse(&format!("AC{:032x}", 0xB000 + team.id.get())).expect("valid");
        let token = format!("token-{}", team.id);
        self.sim
            .add_account(SimAccount::new(account.clone(), token.clone()));
        self.store
            .upsert(
                team.id,
                NewIntegration {
                    account_sid: account,
                    auth_token: SecretString::from(token),
                    api_key: None,
                    sender: Sender::Number(PhoneNumber::parse("+15005550006").expect("valid")),
                },
            )
            .await
            .expect("integration stored");
        (team.id, key.key.expose_secret().to_owned())
    }

    /// Every message and history event of every team, to show a request changed nothing.
    pub async fn snapshot(&self) -> Vec<(String, String, usize)> {
        let mut rows = Vec::new();
        for team in self.store.list_teams().await.expect("teams") {
            let page = self
                .store
                .list(
                    team.id,
                    MessageQuery {
                        limit: 200,
                        ..MessageQuery::default()
                    },
                )
                .await
                .expect("messages");
            for message in page.messages {
                let events = self
                    .store
                    .history(team.id, &message.sid)
                    .await
                    .expect("history");
                rows.push((
                    message.sid.to_string(),
                    message.delivery.status.to_string(),
                    events.len(),
                ));
            }
        }
        rows.sort();
        rows
    }

    /// Moves a message along at the simulator; returns once its status callback was handled.
    pub async fn twilio_moves(&self, sid: &str, status: MessageStatus, error_code: Option<u32>) {
        self.sim
            .set_status(
                &MessageSid::parse(sid).expect("valid sid"),
                status,
                error_code,
            )
            .await
            .expect("the simulator knows the message");
    }
}

/// Asserts the one error shape and returns its `code`.
pub async fn error_code(response: Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("errors are JSON");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
        .to_owned();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "every error has a message: {body}"
    );
    (status, code, body)
}

impl TestApp {
    /// The demo team (the first one created).
    pub async fn demo_team(&self) -> TeamId {
        self.store.list_teams().await.expect("teams")[0].id
    }

    /// A message Twilio has in `status` (no status callbacks: only a refresh can learn of it)
    /// and that we stored as `queued`. Returns its SID.
    pub async fn message_without_callbacks(&self, team: TeamId, status: MessageStatus) -> String {
        self.message_at_twilio(team, status, None).await
    }

    /// As [`TestApp::message_without_callbacks`], with Twilio's error code.
    pub async fn message_at_twilio(
        &self,
        team: TeamId,
        status: MessageStatus,
        error_code: Option<u32>,
    ) -> String {
        let integration = self
            .store
            .for_team(team)
            .await
            .expect("store up")
            .expect("integration");
        let mut seed = smsdesk_twilio_sim::SeedMessage::new(
            integration.credentials.account_sid.clone(),
            status,
        );
        seed.error_code = error_code;
        let seeded = self.sim.seed_message(seed).expect("seeded");
        let now = chrono_now();
        self.store
            .insert(smsdesk_domain::NewMessage {
                sid: seeded.sid.clone(),
                team_id: team,
                account_sid: integration.credentials.account_sid,
                direction: smsdesk_domain::Direction::OutboundApi,
                from: smsdesk_domain::Address::parse("+15005550006").expect("valid"),
                to: smsdesk_domain::Address::parse(&seeded.to).expect("valid"),
                body: seeded.body.clone(),
                first_observation: smsdesk_domain::StatusObservation {
                    state: smsdesk_domain::DeliveryState::new(MessageStatus::Queued),
                    source: smsdesk_domain::ObservationSource::Send,
                    observed_at: now,
                },
                created_at: now,
                reference: None,
            })
            .await
            .expect("stored");
        seeded.sid.to_string()
    }
}

fn chrono_now() -> smsdesk_domain::Timestamp {
    use smsdesk_domain::ports::Clock as _;
    smsdesk_domain::ports::SystemClock.now()
}

// ---- Twilio's webhooks, signed as Twilio signs them, and what a refresh answered ------------

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

/// Starts `count` bulk refreshes (`hours=24`) at once with `key`, spread over `replicas` in turn,
/// and returns each answer's status and JSON body, in start order.
pub async fn concurrent_bulks(
    replicas: &[&TestApp],
    key: &str,
    count: usize,
) -> Vec<(StatusCode, Value)> {
    bulks_with_keys(replicas, &vec![key.to_owned(); count]).await
}

/// Starts one bulk refresh (`hours=24`) per key at once, spread over `replicas` in turn, and
/// returns each answer's status and JSON body, in start order.
pub async fn bulks_with_keys(replicas: &[&TestApp], keys: &[String]) -> Vec<(StatusCode, Value)> {
    let bulks: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| {
            let app = replicas[n % replicas.len()];
            let request = app
                .http
                .post(app.url("/api/integrations/twilio/messages/refresh-status?hours=24"))
                .bearer_auth(key);
            tokio::spawn(async move {
                let answer = request.send().await.expect("answered");
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            })
        })
        .collect();
    futures::future::join_all(bulks)
        .await
        .into_iter()
        .map(|bulk| bulk.expect("the bulk's task ends"))
        .collect()
}
