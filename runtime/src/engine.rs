//! Running one execution of a playbook: scheduling ready nodes, edges and pathways,
//! dead-path elimination, `for_each`, retries and `continue_on_error`.
//!
//! The engine knows nothing of wasmtime, HTTP or SQL: it runs steps through a
//! [`StepRunner`] (the real one, [`crate::runner::HostRunner`], calls the host; tests use
//! a fake) and returns an [`Execution`] record.
//!
//! Semantics (DESIGN.md, "Playbooks"):
//! - A node is ready when every predecessor has ended. It runs if at least one incoming
//!   edge is active: `success` when the source succeeded (whatever pathway it took), a
//!   pathway name when the source took that pathway, `failure` when it failed, `always`
//!   when it ran at all. Otherwise it is Skipped, which propagates.
//! - Ready nodes run concurrently, at most `concurrency` at once.
//! - A failed node with `continue_on_error` counts as succeeded for its edges; its own
//!   status stays Failed, and it has no output, but for `for_each`.
//! - A `for_each` node runs once per item; its output is the outputs of the items that
//!   succeeded, in item order (all of them, unless some failed), and its record counts
//!   them (`succeeded` of `iterations`). It fails when an item fails, saying how many
//!   did and the first one's error.
//! - The execution is Completed when no node failed, Partially Failed when some failed
//!   but at least one node without successors succeeded, and Failed otherwise.
//! - The reaper ends an execution past the playbook's `max_runtime`: in-flight steps
//!   are interrupted (Killed), nodes not yet started are Killed too, and the execution
//!   is Failed with a message naming the limit. A kill request does the same and marks
//!   the execution Killed.
//! - A `playbook:` node runs another playbook as a child execution on the node's
//!   rendered input (the child's trigger), at the parent's log level, linked by parent
//!   id, and stopped with its parent. The node succeeds when the child completes; its
//!   output is the child's declared `output:`, or else the outputs of the child's final
//!   nodes (those without successors) that succeeded, keyed by node id. Otherwise it fails with `child_failed`. The child's
//!   whole record is in the parent's `children`. Nesting stops at [`MAX_DEPTH`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::playbook::template::{Reference, Root, Scope};
use crate::playbook::{Node, NodeKind, On, Playbook};
use crate::trace::{
    Capture, Event, Execution, ExecutionHeader, ExecutionStatus, FailureKind, LogLevel,
    MAX_RESULT_BYTES, NodeRecord, NodeStatus, StepReport, StepRun, StepStatus as ReportStatus,
    TriggerType, cap_json, capture, new_execution_id,
};

/// One step to run: a node's app action on a rendered input.
#[derive(Debug, Clone)]
pub struct StepCall {
    /// The node.
    pub node: String,
    /// The app.
    pub app: String,
    /// The action.
    pub action: String,
    /// The rendered input.
    pub input: Value,
    /// The node's timeout, if it sets one.
    pub timeout: Option<Duration>,
    /// The node's memory limit, if it sets one.
    pub memory: Option<usize>,
    /// The asset the node binds (of `tenant`: another tenant's is not there for it).
    pub asset: Option<String>,
    /// The tenant of the execution.
    pub tenant: String,
    /// The execution's log level.
    pub level: LogLevel,
    /// Cancelled when the execution is killed.
    pub kill: CancellationToken,
}

/// How deep `playbook:` nodes may nest: an execution at this depth cannot start a
/// child (this also ends playbooks that call each other in a loop).
pub const MAX_DEPTH: u32 = 8;

/// What runs steps.
pub trait StepRunner: Send + Sync + 'static {
    /// Run `call` and report what happened.
    fn run(&self, call: StepCall) -> impl Future<Output = StepReport> + Send;

    /// The playbook a `playbook:` node names, to run as a child execution.
    fn playbook(&self, id: &str) -> Option<Arc<Playbook>> {
        let _ = id;
        None
    }
}

/// What an execution starts from.
#[derive(Debug, Clone)]
pub struct Start {
    /// The execution's id.
    pub id: String,
    /// The trigger payload.
    pub trigger: Value,
    /// How it was started.
    pub trigger_type: TriggerType,
    /// The level to record at, instead of the playbook's.
    pub log_level: Option<LogLevel>,
    /// The execution whose `playbook:` node started this one.
    pub parent_id: Option<String>,
    /// The execution one of whose steps this one replays.
    pub replay_of: Option<String>,
    /// How deep in `playbook:` nodes it runs: 0 for an execution with no parent.
    pub depth: u32,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// Cancelled to kill it.
    pub kill: CancellationToken,
    /// Where to send what happens as it happens (its child executions send there too).
    pub events: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
    /// The span its own is a child of (who started it: a request, a parent's step), so
    /// that an exported trace follows it; a root span without.
    pub parent: Option<tracing::Span>,
}

/// Sends an execution's events, when someone listens.
#[derive(Clone)]
struct Reporter {
    execution_id: Arc<str>,
    /// The playbook's XID.
    playbook: Arc<str>,
    owner: Arc<crate::trace::Owner>,
    events: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
}

impl Reporter {
    /// Send the event `event` makes of the execution's id and owner.
    fn send(&self, event: impl FnOnce(String, Arc<crate::trace::Owner>) -> Event) {
        if let Some(events) = &self.events {
            // A listener that went away is not the execution's problem.
            let _ = events.send(event(
                self.execution_id.to_string(),
                Arc::clone(&self.owner),
            ));
        }
    }

    fn node_ended(&self, record: &NodeRecord) {
        self.send(|execution_id, owner| Event::NodeEnded {
            execution_id,
            owner,
            node: record.id.clone(),
            status: record.status,
            at: Utc::now(),
            duration_us: record.duration_us,
            pathway: record.pathway.clone(),
            error: record.error.clone(),
            iterations: record.iterations,
            succeeded: record.succeeded,
        });
    }
}

impl Start {
    /// The header of the execution it starts of `playbook`.
    pub fn header(&self, playbook: &Playbook) -> ExecutionHeader {
        ExecutionHeader {
            id: self.id.clone(),
            parent_id: self.parent_id.clone(),
            replay_of: self.replay_of.clone(),
            playbook_id: playbook.id.clone(),
            playbook_name: playbook.name.clone(),
            trigger_type: self.trigger_type,
            log_level: self.log_level.unwrap_or(playbook.log_level),
            queued_at: self.queued_at,
            tenant_id: playbook.tenant.clone(),
            app_id: playbook.app.clone(),
        }
    }

    /// A manual execution of `trigger` with a new id, queued now.
    pub fn new(trigger: Value) -> Self {
        Self {
            id: new_execution_id(),
            trigger,
            trigger_type: TriggerType::Manual,
            log_level: None,
            parent_id: None,
            replay_of: None,
            depth: 0,
            queued_at: Utc::now(),
            kill: CancellationToken::new(),
            events: None,
            parent: None,
        }
    }
}

/// Each node's output by node index, set once when the node ends. A node reads only the
/// outputs of nodes upstream of it, which ended before it started.
type Outputs = [OnceLock<Value>];

/// The references a node's input can make, for one render.
struct RunScope<'a> {
    trigger: &'a Value,
    playbook: &'a Playbook,
    outputs: &'a Outputs,
    item: Option<(usize, &'a Value)>,
    execution_id: &'a str,
    playbook_id: &'a str,
}

impl Scope for RunScope<'_> {
    fn root(&self, root: &Root) -> Option<Cow<'_, Value>> {
        match root {
            Root::Trigger => Some(Cow::Borrowed(self.trigger)),
            Root::Output(node) => self
                .playbook
                .index_of(node)
                .and_then(|index| self.outputs[index.index()].get())
                .map(Cow::Borrowed),
            Root::Item => self.item.map(|(_, item)| Cow::Borrowed(item)),
            Root::ItemIndex => self.item.map(|(index, _)| Cow::Owned(Value::from(index))),
            Root::ExecutionId => Some(Cow::Owned(Value::String(self.execution_id.to_owned()))),
            Root::PlaybookId => Some(Cow::Owned(Value::String(self.playbook_id.to_owned()))),
        }
    }
}

/// A failed report for a step the engine could not start.
fn input_failure(message: String) -> StepReport {
    StepReport::failure(FailureKind::InputError, message)
}

/// What a node's steps run: an app's action, or a child execution of another
/// playbook.
enum Target<R> {
    App(Arc<R>),
    Playbook {
        runner: Arc<R>,
        playbook: Arc<Playbook>,
        parent: Arc<Parent>,
    },
}

impl<R> Clone for Target<R> {
    fn clone(&self) -> Self {
        match self {
            Target::App(runner) => Target::App(Arc::clone(runner)),
            Target::Playbook {
                runner,
                playbook,
                parent,
            } => Target::Playbook {
                runner: Arc::clone(runner),
                playbook: Arc::clone(playbook),
                parent: Arc::clone(parent),
            },
        }
    }
}

