//! Twilio's delivery and create-time error codes, explained.
//!
//! A code alone (30003) helps nobody reading a message list; [`DeliveryError::explain`] gives the
//! human reason and whether retrying later can help, so the page and API can say what to do.

use serde::Serialize;

/// Whether sending again later can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorClass {
    /// A passing condition (queue full, carrier trouble): worth retrying later.
    Temporary,
    /// The message cannot succeed as sent (bad number, unsubscribed, blocked): do not retry.
    Permanent,
    /// A code this version does not know; treat with care.
    Unknown,
}

/// A Twilio error code with its explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryError {
    /// Twilio's numeric code, e.g. 30003.
    pub code: u32,
    /// What it means, in one sentence.
    pub reason: &'static str,
    /// Whether a retry can help.
    pub class: ErrorClass,
}

/// The table: code, reason, class. Sorted by code so lookups can binary-search.
const KNOWN: &[(u32, &str, ErrorClass)] = &[
    (
        21211,
        "The 'To' number is not a valid phone number.",
        ErrorClass::Permanent,
    ),
    (
        21408,
        "Sending to this region is not enabled on the account.",
        ErrorClass::Permanent,
    ),
    (
        21610,
        "The recipient has unsubscribed (replied STOP) from this sender.",
        ErrorClass::Permanent,
    ),
    (
        21611,
        "The sender's outgoing queue is full; try again later.",
        ErrorClass::Temporary,
    ),
    (
        21614,
        "The 'To' number is not a mobile number.",
        ErrorClass::Permanent,
    ),
    (
        30001,
        "Queue overflow: too many messages queued for this sender.",
        ErrorClass::Temporary,
    ),
    (
        30002,
        "The Twilio account is suspended.",
        ErrorClass::Permanent,
    ),
    (
        30003,
        "Unreachable destination handset (off, out of coverage or unable to receive).",
        ErrorClass::Temporary,
    ),
    (
        30004,
        "Message blocked by the recipient or the carrier.",
        ErrorClass::Permanent,
    ),
    (
        30005,
        "Unknown destination handset: the number does not exist or is no longer in service.",
        ErrorClass::Permanent,
    ),
    (
        30006,
        "Landline or unreachable carrier: the number cannot receive SMS.",
        ErrorClass::Permanent,
    ),
    (
        30007,
        "Message filtered by the carrier (content or sender flagged as a violation).",
        ErrorClass::Permanent,
    ),
    (
        30008,
        "Unknown error reported by the carrier.",
        ErrorClass::Temporary,
    ),
    (
        30032,
        "The toll-free sender number is not verified.",
        ErrorClass::Permanent,
    ),
    (
        30034,
        "The sender is a US A2P 10DLC number that is not registered.",
        ErrorClass::Permanent,
    ),
    (
        30036,
        "The message's validity period expired before it could be sent.",
        ErrorClass::Temporary,
    ),
];

impl DeliveryError {
    /// Explains `code`. Unknown codes are kept with a generic reason and [`ErrorClass::Unknown`].
    pub fn explain(code: u32) -> Self {
        match KNOWN.binary_search_by_key(&code, |(c, _, _)| *c) {
            Ok(index) => {
                let (code, reason, class) = KNOWN[index];
                Self {
                    code,
                    reason,
                    class,
                }
            }
            Err(_) => Self {
                code,
                reason: "Twilio reported an error this version does not recognise; see Twilio's error reference for the code.",
                class: ErrorClass::Unknown,
            },
        }
    }

    /// Twilio's page about this code.
    pub fn more_info_url(&self) -> String {
        format!("https://www.twilio.com/docs/errors/{}", self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_so_binary_search_finds_every_code() {
        assert!(KNOWN.windows(2).all(|w| w[0].0 < w[1].0));
        for (code, reason, class) in KNOWN {
            let explained = DeliveryError::explain(*code);
            assert_eq!((explained.reason, explained.class), (*reason, *class));
        }
    }

    #[test]
    fn codes_are_classed_by_whether_a_retry_can_help() {
        let cases = [
            (30001, ErrorClass::Temporary, "queue overflow passes"),
            (30003, ErrorClass::Temporary, "handset may come back"),
            (30005, ErrorClass::Permanent, "number does not exist"),
            (30007, ErrorClass::Permanent, "carrier filtering"),
            (21610, ErrorClass::Permanent, "unsubscribed recipient"),
            (21211, ErrorClass::Permanent, "invalid To"),
        ];
        for (code, class, why) in cases {
            assert_eq!(DeliveryError::explain(code).class, class, "{code}: {why}");
        }
    }

    #[test]
    fn unknown_codes_are_kept_with_a_generic_reason() {
        let explained = DeliveryError::explain(39999);
        assert_eq!(explained.code, 39999);
        assert_eq!(explained.class, ErrorClass::Unknown);
        assert!(explained.more_info_url().ends_with("/39999"));
    }
}
