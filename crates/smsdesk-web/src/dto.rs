//! The JSON shapes of requests and answers: `smsdesk-api`'s, shared with the typed client, with
//! the conversions from the domain's types that its `domain` feature adds.

pub use smsdesk_api::*;
