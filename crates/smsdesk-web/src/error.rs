//! The one error shape every failure is answered with, and how domain and extractor errors map
//! onto it.
//!
//! ```json
//! {"error":{"code":"cooling_down","message":"...","retryAfterSeconds":42}}
//! ```
//! `field` names the parameter or JSON field at fault (400s), `retryAfterSeconds` mirrors the
//! `Retry-After` header (429s), `twilioCode` carries Twilio's error code (502/422 from Twilio).
//! The full table is in `docs/api.md`. In production mode the edge middleware replaces the message
//! of every 5xx answer with a generic one after logging the detail (see [`crate::edge`]).

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use smsdesk_domain::ports::{ProviderError, RepositoryError};
use smsdesk_domain::services::{RefreshOneError, RefreshRecentError, SendSmsError};

/// The message every plan refusal carries.
pub const PLAN_REQUIRED_MESSAGE: &str = "status refresh needs the Pro or Enterprise plan";

/// A failure answered to a client: a status, a stable snake_case code, a message and optional
/// details. Build it with the constructors; render it by returning it from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after_secs: Option<u64>,
    twilio_code: Option<u32>,
    /// The method the path does answer, for a 405's `Allow` header.
    allow: Option<Method>,
}

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Stable, snake_case, meant for programs (e.g. `invalid_parameter`).
    pub code: String,
    /// Meant for people: what went wrong and, for 4xx, how to fix it.
    pub message: String,
    /// The query parameter, path segment or JSON field at fault.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_seconds: Option<u64>,
    /// Twilio's error code, when Twilio refused or failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub twilio_code: Option<u32>,
}

impl ApiError {
    /// An error with a status, code and message and no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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
        let message = format!("this method is not allowed on this path; use {allow}");
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
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
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message).with_field(field)
    }

    /// 400 `invalid_field`: a JSON body field is invalid.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_field(field)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`: the detail is for the log (the edge hides it in production).
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The snake_case code.
    pub fn code(&self) -> &'static str {
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
                code: self.code.to_owned(),
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
            StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
            StatusCode::UNAUTHORIZED => ("unauthorized", "authentication is required"),
            StatusCode::FORBIDDEN => ("forbidden", "not allowed"),
            StatusCode::NOT_FOUND => ("not_found", "no such resource"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this method is not allowed on this path",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "the content type is not supported here",
            ),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests"),
            s if s.is_client_error() => ("bad_request", "the request was refused"),
            _ => ("internal", "the server could not complete the request"),
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
            ApiError::new(StatusCode::BAD_GATEWAY, "twilio_not_found", message)
                .with_twilio_code(Some(20404))
        }
        ProviderError::CredentialsRejected { code, .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "twilio_credentials_rejected",
            message,
        )
        .with_twilio_code(*code),
        ProviderError::RateLimited { retry_after } => {
            let error = ApiError::new(StatusCode::BAD_GATEWAY, "twilio_rate_limited", message)
                .with_twilio_code(Some(20429));
            match retry_after {
                Some(wait) => error.with_retry_after(wait.as_secs().max(1)),
                None => error,
            }
        }
        ProviderError::Rejected { code, .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "twilio_rejected", message)
                .with_twilio_code(*code)
        }
        ProviderError::Unavailable { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "twilio_unavailable", message)
        }
        ProviderError::Unexpected { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "twilio_unexpected", message)
        }
    }
}

/// The store's failures: down is 503 (worth retrying), a duplicate is 409, anything else 500.
pub fn store_error(error: &RepositoryError) -> ApiError {
    match error {
        RepositoryError::Unavailable(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            error.to_string(),
        ),
        RepositoryError::Duplicate(_) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
        }
        RepositoryError::Unexpected(_) => ApiError::internal(error.to_string()),
    }
}

fn integration_missing() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "integration_missing",
        "the team has no Twilio integration configured; set it with PUT /api/integrations/twilio",
    )
}

fn plan_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "plan_required",
        PLAN_REQUIRED_MESSAGE,
    )
}

impl From<RefreshOneError> for ApiError {
    fn from(error: RefreshOneError) -> Self {
        match &error {
            RefreshOneError::PlanNotAllowed { .. } => plan_required(),
            RefreshOneError::MessageNotFound => Self::not_found("no such message"),
            RefreshOneError::CoolingDown { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "cooling_down",
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
            RefreshRecentError::CoolingDown { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "cooling_down",
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
            // Twilio handing back a SID we already store is Twilio's or our bug, not a conflict
            // the client caused.
            SendSmsError::Store(RepositoryError::Duplicate(detail)) => {
                Self::internal(format!("Twilio returned an already stored SID: {detail}"))
            }
            SendSmsError::Store(store) => store_error(store),
        }
    }
}

/// The `JsonConfig` error handler: payload errors in the one shape.
pub fn json_error(error: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &error {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        ),
        E::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with Content-Type: application/json",
        ),
        E::Deserialize(inner) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid for this endpoint: {inner}"),
        ),
        E::Payload(actix_web::error::PayloadError::Overflow) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than the limit",
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
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
        "invalid_parameter",
        format!("the query string is malformed: {error}"),
    )
    .into()
}

/// The `PathConfig` error handler.
pub fn path_error(error: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
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
                SendSmsError::Store(RepositoryError::Duplicate("SM1".into())).into(),
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
                store_error(&RepositoryError::Duplicate("account".into())),
                409,
                "conflict",
                "duplicate on upsert",
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