/// What a child execution inherits from its parent.
struct Parent {
    id: String,
    level: LogLevel,
    depth: u32,
    events: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
}

impl<R: StepRunner> Target<R> {
    /// Run one attempt of `call`; a child execution comes back beside its report.
    async fn invoke(&self, call: StepCall) -> (StepReport, Option<Execution>) {
        match self {
            Target::App(runner) => (runner.run(call).await, None),
            Target::Playbook {
                runner,
                playbook,
                parent,
            } => {
                if parent.depth >= MAX_DEPTH {
                    return (
                        input_failure(format!(
                            "playbook `{}` would run {} levels deep; `playbook:` nodes nest \
                             at most {MAX_DEPTH} levels (do two playbooks call each other?)",
                            playbook.id,
                            parent.depth + 1
                        )),
                        None,
                    );
                }
                let start = Start {
                    trigger_type: TriggerType::Playbook,
                    log_level: Some(parent.level),
                    parent_id: Some(parent.id.clone()),
                    depth: parent.depth + 1,
                    kill: call.kill.child_token(),
                    events: parent.events.clone(),
                    parent: Some(tracing::Span::current()),
                    ..Start::new(call.input)
                };
                let (child, output) =
                    run_child(Arc::clone(runner), Arc::clone(playbook), start).await;
                let mut report = if child.status == ExecutionStatus::Completed {
                    StepReport::success(output)
                } else {
                    let kind = if child.status == ExecutionStatus::Killed {
                        FailureKind::Killed
                    } else {
                        FailureKind::ChildFailed
                    };
                    let status = serde_json::to_value(child.status).unwrap_or_default();
                    let why = child.message.clone().or_else(|| {
                        child.nodes.iter().find_map(|n| {
                            Some(format!("`{}`: {}", n.id, n.error.as_ref()?.message))
                        })
                    });
                    let mut message = format!(
                        "child execution {} of playbook `{}` ended {}",
                        child.header.id,
                        playbook.id,
                        status.as_str().unwrap_or_default()
                    );
                    if let Some(why) = why {
                        message.push_str(&format!(" ({why})"));
                    }
                    StepReport::failure(kind, message)
                };
                report.duration_us = child.duration_us;
                (report, Some(child))
            }
        }
    }
}

/// [`execute_inner`], boxed: a child execution runs inside a node of its parent.
fn run_child<R: StepRunner>(
    runner: Arc<R>,
    playbook: Arc<Playbook>,
    start: Start,
) -> Pin<Box<dyn Future<Output = (Execution, Value)> + Send>> {
    Box::pin(execute_inner(runner, playbook, start))
}

/// Run `call` with the node's retry policy: a retryable failure is run again after the
/// backoff, doubled each time, until the attempts are spent.
async fn run_with_retries<R: StepRunner>(
    target: &Target<R>,
    reporter: &Reporter,
    node: &Node,
    call: StepCall,
    iteration: Option<usize>,
) -> (Vec<StepRun>, Vec<Execution>) {
    let (attempts, mut backoff) = node
        .retry
        .map_or((1, Duration::ZERO), |r| (r.attempts, r.backoff));
    let mut runs = Vec::new();
    let mut children = Vec::new();
    for attempt in 1..=attempts {
        let started_at = Utc::now();
        // A span per step run, for an exported trace: made only when a subscriber
        // records it (wrapping the call costs a move of its future). Ids and names
        // only: never the input, the output or a message.
        let span = tracing::info_span!(
            "engine.step",
            otel.name = "wasp.step",
            wasp.execution.id = %reporter.execution_id,
            wasp.playbook = %reporter.playbook,
            wasp.node = %node.id,
            wasp.app = %call.app,
            wasp.action = %call.action,
            wasp.attempt = attempt,
            wasp.iteration = iteration.map(|i| i as u64),
            wasp.status = tracing::field::Empty,
            wasp.failure.kind = tracing::field::Empty,
        );
        let (report, child) = if span.is_disabled() {
            target.invoke(call.clone()).await
        } else {
            let ran = target.invoke(call.clone()).instrument(span.clone()).await;
            span.record("wasp.status", word(&ran.0.status));
            if let Some(error) = &ran.0.error {
                span.record("wasp.failure.kind", word(&error.kind));
            }
            ran
        };
        let retry = report.error.as_ref().is_some_and(|e| e.retryable)
            && attempt < attempts
            && !call.kill.is_cancelled();
        let run = StepRun {
            child: child.as_ref().map(|c| c.header.id.clone()),
            started_at,
            // The capture policy keeps inputs at DEBUG and TRACE only: do not copy one
            // that would be dropped.
            ..step(
                node,
                iteration,
                attempt,
                call.level.captures_data().then(|| call.input.clone()),
                report,
            )
        };
        reporter.send(|execution_id, owner| Event::StepEnded {
            execution_id,
            owner,
            node: node.id.clone(),
            iteration,
            attempt,
            status: run.report.status,
            duration_us: run.report.duration_us,
            logs: run.report.logs.clone(),
            run: Some(Arc::new(capture::captured(&run, call.level))),
        });
        runs.push(run);
        children.extend(child);
        if !retry {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = call.kill.cancelled() => break,
        }
        backoff = backoff.saturating_mul(2);
    }
    (runs, children)
}

/// The word serde writes for `value` (a status, a kind), for a span's attribute.
fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A node that ended: its record, its step runs, and the child executions it started.
struct NodeDone {
    index: NodeIndex,
    record: NodeRecord,
    runs: Vec<StepRun>,
    children: Vec<Execution>,
}

impl NodeDone {
    /// A node that failed before any step ran, with `report`.
    fn failed(
        index: NodeIndex,
        node: &Node,
        report: StepReport,
        iterations: Option<usize>,
        started: Instant,
    ) -> Self {
        Self {
            index,
            record: record(&[&report], iterations, started),
            runs: vec![step(node, None, 1, None, report)],
            children: Vec::new(),
        }
    }
}

/// Everything a node's run needs, owned, so that it can run on its own task.
struct NodeJob<R> {
    runner: Arc<R>,
    playbook: Arc<Playbook>,
    index: NodeIndex,
    trigger: Arc<Value>,
    /// The outputs of the nodes that ended so far, shared: starting a node copies none.
    outputs: Arc<Outputs>,
    execution_id: Arc<str>,
    level: LogLevel,
    depth: u32,
    kill: CancellationToken,
    reporter: Reporter,
}

