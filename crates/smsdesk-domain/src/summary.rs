//! A team's delivery summary over a recent window: how many of its messages are in each status,
//! and the delivery rate. The page draws it as a bar chart; an embedder gets the same numbers.
//!
//! The rate counts only outcomes Twilio has settled: `delivered` and `read` over those plus
//! `undelivered` and `failed`. Messages still on their way (and `sent` ones whose carrier never
//! reports back) are in the counts but not in the rate, so a burst of fresh sends does not read
//! as a drop in delivery.

use std::sync::Arc;

use crate::ports::{Clock, MessageRepository, RepositoryError};
use crate::{MessageStatus, TeamId, Timestamp};

/// The longest window a summary covers: 30 days.
pub const MAX_SUMMARY_HOURS: u32 = 720;

/// How far back a summary looks, in whole hours from 1 to [`MAX_SUMMARY_HOURS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryWindow(u32);

/// A window that is not a whole number of hours from 1 to [`MAX_SUMMARY_HOURS`] (the text given,
/// cut to 32 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hours must be a whole number from 1 to {MAX_SUMMARY_HOURS}, not {0:?}")]
pub struct InvalidSummaryWindow(pub String);

impl SummaryWindow {
    /// The window when none is asked for: a day.
    pub const DEFAULT_HOURS: u32 = 24;

    /// Reads a window given as text (a query parameter); `None` is [`Self::DEFAULT_HOURS`].
    ///
    /// # Errors
    /// [`InvalidSummaryWindow`] for anything but digits naming 1 to [`MAX_SUMMARY_HOURS`].
    pub fn parse(raw: Option<&str>) -> Result<Self, InvalidSummaryWindow> {
        let Some(raw) = raw else {
            return Ok(Self(Self::DEFAULT_HOURS));
        };
        let refuse = || InvalidSummaryWindow(raw.chars().take(32).collect());
        if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse());
        }
        Self::hours(raw.parse().map_err(|_| refuse())?)
    }

    /// A window of `hours`.
    ///
    /// # Errors
    /// [`InvalidSummaryWindow`] outside 1 to [`MAX_SUMMARY_HOURS`].
    pub fn hours(hours: u32) -> Result<Self, InvalidSummaryWindow> {
        if (1..=MAX_SUMMARY_HOURS).contains(&hours) {
            Ok(Self(hours))
        } else {
            Err(InvalidSummaryWindow(hours.to_string()))
        }
    }

    /// The window in hours.
    #[must_use]
    pub fn as_hours(self) -> u32 {
        self.0
    }

    /// The earliest creation time inside the window ending at `now`.
    #[must_use]
    pub fn start(self, now: Timestamp) -> Timestamp {
        now - chrono::Duration::hours(i64::from(self.0))
    }
}

/// How many messages are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// The status.
    pub status: MessageStatus,
    /// How many of the team's messages created in the window have it now.
    pub count: u64,
}

/// Counts by status for the messages a team created in a window, with the delivery rate.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySummary {
    /// The window.
    pub window: SummaryWindow,
    /// Its start: messages created at or after this time are counted.
    pub since: Timestamp,
    /// One entry per status that has messages, in the statuses' rank order (unknown ones last,
    /// by name), so a chart's bars keep their places.
    pub counts: Vec<StatusCount>,
}

impl DeliverySummary {
    /// Builds the summary from a store's counts (any order, zero counts dropped).
    #[must_use]
    pub fn new(window: SummaryWindow, since: Timestamp, counts: Vec<StatusCount>) -> Self {
        let mut counts: Vec<StatusCount> = counts.into_iter().filter(|c| c.count > 0).collect();
        counts.sort_by(|a, b| {
            let order = |s: &MessageStatus| {
                crate::status::KNOWN_STATUSES
                    .iter()
                    .position(|known| known == s)
                    .unwrap_or(usize::MAX)
            };
            order(&a.status)
                .cmp(&order(&b.status))
                .then_with(|| a.status.as_str().cmp(b.status.as_str()))
        });
        Self {
            window,
            since,
            counts,
        }
    }

    /// Every message counted.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.count).sum()
    }

    /// The count for `status` (0 when none).
    #[must_use]
    pub fn count(&self, status: &MessageStatus) -> u64 {
        self.counts
            .iter()
            .find(|c| &c.status == status)
            .map_or(0, |c| c.count)
    }

    /// Messages that reached the handset (`delivered` or `read`).
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.count(&MessageStatus::Delivered) + self.count(&MessageStatus::Read)
    }

    /// Outbound messages whose delivery is settled: delivered, read, undelivered or failed.
    #[must_use]
    pub fn settled(&self) -> u64 {
        self.delivered()
            + self.count(&MessageStatus::Undelivered)
            + self.count(&MessageStatus::Failed)
    }

    /// The share of settled messages that were delivered, from 0 to 1; `None` when nothing is
    /// settled yet (no rate is not a rate of 0).
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    pub fn delivery_rate(&self) -> Option<f64> {
        let settled = self.settled();
        (settled > 0).then(|| self.delivered() as f64 / settled as f64)
    }
}

