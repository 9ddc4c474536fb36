//! The one error shape every failure is answered with, and how domain and extractor errors map
//! onto it.
//!
//! ```json
//! {"error":{"code":ErrorCode::CoolingDown,"message":"...","retryAfterSeconds":42}}
//! ```
//! `field` names the parameter or JSON field at fault (400s), `retryAfterSeconds` mirrors the
//! `Retry-After` header (429s), `twilioCode` carries Twilio's error code (502/422 from Twilio).
//! The full table is in `docs/api.md`. In production mode the edge middleware replaces the message
//! of every 5xx answer with a generic one after logging the detail (see [`crate::edge`]).

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
pub use smsdesk_api::{ErrorBody, ErrorDetail};
use smsdesk_domain::ports::{ProviderError, RepositoryError};
use smsdesk_domain::services::{
    ConfigureIntegrationError, IntegrationField, ManageApiKeysError, ManageWebhooksError,
    RefreshError, RefreshOneError, RefreshRecentError, SendSmsError, WebhookError,
};

/// The message every plan refusal carries.
pub const PLAN_REQUIRED_MESSAGE: &str = "status refresh needs the Pro or Enterprise plan";

/// Every error code the service answers with: stable, snake_case, meant for programs. The table
/// with statuses and meanings is in `docs/api.md`; a test checks both name the same codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the request is malformed in a way no more specific code names.
    BadRequest,
    /// 400: a query parameter or path segment is malformed.
    InvalidParameter,
    /// 400: a query parameter this endpoint does not take.
    UnknownParameter,
    /// 400: two query parameters that exclude each other.
    ConflictingParameters,
    /// 400: a JSON body or form field is invalid.
    InvalidField,
    /// 400: two body fields that exclude each other.
    ConflictingFields,
    /// 400: the body is not valid JSON for this endpoint.
    InvalidJson,
    /// 401: no API key, or one that is unknown or revoked.
    Unauthorized,
    /// 403: the caller's role does not allow this.
    Forbidden,
    /// 403: the team's plan does not include this.
    PlanRequired,
    /// 404: no such resource in the caller's team (or no such endpoint).
    NotFound,
    /// 405: the path answers another method (named in `Allow`).
    MethodNotAllowed,
    /// 409: the team has no Twilio integration.
    IntegrationMissing,
    /// 409: the Twilio account is connected to another team.
    AccountInUse,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body's content type is not the endpoint's.
    UnsupportedMediaType,
    /// 429: a cool-down is running (`Retry-After` says how long).
    CoolingDown,
    /// 429: the edge rate limit is spent (`Retry-After` says how long).
    RateLimited,
    /// 403: a Twilio webhook's signature is missing or wrong, or its account unknown.
    InvalidSignature,
    /// 502: Twilio does not know the message.
    TwilioNotFound,
    /// 502: Twilio refused the team's credentials.
    TwilioCredentialsRejected,
    /// 502: Twilio kept answering 429.
    TwilioRateLimited,
    /// 422: Twilio refused the request itself (e.g. an invalid number).
    TwilioRejected,
    /// 502: Twilio could not be reached or failed.
    TwilioUnavailable,
    /// 502: Twilio answered something unreadable.
    TwilioUnexpected,
    /// 500: a bug or an unreadable row; the detail is in the log.
    Internal,
    /// 503: the database cannot be reached; retry.
    StoreUnavailable,
    /// 503: the message kept changing while a callback was applied; Twilio retries.
    CallbackNotApplied,
    /// 503: a dependency is not reachable (`/readyz`).
    NotReady,
    /// 503: too many live event streams are open.
    TooManyStreams,
    /// 409: a send with this `Idempotency-Key` is still running.
    IdempotencyKeyInProgress,
    /// 422: this `Idempotency-Key` was used for a different send.
    IdempotencyKeyReused,
}

impl ErrorCode {
    /// Every code, for documentation checks.
    pub const ALL: [Self; 32] = [
        Self::BadRequest,
        Self::InvalidParameter,
        Self::UnknownParameter,
        Self::ConflictingParameters,
        Self::InvalidField,
        Self::ConflictingFields,
        Self::InvalidJson,
        Self::Unauthorized,
        Self::Forbidden,
        Self::PlanRequired,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::IntegrationMissing,
        Self::AccountInUse,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::CoolingDown,
        Self::RateLimited,
        Self::InvalidSignature,
        Self::TwilioNotFound,
        Self::TwilioCredentialsRejected,
        Self::TwilioRateLimited,
        Self::TwilioRejected,
        Self::TwilioUnavailable,
        Self::TwilioUnexpected,
        Self::Internal,
        Self::StoreUnavailable,
        Self::CallbackNotApplied,
        Self::NotReady,
        Self::TooManyStreams,
        Self::IdempotencyKeyInProgress,
        Self::IdempotencyKeyReused,
    ];

