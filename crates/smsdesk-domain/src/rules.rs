//! The forward-only status rule, shared by refresh polls, status callbacks and sends.
//!
//! Twilio does not promise that callbacks arrive in order and carries no timestamp on them, and a
//! poll can race a callback. So no source may overwrite a status blindly: every observation goes
//! through [`decide`], which only lets a message move forward.
//!
//! - A status may be replaced only by one of higher [rank](MessageStatus::rank).
//! - A terminal status never changes again, except `delivered → read`.
//! - The same status again may add details (error code and message, price, segments).
//! - Error fields are kept only while the status is a failure (`failed`, `undelivered`) and are
//!   cleared otherwise.
//! - An unrecognised status is recorded but never replaces a stored one, because it cannot be
//!   placed in the order; a stored unrecognised status (only possible from a create response) is
//!   replaced by any recognised one.

use serde::Serialize;

use crate::message::{DeliveryState, StatusObservation};
use crate::status::MessageStatus;

/// Why an observation was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StaleReason {
    /// The observed status ranks below (or level with, but differs from) the stored one.
    WouldGoBackwards,
    /// The stored status is terminal and the observation is not `read` after `delivered`.
    AlreadyTerminal,
    /// The observed status is not one this version can place in the order.
    Unrecognised,
}

/// What applying one observation to a stored state does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusDecision {
    /// The status moves forward from `from` to `next.status`.
    Advanced {
        /// The status before.
        from: MessageStatus,
        /// The state to store.
        next: DeliveryState,
    },
    /// Same status, new details (error, price, segments).
    Enriched {
        /// The state to store.
        next: DeliveryState,
    },
    /// Nothing new: a duplicate.
    Unchanged,
    /// Ignored: applying it would move the message backwards or out of a final status.
    Stale {
        /// Why it was ignored.
        reason: StaleReason,
    },
}

impl StatusDecision {
    /// The state to store, when the observation changes anything.
    pub fn next_state(&self) -> Option<&DeliveryState> {
        match self {
            Self::Advanced { next, .. } | Self::Enriched { next } => Some(next),
            Self::Unchanged | Self::Stale { .. } => None,
        }
    }

    /// Whether the observation changed the stored message.
    pub fn is_applied(&self) -> bool {
        self.next_state().is_some()
    }
}

/// Applies `observation` to `current` under the forward-only rule. Pure: the caller stores the
/// result (and must do so conditionally on `current` still being what is stored; see
/// [`crate::ports::MessageRepository::apply_observations`]).
pub fn decide(current: &DeliveryState, observation: &StatusObservation) -> StatusDecision {
    let observed = &observation.state.status;
    let stored = &current.status;

    if observed == stored {
        let next = merge_details(current, &observation.state, stored);
        return if next == *current {
            StatusDecision::Unchanged
        } else {
            StatusDecision::Enriched { next }
        };
    }

    let moves_forward = match (stored.rank(), observed.rank()) {
        (_, None) => {
            return StatusDecision::Stale {
                reason: StaleReason::Unrecognised,
            };
        }
        (None, Some(_)) => true,
        (Some(_), Some(_)) if stored.is_terminal() => {
            if *stored == MessageStatus::Delivered && *observed == MessageStatus::Read {
                true
            } else {
                return StatusDecision::Stale {
                    reason: StaleReason::AlreadyTerminal,
                };
            }
        }
        (Some(old), Some(new)) => new > old,
    };

    if !moves_forward {
        return StatusDecision::Stale {
            reason: StaleReason::WouldGoBackwards,
        };
    }

    let next = merge_details(current, &observation.state, observed);
    StatusDecision::Advanced {
        from: stored.clone(),
        next,
    }
}

/// The state after moving to `status`: details the observation knows replace the stored ones,
/// what it does not know is kept, and the error rule is applied for the new status.
fn merge_details(
    current: &DeliveryState,
    observed: &DeliveryState,
    status: &MessageStatus,
) -> DeliveryState {
    let mut next = DeliveryState {
        status: status.clone(),
        error_code: observed.error_code.or(current.error_code),
        error_message: observed
            .error_message
            .clone()
            .or_else(|| current.error_message.clone()),
        num_segments: observed.num_segments.or(current.num_segments),
        price: observed.price.clone().or_else(|| current.price.clone()),
        price_unit: observed
            .price_unit
            .clone()
            .or_else(|| current.price_unit.clone()),
    };
    apply_error_rule(&mut next);
    next
}

