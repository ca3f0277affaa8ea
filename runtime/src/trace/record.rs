//! The records of an execution: its header, its end state, each node's and each step
//! run's, the report a step returns, their statuses, and the events sent as it runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Capture, LogLevel, LogLine, Truncation};

/// A new execution id: `ex_` and a ULID, so that ids sort by creation time.
pub fn new_execution_id() -> String {
    format!("ex_{}", ulid::Ulid::new())
}

/// The tenant of what is made without one: the playbooks and assets of files, what the
/// server's own token or a server without a token makes.
pub const DEFAULT_TENANT: &str = "default";

/// Whether `name` can name a tenant: 1 to 63 of a-z and 0-9, in words joined by single
/// `-` (so that each tenant's secret variables, `WASP_SECRET_<NAME>__*` with `-` as `_`,
/// are its own).
pub fn valid_tenant(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Whose an execution is: its tenant's, and its application's when its playbook was
/// made for one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    /// The tenant.
    pub tenant: String,
    /// The application.
    pub app: Option<String>,
}

/// The one rule of who reaches what: a caller or a playbook of tenant `by.0`, acting for
/// application `by.1` when it names one, reaches what belongs to tenant `of.0` and
/// application `of.1` when it is of its tenant, and of its application when it acts for
/// one (a caller acting for no application reaches every application of its tenant).
pub fn within_reach(by: (&str, Option<&str>), of: (&str, Option<&str>)) -> bool {
    by.0 == of.0 && by.1.is_none_or(|app| of.1 == Some(app))
}

impl ExecutionHeader {
    /// Whose it is.
    pub fn owner(&self) -> Owner {
        Owner {
            tenant: self.tenant_id.clone(),
            app: self.app_id.clone(),
        }
    }
}

/// What an execution is, fixed when it is queued: every record of an execution (the
/// whole record, the store's row, the start the store is told of) begins with it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ExecutionHeader {
    /// Its id: `ex_` and a ULID.
    pub id: String,
    /// The execution whose `playbook:` node started it.
    pub parent_id: Option<String>,
    /// The execution one of whose steps it replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// The playbook's XID.
    pub playbook_id: String,
    /// The playbook's name.
    pub playbook_name: String,
    /// How it was started.
    pub trigger_type: TriggerType,
    /// The level it records at.
    pub log_level: LogLevel,
    /// When it was queued.
    #[serde(serialize_with = "rfc3339")]
    pub queued_at: DateTime<Utc>,
    /// The tenant it belongs to: its playbook's.
    pub tenant_id: String,
    /// The application its playbook was made for, when one was (seed 003's `app_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
}

/// How an execution was started (seed 004's trigger types, and two of wasp's own).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum TriggerType {
    /// Run by a person, from the CLI, the API or the page.
    Manual,
    /// Run by a person to debug it: recorded at TRACE.
    Debug,
    /// Started by a webhook request.
    Webhook,
    /// Started by a timer.
    Timer,
    /// Started by an event matching its trigger conditions.
    Event,
    /// Started by a `playbook:` node of another execution.
    Playbook,
}

/// A node's status, as the trace records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum NodeStatus {
    /// Not started.
    Pending,
    /// Running.
    Running,
    /// Ended with an output.
    Succeeded,
    /// Ended with an error.
    Failed,
    /// Not run: no incoming edge was active.
    Skipped,
    /// Stopped at its deadline.
    TimedOut,
    /// Stopped by a kill.
    Killed,
}

/// The execution's status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum ExecutionStatus {
    /// Waiting to start.
    Queued,
    /// Running.
    Running,
    /// Every node that ran succeeded.
    Completed,
    /// Some nodes failed, but a pathway finished.
    #[serde(rename = "Partially Failed")]
    PartiallyFailed,
    /// Every pathway failed.
    Failed,
    /// Killed on request.
    Killed,
}

