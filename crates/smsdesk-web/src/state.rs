//! What the HTTP layer is built from: the ports the app provides ([`WebPorts`]), the settings
//! ([`WebConfig`]), and the shared state the handlers use ([`WebState`]).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use async_trait::async_trait;
use smsdesk_domain::changes::{ChangeNotifier, FanOut, LogPosition};
use smsdesk_domain::ports::{
    ApiKeyAuthenticator, ApiKeyRepository, CallbackInbox, ChangeLog, Clock, IdempotencyStore,
    IntegrationRepository, MessageRepository, RefreshLimiter, RepositoryError, SecretGenerator,
    SmsProvider, StuckMessages, UnfinishedMessages, WebhookRepository, WebhookTransport,
};
use smsdesk_domain::services::{
    ApplyStatusCallback, ConfigureIntegration, DeliverWebhooks, ManageApiKeys, ManageWebhooks,
    ReceiveSms, Reconcile, ReconcilePolicy, RefreshStatus, SendSms,
};
use smsdesk_domain::summary::SummarizeDelivery;
use smsdesk_domain::sweep::{SweepPolicy, TrafficEstimates};
use smsdesk_domain::webhooks::UrlPolicy;
use smsdesk_domain::{RefreshPolicy, TeamId};

use crate::auth::KeyCache;
use crate::coalesce::FreshReads;
use crate::consequences::ServiceConsequences;
use crate::edge::EdgeRateLimiter;
use crate::error::ApiError;
use crate::events::{FleetDoorbell, MessageEvents};
use crate::metrics::{MeteredSmsProvider, Metrics};

/// Whether the service can do its work (for `/readyz`); the app implements it over the database.
#[async_trait]
pub trait Readiness: Send + Sync {
    /// True when the dependencies answer (e.g. the database accepts a trivial query). Should
    /// return within a second or two: orchestrators call it often.
    async fn ready(&self) -> bool;
}

/// A [`Readiness`] that is always ready, for services with nothing to check and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysReady;

#[async_trait]
impl Readiness for AlwaysReady {
    async fn ready(&self) -> bool {
        true
    }
}

