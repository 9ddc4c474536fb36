//! Building and running the service: the store, Twilio (real or simulated), the web layer, the
//! demo data, the HTTP server and its housekeeping tasks.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer};
use anyhow::{Context as _, bail};
use async_trait::async_trait;
use smsdesk_domain::fleet_share;
use smsdesk_domain::ports::{Clock, SmsProvider, SystemClock};
use smsdesk_domain::ports::{Leases, ReplicaRegistry};
use smsdesk_domain::services::ApplyRetention;
use smsdesk_store::{Backend, RandomSecrets, SecretCipher, Store, StoreOptions};
use smsdesk_twilio::{TwilioClient, TwilioConfig};
use smsdesk_twilio_sim::{SimConfig, SimHandle, SimServer};
use smsdesk_web::events::FleetDoorbell;
use smsdesk_web::{Readiness, WebConfig, WebPorts, WebState};
use smsdesk_webhooks::HttpWebhookTransport;

use crate::demo;
use crate::settings::Settings;

/// How long a graceful shutdown waits for in-flight requests (a bulk refresh included).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How often housekeeping runs: the edge maps are trimmed, and the fleet's background jobs
/// (parked-callback clean-up, retention) run in whichever replica holds their lease.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);

/// How long a background job's lease lasts without renewal. The holder renews it every
/// [`HOUSEKEEPING_INTERVAL`]; when it dies, another replica takes the job over at its first
/// tick after the lease expires (at most one interval later).
const JOB_LEASE: Duration = Duration::from_secs(30);

/// The lease of the parked-callback clean-up.
const PARKED_CLEANUP_JOB: &str = "parked-callback-cleanup";

/// The lease of retention.
const RETENTION_JOB: &str = "retention";

/// How long a status callback waits for its message's row before it is discarded. A callback
/// normally waits only for the send's own write, so an hour is generous.
const PARKED_CALLBACK_TTL: Duration = Duration::from_secs(3600);

/// How long the fleet doorbell waits before listening again after its connection failed.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// The fleet's doorbell on PostgreSQL: `NOTIFY` after this replica's commits, `LISTEN` for the
/// others'.
struct StoreDoorbell(Store);

#[async_trait]
impl FleetDoorbell for StoreDoorbell {
    async fn announce(&self) -> Result<(), smsdesk_domain::ports::RepositoryError> {
        self.0.announce_changes().await
    }

    async fn listen(&self, on_news: Box<dyn Fn() + Send + Sync>) {
        loop {
            if let Err(error) = self.0.listen_for_changes(on_news.as_ref()).await {
                tracing::warn!(%error, "lost the fleet's change notifications; listening again");
            }
            tokio::time::sleep(LISTEN_RETRY).await;
        }
    }
}

/// A running (or ready to run) smsdesk service.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    store: Store,
    simulator: Option<Arc<SimHandle>>,
    demo_api_key: Option<String>,
    housekeeping: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
    live_events: tokio::task::JoinHandle<()>,
    reconciler: Option<tokio::task::JoinHandle<()>>,
    webhook_worker: tokio::task::JoinHandle<()>,
    /// This process in the fleet's roll call, left on a graceful stop.
    replica: String,
}

/// `/readyz` over the database.
struct StoreReadiness(Store);

#[async_trait]
impl Readiness for StoreReadiness {
    async fn ready(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(2), self.0.ping())
            .await
            .is_ok_and(|pinged| pinged.is_ok())
    }
}

impl Application {
    /// Connects and migrates the store, starts the Twilio simulator unless a real Twilio is
    /// configured, seeds the demo team on a first development start, and binds the listener.
    /// The server does not serve until [`Application::run_until_stopped`] is awaited.
    ///
    /// # Errors
    /// A clear message for a bad configuration (missing key in production, bad key, unreachable
    /// database, address in use).
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        settings.load_secret_files()?;
        let cipher = load_cipher(&settings)?;
        let store = open_store(&settings, cipher).await?;

        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let addr = listener.local_addr().context("reading the bound address")?;

