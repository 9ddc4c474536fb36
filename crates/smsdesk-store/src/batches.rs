//! Calls that arrive together share one statement: the queue and the leadership every batched
//! operation on PostgreSQL uses ([`crate::batched_writes`], [`crate::batched_finds`],
//! [`crate::batched_claims`]), and the SQLite group commit too ([`crate::group_commit`], whose
//! batch is one transaction).
//!
//! PostgreSQL's cost is per statement as much as per row: each one is a round trip, a wake-up of
//! a server process and, for a write, a commit, on the same CPUs as the service. A caller queues
//! its call; when no batch of its kind is running it becomes the leader: it takes what is queued
//! (at most the batcher's limit) and runs it as one batch, which answers every call in it. Calls
//! that arrive meanwhile queue for the next batch, so under load batches grow by themselves; the
//! batch's task takes that next batch itself as soon as it has answered its own, and gives the
//! lead back only when the queue is empty.
//! The batch runs in a task of its own, so a leader whose request is cancelled (a client that
//! hung up) does not take the others' calls with it; a caller that goes away before a batch took
//! its call takes the call back out of the queue.
//!
//! Every batch, even of one call, is the batch statement: it skips rows another transaction
//! holds locked rather than wait, so one stalled lock never holds up the calls queued behind it.
//! A batch hands a call back to run alone, in its caller's own task and as the statement it
//! is without batches, when its row was locked (the call then waits for that row alone), and
//! when the server refused the batch statement, so nothing of it was written. A batch that may
//! have been written and then failed (the connection dropped before the answer came back)
//! answers its calls with the error instead: running them again could write them twice.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::sea_query::{Expr, ExprTrait, SelectStatement};
use sea_orm::{DbErr, Value};
use smsdesk_domain::ports::RepositoryError;
use tokio::sync::oneshot;

use crate::error::{nothing_was_written, repo_err};
use crate::messages::select_messages;
use crate::schema::SmsMessages;
use crate::store::Store;

/// How many batches of one kind run at once. One: while it runs, the calls that arrive queue
/// for the next, which is what makes batches grow under load. Measured on PostgreSQL's single
/// refresh and new-status callbacks, alternating: 2 at once read the same within the noise, 4
/// read 15-30 % lower (smaller batches, more statements).
const BATCHES_AT_ONCE: usize = 1;

/// The most calls one batch takes, so a batch stays short and its parameters few.
const MAX_BATCH: usize = 64;

/// What a batch tells one of its calls.
pub(crate) enum Reply<I, O> {
    /// The call's answer.
    Answered(Result<O, RepositoryError>),
    /// Run the call alone, in the caller's task (see the module's documentation).
    RunAlone(I),
}

/// Runs one batch of calls as one statement; hands the calls back with what the statement
/// answered for each, in the batch's order.
pub(crate) type RunBatch<I, O> = fn(Store, Vec<I>) -> BoxFuture<(Vec<I>, BatchResult<O>)>;

/// Runs one call alone: the statement it is without batches.
pub(crate) type RunAlone<I, O> = fn(Store, I) -> BoxFuture<Result<O, RepositoryError>>;

/// Starts a batch's task: on the caller's runtime ([`on_this_runtime`]), or elsewhere (the
/// SQLite group commit's own thread).
pub(crate) type Spawn = fn(BoxFuture<()>);

/// Starts a batch's task on the runtime of the caller that leads it.
pub(crate) fn on_this_runtime(batch: BoxFuture<()>) {
    drop(tokio::spawn(batch));
}

/// A boxed future a batcher can hold a function for.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a batch statement answers for each call: `None` to run it alone (its row was locked),
/// else its answer.
pub(crate) type BatchAnswers<O> = Vec<Option<Result<O, RepositoryError>>>;

/// A batch statement's answers, or why it failed.
pub(crate) type BatchResult<O> = Result<BatchAnswers<O>, DbErr>;

/// Batches run as one statement, and those whose statement failed: what tests and operators
/// read to know the batch statements work ([`Store::batch_counts`]).
#[derive(Default)]
struct Counts {
    run: AtomicU64,
    failed: AtomicU64,
}

/// One caller's call and where its answer goes.
struct Pending<I, O> {
    id: u64,
    call: I,
    reply: oneshot::Sender<Reply<I, O>>,
}

/// The queue of one kind of call and the leadership of its next batch.
pub(crate) struct Batcher<I, O> {
    /// Shared with the running batch's task, which takes the next batch itself.
    queued: Arc<Queue<I, O>>,
    /// One permit per batch that may run at once.
    running: Arc<tokio::sync::Semaphore>,
    next_id: AtomicU64,
    run: RunBatch<I, O>,
    alone: RunAlone<I, O>,
    spawn: Spawn,
    /// What the calls are, for the log.
    what: &'static str,
    counts: Arc<Counts>,
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
        self.queued.calls()
    }
}

/// The calls queued for the next batch, in arrival order.
struct Queue<I, O> {
    calls: Mutex<VecDeque<Pending<I, O>>>,
    /// Calls with the same key never share a batch (writes to one message: a later one waits,
    /// in its place, for the next batch); `None` joins any batch.
    key: fn(&I) -> Option<&str>,
}

