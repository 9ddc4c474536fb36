//! # smsdesk-client
//!
//! A typed client for smsdesk's HTTP API: one method per endpoint, the request and answer types
//! of [`smsdesk_api`] (the ones the server itself serialises), and every error answer read into
//! [`ClientError::Api`] with the service's stable `code`.
//!
//! ```no_run
//! use smsdesk_client::{Client, MessageFilter, SendSmsDto};
//!
//! # async fn demo() -> Result<(), smsdesk_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:8080", "smsd_1_secret")?;
//! let sent = client
//!     .send_sms(
//!         &SendSmsDto {
//!             to: "+14155550100".into(),
//!             body: "Your code is 4711".into(),
//!             from: None,
//!             messaging_service_sid: None,
//!             reference: Some("order-4711".into()),
//!         },
//!         Some("order-4711-code"), // a retry with this key sends nothing twice
//!     )
//!     .await?;
//! println!("{} is {}", sent.message.sid, sent.message.status);
//!
//! let mut page = client
//!     .list_messages(&MessageFilter {
//!         reference: Some("order-4711".into()),
//!         ..MessageFilter::default()
//!     })
//!     .await?;
//! loop {
//!     for message in &page.messages {
//!         println!("{} {}", message.sid, message.status);
//!     }
//!     match client.next_messages(&page).await? {
//!         Some(next) => page = next,
//!         None => break,
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod errors;
mod filters;

use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use smsdesk_api::*;
use url::Url;

pub use errors::ClientError;
pub use filters::MessageFilter;

/// The header a send's idempotency key travels in.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The answer header that says a send was answered from an earlier one with the same key.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// A connection to one smsdesk service, authenticated by one API key. Cheap to clone: clones
/// share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    api_key: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// A send's answer: the stored message, and whether it was an earlier send's answer replayed
/// for the same `Idempotency-Key` (nothing was sent this time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message as stored.
    pub message: MessageDto,
    /// True when an earlier send with the same key answered and nothing was sent now.
    pub replayed: bool,
}

impl Client {
    /// A client of the service at `base_url` (e.g. `http://127.0.0.1:8080`) using `api_key`.
    ///
    /// # Errors
    /// [`ClientError::InvalidBaseUrl`] when `base_url` is not an absolute http(s) URL.
    pub fn new(base_url: &str, api_key: impl Into<String>) -> Result<Self, ClientError> {
        Self::with_http(reqwest::Client::new(), base_url, api_key)
    }

    /// As [`Client::new`], over an HTTP client of your own (timeouts, proxies, TLS roots).
    ///
    /// # Errors
    /// [`ClientError::InvalidBaseUrl`] when `base_url` is not an absolute http(s) URL.
    pub fn with_http(
        http: reqwest::Client,
        base_url: &str,
        api_key: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let base = Url::parse(base_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| ClientError::InvalidBaseUrl(base_url.to_owned()))?;
        Ok(Self {
            http,
            base,
            api_key: api_key.into(),
        })
    }