        let (twilio_client, simulator) = twilio(&settings, &store).await?;
        let provider: Arc<dyn SmsProvider> = Arc::new(twilio_client.clone());
        let public_base_url = settings.public_base_url.clone().or_else(|| {
            // With the simulator, callbacks come back to this very process: the whole loop runs
            // offline, and the page sees statuses change without polling.
            simulator.as_ref().map(|_| format!("http://{addr}"))
        });
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let demo_api_key = match (&simulator, settings.is_production()) {
            (Some(sim), false) => demo::ensure_demo(
                &store,
                sim,
                &settings.data_dir,
                provider.clone(),
                clock.clone(),
                public_base_url.clone(),
            )
            .await
            .context("seeding the demo team")?,
            _ => None,
        };
        let shared = Arc::new(store.clone());
        let config = WebConfig {
            demo_api_key: demo_api_key.clone(),
            production: settings.is_production(),
            public_base_url: public_base_url.clone(),
            refresh_policy: settings.refresh_policy(),
            sweep_policy: settings.sweep_policy(),
            reconcile_policy: settings.reconcile_policy().unwrap_or_default(),
            rate_limits: settings.rate_limits(),
            trust_forwarded_headers: settings.trust_forwarded_headers,
            webhook_urls: settings.webhook_urls(),
            ..WebConfig::default()
        };
        let webhook_transport = HttpWebhookTransport::new(settings.webhook_urls())
            .context("building the webhook HTTP client")?;
        let state = WebState::new(
            WebPorts {
                messages: shared.clone(),
                integrations: shared.clone(),
                provider: provider.clone(),
                limiter: shared.clone(),
                inbox: shared.clone(),
                clock: clock.clone(),
                authenticator: shared.clone(),
                readiness: Arc::new(StoreReadiness(store.clone())),
                api_keys: shared.clone(),
                unfinished: shared.clone(),
                stuck: shared.clone(),
                idempotency: shared.clone(),
                change_log: shared.clone(),
                fleet_doorbell: (store.backend() == Backend::Postgres)
                    .then(|| Arc::new(StoreDoorbell(store.clone())) as Arc<dyn FleetDoorbell>),
                notifiers: Vec::new(),
                webhooks: shared.clone(),
                webhook_transport: Arc::new(webhook_transport),
                secrets: Arc::new(RandomSecrets),
            },
            config,
        );
        // The follower starts at the log's head as it is now, before anything is served.
        let log_head = smsdesk_domain::ports::ChangeLog::head(&store)
            .await
            .context("reading the change log")?;
        let live_events = state.spawn_live_events(log_head);

        let retention = settings.retention_policy().map(|policy| {
            tracing::info!(
                after_days = settings.retention_days,
                mask_numbers = policy.mask_numbers,
                "retention is on: old message bodies are redacted"
            );
            ApplyRetention::new(shared.clone(), clock.clone(), policy)
        });
        // This process as the fleet knows it: in lease rows and the replica roll call.
        let replica = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        let fleet = Fleet {
            registry: shared.clone(),
            clock: clock.clone(),
            replica: replica.clone(),
            twilio: twilio_client,
            metrics: state.metrics().clone(),
        };
        // Take this replica's share before serving, so a replica joining a busy fleet never
        // starts with the whole cap.
        fleet.check_in().await;
        let fleet_replica = fleet.replica.clone();
        let heartbeat = spawn_heartbeat(fleet);
        let jobs = FleetJobs {
            leases: shared.clone(),
            clock: clock.clone(),
            holder: replica,
        };
        let reconciler = (settings.reconciler_interval_secs > 0).then(|| {
            spawn_reconciler(
                state.clone(),
                jobs.clone(),
                Duration::from_secs(settings.reconciler_interval_secs),
            )
        });
        let housekeeping = spawn_housekeeping(state.clone(), jobs, retention);
        let webhook_worker = spawn_webhook_worker(state.clone());
        let server = HttpServer::new({
            let state = state.clone();
            move || {
                let state = state.clone();
                App::new().configure(move |cfg| smsdesk_web::configure(cfg, state))
            }
        })
        .workers(settings.http_workers())
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .listen(listener)
        .context("starting the HTTP server")?
        .run();

