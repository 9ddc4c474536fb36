//! # smsdesk-twilio
//!
//! smsdesk's adapter to Twilio's Programmable Messaging REST API, and the check of the signatures
//! Twilio puts on its webhooks.
//!
//! Layout:
//! - [`client`]: [`TwilioClient`], the domain's [`SmsProvider`](smsdesk_domain::ports::SmsProvider):
//!   fetch and send over one shared connection pool, HTTP Basic auth, error mapping, retries
//!   with full-jitter backoff, and a per-account concurrency cap shared by every caller;
//! - [`config`]: [`TwilioConfig`] and [`RetryPolicy`];
//! - [`signature`]: `X-Twilio-Signature` computation and validation (form and JSON variants, the
//!   port quirk, constant-time comparison);
//! - `retry` and `wire` (private): the retry loop, and lenient reading of Twilio's JSON.
//!
//! ```no_run
//! # async fn demo(credentials: smsdesk_domain::ports::TwilioCredentials,
//! #     sid: smsdesk_domain::MessageSid) {
//! use smsdesk_domain::ports::SmsProvider as _;
//! use smsdesk_twilio::{TwilioClient, TwilioConfig};
//!
//! let client = TwilioClient::new(TwilioConfig::default()).expect("HTTP client");
//! let message = client.fetch_message(&credentials, &sid).await;
//! # }
//! ```

pub mod client;
pub mod config;
mod gate;
mod retry;
pub mod signature;
mod wire;

pub use client::{ClientBuildError, TwilioClient};
pub use config::{DEFAULT_BASE_URL, RetryPolicy, TwilioConfig};
pub use signature::{
    SIGNATURE_HEADER, SignatureError, compute_signature, validate_form, validate_json,
};
