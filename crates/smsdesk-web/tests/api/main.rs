//! actix tests of the HTTP API over the domain's in-memory fakes: every endpoint, every error
//! mapping, the extractors and the edge. The world they run in is
//! `smsdesk_test_support::world`.

mod edge;
mod integration;
mod keys;
mod messages;
mod openapi;
mod openapi_types;
mod refresh;
mod send;
mod webhook_endpoints;
mod webhooks;
