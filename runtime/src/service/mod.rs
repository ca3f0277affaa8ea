//! The application core: what the HTTP server, the CLI (and later a worker) call to
//! run playbooks and keep their records. Starting, queueing behind a playbook's
//! `max_concurrent`, killing; the writer that stores what executions report, with
//! group commit ([`writer`]); the stored playbooks and assets; timers; replay; Splunk
//! SOAR's action runs.
//!
//! Nothing here speaks HTTP: failures are a [`Error`], which each API view renders in
//! its vendor's shape.

mod assets;
mod error;
pub mod jwt;
pub mod keys;
pub mod metrics;
mod playbooks;
mod replay;
pub mod soar;
mod triggers;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use error::Error;
pub use playbooks::{stored_fields, visible_to};
pub use replay::Which;

use crate::engine::{self, Start, StepRunner};
use crate::playbook::Playbook;
use crate::runner::HostRunner;
use crate::store::{self, NewExecution, Store};
use crate::trace::{Event, Execution, ExecutionStatus, LogLevel, TriggerType};
pub use writer::WriteError;
use writer::{GROUP_COMMIT, Job, persist};

/// What the server serves: the playbooks, the store, and the executions in flight.
pub struct Service {
    store: Arc<dyn Store>,
    runner: Arc<HostRunner>,
    /// Kill switches of the executions running now, by id (the writer counts them).
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
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
    /// This process's id among those serving one store (Splunk's `node_guid`).
    node_guid: String,
    /// API keys read lately.
    keys: keys::KeyCache,
    /// The key signing secrets derive from (`--key-file`), when there is one.
    signing: Option<keys::SigningKey>,
    /// How JWTs are checked (`--jwt-key`), when they are accepted.
    jwt: Option<jwt::JwtConfig>,
    /// What web sessions are signed with: from the signing key when there is one (so
    /// that every server of a store accepts them), else new at each start (none, and no
    /// sessions, without randomness).
    session_key: Option<[u8; 32]>,
    /// What `/metrics` answers.
    metrics: Arc<metrics::Metrics>,
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

/// Waiting for a place under a playbook's `max_concurrent`.
type Acquire = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::AcquireError>,
            > + Send,
    >,
>;

/// An execution's place under its playbook's `max_concurrent`: held, or waited for.
#[derive(Default)]
struct Place {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    waiting: Option<Acquire>,
}

/// What an execution's own task carries: see [`Service::carry`].
struct Carried {
    playbook: Arc<Playbook>,
    start: Start,
    new: NewExecution,
    place: Place,
    /// Whether the steps wait for the start to be stored.
    urgent: bool,
    /// Told the start's number once it is stored.
    recorded: oneshot::Sender<Result<i64, WriteError>>,
}

/// Events a slow SSE client may fall behind by before it is told to catch up.
const BROADCAST_CAPACITY: usize = 4096;

impl Service {
    /// A service over `store`, running the playbooks of `runner`. Starts the writer that stores
    /// and broadcasts events, as a task on the current Tokio runtime (or, outside one,
    /// on a thread of its own); it ends when the service and its executions are gone.
    pub fn new(store: Arc<dyn Store>, runner: Arc<HostRunner>) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        let (jobs, job_receiver) = mpsc::unbounded_channel();
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        let running = Arc::new(Mutex::new(HashMap::new()));
        let metrics = Arc::new(metrics::Metrics::new());
        let writer = persist(
            Arc::clone(&store),
            receiver,
            job_receiver,
            broadcast.clone(),
            Arc::clone(&running),
            GROUP_COMMIT,
            Arc::clone(&metrics),
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
            events,
            broadcast,
            jobs,
            gates: Mutex::new(HashMap::new()),
            timers: Mutex::new(HashMap::new()),
            secrets_dir: None,
            loading: std::sync::atomic::AtomicBool::new(false),
            node_guid: ulid::Ulid::new().to_string().to_ascii_lowercase(),
            keys: keys::KeyCache::default(),
            signing: None,
            jwt: None,
            session_key: {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .inspect_err(|e| tracing::error!(error = %e, "no randomness: no sessions"))
                    .ok()
                    .map(|()| key)
            },
            metrics,
        }
    }

    /// This process's id, new at each start: the node a Splunk app run ran on.
    pub fn node_guid(&self) -> &str {
        &self.node_guid
    }