/// The use case behind `GET /api/messages/summary`: a team's summary for a window ending now.
#[derive(Clone)]
pub struct SummarizeDelivery {
    messages: Arc<dyn MessageRepository>,
    clock: Arc<dyn Clock>,
}

impl SummarizeDelivery {
    /// Reads counts from `messages`; "now" is `clock`'s.
    #[must_use]
    pub fn new(messages: Arc<dyn MessageRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, clock }
    }

    /// `team`'s summary over `window`.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails.
    pub async fn summary(
        &self,
        team: TeamId,
        window: SummaryWindow,
    ) -> Result<DeliverySummary, RepositoryError> {
        let since = window.start(self.clock.now());
        let counts = self.messages.status_counts(team, since).await?;
        Ok(DeliverySummary::new(window, since, counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(status: MessageStatus, count: u64) -> StatusCount {
        StatusCount { status, count }
    }

    fn summary(counts: Vec<StatusCount>) -> DeliverySummary {
        DeliverySummary::new(
            SummaryWindow::hours(24).unwrap(),
            chrono::Utc::now(),
            counts,
        )
    }

    #[tokio::test]
    async fn the_use_case_counts_from_the_windows_start_by_its_clock() {
        let now = chrono::Utc::now();
        let clock = Arc::new(crate::fakes::ManualClock::new(now));
        let mut messages = crate::ports::MockMessageRepository::new();
        messages
            .expect_status_counts()
            .withf(move |team, since| team.get() == 7 && *since == now - chrono::Duration::hours(6))
            .times(1)
            .returning(|_, _| {
                Ok(vec![
                    count(MessageStatus::Failed, 1),
                    count(MessageStatus::Delivered, 3),
                ])
            });
        let summary = SummarizeDelivery::new(Arc::new(messages), clock)
            .summary(TeamId::new(7).unwrap(), SummaryWindow::hours(6).unwrap())
            .await
            .unwrap();
        assert_eq!(summary.since, now - chrono::Duration::hours(6));
        assert_eq!(summary.delivery_rate(), Some(0.75));
        assert_eq!(summary.counts[0].status, MessageStatus::Delivered);
    }

    #[test]
    fn a_window_is_one_hour_to_thirty_days() {
        assert_eq!(
            SummaryWindow::hours(0),
            Err(InvalidSummaryWindow("0".into()))
        );
        assert_eq!(
            SummaryWindow::hours(721),
            Err(InvalidSummaryWindow("721".into()))
        );
        assert_eq!(SummaryWindow::parse(None).unwrap().as_hours(), 24);
        assert_eq!(SummaryWindow::parse(Some("168")).unwrap().as_hours(), 168);
        for bad in ["", "abc", "+5", "-1", "1.5", "99999999999"] {
            assert!(SummaryWindow::parse(Some(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(SummaryWindow::hours(720).unwrap().as_hours(), 720);
        let now = chrono::Utc::now();
        assert_eq!(
            SummaryWindow::hours(2).unwrap().start(now),
            now - chrono::Duration::hours(2)
        );
    }

    #[test]
    fn the_rate_counts_only_settled_messages() {
        let summary = summary(vec![
            count(MessageStatus::Delivered, 6),
            count(MessageStatus::Read, 2),
            count(MessageStatus::Undelivered, 1),
            count(MessageStatus::Failed, 1),
            count(MessageStatus::Sent, 30),
            count(MessageStatus::Received, 4),
        ]);
        assert_eq!(summary.total(), 44);
        assert_eq!(summary.delivered(), 8);
        assert_eq!(summary.settled(), 10);
        assert_eq!(summary.delivery_rate(), Some(0.8));
    }

    #[test]
    fn nothing_settled_is_no_rate_rather_than_zero() {
        let summary = summary(vec![count(MessageStatus::Queued, 3)]);
        assert_eq!(summary.delivery_rate(), None);
        assert_eq!(summary.total(), 3);
    }

    #[test]
    fn counts_come_in_rank_order_with_unknown_statuses_last_and_zeros_dropped() {
        let summary = summary(vec![
            count(MessageStatus::Unknown("zeta".into()), 1),
            count(MessageStatus::Failed, 2),
            count(MessageStatus::Unknown("alpha".into()), 1),
            count(MessageStatus::Queued, 5),
            count(MessageStatus::Sent, 0),
        ]);
        let order: Vec<&str> = summary.counts.iter().map(|c| c.status.as_str()).collect();
        assert_eq!(order, ["queued", "failed", "alpha", "zeta"]);
    }
}