/// Request rates allowed at the edge, before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Sustained requests per minute for one API key.
    pub per_key_per_minute: NonZeroU32,
    /// Requests one API key may make in a burst.
    pub per_key_burst: NonZeroU32,
    /// Sustained requests per minute for one client IP on requests without an API key.
    pub per_ip_per_minute: NonZeroU32,
    /// Requests one IP may make in a burst without an API key.
    pub per_ip_burst: NonZeroU32,
    /// Sustained requests per minute for one IP on Twilio's webhooks (status callbacks and
    /// inbound SMS). Kept apart from `per_ip_per_minute` because Twilio posts every status of
    /// every message from a handful of addresses: a bulk send must not be throttled like a
    /// browser. The webhooks are still signature-checked before any write.
    pub per_webhook_ip_per_minute: NonZeroU32,
    /// Webhook requests one IP may make in a burst.
    pub per_webhook_ip_burst: NonZeroU32,
    /// Requests per minute one IP may make with an API key this process has not seen
    /// authenticate (a burst of the same size). Every failed authentication is charged here,
    /// whatever key it carried, so varying the key buys nothing; once spent, such requests are
    /// refused before any database lookup. Keys that authenticated are charged to their own
    /// budget instead, so they keep working from an IP that is over this one.
    pub failed_auth_per_ip_per_minute: NonZeroU32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        const fn nz(value: u32) -> NonZeroU32 {
            match NonZeroU32::new(value) {
                Some(v) => v,
                None => NonZeroU32::MIN,
            }
        }
        Self {
            per_key_per_minute: nz(600),
            per_key_burst: nz(60),
            per_ip_per_minute: nz(120),
            per_ip_burst: nz(30),
            per_webhook_ip_per_minute: nz(6000),
            per_webhook_ip_burst: nz(600),
            failed_auth_per_ip_per_minute: nz(30),
        }
    }
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// Production mode (`SMSDESK_ENV=production`): 5xx answers carry no internal detail.
    pub production: bool,
    /// The largest request body accepted, in bytes (default 64 KiB); larger ones are refused
    /// with 413 before they are read whole.
    pub body_limit_bytes: usize,
    /// Edge request rates.
    pub rate_limits: RateLimitConfig,
    /// Where Twilio can reach this service (e.g. `https://sms.example.com`); when set, every
    /// sent message asks Twilio for status callbacks there, and Twilio's webhook signatures are
    /// checked over this base plus the request's path and query string.
    pub public_base_url: Option<String>,
    /// Whether a reverse proxy in front of the service sets `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` truthfully (and strips clients' own). When true and either header is
    /// present, webhook signatures are checked over the URL they describe; when false they are
    /// ignored, since anyone can send them.
    pub trust_forwarded_headers: bool,
    /// Refresh limits (cool-downs, caps, concurrency).
    pub refresh_policy: RefreshPolicy,
    /// When bulk refreshes sweep the account's Messages list, and how big a sweep is.
    pub sweep_policy: SweepPolicy,
    /// What the reconciler looks for and how much it may read per run.
    pub reconcile_policy: ReconcilePolicy,
    /// The demo team's API key, pre-filled on the SMS page's sign-in form. Set only in
    /// development (demo mode); never rendered in production mode.
    pub demo_api_key: Option<String>,
    /// Where delivery-webhook endpoints may point: https and public addresses only in
    /// production, anything in development (so the demo and tests can use 127.0.0.1).
    pub webhook_urls: UrlPolicy,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            production: false,
            body_limit_bytes: 64 * 1024,
            rate_limits: RateLimitConfig::default(),
            public_base_url: None,
            trust_forwarded_headers: false,
            refresh_policy: RefreshPolicy::default(),
            sweep_policy: SweepPolicy::default(),
            reconcile_policy: ReconcilePolicy::default(),
            demo_api_key: None,
            webhook_urls: UrlPolicy::DEVELOPMENT,
        }
    }
}

/// The adapters the HTTP layer needs, provided by the app.
#[derive(Clone)]
pub struct WebPorts {
    /// Stored messages.
    pub messages: Arc<dyn MessageRepository>,
    /// Teams' Twilio integrations.
    pub integrations: Arc<dyn IntegrationRepository>,
    /// Twilio (or its simulator). Wrapped in [`MeteredSmsProvider`] by [`WebState::new`].
    pub provider: Arc<dyn SmsProvider>,
    /// Cool-downs.
    pub limiter: Arc<dyn RefreshLimiter>,
    /// Status callbacks that arrived before their message was stored.
    pub inbox: Arc<dyn CallbackInbox>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// API key lookup.
    pub authenticator: Arc<dyn ApiKeyAuthenticator>,
    /// `/readyz`'s check.
    pub readiness: Arc<dyn Readiness>,
    /// Teams' API keys, as their admins manage them.
    pub api_keys: Arc<dyn ApiKeyRepository>,
    /// Teams with unfinished messages, for the reconciler.
    pub unfinished: Arc<dyn UnfinishedMessages>,
    /// Messages past the stuck limit, which the reconciler declares stuck.
    pub stuck: Arc<dyn StuckMessages>,
    /// Sends' idempotency keys.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The change log the live streams follow and resume from (the store's history).
    pub change_log: Arc<dyn ChangeLog>,
    /// How the other replicas hear of this one's changes and it of theirs (PostgreSQL
    /// `LISTEN/NOTIFY`); `None` for a single process (SQLite, the in-memory fakes), whose own
    /// commits ring the doorbell in memory.
    pub fleet_doorbell: Option<Arc<dyn FleetDoorbell>>,
    /// More consumers of committed changes, beside the service's own live events and metrics
    /// (which are always there).
    pub notifiers: Vec<Arc<dyn ChangeNotifier>>,
    /// Delivery-webhook endpoints and the outbox.
    pub webhooks: Arc<dyn WebhookRepository>,
    /// How deliveries are posted.
    pub webhook_transport: Arc<dyn WebhookTransport>,
    /// Where endpoints' signing secrets come from.
    pub secrets: Arc<dyn SecretGenerator>,
}

