//! A real HTTP receiver of delivery webhooks on loopback, for end-to-end suites: it records every
//! POST (the Standard Webhooks headers and the body), answers 200 or, when told to, fails the next
//! few requests with 500, and can be started on a port chosen in advance so a test can let the
//! service fail against a closed port first and open it later.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use smsdesk_api::WebhookEventDto;
use smsdesk_domain::webhooks::{WebhookSecret, verify};

/// One POST as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedWebhook {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, in seconds.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    /// The body as sent.
    pub body: Vec<u8>,
    /// Whether the receiver answered 2xx (false for a request it was told to fail).
    pub accepted: bool,
}

impl ReceivedWebhook {
    /// Whether its `webhook-signature` verifies with `secret` now (Standard Webhooks).
    pub fn verifies(&self, secret: &WebhookSecret) -> bool {
        verify(
            secret,
            &self.signature,
            &self.id,
            self.timestamp,
            &self.body,
            chrono::Utc::now(),
        )
    }

    /// Its body, read as the documented event (panics if it is not).
    pub fn event(&self) -> WebhookEventDto {
        serde_json::from_slice(&self.body).expect("the documented body")
    }
}

/// Each message's statuses in the order their first accepted deliveries arrived (a retry or
/// a second delivery of one `webhook-id` counts once).
pub fn statuses_per_message(received: &[ReceivedWebhook]) -> HashMap<String, Vec<String>> {
    let mut seen_ids = HashSet::new();
    let mut per_message: HashMap<String, Vec<String>> = HashMap::new();
    for delivery in received.iter().filter(|d| d.accepted) {
        if seen_ids.insert(delivery.id.as_str()) {
            let event = delivery.event();
            per_message
                .entry(event.data.sid)
                .or_default()
                .push(event.data.status);
        }
    }
    per_message
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<ReceivedWebhook>>,
    failures_left: AtomicUsize,
}

/// A receiver on `127.0.0.1`; it stops when dropped.
pub struct WebhookReceiver {
    /// `http://127.0.0.1:<port>/hook`: the endpoint URL to register.
    pub url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn record(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let fail = shared
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    shared
        .seen
        .lock()
        .expect("not poisoned")
        .push(ReceivedWebhook {
            id: header(&req, "webhook-id"),
            timestamp: header(&req, "webhook-timestamp")
                .parse()
                .unwrap_or_default(),
            signature: header(&req, "webhook-signature"),
            body: body.to_vec(),
            accepted: !fail,
        });
    if fail {
        HttpResponse::InternalServerError().body("not now")
    } else {
        HttpResponse::Ok().body("thanks")
    }
}

impl WebhookReceiver {
    /// A receiver on a free loopback port.
    pub fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A receiver on `address` (a port reserved earlier with [`reserve_port`]).
    pub fn start_on(address: SocketAddr) -> Self {
        let shared = Arc::new(Shared::default());
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/hook", web::post().to(record))
        })
        .workers(1)
        .disable_signals()
        .bind(address)
        .expect("the receiver binds");
        let bound = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://{bound}/hook"),
            shared,
            handle,
        }
    }

    /// Answers the next `count` requests with 500.
    pub fn fail_next(&self, count: usize) {
        self.shared.failures_left.store(count, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedWebhook> {
        self.shared.seen.lock().expect("not poisoned").clone()
    }

    /// Polls until `done` holds for what arrived, or panics after `limit`.
    pub async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[ReceivedWebhook]) -> bool,
    ) -> Vec<ReceivedWebhook> {
        let started = Instant::now();
        loop {
            let seen = self.received();
            if done(&seen) {
                return seen;
            }
            assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?}; received {} requests",
                seen.len()
            );
            // A polling interval while another process delivers, not a wait for time to pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// A free loopback port, released at once: nothing listens on it until a receiver is started
/// there, so deliveries to it fail with "connection refused" meanwhile.
pub fn reserve_port() -> SocketAddr {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}
