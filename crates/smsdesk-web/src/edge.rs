//! The edge: what every request goes through before and after its handler.
//!
//! One middleware ([`edge`]) does, in order:
//! 1. takes the request id from `X-Request-Id` (if it is a sane token) or makes one, opens a
//!    tracing span carrying it (so every log line of the request has it), and echoes it in the
//!    response;
//! 2. refuses a body whose `Content-Length` is over the limit (413) before reading any of it;
//! 3. applies the edge rate limit (429 + `Retry-After`): a bearer token this process has seen
//!    authenticate is charged to that key's budget; any other token is charged to the client IP's
//!    failed-authentication budget (so varying the token buys nothing, and once that budget is
//!    spent no lookup reaches the database); requests without a token are charged to the IP;
//! 4. after the handler: turns any error answer into the one error shape, logs 5xx detail and,
//!    in production mode, replaces it with a generic message; counts the request in the metrics.
//!
//! The rate limiter keys on a hash of the presented key ([`crate::auth::KeyCache::hash`]), never
//! the key itself, and its maps are trimmed by [`EdgeRateLimiter::housekeeping`], which the app
//! runs on an interval.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpResponse, ResponseError, web};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tracing::Instrument;

use crate::error::{ApiError, ErrorCode};
use crate::state::{RateLimitConfig, WebState};

/// The request id header, read and echoed.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Who a request is counted against at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKey {
    /// A hash of an API key that authenticated in this process.
    ApiKey(u64),
    /// The client's IP, for requests with a key that has not authenticated here.
    UnverifiedKeyIp(IpAddr),
    /// The client's IP, for requests without a key.
    Ip(IpAddr),
    /// The client's IP, for Twilio's webhooks (their own, larger budget).
    WebhookIp(IpAddr),
}

/// The presented API key as the edge saw it, handed to the authentication extractor so the key
/// is hashed once per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PresentedKey {
    /// [`crate::auth::KeyCache::hash`] of the key.
    pub(crate) hash: u64,
    /// The key had not authenticated in this process, so the edge charged the request to the
    /// IP's failed-authentication budget rather than the key's own.
    pub(crate) unverified: bool,
}

/// The paths Twilio posts to; they are authenticated by signature, not by API key.
const WEBHOOK_PATHS: [&str; 2] = [
    "/api/integrations/twilio/status-callback",
    "/api/integrations/twilio/sms/receive",
];

