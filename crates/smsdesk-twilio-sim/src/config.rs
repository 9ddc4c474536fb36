//! What the simulator is told: accounts, speed, outcomes, latency, faults, callback quirks.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smsdesk_domain::{AccountSid, ApiKeySid};

/// Everything the simulator is started with. `SimConfig::default()` is a quiet, fast simulator
/// on `127.0.0.1:0` with no accounts; add them with [`SimConfig::with_account`].
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port (read it back from `SimHandle::base_url`).
    pub bind: SocketAddr,
    /// actix-web worker threads (1-2 is plenty: handlers only touch memory).
    pub workers: usize,
    /// The accounts the simulator knows, with their credentials.
    pub accounts: Vec<SimAccount>,
    /// How fast messages progress, as a multiple of real-world pace (1.0: a message is
    /// delivered about 3.5 s after it was created; 100.0: 35 ms). 0.0 freezes progression: the
    /// test moves messages itself with `advance` or `set_status`.
    pub speed: f64,
    /// How messages end.
    pub outcomes: OutcomeShares,
    /// How long each API request takes.
    pub latency: LatencyConfig,
    /// Failures to inject.
    pub faults: FaultConfig,
    /// Status-callback quirks.
    pub callbacks: CallbackConfig,
    /// Seeds the simulator's randomness (SIDs, outcomes, latency, faults) for reproducible runs.
    pub seed: Option<u64>,
    /// What each message on a Messages list page adds to that request's latency, as a bigger
    /// page takes Twilio longer (default 1 ms: a page of 1,000 takes a second more).
    pub list_latency_per_message: Duration,
}

/// The default of [`SimConfig::list_latency_per_message`].
pub const LIST_LATENCY_PER_MESSAGE: Duration = Duration::from_millis(1);

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            accounts: Vec::new(),
            speed: 1.0,
            outcomes: OutcomeShares::default(),
            latency: LatencyConfig::default(),
            faults: FaultConfig::default(),
            callbacks: CallbackConfig::default(),
            seed: None,
            list_latency_per_message: LIST_LATENCY_PER_MESSAGE,
        }
    }
}

impl SimConfig {
    /// Adds an account.
    pub fn with_account(mut self, account: SimAccount) -> Self {
        self.accounts.push(account);
        self
    }
}

/// A Twilio account the simulator serves: its SID, auth token and any API keys.
#[derive(Clone, Serialize, Deserialize)]
pub struct SimAccount {
    /// The account SID (`AC…`), also the Basic-auth username with the auth token.
    pub sid: AccountSid,
    /// The auth token: the Basic-auth password, and the key status callbacks are signed with.
    pub auth_token: String,
    /// API keys (`SK…` and secret) accepted for this account.
    #[serde(default)]
    pub api_keys: Vec<SimApiKey>,
}

impl SimAccount {
    /// An account with an auth token and no API keys.
    pub fn new(sid: AccountSid, auth_token: impl Into<String>) -> Self {
        Self {
            sid,
            auth_token: auth_token.into(),
            api_keys: Vec::new(),
        }
    }

    /// Adds an API key.
    pub fn with_api_key(mut self, sid: ApiKeySid, secret: impl Into<String>) -> Self {
        self.api_keys.push(SimApiKey {
            sid,
            secret: secret.into(),
        });
        self
    }
}

impl fmt::Debug for SimAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimAccount")
            .field("sid", &self.sid)
            .field("auth_token", &"[REDACTED]")
            .field("api_keys", &self.api_keys)
            .finish()
    }
}

/// An API key of a [`SimAccount`].
#[derive(Clone, Serialize, Deserialize)]
pub struct SimApiKey {
    /// The key's SID (`SK…`), the Basic-auth username.
    pub sid: ApiKeySid,
    /// The key's secret, the Basic-auth password.
    pub secret: String,
}

impl fmt::Debug for SimApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimApiKey")
            .field("sid", &self.sid)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// Shares (0.0 to 1.0) of created messages that do not end `delivered`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OutcomeShares {
    /// End `undelivered` after `sent`, with 30003, 30005, 30006, 30007 or 30008.
    pub undelivered: f64,
    /// End `failed` before `sent`, with 30001, 30004 or 30008.
    pub failed: f64,
}

impl Default for OutcomeShares {
    fn default() -> Self {
        Self {
            undelivered: 0.1,
            failed: 0.05,
        }
    }
}

/// Per-request latency: log-normal around `median` with shape `sigma` (0: always the median).
/// A zero median means no added latency.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencyConfig {
    /// The median latency.
    #[serde(with = "millis", rename = "median_ms")]
    pub median: Duration,
    /// The log-normal shape; 0.5 gives a realistic long tail.
    pub sigma: f64,
}

impl LatencyConfig {
    /// No added latency.
    pub fn zero() -> Self {
        Self::default()
    }

    /// Exactly `median`, every time.
    pub fn fixed(median: Duration) -> Self {
        Self { median, sigma: 0.0 }
    }
}

/// Failures the simulator injects into the Twilio API routes (never into `/_sim` routes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultConfig {
    /// Answer 429 (code 20429) when more than this many API requests are in flight for one
    /// account (the account SID in the path), like Twilio's per-account concurrency limit; other
    /// accounts' requests do not count against it. `None`: no limit.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Share of requests answered with a 5xx (half Twilio's JSON 500, half a proxy's HTML 503),
    /// before anything is created.
    #[serde(default)]
    pub server_error_share: f64,
    /// Share of requests that hang for `timeout_hang` before answering 504.
    #[serde(default)]
    pub timeout_share: f64,
    /// How long a "timed out" request hangs.
    #[serde(with = "millis", rename = "timeout_hang_ms", default = "default_hang")]
    pub timeout_hang: Duration,
    /// Share of successful answers whose JSON body is cut in half.
    #[serde(default)]
    pub malformed_share: f64,
}

fn default_hang() -> Duration {
    Duration::from_secs(30)
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            max_in_flight: None,
            server_error_share: 0.0,
            timeout_share: 0.0,
            timeout_hang: default_hang(),
            malformed_share: 0.0,
        }
    }
}

/// Quirks of status-callback delivery that real Twilio shows.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CallbackConfig {
    /// Share of callbacks sent twice.
    pub duplicate_share: f64,
    /// Share of non-final callbacks held back and sent after the next one.
    pub out_of_order_share: f64,
}

/// Serde for a [`Duration`] as whole milliseconds.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
