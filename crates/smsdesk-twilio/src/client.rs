//! [`TwilioClient`]: the [`SmsProvider`] over Twilio's REST API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::ExposeSecret as _;
use smsdesk_domain::ports::{
    MAX_LIST_PAGE_SIZE, MessageListPage, MessageListQuery, OutboundSms, ProviderError,
    ProviderMessage, Sender, SmsProvider, TwilioAuth, TwilioCredentials,
};
use smsdesk_domain::{AccountSid, MessageSid};

use crate::config::TwilioConfig;
use crate::gate::Gate;
use crate::retry::{Idempotency, with_retries};
use crate::wire::{TwilioErrorBody, parse_date, parse_error, parse_list_page, parse_message};

/// Why a [`TwilioClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The HTTP client could not be set up (TLS roots, resolver).
    #[error("cannot set up the HTTP client: {0}")]
    Http(String),
    /// A setting is out of range.
    #[error("invalid Twilio client setting: {0}")]
    InvalidConfig(&'static str),
}

/// Twilio's REST API as an [`SmsProvider`]. Cheap to clone: clones share one connection pool and
/// one per-account concurrency limit, so build one per process and hand out clones.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: TwilioConfig,
    /// One gate per account: the cap holds across every caller of this client.
    limits: Mutex<HashMap<AccountSid, Arc<Gate>>>,
    /// Requests in flight allowed per account from this process: the whole cap, or this
    /// replica's share of it in a fleet.
    share: Arc<AtomicUsize>,
}

impl TwilioClient {
    /// Builds the client and its connection pool.
    ///
    /// # Errors
    /// [`ClientBuildError::InvalidConfig`] for a zero concurrency or an empty base URL;
    /// [`ClientBuildError::Http`] when the HTTP client cannot be created.
    pub fn new(mut config: TwilioConfig) -> Result<Self, ClientBuildError> {
        if config.per_account_concurrency == 0 {
            return Err(ClientBuildError::InvalidConfig(
                "per_account_concurrency must be at least 1",
            ));
        }
        config.base_url = config.base_url.trim_end_matches('/').to_owned();
        if config.base_url.is_empty() {
            return Err(ClientBuildError::InvalidConfig("base_url is empty"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(config.per_account_concurrency)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(concat!("smsdesk/", env!("CARGO_PKG_VERSION")))
            // Twilio's API answers where it is asked; a redirect is an unexpected answer
            // (see `classify`), and the account's credentials never follow one elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientBuildError::Http(e.to_string()))?;
        let share = Arc::new(AtomicUsize::new(config.per_account_concurrency));
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                limits: Mutex::new(HashMap::new()),
                share,
            }),
        })
    }

    /// Sets this process's share of every account's cap to `share` requests in flight (at least
    /// 1, at most the configured cap): a fleet of N replicas gives each `cap / N`
    /// (`smsdesk_domain::refresh_rules::fleet_share`), so together they never exceed the cap.
    /// Requests already in flight finish; new ones wait while the process is over its share.
    pub fn set_share(&self, share: usize) {
        let share = share.clamp(1, self.inner.config.per_account_concurrency);
        let before = self.inner.share.swap(share, Ordering::SeqCst);
        if share > before {
            let limits = self
                .inner
                .limits
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for gate in limits.values() {
                gate.recheck();
            }
        }
    }

    /// This process's share of each account's cap now.
    pub fn share(&self) -> usize {
        self.inner.share.load(Ordering::SeqCst)
    }

    /// The settings in use.
    pub fn config(&self) -> &TwilioConfig {
        &self.inner.config
    }

    fn limit_for(&self, account: &AccountSid) -> Arc<Gate> {
        let mut limits = self
            .inner
            .limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        limits
            .entry(account.clone())
            .or_insert_with(|| Arc::new(Gate::new(self.inner.share.clone())))
            .clone()
    }

    fn messages_url(&self, account: &AccountSid) -> String {
        format!(
            "{}/2010-04-01/Accounts/{account}/Messages",
            self.inner.config.base_url
        )
    }

    /// One HTTP attempt, holding a permit of the account's limit only while the request and its
    /// body are in flight (not during a backoff).
    async fn attempt<T>(
        &self,
        credentials: &TwilioCredentials,
        request: reqwest::RequestBuilder,
        operation: &'static str,
        parse: fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, ProviderError> {
        let limit = self.limit_for(&credentials.account_sid);
        let permit = limit.enter().await;
        let request = authenticate(request, credentials).header("Accept", "application/json");
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(transport_error)?;
        drop(permit);
        if status == 429 {
            limit.penalise();
        }
        // The redacted copy of the body is made only for a reader: the debug log (whose fields
        // are evaluated only when the level is on), or an error (its text ends up in answers to
        // clients). A success is read as it came.
        tracing::debug!(
            operation,
            account = %credentials.account_sid,
            status,
            body = %redact(&body, credentials),
            "Twilio answered"
        );
        if (200..300).contains(&status) {
            classify(status, &body, retry_after, parse)
        } else {
            classify(
                status,
                redact(&body, credentials).as_bytes(),
                retry_after,
                parse,
            )
        }
    }
}

