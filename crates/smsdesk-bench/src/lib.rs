//! # smsdesk-bench
//!
//! The benchmarks of issue 8, as a library the `benchmarks` bench target (and the CI test of the
//! quick form) drives. Everything runs in one process on loopback against the Twilio simulator:
//! no internet, no external load generator.
//!
//! Layout:
//! - [`engine`]: workload 1, the refresh engine: our sliding window against barrier batches and
//!   the lower bound computed from the latencies the simulator served; and many concurrent bulk
//!   refreshes against the per-account cap;
//! - [`service`]: a running smsdesk (`smsdesk::Application`) seeded with messages, for the
//!   HTTP workloads;
//! - [`endpoint`]: workload 2, request times of single and bulk refreshes over HTTP;
//! - [`throughput`]: workload 3, requests per second at 64 connections beside a bare actix-web
//!   handler;
//! - [`memory`]: workload 5, resident memory, and the edge rate limiter's clean-up;
//! - [`fleet`]: workload 6, concurrent bulk refreshes spread over three replicas on one
//!   PostgreSQL database, against the account's cap;
//! - [`webhooks`]: workload 7, delivery webhooks at a steady rate of status changes: deliveries
//!   per second and commit-to-first-attempt;
//! - [`stats`]: percentiles and medians; [`report`]: the machine and the Markdown report.
//!
//! [`Size`] picks the full form (for people, minutes) or the quick form (seconds, small sizes,
//! run in CI so the benchmarks never rot).
//!
//! Workload 4 (scale, 1M messages) lives with the store: `crates/smsdesk-store/benches/scale.rs`.

pub mod endpoint;
pub mod engine;
pub mod fleet;
pub mod memory;
pub mod report;
pub mod service;
pub mod stats;
pub mod throughput;
pub mod webhooks;

/// The environment variable that selects the quick form (`SMSDESK_BENCH_QUICK=1`).
pub const QUICK_ENV: &str = "SMSDESK_BENCH_QUICK";

/// The environment variable that runs one workload alone (`SMSDESK_BENCH_ONLY=throughput`) and
/// prints its table instead of the report.
pub const ONLY_ENV: &str = "SMSDESK_BENCH_ONLY";

/// The environment variable naming a PostgreSQL server for workload 2
/// (`postgres://postgres@127.0.0.1:5432/postgres`); a fresh database is created on it and dropped.
pub const POSTGRES_ENV: &str = "SMSDESK_BENCH_POSTGRES_URL";

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The real benchmark: the sizes and latencies of issue 8.
    Full,
    /// Seconds: small sizes and short latencies, to check the benchmarks still run.
    Quick,
}

impl Size {
    /// [`Size::Quick`] when [`QUICK_ENV`] is set to anything but `0` or empty, else full.
    pub fn from_env() -> Self {
        match std::env::var(QUICK_ENV) {
            Ok(value) if !value.is_empty() && value != "0" => Self::Quick,
            _ => Self::Full,
        }
    }

    /// `full` or `quick`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Quick => "quick",
        }
    }
}
