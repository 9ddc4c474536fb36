//! What a call can fail with.

use smsdesk_api::ErrorDetail;

/// A call's failure: the service's own answer, or the way to it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered with an error in its one error shape; `error.code` is stable and
    /// meant for programs (the table is in the API guide).
    #[error("smsdesk answered {status} {}: {}", error.code, error.message)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error's code, message and details.
        error: ErrorDetail,
        /// Seconds to wait before retrying (the body's `retryAfterSeconds` or `Retry-After`).
        retry_after_seconds: Option<u64>,
    },
    /// The answer was not what the API documents (a proxy's page, a truncated body).
    #[error("unexpected answer ({status}): {detail}")]
    UnexpectedAnswer {
        /// The HTTP status.
        status: u16,
        /// What was wrong, with the start of the body.
        detail: String,
    },
    /// The request did not reach the service, or its answer did not arrive whole.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The client was given a base URL it cannot use.
    #[error("not an absolute http(s) URL: {0}")]
    InvalidBaseUrl(String),
}

impl ClientError {
    /// The service's error code, for an [`ClientError::Api`] answer.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }

    /// The HTTP status the service answered, if it answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::UnexpectedAnswer { status, .. } => Some(*status),
            Self::Transport(error) => error.status().map(|status| status.as_u16()),
            Self::InvalidBaseUrl(_) => None,
        }
    }
}
