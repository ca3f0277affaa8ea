//! The writer: one task that stores what executions report (their starts, node
//! events and whole records) in batches, then broadcasts the events and answers who
//! waits. Group commit lives here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::{self, NewExecution, Store};
use crate::trace::{Event, Execution};

/// Why a write that someone waited for was not made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The batch it was in failed (and rolled back whole).
    #[error("storing a batch of execution changes failed")]
    Store(#[source] Arc<store::Error>),
    /// The store answered fewer numbers than it was given starts and finishes.
    #[error("the store gave no number")]
    NoNumber,
    /// The writer is not running.
    #[error("the store's writer is not running")]
    Gone,
}

/// A write that someone waits for.
pub(super) enum Job {
    /// Record an execution as queued or running. With a `reply`, someone waits for it:
    /// it goes in the next batch and answers the execution's numeric id. Without, it may
    /// wait like a node event, and is never written when the execution ends by then
    /// (its record says all).
    Start {
        execution: NewExecution,
        reply: Option<oneshot::Sender<Result<i64, WriteError>>>,
    },
    /// Store an ended execution whole; answers its numeric id once it is stored, and
    /// hands the execution back (it is moved to the writer, not copied).
    Finish(Box<Execution>, oneshot::Sender<Stored>),
}

impl Job {
    /// How many of `jobs` end an execution.
    fn finishes(jobs: &[Self]) -> usize {
        jobs.iter()
            .filter(|job| matches!(job, Self::Finish(..)))
            .count()
    }
}

/// The answer to [`Job::Finish`]: the execution's numeric id, or why it could not be
/// stored; and the execution.
pub(super) type Stored = (Result<i64, WriteError>, Box<Execution>);

/// Who waits for a start or a finish of a batch.
enum Reply {
    Start(oneshot::Sender<Result<i64, WriteError>>),
    Finish(oneshot::Sender<Stored>),
}

/// A write that may wait for a batch (see [`persist`]).
enum Lingering {
    Event(Event),
    Start(NewExecution),
}

impl Lingering {
    fn execution_id(&self) -> &str {
        match self {
            Self::Event(event) => event.execution_id(),
            Self::Start(execution) => &execution.header.id,
        }
    }
}

/// `event` as listeners get it: a step's run, which is for the store, is dropped, so
/// that a slow listener holds no step's input and output in the channel.
fn without_run(mut event: Event) -> Event {
    if let Event::StepEnded { run, .. } = &mut event {
        *run = None;
    }
    event
}

/// The most writes in one transaction.
const MAX_BATCH: usize = 4096;

/// How long a node event may wait to be stored: an execution that ends by then has its
/// events superseded by its record, and they are never written.
const EVENT_LINGER: Duration = Duration::from_millis(10);

/// When a batch that ends executions waits for more to end before it is written: a
/// commit costs about the same for one execution as for several (each B-tree it touches
/// is a page of the write-ahead log, written with two system calls), so under load
/// fewer, larger commits leave more of the CPU to the steps. (PostgreSQL's
/// `commit_delay` and `commit_siblings`, for the same reason.)
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupCommit {
    /// How many more to wait for. Counted rather than timed, so that it suits any
    /// speed of machine.
    more: usize,
    /// How many others must be running for a batch to wait: with fewer, none is likely
    /// to end within the wait, and waiting would only slow the one that has.
    siblings: usize,
    /// The longest wait, for a count that does not come (the others are in slow
    /// steps). Tokio's timer counts whole milliseconds: a wait ends at its first tick
    /// after this.
    max_delay: Duration,
}

/// The server's group commit. In the server bench (16 at once, 2 cores), waiting for
/// 6 to 12 more made persistence add 24–34% to an execution, no count clearly best,
/// and no wait 45–52% (BENCHMARKS.md, "The writer as a task"). The 500 µs bound is
/// 0.5–1.5 ms in effect.
pub(super) const GROUP_COMMIT: GroupCommit = GroupCommit {
    more: 8,
    siblings: 2,
    max_delay: Duration::from_micros(500),
};