impl<R: StepRunner> NodeJob<R> {
    /// The node's span, a child of the execution's. It is made here, not by
    /// `#[instrument]` on `run`, so that when no subscriber records it (the default)
    /// the node's future runs unwrapped: the attribute's wrapper costs a move of the
    /// future (a few KB), which the server bench measured at ~3% of a trivial step.
    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "engine.node",
            execution = %self.execution_id,
            node = %self.playbook.graph[self.index].id
        )
    }

    /// Run the node to its end: find what it runs, then run it once on its rendered
    /// input, or once per item of its `for_each`.
    async fn run(self) -> NodeDone {
        let started = Instant::now();
        let node = &self.playbook.graph[self.index];
        let (target, app, action) = match self.target(node) {
            Ok(found) => found,
            Err(message) => {
                let report = input_failure(message);
                return NodeDone::failed(self.index, node, report, None, started);
            }
        };
        let calls = Calls {
            node,
            tenant: &self.playbook.tenant,
            app,
            action,
            level: self.level,
            kill: &self.kill,
        };
        match &node.for_each {
            None => self.run_once(&target, &calls, started).await,
            Some(for_each) => self.run_each(for_each, &target, &calls, started).await,
        }
    }

    /// What `node` runs, with the app and action its step runs record (a child
    /// playbook's id and no action), or why the node cannot start.
    fn target(&self, node: &Node) -> Result<(Target<R>, String, String), String> {
        match &node.kind {
            NodeKind::App { app, action } | NodeKind::Operator { app, action } => Ok((
                Target::App(Arc::clone(&self.runner)),
                app.clone(),
                action.clone(),
            )),
            NodeKind::Trigger => unreachable!("the trigger is never scheduled"),
            NodeKind::Playbook { id } => {
                // Another tenant's playbook is not there for this one.
                let Some(playbook) = self
                    .runner
                    .playbook(id)
                    .filter(|p| self.playbook.may_call(p))
                else {
                    return Err(format!("playbook `{id}` is not loaded"));
                };
                let parent = Arc::new(Parent {
                    id: self.execution_id.to_string(),
                    level: self.level,
                    depth: self.depth,
                    events: self.reporter.events.clone(),
                });
                let target = Target::Playbook {
                    runner: Arc::clone(&self.runner),
                    playbook,
                    parent,
                };
                Ok((target, id.clone(), String::new()))
            }
        }
    }

    /// What the node's input may reference, with `item` and its index in a `for_each`.
    fn scope<'a>(&'a self, item: Option<(usize, &'a Value)>) -> RunScope<'a> {
        RunScope {
            trigger: &self.trigger,
            playbook: &self.playbook,
            outputs: &self.outputs,
            item,
            execution_id: &self.execution_id,
            playbook_id: &self.playbook.id,
        }
    }

    /// A node without `for_each`: its action on its rendered input, with retries.
    async fn run_once(&self, target: &Target<R>, calls: &Calls<'_>, started: Instant) -> NodeDone {
        let node = calls.node;
        let (runs, children) = match node.input.render(&self.scope(None)) {
            Ok(input) => {
                run_with_retries(target, &self.reporter, node, calls.call(input), None).await
            }
            Err(e) => {
                let report = input_failure(e.to_string());
                return NodeDone::failed(self.index, node, report, None, started);
            }
        };
        let last = runs.last().map(|r| &r.report);
        let mut record = record(&last.into_iter().collect::<Vec<_>>(), None, started);
        record.children = children.iter().map(|c| c.header.id.clone()).collect();
        NodeDone {
            index: self.index,
            record,
            runs,
            children,
        }
    }

    /// A `for_each` node: its action once per item, at most `concurrency` at once; its
    /// output is theirs, in item order, when all succeeded.
    async fn run_each(
        &self,
        for_each: &Reference,
        target: &Target<R>,
        calls: &Calls<'_>,
        started: Instant,
    ) -> NodeDone {
        let node = calls.node;
        let items = match for_each.resolve(&self.scope(None)) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let report = input_failure(format!(
                    "`for_each` `${{{}}}` is not an array but {other}",
                    for_each.text
                ));
                return NodeDone::failed(self.index, node, report, Some(0), started);
            }
            Err(e) => {
                let report = input_failure(e.to_string());
                return NodeDone::failed(self.index, node, report, Some(0), started);
            }
        };
        let iterations = self.spawn_iterations(&items, target, calls);
        let (by_index, children) = iterations.join(node, items.len()).await;
        let lasts: Vec<&StepReport> = by_index
            .iter()
            .filter_map(|runs| runs.last().map(|r| &r.report))
            .collect();
        let mut node_record = record(&lasts, Some(items.len()), started);
        // The items that succeeded, in item order: all of them, or the good ones of a
        // node that failed, for the nodes after it to read (through `continue_on_error`
        // or a `failure` edge).
        let good: Vec<Value> = lasts
            .iter()
            .filter(|r| r.status == ReportStatus::Succeeded)
            .map(|r| r.output.clone().unwrap_or(Value::Null))
            .collect();
        node_record.succeeded = Some(good.len());
        if good.len() < items.len()
            && let Some(error) = &mut node_record.error
        {
            error.message = format!(
                "{} of {} items failed; the first, item {}: {}",
                items.len() - good.len(),
                items.len(),
                lasts
                    .iter()
                    .position(|r| r.status == ReportStatus::Failed)
                    .unwrap_or_default(),
                error.message
            );
        }
        node_record.output = Some(Value::Array(good));
        node_record.children = children.iter().map(|c| c.header.id.clone()).collect();
        NodeDone {
            index: self.index,
            record: node_record,
            runs: by_index.into_iter().flatten().collect(),
            children,
        }
    }

    /// One task per item, each rendering its input and waiting for a permit of the
    /// node's concurrency before it runs.
    fn spawn_iterations(
        &self,
        items: &[Value],
        target: &Target<R>,
        calls: &Calls<'_>,
    ) -> Iterations {
        let node = calls.node;
        let limit = Arc::new(Semaphore::new(
            node.concurrency.unwrap_or(items.len().max(1)),
        ));
        let mut iterations = Iterations {
            set: JoinSet::new(),
            tasks: HashMap::new(),
        };
        for (index, item) in items.iter().enumerate() {
            let rendered = node.input.render(&self.scope(Some((index, item))));
            let limit = Arc::clone(&limit);
            let target = target.clone();
            let reporter = self.reporter.clone();
            let playbook = Arc::clone(&self.playbook);
            let node_index = self.index;
            let call = rendered.map(|input| calls.call(input));
            let iteration = async move {
                let node = &playbook.graph[node_index];
                let done = match call {
                    Ok(call) => {
                        let _permit = limit.acquire().await;
                        run_with_retries(&target, &reporter, node, call, Some(index)).await
                    }
                    Err(e) => {
                        let report = input_failure(e.to_string());
                        (vec![step(node, Some(index), 1, None, report)], Vec::new())
                    }
                };
                (index, done)
            };
            // In the node's span, as a task does not inherit it (when a subscriber
            // records it: see `NodeJob::span`).
            let span = tracing::Span::current();
            let task = if span.is_disabled() {
                iterations.set.spawn(iteration)
            } else {
                iterations.set.spawn(iteration.instrument(span))
            };
            iterations.tasks.insert(task.id(), index);
        }
        iterations
    }
}

/// How a node's step calls are made: its app and action, and the execution's level and
/// kill token. One call per attempt's input.
struct Calls<'a> {
    node: &'a Node,
    tenant: &'a str,
    app: String,
    action: String,
    level: LogLevel,
    kill: &'a CancellationToken,
}

impl Calls<'_> {
    /// The call of the node's action on `input`.
    fn call(&self, input: Value) -> StepCall {
        StepCall {
            node: self.node.id.clone(),
            app: self.app.clone(),
            action: self.action.clone(),
            input,
            timeout: self.node.timeout,
            memory: self.node.memory,
            asset: self.node.asset.clone(),
            tenant: self.tenant.to_owned(),
            level: self.level,
            kill: self.kill.clone(),
        }
    }
}

/// The step runs of a node or of one iteration, and the child executions they started.
type Runs = (Vec<StepRun>, Vec<Execution>);

/// The running iterations of a `for_each` node, each task returning its item's index
/// and its [`Runs`].
struct Iterations {
    set: JoinSet<(usize, Runs)>,
    tasks: HashMap<tokio::task::Id, usize>,
}

impl Iterations {
    /// Wait for all `count` iterations of `node`: each one's step runs, by item, and
    /// the child executions they started, in item order.
    async fn join(mut self, node: &Node, count: usize) -> (Vec<Vec<StepRun>>, Vec<Execution>) {
        let mut by_index: Vec<Vec<StepRun>> = vec![Vec::new(); count];
        let mut children: Vec<(usize, Execution)> = Vec::new();
        while let Some(joined) = self.set.join_next_with_id().await {
            match joined {
                Ok((_, (index, (runs, started_children)))) => {
                    by_index[index] = runs;
                    children.extend(started_children.into_iter().map(|c| (index, c)));
                }
                // An iteration that panicked (a wasp bug) fails, rather than vanish
                // from the node's output.
                Err(e) => {
                    if let Some(&index) = self.tasks.get(&e.id()) {
                        let report = StepReport::failure(
                            FailureKind::HostError,
                            format!("wasp failed while running this iteration: {e}"),
                        );
                        by_index[index] = vec![step(node, Some(index), 1, None, report)];
                    }
                }
            }
        }
        children.sort_by_key(|(index, _)| *index);
        let children = children.into_iter().map(|(_, c)| c).collect();
        (by_index, children)
    }
}

fn step(
    node: &Node,
    iteration: Option<usize>,
    attempt: u32,
    input: Option<Value>,
    report: StepReport,
) -> StepRun {
    let (app, action) = match &node.kind {
        NodeKind::App { app, action } | NodeKind::Operator { app, action } => {
            (app.clone(), action.clone())
        }
        NodeKind::Playbook { id } => (id.clone(), String::new()),
        NodeKind::Trigger => (String::new(), String::new()),
    };
    StepRun {
        node: node.id.clone(),
        app,
        action,
        iteration,
        attempt,
        input,
        report,
        capture: Capture::default(),
        started_at: Utc::now(),
        child: None,
    }
}

/// A node's record from the last report of each of its iterations (one for a plain
/// node): it failed if any failed, with the first failure's error.
fn record(lasts: &[&StepReport], iterations: Option<usize>, started: Instant) -> NodeRecord {
    let mut record = NodeRecord::new(String::new(), NodeStatus::Succeeded);
    record.iterations = iterations;
    record.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    match (
        lasts.iter().find(|r| r.status == ReportStatus::Failed),
        lasts,
    ) {
        (Some(report), _) => {
            record.status = report.node_status();
            record.error.clone_from(&report.error);
        }
        (None, [only]) if iterations.is_none() => {
            record.output.clone_from(&only.output);
            record.pathway.clone_from(&only.pathway);
        }
        (None, _) => {}
    }
    record
}

