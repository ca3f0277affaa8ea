//! The HTTP server: the native API under `/api/v1` and the ThreatConnect view under
//! `/api/v3/playbook/executions`, over one [`Service`] that starts executions and
//! reads the [`Store`].
//!
//! Handlers stay thin: parse, call the service or the store, map the error to a status.
//! Bad input is a 4xx whose message says what to fix; a store failure is a 500 that
//! says "internal error" to the client and logs the cause.

mod assets;
mod listen;
mod openapi;
mod secmaster;
mod soar;
mod triggers;
mod web;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, KeepAliveStream, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use listen::{Edge, check_exposure, raise_descriptor_limit, weak_token};

use crate::engine::{self, HostRunner, Start, StepRunner};
use crate::playbook::trigger::Trigger;
use crate::playbook::{Known, NodeKind, Playbook, PlaybookSpec};
use crate::store::{
    self, EXECUTION_FIELDS, ExecutionFilter, ExecutionRecord, ExecutionRow, LOG_FIELDS, LogFilter,
    NewExecution, STEP_FIELDS, Sort, StepFilter, StepRunRow, Store, Window,
};
use crate::tql;
use crate::trace::LogLevel;
use crate::trace::{Event, Execution, ExecutionStatus, TriggerType};

/// The largest request body accepted (a trigger payload holding a whole email fits).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long a request may take, except a run that waits for its execution (which its
/// playbook's `max_runtime` bounds).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server serves: the playbooks, the store, and the executions in flight.
pub struct Service {
    store: Arc<dyn Store>,
    runner: Arc<HostRunner>,
    /// Kill switches of the executions running now, by id (the writer counts them).
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    token: Option<String>,
    /// Where executions send their events, to be stored and then broadcast.
    events: mpsc::UnboundedSender<Event>,
    /// Every event, once stored, for the Server-Sent Events streams.
    broadcast: broadcast::Sender<Arc<Event>>,
    /// Writes someone waits for, batched with the events.
    jobs: mpsc::UnboundedSender<Job>,
    /// Per playbook with `max_concurrent`: its limit and the permits of its running
    /// executions (a fair semaphore, so that queued ones start in order).
    gates: Mutex<HashMap<String, (usize, Arc<tokio::sync::Semaphore>)>>,
    /// The running timers, by playbook.
    timers: Mutex<HashMap<String, triggers::Timer>>,
    /// The only directory whose files API-defined assets may read as secrets.
    secrets_dir: Option<std::path::PathBuf>,
    /// Whether the apps and playbooks are still loading (the server answers already).
    loading: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("playbooks", &self.runner.playbook_ids())
            .finish_non_exhaustive()
    }
}

/// A started execution: its ids, and its end when awaited.
pub struct Started {
    /// The string id.
    pub id: String,
    /// The numeric id, when the start was reported ([`Report::Start`]; else `done`
    /// gives it).
    pub num: Option<i64>,
    /// Whether it waits for its playbook's concurrency limit.
    pub queued: bool,
    /// Resolves to the execution's numeric id and record once it has ended and been
    /// stored (`None` when it could not be stored: its start, which is then never
    /// returned as started, or its record).
    pub done: tokio::task::JoinHandle<Option<(i64, Execution)>>,
}

/// When the caller of [`Service::start`] hears of the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// As soon as it is recorded as started (with its numeric id).
    Start,
    /// Only when it has ended (`Started::done`). An execution whose playbook cannot
    /// reach outside wasp ([`Playbook::reaches_out`]) then runs at once, without
    /// waiting for its start to be stored (which it is within 10 ms, or with
    /// its record if it ends sooner): nobody hears of it before its start is stored
    /// (lists read the store, streams are sent what was stored), and one cut short by a
    /// crash before then has done nothing anybody could miss.
    End,
}

impl Report {
    /// [`Report::End`] for a caller that waits for the end, else [`Report::Start`].
    pub fn when(wait_for_end: bool) -> Self {
        if wait_for_end { Self::End } else { Self::Start }
    }
}

impl Started {
    /// `Queued` when it waits for its playbook's concurrency limit, else `Running`.
    pub fn status(&self) -> &'static str {
        if self.queued { "Queued" } else { "Running" }
    }
}

/// Events a slow SSE client may fall behind by before it is told to catch up.
const BROADCAST_CAPACITY: usize = 4096;

