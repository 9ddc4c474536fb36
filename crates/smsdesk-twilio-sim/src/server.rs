//! Starting the simulator in-process, and the handle tests and the app drive it with.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use smsdesk_domain::{MessageSid, MessageStatus};
use tokio::task::JoinHandle;

use crate::config::{
    CallbackConfig, FaultConfig, LatencyConfig, OutcomeShares, SimAccount, SimConfig,
};
use crate::http::{describe_latency, routes};
use crate::lifecycle::{ControlError, InboundSms, SeedMessage};
use crate::state::{SimMessage, SimState, SimStats, lock};

/// Why the simulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The status-callback HTTP client could not be created.
    #[error("cannot set up the callback client: {0}")]
    CallbackClient(String),
}

/// Starts simulators.
#[derive(Debug, Clone, Copy)]
pub struct SimServer;

impl SimServer {
    /// Binds `config.bind` and serves in the background on the current tokio runtime (its
    /// workers run on their own threads). Stop it with [`SimHandle::stop`].
    ///
    /// # Errors
    /// [`SimError::Bind`] when the address is taken; [`SimError::CallbackClient`] when the HTTP
    /// client for callbacks cannot be built.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let state =
            Arc::new(SimState::new(&config).map_err(|e| SimError::CallbackClient(e.to_string()))?);
        let bind = |source| SimError::Bind {
            addr: config.bind,
            source,
        };
        let listener = TcpListener::bind(config.bind).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
            .workers(config.workers.max(1))
            .shutdown_timeout(1)
            .disable_signals()
            .listen(listener)
            .map_err(bind)?
            .run();
        let server_handle = server.handle();
        let task = tokio::spawn(server);
        tracing::info!(
            %addr,
            speed = config.speed,
            latency = %describe_latency(&config.latency),
            accounts = config.accounts.len(),
            "Twilio simulator listening"
        );
        Ok(SimHandle {
            state,
            addr,
            base_url: format!("http://{addr}"),
            server: server_handle,
            task,
        })
    }
}

/// A running simulator: its address and every test control. Dropping it leaves the server
/// running until the runtime ends; call [`SimHandle::stop`] to stop it.
#[derive(Debug)]
pub struct SimHandle {
    state: Arc<SimState>,
    addr: SocketAddr,
    base_url: String,
    server: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the `base_url` to give the Twilio client.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds or replaces an account.
    pub fn add_account(&self, account: SimAccount) {
        lock(&self.state.accounts).insert(account.sid.clone(), account);
    }

    /// Places a message as if Twilio had it. With `seed.progress` its progression is spawned on
    /// the current tokio runtime.
    ///
    /// # Errors
    /// [`ControlError::UnknownAccount`] or [`ControlError::DuplicateMessage`].
    pub fn seed_message(&self, seed: SeedMessage) -> Result<SimMessage, ControlError> {
        self.state.seed(seed)
    }

    /// The message as the simulator holds it.
    pub fn message(&self, sid: &MessageSid) -> Option<SimMessage> {
        lock(&self.state.messages).get(sid).cloned()
    }

    /// Every message, in no particular order.
    pub fn messages(&self) -> Vec<SimMessage> {
        lock(&self.state.messages).values().cloned().collect()
    }

    /// Sets a message's status (ending its automatic progression) and returns once its status
    /// callbacks were posted.
    ///
    /// # Errors
    /// [`ControlError::UnknownMessage`].
    pub async fn set_status(
        &self,
        sid: &MessageSid,
        status: MessageStatus,
        error_code: Option<u32>,
    ) -> Result<SimMessage, ControlError> {
        self.state.set_status(sid, status, error_code).await
    }

    /// Moves a message to its next planned status (ending its automatic progression) and
    /// returns once its status callbacks were posted.
    ///
    /// # Errors
    /// [`ControlError::UnknownMessage`]; [`ControlError::NothingToAdvance`] at the end of its
    /// life.
    pub async fn advance(&self, sid: &MessageSid) -> Result<SimMessage, ControlError> {
        self.state.advance(sid).await
    }

    /// Stores an inbound SMS and posts Twilio's signed incoming-message webhook for it; returns
    /// the message and the webhook's HTTP status (`None` when it could not be reached).
    ///
    /// # Errors
    /// [`ControlError::UnknownAccount`].
    pub async fn receive_sms(
        &self,
        inbound: InboundSms,
    ) -> Result<(SimMessage, Option<u16>), ControlError> {
        self.state.receive(inbound).await
    }

    /// Deletes a message: Twilio answers 404 for it from now on.
    ///
    /// # Errors
    /// [`ControlError::UnknownMessage`].
    pub fn delete_message(&self, sid: &MessageSid) -> Result<(), ControlError> {
        self.state.delete(sid)
    }

    /// The counters.
    pub fn stats(&self) -> SimStats {
        self.state.stats()
    }

    /// Zeroes the counters and forgets served latencies.
    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// The latency added to each API request so far, in arrival order: a benchmark's lower
    /// bound for what its client measured.
    pub fn latencies(&self) -> Vec<Duration> {
        lock(&self.state.latencies).clone()
    }

    /// Replaces the fault settings.
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.state.settings).faults = faults;
    }

    /// Replaces the latency distribution.
    pub fn set_latency(&self, latency: LatencyConfig) {
        lock(&self.state.settings).latency = latency;
    }

    /// Changes the progression speed for progression steps still to be scheduled; 0 freezes
    /// new messages.
    pub fn set_speed(&self, speed: f64) {
        lock(&self.state.settings).speed = speed.max(0.0);
    }

    /// Replaces the outcome shares for messages created from now on.
    pub fn set_outcomes(&self, outcomes: OutcomeShares) {
        lock(&self.state.settings).outcomes = outcomes;
    }

    /// Replaces the callback quirks.
    pub fn set_callbacks(&self, callbacks: CallbackConfig) {
        lock(&self.state.settings).callbacks = callbacks;
    }

    /// Stops accepting connections, lets requests in progress finish (at most a second), and
    /// waits for the server to end.
    pub async fn stop(self) {
        self.server.stop(true).await;
        let _ = self.task.await;
    }
}
