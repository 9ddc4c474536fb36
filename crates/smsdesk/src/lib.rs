//! # smsdesk (the app)
//!
//! Wires the adapters to the domain and runs the service: configuration from flags and
//! environment variables ([`settings`]), start-up ([`startup::Application`]: store, migrations,
//! Twilio or its simulator, the web layer, the demo data, graceful shutdown), the command line
//! ([`cli`]: serve, migrate, admin and data-migration commands), and logging ([`telemetry`]).
//!
//! Tests build an [`Application`] on port 0 and drive it over HTTP, exactly as the binary runs.

pub mod cli;
pub mod demo;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use settings::{Environment, LogFormat, RefreshPlan, Settings};
pub use startup::Application;
