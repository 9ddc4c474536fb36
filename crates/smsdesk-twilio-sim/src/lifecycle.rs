//! How messages change: automatic progression over time, test-driven changes, and the signed
//! status callbacks each change sends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use smsdesk_domain::{AccountSid, MessageSid, MessageStatus};
use smsdesk_twilio::signature::{SIGNATURE_HEADER, compute_signature};

use crate::state::{SimMessage, SimState, error_message_for, lock};

/// Why a control operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No message with this SID.
    #[error("no message {0}")]
    UnknownMessage(MessageSid),
    /// No account with this SID.
    #[error("no account {0}")]
    UnknownAccount(AccountSid),
    /// A message with this SID already exists.
    #[error("message {0} already exists")]
    DuplicateMessage(MessageSid),
    /// The message has no further planned status (`advance` on a finished message).
    #[error("message {0} has no further planned status")]
    NothingToAdvance(MessageSid),
}

/// A message to place in the simulator as if Twilio had it, for tests and demos.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedMessage {
    /// The owning account (must be configured).
    pub account_sid: AccountSid,
    /// Its SID; a fresh one when absent.
    #[serde(default)]
    pub sid: Option<MessageSid>,
    /// Sender.
    #[serde(default)]
    pub from: Option<String>,
    /// Recipient.
    pub to: String,
    /// Text.
    #[serde(default)]
    pub body: String,
    /// Its current status.
    pub status: MessageStatus,
    /// Its error code (Twilio's text for it is filled in).
    #[serde(default)]
    pub error_code: Option<u32>,
    /// Where status callbacks go.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// Let automatic progression carry it on from `status`; otherwise it stays put until the
    /// test moves it (`advance` still follows a normal life from `status`).
    #[serde(default)]
    pub progress: bool,
    /// When it was created, and sent if its status says it was (default: now).
    #[serde(default)]
    pub created_at: Option<chrono::DateTime<Utc>>,
}

impl SeedMessage {
    /// A message of `account_sid` in `status`, to a test number, that does not progress.
    pub fn new(account_sid: AccountSid, status: MessageStatus) -> Self {
        Self {
            account_sid,
            sid: None,
            from: Some("+15005550006".to_owned()),
            to: "+14155550100".to_owned(),
            body: "Hello from the simulator".to_owned(),
            status,
            error_code: None,
            status_callback: None,
            progress: false,
            created_at: None,
        }
    }
}

/// An SMS arriving at one of an account's numbers, for the simulator to announce to a webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct InboundSms {
    /// The receiving account (must be configured).
    pub account_sid: AccountSid,
    /// The sender.
    pub from: String,
    /// The account's number it arrived at.
    pub to: String,
    /// Text.
    pub body: String,
    /// The account's incoming-message webhook (smsdesk's `…/sms/receive`).
    pub webhook_url: String,
}

/// One callback to post.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    url: String,
    auth_token: String,
    params: Vec<(String, String)>,
}

/// Which status comes next.
pub(crate) enum Step {
    /// The next one in the message's plan; `Some(generation)` when the automatic progression
    /// asks (it stops if anything else changed the message since).
    Planned(Option<u64>),
    /// A status a test sets; progression stops.
    Set(MessageStatus, Option<u32>),
}

/// Real-world pause before each status (divided by the speed).
fn pause_before(status: &MessageStatus) -> Duration {
    match status {
        MessageStatus::Queued => Duration::from_millis(250),
        MessageStatus::Sending => Duration::from_millis(500),
        MessageStatus::Sent => Duration::from_secs(1),
        _ => Duration::from_secs(2),
    }
}

impl SimState {
    /// Stores a new message and, if the speed allows, starts its automatic progression.
    pub(crate) fn insert_message(self: &Arc<Self>, message: SimMessage, progress: bool) {
        let sid = message.sid.clone();
        let generation = message.generation;
        lock(&self.messages).insert(sid.clone(), message);
        if progress && self.settings().speed > 0.0 {
            let state = Arc::clone(self);
            tokio::spawn(async move { state.progress(sid, generation).await });
        }
    }

