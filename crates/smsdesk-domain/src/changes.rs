//! The one path every change takes after it is committed: the [`ChangeNotifier`] port.
//!
//! Every use case that stores something (a send, a refresh, a status callback, a parked callback
//! replayed, an inbound message) hands each change it committed to the notifier, **after** the
//! store accepted it, as a [`CommittedChange`]. What follows from a change hangs on that one
//! port: the HTTP service's live events and transition metrics today, the fleet's doorbell and
//! delivery webhooks later. Handlers publish nothing themselves, so an embedder of this crate
//! that plugs in its own notifier sees exactly what the HTTP service sees.
//!
//! Use cases also report [`Activity`]: what they did that is worth counting but changed nothing
//! a consumer must act on (a duplicate callback, a refusal for a cool-down, the duration of a
//! refresh). Activity is for metrics and logs only.
//!
//! A notifier is called inline and must not block or fail: it fans out to in-memory consumers.
//! Anything that must survive a crash reads the store (the status history is the log), never the
//! notifier, so a notification lost with a process costs latency, not data.
//!
//! The log's read side is [`LoggedChange`] at a [`LogPosition`], as the
//! [`ChangeLog`](crate::ports::ChangeLog) port serves it: every applied history row, in the order
//! it became visible, readable from any process on the same database. Live streams follow it and
//! resume from it; the notifier only says when to look.

use std::sync::Arc;
use std::time::Duration;

use crate::ids::{MessageSid, TeamId};
use crate::message::{DeliveryState, ObservationSource, Timestamp};
use crate::ports::RepositoryError;
use crate::services::{CallbackOutcome, ReceiveOutcome};
use crate::status::{Direction, MessageStatus};

/// One change a use case committed to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedChange {
    /// The message's team; consumers scope by it (a change never reaches another team).
    pub team_id: TeamId,
    /// The message.
    pub sid: MessageSid,
    /// What changed.
    pub kind: ChangeKind,
    /// The message's delivery state as committed.
    pub state: DeliveryState,
    /// Where the news came from.
    pub source: ObservationSource,
    /// When the observation that caused the change was made.
    pub observed_at: Timestamp,
}

/// What a [`CommittedChange`] did to its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// The message was stored for the first time (sent, or received).
    Created {
        /// Its direction.
        direction: Direction,
    },
    /// The status moved forward from `from` to the change's state.
    Advanced {
        /// The status before.
        from: MessageStatus,
    },
    /// The status stayed; its details (error, segments, price) were filled in.
    Enriched,
}

impl CommittedChange {
    /// The status before the change, for a change that moved it forward.
    pub fn advanced_from(&self) -> Option<&MessageStatus> {
        match &self.kind {
            ChangeKind::Advanced { from } => Some(from),
            _ => None,
        }
    }
}

/// Where a change stands in the change log. Positions are totally ordered (compare them), and
/// the log is read in that order: a change that becomes visible later never sorts before one
/// already read, so "everything after position P" misses nothing.
///
/// `id` is the history row's id, unique across the log, and what a client sees as an event id;
/// `epoch` orders the writes that committed the rows (PostgreSQL's transaction id; always 0 where
/// rows become visible in id order, as with SQLite's single writer and the in-memory fake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPosition {
    /// The order of the write that committed the change (compared first).
    pub epoch: u64,
    /// The history row's id (unique; compared second).
    pub id: i64,
}

impl LogPosition {
    /// The position before every change.
    pub const START: Self = Self { epoch: 0, id: 0 };
}

/// One applied change, as the log holds it: what a live stream sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    /// Where it stands in the log.
    pub position: LogPosition,
    /// The message's team.
    pub team_id: TeamId,
    /// The message.
    pub sid: MessageSid,
    /// The message's delivery state after the change.
    pub state: DeliveryState,
    /// Where the news came from.
    pub source: ObservationSource,
    /// When it was observed.
    pub observed_at: Timestamp,
}

impl LoggedChange {
    /// Whether this change stored the message (a send's or an inbound message's first
    /// observation) rather than changing a stored one: only those two sources create messages,
    /// and neither ever changes one that exists.
    pub fn created_the_message(&self) -> bool {
        matches!(
            self.source,
            ObservationSource::Send | ObservationSource::Inbound
        )
    }
}

/// Which cool-down refused a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CooldownScope {
    /// A message's own cool-down (a single refresh refused, or messages skipped by a bulk).
    Message,
    /// The user's bulk cool-down.
    Bulk,
}

impl CooldownScope {
    /// A stable label (`message` or `bulk`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Bulk => "bulk",
        }
    }
}

/// Single or bulk refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RefreshMode {
    /// One message, by SID.
    Single,
    /// The team's recent outbound messages.
    Bulk,
}

impl RefreshMode {
    /// A stable label (`single` or `bulk`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Bulk => "bulk",
        }
    }
}

/// What a use case did that is worth counting, beside the changes it committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// A status callback was taken, with what it did.
    CallbackTaken(CallbackOutcome),
    /// A parked status callback was replayed once its message was stored.
    ParkedReplayed(CallbackOutcome),
    /// Parked callbacks could not be replayed after their message was stored; they stay parked
    /// (or, if the failure came after they were taken, are lost: Twilio's next callback or a
    /// refresh brings the status).
    ParkedReplayFailed {
        /// The message.
        sid: MessageSid,
        /// What failed.
        error: RepositoryError,
    },
    /// Parked callbacks whose message never appeared were discarded.
    ParkedDiscarded(u64),
    /// An inbound SMS was taken.
    InboundTaken(ReceiveOutcome),
    /// Refreshes refused, or messages skipped, for a cool-down.
    CooldownRefused {
        /// Which cool-down.
        scope: CooldownScope,
        /// How many.
        count: u64,
    },
    /// A reconciler run finished.
    Reconciled(crate::services::ReconcileReport),
    /// A round of webhook deliveries finished.
    WebhooksDelivered(crate::services::DeliveryRound),
    /// A refresh request finished (successfully or refused for a cool-down).
    RefreshFinished {
        /// Single or bulk.
        mode: RefreshMode,
        /// How long it took, by the use case's clock.
        took: Duration,
    },
}

/// The outbound port every committed change goes through. See the module documentation.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ChangeNotifier: Send + Sync {
    /// Called once per committed change, after the commit, in the order the use case committed
    /// them. Must return quickly and never block.
    fn committed(&self, change: &CommittedChange);

    /// Called for what a use case did that is worth counting. Ignored unless overridden.
    fn activity(&self, activity: &Activity) {
        let _ = activity;
    }
}

/// A notifier that ignores everything: the default of every use case until one is plugged in.
#[derive(Debug, Clone, Copy, Default)]
pub struct IgnoreChanges;

impl ChangeNotifier for IgnoreChanges {
    fn committed(&self, _change: &CommittedChange) {}
}

/// Hands everything to each notifier in turn, so several consumers hang on one port.
#[derive(Clone, Default)]
pub struct FanOut {
    notifiers: Vec<Arc<dyn ChangeNotifier>>,
}

impl FanOut {
    /// No consumers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a consumer; consumers are called in the order they were added.
    #[must_use]
    pub fn with(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifiers.push(notifier);
        self
    }
}

impl ChangeNotifier for FanOut {
    fn committed(&self, change: &CommittedChange) {
        for notifier in &self.notifiers {
            notifier.committed(change);
        }
    }

    fn activity(&self, activity: &Activity) {
        for notifier in &self.notifiers {
            notifier.activity(activity);
        }
    }
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("consumers", &self.notifiers.len())
            .finish()
    }
}
