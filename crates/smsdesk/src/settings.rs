//! Configuration: command-line flags, each with an environment variable of the same meaning.
//! `docs/operations.md` lists them all.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use clap::{Args, ValueEnum};

/// Development or production behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    /// Generates a missing encryption key, seeds a demo team, shows error detail.
    Development,
    /// Requires an encryption key, never seeds, hides internal detail from responses.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// How bulk refreshes learn statuses (`SMSDESK_REFRESH_PLAN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RefreshPlan {
    /// The planner picks a sweep or the window for each bulk refresh.
    Auto,
    /// Always one fetch per message.
    Window,
}

/// Everything the service needs to start.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Development or production.
    #[arg(
        global = true,
        long = "env",
        env = "SMSDESK_ENV",
        value_enum,
        default_value = "development"
    )]
    pub environment: Environment,

    /// Address and port to listen on (port 0 picks a free one).
    #[arg(
        global = true,
        long,
        env = "SMSDESK_BIND",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: SocketAddr,

    /// Where the SQLite database and the development encryption key live.
    #[arg(global = true, long, env = "SMSDESK_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`. Default: an SQLite
    /// file in the data directory.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// A file holding the database URL (it may carry a password), the convention of container
    /// platforms' secrets; exclusive with `SMSDESK_DATABASE_URL`.
    #[arg(global = true, long, env = "SMSDESK_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// The 32-byte AES-256-GCM key for secrets at rest, base64. Required in production; in
    /// development a key is generated into the data directory on first start.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    pub encryption_key: Option<String>,

    /// A file holding the encryption key; exclusive with `SMSDESK_ENCRYPTION_KEY`.
    #[arg(global = true, long, env = "SMSDESK_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,

    /// Earlier keys, comma-separated base64, still accepted for decryption during a rotation.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_OLD_ENCRYPTION_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub old_encryption_keys: Vec<String>,

    /// A file holding the earlier keys (comma- or newline-separated); exclusive with
    /// `SMSDESK_OLD_ENCRYPTION_KEYS`.
    #[arg(global = true, long, env = "SMSDESK_OLD_ENCRYPTION_KEYS_FILE")]
    pub old_encryption_keys_file: Option<PathBuf>,

    /// This service's public URL (scheme, host, optional port), used for Twilio's status
    /// callbacks and to check webhook signatures. Without it, sends ask for no callbacks.
    #[arg(global = true, long, env = "SMSDESK_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,

    /// Trust `X-Forwarded-Proto` and `X-Forwarded-Host` to rebuild the URL Twilio signed. Turn on
    /// only behind a proxy that sets (and strips client-sent) forwarded headers.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_TRUST_FORWARDED_HEADERS",
        default_value_t = false
    )]
    pub trust_forwarded_headers: bool,

    /// Twilio's API base URL. When unset, the built-in Twilio simulator is started and used.
    #[arg(global = true, long, env = "SMSDESK_TWILIO_BASE_URL")]
    pub twilio_base_url: Option<String>,

    /// How fast the built-in simulator moves messages along (1.0: delivered after about 3.5 s;
    /// 0: never on their own). Ignored with a real Twilio.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_SIMULATOR_SPEED",
        default_value_t = 1.0
    )]
    pub simulator_speed: f64,

    /// Requests in flight to one Twilio account at most, across all refreshes.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_TWILIO_ACCOUNT_CONCURRENCY",
        default_value_t = 50
    )]
    pub twilio_account_concurrency: usize,

    /// The longest one request to Twilio may take, in milliseconds (each retry gets its own).
    #[arg(
        global = true,
        long,
        env = "SMSDESK_TWILIO_REQUEST_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub twilio_request_timeout_ms: u64,

    /// Provider calls in flight per refresh request at most.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_REFRESH_MAX_IN_FLIGHT",
        default_value_t = 10
    )]
    pub refresh_max_in_flight: usize,

    /// Seconds between two refreshes of one message.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_MESSAGE_COOLDOWN_SECS",
        default_value_t = 60
    )]
    pub message_cooldown_secs: u64,

    /// Seconds between two bulk refreshes by one user.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_BULK_COOLDOWN_SECS",
        default_value_t = 60
    )]
    pub bulk_cooldown_secs: u64,

    /// How bulk refreshes learn statuses: `auto` (a sweep of the account's Messages list when the
    /// candidates fit in a page or two, else one fetch per message) or `window` (always one
    /// fetch per message).
    #[arg(
        global = true,
        long,
        env = "SMSDESK_REFRESH_PLAN",
        value_enum,
        default_value = "auto"
    )]
    pub refresh_plan: RefreshPlan,

    /// Whether delivery-webhook endpoints may point at loopback, private or link-local
    /// addresses (the default in development, so the demo and tests can use 127.0.0.1; refused
    /// by default in production, where endpoints must also use https).
    #[arg(global = true, long, env = "SMSDESK_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: Option<bool>,

    /// HTTP worker threads. Default: one per CPU the process may use.
    #[arg(global = true, long, env = "SMSDESK_HTTP_WORKERS")]
    pub http_workers: Option<std::num::NonZeroUsize>,

    /// Database connections in the pool. Default: 4 for a SQLite file (one writes at a time),
    /// for PostgreSQL 4 per HTTP worker, at least 10.
    #[arg(global = true, long, env = "SMSDESK_DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<std::num::NonZeroU32>,

    /// Seconds between two reconciler runs, which sweep the accounts with unfinished messages
    /// (one replica of a fleet runs it); 0 switches the reconciler off.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_RECONCILER_INTERVAL_SECS",
        default_value_t = 300
    )]
    pub reconciler_interval_secs: u64,

    /// Seconds a message is left to its status callbacks before the reconciler looks for it.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_RECONCILER_MIN_AGE_SECS",
        default_value_t = 600
    )]
    pub reconciler_min_age_secs: u64,

    /// Pages of an account's Messages list (1,000 messages each) one reconciler run may read.
    #[arg(global = true, long, env = "SMSDESK_RECONCILER_MAX_PAGES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reconciler_max_pages: u32,

    /// Sustained requests per minute allowed for one API key at the edge.
    #[arg(global = true, long, env = "SMSDESK_RATE_LIMIT_PER_KEY", default_value_t = NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN))]
    pub rate_limit_per_key: NonZeroU32,

    /// Requests one API key may make in a burst.
    #[arg(global = true, long, env = "SMSDESK_RATE_LIMIT_PER_KEY_BURST", default_value_t = NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN))]
    pub rate_limit_per_key_burst: NonZeroU32,

    /// Sustained requests per minute allowed for one client IP without an API key (webhooks,
    /// probes, the page).
    #[arg(global = true, long, env = "SMSDESK_RATE_LIMIT_PER_IP", default_value_t = NonZeroU32::new(120).unwrap_or(NonZeroU32::MIN))]
    pub rate_limit_per_ip: NonZeroU32,

    /// Requests one client IP may make in a burst without an API key.
    #[arg(global = true, long, env = "SMSDESK_RATE_LIMIT_PER_IP_BURST", default_value_t = NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN))]
    pub rate_limit_per_ip_burst: NonZeroU32,

    /// Sustained requests per minute allowed for one IP on Twilio's webhooks (status callbacks,
    /// inbound SMS), which Twilio sends from few addresses.
    #[arg(global = true, long, env = "SMSDESK_RATE_LIMIT_PER_WEBHOOK_IP", default_value_t = NonZeroU32::new(6000).unwrap_or(NonZeroU32::MIN))]
    pub rate_limit_per_webhook_ip: NonZeroU32,

    /// Webhook requests one IP may make in a burst.
    #[arg(global = true, long, env = "SMSDESK_RATE_LIMIT_PER_WEBHOOK_IP_BURST", default_value_t = NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN))]
    pub rate_limit_per_webhook_ip_burst: NonZeroU32,

    /// Requests per minute (and burst) one IP may make with API keys that have not
    /// authenticated; every failed authentication is charged here, whatever key it carried.
    #[arg(global = true, long, env = "SMSDESK_RATE_LIMIT_FAILED_AUTH_PER_IP", default_value_t = NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN))]
    pub rate_limit_failed_auth_per_ip: NonZeroU32,

    /// Days after which message bodies are redacted (emptied; the status history stays). Unset:
    /// never. Set it in production to what your data-protection rules require.
    #[arg(global = true, long, env = "SMSDESK_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: Option<u32>,

    /// With retention, also mask the phone numbers of redacted messages (all but the last two
    /// digits).
    #[arg(
        global = true,
        long,
        env = "SMSDESK_RETENTION_MASK_NUMBERS",
        default_value_t = false
    )]
    pub retention_mask_numbers: bool,

    /// Log line format.
    #[arg(
        global = true,
        long,
        env = "SMSDESK_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
}

