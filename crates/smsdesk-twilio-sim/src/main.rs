//! `smsdesk-twilio-sim`: the Twilio simulator as a standalone server, for benchmarks and manual
//! runs. Serves until interrupted (Ctrl-C).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use smsdesk_domain::AccountSid;
use smsdesk_twilio_sim::{
    CallbackConfig, FaultConfig, LatencyConfig, OutcomeShares, SimAccount, SimConfig, SimServer,
};

/// A Twilio look-alike server (Messages API, signed status callbacks, latency and faults).
#[derive(Debug, Parser)]
#[command(name = "smsdesk-twilio-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SIM_BIND", default_value = "127.0.0.1:8089")]
    bind: SocketAddr,
    /// An account as `ACCOUNT_SID:AUTH_TOKEN`; repeat for more.
    #[arg(long = "account", value_parser = parse_account, required = true)]
    accounts: Vec<SimAccount>,
    /// Progression speed (1.0 = real-world pace, 0 = frozen).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Share of messages ending undelivered.
    #[arg(long, default_value_t = 0.1)]
    undelivered_share: f64,
    /// Share of messages ending failed.
    #[arg(long, default_value_t = 0.05)]
    failed_share: f64,
    /// Median added latency per request, in milliseconds (0: none).
    #[arg(long, default_value_t = 0)]
    latency_median_ms: u64,
    /// Log-normal sigma of the latency.
    #[arg(long, default_value_t = 0.5)]
    latency_sigma: f64,
    /// Microseconds each message on a Messages list page adds to its latency.
    #[arg(long, default_value_t = 1000)]
    list_latency_per_message_us: u64,
    /// Answer 429 above this many requests in flight for one account.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Share of requests answered 5xx.
    #[arg(long, default_value_t = 0.0)]
    server_error_share: f64,
    /// Share of requests that hang.
    #[arg(long, default_value_t = 0.0)]
    timeout_share: f64,
    /// How long a hanging request hangs, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_hang_ms: u64,
    /// Share of answers with a truncated JSON body.
    #[arg(long, default_value_t = 0.0)]
    malformed_share: f64,
    /// Share of status callbacks sent twice.
    #[arg(long, default_value_t = 0.0)]
    duplicate_callback_share: f64,
    /// Share of status callbacks delivered out of order.
    #[arg(long, default_value_t = 0.0)]
    out_of_order_callback_share: f64,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Random seed, for reproducible runs.
    #[arg(long)]
    seed: Option<u64>,
}

fn parse_account(value: &str) -> Result<SimAccount, String> {
    let (sid, token) = value
        .split_once(':')
        .ok_or("expected ACCOUNT_SID:AUTH_TOKEN")?;
    let sid = AccountSid::parse(sid).map_err(|e| e.to_string())?;
    if token.is_empty() {
        return Err("the auth token is empty".into());
    }
    Ok(SimAccount::new(sid, token))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = SimConfig {
        bind: args.bind,
        workers: args.workers,
        accounts: args.accounts,
        speed: args.speed,
        outcomes: OutcomeShares {
            undelivered: args.undelivered_share,
            failed: args.failed_share,
        },
        latency: LatencyConfig {
            median: Duration::from_millis(args.latency_median_ms),
            sigma: args.latency_sigma,
        },
        faults: FaultConfig {
            max_in_flight: args.max_in_flight,
            server_error_share: args.server_error_share,
            timeout_share: args.timeout_share,
            timeout_hang: Duration::from_millis(args.timeout_hang_ms),
            malformed_share: args.malformed_share,
        },
        callbacks: CallbackConfig {
            duplicate_share: args.duplicate_callback_share,
            out_of_order_share: args.out_of_order_callback_share,
        },
        seed: args.seed,
        list_latency_per_message: Duration::from_micros(args.list_latency_per_message_us),
    };
    let sim = SimServer::start(config).await?;
    println!("Twilio simulator at {}", sim.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.stop().await;
    Ok(())
}