    /// The same service with another API key (another user or team).
    #[must_use]
    pub fn with_api_key(&self, api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            ..self.clone()
        }
    }

    /// `POST /api/integrations/twilio/sms/send`. With `idempotency_key`, a retry of the same
    /// request within 24 hours answers the first send's message and sends nothing.
    ///
    /// # Errors
    /// [`ClientError::Api`] with the service's code (e.g. `invalid_field`,
    /// `idempotency_key_in_progress`, `twilio_rejected`), or a transport error.
    pub async fn send_sms(
        &self,
        request: &SendSmsDto,
        idempotency_key: Option<&str>,
    ) -> Result<Sent, ClientError> {
        let mut builder = self
            .request(
                Method::POST,
                &["api", "integrations", "twilio", "sms", "send"],
            )
            .json(request);
        if let Some(key) = idempotency_key {
            builder = builder.header(IDEMPOTENCY_KEY_HEADER, key);
        }
        let response = answered(builder).await?;
        let replayed = response
            .headers()
            .get(IDEMPOTENT_REPLAYED_HEADER)
            .is_some_and(|value| value == "true");
        Ok(Sent {
            message: decode(response).await?,
            replayed,
        })
    }

    /// `GET /api/messages` with `filter`: a page of the team's messages, newest first.
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `invalid_parameter` naming the filter), or a transport error.
    pub async fn list_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<MessagePageDto, ClientError> {
        let builder = self
            .request(Method::GET, &["api", "messages"])
            .query(&filter.pairs());
        decode(answered(builder).await?).await
    }

    /// The page after `page` (its `links.next`, with the same filters), or `None` on the last.
    ///
    /// # Errors
    /// As [`Client::list_messages`]; [`ClientError::UnexpectedAnswer`] when the link does not
    /// point at this client's service.
    pub async fn next_messages(
        &self,
        page: &MessagePageDto,
    ) -> Result<Option<MessagePageDto>, ClientError> {
        self.follow(page.links.next.as_deref()).await
    }

    /// `GET /api/messages/summary?hours=`: the team's messages created in the last `hours`
    /// (`None`: the service's default, 24), counted by status, with the delivery rate.
    ///
    /// # Errors
    /// [`ClientError::Api`] `invalid_parameter` for hours outside 1 to 720, or a transport error.
    pub async fn delivery_summary(
        &self,
        hours: Option<u32>,
    ) -> Result<DeliverySummaryDto, ClientError> {
        let builder = self
            .request(Method::GET, &["api", "messages", "summary"])
            .query(&hours_query(hours));
        decode(answered(builder).await?).await
    }

    /// `GET /api/messages/{sid}`: one message with its status history, oldest first.
    ///
    /// # Errors
    /// [`ClientError::Api`] `not_found` for a message not in the team, or a transport error.
    pub async fn get_message(&self, sid: &str) -> Result<MessageWithHistoryDto, ClientError> {
        self.call(Method::GET, &["api", "messages", sid]).await
    }

    /// `POST .../refresh-status?messageSid=`: asks Twilio about one message now.
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `cooling_down` with `retry_after_seconds`, `plan_required`).
    pub async fn refresh_message(&self, sid: &str) -> Result<RefreshResponseDto, ClientError> {
        self.refresh(&[("messageSid", sid.to_owned())]).await
    }

    /// `POST .../refresh-status?hours=`: every message of the last `hours` not yet final
    /// (`None`: the service's default, 24).
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `invalid_parameter` for hours out of range, `cooling_down`).
    pub async fn refresh_recent(
        &self,
        hours: Option<u32>,
    ) -> Result<RefreshResponseDto, ClientError> {
        self.refresh(&hours_query(hours)).await
    }

    /// `PUT /api/integrations/twilio` (team admins): connects the team's Twilio account. The
    /// answer never carries the token or secret.
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `forbidden`, `invalid_field`, `account_in_use`).
    pub async fn configure_twilio(
        &self,
        integration: &IntegrationDto,
    ) -> Result<IntegrationViewDto, ClientError> {
        self.call_with(Method::PUT, &["api", "integrations", "twilio"], integration)
            .await
    }

    /// `GET /api/keys` (team admins): the team's API keys, never their secrets.
    ///
    /// # Errors
    /// [`ClientError::Api`] `forbidden` for a member, or a transport error.
    pub async fn list_api_keys(&self) -> Result<ApiKeyListDto, ClientError> {
        self.call(Method::GET, &["api", "keys"]).await
    }

    /// `POST /api/keys` (team admins): a new key, shown only in this answer.
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `forbidden`, `invalid_field` for a label too long).
    pub async fn create_api_key(
        &self,
        label: Option<&str>,
    ) -> Result<IssuedApiKeyDto, ClientError> {
        let body = CreateApiKeyDto {
            label: label.map(str::to_owned),
        };
        self.call_with(Method::POST, &["api", "keys"], &body).await
    }

    /// `DELETE /api/keys/{id}` (team admins): revokes a key; it stops authenticating on every
    /// replica within 4 seconds (the service's key cache).
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `not_found`), or a transport error.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKeyDto, ClientError> {
        self.call(Method::DELETE, &["api", "keys", id]).await
    }

    /// `POST /api/webhook-endpoints` (team admins): a new endpoint with its signing secret, shown
    /// only in this answer.
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `invalid_field` for a URL the service may not post to).
    pub async fn create_webhook_endpoint(
        &self,
        request: &WebhookEndpointRequestDto,
    ) -> Result<WebhookEndpointWithSecretDto, ClientError> {
        self.call_with(Method::POST, &["api", "webhook-endpoints"], request)
            .await
    }

    /// `GET /api/webhook-endpoints` (team admins), oldest first.
    ///
    /// # Errors
    /// [`ClientError::Api`] `forbidden` for a member, or a transport error.
    pub async fn list_webhook_endpoints(&self) -> Result<WebhookEndpointListDto, ClientError> {
        self.call(Method::GET, &["api", "webhook-endpoints"]).await
    }

    /// `GET /api/webhook-endpoints/{id}` (team admins).
    ///
    /// # Errors
    /// [`ClientError::Api`] `not_found` for an endpoint not in the team.
    pub async fn get_webhook_endpoint(&self, id: &str) -> Result<WebhookEndpointDto, ClientError> {
        self.call(Method::GET, &["api", "webhook-endpoints", id])
            .await
    }

    /// `PATCH /api/webhook-endpoints/{id}` (team admins): changes the fields given.
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `not_found`, `invalid_field`).
    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        change: &WebhookEndpointRequestDto,
    ) -> Result<WebhookEndpointDto, ClientError> {
        self.call_with(Method::PATCH, &["api", "webhook-endpoints", id], change)
            .await
    }

    /// `DELETE /api/webhook-endpoints/{id}` (team admins).
    ///
    /// # Errors
    /// [`ClientError::Api`] `not_found`, or a transport error.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), ClientError> {
        answered(self.request(Method::DELETE, &["api", "webhook-endpoints", id])).await?;
        Ok(())
    }

    /// `POST /api/webhook-endpoints/{id}/rotate-secret` (team admins): a new secret; the old one
    /// keeps signing beside it for 24 hours.
    ///
    /// # Errors
    /// [`ClientError::Api`] `not_found`, or a transport error.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
    ) -> Result<WebhookEndpointWithSecretDto, ClientError> {
        self.call(
            Method::POST,
            &["api", "webhook-endpoints", id, "rotate-secret"],
        )
        .await
    }

    /// `GET /api/webhook-endpoints/{id}/deliveries` (team admins): deliveries with their
    /// attempts, newest first; `limit` (1 to 200, default 50).
    ///
    /// # Errors
    /// [`ClientError::Api`] (e.g. `not_found`, `invalid_parameter`).
    pub async fn webhook_deliveries(
        &self,
        id: &str,
        limit: Option<usize>,
    ) -> Result<WebhookDeliveryPageDto, ClientError> {
        let query: Vec<(&str, String)> = limit
            .map(|limit| ("limit", limit.to_string()))
            .into_iter()
            .collect();
        let builder = self
            .request(Method::GET, &["api", "webhook-endpoints", id, "deliveries"])
            .query(&query);
        decode(answered(builder).await?).await
    }

    /// The deliveries after `page`, or `None` on the last page.
    ///
    /// # Errors
    /// As [`Client::webhook_deliveries`].
    pub async fn next_webhook_deliveries(
        &self,
        page: &WebhookDeliveryPageDto,
    ) -> Result<Option<WebhookDeliveryPageDto>, ClientError> {
        self.follow(page.links.next.as_deref()).await
    }

    /// `POST /api/webhook-endpoints/{id}/deliveries/{delivery}/replay` (team admins): schedules a
    /// delivery again, from its first attempt.
    ///
    /// # Errors
    /// [`ClientError::Api`] `not_found`, or a transport error.
    pub async fn replay_webhook_delivery(
        &self,
        endpoint: &str,
        delivery: &str,
    ) -> Result<WebhookDeliveryDto, ClientError> {
        self.call(
            Method::POST,
            &[
                "api",
                "webhook-endpoints",
                endpoint,
                "deliveries",
                delivery,
                "replay",
            ],
        )
        .await
    }

    async fn refresh(&self, query: &[(&str, String)]) -> Result<RefreshResponseDto, ClientError> {
        let builder = self
            .request(
                Method::POST,
                &[
                    "api",
                    "integrations",
                    "twilio",
                    "messages",
                    "refresh-status",
                ],
            )
            .query(query);
        decode(answered(builder).await?).await
    }

    async fn follow<T: DeserializeOwned>(
        &self,
        next: Option<&str>,
    ) -> Result<Option<T>, ClientError> {
        let Some(next) = next else {
            return Ok(None);
        };
        let url = Url::parse(next)
            .ok()
            .filter(|url| url.origin() == self.base.origin())
            .ok_or_else(|| ClientError::UnexpectedAnswer {
                status: StatusCode::OK.as_u16(),
                detail: format!("a next-page link outside this service: {next}"),
            })?;
        let builder = self.http.get(url).bearer_auth(&self.api_key);
        Ok(Some(decode(answered(builder).await?).await?))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<T, ClientError> {
        decode(answered(self.request(method, segments)).await?).await
    }

    async fn call_with<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        decode(answered(self.request(method, segments).json(body)).await?).await
    }

    /// A request to the path made of `segments`, each percent-encoded (a sid or id from a caller
    /// can never change the path), authenticated by the key.
    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        self.http.request(method, url).bearer_auth(&self.api_key)
    }
}

/// Sends `builder`; any answer outside 2xx becomes [`ClientError::Api`] (or
/// [`ClientError::UnexpectedAnswer`] when its body is not the service's error shape).
async fn answered(builder: RequestBuilder) -> Result<Response, ClientError> {
    let response = builder.send().await?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let retry_after_seconds = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value: &HeaderValue| value.to_str().ok())
        .and_then(|text| text.parse().ok());
    let text = response.text().await?;
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Err(ClientError::Api {
            status,
            retry_after_seconds: body.error.retry_after_seconds.or(retry_after_seconds),
            error: body.error,
        }),
        Err(_) => Err(ClientError::UnexpectedAnswer {
            status,
            detail: text.chars().take(200).collect(),
        }),
    }
}

/// `hours` as the `hours` query parameter, or none for the service's default.
fn hours_query(hours: Option<u32>) -> Vec<(&'static str, String)> {
    hours
        .map(|hours| ("hours", hours.to_string()))
        .into_iter()
        .collect()
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|error| ClientError::UnexpectedAnswer {
        status,
        detail: format!("the answer is not the documented JSON: {error}"),
    })
}
