//! The HTTP service over the domain's in-memory fakes: an in-memory store, a scripted Twilio whose
//! calls can be held at a gate, a clock (manual by default, the system's for the page), a table
//! of API keys, a readiness switch, and a helper that sends one request through the full `App`.
//!
//! ```no_run
//! # async fn example() {
//! use smsdesk_test_support::world::{PRO_ADMIN_KEY, World, bearer};
//!
//! let world = World::new();
//! world.connect_twilio(1, smsdesk_test_support::world::ACCOUNT).await;
//! let answer = world
//!     .call(actix_web::test::TestRequest::get().uri("/api/messages").insert_header(bearer(PRO_ADMIN_KEY)))
//!     .await;
//! assert_eq!(answer.status.as_u16(), 200);
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::App;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use async_trait::async_trait;
use chrono::TimeZone;
use smsdesk_domain::changes::ChangeNotifier;
use smsdesk_domain::fakes::{
    CountingSecrets, FakeSmsProvider, InMemoryStore, ManualClock, RecordingTransport,
};
use smsdesk_domain::ports::{
    ApiKeyAuthenticator, CallbackInbox, Clock, IntegrationRepository, MessageRepository,
    NewIntegration, RepositoryError, Sender, SmsProvider, SystemClock,
};
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, Message, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, Plan, Requester, Role, StatusObservation, TeamId, Timestamp,
    UserId,
};
use smsdesk_web::{Readiness, WebConfig, WebPorts, WebState};
use tokio::sync::watch;

/// Team 1, Pro plan, admin.
pub const PRO_ADMIN_KEY: &str = "sk_pro_admin";
/// Team 1, Pro plan, member.
pub const PRO_MEMBER_KEY: &str = "sk_pro_member";
/// Team 3, Free plan, admin.
pub const FREE_KEY: &str = "sk_free";
/// Team 2, Enterprise plan, admin.
pub const OTHER_TEAM_KEY: &str = "sk_other_team";
/// The account team 1 is connected to.
pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// That account's auth token (it signs Twilio's webhooks).
pub const AUTH_TOKEN: &str = "tok_3f9a1c0d5e7b2a4c6e8f0a1b2c3d4e5f";

/// A team id.
pub fn team(id: i64) -> TeamId {
    TeamId::new(id).expect("team id")
}

/// A requester of `team_id` with this plan and role.
pub fn requester(team_id: i64, user: i64, plan: Plan, role: Role) -> Requester {
    Requester {
        team_id: team(team_id),
        user_id: UserId::new(user).expect("user id"),
        plan,
        role,
    }
}

/// The `n`th test SID.
pub fn sid(number: u32) -> MessageSid {
    MessageSid::parse(&format!("SM{number:032x}")).expect("sid")
}

/// The `Authorization` header for `key`.
pub fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

/// The time a manual-clock world starts at.
pub fn start() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
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

/// A readiness probe the test switches.
#[derive(Default)]
pub struct Switch(AtomicBool);

impl Switch {
    /// Sets what `/readyz` reports.
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

/// How to build a [`World`]; every part has a default.
#[derive(Default)]
pub struct WorldBuilder {
    config: WebConfig,
    provider: Option<Arc<dyn SmsProvider>>,
    inbox: Option<Arc<dyn CallbackInbox>>,
    notifiers: Vec<Arc<dyn ChangeNotifier>>,
    system_clock: bool,
}

impl WorldBuilder {
    /// The web settings (default: `WebConfig::default()`).
    #[must_use]
    pub fn config(mut self, config: WebConfig) -> Self {
        self.config = config;
        self
    }

    /// Twilio is `provider` instead of the world's fake.
    #[must_use]
    pub fn provider(mut self, provider: Arc<dyn SmsProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Parked callbacks live in `inbox` instead of the store.
    #[must_use]
    pub fn inbox(mut self, inbox: Arc<dyn CallbackInbox>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// One more consumer of the committed changes.
    #[must_use]
    pub fn notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifiers.push(notifier);
        self
    }

    /// The system clock instead of a manual one (for a browser, which shows real times).
    #[must_use]
    pub fn system_clock(mut self) -> Self {
        self.system_clock = true;
        self
    }

    /// Builds the world.
    pub fn build(self) -> World {
        let store = InMemoryStore::new();
        let (twilio_gate, gate) = watch::channel(true);
        let fake = FakeSmsProvider::new().with_delay(Arc::new(move |_sid: &MessageSid| {
            let mut gate = gate.clone();
            Box::pin(async move {
                // An error means the world is gone; nothing is left to wait for.
                let _ = gate.wait_for(|open| *open).await;
            })
        }));
        let clock = ManualClock::new(start());
        let time: Arc<dyn Clock> = if self.system_clock {
            Arc::new(SystemClock)
        } else {
            Arc::new(clock.clone())
        };
        let ready = Arc::new(Switch::default());
        ready.set(true);
        let receiver = RecordingTransport::new();
        let state = WebState::new(
            WebPorts {
                messages: Arc::new(store.clone()),
                integrations: Arc::new(store.clone()),
                provider: self.provider.unwrap_or_else(|| Arc::new(fake.clone())),
                limiter: Arc::new(store.clone()),
                inbox: self.inbox.unwrap_or_else(|| Arc::new(store.clone())),
                clock: time.clone(),
                authenticator: Arc::new(keys()),
                readiness: ready.clone(),
                api_keys: Arc::new(store.clone()),
                unfinished: Arc::new(store.clone()),
                stuck: Arc::new(store.clone()),
                idempotency: Arc::new(store.clone()),
                change_log: Arc::new(store.clone()),
                fleet_doorbell: None,
                notifiers: self.notifiers,
                webhooks: Arc::new(store.clone()),
                webhook_transport: Arc::new(receiver.clone()),
                secrets: Arc::new(CountingSecrets::default()),
            },
            self.config,
        );
        let live_events = LiveEvents::follow(&state);
        World {
            _live_events: live_events,
            store,
            receiver,
            provider: fake,
            clock,
            time,
            ready,
            state,
            twilio_gate,
        }
    }
}

/// The service's parts, kept so tests can script Twilio and look at the store.
pub struct World {
    /// Messages, integrations, cool-downs and parked callbacks.
    pub store: InMemoryStore,
    /// The fake Twilio (unless the builder named another provider).
    pub provider: FakeSmsProvider,
    /// The teams' webhook receivers: every delivery the service posted, answered as scripted.
    pub receiver: RecordingTransport,
    /// The manual clock (in force unless the builder asked for the system clock).
    pub clock: ManualClock,
    /// The clock the service uses.
    time: Arc<dyn Clock>,
    /// `/readyz`'s answer.
    pub ready: Arc<Switch>,
    /// The service's shared state.
    pub state: WebState,
    /// While `false`, every call to the fake Twilio waits (to observe a spinner, say).
    pub twilio_gate: watch::Sender<bool>,
    /// The live streams' follower, stopped with the world.
    _live_events: LiveEvents,
}

/// The live streams' follower of a world, on a thread and runtime of its own, so it runs
/// whichever runtime (or none) the test drives the world from; it reads the fake's history from
/// its start (empty when the world is built) and stops when the world is dropped.
struct LiveEvents {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LiveEvents {
    fn follow(state: &WebState) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the live events");
            runtime.block_on(async move {
                let follower = state.spawn_live_events(smsdesk_domain::LogPosition::START);
                let _ = stopped.await;
                follower.abort();
            });
        });
        Self { stop: Some(stop) }
    }
}