    /// The code as it appears in the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidParameter => "invalid_parameter",
            Self::UnknownParameter => "unknown_parameter",
            Self::ConflictingParameters => "conflicting_parameters",
            Self::InvalidField => "invalid_field",
            Self::ConflictingFields => "conflicting_fields",
            Self::InvalidJson => "invalid_json",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::PlanRequired => "plan_required",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::IntegrationMissing => "integration_missing",
            Self::AccountInUse => "account_in_use",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::CoolingDown => "cooling_down",
            Self::RateLimited => "rate_limited",
            Self::InvalidSignature => "invalid_signature",
            Self::TwilioNotFound => "twilio_not_found",
            Self::TwilioCredentialsRejected => "twilio_credentials_rejected",
            Self::TwilioRateLimited => "twilio_rate_limited",
            Self::TwilioRejected => "twilio_rejected",
            Self::TwilioUnavailable => "twilio_unavailable",
            Self::TwilioUnexpected => "twilio_unexpected",
            Self::Internal => "internal",
            Self::StoreUnavailable => "store_unavailable",
            Self::CallbackNotApplied => "callback_not_applied",
            Self::NotReady => "not_ready",
            Self::TooManyStreams => "too_many_streams",
            Self::IdempotencyKeyInProgress => "idempotency_key_in_progress",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure answered to a client: a status, a stable snake_case code, a message and optional
/// details. Build it with the constructors; render it by returning it from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    field: Option<String>,
    retry_after_secs: Option<u64>,
    twilio_code: Option<u32>,
    /// The method the path does answer, for a 405's `Allow` header.
    allow: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message and no details.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
            twilio_code: None,
            allow: None,
        }
    }

    /// 405 `method_not_allowed` for a path that answers only `allow`, which the answer's
    /// `Allow` header names, as RFC 9110 asks.
    #[must_use]
    pub fn method_not_allowed(allow: Method) -> Self {
        Self::method_not_allowed_of(&[allow])
    }

    /// 405 `method_not_allowed` for a path that answers the methods `allow`, which the answer's
    /// `Allow` header lists.
    #[must_use]
    pub fn method_not_allowed_of(allow: &[Method]) -> Self {
        let allow = allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!("this method is not allowed on this path; use {allow}");
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                message,
            )
        }
    }

    /// Names the parameter or field at fault.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a retry delay (body and `Retry-After` header); at least one second.
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// Adds Twilio's error code.
    #[must_use]
    pub fn with_twilio_code(mut self, code: Option<u32>) -> Self {
        self.twilio_code = code;
        self
    }

    /// 400 `invalid_parameter`: a query parameter or path segment is malformed.
    pub fn invalid_parameter(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            message,
        )
        .with_field(field)
    }

    /// 400 `invalid_field`: a JSON body field is invalid.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, message).with_field(field)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 500 `internal`: the detail is for the log (the edge hides it in production).
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            detail,
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The snake_case code.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// The code as its enum.
    pub fn error_code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with its message replaced by a generic one that names only the request id:
    /// what production mode sends for a 5xx. Code, Twilio code and retry delay are kept (they
    /// carry no internal detail and clients act on them).
    #[must_use]
    pub fn redacted(&self, request_id: &str) -> Self {
        let what = match self.status {
            StatusCode::BAD_GATEWAY => "Twilio could not complete the request",
            StatusCode::SERVICE_UNAVAILABLE => "the service is temporarily unavailable",
            _ => "the server could not complete the request",
        };
        Self {
            message: format!("{what}; quote request id {request_id} when reporting it"),
            ..self.clone()
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message.clone(),
                field: self.field.clone(),
                retry_after_seconds: self.retry_after_secs,
                twilio_code: self.twilio_code,
            },
        }
    }

    /// An error for an answer some other part of actix produced with `status` (no detail known).
    pub fn from_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => (ErrorCode::BadRequest, "the request is malformed"),
            StatusCode::UNAUTHORIZED => (ErrorCode::Unauthorized, "authentication is required"),
            StatusCode::FORBIDDEN => (ErrorCode::Forbidden, "not allowed"),
            StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such resource"),
            StatusCode::METHOD_NOT_ALLOWED => (
                ErrorCode::MethodNotAllowed,
                "this method is not allowed on this path",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "the body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                ErrorCode::UnsupportedMediaType,
                "the content type is not supported here",
            ),
            StatusCode::TOO_MANY_REQUESTS => (ErrorCode::RateLimited, "too many requests"),
            s if s.is_client_error() => (ErrorCode::BadRequest, "the request was refused"),
            _ => (
                ErrorCode::Internal,
                "the server could not complete the request",
            ),
        };
        Self::new(status, code, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response.json(self.body())
    }
}