/// Error fields belong to failures only (the original's "automatic error field management"):
/// Twilio sometimes reports an error code on `sent` (its own spec example does), which must not
/// make a healthy message look failed.
fn apply_error_rule(next: &mut DeliveryState) {
    if !next.status.is_failure() {
        next.error_code = None;
        next.error_message = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ObservationSource;
    use crate::status::KNOWN_STATUSES;
    use chrono::TimeZone;

    fn observe(status: MessageStatus) -> StatusObservation {
        StatusObservation {
            state: DeliveryState::new(status),
            source: ObservationSource::Callback,
            observed_at: chrono::Utc
                .timestamp_opt(1_700_000_000, 0)
                .single()
                .unwrap_or_default(),
        }
    }

    fn failing(status: MessageStatus, code: u32, message: &str) -> StatusObservation {
        let mut obs = observe(status);
        obs.state.error_code = Some(code);
        obs.state.error_message = Some(message.into());
        obs
    }

    /// The expected verdict for every ordered pair of the 13 statuses, written out as a table
    /// rather than derived from `rank`, so a wrong rank cannot make the test agree with itself.
    fn expected_applies(from: &str, to: &str) -> bool {
        const TERMINAL: [&str; 6] = [
            "delivered",
            "undelivered",
            "failed",
            "canceled",
            "received",
            "read",
        ];
        if from == to {
            return false;
        }
        if TERMINAL.contains(&from) {
            return from == "delivered" && to == "read";
        }
        let order = |s: &str| match s {
            "scheduled" => 0,
            "accepted" => 1,
            "queued" | "receiving" => 2,
            "sending" => 3,
            "sent" => 4,
            "partially_delivered" => 5,
            "read" => 7,
            _ => 6,
        };
        order(to) > order(from)
    }

    #[test]
    fn every_pair_of_statuses_follows_the_forward_only_table() {
        let mut checked = 0;
        for from in &KNOWN_STATUSES {
            for to in &KNOWN_STATUSES {
                let decision = decide(&DeliveryState::new(from.clone()), &observe(to.clone()));
                let expected = expected_applies(from.as_str(), to.as_str());
                assert_eq!(
                    decision.is_applied(),
                    expected,
                    "{from} -> {to}: got {decision:?}"
                );
                if expected {
                    assert!(
                        matches!(&decision, StatusDecision::Advanced { from: f, next } if f == from && next.status == *to),
                        "{from} -> {to} should advance, got {decision:?}"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 169);
    }

    #[test]
    fn out_of_order_callbacks_cannot_regress_delivered_to_sent() {
        let decision = decide(
            &DeliveryState::new(MessageStatus::Delivered),
            &observe(MessageStatus::Sent),
        );
        assert_eq!(
            decision,
            StatusDecision::Stale {
                reason: StaleReason::AlreadyTerminal
            }
        );
    }

    #[test]
    fn a_lower_rank_on_a_live_message_is_stale_as_going_backwards() {
        let decision = decide(
            &DeliveryState::new(MessageStatus::Sent),
            &observe(MessageStatus::Queued),
        );
        assert_eq!(
            decision,
            StatusDecision::Stale {
                reason: StaleReason::WouldGoBackwards
            }
        );
    }

    #[test]
    fn delivered_may_still_become_read_but_nothing_else() {
        let delivered = DeliveryState::new(MessageStatus::Delivered);
        assert!(decide(&delivered, &observe(MessageStatus::Read)).is_applied());
        assert!(!decide(&delivered, &observe(MessageStatus::Undelivered)).is_applied());
        let undelivered = DeliveryState::new(MessageStatus::Undelivered);
        assert!(!decide(&undelivered, &observe(MessageStatus::Read)).is_applied());
    }

    #[test]
    fn failure_sets_the_error_fields_from_the_observation() {
        let decision = decide(
            &DeliveryState::new(MessageStatus::Sent),
            &failing(
                MessageStatus::Undelivered,
                30003,
                "Unreachable destination handset",
            ),
        );
        let next = decision
            .next_state()
            .cloned()
            .unwrap_or_else(|| DeliveryState::new(MessageStatus::Queued));
        assert_eq!(next.status, MessageStatus::Undelivered);
        assert_eq!(next.error_code, Some(30003));
        assert_eq!(
            next.error_message.as_deref(),
            Some("Unreachable destination handset")
        );
    }

    #[test]
    fn a_non_failure_clears_error_fields_even_when_twilio_sends_a_code() {
        let mut current = DeliveryState::new(MessageStatus::Queued);
        current.error_code = Some(30008);
        current.error_message = Some("old".into());
        let decision = decide(&current, &failing(MessageStatus::Sent, 30007, "filtered"));
        let next = decision
            .next_state()
            .cloned()
            .unwrap_or_else(|| DeliveryState::new(MessageStatus::Queued));
        assert_eq!(next.status, MessageStatus::Sent);
        assert_eq!((next.error_code, next.error_message), (None, None));
    }

    #[test]
    fn the_same_status_may_add_price_segments_and_error_details() {
        let current = DeliveryState::new(MessageStatus::Delivered);
        let mut obs = observe(MessageStatus::Delivered);
        obs.state.price = Some("-0.00750".into());
        obs.state.price_unit = Some("USD".into());
        obs.state.num_segments = Some(2);
        let decision = decide(&current, &obs);
        let StatusDecision::Enriched { next } = decision else {
            panic!("expected enrichment, got {decision:?}");
        };
        assert_eq!(next.price.as_deref(), Some("-0.00750"));
        assert_eq!(next.num_segments, Some(2));

        let failed = DeliveryState::new(MessageStatus::Failed);
        let decision = decide(
            &failed,
            &failing(MessageStatus::Failed, 30005, "Unknown handset"),
        );
        assert!(
            matches!(decision, StatusDecision::Enriched { ref next } if next.error_code == Some(30005))
        );
    }

    #[test]
    fn a_repeated_observation_is_unchanged() {
        let mut current = DeliveryState::new(MessageStatus::Sent);
        current.num_segments = Some(1);
        let mut obs = observe(MessageStatus::Sent);
        obs.state.num_segments = Some(1);
        assert_eq!(decide(&current, &obs), StatusDecision::Unchanged);
        // Knowing less than we do is not a change either.
        assert_eq!(
            decide(&current, &observe(MessageStatus::Sent)),
            StatusDecision::Unchanged
        );
    }

    #[test]
    fn details_the_observation_lacks_are_kept_when_advancing() {
        let mut current = DeliveryState::new(MessageStatus::Sent);
        current.num_segments = Some(3);
        current.price = Some("-0.02".into());
        let decision = decide(&current, &observe(MessageStatus::Delivered));
        let next = decision
            .next_state()
            .cloned()
            .unwrap_or_else(|| DeliveryState::new(MessageStatus::Queued));
        assert_eq!(next.num_segments, Some(3));
        assert_eq!(next.price.as_deref(), Some("-0.02"));
    }

    #[test]
    fn an_unrecognised_status_is_recorded_but_never_applied() {
        let decision = decide(
            &DeliveryState::new(MessageStatus::Sent),
            &observe(MessageStatus::Unknown("teleported".into())),
        );
        assert_eq!(
            decision,
            StatusDecision::Stale {
                reason: StaleReason::Unrecognised
            }
        );
    }

    #[test]
    fn a_stored_unrecognised_status_gives_way_to_any_known_one() {
        let current = DeliveryState::new(MessageStatus::Unknown("teleported".into()));
        assert!(decide(&current, &observe(MessageStatus::Queued)).is_applied());
        assert_eq!(
            decide(
                &current,
                &observe(MessageStatus::Unknown("teleported".into()))
            ),
            StatusDecision::Unchanged
        );
    }

    #[test]
    fn failed_may_arrive_before_sent() {
        let decision = decide(
            &DeliveryState::new(MessageStatus::Queued),
            &failing(MessageStatus::Failed, 30001, "Queue overflow"),
        );
        assert!(matches!(decision, StatusDecision::Advanced { .. }));
        assert!(
            !decide(
                &DeliveryState::new(MessageStatus::Failed),
                &observe(MessageStatus::Sent)
            )
            .is_applied()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_status() -> impl Strategy<Value = MessageStatus> {
            prop_oneof![
                9 => proptest::sample::select(KNOWN_STATUSES.to_vec()),
                1 => "[a-z_]{1,12}".prop_map(|s| MessageStatus::parse(&s)),
            ]
        }

        proptest! {
            /// Whatever order observations arrive in, the stored rank never goes down, and a
            /// terminal status changes only from delivered to read.
            #[test]
            fn no_sequence_of_observations_moves_a_message_backwards(
                start in proptest::sample::select(KNOWN_STATUSES.to_vec()),
                arrivals in proptest::collection::vec(any_status(), 0..40),
            ) {
                let mut state = DeliveryState::new(start);
                for status in arrivals {
                    let before = state.clone();
                    let decision = decide(&state, &observe(status.clone()));
                    if let Some(next) = decision.next_state() {
                        state = next.clone();
                    }
                    prop_assert!(state.status.rank() >= before.status.rank(), "{} -> {}", before.status, state.status);
                    if before.status.is_terminal() && before.status != state.status {
                        prop_assert_eq!((&before.status, &state.status), (&MessageStatus::Delivered, &MessageStatus::Read));
                    }
                    if !state.status.is_failure() {
                        prop_assert_eq!(state.error_code, None);
                    }
                    prop_assert!(state.status.is_known(), "an unknown status is never applied over a known one");
                }
            }
        }
    }
}