impl Drop for LiveEvents {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A world with every default: nobody connected to Twilio, a manual clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts building a world.
    pub fn builder() -> WorldBuilder {
        WorldBuilder::default()
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
        let mut builder = Self::builder().config(config);
        if let Some(provider) = provider {
            builder = builder.provider(provider);
        }
        if let Some(inbox) = inbox {
            builder = builder.inbox(inbox);
        }
        builder.build()
    }

    /// What the SMS page's tests run against: the system clock, team 1 connected to Twilio.
    pub async fn for_page(config: WebConfig) -> Self {
        let world = Self::builder().config(config).system_clock().build();
        world.connect_twilio(1, ACCOUNT).await;
        world
    }

    /// Returns once the live streams' follower has published everything in the store's log, so
    /// a stream opened next sees only what happens after (seeded messages included before).
    pub async fn settle_live_events(&self) {
        use smsdesk_domain::ports::ChangeLog as _;
        while !self
            .store
            .read_after(self.state.events().followed_until(), None, 1)
            .await
            .expect("the fake's log")
            .is_empty()
        {
            // A polling interval: the follower runs on this runtime between polls.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
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

    /// Now, by the service's clock.
    pub fn clock_now(&self) -> Timestamp {
        self.time.now()
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
        self.seed_with(
            team_id,
            sid(number),
            minutes_ago,
            Direction::OutboundApi,
            DeliveryState::new(status),
            format!("message {number}"),
        )
        .await
    }

    /// Stores a message of `team_id` created `minutes_ago` in any direction and state (SIDs
    /// `SM…beef…` numbered by `number`), which the fake Twilio reports too.
    pub async fn seed(
        &self,
        team_id: i64,
        number: u32,
        minutes_ago: i64,
        direction: Direction,
        state: DeliveryState,
    ) -> MessageSid {
        let sid = MessageSid::parse(&format!("SM{:032x}", 0xbeef_0000_u32 + number)).expect("sid");
        self.seed_with(
            team_id,
            sid,
            minutes_ago,
            direction,
            state,
            format!("Seeded message {number}"),
        )
        .await
        .sid
    }

    async fn seed_with(
        &self,
        team_id: i64,
        sid: MessageSid,
        minutes_ago: i64,
        direction: Direction,
        state: DeliveryState,
        body: String,
    ) -> Message {
        let created_at = self.clock_now() - chrono::Duration::minutes(minutes_ago);
        let (from, to) = if direction == Direction::Inbound {
            ("+14155550100", "+15005550006")
        } else {
            ("+15005550006", "+14155550100")
        };
        let stored = MessageRepository::insert(
            &self.store,
            NewMessage {
                sid: sid.clone(),
                team_id: team(team_id),
                account_sid: AccountSid::parse(ACCOUNT).expect("account"),
                direction,
                from: Address::parse(from).expect("from"),
                to: Address::parse(to).expect("to"),
                body,
                first_observation: StatusObservation {
                    state: state.clone(),
                    source: ObservationSource::Send,
                    observed_at: created_at,
                },
                created_at,
                reference: None,
            },
        )
        .await
        .expect("seeding a message");
        self.provider.set_state(&sid, state);
        stored
    }

    /// A failed delivery with Twilio's code and text.
    pub fn failed(code: u32, text: &str) -> DeliveryState {
        DeliveryState {
            error_code: Some(code),
            error_message: Some(text.to_owned()),
            ..DeliveryState::new(MessageStatus::Undelivered)
        }
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

/// A response, read whole.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: serde_json::Value,
}

impl Answer {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error body's `code`.
    pub fn error_code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }

    /// The error body's `field`.
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
