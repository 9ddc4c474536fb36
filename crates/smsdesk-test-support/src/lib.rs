//! # smsdesk-test-support
//!
//! What smsdesk's test suites share, in one place instead of files included by path:
//! - [`world`]: the HTTP service over the domain's in-memory fakes (an in-memory store, a
//!   scripted Twilio, a manual or system clock, a table of API keys), with a helper that sends
//!   one request through the full actix `App`;
//! - [`browser`]: Debian's headless Chromium over WebDriver (fantoccini), with waits that poll;
//! - `app` (feature `app`): the whole application (`smsdesk::Application` with its SQLite file
//!   and built-in Twilio simulator) started on port 0 for end-to-end suites, and a client for it;
//! - `processes` (feature `app`): real `smsdesk` binaries started as replicas of one fleet, to be
//!   killed with `kill -9`;
//! - [`receiver`]: a real HTTP receiver of delivery webhooks on loopback, failing on request.
//!
//! Other people's tests can use these too: a backend that embeds `smsdesk-web` gets a ready
//! service to point its own tests at.

#[cfg(feature = "app")]
pub mod app;
pub mod browser;
pub mod contract;
#[cfg(feature = "app")]
pub mod postgres;
#[cfg(feature = "app")]
pub mod processes;
pub mod receiver;
pub mod world;
