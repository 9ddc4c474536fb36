//! Fresh shared reads: identical reads asked for at the same time are answered by one read that
//! began after each of them was asked, never by one already under way.
//!
//! Many clients asking for the same thing at once (every open SMS page of a team polling its
//! list, a dashboard fleet) would otherwise each run the same query and serialize the same JSON.
//! [`FreshReads`] lets them share one read without serving anything older than a read of their
//! own would have been: a request that arrives while a read for its key is running waits for the
//! *next* read, which starts when the running one ends and serves everyone who queued behind it.
//! So every answer reflects every write that committed before its request arrived, whichever
//! replica or process made it; there is nothing to invalidate and nothing is kept once answered.
//!
//! Per key there is at most one read running and one queued. Reads run as their own tasks, so a
//! client that goes away does not stall the others, and the key is forgotten when its last read
//! ends.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;
use futures::future::Shared;
use tokio::sync::oneshot;
use tracing::Instrument;

/// A read's answer, shared by everyone who waited for it, or why there is none (the read
/// panicked, or was dropped unfinished). Never a panic inside the shared future itself: a
/// `Shared` that panics wakes none of its other waiters.
type Flight<V> = Shared<Pin<Box<dyn Future<Output = Answer<V>> + Send>>>;

/// A read's value, or why it has none.
type Answer<V> = Result<Arc<V>, Arc<str>>;

/// The flight that resolves when `answered` does.
fn flight_of<V: Send + Sync + 'static>(answered: oneshot::Receiver<Answer<V>>) -> Flight<V> {
    let answer: Pin<Box<dyn Future<Output = Answer<V>> + Send>> = Box::pin(async move {
        answered
            .await
            .unwrap_or_else(|_| Err(Arc::from("the read was dropped unfinished")))
    });
    answer.shared()
}

/// The text of a panic's payload, as `std` prints it.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The reads of one key: the one running and the one waiting to start after it, each with an
/// identity so an ending read clears only its own slot.
struct Slots<V> {
    running: Option<(u64, Flight<V>)>,
    queued: Option<(u64, Flight<V>)>,
}

/// Shares identical reads among concurrent requests without serving any request a read that
/// began before it arrived. Cheap to clone; clones share the reads.
pub struct FreshReads<K, V> {
    inner: Arc<Inner<K, V>>,
}

struct Inner<K, V> {
    slots: Mutex<HashMap<K, Slots<V>>>,
    next_flight: AtomicU64,
}

impl<K, V> Clone for FreshReads<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> Default for FreshReads<K, V> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                slots: Mutex::new(HashMap::new()),
                next_flight: AtomicU64::new(0),
            }),
        }
    }
}

impl<K, V> std::fmt::Debug for FreshReads<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.inner.slots.lock().map_or(0, |slots| slots.len());
        f.debug_struct("FreshReads").field("keys", &keys).finish()
    }
}

