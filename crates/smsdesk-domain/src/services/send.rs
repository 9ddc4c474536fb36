//! The `SendSms` use case: send one SMS through the team's Twilio integration and store it.
//!
//! The order matters: the body is checked before anything else, the integration is loaded, Twilio
//! is asked, and only a message Twilio accepted is stored. A refused send leaves no row behind.
//! What is stored is Twilio's record: its SID, its initial status (the first history event, from
//! [`ObservationSource::Send`], because Twilio posts no callback for it) and its creation time.
//! The account SID is stored in plaintext: it is a public identifier that inbound webhooks are
//! matched against.
//!
//! Twilio's first status callbacks can arrive before the row is stored; they are parked (see
//! [`super::callback`]). Right after storing the message the send replays them, so the answer
//! carries the newest status (a parked `delivered` is not answered as `queued`). The new message
//! and every change a replay commits go to the [`ChangeNotifier`].

use std::sync::Arc;

use super::callback::{created_change, replay_parked};
use crate::access::Requester;
use crate::changes::{Activity, ChangeNotifier, IgnoreChanges};
use crate::idempotency::{CLAIM_LOCK, IdempotencyClaim, IdempotencyKey, KEEP_ANSWER_FOR};
use crate::ids::{Address, MessageReference, PhoneNumber};
use crate::message::{Message, NewMessage, ObservationSource, StatusObservation};
use crate::ports::{
    CallbackInbox, Clock, IdempotencyStore, IntegrationRepository, MessageRepository, OutboundSms,
    ProviderError, RepositoryError, Sender, SmsProvider,
};
use crate::status::Direction;

/// Where smsdesk's HTTP service receives Twilio's status callbacks, below its public base URL.
pub const STATUS_CALLBACK_PATH: &str = "/api/integrations/twilio/status-callback";

/// The longest body Twilio accepts, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// An SMS to send on behalf of a requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The recipient.
    pub to: PhoneNumber,
    /// The text: 1 to [`MAX_BODY_CHARS`] characters.
    pub body: String,
    /// Overrides the integration's default sender (a number or a messaging service).
    pub sender: Option<Sender>,
    /// The caller's own identifier, stored with the message and searchable.
    pub reference: Option<MessageReference>,
}

impl SendRequest {
    /// The request as one text, for telling a replay from a different request with one key.
    fn canonical(&self) -> String {
        let sender = match &self.sender {
            None => String::new(),
            Some(Sender::Number(number)) => format!("number:{number}"),
            Some(Sender::MessagingService(service)) => format!("service:{service}"),
        };
        let reference = self.reference.as_ref().map_or("", MessageReference::as_str);
        format!(
            "to:{}\nsender:{sender}\nreference:{reference}\nbody:{}",
            self.to, self.body
        )
    }
}

/// A message a send created, or an idempotent send's replay of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message, as stored now.
    pub message: Message,
    /// True when an earlier request with the same idempotency key created it.
    pub replayed: bool,
}

/// Why a send did not happen. Nothing is stored in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendSmsError {
    /// The body is empty or longer than Twilio accepts.
    #[error("the body must be 1 to {MAX_BODY_CHARS} characters, got {chars}")]
    InvalidBody {
        /// The body's length in characters.
        chars: usize,
    },
    /// The team has no Twilio integration.
    #[error("the team has no Twilio integration configured")]
    IntegrationMissing,
    /// Twilio refused or failed; the message may not have been sent (see [`ProviderError`]).
    #[error(transparent)]
    Provider(ProviderError),
    /// The store failed. When this happens after Twilio accepted the message, the message was
    /// sent but not recorded; its status callbacks will find no row.
    #[error(transparent)]
    Store(RepositoryError),
    /// Twilio handed back a SID that is already stored: Twilio's fault or ours, never the
    /// caller's. The message was sent; nothing was stored.
    #[error("Twilio returned an already stored message SID: {0}")]
    SidAlreadyStored(String),
    /// A send with this idempotency key is still running; retry once it has answered.
    #[error("a send with this Idempotency-Key is still in progress; retry in a moment")]
    IdempotencyKeyInProgress,
    /// This idempotency key was used for a different send within the last 24 hours.
    #[error("this Idempotency-Key was used for a different request; use a new key")]
    IdempotencyKeyReused,
}

impl SendSmsError {
    fn from_insert(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Duplicate(detail) => Self::SidAlreadyStored(detail),
            other => Self::Store(other),
        }
    }
}

