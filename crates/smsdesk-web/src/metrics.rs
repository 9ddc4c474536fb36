//! Prometheus metrics (served as text at `/metrics`) and the Twilio-call decorator that feeds them.
//!
//! - `smsdesk_http_requests_total{route,method,status}`: every answered request, by route pattern
//!   (`/api/messages/{sid}`, never the concrete SID, so the label set stays small);
//! - `smsdesk_http_request_duration_seconds{route,status_class}`: how long answering took, by
//!   route pattern and status class (`2xx` … `5xx`), buckets from 1 ms to 10 s;
//! - `smsdesk_twilio_calls_total{operation,outcome}` and
//!   `smsdesk_twilio_call_duration_seconds{operation}`: every call to Twilio;
//! - `smsdesk_status_transitions_total{from,to}`: statuses moved forward by a refresh;
//! - `smsdesk_cooldown_rejections_total{scope}`: refreshes refused or skipped by a cool-down;
//! - `smsdesk_refresh_duration_seconds{kind}`: how long refresh requests take;
//! - `smsdesk_status_callbacks_total{outcome}`: Twilio status callbacks taken, by what they did
//!   (`advanced`, `enriched`, `unchanged`, `stale`, `duplicate`, `parked`, `gave_up`);
//! - `smsdesk_parked_callbacks_replayed_total{outcome}`: parked callbacks applied once their
//!   message was stored, by what they did then;
//! - `smsdesk_parked_callbacks_discarded_total`: parked callbacks whose message never appeared;
//! - `smsdesk_inbound_sms_total{outcome}`: inbound SMS webhooks (`stored`, `duplicate`);
//! - `smsdesk_webhook_attempts_total{outcome}`: delivery-webhook attempts (`delivered`,
//!   `retrying`, `dead`, `gone`, `unrecorded`);
//! - `smsdesk_api_key_lookups_total`: API keys looked up in the database;
//! - `smsdesk_fleet_replicas`, `smsdesk_twilio_account_share`: the live replicas this one saw at
//!   its last heartbeat, and its share of each Twilio account's cap;
//! - `smsdesk_reconciler_runs_total`, `smsdesk_reconciler_accounts_swept_total`,
//!   `smsdesk_reconciler_accounts_failed_total`, `smsdesk_reconciler_messages_moved_total`,
//!   `smsdesk_reconciler_twilio_requests_total`, `smsdesk_reconciler_timed_out_total`: what the
//!   reconciler did (in the replica that
//!   runs it).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use smsdesk_domain::MessageSid;
use smsdesk_domain::ports::{
    MessageListPage, MessageListQuery, OutboundSms, ProviderError, ProviderMessage, SmsProvider,
    TwilioCredentials,
};
use smsdesk_domain::services::{CallbackOutcome, ReceiveOutcome, ReconcileReport};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteClassLabels {
    route: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TwilioCallLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    from: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to 10 s, about three buckets per decade: a request answered from memory and one that
/// waited on Twilio both land in a bucket of their own.
const REQUEST_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// `2xx`, `4xx`, …: the class of an HTTP status.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn latency_histogram() -> Histogram {
    // 5 ms to ~40 s: Twilio calls and bulk refreshes both fit.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The service's metrics. One per process, shared through [`crate::WebState`].
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteClassLabels>,
    twilio_calls: Family<TwilioCallLabels, Counter>,
    twilio_latency: HistogramFamily<OperationLabels>,
    status_transitions: Family<TransitionLabels, Counter>,
    cooldown_rejections: Family<ScopeLabels, Counter>,
    refresh_duration: HistogramFamily<KindLabels>,
    status_callbacks: Family<OutcomeLabels, Counter>,
    parked_replayed: Family<OutcomeLabels, Counter>,
    parked_discarded: Counter,
    inbound_sms: Family<OutcomeLabels, Counter>,
    webhook_attempts: Family<OutcomeLabels, Counter>,
    api_key_lookups: Counter,
    fleet_replicas: Gauge,
    twilio_account_share: Gauge,
    reconciler: ReconcilerCounters,
}