/// One run of a step: one attempt of one iteration of one node.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepRun {
    /// The node.
    pub node: String,
    /// The app it ran (for a `playbook:` node, the playbook it ran as a child).
    pub app: String,
    /// The action (empty for a `playbook:` node).
    pub action: String,
    /// The iteration of a `for_each`, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iteration: Option<usize>,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The rendered input (captured at DEBUG and TRACE only).
    pub input: Option<Value>,
    /// What the step run produced (its output, stdout and stderr captured at DEBUG and
    /// TRACE only).
    pub report: StepReport,
    /// What the capture policy kept of this step run. (Absent from a stored record when
    /// nothing was kept: the store leaves out what is empty.)
    #[serde(default)]
    pub capture: Capture,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The child execution a `playbook:` node started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
}

impl StepRun {
    /// How it ended, in the words of a node's status.
    pub fn status(&self) -> NodeStatus {
        self.report.node_status()
    }
}

/// A node's end state (read back from a stored record, too).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeRecord {
    /// The node's id.
    pub id: String,
    /// Its status.
    pub status: NodeStatus,
    /// Its output (for `for_each`, the array of iteration outputs).
    pub output: Option<Value>,
    /// The pathway it took.
    pub pathway: Option<String>,
    /// Its error.
    pub error: Option<StepFailure>,
    /// Iterations run, for `for_each`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// Of those, how many succeeded (its output holds theirs, in item order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<usize>,
    /// Wall-clock time from start to end, in microseconds.
    pub duration_us: u64,
    /// The child executions a `playbook:` node started (one per iteration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
}

impl NodeRecord {
    /// A node that ended as `status` with nothing else recorded yet.
    pub fn new(id: String, status: NodeStatus) -> Self {
        Self {
            id,
            status,
            output: None,
            pathway: None,
            error: None,
            iterations: None,
            succeeded: None,
            duration_us: 0,
            children: Vec::new(),
        }
    }
}

/// The record of one execution.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Execution {
    /// What it is, fixed when it was queued.
    #[serde(flatten)]
    pub header: ExecutionHeader,
    /// Its status.
    pub status: ExecutionStatus,
    /// Why it ended as it did, when that is not plain from the nodes: the reaper, a
    /// kill.
    pub message: Option<String>,
    /// Its result, when the playbook declares one (`output:`): kept at every level,
    /// capped at 1 MiB (`trace::MAX_RESULT_BYTES`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why its declared result could not be built (a reference to a node that did not
    /// succeed, with no `??` default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
    /// The HTTP status to answer its result with (`output_status:`), when the playbook
    /// declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_status: Option<u16>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: DateTime<Utc>,
    /// Wall-clock time from start to end, in microseconds.
    pub duration_us: u64,
    /// The trigger payload (captured at DEBUG and TRACE only).
    pub trigger: Option<Value>,
    /// Every node's end state, in the playbook's order.
    pub nodes: Vec<NodeRecord>,
    /// Every step run, in the order they ended.
    pub steps: Vec<StepRun>,
    /// The executions its `playbook:` nodes started, each with its own record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Execution>,
}

