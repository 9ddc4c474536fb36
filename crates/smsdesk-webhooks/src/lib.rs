//! The delivery-webhook adapter: [`HttpWebhookTransport`] implements the domain's
//! [`WebhookTransport`] over reqwest.
//!
//! What makes it safe to point at URLs a team typed in:
//! - **No redirects.** A 3xx is an answer (a failed attempt), never followed, so an endpoint
//!   cannot bounce a delivery to an internal address.
//! - **10 s per attempt**, connecting included; the worker's lease is longer.
//! - **Addresses checked after resolving.** Unless the [`UrlPolicy`] allows private addresses,
//!   every address a name resolves to must be public ([`is_public_address`]); a name that
//!   resolves only to loopback, private or link-local addresses (or a literal one) is refused
//!   before any connection, which also stops DNS rebinding from reaching them.
//! - **https** when the policy requires it, checked again at send time.
//! - Only the first 4 KiB of an answer is read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use smsdesk_domain::ports::{WebhookResponse, WebhookTransport, WebhookTransportError};
use smsdesk_domain::webhooks::{UrlPolicy, is_public_address};

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an answer is read.
pub const BODY_READ_LIMIT: usize = 4096;

/// Posts deliveries over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpWebhookTransport {
    client: reqwest::Client,
    policy: UrlPolicy,
}

/// The client could not be built (the TLS backend failed to load).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct BuildError(reqwest::Error);

impl HttpWebhookTransport {
    /// A transport holding deliveries to `policy`.
    ///
    /// # Errors
    /// [`BuildError`] when the HTTP client cannot be built.
    pub fn new(policy: UrlPolicy) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT);
        if !policy.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicAddressesOnly));
        }
        Ok(Self {
            client: builder.build().map_err(BuildError)?,
            policy,
        })
    }

    /// Refuses what the policy refuses before any connection: a scheme, or a literal address
    /// (names are checked by the resolver).
    fn check(&self, url: &str) -> Result<(), WebhookTransportError> {
        let parsed = url::Url::parse(url)
            .map_err(|_| WebhookTransportError("the endpoint URL is malformed".into()))?;
        if self.policy.require_https && parsed.scheme() != "https" {
            return Err(WebhookTransportError(
                "the endpoint URL must use https".into(),
            ));
        }
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if !self.policy.allow_private && literal.is_some_and(|ip| !is_public_address(ip)) {
            return Err(WebhookTransportError(
                "the endpoint's address is not public; refused".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl WebhookTransport for HttpWebhookTransport {
    async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Result<WebhookResponse, WebhookTransportError> {
        self.check(url)?;
        let mut request = self.client.post(url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        while kept.len() < BODY_READ_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                // The status is the answer; a body cut short by the receiver changes nothing.
                Ok(None) | Err(_) => break,
            }
        }
        kept.truncate(BODY_READ_LIMIT);
        Ok(WebhookResponse { status, body: kept })
    }
}

/// What went wrong, in words that name no internal detail of this service.
fn describe(error: reqwest::Error) -> WebhookTransportError {
    let what = if error.is_timeout() {
        "timed out after 10 s"
    } else if error.is_connect() {
        "could not connect (refused, unreachable, TLS failure, or a non-public address)"
    } else if error.is_redirect() {
        "redirect refused"
    } else {
        "the request failed"
    };
    WebhookTransportError(what.into())
}

/// Resolves names with the system resolver and keeps only public addresses.
#[derive(Debug, Clone, Copy)]
struct PublicAddressesOnly;

impl Resolve for PublicAddressesOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| is_public_address(address.ip()))
                .collect();
            if resolved.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(resolved.into_iter());
            Ok(addrs)
        })
    }
}