/// Identical list requests of one team at the same time share one read and one JSON body
/// ([`crate::coalesce`]): the key is the team and everything the body depends on, the base URL
/// (for the `next` link) and the query string as sent.
pub(crate) type ListPageKey = (TeamId, String);

/// A page of the list as the JSON body every sharer is sent, or the error they all get.
pub(crate) type ListPageBody = Result<Bytes, ApiError>;

/// Everything the handlers share. Cheap to clone (one `Arc`); build one per process and clone it
/// into each worker's `App`.
#[derive(Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

struct Inner {
    config: WebConfig,
    messages: Arc<dyn MessageRepository>,
    authenticator: Arc<dyn ApiKeyAuthenticator>,
    readiness: Arc<dyn Readiness>,
    refresh: RefreshStatus,
    send: SendSms,
    callbacks: ApplyStatusCallback,
    receive: ReceiveSms,
    configure: ConfigureIntegration,
    api_keys: ManageApiKeys,
    summaries: SummarizeDelivery,
    metrics: Arc<Metrics>,
    rate_limiter: Arc<EdgeRateLimiter>,
    key_cache: Arc<KeyCache>,
    events: MessageEvents,
    change_log: Arc<dyn ChangeLog>,
    fleet_doorbell: Option<Arc<dyn FleetDoorbell>>,
    reconcile: Reconcile,
    webhooks: ManageWebhooks,
    deliveries: DeliverWebhooks,
    webhook_doorbell: Arc<tokio::sync::Notify>,
    list_pages: FreshReads<ListPageKey, ListPageBody>,
}