/// The reconciler's counters.
#[derive(Default)]
struct ReconcilerCounters {
    runs: Counter,
    accounts_swept: Counter,
    accounts_failed: Counter,
    messages_moved: Counter,
    twilio_requests: Counter,
    timed_out: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("smsdesk");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteClassLabels> =
            Family::new_with_constructor(request_histogram);
        registry.register(
            "http_request_duration_seconds",
            "How long answering a request took, by route pattern and status class",
            http_duration.clone(),
        );
        let twilio_calls = Family::<TwilioCallLabels, Counter>::default();
        registry.register(
            "twilio_calls",
            "Calls made to Twilio, by operation and outcome",
            twilio_calls.clone(),
        );
        let twilio_latency: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "twilio_call_duration_seconds",
            "Duration of calls to Twilio",
            twilio_latency.clone(),
        );
        let status_transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "status_transitions",
            "Message statuses moved forward by a refresh",
            status_transitions.clone(),
        );
        let cooldown_rejections = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "cooldown_rejections",
            "Refreshes refused (bulk) or messages skipped (message) because of a cool-down",
            cooldown_rejections.clone(),
        );
        let refresh_duration: HistogramFamily<KindLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "refresh_duration_seconds",
            "Duration of refresh requests, single or bulk",
            refresh_duration.clone(),
        );
        let status_callbacks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "status_callbacks",
            "Twilio status callbacks taken (signature valid), by outcome",
            status_callbacks.clone(),
        );
        let parked_replayed = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "parked_callbacks_replayed",
            "Parked status callbacks applied once their message was stored, by outcome",
            parked_replayed.clone(),
        );
        let parked_discarded = Counter::default();
        registry.register(
            "parked_callbacks_discarded",
            "Parked status callbacks discarded because their message never appeared",
            parked_discarded.clone(),
        );
        let inbound_sms = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "inbound_sms",
            "Inbound SMS webhooks taken (signature valid), by outcome",
            inbound_sms.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Delivery-webhook attempts, by what followed them",
            webhook_attempts.clone(),
        );
        let api_key_lookups = Counter::default();
        registry.register(
            "api_key_lookups",
            "API keys looked up in the database (a key that authenticated is answered from memory for a few seconds)",
            api_key_lookups.clone(),
        );
        let fleet_replicas = Gauge::default();
        registry.register(
            "fleet_replicas",
            "Live replicas of this service on its database, at this replica's last heartbeat",
            fleet_replicas.clone(),
        );
        let twilio_account_share = Gauge::default();
        registry.register(
            "twilio_account_share",
            "Requests in flight to one Twilio account this replica may have: its share of the cap",
            twilio_account_share.clone(),
        );
        let reconciler = ReconcilerCounters::default();
        for (name, help, counter) in [
            ("reconciler_runs", "Reconciler runs", &reconciler.runs),
            (
                "reconciler_accounts_swept",
                "Twilio accounts whose Messages list the reconciler read",
                &reconciler.accounts_swept,
            ),
            (
                "reconciler_accounts_failed",
                "Twilio accounts whose Messages list the reconciler could not read",
                &reconciler.accounts_failed,
            ),
            (
                "reconciler_messages_moved",
                "Messages whose stored status or details the reconciler changed",
                &reconciler.messages_moved,
            ),
            (
                "reconciler_twilio_requests",
                "Requests the reconciler made to Twilio",
                &reconciler.twilio_requests,
            ),
            (
                "reconciler_timed_out",
                "Messages the reconciler declared stuck (delivery unknown past the stuck limit)",
                &reconciler.timed_out,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        Self {
            reconciler,
            registry,
            http_requests,
            http_duration,
            twilio_calls,
            twilio_latency,
            status_transitions,
            cooldown_rejections,
            refresh_duration,
            status_callbacks,
            parked_replayed,
            parked_discarded,
            inbound_sms,
            webhook_attempts,
            api_key_lookups,
            fleet_replicas,
            twilio_account_share,
        }
    }

    /// Records the fleet as this replica last saw it.
    pub fn record_fleet(&self, live_replicas: usize, share: usize) {
        self.fleet_replicas
            .set(i64::try_from(live_replicas).unwrap_or(i64::MAX));
        self.twilio_account_share
            .set(i64::try_from(share).unwrap_or(i64::MAX));
    }

    /// Counts an API key looked up in the database.
    pub fn record_api_key_lookup(&self) {
        self.api_key_lookups.inc();
    }

    /// Counts an answered request and how long answering it took.
    pub fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteClassLabels {
                route: route.to_owned(),
                status_class: status_class(status),
            })
            .observe(seconds);
    }

    /// Counts a call to Twilio and its duration. `operation` is `fetch`, `send` or `list`.
    pub fn record_twilio_call(&self, operation: &'static str, outcome: &'static str, seconds: f64) {
        self.twilio_calls
            .get_or_create(&TwilioCallLabels { operation, outcome })
            .inc();
        self.twilio_latency
            .get_or_create(&OperationLabels { operation })
            .observe(seconds);
    }

    /// Counts a status moved forward.
    pub fn record_transition(&self, from: &str, to: &str) {
        self.status_transitions
            .get_or_create(&TransitionLabels {
                from: from.to_owned(),
                to: to.to_owned(),
            })
            .inc();
    }

    /// Counts cool-down refusals; `scope` is `message` or `bulk`.
    pub fn record_cooldown_rejections(&self, scope: &'static str, count: u64) {
        if count > 0 {
            self.cooldown_rejections
                .get_or_create(&ScopeLabels { scope })
                .inc_by(count);
        }
    }

    /// Records a refresh request's duration; `kind` is `single` or `bulk`.
    pub fn record_refresh(&self, kind: &'static str, seconds: f64) {
        self.refresh_duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }

    /// Counts a status callback taken, by what it did.
    pub fn record_status_callback(&self, outcome: &CallbackOutcome) {
        self.status_callbacks
            .get_or_create(&OutcomeLabels {
                outcome: callback_outcome_label(outcome),
            })
            .inc();
    }

    /// Counts a parked callback replayed after its message was stored, by what it did.
    pub fn record_parked_replayed(&self, outcome: &CallbackOutcome) {
        self.parked_replayed
            .get_or_create(&OutcomeLabels {
                outcome: callback_outcome_label(outcome),
            })
            .inc();
    }

    /// Counts what a reconciler run did.
    pub fn record_reconcile(&self, report: &ReconcileReport) {
        let counters = &self.reconciler;
        counters.runs.inc();
        counters.accounts_swept.inc_by(report.accounts_swept);
        counters.accounts_failed.inc_by(report.accounts_failed);
        counters.messages_moved.inc_by(report.messages_moved);
        counters.twilio_requests.inc_by(report.twilio_requests);
        counters.timed_out.inc_by(report.timed_out);
    }

    /// Counts parked callbacks discarded because their message never appeared.
    pub fn record_parked_discarded(&self, count: u64) {
        if count > 0 {
            self.parked_discarded.inc_by(count);
        }
    }

    /// Records a round of webhook deliveries.
    pub fn record_webhook_round(&self, round: &smsdesk_domain::services::DeliveryRound) {
        for (outcome, count) in [
            ("delivered", round.delivered),
            ("retrying", round.retrying),
            ("dead", round.dead),
            ("gone", round.gone),
            ("unrecorded", round.unrecorded),
        ] {
            if count > 0 {
                self.webhook_attempts
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc_by(count);
            }
        }
    }

    /// Counts an inbound SMS taken: stored for the first time or already stored.
    pub fn record_inbound_sms(&self, outcome: &ReceiveOutcome) {
        let outcome = match outcome {
            ReceiveOutcome::Stored => "stored",
            ReceiveOutcome::AlreadyStored => "duplicate",
        };
        self.inbound_sms
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The outcome label of a status callback.
fn callback_outcome_label(outcome: &CallbackOutcome) -> &'static str {
    match outcome {
        CallbackOutcome::Advanced { .. } => "advanced",
        CallbackOutcome::Enriched => "enriched",
        CallbackOutcome::Unchanged => "unchanged",
        CallbackOutcome::Stale { .. } => "stale",
        CallbackOutcome::Duplicate => "duplicate",
        CallbackOutcome::Parked => "parked",
        CallbackOutcome::GaveUp => "gave_up",
    }
}

