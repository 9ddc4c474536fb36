//! # smsdesk-api
//!
//! The JSON shapes of smsdesk's HTTP API (camelCase on the wire), shared by the server
//! (`smsdesk-web`) and the typed client (`smsdesk-client`), so both speak one definition. A test
//! in `smsdesk-web` checks every type here against the OpenAPI document the server publishes, so
//! the document, the server and the client cannot drift apart.
//!
//! Shapes holding a secret (an auth token, a new API key, a webhook signing secret) are not
//! `Debug` in clear. With the `domain` feature (the server's side) each answer also converts from
//! the domain type it shows; a client never compiles the domain.

use serde::{Deserialize, Serialize};

mod errors;
#[cfg(feature = "domain")]
mod from_domain;

pub use errors::{ErrorBody, ErrorDetail};

/// A point in time, RFC 3339 on the wire.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    /// Twilio's SID.
    pub sid: String,
    /// The Twilio account (plaintext; a public identifier).
    pub account_sid: String,
    /// `inbound`, `outbound-api`, `outbound-call` or `outbound-reply`.
    pub direction: String,
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// Text.
    pub body: String,
    /// The sender's own identifier, given on send.
    pub reference: Option<String>,
    /// Twilio's status word.
    pub status: String,
    /// Twilio's error code (failures only).
    pub error_code: Option<u32>,
    /// Twilio's error text (failures only).
    pub error_message: Option<String>,
    /// What `error_code` means, in one sentence (failures only).
    #[serde(default)]
    pub error_reason: Option<String>,
    /// SMS segments billed.
    pub num_segments: Option<u32>,
    /// Price as Twilio's decimal string.
    pub price: Option<String>,
    /// Currency of `price`.
    pub price_unit: Option<String>,
    /// Creation time at Twilio (RFC 3339).
    pub created_at: Timestamp,
    /// Last change of the stored row.
    pub updated_at: Timestamp,
    /// Last time a refresh asked Twilio about it.
    pub last_refreshed_at: Option<Timestamp>,
    /// When retention emptied the body (and masked the numbers, if configured).
    pub redacted_at: Option<Timestamp>,
    /// `deliveryUnknown` when the message was declared stuck: not final long past the stuck
    /// limit (72 h by default). Cleared by any later change.
    pub status_reason: Option<String>,
    /// When it was declared stuck.
    pub delivery_unknown_at: Option<Timestamp>,
}

/// The `statusReason` of a message declared stuck.
pub const DELIVERY_UNKNOWN: &str = "deliveryUnknown";

/// One observation in a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEventDto {
    /// The observed status.
    pub status: String,
    /// The observed error code.
    pub error_code: Option<u32>,
    /// The observed error text.
    pub error_message: Option<String>,
    /// What `error_code` means, in one sentence; `null` exactly when `error_code` is `null`.
    pub error_reason: Option<String>,
    /// `send`, `poll`, `callback`, `inbound`, `sweep` or `timeout`.
    pub source: String,
    /// When it was observed.
    pub observed_at: Timestamp,
    /// Whether it changed the message (false: a duplicate or a stale report, ignored).
    pub applied: bool,
}

/// A message with its history (`GET /api/messages/{sid}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageWithHistoryDto {
    /// The message.
    #[serde(flatten)]
    pub message: MessageDto,
    /// Every observation, oldest first.
    pub history: Vec<StatusEventDto>,
}

/// How many messages are in one status (in [`DeliverySummaryDto`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCountDto {
    /// The status.
    pub status: String,
    /// How many of the team's messages created in the window have it now.
    pub count: u64,
}

/// The team's delivery summary over a window (`GET /api/messages/summary`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySummaryDto {
    /// The window, in hours.
    pub window_hours: u32,
    /// Its start: messages created at or after this time are counted.
    pub since: Timestamp,
    /// Every message counted.
    pub total: u64,
    /// Delivered or read.
    pub delivered: u64,
    /// Settled outbound deliveries: delivered, read, undelivered or failed.
    pub settled: u64,
    /// `delivered / settled`, from 0 to 1; `null` when nothing is settled yet.
    pub delivery_rate: Option<f64>,
    /// One entry per status that has messages, in the statuses' rank order.
    pub counts: Vec<StatusCountDto>,
}