impl Execution {
    /// The end state of node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// Something that happened in an execution, sent as it happens (see [`Start::events`]).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A node started.
    NodeStarted {
        /// The execution.
        execution_id: String,
        /// Whose it is (not sent: each listener hears only what it may see).
        #[serde(skip)]
        #[schemars(skip)]
        owner: std::sync::Arc<Owner>,
        /// The node.
        node: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A node ended (or was skipped, or killed before it started).
    NodeEnded {
        /// The execution.
        execution_id: String,
        /// Whose it is (not sent: each listener hears only what it may see).
        #[serde(skip)]
        #[schemars(skip)]
        owner: std::sync::Arc<Owner>,
        /// The node.
        node: String,
        /// How it ended.
        status: NodeStatus,
        /// When.
        at: DateTime<Utc>,
        /// How long it ran, in microseconds.
        duration_us: u64,
        /// The pathway it took.
        pathway: Option<String>,
        /// Its error.
        error: Option<StepFailure>,
        /// Iterations run, for `for_each`.
        iterations: Option<usize>,
        /// Of those, how many succeeded.
        #[serde(skip_serializing_if = "Option::is_none")]
        succeeded: Option<usize>,
    },
    /// One attempt of one iteration of a node ended; its app log lines (at or above
    /// the execution's level, redacted).
    StepEnded {
        /// The execution.
        execution_id: String,
        /// Whose it is (not sent: each listener hears only what it may see).
        #[serde(skip)]
        #[schemars(skip)]
        owner: std::sync::Arc<Owner>,
        /// The node.
        node: String,
        /// The iteration of a `for_each`.
        iteration: Option<usize>,
        /// The attempt, from 1.
        attempt: u32,
        /// Whether it succeeded.
        status: StepStatus,
        /// How long it ran, in microseconds.
        duration_us: u64,
        /// Its log lines.
        logs: Vec<LogLine>,
        /// The step run as its execution's level keeps it, for the store to keep it
        /// before the execution ends (not sent to event listeners: it can be large).
        #[serde(skip)]
        #[schemars(skip)]
        run: Option<std::sync::Arc<StepRun>>,
    },
    /// The execution ended and its record is stored (sent by whoever stores it).
    ExecutionEnded {
        /// The execution.
        execution_id: String,
        /// Whose it is (not sent: each listener hears only what it may see).
        #[serde(skip)]
        #[schemars(skip)]
        owner: std::sync::Arc<Owner>,
        /// How it ended.
        status: ExecutionStatus,
        /// When.
        at: DateTime<Utc>,
    },
}

impl Event {
    /// The execution it belongs to.
    pub fn execution_id(&self) -> &str {
        match self {
            Event::NodeStarted { execution_id, .. }
            | Event::NodeEnded { execution_id, .. }
            | Event::StepEnded { execution_id, .. }
            | Event::ExecutionEnded { execution_id, .. } => execution_id,
        }
    }

    /// Whose the execution it belongs to is.
    pub fn owner(&self) -> &Owner {
        match self {
            Event::NodeStarted { owner, .. }
            | Event::NodeEnded { owner, .. }
            | Event::StepEnded { owner, .. }
            | Event::ExecutionEnded { owner, .. } => owner,
        }
    }
}

/// Whether the step succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The action returned an output.
    Succeeded,
    /// The action returned an error, or the sandbox stopped it.
    Failed,
}

/// Why a step failed. Three sources are kept apart: the app failed on purpose
/// (`app_error`); the sandbox stopped it (`timeout`, `memory_limit`, `stack_overflow`,
/// `trap`, `panic`, `killed`) or refused what it returned (`invalid_output`); or the
/// host itself failed (`host_error`, a wasp bug or a broken environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The app returned an error.
    AppError,
    /// The step ran past its deadline.
    Timeout,
    /// The app asked for more memory than its limit.
    MemoryLimit,
    /// The app exhausted its stack.
    StackOverflow,
    /// The app trapped (out-of-bounds access, unreachable, …), or a host call refused
    /// what the app passed it (a handle it does not own, an empty poll list, more
    /// data than one call may copy), or it called `exit`.
    Trap,
    /// The app panicked.
    Panic,
    /// The step was killed.
    Killed,
    /// The app returned something that is not a valid outcome.
    InvalidOutput,
    /// The host failed.
    HostError,
    /// The step's input could not be built: a `${…}` reference resolved to nothing, or
    /// `for_each` was given something that is not an array. Set by the engine; the app
    /// never ran.
    InputError,
    /// A `playbook:` node's child execution did not complete. Set by the engine; the
    /// child's own trace says why.
    ChildFailed,
}

/// A failed step's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepFailure {
    /// The class of failure.
    pub kind: FailureKind,
    /// What happened, redacted.
    pub message: String,
    /// For `app_error`: the app's own error code (`invalid_input`, `not_found`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Whether running the step again might succeed.
    pub retryable: bool,
}

impl StepFailure {
    /// A failure of `kind` with `message`, retryable when running again might end
    /// otherwise (a timeout).
    pub fn new(kind: FailureKind, message: String) -> Self {
        let retryable = matches!(kind, FailureKind::Timeout);
        Self {
            kind,
            message,
            code: None,
            retryable,
        }
    }
}