impl GroupCommit {
    /// How many executions a batch that ends `ending` of the `running` (those
    /// included) waits to have ended before it is written: `ending` itself when it
    /// does not wait.
    fn target(self, ending: usize, running: usize) -> usize {
        let others = running.saturating_sub(ending);
        if ending == 0 || others < self.siblings {
            ending
        } else {
            ending + others.min(self.more)
        }
    }
}

/// Move what waits on `jobs` to `new_jobs`, up to [`MAX_BATCH`] in all.
fn take_jobs(jobs: &mut mpsc::UnboundedReceiver<Job>, new_jobs: &mut Vec<Job>) {
    while new_jobs.len() < MAX_BATCH {
        let Ok(job) = jobs.try_recv() else { break };
        new_jobs.push(job);
    }
}

/// Store everything in batches, then broadcast the events and answer the waiters: a
/// client never hears of a state the store does not hold, and hears of an execution's
/// nodes before its end.
///
/// A batch is what arrived while the last one was being written, so a busy server makes
/// few, large commits instead of one per change; one that ends executions while others
/// run waits for a few more to end ([`GROUP_COMMIT`]). Finishes and urgent starts have
/// someone waiting: they go in the next batch. A node event, or a start nobody waits
/// for, waits up to [`EVENT_LINGER`] for a batch (or the end of its execution): most executions end
/// sooner, and then only their start and their record are written, or only their record.
/// (A node event was never waited for, so a crash could always lose the last ones; the
/// execution's start, when reported, and its end are what is durable.)
///
/// Runs as a task on the service's runtime, and writes inline on the worker that polls
/// it, without a hop to another thread and back: the store is the one place every
/// execution waits on. (On a thread of its own, with a timed group-commit wait, the
/// server bench measured persistence adding 32–56% to an execution, median 38% over 17
/// runs, against 19–47%, median 29% over 31 runs, this way: the writer's thread was put
/// on a CPU for each batch, and woke each waiter from afar. A batch holds its worker for
/// about 30 µs an execution, a fraction of what running one takes, and an idle worker
/// takes over its queue meanwhile. A commit waits for no disk, except once per 32 MiB of log, when
/// the store starts its log over; see `SqliteStore::write`.)
pub(super) async fn persist(
    store: Arc<dyn Store>,
    events: mpsc::UnboundedReceiver<Event>,
    jobs: mpsc::UnboundedReceiver<Job>,
    broadcast: broadcast::Sender<Arc<Event>>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    group_commit: GroupCommit,
    metrics: Arc<super::metrics::Metrics>,
) {
    let mut writer = Writer {
        metrics,
        store,
        events,
        jobs,
        broadcast,
        running,
        group_commit,
        arrived: Vec::new(),
        new_jobs: Vec::new(),
        waiting: VecDeque::new(),
        events_open: true,
        jobs_open: true,
    };
    while writer.events_open || writer.jobs_open || !writer.waiting.is_empty() {
        writer.receive().await;
        if let Some(batch) = writer.next_batch() {
            writer.write(batch);
        }
    }
}

/// The writer's state between batches.
struct Writer {
    /// Where each batch's time and size are counted.
    metrics: Arc<super::metrics::Metrics>,
    store: Arc<dyn Store>,
    events: mpsc::UnboundedReceiver<Event>,
    jobs: mpsc::UnboundedReceiver<Job>,
    broadcast: broadcast::Sender<Arc<Event>>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    group_commit: GroupCommit,
    /// Events received and not yet sorted into `waiting`.
    arrived: Vec<Event>,
    /// Jobs received and not yet sorted into a batch.
    new_jobs: Vec<Job>,
    /// Writes not made yet, with when they arrived, oldest first.
    waiting: VecDeque<(Instant, Lingering)>,
    events_open: bool,
    jobs_open: bool,
}

/// One transaction's writes, who waits for each start and finish among them (in their
/// order: the store answers a number for each), and the events its finishes supersede
/// (announced, never written).
struct Batch {
    writes: Vec<store::Write>,
    replies: Vec<Option<Reply>>,
    superseded: Vec<Event>,
}

