//! Workload 2: how long a refresh request takes through HTTP when Twilio answers at once (the
//! simulator adds no latency), so what is measured is the service's own work: routing, the edge,
//! authentication, the cool-down claims, the store reads and writes, the loopback calls to the
//! simulator, and the JSON answer.
//!
//! Requests go one at a time (no queueing in the numbers); the first few warm the connection
//! pools and are not counted.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::Size;
use crate::service::RunningService;
use crate::stats::percentile;

const REFRESH_PATH: &str = "/api/integrations/twilio/messages/refresh-status";

/// Requests per kind.
#[derive(Debug, Clone, Copy)]
pub struct EndpointConfig {
    /// Single-message refreshes.
    pub single_requests: usize,
    /// Bulk refreshes (each of 100 messages).
    pub bulk_requests: usize,
    /// Uncounted requests first.
    pub warm_up: usize,
}

impl EndpointConfig {
    /// 1,000 single and 100 bulk requests (quick: 30 and 5).
    pub fn for_size(size: Size) -> Self {
        match size {
            Size::Full => Self {
                single_requests: 1000,
                bulk_requests: 100,
                warm_up: 20,
            },
            Size::Quick => Self {
                single_requests: 30,
                bulk_requests: 5,
                warm_up: 3,
            },
        }
    }
}

/// Request-time percentiles of one kind of request.
#[derive(Debug, Clone, Copy)]
pub struct Latencies {
    /// Requests counted.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
    /// Provider calls per request (1 for a single refresh, up to 100 for a bulk one).
    pub provider_calls: u64,
}

/// Single and bulk refresh times on one database.
#[derive(Debug, Clone)]
pub struct EndpointResult {
    /// `SQLite` or `PostgreSQL`.
    pub backend: &'static str,
    /// `POST …/refresh-status?messageSid=…`.
    pub single: Latencies,
    /// `POST …/refresh-status?hours=24`.
    pub bulk: Latencies,
    /// `GET /api/messages` (no Twilio call), for comparison.
    pub list: Latencies,
}

/// Times single and bulk refreshes against `service`.
///
/// # Errors
/// When a request fails or answers anything but 200.
pub async fn measure(
    service: &RunningService,
    config: EndpointConfig,
) -> anyhow::Result<EndpointResult> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let single_url = |i: usize| {
        let sid = &service.sids[i % service.sids.len()];
        service.url(&format!("{REFRESH_PATH}?messageSid={sid}"))
    };
    let bulk_url = |_: usize| service.url(&format!("{REFRESH_PATH}?hours=24"));
    let list_url = |_: usize| service.url("/api/messages");

    let post = reqwest::Method::POST;
    let single = time_requests(service, config, config.single_requests, |i| {
        client.request(post.clone(), single_url(i))
    })
    .await
    .context("single refreshes")?;
    let bulk = time_requests(service, config, config.bulk_requests, |i| {
        client.request(post.clone(), bulk_url(i))
    })
    .await
    .context("bulk refreshes")?;
    let list = time_requests(service, config, config.single_requests, |i| {
        client.get(list_url(i))
    })
    .await
    .context("listing messages")?;
    Ok(EndpointResult {
        backend: service.backend().name(),
        single,
        bulk,
        list,
    })
}

async fn time_requests(
    service: &RunningService,
    config: EndpointConfig,
    count: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> anyhow::Result<Latencies> {
    let mut times = Vec::with_capacity(count);
    for i in 0..config.warm_up + count {
        if i == config.warm_up {
            service.simulator.reset_stats();
        }
        let started = Instant::now();
        let response = request(i).bearer_auth(&service.api_key).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            bail!(
                "answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        if i >= config.warm_up {
            times.push(elapsed);
        }
    }
    let provider_calls = service.simulator.stats().requests / (count.max(1) as u64);
    Ok(Latencies {
        count,
        p50: percentile(&times, 50.0),
        p99: percentile(&times, 99.0),
        max: percentile(&times, 100.0),
        provider_calls,
    })
}