/// Everything one step run produced, with secrets redacted. (A stored report may leave
/// out the fields that hold nothing; they read back empty.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepReport {
    /// Whether it succeeded.
    pub status: StepStatus,
    /// The output, when it succeeded.
    pub output: Option<Value>,
    /// The pathway taken, for operators.
    pub pathway: Option<String>,
    /// The error, when it failed.
    pub error: Option<StepFailure>,
    /// The app's log lines at or above the call's level.
    #[serde(default)]
    pub logs: Vec<LogLine>,
    /// What the app wrote to stdout.
    #[serde(default)]
    pub stdout: String,
    /// What the app wrote to stderr.
    #[serde(default)]
    pub stderr: String,
    /// Instantiation plus call, in microseconds.
    pub duration_us: u64,
    /// What was cut.
    #[serde(default)]
    pub truncated: Truncation,
    /// The outbound HTTP requests it made, and of those how many the host refused.
    #[serde(default, skip_serializing_if = "Outbound::is_empty")]
    pub egress: Outbound,
}

/// How many outbound HTTP requests a step made, and how many of them the host refused
/// (a host its asset does not allow, a special address, past the step's limit).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Outbound {
    /// Requests made.
    pub requests: u64,
    /// Of those, refused.
    pub refused: u64,
}

impl Outbound {
    /// Whether it made none.
    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }
}

impl StepReport {
    /// The report of a step that succeeded with `output` and nothing else captured.
    pub fn success(output: Value) -> Self {
        Self {
            status: StepStatus::Succeeded,
            output: Some(output),
            pathway: None,
            error: None,
            logs: Vec::new(),
            stdout: String::new(),
            stderr: String::new(),
            duration_us: 0,
            truncated: Truncation::default(),
            egress: Outbound::default(),
        }
    }

    /// The report of a step that failed before or around the sandbox: `kind` and
    /// `message`, nothing captured.
    pub fn failure(kind: FailureKind, message: String) -> Self {
        Self {
            status: StepStatus::Failed,
            output: None,
            pathway: None,
            error: Some(StepFailure::new(kind, message)),
            logs: Vec::new(),
            stdout: String::new(),
            stderr: String::new(),
            duration_us: 0,
            truncated: Truncation::default(),
            egress: Outbound::default(),
        }
    }

    /// How it ended, in the words of a node's status.
    pub fn node_status(&self) -> NodeStatus {
        match (&self.status, self.error.as_ref().map(|e| e.kind)) {
            (StepStatus::Succeeded, _) => NodeStatus::Succeeded,
            (_, Some(FailureKind::Timeout)) => NodeStatus::TimedOut,
            (_, Some(FailureKind::Killed)) => NodeStatus::Killed,
            _ => NodeStatus::Failed,
        }
    }
}

/// Serialize `time` as chrono does (RFC 3339 with `Z`, and 0, 3, 6 or 9 fractional
/// digits, the fewest that hold it) but written straight into a buffer: chrono's goes
/// through `fmt`, and serde_json escapes each piece, which made the timestamps a
/// twentieth of the writer's time.
pub fn rfc3339<S: serde::Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use chrono::{Datelike as _, Timelike as _};
    use serde::Serialize as _;
    /// Write `value` as `digits.len()` decimal digits, zero-padded.
    fn put(digits: &mut [u8], mut value: u32) {
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    let (year, nanos) = (time.year(), time.nanosecond());
    // Years chrono writes with a sign, and leap seconds, are left to chrono.
    let Ok(year) = u32::try_from(year) else {
        return time.serialize(serializer);
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return time.serialize(serializer);
    }
    let mut text = *b"0000-00-00T00:00:00.000000000Z";
    put(&mut text[0..4], year);
    put(&mut text[5..7], time.month());
    put(&mut text[8..10], time.day());
    put(&mut text[11..13], time.hour());
    put(&mut text[14..16], time.minute());
    put(&mut text[17..19], time.second());
    let digits = match nanos {
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    };
    put(&mut text[20..29], nanos);
    let end = if digits == 0 { 19 } else { 20 + digits };
    text[end] = b'Z';
    let text = std::str::from_utf8(&text[..=end]).map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(text)
}