/// Node `ended` ended: queue each successor whose predecessors have now all ended.
fn release(
    graph: &petgraph::graph::DiGraph<Node, On>,
    waiting: &mut [usize],
    ready: &mut VecDeque<NodeIndex>,
    ended: NodeIndex,
) {
    for edge in graph.edges_directed(ended, Direction::Outgoing) {
        let target = edge.target();
        waiting[target.index()] -= 1;
        if waiting[target.index()] == 0 {
            ready.push_back(target);
        }
    }
}

/// Whether an edge `on` out of a node that ended as `source` is active.
fn active(on: &On, source: &NodeRecord, continues: bool) -> bool {
    let succeeded = source.status == NodeStatus::Succeeded;
    let failed = matches!(
        source.status,
        NodeStatus::Failed | NodeStatus::TimedOut | NodeStatus::Killed
    );
    match on {
        On::Success => succeeded || (failed && continues),
        On::Pathway(p) => succeeded && source.pathway.as_deref() == Some(p.as_str()),
        On::Failure => failed,
        On::Always => succeeded || failed,
    }
}

/// Run `playbook` with `runner` from `start` until it ends, `start.kill` is cancelled
/// (Killed), or it passes the playbook's maximum runtime (the reaper: Failed). Either
/// way in-flight steps are interrupted through their kill token (the host traps a
/// spinning guest at its next epoch tick) and everything recorded so far is kept.
pub async fn execute<R: StepRunner>(
    runner: Arc<R>,
    playbook: Arc<Playbook>,
    start: Start,
) -> Execution {
    execute_inner(runner, playbook, start).await.0
}

/// [`execute`], and the execution's output as a `playbook:` node sees it: its declared
/// result, or else the outputs of its final nodes that succeeded, by node id, before the
/// capture policy applies.
///
/// Four phases, each its own function: the [`Scheduler`] runs the nodes, the way it
/// stopped and the records decide the status, the capture policy decides what the
/// record keeps, and the kept parts are assembled into the [`Execution`].
///
/// Its span (a child execution's too, inside its parent's node) names the execution
/// and the playbook; `skip_all`, as the trigger can hold secrets.
#[tracing::instrument(
    name = "engine.execute",
    skip_all,
    parent = start.parent.as_ref().and_then(tracing::Span::id),
    fields(
        execution = %start.id,
        playbook = %playbook.id,
        otel.name = "wasp.execution",
        wasp.execution.id = %start.id,
        wasp.playbook = %playbook.id,
        wasp.tenant = %playbook.tenant,
        wasp.status = tracing::field::Empty,
    )
)]
async fn execute_inner<R: StepRunner>(
    runner: Arc<R>,
    playbook: Arc<Playbook>,
    start: Start,
) -> (Execution, Value) {
    let started = Instant::now();
    let started_at = Utc::now();
    let header = start.header(&playbook);
    let level = header.log_level;
    let is_child = start.parent_id.is_some();
    let requested_kill = start.kill.clone();
    // `kill` stops the steps; it is cancelled by a kill request or by the reaper.
    let kill = requested_kill.child_token();
    let reaper = spawn_reaper(kill.clone(), playbook.max_runtime);
    let ran = Scheduler::new(runner, Arc::clone(&playbook), start, level, kill.clone())
        .run()
        .await;
    reaper.abort();

    let stop = Stop::of(&requested_kill, &kill);
    let status = decide_status(stop, &playbook, &ran);
    tracing::Span::current().record("wasp.status", word(&status));
    let message = stop_message(stop, &playbook, is_child);
    let (mut result, mut result_error) = match result(&playbook, &ran, &header.id) {
        None => (None, None),
        Some(Ok(value)) => (Some(value), None),
        Some(Err(e)) => (None, Some(e.to_string())),
    };
    // A result whose status cannot be told is no result: its caller is not guessed at.
    let output_status = match result_status(&playbook, &ran, &header.id) {
        Some(Ok(status)) => Some(status),
        Some(Err(e)) if result.is_some() => {
            result = None;
            result_error = Some(format!("`output_status`: {e}"));
            None
        }
        _ => None,
    };
    // What a `playbook:` node of a parent gets: the declared result, or else the
    // outputs of the final nodes.
    let output = match &result {
        Some(value) => value.clone(),
        None => Value::Object(final_outputs(&playbook, &ran)),
    };
    let kept = Kept::of(ran, level);
    let output_kept = result.map(|mut value| {
        cap_json(&mut value, MAX_RESULT_BYTES);
        value
    });
    let execution = Execution {
        header,
        status,
        message,
        output: output_kept,
        output_error: result_error,
        output_status,
        started_at,
        completed_at: Utc::now(),
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        trigger: kept.trigger,
        nodes: kept.nodes,
        steps: kept.steps,
        children: kept.children,
    };
    (execution, output)
}

/// The execution's result, when the playbook declares one: its `output:` rendered over
/// what the nodes left (before the capture policy, which keeps outputs at DEBUG only).
fn result(
    playbook: &Playbook,
    ran: &Ran,
    execution_id: &str,
) -> Option<Result<Value, crate::playbook::template::ResolveError>> {
    Some(
        playbook
            .output
            .as_ref()?
            .render(&result_scope(playbook, ran, execution_id)),
    )
}

/// The scope the result renders in: a node's, with no item (what a node could read).
fn result_scope<'a>(playbook: &'a Playbook, ran: &'a Ran, execution_id: &'a str) -> RunScope<'a> {
    RunScope {
        trigger: &ran.trigger,
        playbook,
        outputs: &ran.outputs,
        item: None,
        execution_id,
        playbook_id: &playbook.id,
    }
}

/// The HTTP status to answer the result with, when the playbook declares one: its
/// `output_status:` rendered as the result is, which must be a number from 200 to 599
/// (or a string of one).
fn result_status(
    playbook: &Playbook,
    ran: &Ran,
    execution_id: &str,
) -> Option<Result<u16, String>> {
    let template = playbook.output_status.as_ref()?;
    Some(
        match template.render(&result_scope(playbook, ran, execution_id)) {
            Err(e) => Err(e.to_string()),
            Ok(value) => crate::playbook::http_status(&value),
        },
    )
}

/// The reaper of one execution: cancels `kill` once `max_runtime` has passed, unless
/// it was cancelled before. Aborted when the execution ends.
fn spawn_reaper(kill: CancellationToken, max_runtime: Duration) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(max_runtime) => {
                kill.cancel();
                true
            }
            () = kill.cancelled() => false,
        }
    })
}

/// What an execution's nodes left when it stopped: every node's record by graph index
/// (the trigger's included), the step runs, the child executions, and the trigger.
struct Ran {
    trigger_index: NodeIndex,
    records: BTreeMap<NodeIndex, NodeRecord>,
    steps: Vec<StepRun>,
    children: Vec<Execution>,
    trigger: Arc<Value>,
    /// Each node's output, as the nodes read them (a playbook's `output:` reads them
    /// too, when the execution ends).
    outputs: Arc<Outputs>,
}

/// How a node's run ended, as the scheduler awaits it.
#[expect(
    clippy::large_enum_variant,
    reason = "one per node, moved once from the run to its record: boxing would allocate per node"
)]
enum Ended {
    /// It ran to its end.
    Done(NodeDone),
    /// Its run panicked (a wasp bug): the node, and why.
    Failed(NodeIndex, String),
    /// A task the scheduler does not know ended: nothing to record.
    Unknown,
}

/// The scheduling phase of an execution: which nodes wait for their predecessors,
/// which are ready, which run, and what the ended ones left.
struct Scheduler<R> {
    runner: Arc<R>,
    playbook: Arc<Playbook>,
    trigger: Arc<Value>,
    /// Each node's output, set when it ends.
    outputs: Arc<Outputs>,
    execution_id: Arc<str>,
    reporter: Reporter,
    level: LogLevel,
    depth: u32,
    kill: CancellationToken,
    trigger_index: NodeIndex,
    /// For each node, the incoming edges whose source has not ended yet; a node is
    /// ready when that reaches 0.
    waiting: Vec<usize>,
    ready: VecDeque<NodeIndex>,
    running: JoinSet<NodeDone>,
    tasks: HashMap<tokio::task::Id, NodeIndex>,
    /// The node to run on this task rather than spawn (see [`Scheduler::start_ready`]).
    inline: Option<(NodeIndex, NodeJob<R>)>,
    records: BTreeMap<NodeIndex, NodeRecord>,
    steps: Vec<StepRun>,
    children: Vec<Execution>,
}