impl<K, V> FreshReads<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<K, Slots<V>>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many keys have a read running or queued (for tests and debugging).
    pub fn keys_in_flight(&self) -> usize {
        self.slots().len()
    }

    /// The answer of a read of `key` that starts after this call: the queued read if there is
    /// one, else a new read queued behind the running one, else a new read started now. `read`
    /// is called only when this call is the one that starts a read; everyone sharing it must
    /// have asked for the same thing, which is what `key` has to say. The read runs in the
    /// tracing span of the request that started it.
    ///
    /// Must be called within a tokio runtime (reads run as spawned tasks).
    ///
    /// # Panics
    /// When the read panicked, or was dropped unfinished because its runtime shut down: every
    /// waiter fails as it would have had it read alone.
    pub async fn read<F, Fut>(&self, key: K, read: F) -> Arc<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (flight, start) = {
            let mut slots = self.slots();
            let slot = slots.entry(key.clone()).or_insert(Slots {
                running: None,
                queued: None,
            });
            if let Some((_, queued)) = &slot.queued {
                (queued.clone(), None)
            } else {
                let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
                let ahead = slot.running.as_ref().map(|(_, running)| running.clone());
                let (answer, answered) = oneshot::channel();
                let flight = flight_of(answered);
                if ahead.is_some() {
                    slot.queued = Some((id, flight.clone()));
                } else {
                    slot.running = Some((id, flight.clone()));
                }
                (flight, Some((id, ahead, answer)))
            }
        };
        // Spawned after the lock is released: a task dropped at once (its runtime shutting
        // down) clears its slot through the same lock.
        if let Some((id, ahead, answer)) = start {
            self.spawn_read(key, id, ahead, read, answer);
        }
        match flight.await {
            Ok(answer) => answer,
            Err(failure) => panic!("a shared read failed: {failure}"),
        }
    }

    /// Spawns the read `id` of `key`: it first waits for `ahead` (the running read it queued
    /// behind), then takes the running slot, reads, sends its answer (or why it has none) and
    /// clears its slot.
    fn spawn_read<F, Fut>(
        &self,
        key: K,
        id: u64,
        ahead: Option<Flight<V>>,
        read: F,
        answer: oneshot::Sender<Answer<V>>,
    ) where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        // Made before the task, so the slot is cleared however the task ends: finished,
        // panicked, or dropped before it ever ran.
        let finish = FinishOnDrop {
            reads: self.clone(),
            key,
            id,
        };
        let task = async move {
            if let Some(ahead) = ahead {
                // Whatever the read ahead answered is its own waiters' business.
                let _ = ahead.await;
                // The read ahead cleared its slot when it ended; this one is running now, so
                // later arrivals queue behind it.
                let mut slots = finish.reads.slots();
                if let Some(slot) = slots.get_mut(&finish.key)
                    && slot
                        .queued
                        .as_ref()
                        .is_some_and(|(queued, _)| *queued == id)
                {
                    slot.running = slot.queued.take();
                }
            }
            let outcome = match AssertUnwindSafe(read()).catch_unwind().await {
                Ok(value) => Ok(Arc::new(value)),
                Err(panic) => Err(Arc::from(panic_message(panic.as_ref()))),
            };
            // The slot is cleared before anyone hears the answer, so a request that arrives
            // after it queues behind nothing stale.
            drop(finish);
            let _ = answer.send(outcome);
        };
        drop(tokio::spawn(task.instrument(tracing::Span::current())));
    }

    /// Clears read `id`'s slot; forgets `key` once nothing of it is running or queued.
    fn finish(&self, key: &K, id: u64) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(key) {
            if slot
                .running
                .as_ref()
                .is_some_and(|(running, _)| *running == id)
            {
                slot.running = None;
            }
            if slot
                .queued
                .as_ref()
                .is_some_and(|(queued, _)| *queued == id)
            {
                slot.queued = None;
            }
            if slot.running.is_none() && slot.queued.is_none() {
                slots.remove(key);
            }
        }
    }
}

/// Clears a read's slot when the read's task ends, however it ends.
struct FinishOnDrop<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    reads: FreshReads<K, V>,
    key: K,
    id: u64,
}

impl<K, V> Drop for FinishOnDrop<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn drop(&mut self) {
        self.reads.finish(&self.key, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::{Semaphore, oneshot};

    /// A read that counts itself, returns the value `source` holds when it starts, and waits
    /// for a permit of `gate` before answering.
    fn gated_read(
        reads: &Arc<AtomicUsize>,
        source: &Arc<AtomicUsize>,
        gate: &Arc<Semaphore>,
    ) -> impl FnOnce() -> Pin<Box<dyn Future<Output = usize> + Send>> + Send + 'static {
        let (reads, source, gate) = (reads.clone(), source.clone(), gate.clone());
        move || {
            Box::pin(async move {
                reads.fetch_add(1, Ordering::SeqCst);
                let value = source.load(Ordering::SeqCst);
                gate.acquire().await.expect("gate").forget();
                value
            })
        }
    }