/// A page of messages (`GET /api/messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePageDto {
    /// Newest first.
    pub messages: Vec<MessageDto>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Links to other pages.
    pub links: PageLinksDto,
}

/// A page's links, as full URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageLinksDto {
    /// The next page, with this page's filters; `null` on the last page.
    pub next: Option<String>,
}

/// What a refresh did with one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeDto {
    /// The message.
    pub sid: String,
    /// Status before.
    pub previous_status: String,
    /// Status after.
    pub new_status: String,
    /// Error code after.
    pub error_code: Option<u32>,
    /// Error text after.
    pub error_message: Option<String>,
    /// What `error_code` means, in one sentence.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_reason: Option<String>,
    /// `updated`, `unchanged`, `failed` or `skipped`.
    pub outcome: String,
    /// Why, for `failed` and `skipped` (e.g. `coolingDown`, `rateLimited`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Human-readable detail of a failure.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// Twilio's code for a failure.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub twilio_code: Option<u32>,
    /// For `coolingDown`: seconds until the message may be refreshed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_seconds: Option<u64>,
}

/// Counts over a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryDto {
    /// Messages considered.
    pub candidates: usize,
    /// Outcomes `updated`.
    pub updated: usize,
    /// Outcomes `unchanged`.
    pub unchanged: usize,
    /// Outcomes `failed`.
    pub failed: usize,
    /// Outcomes `skipped`.
    pub skipped: usize,
    /// Requests made to Twilio (list pages and fetches).
    pub twilio_calls: usize,
    /// Of which pages of the account's Messages list (a sweep).
    pub twilio_list_pages: usize,
    /// Wall-clock duration of the refresh.
    pub duration_ms: u64,
}

/// The answer to a refresh, single or bulk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshResponseDto {
    /// `single` or `bulk`.
    pub mode: String,
    /// The bulk window in hours (bulk only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub window_hours: Option<u32>,
    /// `sweep` (the account's list, then fetches for what it did not list) or `window` (one
    /// fetch per message), bulk only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plan: Option<String>,
    /// One outcome per message, newest first.
    pub outcomes: Vec<OutcomeDto>,
    /// Counts.
    pub summary: SummaryDto,
}

/// `POST /api/integrations/twilio/sms/send`'s body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendSmsDto {
    /// Recipient, E.164.
    pub to: String,
    /// Text, 1 to 1600 characters.
    pub body: String,
    /// Sender number overriding the integration's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Messaging service overriding the integration's sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_service_sid: Option<String>,
    /// The caller's own identifier for the message, up to 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// `PUT /api/integrations/twilio`'s body. Deliberately not `Debug`: it holds secrets.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrationDto {
    /// `AC…`.
    pub account_sid: String,
    /// The account's auth token.
    pub auth_token: String,
    /// `SK…`, with `apiKeySecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sid: Option<String>,
    /// The API key's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<String>,
    /// Default sender number (exactly one of this and `messagingServiceSid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_number: Option<String>,
    /// Default messaging service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_service_sid: Option<String>,
}

/// The answer to `PUT /api/integrations/twilio`: never a token or secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationViewDto {
    /// The account.
    pub account_sid: String,
    /// `authToken` or `apiKey`: what REST calls authenticate with.
    pub credentials: String,
    /// The API key SID, when one is used.
    pub api_key_sid: Option<String>,
    /// Default sender number.
    pub from_number: Option<String>,
    /// Default messaging service.
    pub messaging_service_sid: Option<String>,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    /// The key's id: its public prefix (`smsd_<id>_…`).
    pub id: String,
    /// What it is for.
    pub label: Option<String>,
    /// Its owner.
    pub user_id: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last authenticated a request (updated at most every 5 minutes).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// `GET /api/keys`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyListDto {
    /// The team's keys, oldest first, revoked ones included.
    pub keys: Vec<ApiKeyDto>,
}

