//! The one error shape: every 4xx and 5xx the service answers has this body.

use serde::{Deserialize, Serialize};

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
