//! The `ApplyRetention` use case: redact every message older than the retention period, in
//! batches, so no transaction grows with the backlog. Safe to run on every replica at once: the
//! store redacts each message once and replicas share the batches.

use std::sync::Arc;

use crate::ports::{Clock, MessageRetention, RepositoryError};
use crate::retention::RetentionPolicy;

/// Messages redacted per batch (one transaction each).
pub const RETENTION_BATCH: usize = 500;

/// Batches one run does at most, so a large backlog (retention just switched on) is worked off
/// over several runs instead of holding the caller for minutes.
pub const MAX_BATCHES_PER_RUN: usize = 20;

/// The use case. Cheap to clone.
#[derive(Clone)]
pub struct ApplyRetention {
    store: Arc<dyn MessageRetention>,
    clock: Arc<dyn Clock>,
    policy: RetentionPolicy,
    batch: usize,
}

impl ApplyRetention {
    /// Builds the use case over its ports with the configured policy.
    pub fn new(
        store: Arc<dyn MessageRetention>,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            policy,
            batch: RETENTION_BATCH,
        }
    }

    /// Uses batches of `batch` messages instead of [`RETENTION_BATCH`].
    #[must_use]
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Redacts due messages, batch after batch until one comes back short or
    /// [`MAX_BATCHES_PER_RUN`] were done, and returns how many.
    ///
    /// # Errors
    /// [`RepositoryError`] when the store fails; batches already done stay done.
    pub async fn run(&self) -> Result<u64, RepositoryError> {
        let now = self.clock.now();
        let cutoff = self.policy.cutoff(now);
        let mut total = 0;
        for _ in 0..MAX_BATCHES_PER_RUN {
            let redacted = self
                .store
                .redact_batch(cutoff, &self.policy, self.batch, now)
                .await?;
            total += redacted;
            if redacted < self.batch as u64 {
                break;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::ManualClock;
    use crate::ports::MockMessageRetention;

    #[tokio::test]
    async fn batches_run_until_one_comes_back_short_with_the_policys_cutoff() {
        let now = chrono::Utc::now();
        let policy = RetentionPolicy::after_days(7, true);
        let mut store = MockMessageRetention::new();
        let mut answers = vec![2_u64, 2, 1].into_iter();
        store
            .expect_redact_batch()
            .times(3)
            .returning(move |cutoff, given, limit, at| {
                assert_eq!(cutoff, now - chrono::Duration::days(7));
                assert!(given.mask_numbers);
                assert_eq!((limit, at), (2, now));
                Ok(answers.next().unwrap_or(0))
            });
        let retention =
            ApplyRetention::new(Arc::new(store), Arc::new(ManualClock::new(now)), policy)
                .with_batch(2);
        assert_eq!(retention.run().await, Ok(5));
    }

    #[tokio::test]
    async fn a_run_stops_after_its_batch_allowance_and_the_next_run_goes_on() {
        let mut store = MockMessageRetention::new();
        store
            .expect_redact_batch()
            .times(MAX_BATCHES_PER_RUN)
            .returning(|_, _, limit, _| Ok(limit as u64));
        let retention = ApplyRetention::new(
            Arc::new(store),
            Arc::new(ManualClock::new(chrono::Utc::now())),
            RetentionPolicy::after_days(1, false),
        );
        assert_eq!(
            retention.run().await,
            Ok((MAX_BATCHES_PER_RUN * RETENTION_BATCH) as u64)
        );
    }
}