        Ok(Self {
            addr,
            server,
            store,
            simulator: simulator.map(Arc::new),
            demo_api_key,
            housekeeping,
            live_events,
            reconciler,
            webhook_worker,
            heartbeat,
            replica: fleet_replica,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The demo team's API key, when the demo is running.
    pub fn demo_api_key(&self) -> Option<&str> {
        self.demo_api_key.as_deref()
    }

    /// The built-in Twilio simulator, when no real Twilio is configured (tests steer it).
    pub fn simulator(&self) -> Option<Arc<SimHandle>> {
        self.simulator.clone()
    }

    /// The store (tests inspect it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (Ctrl-C or SIGTERM, or [`ServerHandle::stop`]); then
    /// stops the simulator and closes the store.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.housekeeping.abort();
        self.heartbeat.abort();
        self.live_events.abort();
        // An attempt cut short here is claimed again by any replica once its lease ends.
        self.webhook_worker.abort();
        if let Some(reconciler) = &self.reconciler {
            reconciler.abort();
        }
        // Give this replica's share back at once rather than when its check-in expires.
        if let Err(error) = ReplicaRegistry::leave(&self.store, &self.replica).await {
            tracing::warn!(%error, "could not leave the fleet's roll call");
        }
        // Stop the simulator unless a test still holds it (it then ends with the runtime).
        if let Some(sim) = self.simulator.and_then(|sim| Arc::try_unwrap(sim).ok()) {
            sim.stop().await;
        }
        if let Err(error) = self.store.close().await {
            tracing::warn!(%error, "closing the store");
        }
        served
    }
}

/// How often a replica checks in with the fleet's roll call (and recomputes its share of each
/// Twilio account's cap).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long a check-in counts: two heartbeats. A replica that dies drops out of the count that
/// long after its last check-in, and the others take its share at their next heartbeat.
const REPLICA_TTL: Duration = Duration::from_secs(10);

/// This replica's place in the fleet: its check-ins set its share of each Twilio account's cap.
struct Fleet {
    registry: Arc<dyn ReplicaRegistry>,
    clock: Arc<dyn Clock>,
    replica: String,
    twilio: TwilioClient,
    metrics: Arc<smsdesk_web::Metrics>,
}

impl Fleet {
    /// Checks in and takes `cap / live replicas` of each account's cap; on a store failure the
    /// last share stays (the database is then unreachable for every replica alike).
    async fn check_in(&self) {
        match self
            .registry
            .heartbeat(&self.replica, self.clock.now(), REPLICA_TTL)
            .await
        {
            Ok(live) => {
                let cap = self.twilio.config().per_account_concurrency;
                let share = fleet_share(cap, live);
                if share != self.twilio.share() {
                    tracing::info!(
                        live,
                        share,
                        cap,
                        "fleet changed: new share of the Twilio cap"
                    );
                }
                self.twilio.set_share(share);
                self.metrics.record_fleet(live, self.twilio.share());
            }
            Err(error) => tracing::warn!(%error, "could not check in with the fleet"),
        }
    }
}

fn spawn_heartbeat(fleet: Fleet) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(HEARTBEAT);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate and `build` has just checked in.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            fleet.check_in().await;
        }
    })
}

/// The background jobs only one replica of a fleet runs at a time, each behind its lease.
#[derive(Clone)]
struct FleetJobs {
    leases: Arc<dyn Leases>,
    clock: Arc<dyn Clock>,
    /// This process, as lease holders are named: process id and a random suffix.
    holder: String,
}

impl FleetJobs {
    /// Takes or renews `job`'s lease; a store failure counts as not holding it.
    async fn hold(&self, job: &str) -> bool {
        self.hold_for(job, JOB_LEASE).await
    }

    /// As [`FleetJobs::hold`], for a lease of `lease`.
    async fn hold_for(&self, job: &str, lease: Duration) -> bool {
        match self
            .leases
            .acquire(job, &self.holder, self.clock.now(), lease)
            .await
        {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(%error, job, "could not take the job's lease; skipping it");
                false
            }
        }
    }
}

/// Every [`HOUSEKEEPING_INTERVAL`]: the edge rate limiter and the key cache forget idle keys
/// (in every process, so their memory stays bounded); in the replica holding each job's lease,
/// status callbacks parked longer than [`PARKED_CALLBACK_TTL`] are discarded and, when retention
/// is on, due messages are redacted. Spawned on tokio directly so the service runs on any tokio
/// runtime, not only actix's.
fn spawn_housekeeping(
    state: WebState,
    jobs: FleetJobs,
    retention: Option<ApplyRetention>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            state.rate_limiter().housekeeping();
            state.key_cache().housekeeping();
            if jobs.hold(PARKED_CLEANUP_JOB).await
                && let Err(error) = state
                    .discard_stale_parked_callbacks(PARKED_CALLBACK_TTL)
                    .await
            {
                tracing::warn!(%error, "could not discard stale parked status callbacks");
            }
            if let Some(retention) = &retention
                && jobs.hold(RETENTION_JOB).await
            {
                match retention.run().await {
                    Ok(0) => {}
                    Ok(redacted) => tracing::info!(redacted, "retention redacted old messages"),
                    Err(error) => tracing::warn!(%error, "retention could not run; retrying"),
                }
            }
        }
    })
}

/// The reconciler's lease.
const RECONCILER_JOB: &str = "reconciler";

