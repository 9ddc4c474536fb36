//! Load and soak, short form: mixed traffic at a steady rate for a few seconds (set
//! `SMSDESK_SOAK_SECS` for a longer run): no 5xx, the p99 latency of the last second close to the
//! first's, and the process's resident memory not growing with the request count.
//!
//! A test binary of its own, so that no other suite shares the cores while it measures (cargo
//! runs test binaries one after another). It starts the service with `smsdesk_test_support::app`,
//! like the other suites.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use smsdesk_domain::MessageStatus;
use smsdesk_domain::services::STATUS_CALLBACK_PATH;

use smsdesk_test_support::app::spawn_app;
use smsdesk_test_support::app::{callback_params, credentials, post_webhook, sign};

/// Requests per second.
const RATE: u64 = 200;

/// The resident set of this process (the service runs in it), in KiB.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_mixed_traffic_has_no_5xx_a_stable_p99_and_flat_memory() {
    let seconds: u64 = std::env::var("SMSDESK_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(3);
    let app = std::sync::Arc::new(spawn_app().await);
    let team = app.demo_team().await;
    let (account, token) = credentials(&app, team).await;
    let sid = app
        .message_without_callbacks(team, MessageStatus::Sent)
        .await;

    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut requests = Vec::new();
    let mut memory = Vec::new();
    for n in 0..seconds * RATE {
        ticks.tick().await;
        if n % RATE == 0 {
            memory.push(resident_kib());
        }
        let app = app.clone();
        let (sid, account, token) = (sid.clone(), account.clone(), token.clone());
        requests.push(tokio::spawn(async move {
            let begun = Instant::now();
            let status = match n % 6 {
                0 => app.get_message(&app.api_key, &sid).await.status(),
                1 => app
                    .http
                    .get(app.url("/api/messages?limit=20"))
                    .bearer_auth(&app.api_key)
                    .send()
                    .await
                    .expect("sent")
                    .status(),
                2 => app.refresh_one(&app.api_key, &sid).await.status(),
                3 => {
                    let params = callback_params(&account, &sid, "sent");
                    let signature = sign(&app, STATUS_CALLBACK_PATH, &token, &params);
                    post_webhook(&app, STATUS_CALLBACK_PATH, &params, Some(&signature))
                        .await
                        .status()
                }
                4 => app
                    .http
                    .get(app.url("/healthz"))
                    .send()
                    .await
                    .expect("sent")
                    .status(),
                _ => app
                    .http
                    .post(app.url("/api/integrations/twilio/sms/send"))
                    .bearer_auth(&app.api_key)
                    .json(&serde_json::json!({"to": "+14155550100", "body": format!("soak {n}")}))
                    .send()
                    .await
                    .expect("sent")
                    .status(),
            };
            (begun.duration_since(started), begun.elapsed(), status)
        }));
    }
    let mut by_second: Vec<Vec<Duration>> = vec![Vec::new(); seconds as usize + 1];
    let mut server_errors = Vec::new();
    for request in requests {
        let (at, latency, status) = request.await.expect("request task");
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            server_errors.push((at, status));
        }
        by_second[(at.as_secs() as usize).min(seconds as usize)].push(latency);
    }
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:?}");

    let first = p99(&mut by_second[0]);
    let last = p99(&mut by_second[seconds as usize - 1]);
    let (warm, end) = (memory[1], resident_kib());
    // Shown with `--nocapture`; docs/reliability.md quotes these figures.
    eprintln!(
        "soak: {} requests in {seconds} s; p99 first second {first:?}, last second {last:?}; \
         resident {warm} KiB after 1 s, {end} KiB at the end",
        seconds * RATE
    );
    assert!(
        last <= first * 3 + Duration::from_millis(50),
        "p99 drifted from {first:?} in the first second to {last:?} in the last"
    );
    // Memory is compared from the second second on (the first warms pools and caches); the
    // allowance is generous, a leak of the per-request state would grow past it with the count.
    assert!(
        end <= warm + 64 * 1024,
        "resident memory grew from {warm} KiB to {end} KiB"
    );
}