/// The outcome label of a Twilio call.
fn outcome_label<T>(result: &Result<T, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ProviderError::NotFound) => "not_found",
        Err(ProviderError::CredentialsRejected { .. }) => "credentials_rejected",
        Err(ProviderError::RateLimited { .. }) => "rate_limited",
        Err(ProviderError::Rejected { .. }) => "rejected",
        Err(ProviderError::Unavailable { .. }) => "unavailable",
        Err(ProviderError::Unexpected { .. }) => "unexpected",
    }
}

/// An [`SmsProvider`] that counts and times every call of the one it wraps.
pub struct MeteredSmsProvider {
    inner: Arc<dyn SmsProvider>,
    metrics: Arc<Metrics>,
}

impl MeteredSmsProvider {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn SmsProvider>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl SmsProvider for MeteredSmsProvider {
    async fn fetch_message(
        &self,
        credentials: &TwilioCredentials,
        sid: &MessageSid,
    ) -> Result<ProviderMessage, ProviderError> {
        let started = Instant::now();
        let result = self.inner.fetch_message(credentials, sid).await;
        self.metrics.record_twilio_call(
            "fetch",
            outcome_label(&result),
            started.elapsed().as_secs_f64(),
        );
        result
    }

    async fn send_message(
        &self,
        credentials: &TwilioCredentials,
        sms: &OutboundSms,
    ) -> Result<ProviderMessage, ProviderError> {
        let started = Instant::now();
        let result = self.inner.send_message(credentials, sms).await;
        self.metrics.record_twilio_call(
            "send",
            outcome_label(&result),
            started.elapsed().as_secs_f64(),
        );
        result
    }

    async fn list_messages(
        &self,
        credentials: &TwilioCredentials,
        query: &MessageListQuery,
    ) -> Result<MessageListPage, ProviderError> {
        let started = Instant::now();
        let result = self.inner.list_messages(credentials, query).await;
        self.metrics.record_twilio_call(
            "list",
            outcome_label(&result),
            started.elapsed().as_secs_f64(),
        );
        result
    }
}
