//! The per-account concurrency gate: at most `limit` requests in flight to one Twilio account
//! from this process, where `limit` is this replica's share of the account's cap and changes as
//! replicas come and go ([`crate::TwilioClient::set_fleet_share`]).
//!
//! A semaphore cannot take back permits that are out, so the gate counts requests in flight and
//! compares with the current limit at every entry: when the share shrinks, new requests wait
//! until enough of the old ones have finished.
//!
//! The safety net: a 429 from Twilio means the fleet's arithmetic is off (another tool on the
//! account, a replica the roll call has not counted yet), so the gate then halves its limit for
//! [`PENALTY`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a 429 halves the account's limit in this process.
pub(crate) const PENALTY: Duration = Duration::from_secs(10);

/// One account's gate. Cheap to share through `Arc`.
#[derive(Debug)]
pub(crate) struct Gate {
    in_flight: Mutex<usize>,
    /// This process's current share, shared by every account's gate.
    limit: Arc<AtomicUsize>,
    freed: Notify,
    /// Until when a 429 halves the limit.
    penalty_until: Mutex<Option<Instant>>,
}

/// A request's place in the gate; leaving frees it.
pub(crate) struct Entered<'a> {
    gate: &'a Gate,
}

impl Gate {
    pub(crate) fn new(limit: Arc<AtomicUsize>) -> Self {
        Self {
            in_flight: Mutex::new(0),
            limit,
            freed: Notify::new(),
            penalty_until: Mutex::new(None),
        }
    }

    /// The limit in force now: the share, halved while a 429's penalty lasts.
    fn current_limit(&self) -> usize {
        let share = self.limit.load(Ordering::SeqCst).max(1);
        let penalised = self
            .penalty_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until);
        if penalised { (share / 2).max(1) } else { share }
    }

    /// Twilio answered 429: halve the limit for [`PENALTY`] from now.
    pub(crate) fn penalise(&self) {
        *self
            .penalty_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + PENALTY);
    }

    /// Waits until fewer than the current limit are in flight, then counts this request in.
    pub(crate) async fn enter(&self) -> Entered<'_> {
        loop {
            // Register for a wake-up before checking, so a release in between is not missed.
            let freed = self.freed.notified();
            {
                let mut in_flight = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if *in_flight < self.current_limit() {
                    *in_flight += 1;
                    return Entered { gate: self };
                }
            }
            // A penalty ends without any request leaving: look again then at the latest.
            let _ = tokio::time::timeout(PENALTY, freed).await;
        }
    }

    /// Wakes every waiter to look again (the limit grew).
    pub(crate) fn recheck(&self) {
        self.freed.notify_waiters();
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        *self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .gate
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *in_flight = in_flight.saturating_sub(1);
        drop(in_flight);
        self.gate.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_shrunk_limit_holds_new_requests_until_enough_have_left_and_a_grown_one_lets_them_in()
    {
        let limit = Arc::new(AtomicUsize::new(3));
        let gate = Arc::new(Gate::new(limit.clone()));
        let mut held: Vec<_> = futures::future::join_all((0..3).map(|_| gate.enter())).await;
        assert_eq!(gate.in_flight(), 3);

        limit.store(1, Ordering::SeqCst);
        drop(held.pop());
        assert_eq!(gate.in_flight(), 2);
        let waiting = tokio::time::timeout(Duration::from_secs(1), gate.enter()).await;
        assert!(waiting.is_err(), "2 in flight, limit 1: the newcomer waits");

        limit.store(4, Ordering::SeqCst);
        gate.recheck();
        let entered = tokio::time::timeout(Duration::from_secs(1), gate.enter()).await;
        assert!(entered.is_ok(), "the limit grew: it enters");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_halves_the_limit_for_a_while() {
        let limit = Arc::new(AtomicUsize::new(4));
        let gate = Arc::new(Gate::new(limit));
        let _held: Vec<_> = futures::future::join_all((0..2).map(|_| gate.enter())).await;
        gate.penalise();
        let waiting = tokio::time::timeout(Duration::from_secs(1), gate.enter()).await;
        assert!(
            waiting.is_err(),
            "2 in flight, limit 4 halved to 2: the newcomer waits"
        );
        tokio::time::advance(PENALTY).await;
        let entered = tokio::time::timeout(Duration::from_secs(1), gate.enter()).await;
        assert!(
            entered.is_ok(),
            "the penalty is over: the whole share again"
        );
    }
}
