//! # smsdesk-tests
//!
//! End-to-end tests of the service: each test builds the real `smsdesk::Application` on port 0
//! with its own SQLite file and the built-in Twilio simulator, and drives it over HTTP with a
//! plain HTTP client, as a user of the API would. The suites live in `api/` (one test binary,
//! one module per area) and `reliability/` (faults, bad input, races, security and soak; see
//! `docs/reliability.md`). What they share (starting the service, signed webhooks, fresh
//! PostgreSQL databases, the browser) is `smsdesk-test-support`; this library is empty on purpose.