/// Every `interval`, in the one replica holding the reconciler's lease: a [`Reconcile`] run.
/// The lease lasts one and a half intervals and is renewed at each run, so the fleet runs it
/// once per interval, and another replica takes over within half an interval of the holder's
/// lease running out when it dies.
///
/// [`Reconcile`]: smsdesk_domain::services::Reconcile
/// How often the delivery worker looks for due deliveries when no local change woke it: the
/// bound on how late a delivery recorded by another replica, or a retry coming due, is attempted.
const WEBHOOK_POLL: Duration = Duration::from_millis(250);

/// Every replica's delivery worker: claims due deliveries (the database hands each to one
/// worker), attempts them, and sleeps until a local change rings or the next poll; a full batch
/// goes round again at once.
fn spawn_webhook_worker(state: WebState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let deliveries = state.deliver_webhooks().clone();
        let doorbell = state.webhook_doorbell();
        let batch = u64::try_from(deliveries.policy().batch).unwrap_or(u64::MAX);
        loop {
            match deliveries.deliver_due().await {
                Ok(round) if round.attempted >= batch => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not claim webhook deliveries"),
            }
            tokio::select! {
                () = doorbell.notified() => {}
                () = tokio::time::sleep(WEBHOOK_POLL) => {}
            }
        }
    })
}

fn spawn_reconciler(
    state: WebState,
    jobs: FleetJobs,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let lease = interval + interval / 2;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if !jobs.hold_for(RECONCILER_JOB, lease).await {
                continue;
            }
            if let Err(error) = state.reconcile().run().await {
                tracing::warn!(%error, "the reconciler could not run; retrying at the next interval");
            }
        }
    })
}

/// The secret cipher from the configured key; in development a key is generated into the data
/// directory on first start, so a newcomer needs no set-up.
fn load_cipher(settings: &Settings) -> anyhow::Result<SecretCipher> {
    let current = match &settings.encryption_key {
        Some(key) => key.clone(),
        None if settings.is_production() => {
            bail!("SMSDESK_ENCRYPTION_KEY is required in production (base64 of 32 random bytes)")
        }
        None => development_key(&settings.data_dir)?,
    };
    SecretCipher::from_base64_keys(&current, &settings.old_encryption_keys)
        .context("the encryption key is not usable")
}

fn development_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("encryption.key");
    if path.exists() {
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok(key.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key = SecretCipher::generate_key();
    write_private(&path, &key)?;
    tracing::warn!(
        path = %path.display(),
        "generated a development encryption key; set SMSDESK_ENCRYPTION_KEY in production"
    );
    Ok(key)
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Connects to the configured database (creating the SQLite data directory if needed) and
/// applies pending migrations.
pub async fn open_store(settings: &Settings, cipher: SecretCipher) -> anyhow::Result<Store> {
    let url = settings.database_url();
    if url.starts_with("sqlite:") && settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    }
    let options = StoreOptions {
        max_connections: settings.database_max_connections(),
        ..StoreOptions::new(cipher)
    };
    let store = Store::connect(&url, options)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// The cipher for admin commands (same rules as the server).
pub fn cipher_for(settings: &Settings) -> anyhow::Result<SecretCipher> {
    load_cipher(settings)
}

/// The real Twilio client, or the built-in simulator with every stored integration's account
/// registered (so teams' stored credentials work against it).
async fn twilio(
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<(TwilioClient, Option<SimHandle>)> {
    let mut config = TwilioConfig {
        per_account_concurrency: settings.twilio_account_concurrency.max(1),
        request_timeout: Duration::from_millis(settings.twilio_request_timeout_ms.max(1)),
        ..TwilioConfig::default()
    };
    if let Some(base_url) = &settings.twilio_base_url {
        config.base_url = base_url.trim_end_matches('/').to_owned();
        let client = TwilioClient::new(config).context("building the Twilio client")?;
        tracing::info!(base_url = %base_url, "using Twilio's API");
        return Ok((client, None));
    }
    if settings.is_production() {
        bail!("SMSDESK_TWILIO_BASE_URL is required in production (https://api.twilio.com)");
    }
    let sim = SimServer::start(SimConfig {
        speed: settings.simulator_speed.max(0.0),
        ..SimConfig::default()
    })
    .await
    .context("starting the built-in Twilio simulator")?;
    for account in demo::stored_accounts(store).await? {
        sim.add_account(account);
    }
    tracing::warn!(
        base_url = %sim.base_url(),
        "NO REAL TWILIO CONFIGURED: using the built-in Twilio simulator; no SMS leaves this machine \
         (set SMSDESK_TWILIO_BASE_URL=https://api.twilio.com for real Twilio)"
    );
    config.base_url = sim.base_url().to_owned();
    let client = TwilioClient::new(config).context("building the Twilio client")?;
    Ok((client, Some(sim)))
}
