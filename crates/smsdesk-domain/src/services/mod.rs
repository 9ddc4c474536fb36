//! The use cases: plain structs over the ports, one error enum per operation.
//!
//! Every use case that stores something hands what it committed to the
//! [`ChangeNotifier`](crate::changes::ChangeNotifier) given with `with_notifier`; see
//! [`crate::changes`].

pub mod api_keys;
mod apply;
pub mod callback;
pub mod integration;
pub mod recent_integrations;
pub mod reconcile;
pub mod refresh;
pub mod retention;
pub mod send;
pub mod webhooks;

pub use crate::access::TeamAdmin;
pub use api_keys::{ManageApiKeys, ManageApiKeysError};
pub use callback::{
    ApplyStatusCallback, CallbackOutcome, InboundSms, ReceiveOutcome, ReceiveSms, SignedBy,
    StatusCallback, WebhookError,
};
pub use integration::{
    ConfigureIntegration, ConfigureIntegrationError, IntegrationField, IntegrationSettings,
};
pub use recent_integrations::{INTEGRATION_FRESH_FOR, RecentIntegrations};
pub use reconcile::{Reconcile, ReconcilePolicy, ReconcileReport};
pub use refresh::{
    FailureReason, MessageOutcome, OutcomeKind, RefreshAnswer, RefreshError, RefreshOneError,
    RefreshRecentError, RefreshReport, RefreshStatus, RefreshSummary, RefreshTarget, SkipReason,
};
pub use retention::{ApplyRetention, RETENTION_BATCH};
pub use send::{MAX_BODY_CHARS, STATUS_CALLBACK_PATH, SendRequest, SendSms, SendSmsError, Sent};
pub use webhooks::{
    DeliverWebhooks, DeliveryPolicy, DeliveryRound, EndpointRequest, EndpointWithSecret,
    ManageWebhooks, ManageWebhooksError,
};
