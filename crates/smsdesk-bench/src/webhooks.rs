//! Workload 7, delivery webhooks: a steady stream of status changes (signed status callbacks, each
//! moving a different message from `sent` to `delivered`) at a fixed rate, with one endpoint
//! subscribed, received by a real HTTP server on loopback. Measured: the deliveries per second
//! and, per change, the time from sending the callback that committed it to its first delivery
//! attempt arriving at the receiver (an upper bound on commit-to-first-attempt: it includes the
//! callback's own handling before the commit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context as _, bail};
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_twilio::signature::{SIGNATURE_HEADER, compute_signature};
use tokio::sync::Semaphore;

use crate::Size;
use crate::service::{Backend, RunningService};
use crate::stats::percentile;

/// How hard and how long.
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig {
    /// Status changes offered per second.
    pub rate: u32,
    /// For how long.
    pub duration: Duration,
    /// Callbacks in flight at most (a load generator's connections).
    pub connections: usize,
    /// How long to wait for the last deliveries after the load ends.
    pub drain_limit: Duration,
}

impl WebhookConfig {
    /// The load (500 changes/s for 10 s), or a small one for the quick form.
    pub fn for_size(size: Size) -> Self {
        match size {
            Size::Full => Self {
                rate: 500,
                duration: Duration::from_secs(10),
                connections: 64,
                drain_limit: Duration::from_secs(60),
            },
            Size::Quick => Self {
                rate: 100,
                duration: Duration::from_secs(2),
                connections: 16,
                drain_limit: Duration::from_secs(30),
            },
        }
    }

    /// Changes offered in all.
    pub fn changes(self) -> usize {
        (f64::from(self.rate) * self.duration.as_secs_f64()) as usize
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct WebhookRun {
    /// The database.
    pub backend: &'static str,
    /// The load.
    pub config: WebhookConfig,
    /// Callbacks answered 200 (each a committed change).
    pub committed: usize,
    /// Callbacks that failed.
    pub refused: usize,
    /// How long offering the load took (behind schedule when the service could not keep up).
    pub load_elapsed: Duration,
    /// Changes whose delivery arrived (at least once).
    pub delivered: usize,
    /// Requests the receiver got (more than `delivered` only if one was delivered twice).
    pub requests: usize,
    /// From the first callback sent to the last first delivery.
    pub delivery_span: Duration,
    /// Callback sent to first delivery arrived, one per delivered change.
    pub latencies: Vec<Duration>,
}

impl WebhookRun {
    /// Changes committed per second while the load ran.
    pub fn changes_per_second(&self) -> f64 {
        self.committed as f64 / self.load_elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Deliveries per second, from the first change to the last delivery.
    pub fn deliveries_per_second(&self) -> f64 {
        self.delivered as f64 / self.delivery_span.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p`-th percentile of commit-to-first-attempt.
    pub fn latency(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// The receiver's record: each message's first arrival, and every request counted.
#[derive(Default)]
struct Arrivals {
    first: HashMap<String, Instant>,
    requests: usize,
}

async fn receive(body: web::Bytes, arrivals: web::Data<Mutex<Arrivals>>) -> HttpResponse {
    let arrived = Instant::now();
    let sid = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|event| event["data"]["sid"].as_str().map(str::to_owned));
    let mut arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
    arrivals.requests += 1;
    if let Some(sid) = sid {
        arrivals.first.entry(sid).or_insert(arrived);
    }
    HttpResponse::Ok().finish()
}

/// One status callback, signed, for one message.
struct SignedCallback {
    sid: String,
    params: Vec<(String, String)>,
    signature: String,
}

/// Runs the workload on `backend`.
///
/// # Errors
/// When the service, the receiver or the endpoint cannot be set up.
pub async fn measure(backend: Backend, config: WebhookConfig) -> anyhow::Result<WebhookRun> {
    let changes = config.changes();
    let service = RunningService::start(backend, changes).await?;
    let result = run(&service, config).await;
    service.stop().await;
    result
}

async fn run(service: &RunningService, config: WebhookConfig) -> anyhow::Result<WebhookRun> {
    let arrivals = web::Data::new(Mutex::new(Arrivals::default()));
    let receiver = {
        let arrivals = arrivals.clone();
        HttpServer::new(move || {
            App::new()
                .app_data(arrivals.clone())
                .route("/hook", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))?
    };
    let receiver_addr = receiver.addrs()[0];
    let receiver = receiver.run();
    let receiver_handle = receiver.handle();
    tokio::spawn(receiver);

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.connections)
        .timeout(Duration::from_secs(10))
        .build()?;
    let created = http
        .post(service.url("/api/webhook-endpoints"))
        .bearer_auth(&service.api_key)
        .json(&serde_json::json!({
            "url": format!("http://{receiver_addr}/hook"),
            "events": ["message.status_changed"],
        }))
        .send()
        .await
        .context("creating the endpoint")?;
    if created.status() != reqwest::StatusCode::CREATED {
        bail!("the endpoint was refused: {}", created.text().await?);
    }

    let url = service.url(STATUS_CALLBACK_PATH);
    let requests: Vec<SignedCallback> = service
        .sids
        .iter()
        .take(config.changes())
        .map(|sid| {
            let params = vec![
                ("AccountSid".to_owned(), service.account_sid.to_string()),
                ("MessageSid".to_owned(), sid.to_string()),
                ("MessageStatus".to_owned(), "delivered".to_owned()),
            ];
            let signature = compute_signature(&service.auth_token, &url, &params);
            SignedCallback {
                sid: sid.to_string(),
                params,
                signature,
            }
        })
        .collect();

    let in_flight = Arc::new(Semaphore::new(config.connections));
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests.len());
    for (n, callback) in requests.into_iter().enumerate() {
        let SignedCallback {
            sid,
            params,
            signature,
        } = callback;
        // The open-loop schedule: change n is due at n / rate, whatever the answers do.
        let due = started + interval * u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = http
                .post(&url)
                .header(SIGNATURE_HEADER, signature)
                .form(&params)
                .send()
                .await;
            drop(permit);
            let ok = answer.is_ok_and(|answer| answer.status().is_success());
            (sid, sent, ok)
        }));
    }
    let mut sent_at = HashMap::new();
    let mut refused = 0;
    for task in tasks {
        let (sid, sent, ok) = task.await?;
        if ok {
            sent_at.insert(sid, sent);
        } else {
            refused += 1;
        }
    }
    let load_elapsed = started.elapsed();

    let drain_started = Instant::now();
    loop {
        let arrived = arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first
            .len();
        if arrived >= sent_at.len() || drain_started.elapsed() > config.drain_limit {
            break;
        }
        // Polling the receiver while the service delivers.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver_handle.stop(true).await;

    let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
    let mut latencies = Vec::with_capacity(sent_at.len());
    let mut last_arrival = started;
    for (sid, sent) in &sent_at {
        if let Some(arrived) = arrivals.first.get(sid) {
            latencies.push(arrived.saturating_duration_since(*sent));
            last_arrival = last_arrival.max(*arrived);
        }
    }
    Ok(WebhookRun {
        backend: service.backend().name(),
        config,
        committed: sent_at.len(),
        refused,
        load_elapsed,
        delivered: latencies.len(),
        requests: arrivals.requests,
        delivery_span: last_arrival.saturating_duration_since(started),
        latencies,
    })
}
