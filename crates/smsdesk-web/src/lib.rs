//! # smsdesk-web
//!
//! smsdesk's HTTP API on actix-web 4: JSON endpoints over the domain's use cases, API-key
//! authentication, one error shape for every failure, edge rate limits, request ids in every log
//! line, and Prometheus metrics. It depends on `smsdesk-domain`, and on `smsdesk-twilio` for one thing only: checking
//! `X-Twilio-Signature` on Twilio's webhooks. The app crate provides the adapters ([`WebPorts`]) and binds the server.
//!
//! Layout:
//! - [`state`]: [`WebConfig`], [`WebPorts`], [`WebState`] and the [`Readiness`] probe;
//! - [`edge`]: the middleware every request passes (request id, body limit, rate limit, error
//!   shape, production redaction, metrics) and the [`EdgeRateLimiter`];
//! - [`auth`]: the [`Authenticated`] extractor (`Authorization: Bearer <api key>`);
//! - [`error`]: [`ApiError`], the error body, and the mapping of domain and extractor errors;
//! - [`dto`]: the JSON shapes;
//! - [`metrics`]: the registry and the Twilio-call decorator;
//! - [`consequences`]: the service's [`ChangeNotifier`](smsdesk_domain::changes::ChangeNotifier):
//!   live events and metrics for every change the domain commits (handlers publish nothing);
//! - [`events`]: live message events, streamed to the SMS page as Server-Sent Events;
//! - `page`: the SMS page (`GET /sms`) and the API reference (`GET /docs`), their assets
//!   compiled in from `assets/`;
//! - [`coalesce`]: identical concurrent reads shared without serving anything stale (the list);
//! - `routes`: the handlers; `query`: strict query-string parsing;
//! - `webhooks`: Twilio's status callbacks and inbound SMS, authenticated by `X-Twilio-Signature`
//!   (with the integration's auth token over the public URL) instead of an API key.
//!
//! Building the service:
//! ```no_run
//! # use std::sync::Arc;
//! # fn ports() -> smsdesk_web::WebPorts { unimplemented!() }
//! use actix_web::{App, HttpServer};
//! use smsdesk_web::{WebConfig, WebState};
//!
//! # async fn run() -> std::io::Result<()> {
//! let state = WebState::new(ports(), WebConfig::default());
//! state.spawn_rate_limit_housekeeping(std::time::Duration::from_secs(60));
//! // Status callbacks whose message never appeared are dropped after an hour.
//! state.spawn_parked_callback_housekeeping(
//!     std::time::Duration::from_secs(300),
//!     std::time::Duration::from_secs(3600),
//! );
//! HttpServer::new(move || {
//!     let state = state.clone();
//!     App::new().configure(move |cfg| smsdesk_web::configure(cfg, state))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//! The endpoints and error codes are documented in `docs/api.md`.

pub mod auth;
pub mod coalesce;
pub mod consequences;
pub mod dto;
pub mod edge;
pub mod error;
pub mod events;
pub mod metrics;
mod page;
mod query;
mod routes;
pub mod state;
mod webhook_endpoints;
mod webhooks;

use actix_web::web;

pub use auth::Authenticated;
pub use edge::{EdgeKey, EdgeRateLimiter, REQUEST_ID_HEADER};
pub use error::{ApiError, ErrorBody, ErrorCode, ErrorDetail};
pub use metrics::{MeteredSmsProvider, Metrics};
pub use routes::OPENAPI_DOCUMENT;
pub use state::{AlwaysReady, RateLimitConfig, Readiness, WebConfig, WebPorts, WebState};

/// Registers every endpoint, the extractor error handlers, the 404 fallback and the edge
/// middleware on `cfg`. Use as `App::new().configure(|cfg| smsdesk_web::configure(cfg, state))`,
/// in `HttpServer::new` as in `actix_web::test::init_service`.
pub fn configure(cfg: &mut web::ServiceConfig, state: WebState) {
    let body_limit = state.config().body_limit_bytes;
    cfg.app_data(web::Data::new(state))
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                .error_handler(error::json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .app_data(web::PayloadConfig::default().limit(body_limit))
        .configure(page::register)
        .service(routes::register(web::scope("")).wrap(actix_web::middleware::from_fn(edge::edge)));
}
