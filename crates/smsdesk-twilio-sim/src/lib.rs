//! # smsdesk-twilio-sim
//!
//! A Twilio look-alike server: the subset of Twilio's Messages API smsdesk uses (create, fetch,
//! delete, and the Messages list with its filters and paging, newest first) with Twilio's paths, HTTP Basic auth, JSON shapes and error bodies. Messages progress
//! like real ones (queued → sending → sent → delivered, some undelivered or failed with real
//! error codes) at a configurable speed, and every change posts a status callback signed exactly
//! as Twilio signs them. Latency follows a log-normal distribution, and faults (429 above a
//! concurrency limit, 5xx, hangs, truncated bodies) can be injected and changed while it runs.
//!
//! Three ways to use it:
//! - in-process: [`SimServer::start`] binds `127.0.0.1:0` and returns a [`SimHandle`] with the
//!   base URL and every test control (seed, set status, advance, delete, inbound SMS, counters,
//!   faults);
//! - as the `smsdesk-twilio-sim` binary, for benchmarks (`--help` lists the flags);
//! - by the smsdesk app when no real Twilio is configured: start it with a demo account.
//!
//! The same controls are served over HTTP under `/_sim` (no auth: bind it to localhost):
//! `GET /_sim/stats`, `POST /_sim/stats/reset`, `GET /_sim/latencies`, `POST /_sim/accounts`,
//! `POST /_sim/messages` (a [`SeedMessage`]), `GET|DELETE /_sim/messages/{sid}`,
//! `POST /_sim/messages/{sid}/status` (`{"status":"delivered","error_code":null}`),
//! `POST /_sim/messages/{sid}/advance`, `POST /_sim/inbound` (an [`InboundSms`]; answers the
//! message and the webhook's status), `PUT /_sim/faults` ([`FaultConfig`]),
//! `PUT /_sim/latency` ([`LatencyConfig`]), `PUT /_sim/speed` (`{"speed":10.0}`).
//!
//! Layout: [`config`] (what it is told), `state` (its memory and counters), `lifecycle`
//! (progression and callbacks), `listing` (the Messages list), `http` (routes), [`server`]
//! (start and handle).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use smsdesk_domain::AccountSid;
//! use smsdesk_twilio_sim::{SimAccount, SimConfig, SimServer};
//!
//! let account = AccountSid::parse("AC00000000000000000000000000000001")?;
//! let sim = SimServer::start(SimConfig::default().with_account(SimAccount::new(account, "token")))
//!     .await?;
//! println!("Twilio at {}", sim.base_url());
//! sim.stop().await;
//! # Ok(()) }
//! ```

pub mod config;
mod http;
mod lifecycle;
mod listing;
pub mod server;
mod state;

pub use config::{
    CallbackConfig, FaultConfig, LIST_LATENCY_PER_MESSAGE, LatencyConfig, OutcomeShares,
    SimAccount, SimApiKey, SimConfig,
};
pub use lifecycle::{ControlError, InboundSms, SeedMessage};
pub use server::{SimError, SimHandle, SimServer};
pub use state::{FAILED_CODES, SimMessage, SimStats, UNDELIVERED_CODES, error_message_for};
