//! Workload 3: requests per second at 64 connections, each endpoint beside a bare actix-web
//! handler (a small JSON answer, two workers like the service) on the same machine as the
//! ceiling.
//!
//! The load generator is in this process: 64 tasks share one keep-alive `reqwest` client (64
//! pooled connections), each sending its next request as soon as the last one is answered, for a
//! fixed time. Loopback only; every request has a timeout, so a stuck server cannot hang the run.
//! The generator competes with the server for the same cores, for the ceiling as for smsdesk, so
//! the ratio is fair even where the absolute numbers are modest.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_twilio::signature::{SIGNATURE_HEADER, compute_signature};

use crate::Size;
use crate::memory::{cpu_time, rss_kib};
use crate::service::RunningService;

/// Concurrent connections.
pub const CONNECTIONS: usize = 64;

/// How long each target is loaded.
pub fn duration_for(size: Size) -> Duration {
    match size {
        Size::Full => Duration::from_secs(10),
        Size::Quick => Duration::from_secs(1),
    }
}

/// What one load run achieved.
#[derive(Debug, Clone)]
pub struct Load {
    /// Answers 2xx.
    pub ok: u64,
    /// Answers otherwise, and transport errors.
    pub errors: u64,
    /// How long the load ran.
    pub elapsed: Duration,
    /// The largest resident memory seen while it ran, KiB.
    pub peak_rss_kib: Option<u64>,
    /// CPU time the whole process (server and generator) used while it ran.
    pub cpu: Option<Duration>,
    /// Up to five kinds of failed request (status and the start of the body, or the transport
    /// error), each with how often it happened.
    pub error_kinds: Vec<(String, u64)>,
    /// Every answered request's time, sent to body read.
    pub latencies: Vec<Duration>,
}

impl Load {
    /// The 99th percentile of the request times.
    pub fn p99(&self) -> Duration {
        crate::stats::percentile(&self.latencies, 99.0)
    }

    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// CPUs kept busy on average (2.0 is both cores of a 2-CPU machine).
    pub fn busy_cpus(&self) -> Option<f64> {
        self.cpu
            .map(|cpu| cpu.as_secs_f64() / self.elapsed.as_secs_f64())
    }

    /// CPU time per successful request, server and generator together.
    pub fn cpu_per_request(&self) -> Option<Duration> {
        let ok = u32::try_from(self.ok).ok().filter(|ok| *ok > 0)?;
        self.cpu.map(|cpu| cpu / ok)
    }
}

/// One target's throughput beside the bare handler's.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was requested, and on which database.
    pub target: String,
    /// Its load.
    pub load: Load,
}

/// A request to send: built afresh for each attempt from a running counter.
pub type MakeRequest = Arc<dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync>;

/// Drives `make`'s requests from `connections` tasks for `duration`, sampling resident memory.
///
/// # Errors
/// When the HTTP client cannot be built.
pub async fn drive(
    connections: usize,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<Load> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(10))
        .build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let error_kinds: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu_time();
    let started = Instant::now();
    let deadline = started + duration;

    let sampler = tokio::spawn({
        let done = done.clone();
        async move {
            let mut peak = rss_kib();
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                peak = peak.max(rss_kib());
            }
            peak
        }
    });
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, make) = (client.clone(), make.clone());
            let (ok, errors, counter) = (ok.clone(), errors.clone(), counter.clone());
            let kinds = error_kinds.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let failure = match make(&client, n).send().await {
                        Ok(response) => {
                            let status = response.status();
                            match response.bytes().await {
                                Ok(_) if status.is_success() => None,
                                Ok(body) => Some(format!(
                                    "HTTP {status}: {}",
                                    String::from_utf8_lossy(&body[..body.len().min(160)])
                                )),
                                Err(error) => Some(format!("reading the body: {error}")),
                            }
                        }
                        Err(error) => Some(format!("transport: {error}")),
                    };
                    latencies.push(sent.elapsed());
                    match failure {
                        None => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(failure) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            let mut kinds = kinds.lock().unwrap_or_else(PoisonError::into_inner);
                            // A few distinct examples are enough to say what went wrong.
                            if kinds.len() < 5 || kinds.contains_key(&failure) {
                                *kinds.entry(failure).or_insert(0) += 1;
                            }
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    done.store(true, Ordering::Relaxed);
    let peak_rss_kib = sampler.await?;
    Ok(Load {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        peak_rss_kib,
        cpu,
        error_kinds: std::mem::take(
            &mut *error_kinds.lock().unwrap_or_else(PoisonError::into_inner),
        )
        .into_iter()
        .collect(),
        latencies,
    })
}

