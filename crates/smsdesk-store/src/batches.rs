//! Calls that arrive together share one statement: the queue and the leadership every batched
//! operation on PostgreSQL uses ([`crate::batched_writes`], [`crate::batched_finds`]).
//!
//! PostgreSQL's cost is per statement as much as per row: each one is a round trip, a wake-up of
//! a server process and, for a write, a commit, on the same CPUs as the service. A caller queues
//! its call; when no batch of its kind is running it becomes the leader: it takes what is queued
//! (at most the batcher's limit) and runs it as one batch, which answers every call in it. Calls
//! that arrive meanwhile queue for the next batch, so under load batches grow by themselves and
//! a caller alone runs alone, at once. The batch runs in a task of its own, so a leader whose
//! request is cancelled (a client that hung up) does not take the others' calls with it; a
//! caller that goes away before a batch took its call takes the call back out of the queue.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use smsdesk_domain::ports::RepositoryError;
use tokio::sync::oneshot;

use crate::store::Store;

/// How many batches of one kind run at once. One: while it runs, the calls that arrive queue
/// for the next, which is what makes batches grow under load. Measured on PostgreSQL's single
/// refresh and new-status callbacks, alternating: 2 at once read the same within the noise, 4
/// read 15-30 % lower (smaller batches, more statements).
const BATCHES_AT_ONCE: usize = 1;

/// What a batch answers: one result per call, in the batch's order.
pub(crate) type BatchAnswers<O> = Vec<Result<O, RepositoryError>>;

/// Runs one batch of calls.
pub(crate) type RunBatch<I, O> =
    fn(Store, Vec<I>) -> Pin<Box<dyn Future<Output = BatchAnswers<O>> + Send>>;

/// One caller's call and where its answer goes.
struct Pending<I, O> {
    id: u64,
    call: I,
    reply: oneshot::Sender<Result<O, RepositoryError>>,
}

/// The queue of one kind of call and the leadership of its next batch.
pub(crate) struct Batcher<I, O> {
    queued: Mutex<VecDeque<Pending<I, O>>>,
    /// One permit per batch that may run at once.
    running: Arc<tokio::sync::Semaphore>,
    next_id: AtomicU64,
    /// The most calls one batch takes, so a batch stays short and its parameters few.
    max: usize,
    /// Calls with the same key never share a batch (writes to one message: a later one waits,
    /// in its place, for the next batch); `None` joins any batch.
    key: fn(&I) -> Option<&str>,
    run: RunBatch<I, O>,
}

/// Takes a caller's call back out of the queue if the caller goes away before a batch took it:
/// a call nobody waits for is not run at some later moment.
struct Withdraw<'a, I, O> {
    batcher: &'a Batcher<I, O>,
    id: u64,
}

impl<I, O> Drop for Withdraw<'_, I, O> {
    fn drop(&mut self) {
        self.batcher.queue().retain(|pending| pending.id != self.id);
    }
}

impl<I, O> Batcher<I, O> {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending<I, O>>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    pub(crate) fn new(max: usize, key: fn(&I) -> Option<&str>, run: RunBatch<I, O>) -> Self {
        Self {
            queued: Mutex::default(),
            running: Arc::new(tokio::sync::Semaphore::new(BATCHES_AT_ONCE)),
            next_id: AtomicU64::new(0),
            max,
            key,
            run,
        }
    }

    /// Runs `call` in the next batch and returns its answer.
    pub(crate) async fn call(&self, store: &Store, call: I) -> Result<O, RepositoryError> {
        let (reply, mut answer) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.queue().push_back(Pending { id, call, reply });
        // Dropped on every return too, when the call has already left the queue: a no-op then.
        let _withdraw = Withdraw { batcher: self, id };
        loop {
            let permit = tokio::select! {
                answered = &mut answer => return lost_if_dropped(answered),
                permit = self.running.clone().acquire_owned() => permit,
            };
            // A batch that ended just now may have answered this call.
            if let Ok(answered) = answer.try_recv() {
                return answered;
            }
            let (calls, replies): (Vec<I>, Vec<_>) = self
                .take_batch()
                .into_iter()
                .map(|pending| (pending.call, pending.reply))
                .unzip();
            if calls.is_empty() {
                // Nothing queued: a batch that is still running took this call, and answers it.
                drop(permit);
                return lost_if_dropped(answer.await);
            }
            let (store, run) = (store.clone(), self.run);
            tokio::spawn(async move {
                let mut answers = run(store, calls).await.into_iter();
                for reply in replies {
                    let _ = reply.send(answers.next().unwrap_or_else(|| {
                        Err(RepositoryError::Unexpected(
                            "a batch gave a call no answer".into(),
                        ))
                    }));
                }
                drop(permit);
            });
        }
    }

    /// The next batch: queued calls in queue order, at most one per key; a later call with a
    /// key already in the batch stays queued, in its place, for the next one.
    fn take_batch(&self) -> Vec<Pending<I, O>> {
        let mut queued = self.queue();
        let mut keys = HashSet::new();
        let mut batch = Vec::with_capacity(queued.len().min(self.max));
        let mut left = VecDeque::new();
        while let Some(pending) = queued.pop_front() {
            if batch.len() == self.max {
                left.push_back(pending);
                break;
            }
            match (self.key)(&pending.call) {
                Some(key) if !keys.insert(key.to_owned()) => left.push_back(pending),
                _ => batch.push(pending),
            }
        }
        left.extend(queued.drain(..));
        *queued = left;
        batch
    }
}

/// A batch's answers: `alone` (given a call's index) for a batch of one, the statement such a
/// call always was; else `together`, one statement for all, and if that fails each call again
/// `alone`, so one call's failure is never another's.
pub(crate) async fn together_or_alone<O, Alone>(
    calls: usize,
    what: &'static str,
    together: impl Future<Output = Result<Vec<O>, RepositoryError>>,
    alone: impl Fn(usize) -> Alone,
) -> BatchAnswers<O>
where
    Alone: Future<Output = Result<O, RepositoryError>>,
{
    if calls > 1 {
        match together.await {
            Ok(answers) if answers.len() == calls => {
                return answers.into_iter().map(Ok).collect();
            }
            Ok(answers) => tracing::warn!(
                calls,
                answers = answers.len(),
                what,
                "a batch answered the wrong number of calls; each runs again alone"
            ),
            Err(error) => tracing::warn!(
                calls,
                %error,
                what,
                "a batch failed; each of its calls runs again alone"
            ),
        }
    }
    let mut answers = Vec::with_capacity(calls);
    for index in 0..calls {
        answers.push(alone(index).await);
    }
    answers
}

fn lost_if_dropped<O>(
    answered: Result<Result<O, RepositoryError>, oneshot::error::RecvError>,
) -> Result<O, RepositoryError> {
    answered.unwrap_or_else(|_| {
        Err(RepositoryError::Unavailable(
            "the batch ended without an answer".into(),
        ))
    })
}