    /// Whether the apps and playbooks are still loading.
    pub fn loading(&self) -> bool {
        self.loading.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The playbook `xid` the service runs.
    pub fn playbook(&self, xid: &str) -> Option<Arc<Playbook>> {
        self.runner.playbook(xid)
    }

    /// The ids of the playbooks the service runs.
    pub fn playbook_ids(&self) -> Vec<String> {
        self.runner.playbook_ids()
    }

    /// Every event, as it is stored (and, for an execution's end, once its record is).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.broadcast.subscribe()
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

    /// The same service, deriving keys' signing secrets from `key` (see
    /// [`keys::SigningKey`]): requests signed with them are accepted.
    #[must_use]
    pub fn with_signing_key(mut self, key: Option<keys::SigningKey>) -> Self {
        if let Some(key) = &key {
            self.session_key = Some(key.session_key());
        }
        self.signing = key;
        self
    }

    /// The same service, accepting the JWTs `config` checks.
    #[must_use]
    pub fn with_jwt(mut self, config: Option<jwt::JwtConfig>) -> Self {
        self.jwt = config;
        self
    }

    /// Whether the writer that stores what executions report still runs.
    pub fn writing(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The metrics in Prometheus's text format, as they are now.
    pub fn metrics_text(&self) -> String {
        let running = crate::lock(&self.running)
            .keys()
            .filter(|id| id.starts_with("ex_"))
            .count();
        self.metrics.text(running)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Start an execution of playbook `xid` (one `who` may use, when one is named:
    /// another tenant's or application's is not found).
    #[tracing::instrument(name = "service.run", skip_all, fields(playbook = %xid))]
    pub async fn run(
        self: &Arc<Self>,
        who: Option<&keys::Identity>,
        xid: &str,
        trigger: Value,
        trigger_type: TriggerType,
        log_level: Option<LogLevel>,
        report: Report,
    ) -> Result<Started, Error> {
        let playbook = self
            .runner
            .playbook(xid)
            .filter(|p| who.is_none_or(|who| who.may_use(p)))
            .ok_or_else(|| Error::NotFound(format!("there is no playbook `{xid}`")))?;
        if !playbook.enabled {
            return Err(Error::Conflict(format!(
                "playbook `{xid}` is disabled; set `enabled: true` to run it"
            )));
        }
        if let Some(unmet) = self.runner.unmet_requirements(&playbook) {
            return Err(Error::Conflict(unmet));
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
    #[tracing::instrument(
        name = "service.start",
        skip_all,
        fields(execution = %start.id, playbook = %playbook.id)
    )]
    pub async fn start(
        self: &Arc<Self>,
        playbook: Arc<Playbook>,
        mut start: Start,
        report: Report,
    ) -> Result<Started, Error> {
        start.events = Some(self.events.clone());
        // Its span follows whoever started it (a request's traceparent, a timer).
        start.parent.get_or_insert_with(tracing::Span::current);
        let place = self.admit(&playbook);
        let queued = place.waiting.is_some();
        let new = NewExecution {
            header: start.header(&playbook),
            status: if queued {
                ExecutionStatus::Queued
            } else {
                ExecutionStatus::Running
            },
        };
        let id = start.id.clone();
        self.metrics.started(&playbook.id, new.header.trigger_type);
        // Killable from the moment it is reported.
        crate::lock(&self.running).insert(id.clone(), start.kill.clone());
        // Whether the steps wait for the start to be stored: when someone is told of it
        // sooner than its end, or a step could act outside wasp (and a crash must not
        // leave that act without a trace).
        let urgent = report == Report::Start || queued || playbook.reaches_out();
        let (recorded, number) = oneshot::channel();
        let carried = Carried {
            playbook,
            start,
            new,
            place,
            urgent,
            recorded,
        };
        let done = tokio::spawn(Arc::clone(self).carry(carried));
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
            Ok(Err(e)) => Err(Error::Write(e)),
            Err(_) => Err(Error::Write(WriteError::Gone)),
        }
    }

    /// A place for an execution of `playbook` under its `max_concurrent`: held at once,
    /// or to wait for. Over its limit, an execution takes its place in the (fair) line
    /// now, so that queued executions start in the order they came.
    fn admit(&self, playbook: &Playbook) -> Place {
        use futures_util::FutureExt as _;
        let Some(limit) = playbook.max_concurrent else {
            return Place::default();
        };
        let mut acquire: Acquire = Box::pin(self.gate(&playbook.id, limit).acquire_owned());
        match (&mut acquire).now_or_never() {
            Some(ready) => Place {
                permit: ready.ok(),
                waiting: None,
            },
            None => Place {
                permit: None,
                waiting: Some(acquire),
            },
        }
    }

    /// An execution's own task: record its start, wait for its place when queued, run
    /// it, store its record, and announce its end. Its number and record once stored.
    async fn carry(self: Arc<Self>, carried: Carried) -> Option<(i64, Execution)> {
        let Carried {
            playbook,
            start,
            new,
            place,
            urgent,
            recorded,
        } = carried;
        let id = start.id.clone();
        // Kept only to record the start again as Running once a queued one may run.
        let queued_start = place.waiting.is_some().then(|| new.clone());
        if let Some(answer) = self.send_start(new, urgent) {
            let answer = answer.await.unwrap_or_else(|_| Err(WriteError::Gone));
            let failed = answer.is_err();
            if failed {
                crate::lock(&self.running).remove(&id);
            }
            let _ = recorded.send(answer);
            if failed {
                return None;
            }
        }
        // Held until the execution is stored.
        let _permit = match (place.waiting, queued_start) {
            (Some(acquire), Some(new)) => {
                self.metrics.waiting(true);
                let permit = self
                    .wait_for_place(acquire, new, &start.kill, playbook.reaches_out())
                    .await;
                self.metrics.waiting(false);
                permit
            }
            _ => place.permit,
        };
        let shape = Arc::clone(&playbook);
        let execution = Box::new(engine::execute(Arc::clone(&self.runner), playbook, start).await);
        let stored = self.store_finished(&id, execution).await;
        crate::lock(&self.running).remove(&id);
        let (num, execution) = stored?;
        if num.is_some() {
            // The asset each step bound: its node's, in its playbook (a child's too).
            let asset = |xid: &str, node: &str| {
                let child = (xid != shape.id)
                    .then(|| self.runner.playbook(xid))
                    .flatten();
                child
                    .as_deref()
                    .unwrap_or(&shape)
                    .node(node)
                    .and_then(|node| node.asset.clone())
            };
            self.metrics.ended(&execution, &asset);
        }
        self.ended(&execution);
        num.map(|num| (num, *execution))
    }

    /// Wait for a queued execution's place; a kill while it waits ends the wait (and the
    /// execution, at once). Once it has its place, its start is recorded again as
    /// Running (waited for when a step could act outside wasp).
    async fn wait_for_place(
        &self,
        acquire: Acquire,
        new: NewExecution,
        kill: &CancellationToken,
        urgent: bool,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = tokio::select! {
            acquired = acquire => acquired.ok(),
            () = kill.cancelled() => None,
        };
        if permit.is_some() {
            let running = NewExecution {
                status: ExecutionStatus::Running,
                ..new
            };
            if let Some(answer) = self.send_start(running, urgent) {
                let _ = answer.await;
            }
        }
        permit
    }

    /// Hand the ended `execution` to the writer, trying again when its batch failed (a
    /// batch that fails rolls back whole, so trying again is safe): its number when it
    /// was stored, and the execution back; `None` when the writer went away holding it
    /// (nothing more can be stored or told of it).
    async fn store_finished(
        &self,
        id: &str,
        mut execution: Box<Execution>,
    ) -> Option<(Option<i64>, Box<Execution>)> {
        for attempt in 1..=3 {
            let (reply, stored) = oneshot::channel();
            if let Err(mpsc::error::SendError(Job::Finish(back, _))) =
                self.jobs.send(Job::Finish(execution, reply))
            {
                tracing::error!(execution = %id, "the store's writer is not running");
                return Some((None, back));
            }
            match stored.await {
                Ok((Ok(stored), back)) => return Some((Some(stored), back)),
                Ok((Err(e), back)) => {
                    execution = back;
                    tracing::error!(execution = %id, attempt, error = %e, "storing a finished execution failed");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => {
                    tracing::error!(execution = %id, error = %e, "the store's writer stopped");
                    return None;
                }
            }
        }
        Some((None, execution))
    }

    /// Send the start of `execution` to the writer; when the caller `waits` for it to be
    /// stored, the answer to await (its numeric id).
    fn send_start(
        &self,
        execution: NewExecution,
        waits: bool,
    ) -> Option<oneshot::Receiver<Result<i64, WriteError>>> {
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
            owner: Arc::new(execution.header.owner()),
            status: execution.status,
            at: execution.completed_at,
        }));
        for child in &execution.children {
            self.ended(child);
        }
    }

    /// Kill the running execution `id`; false when it is not running.
    #[tracing::instrument(name = "service.kill", skip_all, fields(execution = %id))]
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
    pub async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, store::Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = Arc::clone(&self.store);
        Ok(tokio::task::spawn_blocking(move || call(&*store)).await??)
    }
}