/// Twilio's failures. A refusal of the request itself is the client's to fix (422); everything
/// else is Twilio failing us (502).
pub fn provider_error(error: &ProviderError) -> ApiError {
    let message = error.to_string();
    match error {
        ProviderError::NotFound => {
            ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::TwilioNotFound, message)
                .with_twilio_code(Some(20404))
        }
        ProviderError::CredentialsRejected { code, .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::TwilioCredentialsRejected,
            message,
        )
        .with_twilio_code(*code),
        ProviderError::RateLimited { retry_after } => {
            let error = ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::TwilioRateLimited,
                message,
            )
            .with_twilio_code(Some(20429));
            match retry_after {
                Some(wait) => error.with_retry_after(wait.as_secs().max(1)),
                None => error,
            }
        }
        ProviderError::Rejected { code, .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::TwilioRejected,
            message,
        )
        .with_twilio_code(*code),
        ProviderError::Unavailable { .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::TwilioUnavailable,
            message,
        ),
        ProviderError::Unexpected { .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::TwilioUnexpected,
            message,
        ),
    }
}

/// The store's failures, for reads: down is 503 (worth retrying), anything else 500. A
/// duplicate means something different to each operation that writes, so each operation's error
/// enum names it (e.g. `ConfigureIntegrationError::AccountInUse`); reaching here it is a bug.
pub fn store_error(error: &RepositoryError) -> ApiError {
    match error {
        RepositoryError::Unavailable(_) => store_unavailable(error.to_string()),
        RepositoryError::Duplicate(_) | RepositoryError::Unexpected(_) => {
            ApiError::internal(error.to_string())
        }
    }
}

fn store_unavailable(detail: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StoreUnavailable,
        detail,
    )
}

fn integration_missing() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::IntegrationMissing,
        "the team has no Twilio integration configured; set it with PUT /api/integrations/twilio",
    )
}

fn plan_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::PlanRequired,
        PLAN_REQUIRED_MESSAGE,
    )
}

impl From<RefreshOneError> for ApiError {
    fn from(error: RefreshOneError) -> Self {
        match &error {
            RefreshOneError::PlanNotAllowed { .. } => plan_required(),
            RefreshOneError::MessageNotFound => Self::not_found("no such message"),
            RefreshOneError::CoolingDown {
                retry_after_secs, ..
            } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::CoolingDown,
                error.to_string(),
            )
            .with_retry_after(*retry_after_secs),
            RefreshOneError::IntegrationMissing => integration_missing(),
            RefreshOneError::Provider(provider) => provider_error(provider),
            RefreshOneError::Store(store) => store_error(store),
        }
    }
}

impl From<RefreshRecentError> for ApiError {
    fn from(error: RefreshRecentError) -> Self {
        match &error {
            RefreshRecentError::PlanNotAllowed { .. } => plan_required(),
            RefreshRecentError::CoolingDown {
                retry_after_secs, ..
            } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::CoolingDown,
                error.to_string(),
            )
            .with_retry_after(*retry_after_secs),
            RefreshRecentError::Store(store) => store_error(store),
        }
    }
}

impl From<SendSmsError> for ApiError {
    fn from(error: SendSmsError) -> Self {
        match &error {
            SendSmsError::InvalidBody { .. } => Self::invalid_field("body", error.to_string()),
            SendSmsError::IntegrationMissing => integration_missing(),
            SendSmsError::Provider(provider) => provider_error(provider),
            // Twilio's or our bug, not a conflict the client caused.
            SendSmsError::SidAlreadyStored(_) => Self::internal(error.to_string()),
            SendSmsError::Store(store) => store_error(store),
            SendSmsError::IdempotencyKeyInProgress => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::IdempotencyKeyInProgress,
                error.to_string(),
            ),
            SendSmsError::IdempotencyKeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
                error.to_string(),
            ),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::One(one) => one.into(),
            RefreshError::Recent(recent) => recent.into(),
        }
    }
}