impl<I, O> Queue<I, O> {
    fn calls(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending<I, O>>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next batch: queued calls in queue order, at most one per key; a later call with a
    /// key already in the batch stays queued, in its place, for the next one.
    fn take_batch(&self) -> Vec<Pending<I, O>> {
        let mut queued = self.calls();
        let mut keys = HashSet::new();
        let mut batch = Vec::with_capacity(queued.len().min(MAX_BATCH));
        let mut left = VecDeque::new();
        while let Some(pending) = queued.pop_front() {
            if batch.len() == MAX_BATCH {
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

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    pub(crate) fn new(
        what: &'static str,
        key: fn(&I) -> Option<&str>,
        run: RunBatch<I, O>,
        alone: RunAlone<I, O>,
        spawn: Spawn,
    ) -> Self {
        Self {
            queued: Arc::new(Queue {
                calls: Mutex::default(),
                key,
            }),
            running: Arc::new(tokio::sync::Semaphore::new(BATCHES_AT_ONCE)),
            next_id: AtomicU64::new(0),
            run,
            alone,
            spawn,
            what,
            counts: Arc::default(),
        }
    }

    /// Runs `call` in the next batch (or alone, when the batch hands it back) and returns its
    /// answer.
    pub(crate) async fn call(&self, store: &Store, call: I) -> Result<O, RepositoryError> {
        match self.queue_and_wait(store, call).await {
            Reply::Answered(answer) => answer,
            Reply::RunAlone(call) => (self.alone)(store.clone(), call).await,
        }
    }

    async fn queue_and_wait(&self, store: &Store, call: I) -> Reply<I, O> {
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
            // A batch that ended just now may have answered this call, or ended without an
            // answer (its task panicked): a closed channel is not awaited again.
            match answer.try_recv() {
                Ok(reply) => return reply,
                Err(oneshot::error::TryRecvError::Closed) => return unanswered(),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = self.queued.take_batch();
            if batch.is_empty() {
                // Nothing queued: a batch still running took this call (possible only with
                // more than one batch at once), and answers it.
                drop(permit);
                return lost_if_dropped(answer.await);
            }
            let (queue, store, run, what, counts) = (
                self.queued.clone(),
                store.clone(),
                self.run,
                self.what,
                self.counts.clone(),
            );
            (self.spawn)(Box::pin(async move {
                // The task keeps the lead while calls are queued: it takes the next batch as
                // soon as one is answered, rather than hand the permit to a waiting caller,
                // who would first have to be woken and scheduled on its own worker (the
                // writer sat idle meanwhile). It lets the permit go once the queue is empty;
                // a call queued after that takes the permit and leads the next batch.
                let mut batch = batch;
                while !batch.is_empty() {
                    counts.run.fetch_add(1, Ordering::Relaxed);
                    run_and_answer(&store, run, &counts, what, batch).await;
                    batch = queue.take_batch();
                }
                drop(permit);
            }));
        }
    }

    /// How many batches ran as one statement, and how many of those failed.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.run.load(Ordering::Relaxed),
            self.counts.failed.load(Ordering::Relaxed),
        )
    }
}

/// Runs one batch and sends each of its calls its reply.
async fn run_and_answer<I, O>(
    store: &Store,
    run: RunBatch<I, O>,
    counts: &Counts,
    what: &'static str,
    batch: Vec<Pending<I, O>>,
) {
    let (calls, senders): (Vec<I>, Vec<_>) = batch
        .into_iter()
        .map(|pending| (pending.call, pending.reply))
        .unzip();
    let (calls, result) = run(store.clone(), calls).await;
    let mut answers = replies(counts, what, calls, result).into_iter();
    for reply in senders {
        let _ = reply.send(answers.next().unwrap_or_else(|| {
            Reply::Answered(Err(RepositoryError::Unexpected(
                "a batch gave a call no answer".into(),
            )))
        }));
    }
}

/// Turns a batch statement's result into each call's reply: its answer, or back to run
/// alone (a locked row; a statement the server refused, so nothing was written). A failure
/// after which the statement may have been written answers every call with the error.
fn replies<I, O>(
    counts: &Counts,
    what: &'static str,
    calls: Vec<I>,
    result: BatchResult<O>,
) -> Vec<Reply<I, O>> {
    let answers = match result {
        Ok(answers) if answers.len() == calls.len() => answers,
        Ok(answers) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            let error = RepositoryError::Unexpected(format!(
                "a batch of {} {what} answered {}",
                calls.len(),
                answers.len()
            ));
            return calls
                .iter()
                .map(|_| Reply::Answered(Err(error.clone())))
                .collect();
        }
        Err(error) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            let rerun = nothing_was_written(&error);
            tracing::warn!(
                calls = calls.len(),
                %error,
                what,
                rerun,
                "a batch statement failed"
            );
            if rerun {
                return calls.into_iter().map(Reply::RunAlone).collect();
            }
            let error = repo_err(error);
            return calls
                .iter()
                .map(|_| Reply::Answered(Err(error.clone())))
                .collect();
        }
    };
    calls
        .into_iter()
        .zip(answers)
        .map(|(call, answer)| match answer {
            Some(answer) => Reply::Answered(answer),
            None => Reply::RunAlone(call),
        })
        .collect()
}

