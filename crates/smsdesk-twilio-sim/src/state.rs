//! The simulator's memory: accounts, messages and their planned futures, counters, randomness.
//! Shared by every worker and by the in-process handle; every lock is held briefly and never
//! across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rand_distr::{Distribution as _, LogNormal};
use serde::Serialize;
use serde_json::{Value, json};
use smsdesk_domain::{AccountSid, MessageSid, MessageStatus};

use crate::config::{
    CallbackConfig, FaultConfig, LatencyConfig, OutcomeShares, SimAccount, SimConfig,
};

/// Twilio's delivery error codes the simulator ends undelivered messages with.
pub const UNDELIVERED_CODES: [u32; 5] = [30003, 30005, 30006, 30007, 30008];
/// Twilio's error codes the simulator ends failed messages with.
pub const FAILED_CODES: [u32; 3] = [30001, 30004, 30008];

/// Twilio's short text for a delivery error code.
pub fn error_message_for(code: u32) -> &'static str {
    match code {
        30001 => "Queue overflow",
        30002 => "Account suspended",
        30003 => "Unreachable destination handset",
        30004 => "Message blocked",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Message filtered",
        30008 => "Unknown error",
        _ => "Message delivery failed",
    }
}

/// A message as the simulator holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMessage {
    /// Its SID.
    pub sid: MessageSid,
    /// The owning account.
    pub account_sid: AccountSid,
    /// The messaging service it was sent through, if any.
    pub messaging_service_sid: Option<String>,
    /// Sender (a number, or the service's number).
    pub from: Option<String>,
    /// Recipient.
    pub to: String,
    /// Text.
    pub body: String,
    /// Current status.
    pub status: MessageStatus,
    /// Delivery error code (set on failed/undelivered).
    pub error_code: Option<u32>,
    /// Delivery error text.
    pub error_message: Option<String>,
    /// `outbound-api` for created messages.
    pub direction: String,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// When it was handed to the carrier.
    pub date_sent: Option<DateTime<Utc>>,
    /// Last change.
    pub date_updated: DateTime<Utc>,
    /// SMS segments.
    pub num_segments: u32,
    /// Where status callbacks go.
    pub status_callback: Option<String>,
    /// The statuses still to come, with their error codes, when progression is automatic.
    pub(crate) plan: Vec<(MessageStatus, Option<u32>)>,
    /// Bumped by every outside change so a running progression task knows to stop.
    pub(crate) generation: u64,
    /// A callback held back to be delivered after the next one (out-of-order quirk).
    pub(crate) held_callback: Option<Vec<(String, String)>>,
}