impl<R: StepRunner> Scheduler<R> {
    /// The schedule of `playbook` from `start`: the trigger has ended, and the nodes
    /// it leads to are ready.
    fn new(
        runner: Arc<R>,
        playbook: Arc<Playbook>,
        start: Start,
        level: LogLevel,
        kill: CancellationToken,
    ) -> Self {
        let graph = &playbook.graph;
        let execution_id: Arc<str> = Arc::from(start.id);
        let reporter = Reporter {
            execution_id: Arc::clone(&execution_id),
            playbook: Arc::from(playbook.id.as_str()),
            owner: Arc::new(crate::trace::Owner {
                tenant: playbook.tenant.clone(),
                app: playbook.app.clone(),
            }),
            events: start.events,
        };
        let trigger_index = playbook
            .index_of(crate::playbook::TRIGGER)
            .unwrap_or_else(|| NodeIndex::new(0));
        let mut records = BTreeMap::new();
        records.insert(
            trigger_index,
            NodeRecord::new(crate::playbook::TRIGGER.to_owned(), NodeStatus::Succeeded),
        );
        let outputs: Arc<Outputs> = graph.node_indices().map(|_| OnceLock::new()).collect();
        let mut waiting: Vec<usize> = graph
            .node_indices()
            .map(|n| graph.edges_directed(n, Direction::Incoming).count())
            .collect();
        let mut ready = VecDeque::new();
        release(graph, &mut waiting, &mut ready, trigger_index);
        Self {
            runner,
            trigger: Arc::new(start.trigger),
            outputs,
            execution_id,
            reporter,
            level,
            depth: start.depth,
            kill,
            trigger_index,
            waiting,
            ready,
            running: JoinSet::new(),
            tasks: HashMap::new(),
            inline: None,
            records,
            steps: Vec::new(),
            children: Vec::new(),
            playbook,
        }
    }

    /// Run every node that can run, until none is ready or running.
    async fn run(mut self) -> Ran {
        loop {
            self.start_ready();
            let Some(ended) = self.next_ended().await else {
                break;
            };
            self.end(ended);
        }
        Ran {
            trigger_index: self.trigger_index,
            records: self.records,
            steps: self.steps,
            children: self.children,
            trigger: self.trigger,
            outputs: self.outputs,
        }
    }

    /// Start or skip the ready nodes, as many as the concurrency allows.
    fn start_ready(&mut self) {
        while self.running.len() < self.playbook.concurrency {
            let Some(index) = self.ready.pop_front() else {
                break;
            };
            if !self.is_active(index) || self.kill.is_cancelled() {
                self.skip(index);
                continue;
            }
            let job = self.job(index);
            self.reporter
                .send(|execution_id, owner| Event::NodeStarted {
                    execution_id,
                    owner,
                    node: self.playbook.graph[index].id.clone(),
                    at: Utc::now(),
                });
            if self.running.is_empty() && self.ready.is_empty() {
                // The only node that can run now (every node of a chain): run it on
                // this task, saving a spawn and a wake on another thread per step.
                self.inline = Some((index, job));
                break;
            }
            let span = job.span();
            let task = if span.is_disabled() {
                self.running.spawn(job.run())
            } else {
                self.running.spawn(job.run().instrument(span))
            };
            self.tasks.insert(task.id(), index);
        }
    }

    /// Whether an incoming edge of node `index` is active.
    fn is_active(&self, index: NodeIndex) -> bool {
        let graph = &self.playbook.graph;
        graph.edges_directed(index, Direction::Incoming).any(|e| {
            let source = &graph[e.source()];
            active(
                e.weight(),
                &self.records[&e.source()],
                source.continue_on_error,
            )
        })
    }

    /// Node `index` does not run: Killed once the execution is stopping, else Skipped.
    fn skip(&mut self, index: NodeIndex) {
        let graph = &self.playbook.graph;
        let status = if self.kill.is_cancelled() {
            NodeStatus::Killed
        } else {
            NodeStatus::Skipped
        };
        let record = NodeRecord::new(graph[index].id.clone(), status);
        self.reporter.node_ended(&record);
        self.records.insert(index, record);
        release(graph, &mut self.waiting, &mut self.ready, index);
    }

    /// The run of node `index`, owning what it needs.
    fn job(&self, index: NodeIndex) -> NodeJob<R> {
        NodeJob {
            runner: Arc::clone(&self.runner),
            playbook: Arc::clone(&self.playbook),
            index,
            trigger: Arc::clone(&self.trigger),
            outputs: Arc::clone(&self.outputs),
            execution_id: Arc::clone(&self.execution_id),
            level: self.level,
            depth: self.depth,
            kill: self.kill.clone(),
            reporter: self.reporter.clone(),
        }
    }

    /// The next node's run to end: the inline one, or a spawned one. `None` when none
    /// is running.
    async fn next_ended(&mut self) -> Option<Ended> {
        if let Some((index, job)) = self.inline.take() {
            let span = job.span();
            let ran = if span.is_disabled() {
                AssertUnwindSafe(job.run()).catch_unwind().await
            } else {
                AssertUnwindSafe(job.run().instrument(span))
                    .catch_unwind()
                    .await
            };
            return Some(match ran {
                Ok(done) => Ended::Done(done),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Ended::Failed(index, format!("it panicked: {message}"))
                }
            });
        }
        let joined = self.running.join_next_with_id().await?;
        Some(match joined {
            Ok((_, done)) => Ended::Done(done),
            Err(e) => match self.tasks.get(&e.id()).copied() {
                Some(index) => Ended::Failed(index, e.to_string()),
                None => Ended::Unknown,
            },
        })
    }

    /// Record a node that ended, and make ready the successors it was the last to wait
    /// for.
    fn end(&mut self, ended: Ended) {
        let (index, mut record) = match ended {
            Ended::Done(done) => {
                self.steps.extend(done.runs);
                self.children.extend(done.children);
                (done.index, done.record)
            }
            Ended::Failed(index, error) => {
                // A node's run panicked: a wasp bug, which fails that node and nothing
                // else.
                tracing::error!(%error, "a node's run failed");
                let mut record = NodeRecord::new(String::new(), NodeStatus::Failed);
                record.error = StepReport::failure(
                    FailureKind::HostError,
                    format!("wasp failed while running this node: {error}"),
                )
                .error;
                (index, record)
            }
            Ended::Unknown => return,
        };
        let graph = &self.playbook.graph;
        record.id.clone_from(&graph[index].id);
        if let Some(output) = &record.output {
            // Set once: each node ends once.
            let _ = self.outputs[index.index()].set(output.clone());
        }
        self.reporter.node_ended(&record);
        self.records.insert(index, record);
        release(graph, &mut self.waiting, &mut self.ready, index);
    }
}

impl Ran {
    /// Whether `node` of `playbook` is final: one without successors, not the trigger.
    fn is_final(&self, playbook: &Playbook, node: NodeIndex) -> bool {
        node != self.trigger_index
            && playbook
                .graph
                .neighbors_directed(node, Direction::Outgoing)
                .next()
                .is_none()
    }
}

/// Why an execution stopped, as its kill tokens tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// No node was left to run.
    Ended,
    /// The reaper stopped it past its maximum runtime.
    Reaped,
    /// A kill request stopped it (its own, or its parent's).
    Killed,
}

impl Stop {
    /// From the token a kill request cancels and the one the steps are stopped by.
    fn of(requested: &CancellationToken, kill: &CancellationToken) -> Self {
        if requested.is_cancelled() {
            Stop::Killed
        } else if kill.is_cancelled() {
            Stop::Reaped
        } else {
            Stop::Ended
        }
    }
}

/// The status phase: Failed when reaped, Killed when killed; otherwise Completed when
/// no node failed, Partially Failed when some failed but a final node succeeded, and
/// Failed when none did.
fn decide_status(stop: Stop, playbook: &Playbook, ran: &Ran) -> ExecutionStatus {
    match stop {
        Stop::Reaped => return ExecutionStatus::Failed,
        Stop::Killed => return ExecutionStatus::Killed,
        Stop::Ended => {}
    }
    let failed = ran.records.values().any(|r| {
        matches!(
            r.status,
            NodeStatus::Failed | NodeStatus::TimedOut | NodeStatus::Killed
        )
    });
    let finished_pathway = playbook.graph.node_indices().any(|n| {
        ran.is_final(playbook, n)
            && ran
                .records
                .get(&n)
                .is_some_and(|r| r.status == NodeStatus::Succeeded)
    });
    match (failed, finished_pathway) {
        (false, _) => ExecutionStatus::Completed,
        (true, true) => ExecutionStatus::PartiallyFailed,
        (true, false) => ExecutionStatus::Failed,
    }
}

/// What the execution's record says about how it stopped, when something stopped it.
fn stop_message(stop: Stop, playbook: &Playbook, is_child: bool) -> Option<String> {
    match stop {
        Stop::Ended => None,
        Stop::Reaped => Some(format!(
            "the execution ran past its maximum runtime of {}; the reaper ended it",
            humantime::format_duration(playbook.max_runtime)
        )),
        Stop::Killed if is_child => Some("stopped with its parent execution".to_owned()),
        Stop::Killed => Some("killed on request".to_owned()),
    }
}