/// The send use case. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct SendSms {
    messages: Arc<dyn MessageRepository>,
    integrations: Arc<dyn IntegrationRepository>,
    inbox: Arc<dyn CallbackInbox>,
    provider: Arc<dyn SmsProvider>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn ChangeNotifier>,
    status_callback: Option<String>,
    idempotency: Option<Arc<dyn IdempotencyStore>>,
}

impl SendSms {
    /// Builds the use case over its ports, asking Twilio for no status callbacks. `inbox` holds
    /// the callbacks that beat a send's write; the send replays them.
    pub fn new(
        messages: Arc<dyn MessageRepository>,
        integrations: Arc<dyn IntegrationRepository>,
        inbox: Arc<dyn CallbackInbox>,
        provider: Arc<dyn SmsProvider>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            messages,
            integrations,
            inbox,
            provider,
            clock,
            notifier: Arc::new(IgnoreChanges),
            status_callback: None,
            idempotency: None,
        }
    }

    /// Keeps idempotency keys in `store`, for [`SendSms::send_idempotent`].
    #[must_use]
    pub fn with_idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = Some(store);
        self
    }

    /// Sends as [`SendSms::send`] unless `key` was used before (see [`crate::idempotency`]):
    /// the same key with the same request within 24 h answers with the message the first
    /// request created, as it is now, and sends nothing (`replayed` is then true). Without a
    /// key it is [`SendSms::send`].
    ///
    /// # Errors
    /// As [`SendSms::send`], and [`SendSmsError::IdempotencyKeyInProgress`] or
    /// [`SendSmsError::IdempotencyKeyReused`]; a failed send keeps nothing, so the same key may
    /// be retried.
    pub async fn send_idempotent(
        &self,
        requester: &Requester,
        request: SendRequest,
        key: Option<&IdempotencyKey>,
    ) -> Result<Sent, SendSmsError> {
        let Some(key) = key else {
            return self.send(requester, request).await.map(|message| Sent {
                message,
                replayed: false,
            });
        };
        let store = self.idempotency.as_ref().ok_or_else(|| {
            SendSmsError::Store(RepositoryError::Unexpected(
                "idempotency keys are not configured".into(),
            ))
        })?;
        let team = requester.team_id;
        let canonical = request.canonical();
        let claim = store
            .claim_key(team, key, &canonical, self.clock.now(), CLAIM_LOCK)
            .await
            .map_err(SendSmsError::Store)?;
        match claim {
            IdempotencyClaim::Claimed => {}
            IdempotencyClaim::InProgress => return Err(SendSmsError::IdempotencyKeyInProgress),
            IdempotencyClaim::Mismatch => return Err(SendSmsError::IdempotencyKeyReused),
            IdempotencyClaim::Completed(sid) => {
                let message = self
                    .messages
                    .find(team, &sid)
                    .await
                    .map_err(SendSmsError::Store)?
                    .ok_or_else(|| {
                        SendSmsError::Store(RepositoryError::Unexpected(format!(
                            "the message {sid} an idempotency key answered with is gone"
                        )))
                    })?;
                return Ok(Sent {
                    message,
                    replayed: true,
                });
            }
        }
        match self.send(requester, request).await {
            Ok(message) => {
                // The SMS is sent: failing to keep the answer must not turn it into an error
                // that invites a second send. The claim then frees itself after its lock.
                let _ = store
                    .complete_key(team, key, &message.sid, self.clock.now(), KEEP_ANSWER_FOR)
                    .await;
                Ok(Sent {
                    message,
                    replayed: false,
                })
            }
            Err(error) => {
                let _ = store.release_key(team, key).await;
                Err(error)
            }
        }
    }

    /// Hands every message this use case stores, and every change a replayed callback commits,
    /// to `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Asks Twilio to post status callbacks to `{public_base_url}`[`STATUS_CALLBACK_PATH`]. The
    /// base is where Twilio can reach this service (e.g. `https://sms.example.com`); a trailing
    /// slash is ignored.
    #[must_use]
    pub fn with_public_base_url(mut self, public_base_url: &str) -> Self {
        let base = public_base_url.trim_end_matches('/');
        self.status_callback = Some(format!("{base}{STATUS_CALLBACK_PATH}"));
        self
    }

    /// The status callback URL sent with every message, if any.
    pub fn status_callback(&self) -> Option<&str> {
        self.status_callback.as_deref()
    }

    /// Sends `request` from the requester's team and stores the message Twilio created.
    ///
    /// # Errors
    /// See [`SendSmsError`]: an invalid body, a missing integration, Twilio's refusal or failure,
    /// or the store's failure.
    pub async fn send(
        &self,
        requester: &Requester,
        request: SendRequest,
    ) -> Result<Message, SendSmsError> {
        let chars = request.body.chars().count();
        if !(1..=MAX_BODY_CHARS).contains(&chars) {
            return Err(SendSmsError::InvalidBody { chars });
        }
        let team = requester.team_id;
        let integration = self
            .integrations
            .for_team(team)
            .await
            .map_err(SendSmsError::Store)?
            .ok_or(SendSmsError::IntegrationMissing)?;
        let sender = request.sender.unwrap_or(integration.sender);
        let reference = request.reference;
        let sms = OutboundSms {
            to: request.to,
            body: request.body,
            sender,
            status_callback: self.status_callback.clone(),
        };
        let created = self
            .provider
            .send_message(&integration.credentials, &sms)
            .await
            .map_err(SendSmsError::Provider)?;

        let now = self.clock.now();
        // Twilio normally reports the sender; when it does not, the sender we asked for is the
        // best record (a messaging service is kept as its SID).
        let from = created.from.unwrap_or_else(|| match &sms.sender {
            Sender::Number(number) => Address::from(number.clone()),
            Sender::MessagingService(service) => {
                Address::parse(service.as_str()).unwrap_or_else(|_| Address::from(sms.to.clone()))
            }
        });
        let new_message = NewMessage {
            sid: created.sid,
            team_id: team,
            account_sid: integration.credentials.account_sid,
            direction: Direction::OutboundApi,
            from,
            to: Address::from(sms.to),
            body: sms.body,
            first_observation: StatusObservation {
                state: created.state,
                source: ObservationSource::Send,
                observed_at: now,
            },
            created_at: created.date_created.unwrap_or(now),
            reference,
        };
        let message = self
            .messages
            .insert(new_message)
            .await
            .map_err(SendSmsError::from_insert)?;
        self.notifier
            .committed(&created_change(&message, ObservationSource::Send));
        Ok(self.apply_early_callbacks(message).await)
    }

    /// Replays the callbacks that beat the insert and returns the message as it is then. The
    /// message is sent and stored whatever happens here, so a failure is reported as
    /// [`Activity::ParkedReplayFailed`] rather than failing the send; what was not taken stays
    /// parked for the callback's own second look or until it is discarded.
    async fn apply_early_callbacks(&self, message: Message) -> Message {
        let team = message.team_id;
        let replayed = replay_parked(
            self.messages.as_ref(),
            self.inbox.as_ref(),
            self.notifier.as_ref(),
            team,
            &message.sid,
        )
        .await;
        match replayed {
            Ok(outcomes) if outcomes.is_empty() => message,
            Ok(_) => match self.messages.find(team, &message.sid).await {
                Ok(Some(current)) => current,
                _ => message,
            },
            Err(error) => {
                self.notifier.activity(&Activity::ParkedReplayFailed {
                    sid: message.sid.clone(),
                    error,
                });
                message
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;
    use mockall::predicate::always;
    use secrecy::SecretString;

    use super::*;
    use crate::access::{Plan, Role};
    use crate::fakes::{FakeSmsProvider, InMemoryStore, ManualClock};
    use crate::ids::{AccountSid, MessageSid, MessagingServiceSid, TeamId, UserId};
    use crate::message::{DeliveryState, Timestamp};
    use crate::ports::{
        MockIntegrationRepository, MockMessageRepository, MockSmsProvider, NewIntegration,
        ProviderMessage,
    };
    use crate::status::MessageStatus;

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

    fn start() -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .unwrap_or_default()
    }

    fn requester(team: i64) -> Requester {
        Requester {
            team_id: TeamId::new(team).expect("team id"),
            user_id: UserId::new(1).expect("user id"),
            plan: Plan::Free,
            role: Role::Member,
        }
    }

    fn number(value: &str) -> PhoneNumber {
        PhoneNumber::parse(value).expect("valid number")
    }

    fn request(body: &str) -> SendRequest {
        SendRequest {
            to: number("+14155550100"),
            body: body.to_owned(),
            sender: None,
            reference: None,
        }
    }

    struct World {
        store: InMemoryStore,
        provider: FakeSmsProvider,
        clock: ManualClock,
        send: SendSms,
    }

    async fn world_with_integration() -> World {
        let store = InMemoryStore::new();
        let provider = FakeSmsProvider::new();
        let clock = ManualClock::new(start());
        let upserted = IntegrationRepository::upsert(
            &store,
            requester(1).team_id,
            NewIntegration {
                account_sid: AccountSid::parse(ACCOUNT).expect("account"),
                auth_token: SecretString::from("token"),
                api_key: None,
                sender: Sender::Number(number("+15005550006")),
            },
        )
        .await;
        assert!(upserted.is_ok(), "seeding the integration: {upserted:?}");
        let send = SendSms::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(provider.clone()),
            Arc::new(clock.clone()),
        );
        World {
            store,
            provider,
            clock,
            send,
        }
    }

    #[tokio::test]
    async fn a_send_stores_twilios_record_with_the_plaintext_account_sid() {
        let world = world_with_integration().await;
        world.clock.advance(std::time::Duration::from_secs(5));

        let stored = world
            .send
            .send(&requester(1), request("hello"))
            .await
            .expect("send succeeds");

        assert_eq!(stored.account_sid.as_str(), ACCOUNT);
        assert_eq!(stored.direction, Direction::OutboundApi);
        assert_eq!(stored.delivery.status, MessageStatus::Queued);
        assert_eq!(stored.from.as_str(), "+15005550006", "the default sender");
        assert_eq!(stored.to.as_str(), "+14155550100");
        assert_eq!(stored.body, "hello");
        assert_eq!(
            stored.created_at,
            world.clock.now(),
            "the clock when Twilio gives no date"
        );
        assert_eq!(world.store.all_messages(), vec![stored]);
        assert_eq!(
            world.store.event_count(),
            1,
            "the initial status is history"
        );
        let sent = world.provider.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].status_callback, None, "no public URL configured");
    }

    #[tokio::test]
    async fn the_first_history_event_is_twilios_initial_status_from_send() {
        let world = world_with_integration().await;
        let stored = world
            .send
            .send(&requester(1), request("hi"))
            .await
            .expect("send succeeds");
        let history = MessageRepository::history(&world.store, stored.team_id, &stored.sid)
            .await
            .expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].observation.source, ObservationSource::Send);
        assert_eq!(history[0].observation.state.status, MessageStatus::Queued);
        assert!(history[0].applied);
    }

    #[tokio::test]
    async fn a_sender_override_and_the_callback_url_reach_twilio() {
        let mut world = world_with_integration().await;
        world.send = world.send.with_public_base_url("https://sms.example.com/");
        let service = MessagingServiceSid::parse(SERVICE).expect("service sid");
        let mut req = request("hi");
        req.sender = Some(Sender::MessagingService(service.clone()));

        let stored = world.send.send(&requester(1), req).await.expect("sent");

        let sent = world.provider.sent();
        assert_eq!(sent[0].sender, Sender::MessagingService(service));
        assert_eq!(
            sent[0].status_callback.as_deref(),
            Some("https://sms.example.com/api/integrations/twilio/status-callback"),
            "the trailing slash of the base is not doubled"
        );
        assert_eq!(
            stored.from.as_str(),
            SERVICE,
            "a messaging service is recorded by its SID when Twilio reports no number"
        );
    }

    #[tokio::test]
    async fn bodies_outside_1_to_1600_characters_are_refused_before_twilio_is_asked() {
        let world = world_with_integration().await;
        let cases = [
            (String::new(), Some(0), "empty"),
            ("x".repeat(1601), Some(1601), "one over"),
            (
                "é".repeat(1601),
                Some(1601),
                "counted in characters, not bytes",
            ),
            ("x".repeat(1600), None, "exactly the maximum"),
            ("é".repeat(1600), None, "1600 two-byte characters"),
            ("x".to_owned(), None, "one character"),
        ];
        for (body, refused_with, why) in cases {
            let result = world.send.send(&requester(1), request(&body)).await;
            match refused_with {
                Some(chars) => assert_eq!(
                    result.map(|m| m.sid),
                    Err(SendSmsError::InvalidBody { chars }),
                    "{why}"
                ),
                None => assert!(result.is_ok(), "{why}: {result:?}"),
            }
        }
        assert_eq!(
            world.provider.sent().len(),
            3,
            "only valid bodies were sent"
        );
        assert_eq!(world.store.all_messages().len(), 3);
    }

    #[tokio::test]
    async fn a_team_without_an_integration_cannot_send() {
        let world = world_with_integration().await;
        let result = world.send.send(&requester(2), request("hi")).await;
        assert_eq!(result.map(|m| m.sid), Err(SendSmsError::IntegrationMissing));
        assert!(world.provider.sent().is_empty());
    }

    #[tokio::test]
    async fn a_store_outage_while_loading_the_integration_is_a_store_error() {
        let world = world_with_integration().await;
        world.store.set_unavailable(true);
        let result = world.send.send(&requester(1), request("hi")).await;
        assert!(
            matches!(
                result,
                Err(SendSmsError::Store(RepositoryError::Unavailable(_)))
            ),
            "{result:?}"
        );
        assert!(world.provider.sent().is_empty(), "Twilio was not asked");
    }

    fn integration_repo() -> MockIntegrationRepository {
        let mut integrations = MockIntegrationRepository::new();
        integrations.expect_for_team().returning(|team| {
            Ok(Some(crate::ports::TwilioIntegration {
                team_id: team,
                credentials: crate::ports::TwilioCredentials {
                    account_sid: AccountSid::parse(ACCOUNT).expect("account"),
                    auth: crate::ports::TwilioAuth::AuthToken(SecretString::from("t")),
                },
                auth_token: SecretString::from("t"),
                sender: Sender::Number(PhoneNumber::parse("+15005550006").expect("n")),
            }))
        });
        integrations
    }

    #[tokio::test]
    async fn nothing_is_stored_when_twilio_refuses() {
        let refusals = [
            ProviderError::Rejected {
                status: 400,
                code: Some(21211),
                message: "invalid To".into(),
            },
            ProviderError::CredentialsRejected {
                code: Some(20003),
                message: "Authenticate".into(),
            },
            ProviderError::Unavailable {
                reason: "timeout".into(),
            },
            ProviderError::RateLimited { retry_after: None },
        ];
        for refusal in refusals {
            let mut provider = MockSmsProvider::new();
            let answer = refusal.clone();
            provider
                .expect_send_message()
                .times(1)
                .returning(move |_, _| Err(answer.clone()));
            let mut messages = MockMessageRepository::new();
            messages.expect_insert().never();
            let send = SendSms::new(
                Arc::new(messages),
                Arc::new(integration_repo()),
                Arc::new(InMemoryStore::new()),
                Arc::new(provider),
                Arc::new(ManualClock::new(start())),
            );
            let result = send.send(&requester(1), request("hi")).await;
            assert_eq!(
                result.map(|m| m.sid),
                Err(SendSmsError::Provider(refusal.clone())),
                "{refusal:?}"
            );
        }
    }

    #[tokio::test]
    async fn twilios_creation_time_and_sender_are_stored_when_reported() {
        let sid = MessageSid::parse("SM0123456789abcdef0123456789abcdef").expect("sid");
        let twilio_created = start() - chrono::Duration::seconds(3);
        let mut provider = MockSmsProvider::new();
        let reported_sid = sid.clone();
        provider
            .expect_send_message()
            .with(always(), always())
            .returning(move |_, sms| {
                Ok(ProviderMessage {
                    sid: reported_sid.clone(),
                    state: DeliveryState::new(MessageStatus::Accepted),
                    account_sid: None,
                    direction: None,
                    from: Some(Address::parse("+15005550009").expect("address")),
                    to: Some(sms.to.clone().into()),
                    body: Some(sms.body.clone()),
                    date_created: Some(twilio_created),
                    date_sent: None,
                })
            });
        let mut messages = MockMessageRepository::new();
        messages.expect_insert().times(1).returning(|new| {
            assert_eq!(new.first_observation.source, ObservationSource::Send);
            Ok(Message {
                sid: new.sid,
                team_id: new.team_id,
                account_sid: new.account_sid,
                direction: new.direction,
                from: new.from,
                to: new.to,
                body: new.body,
                delivery: new.first_observation.state,
                created_at: new.created_at,
                updated_at: new.first_observation.observed_at,
                last_refreshed_at: None,
                redacted_at: None,
                delivery_unknown_at: None,
                reference: None,
            })
        });
        let send = SendSms::new(
            Arc::new(messages),
            Arc::new(integration_repo()),
            Arc::new(InMemoryStore::new()),
            Arc::new(provider),
            Arc::new(ManualClock::new(start())),
        );

        let stored = send.send(&requester(1), request("hi")).await.expect("sent");

        assert_eq!(stored.sid, sid);
        assert_eq!(stored.created_at, twilio_created);
        assert_eq!(stored.from.as_str(), "+15005550009");
        assert_eq!(stored.delivery.status, MessageStatus::Accepted);
        assert_eq!(stored.updated_at, start());
    }

    #[tokio::test]
    async fn a_failed_insert_after_twilio_accepted_is_a_store_error() {
        let mut messages = MockMessageRepository::new();
        messages
            .expect_insert()
            .returning(|_| Err(RepositoryError::Unavailable("down".into())));
        let send = SendSms::new(
            Arc::new(messages),
            Arc::new(integration_repo()),
            Arc::new(InMemoryStore::new()),
            Arc::new(FakeSmsProvider::new()),
            Arc::new(ManualClock::new(start())),
        );
        let result = send.send(&requester(1), request("hi")).await;
        assert_eq!(
            result.map(|m| m.sid),
            Err(SendSmsError::Store(RepositoryError::Unavailable(
                "down".into()
            )))
        );
    }
}