/// A batch statement's input: one row per call, its index in the batch first (`i`, how each
/// answer row finds its call), then `row`'s values in `columns`' order, each of its column's
/// type (`(name, type)` pairs). The rows travel as one JSON parameter, pushed onto `values`
/// after the parameters bound before them, followed by the batch's size; [`input_opening`]
/// unpacks them. So a kind's statement has one text whatever the batch's size, built once and
/// prepared once per connection, where a `VALUES` list of placeholders would be a new
/// statement, parsed and planned again, for every size.
pub(crate) fn input_rows<C, R>(
    columns: &[(&str, &str)],
    calls: &[C],
    mut row: impl FnMut(&C) -> R,
    values: &mut Vec<Value>,
) -> Result<(), DbErr>
where
    R: IntoIterator<Item = Value>,
{
    // The rows are written as JSON text directly: no map or value tree per row on the way.
    // About 32 bytes per value (its name, quotes, a SID or a time) spares most regrowing.
    let mut rows = Vec::with_capacity(32 * calls.len() * (columns.len() + 1));
    rows.push(b'[');
    for (index, call) in calls.iter().enumerate() {
        if index > 0 {
            rows.push(b',');
        }
        let _ = write!(rows, "{{\"i\":{index}");
        let mut given = 0;
        for value in row(call) {
            let Some((name, _)) = columns.get(given) else {
                break;
            };
            let _ = write!(rows, ",\"{name}\":");
            write_json(&mut rows, value)?;
            given += 1;
        }
        if given != columns.len() {
            return Err(DbErr::Custom(format!(
                "a batch input row has {given} values for {} columns",
                columns.len()
            )));
        }
        rows.push(b'}');
    }
    rows.push(b']');
    let rows = String::from_utf8(rows)
        .map_err(|_| DbErr::Custom("a batch's input is not UTF-8".into()))?;
    values.push(rows.into());
    values.push(i64::try_from(calls.len()).unwrap_or(i64::MAX).into());
    Ok(())
}

/// A batch statement's opening, `WITH input AS (…)`, unpacking what [`input_rows`] bound as
/// parameters `$rows_param` (the rows) and the one after it (their number).
pub(crate) fn input_opening(columns: &[(&str, &str)], rows_param: usize) -> String {
    let mut sql = format!(
        "WITH input AS (SELECT * FROM json_to_recordset(${rows_param}::json) AS input (i bigint"
    );
    for (name, cast) in columns {
        let _ = write!(sql, ", {name} {cast}");
    }
    // The LIMIT (the batch's size, which it never exceeds) is how the planner learns how many
    // rows the input has: without it a set-returning function counts as 100 rows, and against
    // a table of a few thousand the planner then reads the whole table instead of looking each
    // row up by its index. A plan made for this execution knows the size; one kept for every
    // execution counts a tenth of the input's estimate.
    let _ = write!(sql, ") LIMIT ${})", rows_param + 1);
    sql
}

/// The message of an input row's team and SID, as [`select_messages`] reads it: the lateral
/// subquery by which a batch statement reads its calls' messages, so the columns come from the
/// one place that lists them.
pub(crate) fn message_of_input() -> SelectStatement {
    select_messages()
        .and_where(
            Expr::col((SmsMessages::Table, SmsMessages::TeamId)).eq(Expr::cust("input.team_id")),
        )
        .and_where(Expr::col((SmsMessages::Table, SmsMessages::Sid)).eq(Expr::cust("input.sid")))
        .to_owned()
}

/// Writes a bound value as the JSON the server's input function reads back as the same value:
/// times as RFC 3339 with microseconds, the precision they are stored with.
fn write_json(out: &mut Vec<u8>, value: Value) -> Result<(), DbErr> {
    let written = match value {
        Value::Bool(value) => serde_json::to_writer(&mut *out, &value),
        Value::Int(value) => serde_json::to_writer(&mut *out, &value),
        Value::BigInt(value) => serde_json::to_writer(&mut *out, &value),
        Value::String(value) => serde_json::to_writer(&mut *out, &value),
        Value::ChronoDateTimeUtc(value) => serde_json::to_writer(
            &mut *out,
            &value.map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        ),
        other => {
            return Err(DbErr::Custom(format!(
                "a batch input value of an unsupported type: {other:?}"
            )));
        }
    };
    written.map_err(|error| DbErr::Custom(format!("a batch input value: {error}")))
}

fn lost_if_dropped<I, O>(answered: Result<Reply<I, O>, oneshot::error::RecvError>) -> Reply<I, O> {
    answered.unwrap_or_else(|_| unanswered())
}

fn unanswered<I, O>() -> Reply<I, O> {
    Reply::Answered(Err(RepositoryError::Unavailable(
        "the batch ended without an answer".into(),
    )))
}