impl Writer {
    /// Wait for something to write: a job, the first event after a quiet spell, or the
    /// oldest waiting write coming due; then, under load, for a few more executions to
    /// end ([`GroupCommit`]); then take whatever else has arrived.
    async fn receive(&mut self) {
        let due = self.waiting.front().map(|(at, _)| *at + EVENT_LINGER);
        // Only the first event after a quiet spell wakes the writer (to set the timer):
        // while some wait, later ones are picked up at the next wake-up, which comes by
        // the time the oldest is due. (A wake-up is a system call on each side.)
        let listen = self.events_open && self.waiting.is_empty();
        tokio::select! {
            n = self.jobs.recv_many(&mut self.new_jobs, MAX_BATCH), if self.jobs_open => {
                self.jobs_open = n > 0;
            }
            n = self.events.recv_many(&mut self.arrived, MAX_BATCH), if listen => {
                self.events_open = n > 0;
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
        }
        take_jobs(&mut self.jobs, &mut self.new_jobs);
        self.wait_for_siblings().await;
        // Events, then jobs again (those that ended meanwhile too): the start of an
        // execution whose events are here is here too.
        while self.events_open && self.arrived.len() < MAX_BATCH {
            match self.events.try_recv() {
                Ok(event) => self.arrived.push(event),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.events_open = false,
            }
        }
        take_jobs(&mut self.jobs, &mut self.new_jobs);
    }

    /// Group commit: under load, give other executions a moment to end too.
    async fn wait_for_siblings(&mut self) {
        let target = self.group_commit.target(
            Job::finishes(&self.new_jobs),
            crate::lock(&self.running).len(),
        );
        let deadline = Instant::now() + self.group_commit.max_delay;
        while self.jobs_open
            && Job::finishes(&self.new_jobs) < target
            && self.new_jobs.len() < MAX_BATCH
        {
            let room = MAX_BATCH - self.new_jobs.len();
            tokio::select! {
                n = self.jobs.recv_many(&mut self.new_jobs, room) => self.jobs_open = n > 0,
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    }

    /// Sort what arrived into the next batch and what waits longer; `None` when nothing
    /// is to be written yet.
    fn next_batch(&mut self) -> Option<Batch> {
        let now = Instant::now();
        let mut writes = Vec::with_capacity(self.new_jobs.len() + self.waiting.len());
        let mut replies = Vec::with_capacity(self.new_jobs.len());
        for job in self.new_jobs.drain(..) {
            match job {
                Job::Start {
                    execution,
                    reply: None,
                } => self.waiting.push_back((now, Lingering::Start(execution))),
                Job::Start {
                    execution,
                    reply: Some(reply),
                } => {
                    writes.push(store::Write::Start(execution));
                    replies.push(Some(Reply::Start(reply)));
                }
                Job::Finish(execution, reply) => {
                    writes.push(store::Write::Finish(execution));
                    replies.push(Some(Reply::Finish(reply)));
                }
            }
        }
        self.waiting.extend(
            self.arrived
                .drain(..)
                .map(|event| (now, Lingering::Event(event))),
        );
        // Once nothing more can come, whatever waits is written now.
        let closing = !self.events_open && !self.jobs_open;
        let ripe = |at: Instant| closing || at + EVENT_LINGER <= now;
        if writes.is_empty() && !self.waiting.front().is_some_and(|(at, _)| ripe(*at)) {
            return None;
        }
        // What waited and goes now: the writes of executions ending in this batch are
        // superseded by their records (their events only announced, their starts never
        // written); the others are written once they waited long enough.
        let ended = store::Write::ended_in(&writes);
        let (mut superseded, mut staying) = (Vec::new(), VecDeque::new());
        let (mut going, mut started) = (Vec::new(), Vec::new());
        for (at, write) in self.waiting.drain(..) {
            match write {
                write if !ended.contains(write.execution_id()) && !ripe(at) => {
                    staying.push_back((at, write));
                }
                Lingering::Event(event) if ended.contains(event.execution_id()) => {
                    superseded.push(event);
                }
                Lingering::Start(execution) if ended.contains(execution.header.id.as_str()) => {}
                Lingering::Event(event) => going.push(event),
                Lingering::Start(execution) => started.push(execution),
            }
        }
        drop(ended);
        self.waiting = staying;
        for execution in started {
            writes.push(store::Write::Start(execution));
            replies.push(None);
        }
        writes.extend(going.into_iter().map(store::Write::Event));
        Some(Batch {
            writes,
            replies,
            superseded,
        })
    }

    /// Write `batch` in one transaction, then broadcast its events (a client hears of an
    /// execution's nodes before its end) and answer who waits.
    fn write(&self, batch: Batch) {
        let Batch {
            writes,
            replies,
            superseded,
        } = batch;
        let began = std::time::Instant::now();
        let written = self.store.write(&writes);
        self.metrics.wrote(writes.len(), began.elapsed());
        let (nums, failure) = match written {
            Ok(nums) => (nums, None),
            Err(e) => {
                tracing::error!(error = %e, "storing a batch of execution changes failed");
                (Vec::new(), Some(WriteError::Store(Arc::new(e))))
            }
        };
        // To those listening: nobody is the common case, and then nothing is sent.
        let listening = failure.is_none() && self.broadcast.receiver_count() > 0;
        let mut answered = Vec::with_capacity(replies.len());
        for write in writes {
            match write {
                store::Write::Event(event) if listening => {
                    let _ = self.broadcast.send(Arc::new(without_run(event)));
                }
                store::Write::Event(_) => {}
                write => answered.push(write),
            }
        }
        if listening {
            for event in superseded {
                let _ = self.broadcast.send(Arc::new(without_run(event)));
            }
        }
        // A waiter that went away is not the batch's problem.
        let mut nums = nums.into_iter();
        for (write, reply) in answered.into_iter().zip(replies) {
            let answer = match &failure {
                None => nums.next().ok_or(WriteError::NoNumber),
                Some(e) => Err(e.clone()),
            };
            match (reply, write) {
                (Some(Reply::Start(reply)), _) => {
                    let _ = reply.send(answer);
                }
                (Some(Reply::Finish(reply)), store::Write::Finish(execution)) => {
                    let _ = reply.send((answer, execution));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::trace::ExecutionStatus;

    /// Hand `id`, ended, to the writer; the answer to await.
    fn finish(jobs: &mpsc::UnboundedSender<Job>, id: &str) -> oneshot::Receiver<Stored> {
        let (reply, stored) = oneshot::channel();
        let ended = store::testing::execution(id, ExecutionStatus::Completed, Utc::now());
        assert!(
            jobs.send(Job::Finish(Box::new(ended), reply)).is_ok(),
            "the writer is gone"
        );
        stored
    }

    /// A writer on a real store.
    struct Writer {
        jobs: mpsc::UnboundedSender<Job>,
        events: mpsc::UnboundedSender<Event>,
        task: tokio::task::JoinHandle<()>,
        store: Arc<dyn Store>,
        _dir: tempfile::TempDir,
    }

    /// A writer with `group_commit`, counting `running`.
    fn start_writer(
        group_commit: GroupCommit,
        running: &Arc<Mutex<HashMap<String, CancellationToken>>>,
    ) -> Writer {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(store::SqliteStore::open(&dir.path().join("w.db")).unwrap());
        let (events, event_receiver) = mpsc::unbounded_channel();
        let (jobs, job_receiver) = mpsc::unbounded_channel();
        let (broadcast, _) = broadcast::channel(16);
        let task = tokio::spawn(persist(
            Arc::clone(&store),
            event_receiver,
            job_receiver,
            broadcast,
            Arc::clone(running),
            group_commit,
            Arc::default(),
        ));
        Writer {
            jobs,
            events,
            task,
            store,
            _dir: dir,
        }
    }

    /// Count `n` executions as running.
    fn run(running: &Arc<Mutex<HashMap<String, CancellationToken>>>, n: usize) {
        let mut running = crate::lock(running);
        running.clear();
        running.extend((0..n).map(|i| (format!("ex_{i}"), CancellationToken::new())));
    }

    /// Its number, once stored.
    fn stored(answer: Result<Stored, oneshot::error::RecvError>) -> i64 {
        answer.expect("answered").0.expect("stored")
    }

    // On Tokio's one-thread runtime the writer runs whenever this test yields, so what
    // it has done by then is certain, without timing anything.
    #[tokio::test]
    async fn a_batch_waits_for_its_count_while_others_run_and_not_forever() {
        // A wait that never ends by itself: the count alone ends it.
        let patient = GroupCommit {
            max_delay: Duration::from_secs(3600),
            ..GROUP_COMMIT
        };
        let running = Arc::new(Mutex::new(HashMap::new()));
        let Writer {
            jobs,
            events,
            task,
            store,
            _dir,
        } = start_writer(patient, &running);

        // Too few others running: written at once.
        run(&running, patient.siblings);
        let mut alone = finish(&jobs, "ex_alone");
        tokio::task::yield_now().await;
        let alone = stored(
            alone
                .try_recv()
                .map_err(|e| panic!("not written at once: {e}")),
        );

        // Enough others: it waits for `more` of them to end, and is written with them
        // the moment the last arrives.
        run(&running, 1 + patient.more + 5);
        let mut first = finish(&jobs, "ex_first");
        tokio::task::yield_now().await;
        let mut next: Vec<_> = (1..patient.more)
            .map(|i| finish(&jobs, &format!("ex_next_{i}")))
            .collect();
        tokio::task::yield_now().await;
        assert!(first.try_recv().is_err(), "written before its count came");
        next.push(finish(&jobs, "ex_last"));
        tokio::task::yield_now().await;
        let mut nums = vec![stored(
            first.try_recv().map_err(|e| panic!("still waiting: {e}")),
        )];
        for mut answer in next {
            nums.push(stored(
                answer.try_recv().map_err(|e| panic!("still waiting: {e}")),
            ));
        }
        assert_eq!(nums.len(), 1 + patient.more);
        assert!(alone < nums[0], "{alone} {nums:?}");
        assert!(
            nums.windows(2).all(|w| w[1] == w[0] + 1),
            "in the order they ended: {nums:?}"
        );
        for id in ["ex_alone", "ex_first", "ex_next_1", "ex_last"] {
            assert!(store.execution(id).unwrap().is_some(), "{id} not stored");
        }
        // Once nothing more can come, the writer ends, whatever it waited for.
        let mut waiting = finish(&jobs, "ex_at_close");
        tokio::task::yield_now().await;
        assert!(waiting.try_recv().is_err());
        drop((jobs, events));
        task.await.unwrap();
        stored(waiting.await);

        // With the server's bound, a count that never comes ends the wait.
        let running = Arc::new(Mutex::new(HashMap::new()));
        run(&running, 10);
        let writer = start_writer(GROUP_COMMIT, &running);
        let lonely = finish(&writer.jobs, "ex_lonely");
        let answer = tokio::time::timeout(Duration::from_secs(60), lonely).await;
        stored(answer.expect("waited past its bound"));
    }

    #[test]
    fn a_batch_waits_for_a_few_more_to_end_only_while_others_run() {
        let more = GROUP_COMMIT.more;
        let siblings = GROUP_COMMIT.siblings;
        // Nothing ends: nothing to wait for.
        assert_eq!(GROUP_COMMIT.target(0, 16), 0);
        // One ends and fewer than `siblings` others run: it goes alone.
        assert_eq!(GROUP_COMMIT.target(1, 1), 1);
        assert_eq!(GROUP_COMMIT.target(1, siblings), 1);
        // With enough others, as many as run, up to `more` of them.
        assert_eq!(GROUP_COMMIT.target(1, 1 + siblings), 1 + siblings);
        assert_eq!(GROUP_COMMIT.target(1, 16), 1 + more);
        assert_eq!(GROUP_COMMIT.target(5, 1000), 5 + more);
        // A count that lags (those ending already gone from it) never makes it wait.
        assert_eq!(GROUP_COMMIT.target(4, 2), 4);
    }
}
