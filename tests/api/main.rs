//! End-to-end tests of the service over HTTP (one test binary; one module per area).

mod client;
mod errors;
mod integration_cli;
mod messages;
mod refresh;
mod tenancy;
