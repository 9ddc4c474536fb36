//! What follows, in the HTTP service, from a change the domain committed: the service's
//! [`ChangeNotifier`].
//!
//! The use cases hand every committed change and every counted activity to this one consumer;
//! it publishes live events to the SMS page's streams, records transition and outcome metrics,
//! and logs what an operator should see. No handler publishes or counts anything itself, so the
//! service's behaviour is the domain's, and the next consumer (the fleet's doorbell, delivery
//! webhooks) plugs in beside these.

use std::sync::Arc;

use smsdesk_domain::changes::{Activity, ChangeKind, ChangeNotifier, CommittedChange};

use crate::events::{EventChange, MessageEvent, MessageEvents};
use crate::metrics::Metrics;

/// Live events and metrics for every committed change.
#[derive(Clone)]
pub struct ServiceConsequences {
    events: MessageEvents,
    metrics: Arc<Metrics>,
}

impl ServiceConsequences {
    /// Publishes to `events` and records into `metrics`.
    pub fn new(events: MessageEvents, metrics: Arc<Metrics>) -> Self {
        Self { events, metrics }
    }
}

impl ChangeNotifier for ServiceConsequences {
    fn committed(&self, change: &CommittedChange) {
        if let ChangeKind::Advanced { from } = &change.kind {
            self.metrics
                .record_transition(from.as_str(), change.state.status.as_str());
        }
        let kind = match change.kind {
            ChangeKind::Created { .. } => EventChange::Created,
            ChangeKind::Advanced { .. } | ChangeKind::Enriched => EventChange::Status,
        };
        self.events.publish(MessageEvent::from_change(change, kind));
    }

    fn activity(&self, activity: &Activity) {
        match activity {
            Activity::CallbackTaken(outcome) => self.metrics.record_status_callback(outcome),
            Activity::ParkedReplayed(outcome) => {
                tracing::info!(
                    outcome = ?outcome,
                    "applied a status callback that arrived before its message was stored"
                );
                self.metrics
                    .record_parked_replayed(std::slice::from_ref(outcome));
            }
            Activity::ParkedReplayFailed { sid, error } => {
                tracing::warn!(message_sid = %sid, %error, "could not replay parked status callbacks");
            }
            Activity::ParkedDiscarded(count) => {
                tracing::info!(
                    discarded = count,
                    "discarded status callbacks whose message never appeared"
                );
                self.metrics.record_parked_discarded(*count);
            }
            Activity::InboundTaken(outcome) => self.metrics.record_inbound_sms(outcome),
            Activity::CooldownRefused { scope, count } => {
                self.metrics
                    .record_cooldown_rejections(scope.as_str(), *count);
            }
            Activity::RefreshFinished { mode, took } => {
                self.metrics
                    .record_refresh(mode.as_str(), took.as_secs_f64());
            }
        }
    }
}
