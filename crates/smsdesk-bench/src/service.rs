//! A running smsdesk for the HTTP workloads: `smsdesk::Application` on a free loopback port, its
//! built-in simulator frozen at zero latency, the demo team seeded, plus `messages` more outbound
//! messages of that team, all `sent`, in both the simulator and the store.
//!
//! Benchmark settings (said again in the report): both cool-downs are 0 s (else every message and
//! user could be refreshed once a minute only), bulk refreshes fetch every message (the `window`
//! plan: these workloads measure the per-message path), the reconciler is off, and the edge rate
//! limits are raised far above any load here (else the limiter, not the service, would be
//! measured).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use anyhow::{Context as _, bail};
use clap::Parser;
use sea_orm::{ConnectionTrait as _, Database as SeaDatabase};
use smsdesk::{Application, Settings};
use smsdesk_domain::ports::{IntegrationRepository, MessageRepository};
use smsdesk_domain::secrecy::ExposeSecret as _;
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, StatusObservation,
};
use smsdesk_store::Store;
use smsdesk_twilio_sim::{SeedMessage, SimHandle};
use tokio::task::JoinHandle;

/// Which database the service runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database created on this PostgreSQL server (an admin URL) and dropped afterwards.
    Postgres(String),
}

impl Backend {
    /// `SQLite` or `PostgreSQL`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }
}

/// The flags the benchmark passes to the service (the same as `smsdesk serve` would take).
pub const BENCH_FLAGS: &[&str] = &[
    "--env",
    "development",
    "--bind",
    "127.0.0.1:0",
    "--simulator-speed",
    "0",
    "--message-cooldown-secs",
    "0",
    "--bulk-cooldown-secs",
    "0",
    // Workloads 2, 3 and 6 measure the per-message path; workload 1 compares the plans.
    "--refresh-plan",
    "window",
    "--reconciler-interval-secs",
    "0",
    "--rate-limit-per-key",
    "1000000000",
    "--rate-limit-per-key-burst",
    "1000000000",
    "--rate-limit-per-ip",
    "1000000000",
    "--rate-limit-per-ip-burst",
    "1000000000",
    "--rate-limit-per-webhook-ip",
    "1000000000",
    "--rate-limit-per-webhook-ip-burst",
    "1000000000",
];

/// The service's own flags, parsed from [`BENCH_FLAGS`] and more.
#[derive(Parser)]
pub(crate) struct Flags {
    #[command(flatten)]
    pub(crate) settings: Settings,
}

/// A served smsdesk and what the workloads need to talk to it.
pub struct RunningService {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The demo team's API key.
    pub api_key: String,
    /// The seeded messages' SIDs.
    pub sids: Vec<MessageSid>,
    /// The demo team's Twilio account (status callbacks name it).
    pub account_sid: AccountSid,
    /// The demo account's auth token (status callbacks are signed with it).
    pub auth_token: String,
    /// The built-in simulator.
    pub simulator: Arc<SimHandle>,
    backend: Backend,
    handle: ServerHandle,
    served: JoinHandle<std::io::Result<()>>,
    data_dir: PathBuf,
    postgres_database: Option<(String, String)>,
}