/// A write that someone waits for.
enum Job {
    /// Record an execution as queued or running. With a `reply`, someone waits for it:
    /// it goes in the next batch and answers the execution's numeric id. Without, it may
    /// wait like a node event, and is never written when the execution ends by then
    /// (its record says all).
    Start {
        execution: NewExecution,
        reply: Option<oneshot::Sender<Result<i64, String>>>,
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
type Stored = (Result<i64, String>, Box<Execution>);

/// Who waits for a start or a finish of a batch.
enum Reply {
    Start(oneshot::Sender<Result<i64, String>>),
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
struct GroupCommit {
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
const GROUP_COMMIT: GroupCommit = GroupCommit {
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
async fn persist(
    store: Arc<dyn Store>,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    broadcast: broadcast::Sender<Arc<Event>>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    group_commit: GroupCommit,
) {
    use std::collections::VecDeque;
    use tokio::time::Instant;

    let (mut arrived, mut new_jobs) = (Vec::new(), Vec::new());
    // Writes not made yet, with when they arrived, oldest first.
    let mut waiting: VecDeque<(Instant, Lingering)> = VecDeque::new();
    let (mut events_open, mut jobs_open) = (true, true);
    while events_open || jobs_open || !waiting.is_empty() {
        let due = waiting.front().map(|(at, _)| *at + EVENT_LINGER);
        // Only the first event after a quiet spell wakes the writer (to set the timer):
        // while some wait, later ones are picked up at the next wake-up, which comes by
        // the time the oldest is due. (A wake-up is a system call on each side.)
        let listen = events_open && waiting.is_empty();
        tokio::select! {
            n = jobs.recv_many(&mut new_jobs, MAX_BATCH), if jobs_open => jobs_open = n > 0,
            n = events.recv_many(&mut arrived, MAX_BATCH), if listen => events_open = n > 0,
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
        }
        take_jobs(&mut jobs, &mut new_jobs);
        // Group commit: under load, give other executions a moment to end too.
        let target = group_commit.target(Job::finishes(&new_jobs), crate::lock(&running).len());
        let deadline = Instant::now() + group_commit.max_delay;
        while jobs_open && Job::finishes(&new_jobs) < target && new_jobs.len() < MAX_BATCH {
            let room = MAX_BATCH - new_jobs.len();
            tokio::select! {
                n = jobs.recv_many(&mut new_jobs, room) => jobs_open = n > 0,
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Events, then jobs again (those that ended meanwhile too): the start of an
        // execution whose events are here is here too.
        while events_open && arrived.len() < MAX_BATCH {
            match events.try_recv() {
                Ok(event) => arrived.push(event),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => events_open = false,
            }
        }
        take_jobs(&mut jobs, &mut new_jobs);
        let now = Instant::now();
        let mut writes = Vec::with_capacity(new_jobs.len() + waiting.len());
        // One place for each start and finish in `writes`, pushed with it, in its order
        // (the store answers a number for each, in that order): who waits for it, if any.
        let mut replies = Vec::with_capacity(new_jobs.len());
        for job in new_jobs.drain(..) {
            match job {
                Job::Start {
                    execution,
                    reply: None,
                } => waiting.push_back((now, Lingering::Start(execution))),
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
        waiting.extend(
            arrived
                .drain(..)
                .map(|event| (now, Lingering::Event(event))),
        );
        // Once nothing more can come, whatever waits is written now.
        let closing = !events_open && !jobs_open;
        let ripe = |at: Instant| closing || at + EVENT_LINGER <= now;
        if writes.is_empty() && !waiting.front().is_some_and(|(at, _)| ripe(*at)) {
            continue;
        }
        // What waited and goes now: the writes of executions ending in this batch are
        // superseded by their records (their events only announced, their starts never
        // written); the others are written once they waited long enough.
        let ended = store::Write::ended_in(&writes);
        let (mut superseded, mut staying) = (Vec::new(), VecDeque::new());
        let (mut going, mut started) = (Vec::new(), Vec::new());
        for (at, write) in waiting.drain(..) {
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
        waiting = staying;
        for execution in started {
            writes.push(store::Write::Start(execution));
            replies.push(None);
        }
        writes.extend(going.into_iter().map(store::Write::Event));
        let result = store.write(&writes);
        let failure = result.as_ref().err().map(ToString::to_string);
        if let Some(e) = &failure {
            tracing::error!(error = %e, "storing a batch of execution changes failed");
        }
        // The events first (a client hears of an execution's nodes before its end), to
        // those listening: nobody is the common case, and then nothing is sent.
        let listening = failure.is_none() && broadcast.receiver_count() > 0;
        let mut answered = Vec::with_capacity(replies.len());
        for write in writes {
            match write {
                store::Write::Event(event) if listening => {
                    let _ = broadcast.send(Arc::new(event));
                }
                store::Write::Event(_) => {}
                write => answered.push(write),
            }
        }
        if listening {
            for event in superseded {
                let _ = broadcast.send(Arc::new(event));
            }
        }
        // A waiter that went away is not the batch's problem.
        let mut nums = result.unwrap_or_default().into_iter();
        for (write, reply) in answered.into_iter().zip(replies) {
            let answer = match &failure {
                None => nums
                    .next()
                    .ok_or_else(|| "the store gave no number".to_owned()),
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

impl Service {
    /// A service over `store`, running the playbooks of `runner`; every request must
    /// carry `token` as a bearer token when it is set. Starts the writer that stores
    /// and broadcasts events, as a task on the current Tokio runtime (or, outside one,
    /// on a thread of its own); it ends when the service and its executions are gone.
    pub fn new(store: Arc<dyn Store>, runner: Arc<HostRunner>, token: Option<String>) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        let (jobs, job_receiver) = mpsc::unbounded_channel();
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        let running = Arc::new(Mutex::new(HashMap::new()));
        let writer = persist(
            Arc::clone(&store),
            receiver,
            job_receiver,
            broadcast.clone(),
            Arc::clone(&running),
            GROUP_COMMIT,
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(writer));
        } else {
            let started = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .and_then(|runtime| {
                    std::thread::Builder::new()
                        .name("wasp-writer".to_owned())
                        .spawn(move || runtime.block_on(writer))
                });
            if let Err(e) = started {
                // Without its writer nothing can run; every start says so.
                tracing::error!(error = %e, "cannot start the store's writer");
            }
        }
        Self {
            store,
            runner,
            running,
            token,
            events,
            broadcast,
            jobs,
            gates: Mutex::new(HashMap::new()),
            timers: Mutex::new(HashMap::new()),
            secrets_dir: None,
            loading: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Say whether the apps and playbooks are still loading: meanwhile, what is not
    /// found is answered 503 (it may be found in a moment), not 404.
    pub fn set_loading(&self, loading: bool) {
        self.loading
            .store(loading, std::sync::atomic::Ordering::Release);
    }

    /// The same service, letting assets created through the API read secrets from the
    /// files of `dir` (and nowhere else on the server).
    #[must_use]
    pub fn with_secrets_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.secrets_dir = dir;
        self
    }

    /// Serve the playbooks created through the API in earlier runs, kept in the store
    /// (those from the playbooks directory are loaded from their files). One that no
    /// longer validates (an app gone) is skipped, saying why on stderr.
    pub fn load_stored_playbooks(&self) -> Result<(), store::Error> {
        let mut pending: Vec<store::PlaybookRecord> = self
            .store
            .playbooks()?
            .into_iter()
            .filter(|p| p.source == "api" && self.runner.playbook(&p.xid).is_none())
            .collect();
        // A playbook may call another stored one: load until no more can be.
        loop {
            let before = pending.len();
            let mut failed = Vec::new();
            for record in pending {
                match validate_body(self, record.steps.to_string().as_bytes()) {
                    Ok((playbook, _)) => self.runner.set_playbook(Arc::new(playbook)),
                    Err(e) => failed.push((record, e)),
                }
            }
            if failed.len() == before || failed.is_empty() {
                for (record, error) in &failed {
                    eprintln!(
                        "playbook `{}` from the database cannot be served: {error}",
                        record.xid
                    );
                }
                return Ok(());
            }
            pending = failed.into_iter().map(|(record, _)| record).collect();
        }
    }

    /// Use the assets created through the API, kept in the store.
    pub fn load_stored_assets(&self) -> Result<(), store::Error> {
        assets::load_stored(self)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Start an execution of playbook `xid`.
    pub async fn run(
        self: &Arc<Self>,
        xid: &str,
        trigger: Value,
        trigger_type: TriggerType,
        log_level: Option<LogLevel>,
        report: Report,
    ) -> Result<Started, ApiError> {
        let playbook = self
            .runner
            .playbook(xid)
            .ok_or_else(|| ApiError::NotFound(format!("there is no playbook `{xid}`")))?;
        if !playbook.enabled {
            return Err(ApiError::Conflict(format!(
                "playbook `{xid}` is disabled; set `enabled: true` to run it"
            )));
        }
        if let Some(unmet) = self.runner.unmet_requirements(&playbook) {
            return Err(ApiError::Conflict(unmet));
        }
        let start = Start {
            trigger_type,
            log_level,
            ..Start::new(trigger)
        };
        self.start(playbook, start, report).await
    }

    /// Start an execution of `playbook` from `start`; it is stored whole when it ends.
    /// With [`Report::Start`] it is recorded Queued or Running before this returns.
    ///
    /// The execution's own task records its start and runs it: a caller who goes away (a
    /// client hanging up, a timer stopped) never leaves a recorded start without its
    /// execution, and the steps begin the moment the start is stored (or at once, see
    /// [`Report::End`]), without waiting for this caller to be scheduled again.
    pub async fn start(
        self: &Arc<Self>,
        playbook: Arc<Playbook>,
        mut start: Start,
        report: Report,
    ) -> Result<Started, ApiError> {
        use futures_util::FutureExt as _;
        start.events = Some(self.events.clone());
        // Over its playbook's limit, an execution waits as Queued: it takes its place in
        // the (fair) line now, so that queued executions start in the order they came.
        let (mut permit, mut waiting) = (None, None);
        if let Some(limit) = playbook.max_concurrent {
            let mut acquire = Box::pin(self.gate(&playbook.id, limit).acquire_owned());
            match (&mut acquire).now_or_never() {
                Some(ready) => permit = ready.ok(),
                None => waiting = Some(acquire),
            }
        }
        let queued = waiting.is_some();
        let new = NewExecution {
            header: start.header(&playbook),
            status: if queued {
                ExecutionStatus::Queued
            } else {
                ExecutionStatus::Running
            },
        };
        let id = start.id.clone();
        // Killable from the moment it is reported.
        crate::lock(&self.running).insert(id.clone(), start.kill.clone());
        // Whether the steps wait for the start to be stored: when someone is told of it
        // sooner than its end, or a step could act outside wasp (and a crash must not
        // leave that act without a trace).
        let urgent = report == Report::Start || queued || playbook.reaches_out();
        let (recorded, number) = oneshot::channel();
        let service = Arc::clone(self);
        let done = tokio::spawn(async move {
            let id = start.id.clone();
            // Kept only to record the start again as Running once a queued one may run.
            let queued_start = waiting.is_some().then(|| new.clone());
            if let Some(answer) = service.send_start(new, urgent) {
                let answer = answer
                    .await
                    .unwrap_or_else(|_| Err("the store's writer is not running".to_owned()));
                let failed = answer.is_err();
                if failed {
                    crate::lock(&service.running).remove(&id);
                }
                let _ = recorded.send(answer);
                if failed {
                    return None;
                }
            }
            // Held until the execution is stored; a kill while queued ends the wait (and
            // the execution, at once).
            if let (Some(acquire), Some(new)) = (waiting, queued_start) {
                permit = tokio::select! {
                    acquired = acquire => acquired.ok(),
                    () = start.kill.cancelled() => None,
                };
                if permit.is_some() {
                    let running = NewExecution {
                        status: ExecutionStatus::Running,
                        ..new
                    };
                    if let Some(answer) = service.send_start(running, playbook.reaches_out()) {
                        let _ = answer.await;
                    }
                }
            }
            let _permit = permit;
            let mut execution =
                Box::new(engine::execute(Arc::clone(&service.runner), playbook, start).await);
            // A batch that fails rolls back whole, so trying again is safe.
            let mut num = None;
            for attempt in 1..=3 {
                let (reply, stored) = oneshot::channel();
                if let Err(mpsc::error::SendError(Job::Finish(back, _))) =
                    service.jobs.send(Job::Finish(execution, reply))
                {
                    tracing::error!(execution = %id, "the store's writer is not running");
                    execution = back;
                    break;
                }
                match stored.await {
                    Ok((Ok(stored), back)) => {
                        execution = back;
                        num = Some(stored);
                        break;
                    }
                    Ok((Err(e), back)) => {
                        execution = back;
                        tracing::error!(execution = %id, attempt, error = %e, "storing a finished execution failed");
                        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                    }
                    Err(e) => {
                        // The writer went away holding the execution: nothing more can
                        // be stored or told of it.
                        tracing::error!(execution = %id, error = %e, "the store's writer stopped");
                        crate::lock(&service.running).remove(&id);
                        return None;
                    }
                }
            }
            crate::lock(&service.running).remove(&id);
            service.ended(&execution);
            num.map(|num| (num, *execution))
        });
        if report == Report::End {
            return Ok(Started {
                id,
                num: None,
                queued,
                done,
            });
        }
        match number.await {
            Ok(Ok(num)) => Ok(Started {
                id,
                num: Some(num),
                queued,
                done,
            }),
            Ok(Err(e)) => Err(ApiError::Internal(e)),
            Err(e) => Err(ApiError::Internal(e.to_string())),
        }
    }

    /// Send the start of `execution` to the writer; when the caller `waits` for it to be
    /// stored, the answer to await (its numeric id).
    fn send_start(
        &self,
        execution: NewExecution,
        waits: bool,
    ) -> Option<oneshot::Receiver<Result<i64, String>>> {
        let (reply, answer) = waits.then(oneshot::channel).unzip();
        let _ = self.jobs.send(Job::Start { execution, reply });
        answer
    }

    /// The gate of playbook `xid` for `limit` executions at once (a new one when the
    /// limit changed: executions holding the old one finish under it).
    fn gate(&self, xid: &str, limit: usize) -> Arc<tokio::sync::Semaphore> {
        let mut gates = crate::lock(&self.gates);
        match gates.get(xid) {
            Some((old, gate)) if *old == limit => Arc::clone(gate),
            _ => {
                let gate = Arc::new(tokio::sync::Semaphore::new(limit));
                gates.insert(xid.to_owned(), (limit, Arc::clone(&gate)));
                gate
            }
        }
    }

    /// Announce that `execution` and its children ended (after they were stored).
    fn ended(&self, execution: &Execution) {
        // Nobody listening is the common case: then there is nothing to send.
        if self.broadcast.receiver_count() == 0 {
            return;
        }
        // Nothing to store (the record is): straight to the streams, after the
        // execution's node events, which were broadcast before its record was answered.
        let _ = self.broadcast.send(Arc::new(Event::ExecutionEnded {
            execution_id: execution.header.id.clone(),
            status: execution.status,
            at: execution.completed_at,
        }));
        for child in &execution.children {
            self.ended(child);
        }
    }

    /// Kill the running execution `id`; false when it is not running.
    pub fn kill(&self, id: &str) -> bool {
        match crate::lock(&self.running).get(id) {
            Some(kill) => {
                kill.cancel();
                true
            }
            None => false,
        }
    }

    /// Run `call` on the store on Tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, store::Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(&*store))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// A TQL query does not parse or does not fit the fields.
    #[error("invalid TQL query: {0}")]
    Tql(#[from] tql::Error),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// It cannot be done in the thing's current state.
    #[error("{0}")]
    Conflict(String),
    /// No valid token.
    #[error("this server requires `Authorization: Bearer <token>`")]
    Unauthorized,
    /// Refused whoever asks: the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// The request names the server by a name it does not answer to (`Host`).
    #[error("{0}")]
    MisdirectedHost(String),
    /// It cannot be done now for a reason on the server's side, which its log names.
    #[error("{0}")]
    Unavailable(String),
    /// wasp failed; the cause is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Tql(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        let status = self.status();
        (
            status,
            Json(json!({"error": self.to_string(), "status": status.as_u16()})),
        )
            .into_response()
    }
}

/// An error in ThreatConnect's shape: `{"errCode", "message", "status": "Error"}`.
struct TcError(ApiError);

impl IntoResponse for TcError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self.0 {
            tracing::error!(error = %cause, "request failed");
        }
        // 0x2001 is ThreatConnect's code for a TQL syntax error.
        let code = match &self.0 {
            ApiError::Tql(_) => "0x2001",
            ApiError::NotFound(_) => "0x1004",
            ApiError::Unauthorized | ApiError::Forbidden(_) | ApiError::MisdirectedHost(_) => {
                "0x1001"
            }
            ApiError::BadRequest(_) | ApiError::Conflict(_) => "0x1002",
            ApiError::Internal(_) | ApiError::Unavailable(_) => "0x1000",
        };
        let body = json!({"errCode": code, "message": self.0.to_string(), "status": "Error"});
        (self.0.status(), Json(body)).into_response()
    }
}

impl From<ApiError> for TcError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

/// The router over `service`, every route under its limits.
pub fn router(service: Arc<Service>) -> Router {
    let limited = Router::new()
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        .route(
            "/api/v1/playbooks",
            get(list_playbooks).post(create_playbook),
        )
        .route(
            "/api/v1/playbooks/{id}",
            get(get_playbook)
                .put(update_playbook)
                .delete(delete_playbook),
        )
        .route("/api/v1/assets", get(assets::list).post(assets::create))
        .route(
            "/api/v1/assets/{name}",
            get(assets::get).put(assets::put).delete(assets::delete),
        )
        .route("/api/v1/executions", get(list_executions))
        .route("/api/v1/executions/{id}", get(get_execution))
        .route("/api/v1/executions/{id}/kill", post(kill_execution))
        .route(
            "/api/v1/executions/{id}/steps/{node}/replay",
            post(replay_step),
        )
        .route("/api/v1/executions/{id}/steps", get(execution_steps))
        .route("/api/v1/executions/{id}/logs", get(execution_logs))
        .route("/api/v1/executions/{id}/oslogs.zip", get(execution_os_logs))
        .route("/api/v1/steps", get(list_steps))
        .route("/api/v1/logs", get(list_logs))
        .route(
            "/api/v3/playbook/executions",
            get(tc_list).options(tc_fields),
        )
        .route(
            "/api/v3/playbook/executions/tql",
            axum::routing::options(tc_tql),
        )
        .route("/api/v3/playbook/executions/{id}", get(tc_get))
        .route("/rest/action_run", post(soar::create))
        .route("/rest/action_run/{id}", get(soar::get).post(soar::cancel))
        .route("/rest/action_run/{id}/app_runs", get(soar::app_runs_of))
        .route("/rest/app_run", get(soar::all_app_runs))
        .route("/rest/app_run/{id}", get(soar::app_run))
        .route(
            "/rest/app_run/{id}/action_result",
            get(soar::action_results),
        )
        .route(
            "/v1/{project_id}/workspaces/{workspace_id}/soc/playbooks/instances/auditlogs",
            post(secmaster::audit_logs),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    // Runs that wait and event streams last as long as executions do.
    Router::new()
        .route("/api/v1/playbooks/{id}/run", post(run_playbook))
        .route("/api/v1/executions/{id}/events", get(execution_events))
        .route("/api/v1/events", get(all_events).post(triggers::event))
        .merge(limited)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&service),
            authorize,
        ))
        // The page holds no data: it asks for the token and sends it with each call.
        .merge(web::router())
        // A signed webhook is authenticated by its signature; the handler asks for the
        // token otherwise.
        .route("/api/v1/hooks/{id}", post(triggers::hook))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&service),
            while_loading,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            listen::BODY_TIMEOUT,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(service)
}

/// Serve the API of `service` on `listener` under `edge`'s bounds (the names it answers
/// to, its connections and their timeouts) until `shutdown` resolves, then let requests
/// in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    edge: Edge,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let edge = Arc::new(edge);
    let router = router(service).layer(middleware::from_fn_with_state(
        Arc::clone(&edge),
        listen::check_host,
    ));
    listen::serve(listener, router, &edge, shutdown).await
}

/// While the apps and playbooks load, what is not found may be found in a moment: a
/// 404 becomes a 503 that says so.
async fn while_loading(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::NOT_FOUND
        && service.loading.load(std::sync::atomic::Ordering::Acquire)
    {
        let mut refused = ApiError::Unavailable(
            "wasp is still loading its apps and playbooks; ask again in a moment".to_owned(),
        )
        .into_response();
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return refused;
    }
    response
}

async fn authorize(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    if let Some(refused) = cross_site(request.method(), request.headers()) {
        return ApiError::Forbidden(refused).into_response();
    }
    if let Err(refused) = service.check_token(request.headers()) {
        return refused.into_response();
    }
    next.run(request).await
}

/// Why a request that changes something comes from another site's page, if it does:
/// a browser sends such a request (a plain form post carries no token and needs no
/// preflight) to any server, loopback included, so it is refused. Clients that are not
/// browsers send no `Origin`, and the page's own requests are same-origin.
fn cross_site(method: &Method, headers: &axum::http::HeaderMap) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Some("a request from another site's page is refused".to_owned());
    }
    let origin = text(header::ORIGIN)?;
    let host = text(header::HOST).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (origin_host != host).then(|| {
        format!("a request from the page of `{origin}` is refused: only this server's own page may change things here")
    })
}

/// Compare without an early exit, so that response times do not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("there is no route {method} {}", uri.path()))
}

type Params = Query<HashMap<String, String>>;

/// Query parameter `name` as a number in `range`, or `default`.
fn number_param(
    params: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(default);
    };
    match text.trim().parse::<i64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "`{name}` is `{text}`; it must be a whole number from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "`{name}` is `{other}`; it must be true or false"
        ))),
    }
}