/// The execution's output as a `playbook:` node sees it: the outputs of its final
/// nodes that succeeded, by node id.
fn final_outputs(playbook: &Playbook, ran: &Ran) -> serde_json::Map<String, Value> {
    ran.records
        .iter()
        .filter(|(index, r)| ran.is_final(playbook, **index) && r.status == NodeStatus::Succeeded)
        .filter_map(|(_, r)| Some((r.id.clone(), r.output.clone()?)))
        .collect()
}

/// What an execution's record keeps of what its nodes left.
struct Kept {
    trigger: Option<Value>,
    nodes: Vec<NodeRecord>,
    steps: Vec<StepRun>,
    children: Vec<Execution>,
}

impl Kept {
    /// The capture phase: the policy of `level` (see [`capture`]) applied to the trigger,
    /// each node's record (the trigger's left out) and each step run.
    fn of(ran: Ran, level: LogLevel) -> Self {
        let trigger_index = ran.trigger_index;
        // BTreeMap<NodeIndex, _> iterates in graph order, which is the file's order.
        let nodes = ran
            .records
            .into_iter()
            .filter(|(index, _)| *index != trigger_index)
            .map(|(_, mut record)| {
                capture::apply_to_node(&mut record, level);
                record
            })
            .collect();
        let mut steps = ran.steps;
        for run in &mut steps {
            capture::apply(run, level);
        }
        Self {
            trigger: capture::kept_trigger(ran.trigger, level),
            nodes,
            steps,
            children: ran.children,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::playbook::{ActionInfo, AppInfo, Catalog, PlaybookSpec};
    use crate::trace::{StepFailure, Truncation};

    /// Apps for the fake runner: `echo` returns its input; `fail` fails (retryably when
    /// the input says so); `route` takes the pathway its input names.
    struct FakeCatalog(Vec<AppInfo>);

    impl FakeCatalog {
        fn new() -> Self {
            let app = |name: &str, pathways: &[&str]| AppInfo {
                name: name.to_owned(),
                version: "0".to_owned(),
                description: String::new(),
                actions: vec![ActionInfo {
                    name: "run".to_owned(),
                    description: String::new(),
                    input_schema: Value::Null,
                    output_schema: Value::Null,
                    pathways: pathways.iter().map(|p| (*p).to_owned()).collect(),
                }],
            };
            Self(vec![
                app("echo", &[]),
                app("fail", &[]),
                app("route", &["yes", "no"]),
                app("hang", &[]),
            ])
        }
    }

    impl Catalog for FakeCatalog {
        fn app(&self, name: &str) -> Option<&AppInfo> {
            self.0.iter().find(|a| a.name == name)
        }

        fn has_playbook(&self, id: &str) -> bool {
            ["child", "ping", "pong"].contains(&id)
        }
    }

    #[derive(Default)]
    struct FakeRunner {
        calls: Mutex<Vec<String>>,
        playbooks: BTreeMap<String, Arc<Playbook>>,
    }

    impl FakeRunner {
        /// A runner that knows the playbooks in `yamls`.
        fn with_playbooks(yamls: &[&str]) -> Self {
            let playbooks = yamls
                .iter()
                .map(|yaml| {
                    let spec = PlaybookSpec::parse("child.yaml", yaml).unwrap();
                    let playbook = Playbook::validate("child.yaml", spec, &FakeCatalog::new());
                    let playbook = Arc::new(playbook.unwrap());
                    (playbook.id.clone(), playbook)
                })
                .collect();
            Self {
                playbooks,
                ..Self::default()
            }
        }
    }

    fn report(
        output: Option<Value>,
        pathway: Option<&str>,
        error: Option<StepFailure>,
    ) -> StepReport {
        StepReport {
            status: if error.is_some() {
                ReportStatus::Failed
            } else {
                ReportStatus::Succeeded
            },
            output,
            pathway: pathway.map(str::to_owned),
            error,
            logs: Vec::new(),
            stdout: String::new(),
            stderr: String::new(),
            duration_us: 1,
            truncated: Truncation::default(),
            egress: crate::trace::Outbound::default(),
        }
    }

    impl StepRunner for FakeRunner {
        fn playbook(&self, id: &str) -> Option<Arc<Playbook>> {
            self.playbooks.get(id).cloned()
        }

        async fn run(&self, call: StepCall) -> StepReport {
            self.calls.lock().unwrap().push(call.node.clone());
            match call.app.as_str() {
                "echo" => report(Some(call.input), None, None),
                "hang" => {
                    call.kill.cancelled().await;
                    report(
                        None,
                        None,
                        Some(StepFailure {
                            kind: FailureKind::Killed,
                            message: "the step was killed".to_owned(),
                            code: None,
                            retryable: false,
                        }),
                    )
                }
                "route" => {
                    let pathway = call.input["take"].as_str().unwrap_or("no").to_owned();
                    report(Some(json!({})), Some(&pathway), None)
                }
                _ => report(
                    None,
                    None,
                    Some(StepFailure {
                        kind: FailureKind::AppError,
                        message: "it broke".to_owned(),
                        code: Some("unavailable".to_owned()),
                        retryable: call.input["retryable"] == json!(true),
                    }),
                ),
            }
        }
    }

    async fn run(yaml: &str, trigger: Value) -> (Execution, Vec<String>) {
        run_with_kill(yaml, trigger, CancellationToken::new()).await
    }

    async fn run_with_kill(
        yaml: &str,
        trigger: Value,
        kill: CancellationToken,
    ) -> (Execution, Vec<String>) {
        run_with(FakeRunner::default(), yaml, trigger, kill).await
    }

    async fn run_with(
        runner: FakeRunner,
        yaml: &str,
        trigger: Value,
        kill: CancellationToken,
    ) -> (Execution, Vec<String>) {
        let spec = PlaybookSpec::parse("test.yaml", yaml).unwrap();
        let playbook = Playbook::validate("test.yaml", spec, &FakeCatalog::new()).unwrap();
        let runner = Arc::new(runner);
        let start = Start {
            kill,
            ..Start::new(trigger)
        };
        let execution = execute(Arc::clone(&runner), Arc::new(playbook), start).await;
        let calls = runner.calls.lock().unwrap().clone();
        (execution, calls)
    }

    fn statuses(execution: &Execution) -> Vec<(&str, NodeStatus)> {
        execution
            .nodes
            .iter()
            .map(|r| (r.id.as_str(), r.status))
            .collect()
    }

    #[tokio::test]
    async fn outputs_flow_along_edges_and_pathways_route() {
        let (execution, _) = run(
            r#"
id: t
name: t
log_level: debug
trigger: { type: manual }
nodes:
  a: { app: echo, input: { v: "${trigger.x}" } }
  r: { operator: route, input: { take: "${a.output.v}" } }
  y: { app: echo, input: { from: "${a.output.v}" } }
  n: { app: echo }
  after-n: { app: echo }
edges:
  - a -> r
  - { from: r, to: y, on: "yes" }
  - { from: r, to: n, on: "no" }
  - n -> after-n
"#,
            json!({"x": "yes"}),
        )
        .await;
        assert_eq!(execution.status, ExecutionStatus::Completed);
        assert_eq!(
            statuses(&execution),
            [
                ("a", NodeStatus::Succeeded),
                ("r", NodeStatus::Succeeded),
                ("y", NodeStatus::Succeeded),
                ("n", NodeStatus::Skipped),
                ("after-n", NodeStatus::Skipped)
            ]
        );
        assert_eq!(
            execution.node("y").unwrap().output,
            Some(json!({"from": "yes"}))
        );
        assert_eq!(execution.node("r").unwrap().pathway.as_deref(), Some("yes"));
    }

    #[tokio::test]
    async fn failure_edges_retries_and_partial_failure() {
        let (execution, calls) = run(
            r#"
id: t
name: t
log_level: debug
trigger: { type: manual }
nodes:
  flaky: { app: fail, input: { retryable: true }, retry: { attempts: 3, backoff: 1ms } }
  handler: { app: echo, input: { handled: true } }
  next: { app: echo }
  other: { app: echo }
edges:
  - { from: flaky, to: handler, on: failure }
  - flaky -> next
"#,
            json!({}),
        )
        .await;
        assert_eq!(calls.iter().filter(|c| *c == "flaky").count(), 3);
        let attempts: Vec<u32> = execution
            .steps
            .iter()
            .filter(|s| s.node == "flaky")
            .map(|s| s.attempt)
            .collect();
        assert_eq!(attempts, [1, 2, 3]);
        assert_eq!(execution.node("flaky").unwrap().status, NodeStatus::Failed);
        assert_eq!(
            execution.node("handler").unwrap().status,
            NodeStatus::Succeeded
        );
        assert_eq!(execution.node("next").unwrap().status, NodeStatus::Skipped);
        assert_eq!(execution.status, ExecutionStatus::PartiallyFailed);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_retried_and_fails_the_execution() {
        let (execution, calls) = run(
            "id: t\nname: t\nlog_level: debug\ntrigger: { type: manual }\nnodes:\n  f: { app: fail, retry: { attempts: 5 } }\n  g: { app: echo }\nedges:\n  - f -> g\n",
            json!({}),
        )
        .await;
        assert_eq!(calls, ["f"]);
        assert_eq!(execution.status, ExecutionStatus::Failed);
        assert_eq!(
            execution.node("f").unwrap().error.as_ref().unwrap().message,
            "it broke"
        );
    }

    // Issue 23: at the default level a caller got a record with no node outputs, so a
    // playbook could not answer the system that called it.
    #[tokio::test]
    async fn a_declared_output_is_the_executions_result_at_every_level() {
        let playbook = |output: &str| {
            format!(
                r#"
id: t
name: t
trigger: {{ type: manual }}
output: {output}
nodes:
  a: {{ app: echo, input: {{ verdict: "${{trigger.v}}" }} }}
  broken: {{ app: fail }}
"#
            )
        };
        let (execution, _) = run(
            &playbook(r#"{ verdict: "${a.output.verdict}", who: "${playbook.id}", why: "${broken.output ?? null}" }"#),
            json!({"v": "malicious"}),
        )
        .await;
        assert_eq!(execution.header.log_level, LogLevel::Info);
        assert_eq!(
            execution.node("a").unwrap().output,
            None,
            "INFO keeps no outputs"
        );
        assert_eq!(
            execution.output,
            Some(json!({"verdict": "malicious", "who": "t", "why": null})),
            "but the result is kept"
        );
        assert_eq!(execution.output_error, None);

        let (execution, _) = run(&playbook(r#""${broken.output.reason}""#), json!({})).await;
        assert_eq!(execution.output, None);
        let error = execution.output_error.expect("it says why there is none");
        assert!(error.contains("${broken.output.reason}"), "{error}");
    }

    #[tokio::test]
    async fn for_each_runs_every_item_and_collects_outputs_in_order() {
        let (execution, _) = run(
            r#"
id: t
name: t
log_level: debug
trigger: { type: manual }
nodes:
  each: { app: echo, for_each: "${trigger.ips}", concurrency: 2, input: { ip: "${item}", i: "${item_index}" } }
  empty: { app: echo, for_each: "${trigger.none}", input: { ip: "${item}" } }
"#,
            json!({"ips": ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "none": []}),
        )
        .await;
        assert_eq!(
            execution.node("each").unwrap().output,
            Some(
                json!([{"ip": "10.0.0.1", "i": 0}, {"ip": "10.0.0.2", "i": 1}, {"ip": "10.0.0.3", "i": 2}])
            )
        );
        assert_eq!(execution.node("each").unwrap().iterations, Some(3));
        let iterations: Vec<Option<usize>> = execution
            .steps
            .iter()
            .filter(|s| s.node == "each")
            .map(|s| s.iteration)
            .collect();
        assert_eq!(iterations.len(), 3);
        assert_eq!(execution.node("empty").unwrap().output, Some(json!([])));
    }

    // Issue 23: one failed item of four failed the node and dropped the three good
    // outputs, even with `continue_on_error`.
    #[tokio::test]
    async fn a_for_each_node_keeps_its_good_items_outputs_and_counts_them() {
        let (execution, _) = run(
            r#"
id: t
name: t
log_level: debug
trigger: { type: manual }
nodes:
  each: { app: echo, for_each: "${trigger.items}", input: { v: "${item.v}" }, continue_on_error: true }
  after: { app: echo, input: { got: "${each.output[*].v}" } }
edges:
  - each -> after
"#,
            json!({"items": [{"v": 1}, {}, {"v": 3}, {}]}),
        )
        .await;
        let each = execution.node("each").unwrap();
        assert_eq!(each.status, NodeStatus::Failed);
        assert_eq!((each.iterations, each.succeeded), (Some(4), Some(2)));
        assert_eq!(each.output, Some(json!([{"v": 1}, {"v": 3}])));
        assert_eq!(
            each.error.as_ref().unwrap().message,
            "2 of 4 items failed; the first, item 1: `${item.v}` has no field `v`"
        );
        assert_eq!(
            execution.node("after").unwrap().output,
            Some(json!({"got": [1, 3]})),
            "the node after it reads the good ones"
        );
        assert_eq!(execution.status, ExecutionStatus::PartiallyFailed);
    }

    #[tokio::test]
    async fn an_unresolved_reference_fails_the_step_naming_it_and_continue_on_error_goes_on() {
        let (execution, calls) = run(
            r#"
id: t
name: t
log_level: debug
trigger: { type: manual }
nodes:
  a: { app: echo, input: { v: "${trigger.missing}" }, continue_on_error: true }
  b: { app: echo }
edges:
  - a -> b
"#,
            json!({}),
        )
        .await;
        assert_eq!(calls, ["b"], "`a` never reached the runner");
        let error = execution.node("a").unwrap().error.clone().unwrap();
        assert_eq!(error.kind, FailureKind::InputError);
        assert_eq!(error.message, "`${trigger.missing}` has no field `missing`");
        assert_eq!(execution.node("b").unwrap().status, NodeStatus::Succeeded);
        assert_eq!(execution.status, ExecutionStatus::PartiallyFailed);
    }

    const HANGING: &str = r#"
id: t
name: t
log_level: debug
max_runtime: 50ms
trigger: { type: manual }
nodes:
  quick: { app: echo }
  stuck: { app: hang }
  after: { app: echo }
edges:
  - stuck -> after
"#;

    #[tokio::test]
    async fn the_reaper_fails_an_execution_past_its_maximum_runtime_and_keeps_what_ran() {
        let (execution, _) = run(HANGING, json!({})).await;
        assert_eq!(execution.status, ExecutionStatus::Failed);
        assert_eq!(
            execution.message.as_deref(),
            Some("the execution ran past its maximum runtime of 50ms; the reaper ended it")
        );
        assert_eq!(
            statuses(&execution),
            [
                ("quick", NodeStatus::Succeeded),
                ("stuck", NodeStatus::Killed),
                ("after", NodeStatus::Killed)
            ]
        );
        assert_eq!(execution.node("quick").unwrap().output, Some(json!({})));
    }

    #[tokio::test]
    async fn a_kill_request_ends_the_execution_as_killed() {
        let kill = CancellationToken::new();
        let killer = {
            let kill = kill.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                kill.cancel();
            })
        };
        let yaml = HANGING.replace("max_runtime: 50ms", "max_runtime: 1h");
        let (execution, _) = run_with_kill(&yaml, json!({}), kill).await;
        killer.await.unwrap();
        assert_eq!(execution.status, ExecutionStatus::Killed);
        assert_eq!(execution.message.as_deref(), Some("killed on request"));
        assert_eq!(execution.node("stuck").unwrap().status, NodeStatus::Killed);
    }

    const CHILD: &str = "
id: child
name: Child
trigger: { type: manual }
nodes:
  double: { app: echo, input: { v: \"${trigger.v}\" } }
  last: { app: echo, input: { twice: [\"${double.output.v}\", \"${double.output.v}\"] } }
  gate: { operator: route, input: { take: \"${trigger.break}\" } }
  broken: { app: fail, input: {} }
  ignored: { app: echo, input: {} }
edges:
  - double -> last
  - { from: gate, to: broken, on: \"yes\" }
  - { from: double, to: ignored, on: failure }
";

    const PARENT: &str = "
id: parent
name: Parent
log_level: info
trigger: { type: manual }
nodes:
  sub: { playbook: child, input: { v: \"${trigger.v}\", break: \"${trigger.break}\" } }
  after: { app: echo, input: { got: \"${sub.output.last.twice}\" } }
edges:
  - sub -> after
";

    /// Run `PARENT`, whose `sub` node runs `CHILD`.
    async fn run_parent(trigger: Value) -> (Execution, Vec<String>) {
        let runner = FakeRunner::with_playbooks(&[CHILD]);
        run_with(runner, PARENT, trigger, CancellationToken::new()).await
    }

    #[tokio::test]
    async fn a_playbook_node_runs_a_child_execution_linked_by_parent_id() {
        let (execution, mut calls) = run_parent(json!({"v": 21, "break": "no"})).await;
        assert_eq!(execution.status, ExecutionStatus::Completed);
        assert_eq!(execution.header.log_level, LogLevel::Info);
        assert_eq!(execution.header.trigger_type, TriggerType::Manual);
        calls.sort();
        assert_eq!(calls, ["after", "double", "gate", "last"]);

        let [child] = execution.children.as_slice() else {
            panic!("one child: {:?}", execution.children);
        };
        assert_eq!(
            child.header.parent_id.as_deref(),
            Some(execution.header.id.as_str())
        );
        assert_eq!(child.header.playbook_id, "child");
        assert_eq!(child.header.trigger_type, TriggerType::Playbook);
        // The child records at its parent's level, not its own default.
        assert_eq!(child.header.log_level, LogLevel::Info);
        assert_eq!(child.status, ExecutionStatus::Completed);
        let sub = execution.node("sub").unwrap();
        assert_eq!(sub.children, std::slice::from_ref(&child.header.id));
        let sub_step = execution.steps.iter().find(|s| s.node == "sub").unwrap();
        assert_eq!(sub_step.child.as_deref(), Some(child.header.id.as_str()));
        // The child's output is its final nodes' outputs that succeeded (`broken` and
        // `ignored` were skipped), which `after` reads.
        assert!(
            execution.node("after").unwrap().output.is_none(),
            "INFO keeps no output"
        );
        let spec = PlaybookSpec::parse("test.yaml", &PARENT.replace("info", "debug")).unwrap();
        let playbook = Playbook::validate("test.yaml", spec, &FakeCatalog::new()).unwrap();
        let runner = Arc::new(FakeRunner::with_playbooks(&[CHILD]));
        let trigger = json!({"v": 21, "break": "no"});
        let execution = execute(runner, Arc::new(playbook), Start::new(trigger)).await;
        assert_eq!(
            execution.node("sub").unwrap().output,
            Some(json!({"last": {"twice": [21, 21]}}))
        );
        assert_eq!(
            execution.node("after").unwrap().output,
            Some(json!({"got": [21, 21]}))
        );
    }

    #[tokio::test]
    async fn a_child_that_fails_fails_its_node_naming_the_child() {
        let (execution, _) = run_parent(json!({"v": 1, "break": "yes"})).await;
        assert_eq!(execution.status, ExecutionStatus::Failed);
        let child = &execution.children[0];
        assert_eq!(child.status, ExecutionStatus::PartiallyFailed);
        let error = execution.node("sub").unwrap().error.clone().unwrap();
        assert_eq!(error.kind, FailureKind::ChildFailed);
        assert_eq!(
            error.message,
            format!(
                "child execution {} of playbook `child` ended Partially Failed (`broken`: it broke)",
                child.header.id
            )
        );
        assert_eq!(execution.node("after").unwrap().status, NodeStatus::Skipped);
    }

    #[tokio::test]
    async fn playbooks_that_call_each_other_stop_at_the_depth_limit() {
        let ping = "id: ping\nname: x\ntrigger: { type: manual }\nnodes:\n  call: { playbook: pong, input: {} }\n";
        let pong = "id: pong\nname: x\ntrigger: { type: manual }\nnodes:\n  call: { playbook: ping, input: {} }\n";
        let runner = FakeRunner::with_playbooks(&[ping, pong]);
        let (execution, _) = run_with(runner, ping, json!({}), CancellationToken::new()).await;
        assert_eq!(execution.status, ExecutionStatus::Failed);
        let mut depth = 0;
        let mut deepest = &execution;
        while let Some(child) = deepest.children.first() {
            depth += 1;
            deepest = child;
        }
        assert_eq!(depth, MAX_DEPTH);
        let error = deepest.node("call").unwrap().error.clone().unwrap();
        assert_eq!(error.kind, FailureKind::InputError);
        assert!(error.message.contains("9 levels deep"), "{}", error.message);
    }

    #[tokio::test]
    async fn killing_a_parent_stops_its_child() {
        let child = "id: child\nname: x\ntrigger: { type: manual }\nmax_runtime: 1h\nnodes:\n  stuck: { app: hang, input: {} }\n";
        let parent = "id: parent\nname: x\ntrigger: { type: manual }\nmax_runtime: 1h\nnodes:\n  sub: { playbook: child, input: {} }\n";
        let kill = CancellationToken::new();
        let killer = {
            let kill = kill.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                kill.cancel();
            })
        };
        let runner = FakeRunner::with_playbooks(&[child]);
        let (execution, _) = run_with(runner, parent, json!({}), kill).await;
        killer.await.unwrap();
        assert_eq!(execution.status, ExecutionStatus::Killed);
        assert_eq!(execution.node("sub").unwrap().status, NodeStatus::Killed);
        let child = &execution.children[0];
        assert_eq!(child.status, ExecutionStatus::Killed);
        assert_eq!(
            child.message.as_deref(),
            Some("stopped with its parent execution")
        );
        assert_eq!(child.node("stuck").unwrap().status, NodeStatus::Killed);
    }

    #[tokio::test]
    async fn inputs_and_outputs_are_captured_only_at_debug_or_trace() {
        let yaml = "id: t\nname: t\nlog_level: LEVEL\ntrigger: { type: manual }\nnodes:\n  a: { app: echo, input: { secret_sauce: 1 } }\n";
        let (info, _) = run(&yaml.replace("LEVEL", "info"), json!({})).await;
        let step = &info.steps[0];
        assert!(!step.capture.data);
        assert_eq!((&step.input, &step.report.output), (&None, &None));
        assert_eq!(info.node("a").unwrap().output, None);

        let (debug, _) = run(&yaml.replace("LEVEL", "debug"), json!({})).await;
        let step = &debug.steps[0];
        assert!(step.capture.data);
        assert_eq!(step.input, Some(json!({"secret_sauce": 1})));
        assert_eq!(
            debug.node("a").unwrap().output,
            Some(json!({"secret_sauce": 1}))
        );
    }

    /// A random DAG over `n` nodes: edges only from a lower to a higher index, each
    /// with a random `on`; each node `echo` or `fail`.
    fn dag() -> impl proptest::strategy::Strategy<Value = (Vec<bool>, Vec<(usize, usize, u8)>)> {
        use proptest::prelude::*;
        (2usize..9).prop_flat_map(|n| {
            (
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec((0..n, 0..n, 0u8..3), 0..n * 2).prop_map(|edges| {
                    let mut seen = std::collections::BTreeSet::new();
                    edges
                        .into_iter()
                        .filter(|(a, b, _)| a < b && seen.insert((*a, *b)))
                        .collect::<Vec<_>>()
                }),
            )
        })
    }

    fn yaml(fails: &[bool], edges: &[(usize, usize, u8)], back: Option<(usize, usize)>) -> String {
        let mut text =
            "id: g\nname: g\nlog_level: debug\ntrigger: { type: manual }\nnodes:\n".to_owned();
        for (i, fail) in fails.iter().enumerate() {
            text.push_str(&format!(
                "  n{i}: {{ app: {} }}\n",
                if *fail { "fail" } else { "echo" }
            ));
        }
        text.push_str("edges:\n");
        for (a, b, on) in edges {
            let on = ["success", "failure", "always"][usize::from(*on)];
            text.push_str(&format!("  - {{ from: n{a}, to: n{b}, on: {on} }}\n"));
        }
        if let Some((a, b)) = back {
            text.push_str(&format!("  - n{b} -> n{a}\n"));
        }
        text
    }

    proptest::proptest! {
        #[test]
        fn generated_dags_validate_and_every_node_ends_once_after_its_predecessors(
            (fails, edges) in dag()
        ) {
            let text = yaml(&fails, &edges, None);
            let spec = PlaybookSpec::parse("g.yaml", &text).unwrap();
            let playbook = Playbook::validate("g.yaml", spec, &FakeCatalog::new()).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let runner = Arc::new(FakeRunner::default());
            let execution = runtime.block_on(execute(
                Arc::clone(&runner),
                Arc::new(playbook),
                Start::new(json!({})),
            ));
            // Every node ends exactly once, in a terminal state.
            let ids: Vec<&str> = execution.nodes.iter().map(|n| n.id.as_str()).collect();
            let expected: Vec<String> = (0..fails.len()).map(|i| format!("n{i}")).collect();
            proptest::prop_assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
            for node in &execution.nodes {
                proptest::prop_assert!(!matches!(node.status, NodeStatus::Pending | NodeStatus::Running));
            }
            // The schedule respects every edge: a node that ran was called after each
            // of its predecessors that ran.
            let calls = runner.calls.lock().unwrap().clone();
            let position = |id: &str| calls.iter().position(|c| c == id);
            for (a, b, _) in &edges {
                if let (Some(pa), Some(pb)) = (position(&format!("n{a}")), position(&format!("n{b}"))) {
                    proptest::prop_assert!(pa < pb, "n{} ran before its predecessor n{}", b, a);
                }
            }
        }

        #[test]
        fn a_back_edge_is_refused_as_a_cycle((fails, edges) in dag()) {
            proptest::prop_assume!(!edges.is_empty());
            let (a, b, _) = edges[0];
            let spec = PlaybookSpec::parse("g.yaml", &yaml(&fails, &edges, Some((a, b)))).unwrap();
            let error = Playbook::validate("g.yaml", spec, &FakeCatalog::new()).unwrap_err().to_string();
            proptest::prop_assert!(error.contains("the edges form a cycle through"), "{}", error);
            let a_named = format!("`n{a}`");
            let b_named = format!("`n{b}`");
            proptest::prop_assert!(error.contains(&a_named) && error.contains(&b_named), "{}", error);
        }
    }
}
