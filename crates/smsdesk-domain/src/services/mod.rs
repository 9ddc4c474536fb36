//! The use cases: plain structs over the ports, one error enum per operation.

mod apply;
pub mod callback;
pub mod refresh;
pub mod send;

pub use callback::{
    ApplyStatusCallback, CallbackOutcome, InboundSms, ReceiveOutcome, ReceiveSms, StatusCallback,
    WebhookError,
};
pub use refresh::{
    FailureReason, MessageOutcome, OutcomeKind, RefreshOneError, RefreshRecentError, RefreshReport,
    RefreshStatus, RefreshSummary, SkipReason,
};
pub use send::{MAX_BODY_CHARS, STATUS_CALLBACK_PATH, SendRequest, SendSms, SendSmsError};
