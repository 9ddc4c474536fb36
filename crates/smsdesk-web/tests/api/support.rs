//! The world the API tests run in: an in-memory store, a scripted Twilio, a manual clock, a
//! table of API keys, and a helper that sends one request through the full `App`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::App;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use async_trait::async_trait;
use chrono::TimeZone;
use smsdesk_domain::fakes::{FakeSmsProvider, InMemoryStore, ManualClock};
use smsdesk_domain::ports::{
    ApiKeyAuthenticator, CallbackInbox, IntegrationRepository, MessageRepository, NewIntegration,
    RepositoryError, Sender, SmsProvider,
};
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, Message, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, Plan, Requester, Role, StatusObservation, TeamId, Timestamp,
    UserId,
};
use smsdesk_web::{Readiness, WebConfig, WebPorts, WebState};

pub const PRO_ADMIN_KEY: &str = "sk_pro_admin";
pub const PRO_MEMBER_KEY: &str = "sk_pro_member";
pub const FREE_KEY: &str = "sk_free";
pub const OTHER_TEAM_KEY: &str = "sk_other_team";
pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "tok_3f9a1c0d5e7b2a4c6e8f0a1b2c3d4e5f";

pub fn team(id: i64) -> TeamId {
    TeamId::new(id).expect("team id")
}

pub fn requester(team_id: i64, user: i64, plan: Plan, role: Role) -> Requester {
    Requester {
        team_id: team(team_id),
        user_id: UserId::new(user).expect("user id"),
        plan,
        role,
    }
}

/// API keys resolved from a table, as the store would.
pub struct KeyTable(HashMap<&'static str, Requester>);

#[async_trait]
impl ApiKeyAuthenticator for KeyTable {
    async fn authenticate(
        &self,
        presented_key: &SecretString,
    ) -> Result<Option<Requester>, RepositoryError> {
        Ok(self.0.get(presented_key.expose_secret()).copied())
    }
}

/// A readiness probe the test switches.
#[derive(Default)]
pub struct Switch(AtomicBool);

impl Switch {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
}

#[async_trait]
impl Readiness for Switch {
    async fn ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn start() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

pub struct World {
    pub store: InMemoryStore,
    pub provider: FakeSmsProvider,
    pub clock: ManualClock,
    pub ready: Arc<Switch>,
    pub state: WebState,
}

fn keys() -> KeyTable {
    KeyTable(HashMap::from([
        (PRO_ADMIN_KEY, requester(1, 1, Plan::Pro, Role::Admin)),
        (PRO_MEMBER_KEY, requester(1, 2, Plan::Pro, Role::Member)),
        (FREE_KEY, requester(3, 3, Plan::Free, Role::Admin)),
        (
            OTHER_TEAM_KEY,
            requester(2, 4, Plan::Enterprise, Role::Admin),
        ),
    ]))
}

impl World {
    pub fn new() -> Self {
        Self::with(WebConfig::default(), None)
    }

    /// A world whose Twilio is `provider` instead of the fake.
    pub fn with(config: WebConfig, provider: Option<Arc<dyn SmsProvider>>) -> Self {
        Self::with_inbox(config, provider, None)
    }

    /// A world whose parked callbacks live in `inbox` instead of the store.
    pub fn with_inbox(
        config: WebConfig,
        provider: Option<Arc<dyn SmsProvider>>,
        inbox: Option<Arc<dyn CallbackInbox>>,
    ) -> Self {
        let store = InMemoryStore::new();
        let fake = FakeSmsProvider::new();
        let clock = ManualClock::new(start());
        let ready = Arc::new(Switch::default());
        ready.set(true);
        let state = WebState::new(
            WebPorts {
                messages: Arc::new(store.clone()),
                integrations: Arc::new(store.clone()),
                provider: provider.unwrap_or_else(|| Arc::new(fake.clone())),
                limiter: Arc::new(store.clone()),
                inbox: inbox.unwrap_or_else(|| Arc::new(store.clone())),
                clock: Arc::new(clock.clone()),
                authenticator: Arc::new(keys()),
                readiness: ready.clone(),
                notifiers: Vec::new(),
            },
            config,
        );
        Self {
            store,
            provider: fake,
            clock,
            ready,
            state,
        }
    }

    /// Gives team `team_id` an integration sending from +15005550006.
    pub async fn connect_twilio(&self, team_id: i64, account: &str) {
        self.connect_twilio_with_token(team_id, account, AUTH_TOKEN)
            .await;
    }

    /// Gives team `team_id` an integration with its own auth token.
    pub async fn connect_twilio_with_token(&self, team_id: i64, account: &str, auth_token: &str) {
        let result = IntegrationRepository::upsert(
            &self.store,
            team(team_id),
            NewIntegration {
                account_sid: AccountSid::parse(account).expect("account"),
                auth_token: SecretString::from(auth_token),
                api_key: None,
                sender: Sender::Number(PhoneNumber::parse("+15005550006").expect("number")),
            },
        )
        .await;
        assert!(result.is_ok(), "connecting Twilio: {result:?}");
    }

    /// Stores an outbound message of `team_id` created `minutes_ago`, in `status`, which Twilio
    /// (the fake) also reports until told otherwise.
    pub async fn seed_message(
        &self,
        team_id: i64,
        number: u32,
        minutes_ago: i64,
        status: MessageStatus,
    ) -> Message {
        let sid = sid(number);
        let created_at = self.clock_now() - chrono::Duration::minutes(minutes_ago);
        let stored = MessageRepository::insert(
            &self.store,
            NewMessage {
                sid: sid.clone(),
                team_id: team(team_id),
                account_sid: AccountSid::parse(ACCOUNT).expect("account"),
                direction: Direction::OutboundApi,
                from: Address::parse("+15005550006").expect("from"),
                to: Address::parse("+14155550100").expect("to"),
                body: format!("message {number}"),
                first_observation: StatusObservation {
                    state: DeliveryState::new(status.clone()),
                    source: ObservationSource::Send,
                    observed_at: created_at,
                },
                created_at,
            },
        )
        .await
        .expect("seeding a message");
        self.provider.set_state(&sid, DeliveryState::new(status));
        stored
    }

    pub fn clock_now(&self) -> Timestamp {
        smsdesk_domain::ports::Clock::now(&self.clock)
    }

    /// Sends one request through a freshly built `App` over this world's state.
    pub async fn call(&self, request: TestRequest) -> Answer {
        let state = self.state.clone();
        let app =
            test::init_service(App::new().configure(move |cfg| smsdesk_web::configure(cfg, state)))
                .await;
        let response = test::call_service(&app, request.to_request()).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = test::read_body(response).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }
}

pub fn sid(number: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{number:032x}")).expect("sid")
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: serde_json::Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error_code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }

    pub fn error_field(&self) -> Option<&str> {
        self.json["error"]["field"].as_str()
    }

    /// Asserts the answer is an error in the one shape, with this status and code.
    pub fn assert_error(&self, status: u16, code: &str, why: &str) {
        assert_eq!(self.status.as_u16(), status, "{why}: {}", self.text);
        assert_eq!(self.error_code(), Some(code), "{why}: {}", self.text);
        assert!(
            self.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{why}: every error has a message: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{why}: errors are JSON"
        );
    }
}

pub fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}