    #[tokio::test]
    async fn a_request_arriving_during_a_read_gets_the_next_read_not_the_running_one() {
        let reads_done = Arc::new(AtomicUsize::new(0));
        let source = Arc::new(AtomicUsize::new(1));
        let gate = Arc::new(Semaphore::new(0));
        let fresh: FreshReads<&str, usize> = FreshReads::new();

        let first = tokio::spawn({
            let fresh = fresh.clone();
            let read = gated_read(&reads_done, &source, &gate);
            async move { *fresh.read("page", read).await }
        });
        // Let the first read start and take its snapshot (value 1).
        while reads_done.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // A write commits, then two more requests arrive while the first read is running.
        source.store(2, Ordering::SeqCst);
        let later: Vec<_> = (0..2)
            .map(|_| {
                let fresh = fresh.clone();
                let read = gated_read(&reads_done, &source, &gate);
                tokio::spawn(async move { *fresh.read("page", read).await })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            reads_done.load(Ordering::SeqCst),
            1,
            "the later requests queue; they start no read while one is running"
        );
        gate.add_permits(2);
        assert_eq!(first.await.expect("first"), 1);
        for request in later {
            assert_eq!(
                request.await.expect("later"),
                2,
                "a request must see the write that committed before it arrived"
            );
        }
        assert_eq!(
            reads_done.load(Ordering::SeqCst),
            2,
            "the two later requests shared one read"
        );
        assert_eq!(fresh.keys_in_flight(), 0, "nothing is kept once answered");
    }

    #[tokio::test]
    async fn different_keys_never_share_a_read() {
        let fresh: FreshReads<u32, u32> = FreshReads::new();
        let (release, released) = oneshot::channel::<()>();
        let slow = tokio::spawn({
            let fresh = fresh.clone();
            async move {
                *fresh
                    .read(1, move || async move {
                        released.await.ok();
                        10
                    })
                    .await
            }
        });
        while fresh.keys_in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(*fresh.read(2, || async { 20 }).await, 20);
        release.send(()).expect("release");
        assert_eq!(slow.await.expect("slow"), 10);
    }

    #[tokio::test]
    async fn a_read_whose_only_waiter_goes_away_still_runs_to_its_end() {
        let reads_done = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let source = Arc::new(AtomicUsize::new(7));
        let gate = Arc::new(Semaphore::new(0));
        let fresh: FreshReads<&str, usize> = FreshReads::new();
        let leaving = tokio::spawn({
            let fresh = fresh.clone();
            let read = gated_read(&reads_done, &source, &gate);
            let finished = finished.clone();
            async move {
                *fresh
                    .read("page", move || async move {
                        let value = read().await;
                        finished.fetch_add(1, Ordering::SeqCst);
                        value
                    })
                    .await
            }
        });
        while reads_done.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        leaving.abort();
        assert!(leaving.await.is_err_and(|error| error.is_cancelled()));
        gate.add_permits(1);
        while fresh.keys_in_flight() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the read ran to its end with nobody waiting, and then forgot its key"
        );
        // The next request starts a read of its own.
        let staying = fresh.read("page", gated_read(&reads_done, &source, &gate));
        gate.add_permits(1);
        assert_eq!(*staying.await, 7);
        assert_eq!(reads_done.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_panics_fails_every_waiter_and_the_read_queued_behind_it_still_answers() {
        let fresh: FreshReads<&str, u32> = FreshReads::new();
        let (release, released) = oneshot::channel::<()>();
        let failing = tokio::spawn({
            let fresh = fresh.clone();
            async move {
                *fresh
                    .read("page", move || async move {
                        released.await.ok();
                        panic!("the store fell over");
                    })
                    .await
            }
        });
        while fresh.keys_in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        // Eight requests arrive while the failing read runs: they share the read queued
        // behind it, which must still run and answer all of them.
        let queued: Vec<_> = (0..8)
            .map(|_| {
                let fresh = fresh.clone();
                tokio::spawn(async move { *fresh.read("page", || async { 3 }).await })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(()).expect("release");
        // A bound on a hang, not a wait for the outcome.
        let bound = std::time::Duration::from_secs(30);
        let failed = tokio::time::timeout(bound, failing)
            .await
            .expect("the failing read's waiter is told, not left hanging");
        assert!(failed.is_err_and(|error| error.is_panic()));
        for waiter in queued {
            let answer = tokio::time::timeout(bound, waiter)
                .await
                .expect("a queued waiter is answered, not left hanging");
            assert_eq!(answer.expect("no panic"), 3);
        }
        assert_eq!(fresh.keys_in_flight(), 0);
        assert_eq!(*fresh.read("page", || async { 4 }).await, 4);
    }
}