fn authenticate(
    request: reqwest::RequestBuilder,
    credentials: &TwilioCredentials,
) -> reqwest::RequestBuilder {
    match &credentials.auth {
        TwilioAuth::AuthToken(token) => request.basic_auth(
            credentials.account_sid.as_str(),
            Some(token.expose_secret()),
        ),
        TwilioAuth::ApiKey { sid, secret } => {
            request.basic_auth(sid.as_str(), Some(secret.expose_secret()))
        }
    }
}

/// The body as text with the credentials' secret replaced, for the log.
fn redact(body: &[u8], credentials: &TwilioCredentials) -> String {
    let text = String::from_utf8_lossy(body);
    let secret = match &credentials.auth {
        TwilioAuth::AuthToken(token) => token.expose_secret(),
        TwilioAuth::ApiKey { secret, .. } => secret.expose_secret(),
    };
    if secret.is_empty() {
        text.into_owned()
    } else {
        text.replace(secret, "[REDACTED]")
    }
}

/// A transport failure (connect, timeout, reset) as [`ProviderError::Unavailable`], without the
/// URL.
fn transport_error(error: reqwest::Error) -> ProviderError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut reason = format!("{kind}: {error}");
    // reqwest's own message is generic ("error sending request"); the cause is in the chain.
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    reason.truncate(500);
    ProviderError::Unavailable { reason }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_date(value)?;
    Some((at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

/// Maps an HTTP answer to the domain's terms. The error body, when it is Twilio's JSON, supplies
/// the code and message; otherwise the HTTP status alone decides.
fn classify<T>(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    parse: fn(&[u8]) -> Result<T, String>,
) -> Result<T, ProviderError> {
    if (200..300).contains(&status) {
        return parse(body).map_err(|reason| ProviderError::Unexpected { reason });
    }
    let error = parse_error(body);
    let message = describe(&error, status);
    Err(match (status, error.code) {
        (404, _) | (_, Some(20404)) => ProviderError::NotFound,
        (401, _) | (_, Some(20003)) => ProviderError::CredentialsRejected {
            code: error.code,
            message,
        },
        (429, _) | (_, Some(20429)) => ProviderError::RateLimited { retry_after },
        (400..=499, code) => ProviderError::Rejected {
            status,
            code,
            message,
        },
        (500..=599, _) => ProviderError::Unavailable {
            reason: format!("HTTP {status}: {message}"),
        },
        _ => ProviderError::Unexpected {
            reason: format!("unexpected HTTP status {status}"),
        },
    })
}

/// Twilio's message and documentation link, or the HTTP status when the body said nothing.
fn describe(error: &TwilioErrorBody, status: u16) -> String {
    let message = error
        .message
        .clone()
        .unwrap_or_else(|| format!("HTTP {status} without a Twilio error body"));
    match &error.more_info {
        Some(link) => format!("{message} (see {link})"),
        None => message,
    }
}

#[async_trait]
impl SmsProvider for TwilioClient {
    async fn fetch_message(
        &self,
        credentials: &TwilioCredentials,
        sid: &MessageSid,
    ) -> Result<ProviderMessage, ProviderError> {
        let url = format!("{}/{sid}.json", self.messages_url(&credentials.account_sid));
        with_retries(&self.inner.config.retry, Idempotency::Read, |_| {
            self.attempt(
                credentials,
                self.inner.http.get(&url),
                "fetch",
                parse_message,
            )
        })
        .await
    }

    async fn send_message(
        &self,
        credentials: &TwilioCredentials,
        sms: &OutboundSms,
    ) -> Result<ProviderMessage, ProviderError> {
        let url = format!("{}.json", self.messages_url(&credentials.account_sid));
        let mut form: Vec<(&str, &str)> = vec![("To", sms.to.as_str())];
        match &sms.sender {
            Sender::Number(number) => form.push(("From", number.as_str())),
            Sender::MessagingService(service) => {
                form.push(("MessagingServiceSid", service.as_str()));
            }
        }
        form.push(("Body", &sms.body));
        if let Some(callback) = &sms.status_callback {
            form.push(("StatusCallback", callback));
        }
        with_retries(&self.inner.config.retry, Idempotency::Write, |_| {
            self.attempt(
                credentials,
                self.inner.http.post(&url).form(&form),
                "send",
                parse_message,
            )
        })
        .await
    }

    async fn list_messages(
        &self,
        credentials: &TwilioCredentials,
        query: &MessageListQuery,
    ) -> Result<MessageListPage, ProviderError> {
        let url = self.list_url(&credentials.account_sid, query)?;
        with_retries(&self.inner.config.retry, Idempotency::Read, |_| {
            self.attempt(
                credentials,
                self.inner.http.get(&url),
                "list",
                parse_list_page,
            )
        })
        .await
    }
}

impl TwilioClient {
    /// The URL of a list page: the first from `query`'s filters, a later one from the page's
    /// own `next_page_uri`, which must be this account's Messages list on the configured host
    /// (the credentials go wherever the URL points, so an answer can never send them elsewhere).
    fn list_url(
        &self,
        account: &AccountSid,
        query: &MessageListQuery,
    ) -> Result<String, ProviderError> {
        let list_path = format!("/2010-04-01/Accounts/{account}/Messages.json");
        match &query.page_uri {
            Some(uri) if uri.starts_with(&format!("{list_path}?")) && !uri.contains("://") => {
                Ok(format!("{}{uri}", self.inner.config.base_url))
            }
            Some(_) => Err(ProviderError::Unexpected {
                reason: "the next page is not this account's Messages list".into(),
            }),
            None => {
                let mut url =
                    reqwest::Url::parse(&format!("{}{list_path}", self.inner.config.base_url))
                        .map_err(|err| ProviderError::Unexpected {
                            reason: format!("the Twilio base URL is not a URL: {err}"),
                        })?;
                url.query_pairs_mut()
                    .append_pair(
                        "DateSent>",
                        &query
                            .sent_since
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    )
                    .append_pair(
                        "PageSize",
                        &query.page_size.clamp(1, MAX_LIST_PAGE_SIZE).to_string(),
                    );
                Ok(url.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    const SID: &str = "SM0123456789abcdef0123456789abcdef";

    /// HTTP status, body, why, and the check the mapped error must pass.
    type ErrorCase = (u16, String, &'static str, fn(&ProviderError) -> bool);

    #[test]
    fn http_answers_map_to_provider_errors() {
        let twilio = |code: u32, status: u16| {
            format!(
                r#"{{"code":{code},"message":"m{code}","more_info":"https://www.twilio.com/docs/errors/{code}","status":{status}}}"#
            )
        };
        let cases: Vec<ErrorCase> = vec![
            (404, twilio(20404, 404), "404 with Twilio's body", |e| {
                *e == ProviderError::NotFound
            }),
            (404, "Not Found".into(), "404 with a plain body", |e| {
                *e == ProviderError::NotFound
            }),
            (
                401,
                twilio(20003, 401),
                "bad credentials",
                |e| matches!(e, ProviderError::CredentialsRejected { code: Some(20003), message } if message.contains("m20003") && message.contains("errors/20003")),
            ),
            (401, String::new(), "401 with no body", |e| {
                matches!(e, ProviderError::CredentialsRejected { code: None, .. })
            }),
            (429, twilio(20429, 429), "too many requests", |e| {
                matches!(e, ProviderError::RateLimited { .. })
            }),
            (
                400,
                twilio(21211, 400),
                "an invalid To",
                |e| matches!(e, ProviderError::Rejected { status: 400, code: Some(21211), message } if message.contains("m21211")),
            ),
            (
                403,
                "<html>Forbidden</html>".into(),
                "a proxy's HTML 403",
                |e| {
                    matches!(
                        e,
                        ProviderError::Rejected {
                            status: 403,
                            code: None,
                            ..
                        }
                    )
                },
            ),
            (
                503,
                "<html>Service Unavailable</html>".into(),
                "a proxy's 503",
                |e| matches!(e, ProviderError::Unavailable { reason } if reason.contains("503")),
            ),
            (500, twilio(20500, 500), "Twilio's 500", |e| {
                matches!(e, ProviderError::Unavailable { .. })
            }),
            (
                200,
                "{\"sid\":\"SM01".into(),
                "a truncated success body",
                |e| matches!(e, ProviderError::Unexpected { .. }),
            ),
            (302, String::new(), "a redirect", |e| {
                matches!(e, ProviderError::Unexpected { .. })
            }),
        ];
        for (status, body, why, expected) in cases {
            let error = classify(status, body.as_bytes(), None, parse_message).expect_err(why);
            assert!(expected(&error), "{why}: {error:?}");
        }
        let ok = classify(
            201,
            format!(r#"{{"sid":"{SID}","status":"queued"}}"#).as_bytes(),
            None,
            parse_message,
        );
        assert!(ok.is_ok(), "201 with a message");
    }

    #[test]
    fn retry_after_is_read_as_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a past date");
    }

    #[test]
    fn the_secret_is_redacted_from_logged_bodies() {
        let credentials = TwilioCredentials {
            account_sid: AccountSid::parse("AC0123456789abcdef0123456789abcdef").unwrap(),
            auth: TwilioAuth::AuthToken(SecretString::from("tok3n")),
        };
        let logged = redact(br#"{"echo":"tok3n"}"#, &credentials);
        assert_eq!(logged, r#"{"echo":"[REDACTED]"}"#);
    }

    #[test]
    fn a_zero_concurrency_is_refused() {
        let config = TwilioConfig {
            per_account_concurrency: 0,
            ..TwilioConfig::default()
        };
        assert!(matches!(
            TwilioClient::new(config),
            Err(ClientBuildError::InvalidConfig(_))
        ));
    }
}
