//! Workload 6, a fleet: three `smsdesk::Application` replicas on one PostgreSQL database and one
//! shared Twilio simulator that answers 429 above its per-account limit. Many users of one team
//! (one Twilio account) start a bulk refresh each at the same moment, spread over the replicas;
//! the replicas split the account's cap between them through the database's roll call
//! (`cap / live replicas` each). The bound is the cap's: `max(longest call, sum of calls / cap)`
//! over the latencies the simulator served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::future::join_all;
use sea_orm::{ConnectionTrait as _, Database as SeaDatabase};
use smsdesk::{Application, Environment};
use smsdesk_domain::ports::{IntegrationRepository, NewIntegration, Sender};
use smsdesk_domain::secrecy::{ExposeSecret as _, SecretString};
use smsdesk_domain::{AccountSid, PhoneNumber, Plan, Role};
use smsdesk_store::SecretCipher;
use smsdesk_twilio_sim::{FaultConfig, LatencyConfig, SimAccount, SimConfig, SimServer};

use crate::Size;
use crate::engine::{Run, log_normal};
use crate::service::{BENCH_FLAGS, Flags, database_url, seed};
use crate::stats::lower_bound;

/// What the fleet workload runs.
#[derive(Debug, Clone, Copy)]
pub struct FleetConfig {
    /// Replicas on the one database.
    pub replicas: usize,
    /// Users, each starting one bulk refresh, spread over the replicas in turn.
    pub users: usize,
    /// Messages of the team (each refresh asks about all of them).
    pub messages: usize,
    /// The simulator's latency.
    pub latency: LatencyConfig,
    /// The account's cap, configured on every replica and enforced by the simulator.
    pub account_cap: usize,
}

impl FleetConfig {
    /// 3 replicas, 50 users × 100 messages at median 150 ms (quick: 20 × 20 at 20 ms), cap 50.
    pub fn for_size(size: Size) -> Self {
        let (users, messages, latency) = match size {
            Size::Full => (50, 100, log_normal(150, 0.6)),
            Size::Quick => (20, 20, log_normal(20, 0.6)),
        };
        Self {
            replicas: 3,
            users,
            messages,
            latency,
            account_cap: 50,
        }
    }
}

/// What the fleet did.
#[derive(Debug, Clone, Copy)]
pub struct FleetRun {
    /// What ran.
    pub config: FleetConfig,
    /// The measurement (the bound is for the account cap's width).
    pub run: Run,
    /// Bulk refreshes answered with something other than 200.
    pub refused: usize,
}

/// How long the replicas get to see each other (a heartbeat is 5 s).
const ROLL_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the fleet workload on a fresh database created on the PostgreSQL server `admin_url`
/// (dropped afterwards).
///
/// # Errors
/// When the database, a replica or the seeding fails.
pub async fn fleet_bulks(config: FleetConfig, admin_url: &str) -> anyhow::Result<FleetRun> {
    let name = format!(
        "smsdesk_bench_fleet_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let admin = SeaDatabase::connect(admin_url)
        .await
        .context("connecting to the PostgreSQL server")?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .context("creating the fleet's database")?;
    let measured = run_fleet(config, &database_url(admin_url, &name)).await;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .ok();
    admin.close().await.ok();
    measured
}

async fn run_fleet(config: FleetConfig, url: &str) -> anyhow::Result<FleetRun> {
    let sim = Arc::new(
        SimServer::start(SimConfig {
            speed: 0.0,
            latency: config.latency,
            faults: FaultConfig {
                max_in_flight: Some(config.account_cap),
                ..FaultConfig::default()
            },
            ..SimConfig::default()
        })
        .await?,
    );
    let key = SecretCipher::generate_key();
    let data_dir = tempfile_dir()?;
    let mut replicas = Vec::new();
    for _ in 0..config.replicas {
        let mut args: Vec<String> = vec!["smsdesk-bench".into()];
        args.extend(BENCH_FLAGS.iter().map(|flag| (*flag).to_owned()));
        let mut settings = Flags::try_parse_from(args)
            .context("the benchmark flags")?
            .settings;
        settings.environment = Environment::Production;
        settings.data_dir = data_dir.clone();
        settings.database_url = Some(url.to_owned());
        settings.encryption_key = Some(key.clone());
        settings.twilio_base_url = Some(sim.base_url().to_owned());
        settings.twilio_account_concurrency = config.account_cap;
        let app = Application::build(settings).await?;
        let address = format!("http://{}", app.addr());
        let store = app.store().clone();
        let handle = app.handle();
        let served = tokio::spawn(app.run_until_stopped());
        replicas.push((address, store, handle, served));
    }
    let http = reqwest::Client::new();
    let started = Instant::now();
    for (address, ..) in &replicas {
        while fleet_size(&http, address).await != Some(config.replicas) {
            if started.elapsed() > ROLL_CALL_TIMEOUT {
                bail!("the replicas did not see each other within {ROLL_CALL_TIMEOUT:?}");
            }
            // A polling interval while the heartbeats go round.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let store = &replicas[0].1;
    let team = store.create_team("Fleet", Plan::Pro).await?;
    let account = AccountSid::parse("AC0000000000000000000000000000f1ee")?;
    sim.add_account(SimAccount::new(account.clone(), "fleet-token"));
    store
        .upsert(
            team.id,
            NewIntegration {
                account_sid: account.clone(),
                auth_token: SecretString::from("fleet-token"),
                api_key: None,
                sender: Sender::Number(PhoneNumber::parse("+15005550006")?),
            },
        )
        .await?;
    let mut keys = Vec::new();
    for user in 0..config.users {
        let member = store
            .create_user(
                team.id,
                &format!("user {user}"),
                &format!("u{user}@example.test"),
                Role::Member,
            )
            .await?;
        keys.push(
            store
                .create_api_key(member.id)
                .await?
                .key
                .expose_secret()
                .to_owned(),
        );
    }
    seed(store, &sim, team.id, &account, config.messages).await?;

    sim.reset_stats();
    let started = Instant::now();
    let bulks = keys.iter().enumerate().map(|(n, key)| {
        let address = &replicas[n % replicas.len()].0;
        http.post(format!(
            "{address}/api/integrations/twilio/messages/refresh-status?hours=24"
        ))
        .bearer_auth(key)
        .send()
    });
    let mut failed = 0;
    let mut refused = 0;
    for answer in join_all(bulks).await {
        let answer = answer.context("a bulk refresh was not answered")?;
        if !answer.status().is_success() {
            refused += 1;
            continue;
        }
        let body: serde_json::Value = answer.json().await?;
        let summary = &body["summary"];
        failed +=
            summary["failed"].as_u64().unwrap_or(0) + summary["skipped"].as_u64().unwrap_or(0);
    }
    let elapsed = started.elapsed();
    let stats = sim.stats();
    let run = Run {
        elapsed,
        bound: lower_bound(&sim.latencies(), config.account_cap),
        requests: stats.requests,
        rate_limited: stats.rate_limited,
        max_in_flight: stats.max_in_flight,
        failed: usize::try_from(failed).unwrap_or(usize::MAX),
    };
    for (_, store, handle, served) in replicas {
        handle.stop(true).await;
        served.await.ok();
        drop(store);
    }
    std::fs::remove_dir_all(&data_dir).ok();
    Ok(FleetRun {
        config,
        run,
        refused,
    })
}

/// The live replicas `address` saw at its last heartbeat.
async fn fleet_size(http: &reqwest::Client, address: &str) -> Option<usize> {
    let text = http
        .get(format!("{address}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("smsdesk_fleet_replicas "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|live| live as usize)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "smsdesk_bench_fleet_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