/// Per-API-key and per-IP request rates, in memory (one per process).
pub struct EdgeRateLimiter {
    per_key: DefaultKeyedRateLimiter<u64>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_webhook_ip: DefaultKeyedRateLimiter<IpAddr>,
    failed_auth_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn quota(per_minute: std::num::NonZeroU32, burst: std::num::NonZeroU32) -> Quota {
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl EdgeRateLimiter {
    /// A limiter with the configured rates.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            per_key: RateLimiter::keyed(quota(config.per_key_per_minute, config.per_key_burst)),
            per_ip: RateLimiter::keyed(quota(config.per_ip_per_minute, config.per_ip_burst)),
            per_webhook_ip: RateLimiter::keyed(quota(
                config.per_webhook_ip_per_minute,
                config.per_webhook_ip_burst,
            )),
            failed_auth_per_ip: RateLimiter::keyed(quota(
                config.failed_auth_per_ip_per_minute,
                config.failed_auth_per_ip_per_minute,
            )),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request against `key`.
    ///
    /// # Errors
    /// The time to wait when the key is over its rate.
    pub fn check(&self, key: EdgeKey) -> Result<(), Duration> {
        let result = match key {
            EdgeKey::ApiKey(hash) => self.per_key.check_key(&hash),
            EdgeKey::Ip(ip) => self.per_ip.check_key(&ip),
            EdgeKey::WebhookIp(ip) => self.per_webhook_ip.check_key(&ip),
            EdgeKey::UnverifiedKeyIp(ip) => self.failed_auth_per_ip.check_key(&ip),
        };
        result.map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose limits have fully replenished and returns the memory, so the maps hold
    /// only recently active keys. Run it every minute or so.
    pub fn housekeeping(&self) {
        self.per_key.retain_recent();
        self.per_key.shrink_to_fit();
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_webhook_ip.retain_recent();
        self.per_webhook_ip.shrink_to_fit();
        self.failed_auth_per_ip.retain_recent();
        self.failed_auth_per_ip.shrink_to_fit();
    }

    /// How many keys and IPs are tracked now.
    pub fn tracked(&self) -> usize {
        self.per_key.len()
            + self.per_ip.len()
            + self.per_webhook_ip.len()
            + self.failed_auth_per_ip.len()
    }
}

/// A request id we are willing to echo: 1 to 128 characters of `[A-Za-z0-9._-]`.
fn acceptable_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The token of an `Authorization: Bearer` header, when there is one.
pub(crate) fn bearer_token(req: &actix_web::HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

fn declared_length(req: &ServiceRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The edge middleware; installed by [`crate::configure`] around every route.
///
/// # Errors
/// Only what the inner service returns as an error rather than a response (actix's own
/// failures); every refusal of ours is answered in the error shape.
pub async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map_or_else(new_request_id, str::to_owned);
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
        team_id = tracing::field::Empty,
    );
    let state = req.app_data::<web::Data<WebState>>().cloned();
    async move {
        let started = Instant::now();
        let method = req.method().to_string();
        let refusal = state
            .as_ref()
            .and_then(|state| refuse_at_the_edge(state, &req));
        // No clone of the request may be alive while the inner service runs: the router needs
        // exclusive access to it. Inner services answer errors as responses (handlers and
        // extractors do), so an `Err` here is actix's own and is passed on as it is.
        let response = match refusal {
            Some(error) => {
                let (request, _) = req.into_parts();
                ServiceResponse::new(request, HttpResponse::from_error(error))
            }
            None => next.call(req).await?.map_into_boxed_body(),
        };
        let production = state.as_ref().is_some_and(|s| s.config().production);
        let mut response = finish(response, production, &request_id);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
        }
        let status = response.status().as_u16();
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        if let Some(state) = &state {
            state.metrics().record_request(
                &route,
                &method,
                status,
                started.elapsed().as_secs_f64(),
            );
        }
        tracing::info!(
            status,
            route = %route,
            duration_ms = started.elapsed().as_millis() as u64,
            "request finished"
        );
        Ok(response)
    }
    .instrument(span)
    .await
}

fn refuse_at_the_edge(state: &WebState, req: &ServiceRequest) -> Option<ApiError> {
    let limit = state.config().body_limit_bytes;
    if let Some(length) = declared_length(req).filter(|length| *length > limit) {
        return Some(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body ({length} bytes) is larger than the limit of {limit} bytes"),
        ));
    }
    let limiter = state.rate_limiter();
    let peer = || client_network(req, state.config().trust_forwarded_headers);
    let key = match bearer_token(req.request()) {
        Some(token) => {
            let hash = state.key_cache().hash(token);
            let unverified = !state.key_cache().is_known(hash);
            // The extractor charges the key's own budget too if an unverified key turns out valid.
            req.extensions_mut()
                .insert(PresentedKey { hash, unverified });
            if unverified {
                EdgeKey::UnverifiedKeyIp(peer())
            } else {
                EdgeKey::ApiKey(hash)
            }
        }
        None if WEBHOOK_PATHS.contains(&req.path()) => EdgeKey::WebhookIp(peer()),
        None => EdgeKey::Ip(peer()),
    };
    limiter.check(key).err().map(rate_limited)
}

const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The first of a header's comma-separated values (the one the outermost proxy set).
pub(crate) fn first_header_value<'a>(
    req: &'a actix_web::HttpRequest,
    name: &HeaderName,
) -> Option<&'a str> {
    let value = req.headers().get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

/// The client a request is counted against at the edge: its IP (the first `X-Forwarded-For`
/// entry when a trusted proxy sets it, else the TCP peer), with an IPv6 address widened to its
/// /64, the block one subscriber normally holds, so rotating addresses within it buys nothing.
fn client_network(req: &ServiceRequest, trust_forwarded_headers: bool) -> IpAddr {
    let forwarded = trust_forwarded_headers
        .then(|| {
            first_header_value(req.request(), &FORWARDED_FOR)?
                .parse::<IpAddr>()
                .ok()
        })
        .flatten();
    let ip = forwarded.unwrap_or_else(|| {
        req.peer_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip())
    });
    budget_network(ip)
}

/// `ip` as a rate-limit key: IPv4 (also when mapped into IPv6) as is, IPv6 as its /64.
fn budget_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// 429 `rate_limited` with the wait as `Retry-After`.
pub(crate) fn rate_limited(wait: Duration) -> ApiError {
    // Round up: retrying after a truncated wait would be refused again.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        "too many requests; slow down",
    )
    .with_retry_after(secs)
}

/// Puts every error answer in the one shape, logs it, and hides 5xx detail in production.
fn finish(
    response: ServiceResponse<BoxBody>,
    production: bool,
    request_id: &str,
) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let Some(error) = response.response().error() else {
        if status.is_client_error() || status.is_server_error() {
            // An error answer with no error attached (e.g. a bare 405 from a resource): give it
            // the shape.
            return replace(response, ApiError::from_status(status));
        }
        return response;
    };
    let api_error = match error.as_error::<ApiError>() {
        Some(api_error) => api_error.clone(),
        None => {
            // Something of actix's own: keep its status, use our shape, log its words.
            let mut api_error = ApiError::from_status(error.as_response_error().status_code());
            if api_error.status().is_server_error() {
                api_error = ApiError::internal(error.to_string());
            }
            api_error
        }
    };
    if api_error.status().is_server_error() {
        tracing::error!(code = api_error.code(), detail = %api_error.message(), "request failed");
        if production {
            return replace(response, api_error.redacted(request_id));
        }
    } else {
        tracing::info!(code = api_error.code(), "request refused");
    }
    if error.as_error::<ApiError>().is_some() {
        response
    } else {
        replace(response, api_error)
    }
}