/// 403 for every failed authentication of a Twilio webhook, whatever the reason, so a caller
/// cannot probe which accounts exist.
pub fn signature_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::InvalidSignature,
        "the X-Twilio-Signature header is missing or does not match the request",
    )
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match &error {
            WebhookError::UnknownAccount => signature_refused(),
            // Twilio retries a 5xx, and the retry is harmless.
            WebhookError::KeptChanging => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::CallbackNotApplied,
                error.to_string(),
            ),
            WebhookError::StoreUnavailable(_) => store_unavailable(error.to_string()),
            WebhookError::Unexpected(_) => Self::internal(error.to_string()),
        }
    }
}

impl From<ManageApiKeysError> for ApiError {
    fn from(error: ManageApiKeysError) -> Self {
        match &error {
            ManageApiKeysError::NotAdmin => Self::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                error.to_string(),
            ),
            ManageApiKeysError::NotFound => Self::not_found("no such API key"),
            ManageApiKeysError::Store(store) => store_error(store),
        }
    }
}

impl From<ManageWebhooksError> for ApiError {
    fn from(error: ManageWebhooksError) -> Self {
        match &error {
            ManageWebhooksError::NotAdmin => Self::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                error.to_string(),
            ),
            ManageWebhooksError::InvalidUrl(why) => Self::invalid_field("url", why.to_string()),
            ManageWebhooksError::InvalidEvents(why) => {
                Self::invalid_field("events", why.to_string())
            }
            ManageWebhooksError::NotFound => {
                Self::not_found("no such webhook endpoint or delivery")
            }
            ManageWebhooksError::Store(store) => store_error(store),
        }
    }
}

/// The JSON name of an integration field, as `PUT /api/integrations/twilio` spells it.
fn integration_field_name(field: IntegrationField) -> &'static str {
    match field {
        IntegrationField::AccountSid => "accountSid",
        IntegrationField::AuthToken => "authToken",
        IntegrationField::ApiKeySid => "apiKeySid",
        IntegrationField::ApiKeySecret => "apiKeySecret",
        IntegrationField::FromNumber => "fromNumber",
        IntegrationField::MessagingServiceSid => "messagingServiceSid",
    }
}

impl From<ConfigureIntegrationError> for ApiError {
    fn from(error: ConfigureIntegrationError) -> Self {
        use ConfigureIntegrationError as E;
        match error {
            E::NotAdmin => Self::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                error.to_string(),
            ),
            E::Invalid { field, problem } => {
                let name = integration_field_name(field);
                Self::invalid_field(name, format!("{name}: {problem}"))
            }
            E::IncompleteApiKey { missing } => {
                let name = integration_field_name(missing);
                Self::invalid_field(
                    name,
                    "apiKeySid and apiKeySecret go together: give both or neither",
                )
            }
            E::SenderMissing => Self::invalid_field(
                "fromNumber",
                "a default sender is required: fromNumber or messagingServiceSid",
            ),
            E::ConflictingSenders => Self::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::ConflictingFields,
                "give either fromNumber or messagingServiceSid, not both",
            )
            .with_field("messagingServiceSid"),
            E::AccountInUse => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::AccountInUse,
                error.to_string(),
            )
            .with_field("accountSid"),
            E::Store(store) => store_error(&store),
        }
    }
}

/// The `JsonConfig` error handler: payload errors in the one shape.
pub fn json_error(error: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &error {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than the limit of {limit} bytes"),
        ),
        E::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "expected a JSON body with Content-Type: application/json",
        ),
        E::Deserialize(inner) => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("the body is not valid for this endpoint: {inner}"),
        ),
        E::Payload(actix_web::error::PayloadError::Overflow) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "the body is larger than the limit",
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("the body could not be read: {other}"),
        ),
    };
    api.into()
}

/// The `QueryConfig` error handler.
pub fn query_error(
    error: actix_web::error::QueryPayloadError,
    _: &HttpRequest,
) -> actix_web::Error {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidParameter,
        format!("the query string is malformed: {error}"),
    )
    .into()
}

