//! # smsdesk-domain
//!
//! The rules of smsdesk and the ports they need, with no I/O of their own: no database driver,
//! HTTP client or async runtime is a dependency of this crate. Adapters (`smsdesk-store`,
//! `smsdesk-twilio`, `smsdesk-web`) implement or call what is defined here; a backend can embed
//! this crate with its own adapters.
//!
//! Layout:
//! - [`ids`]: validated identifiers (`MessageSid`, `AccountSid`, `TeamId`, `PhoneNumber`, ...);
//! - [`status`]: Twilio's 13 statuses (plus unknown ones, kept verbatim) and directions;
//! - [`rules`]: the forward-only status rule every source of status goes through;
//! - [`delivery_error`]: Twilio error codes explained and classed (temporary or permanent);
//! - [`idempotency`]: the rules of an `Idempotency-Key` on a send;
//! - [`freshness`]: how long a cached credential is trusted, the same bound for every cache;
//! - [`access`]: plans, roles, the requester of a use case and the team-admin rule;
//! - [`api_keys`]: API key ids, labels and summaries;
//! - [`refresh_rules`]: the bulk window, limits and cool-down arithmetic;
//! - [`sweep`]: reading an account's Messages list, and the rule that picks a bulk refresh's plan;
//! - [`retention`]: when message bodies are redacted and numbers masked;
//! - [`summary`]: a team's counts by status over a window, and its delivery rate;
//! - [`ports`]: the traits adapters implement (repositories, limiter, SMS provider, clock);
//! - [`services`]: the use cases, starting with [`services::RefreshStatus`];
//! - [`changes`]: the one path every committed change takes ([`changes::ChangeNotifier`]);
//! - `fakes` (feature `fakes`): in-memory implementations of the ports for tests, examples and
//!   benchmarks.
//!
//! ```
//! use smsdesk_domain::{rules::{decide, StatusDecision}, DeliveryState, MessageStatus,
//!     ObservationSource, StatusObservation};
//!
//! let stored = DeliveryState::new(MessageStatus::Delivered);
//! let late_callback = StatusObservation {
//!     state: DeliveryState::new(MessageStatus::Sent),
//!     source: ObservationSource::Callback,
//!     observed_at: chrono::Utc::now(),
//! };
//! // A late "sent" never regresses a delivered message.
//! assert!(matches!(decide(&stored, &late_callback), StatusDecision::Stale { .. }));
//! ```

pub mod access;
pub mod api_keys;
pub mod changes;
pub mod delivery_error;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod freshness;
pub mod idempotency;
pub mod ids;
pub mod message;
pub mod ports;
pub mod refresh_rules;
pub mod retention;
pub mod rules;
pub mod services;
pub mod status;
pub mod summary;
pub mod sweep;
pub mod webhooks;

pub use access::{Plan, Requester, Role};
pub use changes::{
    Activity, ChangeKind, ChangeNotifier, CommittedChange, LogPosition, LoggedChange,
};
pub use delivery_error::{DeliveryError, ErrorClass};
pub use ids::{
    AccountSid, Address, ApiKeySid, IdError, MAX_REFERENCE_CHARS, MessageReference, MessageSid,
    MessagingServiceSid, PhoneNumber, TeamId, UserId,
};
pub use message::{
    DeliveryState, Message, NewMessage, ObservationSource, StatusEvent, StatusObservation,
    Timestamp,
};
pub use refresh_rules::{
    CooldownClaim, RefreshPolicy, RefreshWindow, RefreshWindowError, describe_period, fleet_share,
};
pub use status::{Direction, MAX_STATUS_WORD_LENGTH, MalformedStatus, MessageStatus};

/// Re-exported so adapters and callers name the same secret type as the ports.
pub use secrecy;