fn replace(response: ServiceResponse<BoxBody>, error: ApiError) -> ServiceResponse<BoxBody> {
    let (request, _) = response.into_parts();
    ServiceResponse::new(request, error.error_response())
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn nz(value: u32) -> NonZeroU32 {
        NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
    }

    #[test]
    fn request_ids_are_echoed_only_when_they_are_short_plain_tokens() {
        let cases = [
            ("abc-123_X.y", true, "plain token"),
            ("", false, "empty"),
            ("has space", false, "space"),
            ("new\nline", false, "control character"),
            (&*"a".repeat(129), false, "too long"),
        ];
        for (value, expected, why) in cases {
            assert_eq!(acceptable_request_id(value), expected, "{why}");
        }
        assert!(acceptable_request_id(&new_request_id()));
    }

    #[test]
    fn a_key_over_its_burst_must_wait_and_others_are_unaffected() {
        let limiter = EdgeRateLimiter::new(RateLimitConfig {
            per_key_per_minute: nz(1),
            per_key_burst: nz(2),
            per_ip_per_minute: nz(1),
            per_ip_burst: nz(1),
            ..RateLimitConfig::default()
        });
        let (alice, bob) = (EdgeKey::ApiKey(1), EdgeKey::ApiKey(2));
        assert!(limiter.check(alice).is_ok());
        assert!(limiter.check(alice).is_ok());
        let wait = limiter
            .check(alice)
            .expect_err("third request in a burst of two");
        assert!(wait > Duration::from_secs(30), "one per minute: {wait:?}");
        assert!(limiter.check(bob).is_ok(), "another key has its own budget");
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn twilios_webhooks_have_their_own_budget_per_ip() {
        let limiter = EdgeRateLimiter::new(RateLimitConfig {
            per_ip_per_minute: nz(1),
            per_ip_burst: nz(1),
            per_webhook_ip_per_minute: nz(1),
            per_webhook_ip_burst: nz(2),
            ..RateLimitConfig::default()
        });
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(limiter.check(EdgeKey::Ip(ip)).is_ok());
        assert!(
            limiter.check(EdgeKey::Ip(ip)).is_err(),
            "the page's budget is spent"
        );
        assert!(
            limiter.check(EdgeKey::WebhookIp(ip)).is_ok(),
            "a callback from the same address still passes"
        );
        assert!(
            limiter.check(EdgeKey::WebhookIp(ip)).is_ok(),
            "burst of two"
        );
        assert!(
            limiter.check(EdgeKey::WebhookIp(ip)).is_err(),
            "then it waits too"
        );
    }

    #[test]
    fn housekeeping_keeps_keys_that_are_still_limited() {
        let limiter = EdgeRateLimiter::new(RateLimitConfig {
            per_key_per_minute: nz(1),
            per_key_burst: nz(1),
            per_ip_per_minute: nz(1),
            per_ip_burst: nz(1),
            ..RateLimitConfig::default()
        });
        let ip = EdgeKey::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(limiter.check(ip).is_ok());
        limiter.housekeeping();
        assert!(
            limiter.check(ip).is_err(),
            "a key inside its period survives housekeeping"
        );
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn unverified_keys_share_their_ips_failed_authentication_budget() {
        let limiter = EdgeRateLimiter::new(RateLimitConfig {
            failed_auth_per_ip_per_minute: nz(3),
            ..RateLimitConfig::default()
        });
        let attacker = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        for _ in 0..3 {
            assert!(limiter.check(EdgeKey::UnverifiedKeyIp(attacker)).is_ok());
        }
        let wait = limiter
            .check(EdgeKey::UnverifiedKeyIp(attacker))
            .expect_err("the fourth unverified key from the IP");
        assert!(wait > Duration::from_secs(10), "3 a minute: {wait:?}");
        assert!(
            limiter.check(EdgeKey::ApiKey(7)).is_ok(),
            "a verified key has its own budget"
        );
        assert!(
            limiter
                .check(EdgeKey::UnverifiedKeyIp(IpAddr::V4(Ipv4Addr::new(
                    10, 0, 0, 2
                ))))
                .is_ok(),
            "another IP is unaffected"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(budget_network(a), budget_network(b), "one /64, one budget");
        assert_ne!(budget_network(a), budget_network(other), "another /64");
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().expect("ip");
        assert_eq!(
            budget_network(mapped),
            "198.51.100.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn the_forwarded_client_counts_only_behind_a_trusted_proxy() {
        use actix_web::test::TestRequest;
        let request = || {
            TestRequest::get()
                .peer_addr("10.0.0.1:5000".parse().expect("addr"))
                .insert_header(("x-forwarded-for", "203.0.113.5, 10.0.0.1"))
                .to_srv_request()
        };
        assert_eq!(
            client_network(&request(), true),
            "203.0.113.5".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_network(&request(), false),
            "10.0.0.1".parse::<IpAddr>().expect("ip"),
            "anyone can send the header, so it is ignored unless trusted"
        );
    }
}