impl SimMessage {
    /// Twilio's JSON for this message: every documented field, strings for `num_segments`,
    /// `num_media` and `price`, RFC 2822 dates.
    pub fn to_twilio_json(&self) -> Value {
        let price = matches!(
            self.status,
            MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Undelivered
        )
        .then(|| format!("-{:.5}", 0.0079 * f64::from(self.num_segments)));
        json!({
            "sid": self.sid,
            "account_sid": self.account_sid,
            "messaging_service_sid": self.messaging_service_sid,
            "status": self.status.as_str(),
            "error_code": self.error_code,
            "error_message": self.error_message,
            "direction": self.direction,
            "date_created": self.date_created.to_rfc2822(),
            "date_sent": self.date_sent.map(|d| d.to_rfc2822()),
            "date_updated": self.date_updated.to_rfc2822(),
            "num_segments": self.num_segments.to_string(),
            "num_media": "0",
            "price": price,
            "price_unit": "USD",
            "from": self.from,
            "to": self.to,
            "body": self.body,
            "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{}/Messages/{}.json", self.account_sid, self.sid),
            "subresource_uris": {
                "media": format!(
                    "/2010-04-01/Accounts/{}/Messages/{}/Media.json",
                    self.account_sid, self.sid
                ),
            },
        })
    }

    /// Moves to `status` now, filling the error and timestamps as Twilio would.
    pub(crate) fn move_to(&mut self, status: MessageStatus, error_code: Option<u32>) {
        let now = Utc::now();
        if status == MessageStatus::Sent && self.date_sent.is_none() {
            self.date_sent = Some(now);
        }
        self.error_message = error_code.map(|c| error_message_for(c).to_owned());
        self.error_code = error_code;
        self.status = status;
        self.date_updated = now;
    }

    /// The status-callback form Twilio would post for the current status.
    pub(crate) fn callback_params(&self) -> Vec<(String, String)> {
        let mut params = vec![
            ("MessageSid", self.sid.to_string()),
            ("SmsSid", self.sid.to_string()),
            ("AccountSid", self.account_sid.to_string()),
            ("MessageStatus", self.status.as_str().to_owned()),
            ("SmsStatus", self.status.as_str().to_owned()),
            ("To", self.to.clone()),
            ("ApiVersion", "2010-04-01".to_owned()),
        ];
        if let Some(from) = &self.from {
            params.push(("From", from.clone()));
        }
        if let Some(service) = &self.messaging_service_sid {
            params.push(("MessagingServiceSid", service.clone()));
        }
        if self.status.is_failure()
            && let Some(code) = self.error_code
        {
            params.push(("ErrorCode", code.to_string()));
        }
        params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

/// Counters of what the simulator served; read them with `SimHandle::stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SimStats {
    /// Twilio API requests received (any route, any outcome).
    pub requests: u64,
    /// Create requests (`POST …/Messages.json`).
    pub creates: u64,
    /// Fetch requests (`GET …/Messages/{Sid}.json`).
    pub fetches: u64,
    /// Messages list pages (`GET …/Messages.json`).
    pub lists: u64,
    /// Delete requests (`DELETE …/Messages/{Sid}.json`).
    pub deletes: u64,
    /// Answered 401.
    pub unauthorized: u64,
    /// Answered 429 because of `max_in_flight`.
    pub rate_limited: u64,
    /// Injected 5xx answers.
    pub server_errors: u64,
    /// Injected hangs.
    pub timeouts: u64,
    /// Injected truncated bodies.
    pub malformed: u64,
    /// API requests in flight now.
    pub in_flight: u64,
    /// The most API requests ever in flight at once.
    pub max_in_flight: u64,
    /// Status callbacks answered 2xx.
    pub callbacks_delivered: u64,
    /// Status callbacks that failed (connection error or non-2xx).
    pub callbacks_failed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub creates: AtomicU64,
    pub fetches: AtomicU64,
    pub lists: AtomicU64,
    pub deletes: AtomicU64,
    pub unauthorized: AtomicU64,
    pub rate_limited: AtomicU64,
    pub server_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub malformed: AtomicU64,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// API requests in flight now, per account (the path's account SID): Twilio's concurrency
    /// limit is per account.
    pub account_in_flight: Mutex<HashMap<String, usize>>,
    pub callbacks_delivered: AtomicU64,
    pub callbacks_failed: AtomicU64,
}

/// Settings that can change while the simulator runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub speed: f64,
    pub outcomes: OutcomeShares,
    pub latency: LatencyConfig,
    pub faults: FaultConfig,
    pub callbacks: CallbackConfig,
    pub list_latency_per_message: Duration,
}