    pub(crate) fn seed(self: &Arc<Self>, seed: SeedMessage) -> Result<SimMessage, ControlError> {
        if !lock(&self.accounts).contains_key(&seed.account_sid) {
            return Err(ControlError::UnknownAccount(seed.account_sid));
        }
        let sid = match seed.sid {
            Some(sid) => sid,
            None => MessageSid::parse(&self.new_sid("SM"))
                .unwrap_or_else(|_| unreachable!("generated SIDs are well formed")),
        };
        if lock(&self.messages).contains_key(&sid) {
            return Err(ControlError::DuplicateMessage(sid));
        }
        let now = seed.created_at.unwrap_or_else(Utc::now);
        // The rest of a normal life, so `advance` works on seeds too; it only runs on its own
        // when `progress` is set.
        let rank = seed.status.rank();
        let plan = self
            .plan(&MessageStatus::Queued)
            .into_iter()
            .filter(|(status, _)| rank.is_some() && status.rank() > rank)
            .collect();
        let message = SimMessage {
            sid,
            account_sid: seed.account_sid,
            messaging_service_sid: None,
            from: seed.from,
            num_segments: segments(&seed.body),
            to: seed.to,
            body: seed.body,
            error_message: seed.error_code.map(|c| error_message_for(c).to_owned()),
            error_code: seed.error_code,
            date_sent: (seed.status.rank() >= MessageStatus::Sent.rank()).then_some(now),
            status: seed.status,
            direction: "outbound-api".to_owned(),
            date_created: now,
            date_updated: now,
            status_callback: seed.status_callback,
            plan,
            generation: 0,
            held_callback: None,
        };
        self.insert_message(message.clone(), seed.progress);
        Ok(message)
    }

    /// Applies a step and returns the message after it with the callbacks to post, or `None`
    /// when the message is gone, its plan is done, or (automatic progression) it was taken over.
    pub(crate) fn transition(
        &self,
        sid: &MessageSid,
        step: Step,
    ) -> Option<(SimMessage, Vec<Delivery>)> {
        let callbacks = self.settings().callbacks;
        let mut messages = lock(&self.messages);
        let message = messages.get_mut(sid)?;
        let (status, code) = match step {
            Step::Planned(expected) => {
                if expected.is_some_and(|g| g != message.generation) || message.plan.is_empty() {
                    return None;
                }
                if expected.is_none() {
                    message.generation += 1;
                }
                message.plan.remove(0)
            }
            Step::Set(status, code) => {
                message.generation += 1;
                message.plan.clear();
                (status, code)
            }
        };
        message.move_to(status, code);
        let mut deliveries = Vec::new();
        if let Some(url) = message.status_callback.clone() {
            let auth_token = lock(&self.accounts)
                .get(&message.account_sid)
                .map(|a| a.auth_token.clone())
                .unwrap_or_default();
            let is_last = message.plan.is_empty() || message.status.is_terminal();
            let params = message.callback_params();
            let mut forms = Vec::new();
            if !is_last
                && message.held_callback.is_none()
                && self.chance() < callbacks.out_of_order_share
            {
                message.held_callback = Some(params);
            } else {
                forms.push(params);
                forms.extend(message.held_callback.take());
            }
            for params in forms {
                let copies = if self.chance() < callbacks.duplicate_share {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    deliveries.push(Delivery {
                        url: url.clone(),
                        auth_token: auth_token.clone(),
                        params: params.clone(),
                    });
                }
            }
        }
        Some((message.clone(), deliveries))
    }

    /// Walks a message through its plan, pausing as a real one would (scaled by the speed).
    async fn progress(self: Arc<Self>, sid: MessageSid, generation: u64) {
        loop {
            let next = {
                let messages = lock(&self.messages);
                match messages.get(&sid) {
                    Some(m) if m.generation == generation => {
                        m.plan.first().map(|(status, _)| pause_before(status))
                    }
                    _ => None,
                }
            };
            let Some(pause) = next else { return };
            let speed = self.settings().speed;
            if speed <= 0.0 {
                return;
            }
            tokio::time::sleep(pause.div_f64(speed)).await;
            match self.transition(&sid, Step::Planned(Some(generation))) {
                Some((_, deliveries)) => self.deliver(deliveries).await,
                None => return,
            }
        }
    }

