//! What follows, in the HTTP service, from a change the domain committed: the service's
//! [`ChangeNotifier`].
//!
//! The use cases hand every committed change and every counted activity to this one consumer;
//! it rings the live events' doorbell (the streams read the change itself from the log, so
//! every replica's streams see it), records transition and outcome metrics, and logs what an
//! operator should see. No handler publishes or counts anything itself, so the
//! service's behaviour is the domain's. It also wakes the delivery-webhook worker, whose
//! deliveries the store recorded in the change's own transaction.

use std::sync::Arc;

use smsdesk_domain::changes::{Activity, ChangeKind, ChangeNotifier, CommittedChange};

use crate::events::MessageEvents;
use crate::metrics::Metrics;

/// Live events and metrics for every committed change.
#[derive(Clone)]
pub struct ServiceConsequences {
    events: MessageEvents,
    metrics: Arc<Metrics>,
    webhook_doorbell: Option<Arc<tokio::sync::Notify>>,
}

impl ServiceConsequences {
    /// Publishes to `events` and records into `metrics`.
    pub fn new(events: MessageEvents, metrics: Arc<Metrics>) -> Self {
        Self {
            events,
            metrics,
            webhook_doorbell: None,
        }
    }

    /// Also wakes the delivery-webhook worker on every committed change (its deliveries were
    /// recorded in the change's transaction).
    #[must_use]
    pub fn with_webhook_doorbell(mut self, doorbell: Arc<tokio::sync::Notify>) -> Self {
        self.webhook_doorbell = Some(doorbell);
        self
    }
}

impl ChangeNotifier for ServiceConsequences {
    fn committed(&self, change: &CommittedChange) {
        if let ChangeKind::Advanced { from } = &change.kind {
            self.metrics
                .record_transition(from.as_str(), change.state.status.as_str());
        }
        self.events.ring();
        if let Some(doorbell) = &self.webhook_doorbell {
            doorbell.notify_one();
        }
    }

    fn activity(&self, activity: &Activity) {
        match activity {
            Activity::CallbackTaken(outcome) => self.metrics.record_status_callback(outcome),
            Activity::ParkedReplayed(outcome) => {
                tracing::info!(
                    outcome = ?outcome,
                    "applied a status callback that arrived before its message was stored"
                );
                self.metrics.record_parked_replayed(outcome);
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
            Activity::Reconciled(report) => {
                if report.messages_moved > 0 || report.accounts_failed > 0 || report.timed_out > 0 {
                    tracing::info!(
                        accounts_swept = report.accounts_swept,
                        accounts_failed = report.accounts_failed,
                        messages_moved = report.messages_moved,
                        twilio_requests = report.twilio_requests,
                        timed_out = report.timed_out,
                        "the reconciler swept the accounts with unfinished messages"
                    );
                }
                self.metrics.record_reconcile(report);
            }
            Activity::WebhooksDelivered(round) => {
                if round.dead > 0 || round.gone > 0 || round.unrecorded > 0 {
                    tracing::warn!(
                        dead = round.dead,
                        gone = round.gone,
                        unrecorded = round.unrecorded,
                        "webhook deliveries failed for good or disabled their endpoint"
                    );
                }
                self.metrics.record_webhook_round(round);
            }
            Activity::RefreshFinished { mode, took } => {
                self.metrics
                    .record_refresh(mode.as_str(), took.as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use smsdesk_domain::changes::{CooldownScope, RefreshMode};
    use smsdesk_domain::{
        DeliveryState, Direction, MessageSid, MessageStatus, ObservationSource, TeamId,
    };

    use super::*;

    fn change(kind: ChangeKind, status: MessageStatus) -> CommittedChange {
        CommittedChange {
            team_id: TeamId::new(3).expect("team"),
            sid: MessageSid::parse("SM0123456789abcdef0123456789abcdef").expect("sid"),
            kind,
            state: DeliveryState::new(status),
            source: ObservationSource::Callback,
            observed_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn every_committed_change_rings_the_live_doorbell_and_moves_are_counted_as_transitions() {
        let events = MessageEvents::new();
        let metrics = Arc::new(Metrics::new());
        let consequences = ServiceConsequences::new(events.clone(), metrics.clone());

        for change in [
            change(
                ChangeKind::Created {
                    direction: Direction::OutboundApi,
                },
                MessageStatus::Queued,
            ),
            change(
                ChangeKind::Advanced {
                    from: MessageStatus::Queued,
                },
                MessageStatus::Delivered,
            ),
            change(ChangeKind::Enriched, MessageStatus::Delivered),
        ] {
            consequences.committed(&change);
            assert!(
                tokio::time::timeout(std::time::Duration::ZERO, events.rung())
                    .await
                    .is_ok(),
                "{change:?} rang the doorbell"
            );
        }
        let text = metrics.encode();
        assert!(
            text.contains(r#"smsdesk_status_transitions_total{from="queued",to="delivered"} 1"#),
            "{text}"
        );
        assert_eq!(
            text.matches("smsdesk_status_transitions_total{").count(),
            1,
            "creation and enrichment are not transitions"
        );
    }

    #[test]
    fn activity_becomes_the_outcome_metrics() {
        let metrics = Arc::new(Metrics::new());
        let consequences = ServiceConsequences::new(MessageEvents::new(), metrics.clone());
        consequences.activity(&Activity::CooldownRefused {
            scope: CooldownScope::Message,
            count: 4,
        });
        consequences.activity(&Activity::RefreshFinished {
            mode: RefreshMode::Bulk,
            took: std::time::Duration::from_millis(20),
        });
        consequences.activity(&Activity::ParkedDiscarded(2));
        let text = metrics.encode();
        for expected in [
            r#"smsdesk_cooldown_rejections_total{scope="message"} 4"#,
            r#"smsdesk_refresh_duration_seconds_count{kind="bulk"} 1"#,
            "smsdesk_parked_callbacks_discarded_total 2",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }
}