/// The `PathConfig` error handler.
pub fn path_error(error: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidParameter,
        format!("the path is malformed: {error}"),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use smsdesk_domain::Plan;

    fn unavailable() -> RepositoryError {
        RepositoryError::Unavailable("db down".into())
    }

    #[test]
    fn every_domain_error_maps_to_its_status_and_code() {
        let cases: Vec<(ApiError, u16, &str, &str)> = vec![
            (
                RefreshOneError::PlanNotAllowed { plan: Plan::Free }.into(),
                403,
                "plan_required",
                "free plan",
            ),
            (
                RefreshOneError::MessageNotFound.into(),
                404,
                "not_found",
                "unknown message",
            ),
            (
                RefreshOneError::CoolingDown {
                    retry_after_secs: 7,
                    cooldown_secs: 60,
                }
                .into(),
                429,
                "cooling_down",
                "message cool-down",
            ),
            (
                RefreshOneError::IntegrationMissing.into(),
                409,
                "integration_missing",
                "no integration",
            ),
            (
                RefreshOneError::Provider(ProviderError::NotFound).into(),
                502,
                "twilio_not_found",
                "Twilio lost the message",
            ),
            (
                RefreshOneError::Store(unavailable()).into(),
                503,
                "store_unavailable",
                "store down on refresh",
            ),
            (
                RefreshRecentError::PlanNotAllowed { plan: Plan::Free }.into(),
                403,
                "plan_required",
                "bulk on free plan",
            ),
            (
                RefreshRecentError::CoolingDown {
                    retry_after_secs: 3,
                    cooldown_secs: 60,
                }
                .into(),
                429,
                "cooling_down",
                "bulk cool-down",
            ),
            (
                RefreshRecentError::Store(RepositoryError::Unexpected("bad row".into())).into(),
                500,
                "internal",
                "unreadable row",
            ),
            (
                SendSmsError::InvalidBody { chars: 0 }.into(),
                400,
                "invalid_field",
                "empty body",
            ),
            (
                SendSmsError::IntegrationMissing.into(),
                409,
                "integration_missing",
                "send without integration",
            ),
            (
                SendSmsError::Provider(ProviderError::Rejected {
                    status: 400,
                    code: Some(21211),
                    message: "invalid To".into(),
                })
                .into(),
                422,
                "twilio_rejected",
                "Twilio refuses the number",
            ),
            (
                SendSmsError::Provider(ProviderError::CredentialsRejected {
                    code: Some(20003),
                    message: "Authenticate".into(),
                })
                .into(),
                502,
                "twilio_credentials_rejected",
                "bad credentials",
            ),
            (
                SendSmsError::Provider(ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(2)),
                })
                .into(),
                502,
                "twilio_rate_limited",
                "Twilio 429",
            ),
            (
                SendSmsError::Provider(ProviderError::Unavailable {
                    reason: "timeout".into(),
                })
                .into(),
                502,
                "twilio_unavailable",
                "Twilio down",
            ),
            (
                SendSmsError::Provider(ProviderError::Unexpected {
                    reason: "garbage".into(),
                })
                .into(),
                502,
                "twilio_unexpected",
                "Twilio garbage",
            ),
            (
                SendSmsError::SidAlreadyStored("SM1".into()).into(),
                500,
                "internal",
                "Twilio reused a SID",
            ),
            (
                SendSmsError::Store(unavailable()).into(),
                503,
                "store_unavailable",
                "store down on send",
            ),
            (
                ConfigureIntegrationError::AccountInUse.into(),
                409,
                "account_in_use",
                "an account another team uses",
            ),
            (
                WebhookError::KeptChanging.into(),
                503,
                "callback_not_applied",
                "a callback that kept losing races",
            ),
            (
                WebhookError::StoreUnavailable("down".into()).into(),
                503,
                "store_unavailable",
                "store down on a webhook",
            ),
        ];
        for (error, status, code, why) in cases {
            assert_eq!(error.status().as_u16(), status, "{why}");
            assert_eq!(error.code(), code, "{why}");
        }
    }

    #[test]
    fn twilio_codes_and_retry_delays_reach_the_body_and_header() {
        let error: ApiError = SendSmsError::Provider(ProviderError::Rejected {
            status: 400,
            code: Some(21211),
            message: "invalid To".into(),
        })
        .into();
        assert_eq!(error.body().error.twilio_code, Some(21211));

        let cooling: ApiError = RefreshOneError::CoolingDown {
            retry_after_secs: 42,
            cooldown_secs: 60,
        }
        .into();
        let response = cooling.error_response();
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("42")
        );
        assert_eq!(cooling.body().error.retry_after_seconds, Some(42));
    }

    #[test]
    fn the_plan_refusal_says_which_plans_may_refresh() {
        let error: ApiError = RefreshOneError::PlanNotAllowed { plan: Plan::Free }.into();
        assert_eq!(error.message(), PLAN_REQUIRED_MESSAGE);
    }

    #[test]
    fn a_redacted_error_keeps_its_code_but_not_its_detail() {
        let error = ApiError::internal("connection to 10.0.0.5:5432 refused");
        let redacted = error.redacted("req-1");
        assert_eq!(redacted.code(), "internal");
        assert!(!redacted.message().contains("10.0.0.5"));
        assert!(redacted.message().contains("req-1"));
    }

    #[test]
    fn a_401_asks_for_a_bearer_token() {
        let response = ApiError::unauthorized("no key").error_response();
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }
}
