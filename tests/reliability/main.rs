//! Reliability and security suites (issue 9): bad input, races, Twilio faults, tenant isolation
//! and secrets, database faults, and property-based fuzzing of the parsers. One module per
//! class; `docs/reliability.md` lists what each tries and what held. The load and soak suite is
//! the `soak` binary, so that it measures with no other suite running.

mod bad_input;
mod db_faults;
mod edge_auth;
mod fleet;
mod fleet_processes;
mod fuzz;
mod logs;
mod races;
mod resets;
mod security;
mod twilio_faults;
mod webhook_crash;