/// A bare actix-web server answering `GET /bare` with `{"ok":true}`, on two workers.
pub struct BareServer {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl BareServer {
    /// Starts it on a free loopback port.
    ///
    /// # Errors
    /// When it cannot bind.
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let server = HttpServer::new(|| {
            App::new().route(
                "/bare",
                web::get()
                    .to(|| async { HttpResponse::Ok().json(serde_json::json!({"ok": true})) }),
            )
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self { addr, handle })
    }

    /// Stops it.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// `GET /api/messages` with the demo key.
pub fn list_request(service: &RunningService) -> MakeRequest {
    let key = service.api_key.clone();
    let url = service.url("/api/messages");
    Arc::new(move |client, _| client.get(&url).bearer_auth(&key))
}

/// `GET /api/messages?until=…` with a different `until` on every request (each a second later,
/// all after every seeded message, so every page holds the same 50 messages): no two requests
/// in flight ask for the same thing, so none can share a read (see `smsdesk_web::coalesce`) and
/// each costs what a page costs alone.
pub fn distinct_list_request(service: &RunningService) -> MakeRequest {
    let key = service.api_key.clone();
    let url = service.url("/api/messages");
    let start = chrono::Utc::now() + chrono::Duration::days(1);
    Arc::new(move |client, n| {
        let until = start + chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 2));
        client.get(&url).bearer_auth(&key).query(&[(
            "until",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )])
    })
}

/// `POST …/refresh-status?messageSid=…`, cycling through the seeded messages.
pub fn refresh_request(service: &RunningService) -> MakeRequest {
    let key = service.api_key.clone();
    let urls: Vec<String> = service
        .sids
        .iter()
        .map(|sid| {
            service.url(&format!(
                "/api/integrations/twilio/messages/refresh-status?messageSid={sid}"
            ))
        })
        .collect();
    Arc::new(move |client, n| {
        let url = &urls[(n as usize) % urls.len()];
        client.post(url).bearer_auth(&key)
    })
}

/// A signed status callback (`sent`, a duplicate) for the seeded messages in turn.
pub fn callback_request(service: &RunningService) -> MakeRequest {
    let url = service.url(STATUS_CALLBACK_PATH);
    let signed: Vec<(Vec<(String, String)>, String)> = service
        .sids
        .iter()
        .map(|sid| {
            let params = vec![
                ("AccountSid".to_owned(), service.account_sid.to_string()),
                ("MessageSid".to_owned(), sid.to_string()),
                ("MessageStatus".to_owned(), "sent".to_owned()),
            ];
            let signature = compute_signature(&service.auth_token, &url, &params);
            (params, signature)
        })
        .collect();
    Arc::new(move |client, n| {
        let (params, signature) = &signed[(n as usize) % signed.len()];
        client
            .post(&url)
            .header(SIGNATURE_HEADER, signature)
            .form(params)
    })
}

/// Loads the bare handler: the ceiling every other row is compared with.
///
/// # Errors
/// When the server cannot start or the client cannot be built.
pub async fn ceiling(duration: Duration) -> anyhow::Result<Row> {
    let bare = BareServer::start()?;
    let bare_url = format!("http://{}/bare", bare.addr);
    let load = drive(
        CONNECTIONS,
        duration,
        Arc::new(move |client, _| client.get(&bare_url)),
    )
    .await?;
    bare.stop().await;
    Ok(Row {
        target: "bare actix-web handler (ceiling)".to_owned(),
        load,
    })
}

/// Loads `GET /api/messages`, single refreshes and duplicate status callbacks of `service`, each
/// for `duration` at [`CONNECTIONS`] connections.
///
/// # Errors
/// When the client cannot be built.
pub async fn measure(service: &RunningService, duration: Duration) -> anyhow::Result<Vec<Row>> {
    measure_selected(service, duration, &Targets::all()).await
}

/// The workload-3 targets to load: all of them, or those [`TARGETS_ENV`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets(Vec<String>);