    /// Posts callbacks one after another, signed with the account's auth token as Twilio does.
    pub(crate) async fn deliver(&self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            let answer = self
                .post_signed(&delivery.url, &delivery.auth_token, &delivery.params)
                .await;
            let counter = match answer {
                Some(status) if (200..300).contains(&status) => &self.counters.callbacks_delivered,
                _ => &self.counters.callbacks_failed,
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Posts a form signed as Twilio signs webhooks; the answer's status, `None` when the
    /// request failed.
    async fn post_signed(
        &self,
        url: &str,
        auth_token: &str,
        params: &[(String, String)],
    ) -> Option<u16> {
        let signature = compute_signature(auth_token, url, params);
        let answer = self
            .callback_http
            .post(url)
            .header(SIGNATURE_HEADER, signature)
            .header("User-Agent", "TwilioProxy/1.1")
            .form(params)
            .send()
            .await;
        match answer {
            Ok(response) => {
                if !response.status().is_success() {
                    tracing::debug!(status = %response.status(), "webhook refused");
                }
                Some(response.status().as_u16())
            }
            Err(error) => {
                tracing::debug!(%error, "webhook failed");
                None
            }
        }
    }

    /// Stores an inbound SMS as `received` and posts Twilio's signed incoming-message webhook
    /// to `inbound.webhook_url`.
    pub(crate) async fn receive(
        &self,
        inbound: InboundSms,
    ) -> Result<(SimMessage, Option<u16>), ControlError> {
        let auth_token = lock(&self.accounts)
            .get(&inbound.account_sid)
            .map(|a| a.auth_token.clone())
            .ok_or_else(|| ControlError::UnknownAccount(inbound.account_sid.clone()))?;
        let sid = MessageSid::parse(&self.new_sid("SM"))
            .unwrap_or_else(|_| unreachable!("generated SIDs are well formed"));
        let now = Utc::now();
        let message = SimMessage {
            sid: sid.clone(),
            account_sid: inbound.account_sid.clone(),
            messaging_service_sid: None,
            from: Some(inbound.from.clone()),
            to: inbound.to.clone(),
            num_segments: segments(&inbound.body),
            body: inbound.body.clone(),
            status: MessageStatus::Received,
            error_code: None,
            error_message: None,
            direction: "inbound".to_owned(),
            date_created: now,
            date_sent: Some(now),
            date_updated: now,
            status_callback: None,
            plan: Vec::new(),
            generation: 0,
            held_callback: None,
        };
        lock(&self.messages).insert(sid.clone(), message.clone());
        let params: Vec<(String, String)> = [
            ("MessageSid", sid.to_string()),
            ("SmsSid", sid.to_string()),
            ("SmsMessageSid", sid.to_string()),
            ("AccountSid", inbound.account_sid.to_string()),
            ("From", inbound.from),
            ("To", inbound.to),
            ("Body", inbound.body),
            ("NumMedia", "0".to_owned()),
            ("NumSegments", message.num_segments.to_string()),
            ("SmsStatus", "received".to_owned()),
            ("ApiVersion", "2010-04-01".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let answer = self
            .post_signed(&inbound.webhook_url, &auth_token, &params)
            .await;
        Ok((message, answer))
    }

    /// Moves a message one planned step on and posts its callbacks.
    pub(crate) async fn advance(&self, sid: &MessageSid) -> Result<SimMessage, ControlError> {
        match self.transition(sid, Step::Planned(None)) {
            Some((message, deliveries)) => {
                self.deliver(deliveries).await;
                Ok(message)
            }
            None if lock(&self.messages).contains_key(sid) => {
                Err(ControlError::NothingToAdvance(sid.clone()))
            }
            None => Err(ControlError::UnknownMessage(sid.clone())),
        }
    }

    /// Sets a message's status (ending its automatic progression) and posts its callbacks.
    pub(crate) async fn set_status(
        &self,
        sid: &MessageSid,
        status: MessageStatus,
        error_code: Option<u32>,
    ) -> Result<SimMessage, ControlError> {
        let (message, deliveries) = self
            .transition(sid, Step::Set(status, error_code))
            .ok_or_else(|| ControlError::UnknownMessage(sid.clone()))?;
        self.deliver(deliveries).await;
        Ok(message)
    }

    pub(crate) fn delete(&self, sid: &MessageSid) -> Result<(), ControlError> {
        lock(&self.messages)
            .remove(sid)
            .map(|_| ())
            .ok_or_else(|| ControlError::UnknownMessage(sid.clone()))
    }
}

/// SMS segments for a body: 160 characters fit one, longer bodies are split into 153-character
/// parts (the rest carries the concatenation header).
pub(crate) fn segments(body: &str) -> u32 {
    let chars = body.chars().count();
    let parts = if chars <= 160 { 1 } else { chars.div_ceil(153) };
    u32::try_from(parts).unwrap_or(u32::MAX)
}
