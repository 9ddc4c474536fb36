//! A whole service over the domain's in-memory fakes, for the page and browser tests: a store, a
//! scripted Twilio whose calls can be held at a gate, the system clock, and a key table.
#![allow(dead_code)] // Each test binary uses a different part.

pub mod webdriver;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use smsdesk_domain::fakes::{FakeSmsProvider, InMemoryStore};
use smsdesk_domain::ports::{
    ApiKeyAuthenticator, IntegrationRepository, MessageRepository, NewIntegration, RepositoryError,
    Sender, SystemClock,
};
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, Plan, Requester, Role, StatusObservation, TeamId, UserId,
};
use smsdesk_web::{AlwaysReady, WebConfig, WebPorts, WebState};
use tokio::sync::watch;

pub const PRO_KEY: &str = "sk_demo_pro_team_key";
pub const OTHER_TEAM_KEY: &str = "sk_other_team_key";
pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "tok_0123456789abcdef0123456789abcdef";

pub fn team(id: i64) -> TeamId {
    TeamId::new(id).expect("team id")
}

struct KeyTable(HashMap<&'static str, Requester>);

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
    let requester = |team_id, user| Requester {
        team_id: team(team_id),
        user_id: UserId::new(user).expect("user id"),
        plan: Plan::Pro,
        role: Role::Admin,
    };
    KeyTable(HashMap::from([
        (PRO_KEY, requester(1, 1)),
        (OTHER_TEAM_KEY, requester(2, 2)),
    ]))
}

/// The service's parts, kept so tests can script Twilio and look at the store.
pub struct World {
    pub store: InMemoryStore,
    pub provider: FakeSmsProvider,
    pub state: WebState,
    /// While `false`, every call to the fake Twilio waits (to observe a spinner, say).
    pub twilio_gate: watch::Sender<bool>,
}

impl World {
    /// A service for teams 1 and 2, team 1 connected to Twilio.
    pub async fn new(config: WebConfig) -> Self {
        let store = InMemoryStore::new();
        let (twilio_gate, gate) = watch::channel(true);
        let provider = FakeSmsProvider::new().with_delay(Arc::new(move |_sid: &MessageSid| {
            let mut gate = gate.clone();
            Box::pin(async move {
                // An error means the world is gone; nothing is left to wait for.
                let _ = gate.wait_for(|open| *open).await;
            })
        }));
        let state = WebState::new(
            WebPorts {
                messages: Arc::new(store.clone()),
                integrations: Arc::new(store.clone()),
                provider: Arc::new(provider.clone()),
                limiter: Arc::new(store.clone()),
                inbox: Arc::new(store.clone()),
                clock: Arc::new(SystemClock),
                authenticator: Arc::new(keys()),
                readiness: Arc::new(AlwaysReady),
                notifiers: Vec::new(),
            },
            config,
        );
        let connected = IntegrationRepository::upsert(
            &store,
            team(1),
            NewIntegration {
                account_sid: AccountSid::parse(ACCOUNT).expect("account"),
                auth_token: SecretString::from(AUTH_TOKEN),
                api_key: None,
                sender: Sender::Number(PhoneNumber::parse("+15005550006").expect("number")),
            },
        )
        .await;
        assert!(connected.is_ok(), "connecting Twilio: {connected:?}");
        Self {
            store,
            provider,
            state,
            twilio_gate,
        }
    }

    /// Stores a message of `team_id` created `minutes_ago`, which the fake Twilio reports too.
    pub async fn seed(
        &self,
        team_id: i64,
        number: u32,
        minutes_ago: i64,
        direction: Direction,
        state: DeliveryState,
    ) -> MessageSid {
        let sid = MessageSid::parse(&format!("SM{:032x}", 0xbeef_0000_u32 + number)).expect("sid");
        let created_at = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
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
                body: format!("Seeded message {number}"),
                first_observation: StatusObservation {
                    state: state.clone(),
                    source: ObservationSource::Send,
                    observed_at: created_at,
                },
                created_at,
            },
        )
        .await;
        assert!(stored.is_ok(), "seeding: {stored:?}");
        self.provider.set_state(&sid, state);
        sid
    }

    /// A failed delivery with Twilio's code and text.
    pub fn failed(code: u32, text: &str) -> DeliveryState {
        DeliveryState {
            error_code: Some(code),
            error_message: Some(text.to_owned()),
            ..DeliveryState::new(MessageStatus::Undelivered)
        }
    }
}