/// The environment variable that narrows `SMSDESK_BENCH_ONLY=throughput` to some targets, as a
/// comma-separated list of `list`, `distinct-list`, `refresh`, `duplicate` and `new` (for a
/// profile of one).
pub const TARGETS_ENV: &str = "SMSDESK_BENCH_TARGETS";

/// Every target's name, as [`TARGETS_ENV`] takes it.
pub const TARGET_NAMES: [&str; 5] = ["list", "distinct-list", "refresh", "duplicate", "new"];

impl Targets {
    /// Every target.
    pub fn all() -> Self {
        Self(Vec::new())
    }

    /// The targets [`TARGETS_ENV`] names, or every one when it is unset or empty.
    ///
    /// # Errors
    /// When it names a target that does not exist.
    pub fn from_env() -> anyhow::Result<Self> {
        let names: Vec<String> = std::env::var(TARGETS_ENV)
            .unwrap_or_default()
            .split(',')
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect();
        if let Some(unknown) = names
            .iter()
            .find(|name| !TARGET_NAMES.contains(&name.as_str()))
        {
            anyhow::bail!(
                "{TARGETS_ENV}: no target `{unknown}` ({})",
                TARGET_NAMES.join(", ")
            );
        }
        Ok(Self(names))
    }

    /// Whether the target called `name` is to be loaded.
    pub fn includes(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|selected| selected == name)
    }
}

/// [`measure`], for the targets in `selected` only.
///
/// # Errors
/// When the client cannot be built.
pub async fn measure_selected(
    service: &RunningService,
    duration: Duration,
    selected: &Targets,
) -> anyhow::Result<Vec<Row>> {
    let database = service.backend().name();
    let targets = [
        (
            "list",
            "GET /api/messages (first page, 50)",
            list_request(service),
        ),
        (
            "distinct-list",
            "GET /api/messages?until=… (50, no two alike)",
            distinct_list_request(service),
        ),
        (
            "refresh",
            "POST refresh-status?messageSid (single refresh)",
            refresh_request(service),
        ),
        (
            "duplicate",
            "POST status-callback (signed, duplicate `sent`)",
            callback_request(service),
        ),
    ];
    let mut rows = Vec::new();
    for (name, target, make) in targets {
        if !selected.includes(name) {
            continue;
        }
        let load = drive(CONNECTIONS, duration, make).await?;
        rows.push(Row {
            target: format!("{target}, {database}"),
            load,
        });
    }
    Ok(rows)
}

/// Messages seeded for the new-status callbacks: two new statuses each (`delivered`, then
/// `read`), more than 64 connections post in 10 s on this machine (full form).
pub fn new_status_messages(size: Size) -> usize {
    match size {
        Size::Full => 12_000,
        Size::Quick => 1_000,
    }
}

/// Loads signed status callbacks that each bring a new status, on a service seeded with
/// [`new_status_messages`] `sent` messages (see [`new_status_callback_request`]).
///
/// # Errors
/// When the client cannot be built.
pub async fn measure_new_statuses(
    service: &RunningService,
    duration: Duration,
) -> anyhow::Result<Row> {
    let load = drive(CONNECTIONS, duration, new_status_callback_request(service)).await?;
    Ok(Row {
        target: format!(
            "POST status-callback (signed, a new status each), {}",
            service.backend().name()
        ),
        load,
    })
}

/// Status callbacks that each move a message on: every seeded message to `delivered` in turn,
/// then every one to `read`; only after both passes do they repeat (as duplicates).
pub fn new_status_callback_request(service: &RunningService) -> MakeRequest {
    let url = service.url(STATUS_CALLBACK_PATH);
    let signed: Vec<(Vec<(String, String)>, String)> = ["delivered", "read"]
        .into_iter()
        .flat_map(|status| service.sids.iter().map(move |sid| (sid, status)))
        .map(|(sid, status)| {
            let params = vec![
                ("AccountSid".to_owned(), service.account_sid.to_string()),
                ("MessageSid".to_owned(), sid.to_string()),
                ("MessageStatus".to_owned(), status.to_owned()),
            ];
            let signature = compute_signature(&service.auth_token, &url, &params);
            (params, signature)
        })
        .collect();
    Arc::new(move |client, n| {
        let (params, signature) = &signed[(n as usize).min(signed.len() - 1)];
        client
            .post(&url)
            .header(SIGNATURE_HEADER, signature)
            .form(params)
    })
}