impl WebState {
    /// Builds the use cases over `ports` (the provider wrapped so its calls are measured), the
    /// metrics registry, the edge rate limiter, and the one notifier every use case hands its
    /// committed changes to (live events and metrics, then `ports.notifiers`).
    pub fn new(ports: WebPorts, config: WebConfig) -> Self {
        let metrics = Arc::new(Metrics::new());
        let events = MessageEvents::new();
        let webhook_doorbell = Arc::new(tokio::sync::Notify::new());
        let notifier: Arc<dyn ChangeNotifier> = Arc::new(
            ports.notifiers.into_iter().fold(
                FanOut::new().with(Arc::new(
                    ServiceConsequences::new(events.clone(), metrics.clone())
                        .with_webhook_doorbell(webhook_doorbell.clone()),
                )),
                FanOut::with,
            ),
        );
        let webhooks =
            ManageWebhooks::new(ports.webhooks.clone(), ports.secrets, config.webhook_urls)
                .with_clock(ports.clock.clone());
        let deliveries = DeliverWebhooks::new(ports.webhooks, ports.webhook_transport)
            .with_clock(ports.clock.clone())
            .with_notifier(notifier.clone());
        let provider: Arc<dyn SmsProvider> =
            Arc::new(MeteredSmsProvider::new(ports.provider, metrics.clone()));
        let traffic = Arc::new(TrafficEstimates::new());
        let reconcile = Reconcile::new(
            ports.unfinished,
            ports.messages.clone(),
            ports.integrations.clone(),
            provider.clone(),
            ports.clock.clone(),
            config.reconcile_policy,
        )
        .with_sweeps(config.sweep_policy, traffic.clone())
        .with_stuck_timeouts(ports.stuck)
        .with_notifier(notifier.clone());
        let callbacks = ApplyStatusCallback::new(
            ports.messages.clone(),
            ports.integrations.clone(),
            ports.inbox.clone(),
            ports.clock.clone(),
        )
        .with_notifier(notifier.clone());
        // Refreshes read the team's integration through the callbacks' port too: one remembered
        // copy per team for a few seconds, forgotten when it is replaced here. Sends read it
        // fresh: a message sent on an account another replica just moved to another team would
        // be stored under the team that left it.
        let refresh = RefreshStatus::new(
            ports.messages.clone(),
            callbacks.integrations(),
            provider.clone(),
            ports.limiter,
            ports.clock.clone(),
            config.refresh_policy,
        )
        .with_sweeps(config.sweep_policy, traffic.clone())
        .with_notifier(notifier.clone());
        let mut send = SendSms::new(
            ports.messages.clone(),
            ports.integrations.clone(),
            ports.inbox,
            provider,
            ports.clock.clone(),
        )
        .with_idempotency(ports.idempotency)
        .with_notifier(notifier.clone());
        if let Some(base) = &config.public_base_url {
            send = send.with_public_base_url(base);
        }
        let receive =
            ReceiveSms::new(ports.messages.clone(), ports.clock.clone()).with_notifier(notifier);
        // Through the callbacks' integration port, so a replaced token is forgotten there.
        let configure = ConfigureIntegration::new(callbacks.integrations());
        let api_keys = ManageApiKeys::new(ports.api_keys, ports.clock.clone());
        let rate_limiter = Arc::new(EdgeRateLimiter::new(config.rate_limits));
        let key_cache = Arc::new(KeyCache::new(ports.clock.clone()));
        let summaries = SummarizeDelivery::new(ports.messages.clone(), ports.clock.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                messages: ports.messages,
                authenticator: ports.authenticator,
                readiness: ports.readiness,
                refresh,
                send,
                callbacks,
                receive,
                configure,
                api_keys,
                summaries,
                metrics,
                rate_limiter,
                key_cache,
                events,
                change_log: ports.change_log,
                fleet_doorbell: ports.fleet_doorbell,
                reconcile,
                webhooks,
                deliveries,
                webhook_doorbell,
                list_pages: FreshReads::new(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    /// The metrics registry (also served at `/metrics`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The live message events the SMS page's streams (`GET /api/messages/events`) read; fed
    /// by the follower [`WebState::spawn_live_events`] starts.
    pub fn events(&self) -> &MessageEvents {
        &self.inner.events
    }

    /// Spawns, on the current tokio runtime, the follower that reads the change log after
    /// `from` and feeds the live streams (and, in a fleet, the doorbell to and from the other
    /// replicas). Call it once per process before serving, with the log's
    /// [`head`](ChangeLog::head) read just before; without it streams see only heartbeats.
    pub fn spawn_live_events(&self, from: LogPosition) -> tokio::task::JoinHandle<()> {
        self.inner.events.spawn_follower(
            self.inner.change_log.clone(),
            self.inner.fleet_doorbell.clone(),
            from,
        )
    }

    /// The reconciler: run [`Reconcile::run`] on an interval, in one replica of a fleet at a
    /// time (the app holds a lease).
    pub fn reconcile(&self) -> &Reconcile {
        &self.inner.reconcile
    }

    pub(crate) fn change_log(&self) -> &Arc<dyn ChangeLog> {
        &self.inner.change_log
    }

    /// The edge rate limiter; call [`EdgeRateLimiter::housekeeping`] periodically, or use
    /// [`WebState::spawn_rate_limit_housekeeping`].
    pub fn rate_limiter(&self) -> &Arc<EdgeRateLimiter> {
        &self.inner.rate_limiter
    }

    /// The API keys this process has seen authenticate.
    pub fn key_cache(&self) -> &Arc<KeyCache> {
        &self.inner.key_cache
    }

    /// Spawns, on the current actix/tokio runtime, a task that runs the rate limiter's
    /// housekeeping every `period`, so the per-key and per-IP maps stay bounded. Dropping the
    /// returned handle does not stop it; abort it on shutdown if needed.
    pub fn spawn_rate_limit_housekeeping(
        &self,
        period: Duration,
    ) -> actix_web::rt::task::JoinHandle<()> {
        let limiter = self.inner.rate_limiter.clone();
        let keys = self.inner.key_cache.clone();
        actix_web::rt::spawn(async move {
            let mut ticks = actix_web::rt::time::interval(period);
            loop {
                ticks.tick().await;
                limiter.housekeeping();
                keys.housekeeping();
            }
        })
    }

    /// Discards the status callbacks parked longer than `older_than` and returns how many (see
    /// [`ApplyStatusCallback::discard_stale_parked`]). Run it on an interval, or use
    /// [`WebState::spawn_parked_callback_housekeeping`].
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; nothing is lost, the next run retries.
    pub async fn discard_stale_parked_callbacks(
        &self,
        older_than: Duration,
    ) -> Result<u64, RepositoryError> {
        self.inner.callbacks.discard_stale_parked(older_than).await
    }

    /// Spawns, on the current actix/tokio runtime, a task that runs
    /// [`WebState::discard_stale_parked_callbacks`] every `period`. A failed run is logged and
    /// retried at the next tick. Dropping the returned handle does not stop it.
    pub fn spawn_parked_callback_housekeeping(
        &self,
        period: Duration,
        older_than: Duration,
    ) -> actix_web::rt::task::JoinHandle<()> {
        let state = self.clone();
        actix_web::rt::spawn(async move {
            let mut ticks = actix_web::rt::time::interval(period);
            loop {
                ticks.tick().await;
                if let Err(error) = state.discard_stale_parked_callbacks(older_than).await {
                    tracing::warn!(%error, "could not discard stale parked status callbacks");
                }
            }
        })
    }

    pub(crate) fn messages(&self) -> &Arc<dyn MessageRepository> {
        &self.inner.messages
    }

    /// The list's shared fresh reads (see [`crate::coalesce`]).
    pub(crate) fn list_pages(&self) -> &FreshReads<ListPageKey, ListPageBody> {
        &self.inner.list_pages
    }

    pub(crate) fn configure(&self) -> &ConfigureIntegration {
        &self.inner.configure
    }

    pub(crate) fn api_keys(&self) -> &ManageApiKeys {
        &self.inner.api_keys
    }

    pub(crate) fn summaries(&self) -> &SummarizeDelivery {
        &self.inner.summaries
    }

    pub(crate) fn webhooks(&self) -> &ManageWebhooks {
        &self.inner.webhooks
    }

    /// The delivery worker's use case: the app runs [`DeliverWebhooks::deliver_due`] in a loop
    /// on every replica (`smsdesk::startup`), woken by [`WebState::webhook_doorbell`].
    pub fn deliver_webhooks(&self) -> &DeliverWebhooks {
        &self.inner.deliveries
    }

    /// Rung (one stored permit) by every committed change, so the delivery worker attempts a new
    /// delivery at once instead of at its next poll.
    pub fn webhook_doorbell(&self) -> Arc<tokio::sync::Notify> {
        self.inner.webhook_doorbell.clone()
    }

    pub(crate) fn authenticator(&self) -> &Arc<dyn ApiKeyAuthenticator> {
        &self.inner.authenticator
    }

    pub(crate) fn readiness(&self) -> &Arc<dyn Readiness> {
        &self.inner.readiness
    }

    pub(crate) fn refresh(&self) -> &RefreshStatus {
        &self.inner.refresh
    }

    pub(crate) fn send(&self) -> &SendSms {
        &self.inner.send
    }

    pub(crate) fn callbacks(&self) -> &ApplyStatusCallback {
        &self.inner.callbacks
    }

    pub(crate) fn receive(&self) -> &ReceiveSms {
        &self.inner.receive
    }
}