/// Everything shared.
#[derive(Debug)]
pub(crate) struct SimState {
    pub settings: Mutex<Settings>,
    pub accounts: Mutex<HashMap<AccountSid, SimAccount>>,
    pub messages: Mutex<HashMap<MessageSid, SimMessage>>,
    pub counters: Counters,
    pub latencies: Mutex<Vec<Duration>>,
    rng: Mutex<StdRng>,
    pub callback_http: reqwest::Client,
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data, still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    pub(crate) fn new(config: &SimConfig) -> Result<Self, reqwest::Error> {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Ok(Self {
            settings: Mutex::new(Settings {
                speed: config.speed,
                outcomes: config.outcomes,
                latency: config.latency,
                faults: config.faults,
                callbacks: config.callbacks,
                list_latency_per_message: config.list_latency_per_message,
            }),
            accounts: Mutex::new(
                config
                    .accounts
                    .iter()
                    .map(|a| (a.sid.clone(), a.clone()))
                    .collect(),
            ),
            messages: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            latencies: Mutex::new(Vec::new()),
            rng: Mutex::new(rng),
            callback_http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    pub(crate) fn settings(&self) -> Settings {
        *lock(&self.settings)
    }

    /// A uniform number in `[0, 1)`.
    pub(crate) fn chance(&self) -> f64 {
        lock(&self.rng).random()
    }

    /// A fresh SID with `prefix`.
    pub(crate) fn new_sid(&self, prefix: &str) -> String {
        let value: u128 = lock(&self.rng).random();
        format!("{prefix}{value:032x}")
    }

    /// One draw of the latency distribution.
    pub(crate) fn sample_latency(&self) -> Duration {
        let LatencyConfig { median, sigma } = self.settings().latency;
        if median.is_zero() {
            return Duration::ZERO;
        }
        if sigma <= 0.0 {
            return median;
        }
        let Ok(distribution) = LogNormal::new(median.as_secs_f64().ln(), sigma) else {
            return median;
        };
        let seconds: f64 = distribution.sample(&mut *lock(&self.rng));
        Duration::from_secs_f64(seconds.min(60.0))
    }

    /// Picks how a new message will end and returns the statuses it will pass through after
    /// its first.
    pub(crate) fn plan(&self, first: &MessageStatus) -> Vec<(MessageStatus, Option<u32>)> {
        let shares = self.settings().outcomes;
        let draw = self.chance();
        let pick = |codes: &[u32]| {
            let i = (self.chance() * codes.len() as f64) as usize;
            codes[i.min(codes.len() - 1)]
        };
        let mut plan = Vec::new();
        if *first == MessageStatus::Accepted {
            plan.push((MessageStatus::Queued, None));
        }
        plan.push((MessageStatus::Sending, None));
        if draw < shares.failed {
            plan.push((MessageStatus::Failed, Some(pick(&FAILED_CODES))));
        } else if draw < shares.failed + shares.undelivered {
            plan.push((MessageStatus::Sent, None));
            plan.push((MessageStatus::Undelivered, Some(pick(&UNDELIVERED_CODES))));
        } else {
            plan.push((MessageStatus::Sent, None));
            plan.push((MessageStatus::Delivered, None));
        }
        plan
    }

    pub(crate) fn stats(&self) -> SimStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        SimStats {
            requests: get(&c.requests),
            creates: get(&c.creates),
            fetches: get(&c.fetches),
            lists: get(&c.lists),
            deletes: get(&c.deletes),
            unauthorized: get(&c.unauthorized),
            rate_limited: get(&c.rate_limited),
            server_errors: get(&c.server_errors),
            timeouts: get(&c.timeouts),
            malformed: get(&c.malformed),
            in_flight: c.in_flight.load(Ordering::SeqCst) as u64,
            max_in_flight: c.max_in_flight.load(Ordering::SeqCst) as u64,
            callbacks_delivered: get(&c.callbacks_delivered),
            callbacks_failed: get(&c.callbacks_failed),
        }
    }

    pub(crate) fn reset_stats(&self) {
        let c = &self.counters;
        for counter in [
            &c.requests,
            &c.creates,
            &c.fetches,
            &c.lists,
            &c.deletes,
            &c.unauthorized,
            &c.rate_limited,
            &c.server_errors,
            &c.timeouts,
            &c.malformed,
            &c.callbacks_delivered,
            &c.callbacks_failed,
        ] {
            counter.store(0, Ordering::SeqCst);
        }
        c.max_in_flight
            .store(c.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        lock(&self.latencies).clear();
    }
}

/// Counts an API request in flight, overall and for its account, for as long as it lives.
pub(crate) struct InFlight<'s> {
    counters: &'s Counters,
    account: String,
    /// How many of its account's requests were in flight, this one included, when it started.
    pub for_account: usize,
}

impl<'s> InFlight<'s> {
    pub(crate) fn enter(counters: &'s Counters, account: &str) -> Self {
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let for_account = {
            let mut accounts = lock(&counters.account_in_flight);
            let count = accounts.entry(account.to_owned()).or_default();
            *count += 1;
            *count
        };
        Self {
            counters,
            account: account.to_owned(),
            for_account,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut accounts = lock(&self.counters.account_in_flight);
        if let Some(count) = accounts.get_mut(&self.account) {
            *count -= 1;
            if *count == 0 {
                accounts.remove(&self.account);
            }
        }
    }
}