impl Default for Settings {
    /// The settings of a bare `smsdesk serve`: every default, overridden by any `SMSDESK_*`
    /// environment variable that is set.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Bare {
            #[command(flatten)]
            settings: Settings,
        }
        <Bare as clap::Parser>::parse_from(["smsdesk"]).settings
    }
}

/// Reads a secret from `path`: the whole file, surrounding whitespace (a trailing newline)
/// removed. The error names the file and the setting, never the content.
///
/// # Errors
/// The file cannot be read, is not UTF-8, or is empty.
pub fn read_secret_file(path: &Path, setting: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{setting}: cannot read {}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        anyhow::bail!("{setting}: {} is empty", path.display());
    }
    Ok(secret.to_owned())
}

/// `value` or the content of `file`, whichever was given; both is an error.
///
/// # Errors
/// Both were given, or the file cannot be read.
pub fn value_or_file(
    value: Option<String>,
    file: Option<&Path>,
    setting: &str,
) -> anyhow::Result<Option<String>> {
    match (value, file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("give {setting} or {setting}_FILE, not both")
        }
        (value, None) => Ok(value),
        (None, Some(path)) => read_secret_file(path, &format!("{setting}_FILE")).map(Some),
    }
}

impl Settings {
    /// Replaces every `*_FILE` setting by the content of its file (container platforms mount
    /// secrets as files rather than environment variables). Idempotent: the file settings are
    /// cleared once read.
    ///
    /// # Errors
    /// A secret given both ways, or a file that cannot be read (the error never shows content).
    pub fn load_secret_files(&mut self) -> anyhow::Result<()> {
        self.database_url = value_or_file(
            self.database_url.take(),
            self.database_url_file.take().as_deref(),
            "SMSDESK_DATABASE_URL",
        )?;
        self.encryption_key = value_or_file(
            self.encryption_key.take(),
            self.encryption_key_file.take().as_deref(),
            "SMSDESK_ENCRYPTION_KEY",
        )?;
        if let Some(path) = self.old_encryption_keys_file.take() {
            if !self.old_encryption_keys.is_empty() {
                anyhow::bail!(
                    "give SMSDESK_OLD_ENCRYPTION_KEYS or SMSDESK_OLD_ENCRYPTION_KEYS_FILE, not both"
                );
            }
            let keys = read_secret_file(&path, "SMSDESK_OLD_ENCRYPTION_KEYS_FILE")?;
            self.old_encryption_keys = keys
                .split([',', '\n'])
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(str::to_owned)
                .collect();
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("smsdesk.db").display()
            )
        })
    }

    /// Whether production behaviour is on.
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// The edge request rates in force.
    pub fn rate_limits(&self) -> smsdesk_web::RateLimitConfig {
        smsdesk_web::RateLimitConfig {
            per_key_per_minute: self.rate_limit_per_key,
            per_key_burst: self.rate_limit_per_key_burst,
            per_ip_per_minute: self.rate_limit_per_ip,
            per_ip_burst: self.rate_limit_per_ip_burst,
            per_webhook_ip_per_minute: self.rate_limit_per_webhook_ip,
            per_webhook_ip_burst: self.rate_limit_per_webhook_ip_burst,
            failed_auth_per_ip_per_minute: self.rate_limit_failed_auth_per_ip,
        }
    }

    /// The retention policy, when retention is on.
    pub fn retention_policy(&self) -> Option<smsdesk_domain::retention::RetentionPolicy> {
        self.retention_days.map(|days| {
            smsdesk_domain::retention::RetentionPolicy::after_days(
                days,
                self.retention_mask_numbers,
            )
        })
    }

    /// When bulk refreshes sweep.
    pub fn sweep_policy(&self) -> smsdesk_domain::sweep::SweepPolicy {
        smsdesk_domain::sweep::SweepPolicy {
            mode: match self.refresh_plan {
                RefreshPlan::Auto => smsdesk_domain::sweep::PlanMode::Auto,
                RefreshPlan::Window => smsdesk_domain::sweep::PlanMode::Window,
            },
            ..smsdesk_domain::sweep::SweepPolicy::default()
        }
    }

    /// HTTP worker threads in force: the setting, else one per CPU available.
    pub fn http_workers(&self) -> usize {
        self.http_workers.map_or_else(
            || std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            std::num::NonZeroUsize::get,
        )
    }

    /// The database pool's size in force, `None` for the store's default (SQLite).
    pub fn database_max_connections(&self) -> Option<u32> {
        self.database_max_connections
            .map(std::num::NonZeroU32::get)
            .or_else(|| {
                let postgres = !self.database_url().starts_with("sqlite:");
                postgres.then(|| {
                    u32::try_from(self.http_workers() * 4)
                        .unwrap_or(u32::MAX)
                        .max(10)
                })
            })
    }

    /// Where delivery-webhook endpoints may point.
    pub fn webhook_urls(&self) -> smsdesk_domain::webhooks::UrlPolicy {
        smsdesk_domain::webhooks::UrlPolicy {
            require_https: self.is_production(),
            allow_private: self.webhook_allow_private.unwrap_or(!self.is_production()),
        }
    }

    /// What the reconciler looks for; `None` when it is off.
    pub fn reconcile_policy(&self) -> Option<smsdesk_domain::services::ReconcilePolicy> {
        (self.reconciler_interval_secs > 0).then(|| smsdesk_domain::services::ReconcilePolicy {
            min_age: Duration::from_secs(self.reconciler_min_age_secs),
            max_pages_per_account: self.reconciler_max_pages,
            ..smsdesk_domain::services::ReconcilePolicy::default()
        })
    }

    /// The refresh limits in force.
    pub fn refresh_policy(&self) -> smsdesk_domain::RefreshPolicy {
        smsdesk_domain::RefreshPolicy {
            max_in_flight: self.refresh_max_in_flight.max(1),
            message_cooldown: Duration::from_secs(self.message_cooldown_secs),
            bulk_cooldown: Duration::from_secs(self.bulk_cooldown_secs),
            ..smsdesk_domain::RefreshPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("written");
        path
    }

    #[test]
    fn secrets_are_read_from_their_files_once_and_trimmed() {
        let dir = tempfile::tempdir().expect("a directory");
        let mut settings = Settings {
            encryption_key_file: Some(write(dir.path(), "key", "c2VjcmV0LWtleQ==\n")),
            old_encryption_keys_file: Some(write(dir.path(), "old", "b2xkMQ==\nb2xkMg==,\n")),
            database_url_file: Some(write(dir.path(), "db", "postgres://u:p@db/smsdesk\n")),
            ..Settings::default()
        };
        settings.load_secret_files().expect("loaded");
        assert_eq!(settings.encryption_key.as_deref(), Some("c2VjcmV0LWtleQ=="));
        assert_eq!(settings.old_encryption_keys, vec!["b2xkMQ==", "b2xkMg=="]);
        assert_eq!(
            settings.database_url.as_deref(),
            Some("postgres://u:p@db/smsdesk")
        );
        assert!(settings.encryption_key_file.is_none(), "read once");
        settings
            .load_secret_files()
            .expect("loading again changes nothing");
        assert_eq!(settings.encryption_key.as_deref(), Some("c2VjcmV0LWtleQ=="));
    }

    #[test]
    fn a_secret_given_twice_or_from_a_bad_file_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().expect("a directory");
        let both = Settings {
            encryption_key: Some("from-the-environment".into()),
            encryption_key_file: Some(write(dir.path(), "key", "from-the-file")),
            ..Settings::default()
        };
        let empty = Settings {
            encryption_key_file: Some(write(dir.path(), "empty", "\n")),
            ..Settings::default()
        };
        let missing = Settings {
            database_url_file: Some(dir.path().join("absent")),
            ..Settings::default()
        };
        for (mut settings, expected, why) in [
            (
                both,
                "give SMSDESK_ENCRYPTION_KEY or SMSDESK_ENCRYPTION_KEY_FILE, not both",
                "both",
            ),
            (empty, "is empty", "an empty file"),
            (
                missing,
                "SMSDESK_DATABASE_URL_FILE: cannot read",
                "a missing file",
            ),
        ] {
            let error = format!("{:#}", settings.load_secret_files().expect_err(why));
            assert!(error.contains(expected), "{why}: {error}");
            assert!(
                !error.contains("from-the-file") && !error.contains("from-the-environment"),
                "{why}: the secret is not shown: {error}"
            );
        }
    }
}