async fn list_playbooks(State(service): State<Arc<Service>>) -> Result<Json<Value>, ApiError> {
    let (playbooks, mut stats) = service
        .blocking(|store| {
            let playbooks = store.playbooks()?;
            let xids: Vec<String> = playbooks.iter().map(|p| p.xid.clone()).collect();
            Ok((playbooks, triggers::stats_of(store, &xids)?))
        })
        .await?;
    let data: Vec<Value> = playbooks
        .into_iter()
        .map(|playbook| {
            let stats = stats.remove(&playbook.xid).unwrap_or_default();
            let mut record = serde_json::to_value(playbook).unwrap_or_default();
            triggers::enrich(&service, &mut record, stats);
            record
        })
        .collect();
    Ok(Json(json!({"count": data.len(), "data": data})))
}

async fn get_playbook(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let (playbook, stats) = service
        .blocking(move |store| {
            let playbook = store.playbook(&key)?.filter(|p| !p.is_deleted);
            let stats = match &playbook {
                Some(p) => store.run_stats(&p.xid)?,
                None => Value::Null,
            };
            Ok((playbook, stats))
        })
        .await?;
    let playbook =
        playbook.ok_or_else(|| ApiError::NotFound(format!("there is no playbook `{id}`")))?;
    let mut record = serde_json::to_value(playbook).unwrap_or_default();
    triggers::enrich(&service, &mut record, stats);
    Ok(Json(record))
}