impl RunningService {
    /// Builds and serves smsdesk on `backend` with `messages` extra messages.
    ///
    /// # Errors
    /// When the database, the settings or the seeding fail.
    pub async fn start(backend: Backend, messages: usize) -> anyhow::Result<Self> {
        let suffix = format!(
            "{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let data_dir = std::env::temp_dir().join(format!("smsdesk_bench_{suffix}"));
        let mut args: Vec<String> = vec!["smsdesk-bench".into()];
        args.extend(BENCH_FLAGS.iter().map(|flag| (*flag).to_owned()));
        args.extend(["--data-dir".into(), data_dir.display().to_string()]);
        let mut postgres_database = None;
        if let Backend::Postgres(admin_url) = &backend {
            let name = format!("smsdesk_bench_{suffix}");
            let admin = SeaDatabase::connect(admin_url.as_str())
                .await
                .context("connecting to the PostgreSQL server")?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .context("creating the benchmark database")?;
            admin.close().await.ok();
            args.extend(["--database-url".into(), database_url(admin_url, &name)]);
            postgres_database = Some((admin_url.clone(), name));
        }
        let settings = Flags::try_parse_from(args)
            .context("the benchmark flags")?
            .settings;

        let app = Application::build(settings).await?;
        let addr = app.addr();
        let api_key = app
            .demo_api_key()
            .context("the demo team was not seeded")?
            .to_owned();
        let simulator = app.simulator().context("the built-in simulator is off")?;
        let store = app.store().clone();
        let teams = store.list_teams().await?;
        let [team] = teams.as_slice() else {
            bail!("expected only the demo team, found {}", teams.len());
        };
        let integration = store
            .for_team(team.id)
            .await?
            .context("the demo team has no integration")?;
        let account_sid = integration.credentials.account_sid.clone();
        let auth_token = integration.auth_token.expose_secret().to_owned();
        let sids = seed(&store, &simulator, team.id, &account_sid, messages).await?;

        let handle = app.handle();
        let served = tokio::spawn(app.run_until_stopped());
        // One request first, as any client makes: until a key has authenticated once, the edge
        // counts its requests against the address's budget for unverified keys, and a cold
        // burst of 64 would be measured as 429s.
        reqwest::Client::new()
            .get(format!("http://{addr}/api/messages?limit=1"))
            .bearer_auth(&api_key)
            .send()
            .await
            .context("the warm-up request")?
            .error_for_status()
            .context("the warm-up request")?;
        Ok(Self {
            addr,
            api_key,
            sids,
            account_sid,
            auth_token,
            simulator,
            backend,
            handle,
            served,
            data_dir,
            postgres_database,
        })
    }

    /// The database it runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server, removes its data directory and drops a PostgreSQL database.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        drop(self.simulator);
        if let Err(error) = self.served.await {
            eprintln!("the service task ended badly: {error}");
        }
        std::fs::remove_dir_all(&self.data_dir).ok();
        if let Some((admin_url, name)) = self.postgres_database
            && let Ok(admin) = SeaDatabase::connect(admin_url.as_str()).await
        {
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .ok();
            admin.close().await.ok();
        }
    }
}

/// The admin URL with its database replaced by `name` (query kept).
pub(crate) fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{name}{query}")
}

pub(crate) async fn seed(
    store: &Store,
    sim: &SimHandle,
    team: smsdesk_domain::TeamId,
    account: &AccountSid,
    count: usize,
) -> anyhow::Result<Vec<MessageSid>> {
    let now = chrono::Utc::now();
    let mut sids = Vec::with_capacity(count);
    for _ in 0..count {
        let seeded = sim.seed_message(SeedMessage::new(account.clone(), MessageStatus::Sent))?;
        store
            .insert(NewMessage {
                sid: seeded.sid.clone(),
                team_id: team,
                account_sid: account.clone(),
                direction: Direction::OutboundApi,
                from: Address::parse("+15005550006")?,
                to: Address::parse(&seeded.to)?,
                body: seeded.body.clone(),
                first_observation: StatusObservation {
                    state: DeliveryState::new(MessageStatus::Sent),
                    source: ObservationSource::Send,
                    observed_at: now,
                },
                created_at: now,
                reference: None,
            })
            .await?;
        sids.push(seeded.sid);
    }
    Ok(sids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_swaps_only_the_database_name() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/b1",
                "plain URL",
            ),
            (
                "postgres://u@h/postgres?sslmode=disable",
                "postgres://u@h/b1?sslmode=disable",
                "the query survives",
            ),
        ];
        for (admin, expected, why) in cases {
            assert_eq!(database_url(admin, "b1"), expected, "{why}");
        }
    }

    #[test]
    fn the_benchmark_flags_zero_the_cool_downs_and_lift_the_edge_limits() {
        let mut args = vec!["smsdesk-bench".to_owned()];
        args.extend(BENCH_FLAGS.iter().map(|f| (*f).to_owned()));
        let settings = Flags::try_parse_from(args)
            .expect("the flags parse")
            .settings;
        let policy = settings.refresh_policy();
        assert!(policy.message_cooldown.is_zero(), "message cool-down off");
        assert!(policy.bulk_cooldown.is_zero(), "bulk cool-down off");
        assert_eq!(
            settings.rate_limits().per_key_per_minute.get(),
            1_000_000_000,
            "the per-key edge limit is out of the way"
        );
        assert_eq!(settings.bind.ip().to_string(), "127.0.0.1", "loopback only");
    }
}