/// `POST /api/keys`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKeyDto {
    /// What the key is for (1 to 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `POST /api/keys`'s answer: the only time the key itself is shown. Deliberately not `Debug`
/// (it holds a live key); its `Debug` shows the summary only.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedApiKeyDto {
    /// The key as it will be listed.
    #[serde(flatten)]
    pub summary: ApiKeyDto,
    /// The whole key, `smsd_<id>_<secret>`: store it now, it is not shown again.
    pub key: String,
}

impl std::fmt::Debug for IssuedApiKeyDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedApiKeyDto")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// `POST /api/webhook-endpoints` and `PATCH /api/webhook-endpoints/{id}` bodies: every field
/// optional on PATCH; `url` required on POST (the use case says so).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookEndpointRequestDto {
    /// Where to post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `message.status_changed`, `message.received`; default both (POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Default true (POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A webhook endpoint (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointDto {
    /// `we_…`.
    pub id: String,
    /// Where deliveries are posted.
    pub url: String,
    /// The events it wants.
    pub events: Vec<String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// `gone` when a 410 disabled it.
    pub disabled_reason: Option<String>,
    /// Until when the secret replaced by the last rotation still signs.
    pub previous_secret_expires_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// `GET /api/webhook-endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointListDto {
    /// Oldest first.
    pub endpoints: Vec<WebhookEndpointDto>,
}

/// An endpoint with its signing secret: the answer to creation and rotation only. Not `Debug`
/// in clear.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointWithSecretDto {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: WebhookEndpointDto,
    /// `whsec_…`: store it now, it is not shown again.
    pub secret: String,
}

impl std::fmt::Debug for WebhookEndpointWithSecretDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpointWithSecretDto")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAttemptDto {
    /// When.
    pub attempted_at: Timestamp,
    /// The receiver's status, if it answered.
    pub status_code: Option<u16>,
    /// The start of its answer (1 KiB at most).
    pub response_body: String,
    /// Why there was no answer.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// A delivery with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDeliveryDto {
    /// `wd_…`.
    pub id: String,
    /// The `webhook-id` header of every attempt.
    pub webhook_id: String,
    /// The event.
    #[serde(rename = "type")]
    pub event: String,
    /// The message.
    pub message_sid: String,
    /// The status the event recorded.
    pub message_status: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// Attempts since it was recorded or last replayed.
    pub attempt_count: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// When the change was committed.
    pub created_at: Timestamp,
    /// Newest first.
    pub attempts: Vec<WebhookAttemptDto>,
}

/// `GET /api/webhook-endpoints/{id}/deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDeliveryPageDto {
    /// Newest first.
    pub deliveries: Vec<WebhookDeliveryDto>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
    /// The next page's full URL.
    pub links: PageLinksDto,
}

/// The body of a delivery webhook, as a receiver gets it (signed per Standard Webhooks; verify
/// the `webhook-signature` header before trusting it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEventDto {
    /// `message.status_changed` or `message.received`.
    #[serde(rename = "type")]
    pub event: String,
    /// When the change was observed.
    pub timestamp: Timestamp,
    /// The message as the event left it.
    pub data: WebhookMessageDto,
}

/// The message in a [`WebhookEventDto`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessageDto {
    /// Twilio's SID.
    pub sid: String,
    /// `inbound`, `outbound-api`, `outbound-call` or `outbound-reply`.
    pub direction: String,
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// The sender's reference, given on send.
    pub reference: Option<String>,
    /// The status the event recorded.
    pub status: String,
    /// Twilio's error code, if any.
    pub error_code: Option<u32>,
    /// Twilio's error text, if any.
    pub error_message: Option<String>,
    /// Where the observation came from: `send`, `poll`, `callback`, `inbound`, `sweep` or
    /// `timeout`.
    pub source: String,
}