/// A JSON request body; an empty one is `{}`.
fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

async fn run_playbook(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let trigger = json_body(&body)?;
    let log_level = match params.get("log_level") {
        None => None,
        Some(level) => Some(
            level
                .parse::<LogLevel>()
                .map_err(|e| ApiError::BadRequest(format!("`log_level`: {e}")))?,
        ),
    };
    let trigger_type = if flag(&params, "debug")? {
        TriggerType::Debug
    } else {
        TriggerType::Manual
    };
    let log_level = if trigger_type == TriggerType::Debug {
        Some(LogLevel::Trace)
    } else {
        log_level
    };
    // The XID, or the string or numeric id the store knows it by.
    let key = id.clone();
    let xid = match service.runner.playbook(&id).is_some() {
        true => id,
        false => service
            .blocking(move |store| store.playbook(&key))
            .await?
            .map(|p| p.xid)
            .ok_or_else(|| ApiError::NotFound(format!("there is no playbook `{id}`")))?,
    };
    let wait = flag(&params, "wait")?;
    let started = service
        .run(&xid, trigger, trigger_type, log_level, Report::when(wait))
        .await?;
    answer_started(started, wait).await
}

/// The answer to a request that started an execution: at once (202, its ids), or when
/// it has ended (200, its whole record) when the caller waits.
async fn answer_started(started: Started, wait: bool) -> Result<Response, ApiError> {
    if wait {
        let (num, execution) = started
            .done
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or_else(|| ApiError::Internal("the execution was not recorded".to_owned()))?;
        let mut record = serde_json::to_value(&execution).unwrap_or_default();
        record["num"] = json!(num);
        return Ok((StatusCode::OK, Json(record)).into_response());
    }
    let body = json!({
        "execution_id": started.id,
        "id": started.num,
        "status": started.status(),
        "links": {"execution": format!("/api/v1/executions/{}", started.id)},
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /api/v1/executions?tql=&offset=&limit=&sort=&count=true`: a page of
/// executions, newest first; `more` says whether another page follows, and `count`
/// (when asked for: it reads every match) how many match in all.
async fn list_executions(
    State(service): State<Arc<Service>>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filter = ExecutionFilter {
        tql: tql_param(&params, EXECUTION_FIELDS)?,
    };
    let window = window(&params, Sort::NewestFirst)?;
    let count = flag(&params, "count")?;
    let page = service
        .blocking(move |store| store.executions(&filter, window, count))
        .await?;
    let mut body = json!({"more": page.more, "data": page.rows});
    if let Some(total) = page.total {
        body["count"] = json!(total);
    }
    Ok(Json(body))
}

async fn get_execution(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let (row, record) = service
        .blocking(move |store| Ok((store.execution(&key)?, store.execution_record(&key)?)))
        .await?;
    let (Some(row), Some(record)) = (row, record) else {
        return Err(ApiError::NotFound(format!("there is no execution `{id}`")));
    };
    let mut record = match record {
        ExecutionRecord::Ended(record) => record,
        ExecutionRecord::Unfinished(unfinished) => {
            // Still running: what it has done so far.
            let key = row.header.id.clone();
            let nodes = service
                .blocking(move |store| store.node_states(&key))
                .await?;
            let mut record = json!(unfinished);
            record["nodes"] = json!(nodes);
            record
        }
    };
    record["num"] = json!(row.num);
    if let Some(playbook) = service.runner.playbook(&row.header.playbook_id) {
        record["graph"] = graph(&playbook);
    }
    Ok(Json(record))
}

/// A playbook's nodes and edges, for a client to draw.
fn graph(playbook: &Playbook) -> Value {
    use petgraph::visit::EdgeRef;
    let nodes: Vec<Value> = playbook
        .graph
        .node_weights()
        .map(|node| {
            let (kind, app, action) = match &node.kind {
                NodeKind::Trigger => ("trigger", None, None),
                NodeKind::App { app, action } => ("app", Some(app), Some(action)),
                NodeKind::Operator { app, action } => ("operator", Some(app), Some(action)),
                NodeKind::Playbook { id } => ("playbook", Some(id), None),
            };
            json!({"id": node.id, "kind": kind, "app": app, "action": action,
                   "for_each": node.for_each.is_some()})
        })
        .collect();
    let edges: Vec<Value> = playbook
        .graph
        .edge_references()
        .map(|e| {
            json!({
                "from": playbook.graph[e.source()].id,
                "to": playbook.graph[e.target()].id,
                "on": e.weight().to_string(),
            })
        })
        .collect();
    json!({"nodes": nodes, "edges": edges})
}

async fn kill_execution(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    // Read before answering, though ignored: hyper closes a keep-alive connection
    // whose request body has not arrived when the answer is sent, and a client reusing
    // it then fails ("peer disconnected").
    _body: Bytes,
) -> Result<Response, ApiError> {
    let key = id.clone();
    let row = service
        .blocking(move |store| store.execution(&key))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no execution `{id}`")))?;
    if service.kill(&row.header.id) {
        let body = json!({"killed": true, "execution_id": row.header.id});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    Err(ApiError::Conflict(format!(
        "execution `{}` is not running: it is {}",
        row.header.id,
        serde_json::to_value(row.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    )))
}

fn tc_time(time: Option<DateTime<Utc>>) -> Option<String> {
    time.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// An execution in ThreatConnect's shape (seed 000): a time that is not set is
/// absent, not null, as in the seed's failed example.
fn tc_record(row: &ExecutionRow) -> Value {
    let mut record = serde_json::Map::new();
    record.insert("id".to_owned(), json!(row.num));
    if let Some(num) = row.playbook_num {
        record.insert("playbookId".to_owned(), json!(num));
    }
    record.insert("playbookXid".to_owned(), json!(row.header.playbook_id));
    if let Some(time) = tc_time(row.completed_at) {
        record.insert("completedTime".to_owned(), json!(time));
    }
    record.insert(
        "logLevel".to_owned(),
        json!(row.header.log_level.to_string().to_ascii_uppercase()),
    );
    record.insert(
        "status".to_owned(),
        serde_json::to_value(row.status).unwrap_or_default(),
    );
    if let Some(time) = tc_time(Some(row.header.queued_at)) {
        record.insert("queueTime".to_owned(), json!(time));
    }
    if let Some(time) = tc_time(row.started_at) {
        record.insert("startTime".to_owned(), json!(time));
    }
    Value::Object(record)
}

async fn tc_list(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Json<Value>, TcError> {
    let start = number_param(&params, "resultStart", 0, 0..=i64::MAX)?;
    let limit = number_param(&params, "resultLimit", 100, 1..=10_000)?;
    let sort = match params.get("sorting").map(|s| s.to_ascii_lowercase()) {
        None => Sort::NewestFirst,
        Some(s) if s == "id asc" => Sort::OldestFirst,
        Some(s) if s == "id desc" || s == "id" => Sort::NewestFirst,
        Some(s) => {
            return Err(ApiError::BadRequest(format!(
                "`sorting` is `{s}`; wasp sorts executions by `id asc` or `id desc`"
            ))
            .into());
        }
    };
    // The count of every match only when asked for (`count=true`), and as ThreatConnect
    // does, only on the first page.
    let count = flag(&params, "count")? && start == 0;
    let filter = ExecutionFilter {
        tql: tql_param(&params, EXECUTION_FIELDS)?,
    };
    let window = Window {
        offset: start,
        limit,
        sort,
    };
    let page = service
        .blocking(move |store| store.executions(&filter, window, count))
        .await?;
    // ThreatConnect: "the total number of failed and successful executions included in
    // the API response".
    let success = page
        .rows
        .iter()
        .filter(|r| r.status == ExecutionStatus::Completed)
        .count();
    let failure = page
        .rows
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                ExecutionStatus::Failed
                    | ExecutionStatus::PartiallyFailed
                    | ExecutionStatus::Killed
            )
        })
        .count();
    let mut body = json!({
        "data": page.rows.iter().map(tc_record).collect::<Vec<_>>(),
        "status": "Success",
        "countSuccess": success,
        "countFailure": failure,
    });
    if let Some(total) = page.total {
        body["count"] = json!(total);
    }
    let link = |offset: i64| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let mut query: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k.as_str() != "resultStart")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.sort();
        query.push(("resultStart".to_owned(), offset.to_string()));
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!(
            "http://{host}/api/v3/playbook/executions?{}",
            encoded.join("&")
        )
    };
    if page.more {
        body["next"] = json!(link(start + limit));
    }
    if start > 0 {
        body["prev"] = json!(link((start - limit).max(0)));
    }
    Ok(Json(body))
}

/// Percent-encode a query component.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

async fn tc_get(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, TcError> {
    let key = id.clone();
    let row = service
        .blocking(move |store| store.execution(&key))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no execution `{id}`")))?;
    Ok(Json(json!({"data": tc_record(&row), "status": "Success"})))
}

/// `OPTIONS /api/v3/playbook/executions?show=readonly`: the record's fields.
async fn tc_fields(Query(params): Params) -> Result<Json<Value>, TcError> {
    let show = params.get("show").map(|s| s.to_ascii_lowercase());
    if show.as_deref() != Some("readonly") {
        return Err(ApiError::BadRequest(
            "OPTIONS on this endpoint describes its fields: add `?show=readonly`".to_owned(),
        )
        .into());
    }
    let fields = [
        ("id", "Integer", "The Playbook execution's ID number."),
        (
            "playbookId",
            "Integer",
            "The ID number of the Playbook that was executed.",
        ),
        (
            "playbookXid",
            "String",
            "The XID of the Playbook that was executed.",
        ),
        (
            "completedTime",
            "DateTime",
            "The date and time when the Playbook execution completed.",
        ),
        (
            "logLevel",
            "String",
            "The log level used during the Playbook execution.",
        ),
        ("status", "String", "The Playbook execution's status."),
        (
            "queueTime",
            "DateTime",
            "The date and time when the Playbook execution was queued.",
        ),
        (
            "startTime",
            "DateTime",
            "The date and time when the Playbook execution started.",
        ),
    ];
    let data: Vec<Value> = fields
        .iter()
        .map(|(name, kind, description)| {
            json!({"name": name, "type": kind, "description": description, "readOnly": true})
        })
        .collect();
    Ok(Json(
        json!({"data": data, "count": data.len(), "status": "Success"}),
    ))
}

/// `OPTIONS /api/v3/playbook/executions/tql`: the TQL parameters and their types.
async fn tc_tql() -> Json<Value> {
    let data: Vec<Value> = EXECUTION_FIELDS
        .iter()
        .map(|field| {
            let mut entry = json!({
                "keyword": field.keyword,
                "name": field.keyword,
                "type": field.kind.name(),
                "description": field.description,
            });
            if let tql::Type::Enum(words) = field.kind {
                entry["options"] = json!(words);
            }
            entry
        })
        .collect();
    Json(json!({"data": data, "count": data.len(), "status": "Success"}))
}

/// The names of the events a stream carries.
const EVENT_TYPES: [&str; 4] = [
    "node_started",
    "node_ended",
    "step_ended",
    "execution_ended",
];

/// The SSE event name of `event`.
fn event_type(event: &Event) -> &'static str {
    match event {
        Event::NodeStarted { .. } => EVENT_TYPES[0],
        Event::NodeEnded { .. } => EVENT_TYPES[1],
        Event::StepEnded { .. } => EVENT_TYPES[2],
        Event::ExecutionEnded { .. } => EVENT_TYPES[3],
    }
}

/// One SSE message for `event`.
fn sse(event: &Event) -> SseEvent {
    let name = event_type(event);
    SseEvent::default()
        .event(name)
        .json_data(event)
        .unwrap_or_else(|_| SseEvent::default().event(name))
}

/// What a stream reads next from the broadcast.
enum Received {
    /// An event it wants.
    Event(Arc<Event>),
    /// It fell behind and missed this many events.
    Lagged(u64),
}

impl Received {
    /// The SSE message: the event, or `lagged` with the count, so that a client can
    /// reload.
    fn message(&self) -> SseEvent {
        match self {
            Received::Event(event) => sse(event),
            Received::Lagged(missed) => SseEvent::default()
                .event("lagged")
                .data(format!("{{\"missed\": {missed}}}")),
        }
    }
}

/// The next event of `receiver` that `keep` accepts; `None` when the server stops.
async fn next_event(
    receiver: &mut broadcast::Receiver<Arc<Event>>,
    keep: impl Fn(&Event) -> bool,
) -> Option<Received> {
    loop {
        match receiver.recv().await {
            Ok(event) if keep(&event) => return Some(Received::Event(event)),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                return Some(Received::Lagged(missed));
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, Infallible>> + Send>>;
type EventStream = Sse<KeepAliveStream<Events>>;

/// `GET /api/v1/executions/{id}/events`: a `snapshot` of the execution now, then its
/// events as they happen, ending after `execution_ended`.
async fn execution_events(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<EventStream, ApiError> {
    // Subscribe before reading the state, so that nothing falls between the two.
    let receiver = service.broadcast.subscribe();
    let key = id.clone();
    let (row, nodes) = service
        .blocking(move |store| {
            let row = store.execution(&key)?;
            let nodes = match &row {
                Some(row) => match store.execution_record(&row.header.id)? {
                    Some(ExecutionRecord::Ended(record)) => record["nodes"].clone(),
                    _ => json!(store.node_states(&row.header.id)?),
                },
                None => Value::Null,
            };
            Ok((row, nodes))
        })
        .await?;
    let row = row.ok_or_else(|| ApiError::NotFound(format!("there is no execution `{id}`")))?;
    let snapshot = SseEvent::default()
        .event("snapshot")
        .json_data(json!({"execution": row, "nodes": nodes}))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let finished = !matches!(
        row.status,
        ExecutionStatus::Running | ExecutionStatus::Queued
    );
    let execution_id = row.header.id;
    let stream = futures_util::stream::unfold(
        (receiver, Some(snapshot), finished),
        move |(mut receiver, first, done)| {
            let execution_id = execution_id.clone();
            let service = Arc::clone(&service);
            async move {
                if let Some(first) = first {
                    return Some((Ok(first), (receiver, None, done)));
                }
                if done {
                    return None;
                }
                let next = next_event(&mut receiver, |e| e.execution_id() == execution_id).await?;
                let ended = if let Received::Event(event) = &next {
                    matches!(&**event, Event::ExecutionEnded { .. })
                } else {
                    // The end may be among the missed events: ask the store.
                    let key = execution_id.clone();
                    service
                        .blocking(move |store| store.execution(&key))
                        .await
                        .ok()
                        .flatten()
                        .is_none_or(|row| {
                            !matches!(
                                row.status,
                                ExecutionStatus::Running | ExecutionStatus::Queued
                            )
                        })
                };
                Some((Ok(next.message()), (receiver, None, ended)))
            }
        },
    );
    Ok(Sse::new(Box::pin(stream) as Events).keep_alive(KeepAlive::default()))
}

/// `GET /api/v1/events`: every execution's events as they happen.
/// `GET /api/v1/events[?types=node_started,execution_ended]`: every execution's events,
/// or only those of the named types (a list page needs starts and ends, not every
/// step's log lines).
async fn all_events(
    State(service): State<Arc<Service>>,
    Query(params): Params,
) -> Result<EventStream, ApiError> {
    let types: Option<Vec<String>> = match params.get("types") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|name| {
                    let name = name.trim();
                    if EVENT_TYPES.contains(&name) {
                        Ok(name.to_owned())
                    } else {
                        Err(ApiError::BadRequest(format!(
                            "`types`: `{name}` is not an event type; expected {}",
                            EVENT_TYPES.join(", ")
                        )))
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let receiver = service.broadcast.subscribe();
    let stream =
        futures_util::stream::unfold((receiver, types), |(mut receiver, types)| async move {
            let keep = |event: &Event| {
                types
                    .as_ref()
                    .is_none_or(|types| types.iter().any(|t| t == event_type(event)))
            };
            let next = next_event(&mut receiver, keep).await?;
            Some((Ok(next.message()), (receiver, types)))
        });
    Ok(Sse::new(Box::pin(stream) as Events).keep_alive(KeepAlive::default()))
}

/// The window and order of a list: `offset`, `limit` (1 to 10,000), `sort` asc|desc.
fn window(params: &HashMap<String, String>, default_sort: Sort) -> Result<Window, ApiError> {
    Ok(Window {
        offset: number_param(params, "offset", 0, 0..=i64::MAX)?,
        limit: number_param(params, "limit", 100, 1..=10_000)?,
        sort: match params.get("sort").map(String::as_str) {
            None => default_sort,
            Some("desc") => Sort::NewestFirst,
            Some("asc") => Sort::OldestFirst,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "`sort` is `{other}`; it must be asc or desc"
                )));
            }
        },
    })
}

/// The string id of execution `key` (a string or numeric id), or 404.
async fn execution_id(service: &Arc<Service>, key: &str) -> Result<String, ApiError> {
    let lookup = key.to_owned();
    service
        .blocking(move |store| store.execution(&lookup))
        .await?
        .map(|row| row.header.id)
        .ok_or_else(|| ApiError::NotFound(format!("there is no execution `{key}`")))
}

/// The checked TQL condition of `params["tql"]` over `schema`; `None` (everything) when
/// there is none.
fn tql_param<F: Copy>(
    params: &HashMap<String, String>,
    schema: tql::Schema<F>,
) -> Result<Option<tql::Condition<F>>, ApiError> {
    let text = params.get("tql").map_or("", String::as_str);
    Ok(tql::condition(text, schema, Utc::now())?)
}

/// `GET /api/v1/steps?tql=…`: step runs across executions.
async fn list_steps(
    State(service): State<Arc<Service>>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filter = StepFilter {
        tql: tql_param(&params, STEP_FIELDS)?,
        ..StepFilter::default()
    };
    let window = window(&params, Sort::NewestFirst)?;
    let (rows, total) = service
        .blocking(move |store| store.step_runs(&filter, window))
        .await?;
    Ok(Json(json!({"count": total, "data": rows})))
}

/// `GET /api/v1/executions/{id}/steps[?node=…&tql=…]`: every step run of an execution
/// (each iteration and attempt), in the order they ended, with what was captured.
async fn execution_steps(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let id = execution_id(&service, &id).await?;
    let filter = StepFilter {
        tql: tql_param(&params, STEP_FIELDS)?,
        execution: Some(id),
        node: params.get("node").cloned(),
    };
    let window = window(&params, Sort::OldestFirst)?;
    let (rows, total) = service
        .blocking(move |store| store.step_runs(&filter, window))
        .await?;
    Ok(Json(json!({"count": total, "data": rows})))
}

/// The filter of a log query: TQL over [`LOG_FIELDS`], plus `level` (that level and
/// above), `q` (text the message contains), `node` and `iteration` (of a `for_each`).
fn log_filter(params: &HashMap<String, String>) -> Result<LogFilter, ApiError> {
    let tql = tql_param(params, LOG_FIELDS)?;
    let level_at_least = params
        .get("level")
        .map(|level| level.parse::<LogLevel>())
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("`level`: {e}")))?;
    let iteration = params
        .contains_key("iteration")
        .then(|| number_param(params, "iteration", 0, 0..=i64::MAX))
        .transpose()?;
    Ok(LogFilter {
        tql,
        execution: None,
        node: params.get("node").cloned(),
        iteration,
        level_at_least,
        message_contains: params.get("q").filter(|q| !q.is_empty()).cloned(),
    })
}

/// `GET /api/v1/logs?tql=…`: app log lines across executions.
async fn list_logs(
    State(service): State<Arc<Service>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let filter = log_filter(&params)?;
    let window = window(&params, Sort::NewestFirst)?;
    logs_response(&service, filter, window, &params, "wasp-logs.csv").await
}

/// `GET /api/v1/executions/{id}/logs[?level=&q=&node=&format=csv]`: an execution's app
/// log lines, oldest first, as JSON or as a CSV download.
async fn execution_logs(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let id = execution_id(&service, &id).await?;
    let filter = LogFilter {
        execution: Some(id.clone()),
        ..log_filter(&params)?
    };
    let mut window = window(&params, Sort::OldestFirst)?;
    let csv = params.get("format").is_some_and(|f| f == "csv");
    if csv && !params.contains_key("limit") {
        // A download holds every line.
        window.limit = i64::MAX;
    }
    logs_response(&service, filter, window, &params, &format!("{id}-logs.csv")).await
}

async fn logs_response(
    service: &Arc<Service>,
    filter: LogFilter,
    window: Window,
    params: &HashMap<String, String>,
    file: &str,
) -> Result<Response, ApiError> {
    let (rows, total) = service
        .blocking(move |store| store.log_lines(&filter, window))
        .await?;
    match params.get("format").map(String::as_str) {
        None | Some("json") => Ok(Json(json!({"count": total, "data": rows})).into_response()),
        Some("csv") => {
            let body = logs_csv(&rows).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(download("text/csv; charset=utf-8", file, body))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "`format` is `{other}`; it must be json or csv"
        ))),
    }
}

/// A file download.
fn download(content_type: &'static str, file: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn logs_csv(rows: &[store::LogRow]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "ts",
        "level",
        "execution_id",
        "node",
        "iteration",
        "attempt",
        "message",
        "fields",
    ])?;
    for row in rows {
        let fields = row
            .fields
            .as_ref()
            .map(|fields| json!(fields).to_string())
            .unwrap_or_default();
        writer.write_record([
            row.ts.as_str(),
            row.level.as_str(),
            row.execution_id.as_str(),
            row.node.as_str(),
            &row.iteration.map(|i| i.to_string()).unwrap_or_default(),
            &row.attempt.to_string(),
            row.message.as_str(),
            &fields,
        ])?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// Every step run of execution `id` (of one node), oldest first.
async fn step_runs_of(
    service: &Arc<Service>,
    id: &str,
    node: Option<&str>,
) -> Result<Vec<StepRunRow>, ApiError> {
    let filter = StepFilter {
        tql: None,
        execution: Some(id.to_owned()),
        node: node.map(str::to_owned),
    };
    Ok(service
        .blocking(move |store| store.step_runs(&filter, Window::all(Sort::OldestFirst)))
        .await?
        .0)
}

/// `GET /api/v1/executions/{id}/oslogs.zip`: each step run's stdout and stderr (its
/// "OS logs") as files in a ZIP, with a README saying what was and was not captured.
async fn execution_os_logs(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = execution_id(&service, &id).await?;
    let steps = step_runs_of(&service, &id, None).await?;
    let zip = os_logs_zip(&id, &steps).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(download(
        "application/zip",
        &format!("{id}-oslogs.zip"),
        zip,
    ))
}

fn os_logs_zip(id: &str, steps: &[StepRunRow]) -> Result<Vec<u8>, zip::result::ZipError> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut readme = format!("OS logs (stdout and stderr) of the steps of execution {id}.\n\n");
    for StepRunRow { run: step, .. } in steps {
        let mut name = step.node.clone();
        if let Some(iteration) = step.iteration {
            name.push_str(&format!("-iteration{iteration}"));
        }
        name.push_str(&format!("-attempt{}", step.attempt));
        if !step.capture.data {
            readme.push_str(&format!(
                "{name}: not captured: OS logs are kept only when the execution runs at DEBUG \
                 or TRACE\n"
            ));
            continue;
        }
        for (stream, text) in [
            ("stdout", &step.report.stdout),
            ("stderr", &step.report.stderr),
        ] {
            zip.start_file(format!("{name}.{stream}.txt"), options)?;
            zip.write_all(text.as_bytes())?;
            let truncated = step.capture.truncated.contains(&stream);
            readme.push_str(&format!(
                "{name}.{stream}.txt: {} bytes{}\n",
                text.len(),
                if truncated {
                    ", cut at the capture cap"
                } else {
                    ""
                }
            ));
        }
    }
    zip.start_file("README.txt", options)?;
    zip.write_all(readme.as_bytes())?;
    Ok(zip.finish()?.into_inner())
}

/// The playbook in a request body (YAML or JSON), validated, and its definition as
/// JSON; every problem is named in the error. Parsing and validating a large body is
/// CPU work of up to a few milliseconds per thousand nodes: it runs on the blocking
/// pool, so that requests served meanwhile are not held behind it.
async fn validated(service: &Arc<Service>, body: Bytes) -> Result<(Playbook, Value), ApiError> {
    let service = Arc::clone(service);
    tokio::task::spawn_blocking(move || validate_body(&service, &body))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

fn validate_body(service: &Service, body: &[u8]) -> Result<(Playbook, Value), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".to_owned()))?;
    let spec = PlaybookSpec::parse("the request body", text)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // The definition as written, read by the parser that read the spec: the YAML
    // parser's budget (250,000 YAML nodes) would turn a large JSON body into nothing.
    let definition: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).unwrap_or_default()
    } else {
        serde_saphyr::from_str(text).unwrap_or_default()
    };
    let (apps, playbooks) = (service.runner.apps(), service.runner.playbook_ids());
    let catalog = Known {
        apps: &*apps,
        playbooks: &playbooks,
    };
    let mut playbook = Playbook::validate("the request body", spec, &catalog)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // A client names secrets as an API asset does: nothing else of the server's.
    if let Trigger::Webhook {
        secret: Some(secret),
    } = &mut playbook.trigger
    {
        *secret = secret
            .confined(service.secrets_dir.as_deref())
            .map_err(|e| ApiError::BadRequest(format!("`trigger.secret`: {e}")))?;
    }
    Ok((playbook, definition))
}

/// Refuse a playbook whose webhook secret cannot be read now: its hook could only
/// ever refuse.
fn check_secret_readable(playbook: &Playbook) -> Result<(), ApiError> {
    if let Trigger::Webhook {
        secret: Some(secret),
    } = &playbook.trigger
    {
        secret
            .read()
            .map_err(|e| ApiError::BadRequest(format!("`trigger.secret`: {e}")))?;
    }
    Ok(())
}

/// What the store keeps of `playbook`, defined by `steps` (the file as written), from
/// `source` (`file` or `api`). Here and not in `store`, so that the store need not know
/// the playbook model.
pub(crate) fn stored_fields<'a>(
    playbook: &'a Playbook,
    steps: &'a Value,
    source: &'a str,
) -> store::PlaybookFields<'a> {
    store::PlaybookFields {
        xid: &playbook.id,
        name: &playbook.name,
        description: &playbook.description,
        steps,
        source,
        category: playbook.labels.category.as_deref(),
        enabled: playbook.enabled,
        auto_execute: playbook.auto_execute,
        trigger_conditions: playbook.conditions.texts(),
        tags: &playbook.labels.tags,
        mitre_tactics: &playbook.labels.mitre_tactics,
        mitre_techniques: &playbook.labels.mitre_techniques,
        required_connector_ids: &playbook.labels.required_connector_ids,
    }
}

/// Store `playbook` and serve it from now on.
async fn save(
    service: &Arc<Service>,
    playbook: Playbook,
    definition: Value,
) -> Result<Value, ApiError> {
    let playbook = Arc::new(playbook);
    let saved = Arc::clone(&playbook);
    let record = service
        .blocking(move |store| store.save_playbook(&stored_fields(&saved, &definition, "api")))
        .await?;
    service.runner.set_playbook(Arc::clone(&playbook));
    service.schedule(&playbook);
    let mut record = serde_json::to_value(record).unwrap_or_default();
    triggers::enrich(service, &mut record, json!({}));
    Ok(record)
}

/// `POST /api/v1/playbooks`: a new playbook (YAML or JSON), validated before it is
/// stored.
async fn create_playbook(
    State(service): State<Arc<Service>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (playbook, definition) = validated(&service, body).await?;
    check_secret_readable(&playbook)?;
    let xid = playbook.id.clone();
    let key = xid.clone();
    let existing = service.blocking(move |store| store.playbook(&key)).await?;
    if existing.is_some_and(|p| !p.is_deleted) {
        return Err(ApiError::Conflict(format!(
            "a playbook `{xid}` exists; change it with PUT /api/v1/playbooks/{xid}"
        )));
    }
    let record = save(&service, playbook, definition).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `PUT /api/v1/playbooks/{id}`: replace a playbook's definition; its ids, stamps and
/// run history stay. Executions already running keep the version they started with.
async fn update_playbook(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let existing = service
        .blocking(move |store| store.playbook(&key))
        .await?
        .filter(|p| !p.is_deleted)
        .ok_or_else(|| ApiError::NotFound(format!("there is no playbook `{id}`")))?;
    let (playbook, definition) = validated(&service, body).await?;
    check_secret_readable(&playbook)?;
    if playbook.id != existing.xid {
        return Err(ApiError::BadRequest(format!(
            "the body is playbook `{}`, but this is playbook `{}`: a playbook's id (its XID) \
             does not change",
            playbook.id, existing.xid
        )));
    }
    Ok(Json(save(&service, playbook, definition).await?))
}

/// `DELETE /api/v1/playbooks/{id}`: a soft delete: the record and its executions stay,
/// it no longer runs.
async fn delete_playbook(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let deleted = service
        .blocking(move |store| store.delete_playbook(&key))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no playbook `{id}`")))?;
    service.runner.remove_playbook(&deleted.xid);
    service.unschedule(&deleted.xid);
    Ok(Json(serde_json::to_value(deleted).unwrap_or_default()))
}

/// `POST /api/v1/executions/{id}/steps/{node}/replay[?iteration=&attempt=&wait=true]`:
/// run one step again with the input it logged (ThreatConnect's run profiles), as a new
/// execution whose `replay_of` is the original. A body `{"input": …}` replaces the
/// logged input. The step runs with its node's current settings (app, action, asset,
/// timeout, retry), at the original execution's log level.
async fn replay_step(
    State(service): State<Arc<Service>>,
    Path((id, node)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = execution_id(&service, &id).await?;
    let original = {
        let key = id.clone();
        service
            .blocking(move |store| store.execution(&key))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("there is no execution `{id}`")))?
    };
    let runs = step_runs_of(&service, &id, Some(&node)).await?;
    let iteration = params
        .get("iteration")
        .map(|_| number_param(&params, "iteration", 0, 0..=i64::MAX))
        .transpose()?;
    let attempt = params
        .get("attempt")
        .map(|_| number_param(&params, "attempt", 1, 1..=i64::MAX))
        .transpose()?;
    // The last attempt of the chosen iteration (the first iteration when none is named).
    let runs = runs.iter().map(|r| &r.run);
    let run = runs
        .filter(|r| {
            iteration.is_none_or(|i| r.iteration.and_then(|n| i64::try_from(n).ok()) == Some(i))
        })
        .filter(|r| attempt.is_none_or(|a| i64::from(r.attempt) == a))
        .min_by_key(|r| (r.iteration, -i64::from(r.attempt)))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "execution `{id}` has no step run of node `{node}`{}{}",
                iteration.map_or_else(String::new, |i| format!(" iteration {i}")),
                attempt.map_or_else(String::new, |a| format!(" attempt {a}"))
            ))
        })?;
    let body = json_body(&body)?;
    let input = match body.get("input") {
        Some(input) => input.clone(),
        None => {
            if !run.capture.data {
                return Err(ApiError::Conflict(format!(
                    "the input of `{node}` was not logged: execution `{id}` ran at {}, and \
                     inputs are kept only at debug or trace. Send {{\"input\": …}} to replay \
                     with an input of your own",
                    original.header.log_level
                )));
            }
            if run.capture.truncated.contains(&"input") {
                return Err(ApiError::Conflict(format!(
                    "the logged input of `{node}` was cut at the capture cap; send \
                     {{\"input\": …}} to replay it whole"
                )));
            }
            run.input.clone().unwrap_or_default()
        }
    };
    let playbook = replay_playbook(&service, &original.header.playbook_id, &node).await?;
    let start = Start {
        trigger_type: TriggerType::Manual,
        log_level: Some(original.header.log_level),
        replay_of: Some(id),
        ..Start::new(input)
    };
    let wait = flag(&params, "wait")?;
    let started = service
        .start(Arc::new(playbook), start, Report::when(wait))
        .await?;
    answer_started(started, wait).await
}

/// A one-node playbook that runs node `node` of playbook `xid` (as stored now) on the
/// trigger: its input is `${trigger}`, so the logged input is passed as data and never
/// read as a template.
async fn replay_playbook(
    service: &Arc<Service>,
    xid: &str,
    node: &str,
) -> Result<Playbook, ApiError> {
    let key = xid.to_owned();
    let record = service
        .blocking(move |store| store.playbook(&key))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("there is no playbook `{xid}` to replay from"))
        })?;
    let Some(mut spec) = record.steps["nodes"].get(node).cloned() else {
        return Err(ApiError::NotFound(format!(
            "playbook `{xid}` has no node `{node}` any more"
        )));
    };
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("input".to_owned(), json!("${trigger}"));
        spec.remove("for_each");
        spec.remove("concurrency");
    }
    let mut definition = json!({
        "id": xid,
        "name": format!("{} (replay of `{node}`)", record.name),
        "trigger": {"type": "manual"},
        "nodes": {node: spec},
    });
    for field in ["max_runtime", "log_level"] {
        if let Some(value) = record.steps.get(field) {
            definition[field] = value.clone();
        }
    }
    let text = definition.to_string();
    let spec = PlaybookSpec::parse("the replayed node", &text)
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    let (apps, playbooks) = (service.runner.apps(), service.runner.playbook_ids());
    let catalog = Known {
        apps: &*apps,
        playbooks: &playbooks,
    };
    Playbook::validate("the replayed node", spec, &catalog)
        .map_err(|e| ApiError::Conflict(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
