//! Persistence of playbooks and execution traces, behind the [`Store`] trait so that
//! the engine and the API do not know which database holds them. SQLite
//! ([`SqliteStore`]) is the embedded default; a PostgreSQL backend (workers on several
//! machines) is another implementation of the same trait.
//!
//! The trait is synchronous: SQLite is a library call. A server makes its reads on
//! Tokio's blocking pool ([`tokio::task::spawn_blocking`]), so that a slow read never
//! stalls the executions' tasks; its writes, in batches, inline on a worker (a commit
//! in WAL mode with `synchronous = NORMAL` waits for no disk but when the log starts
//! over, and a hop to another thread cost more than the write: see `service::writer`).
//!
//! What crosses the trait is typed: filters ([`ExecutionFilter`], [`StepFilter`],
//! [`LogFilter`], [`AuditFilter`]) hold a checked TQL [`tql::Condition`] and conditions
//! of their own, and each backend renders them in its dialect (`sqlite/render.rs`); rows
//! come back as records, in wasp's words. The store imports only `trace` and `tql`.
//!
//! Three things it keeps as JSON documents it never looks inside: an ended execution's
//! whole record (written once, served as it was written), an asset's definition (its
//! type lives above the store, in `assets`, and the service checks it on the way in and
//! out), and a Splunk SOAR action run or app run (documents in SOAR's own shape, which
//! the service writes and the SOAR view serves). What the store filters, sorts or counts
//! on is typed.

#[cfg(test)]
mod conformance;
mod postgres;
mod render;
mod sqlite;
mod stored;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::tql;
use crate::trace::{
    Event, Execution, ExecutionHeader, ExecutionStatus, LogLevel, NodeStatus, StepFailure, StepRun,
    TriggerType,
};

/// What went wrong in the store. Each cause is kept typed (`#[source]`); the message
/// names it too, because the layers above log the message alone.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database file could not be opened or migrated.
    #[error("cannot open the database `{path}`: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer wasp, whose schema this one does not know.
    #[error(
        "cannot open the database `{path}`: its schema is version {version}, newer than this \
         wasp knows ({known}); use a newer wasp"
    )]
    Newer {
        /// The file.
        path: String,
        /// The schema version it has.
        version: usize,
        /// The newest this wasp knows.
        known: usize,
    },
    /// The thread that checkpoints the database's write-ahead log did not start.
    #[error("cannot open the database `{path}`: cannot start the checkpoint thread: {source}")]
    Checkpointer {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored record does not decode: the file was changed by something else.
    #[error("a stored record does not decode: {what}: {source}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be encoded to be stored.
    #[error("a record cannot be encoded: {what}: {source}")]
    Encode {
        /// Which record.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A record that was just written is not there to read back.
    #[error("a stored record does not decode: {0}")]
    Missing(String),
    /// The playbook id is another tenant's.
    #[error("the playbook id `{0}` is taken; choose another")]
    Taken(String),
    /// PostgreSQL failed.
    #[error("PostgreSQL error: {message}")]
    Postgres {
        /// The error and its causes (the server's message among them).
        message: String,
        /// The error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// PostgreSQL could not be reached, or its database cannot be used.
    #[error("cannot use the database {server}: {reason}")]
    Connect {
        /// The server and database, without credentials.
        server: String,
        /// Why.
        reason: String,
    },
    /// A stored column holds a value this wasp does not know.
    #[error("a stored column does not decode: {0}")]
    Column(String),
}

impl From<tokio_postgres::Error> for Error {
    fn from(source: tokio_postgres::Error) -> Self {
        // The client's own words are few ("db error"): the server's are its cause.
        let mut message = source.to_string();
        let mut cause = std::error::Error::source(&source);
        while let Some(error) = cause {
            message = format!("{message}: {error}");
            cause = error.source();
        }
        Self::Postgres { message, source }
    }
}

/// An API key as the store keeps it: who it is, never its secret (only the secret's
/// SHA-256, to check a presented one against).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ApiKey {
    /// Its id: `key_` and a ULID; the first part of its token.
    pub id: String,
    /// What it is for, said by whoever made it.
    pub name: String,
    /// The tenant it acts in.
    pub tenant: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// The SHA-256 of its secret, in hex.
    #[serde(skip)]
    pub secret_sha256: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key is refused.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A list of Splunk SOAR records (action runs, app runs) as its clients ask for one:
/// conditions on the record's top-level fields (`_filter_<field>[__<lookup>]`, and
/// `_exclude_…` negated), an order, and a page.
#[derive(Debug, Clone, PartialEq)]
pub struct SoarQuery {
    /// Every one must hold.
    pub conditions: Vec<SoarCondition>,
    /// The field to order by, and whether descending; by number (oldest first) without.
    pub sort: Option<(SoarField, bool)>,
    /// Records to skip.
    pub offset: i64,
    /// Records at most.
    pub limit: i64,
    /// Only the records of this tenant; every tenant's when `None`.
    pub tenant: Option<String>,
}

/// A top-level field of a SOAR record: 1 to 64 characters of a-z, 0-9 and `_`, so that
/// it can name a JSON path without escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoarField(String);

impl SoarField {
    /// `name` as a field, when it is one.
    pub fn new(name: &str) -> Option<Self> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        valid.then(|| Self(name.to_owned()))
    }

    /// The field's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// One condition of a [`SoarQuery`]: Django's lookups, as Splunk SOAR's REST API takes
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct SoarCondition {
    /// The field.
    pub field: SoarField,
    /// How it is compared.
    pub lookup: SoarLookup,
    /// With what (a list for `in`; for `isnull`, whether it is null).
    pub value: Value,
    /// `_exclude_`: the records it does not hold for (a missing field included).
    pub negated: bool,
}

/// How a [`SoarCondition`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoarLookup {
    /// Equal (the default).
    Exact,
    /// Equal to one of a list.
    In,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Text that contains it.
    Contains,
    /// Text that contains it, ignoring ASCII case.
    IContains,
    /// Text that starts with it.
    StartsWith,
    /// Null or missing (value `true`), or not (value `false`).
    IsNull,
}

impl SoarLookup {
    /// The lookup a suffix names (`__gt` is `gt`), when it is one.
    pub fn named(name: &str) -> Option<Self> {
        Some(match name {
            "exact" => Self::Exact,
            "in" => Self::In,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "contains" => Self::Contains,
            "icontains" => Self::IContains,
            "startswith" => Self::StartsWith,
            "isnull" => Self::IsNull,
            _ => return None,
        })
    }
}

/// A playbook as the store keeps it: the record of seed 003 around the definition.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlaybookRecord {
    /// The string id: `pb_` and a ULID.
    pub id: String,
    /// The numeric id (ThreatConnect's `playbookId`).
    pub num: i64,
    /// The XID (the playbook file's `id`): stable, unique, used in URLs and TQL.
    pub xid: String,
    /// The tenant.
    pub tenant_id: String,
    /// Server stamps.
    pub created_at: DateTime<Utc>,
    /// Updated on every write.
    pub updated_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: Option<String>,
    /// Who last changed it.
    pub updated_by: Option<String>,
    /// Where it came from: `file` for a playbook loaded from a directory, `api`.
    pub source: String,
    /// Soft delete.
    pub is_deleted: bool,
    /// When it was soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// The record's schema version.
    pub schema_version: i64,
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The incident-response phase it serves.
    pub category: Option<String>,
    /// Conditions that must all hold to fire it on an event.
    pub trigger_conditions: Value,
    /// Whether matching events fire it.
    pub auto_execute: bool,
    /// MITRE ATT&CK tactic ids.
    pub mitre_tactics: Value,
    /// MITRE ATT&CK technique ids.
    pub mitre_techniques: Value,
    /// The definition: the playbook file, as JSON. (The API answers it as `definition`,
    /// and `steps` as the ordered list of the playbook's steps.)
    pub steps: Value,
    /// Assets that must be configured for it to run.
    pub required_connector_ids: Value,
    /// Who owns it.
    pub owner_id: Option<String>,
    /// Whether it may run.
    pub enabled: bool,
    /// When it last ran.
    pub last_run_at: Option<DateTime<Utc>>,
    /// Its last execution.
    pub last_run_id: Option<String>,
    /// Executions by status, and durations.
    pub run_stats: Value,
    /// Free-form tags.
    pub tags: Value,
    /// Who soft-deleted it.
    pub deleted_by: Option<String>,
    /// The application it was made for, when its maker's JWT was minted for one: only
    /// callers for that application see it.
    pub app_id: Option<String>,
}

/// An execution as lists show it: the record without its nodes and steps.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExecutionRow {
    /// The numeric id (ThreatConnect's `id`).
    pub num: i64,
    /// What it is.
    #[serde(flatten)]
    pub header: ExecutionHeader,
    /// The playbook's numeric id, when the store knows the playbook.
    pub playbook_num: Option<i64>,
    /// Its status.
    pub status: ExecutionStatus,
    /// Why it ended as it did.
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// How long it ran, in milliseconds.
    pub duration_ms: Option<i64>,
}

/// An execution that is about to run.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// What it is.
    pub header: ExecutionHeader,
    /// Queued or Running.
    pub status: ExecutionStatus,
}

impl NewExecution {
    /// The start of `execution`, as it was when it began running.
    pub fn running(execution: &Execution) -> Self {
        Self {
            header: execution.header.clone(),
            status: ExecutionStatus::Running,
        }
    }
}

/// One change to the store, for [`Store::write`].
#[derive(Debug, Clone)]
pub enum Write {
    /// An execution is queued or running.
    Start(NewExecution),
    /// A node of a running execution started or ended.
    Event(Event),
    /// An execution ended: its record, step runs, log lines and children.
    Finish(Box<Execution>),
}

impl Write {
    /// The ids of the executions that `batch` ends, their children's too.
    pub fn ended_in(batch: &[Write]) -> std::collections::HashSet<&str> {
        fn add<'a>(execution: &'a Execution, ids: &mut std::collections::HashSet<&'a str>) {
            ids.insert(&execution.header.id);
            for child in &execution.children {
                add(child, ids);
            }
        }
        let mut ids = std::collections::HashSet::new();
        for write in batch {
            if let Write::Finish(execution) = write {
                add(execution, &mut ids);
            }
        }
        ids
    }
}

/// The whole record of an execution.
#[derive(Debug, Clone)]
pub enum ExecutionRecord {
    /// It has ended: its record as `wasp run --output json` prints it, its step runs
    /// included and its children by id.
    Ended(Value),
    /// It has not ended (or its process stopped before it could): its row, and the
    /// step runs that ended so far, as JSON (its node states are kept apart, see
    /// [`Store::node_states`]).
    Unfinished {
        /// Its row.
        row: Box<ExecutionRow>,
        /// Its step runs so far, in the order they ended.
        steps: Vec<Value>,
    },
}

/// What [`Store::interrupt_unfinished`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted {
    /// Executions left Queued or Running.
    pub executions: usize,
    /// Splunk SOAR action runs left pending or running.
    pub action_runs: usize,
}

/// A page of executions.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Page {
    /// The executions on the page.
    pub rows: Vec<ExecutionRow>,
    /// Every execution the filter matches, when the count was asked for.
    pub total: Option<i64>,
    /// Whether more match past this page.
    pub more: bool,
}

/// How to order a list: by the order records were stored in, or by the time the list
/// names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Newest first (the default).
    NewestFirst,
    /// Oldest first.
    OldestFirst,
}

/// Which page of a list: skip `offset`, then at most `limit`, in `sort` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Skip this many.
    pub offset: i64,
    /// At most this many.
    pub limit: i64,
    /// In this order.
    pub sort: Sort,
}

impl Window {
    /// Every record, in `sort` order.
    pub fn all(sort: Sort) -> Self {
        Self {
            offset: 0,
            limit: i64::MAX,
            sort,
        }
    }
}

/// What a caller may see of executions (and their step runs, log lines and audit
/// rows): one tenant's, and of one application's playbooks when it acts for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The tenant.
    pub tenant: String,
    /// The application, when the caller acts for one.
    pub app: Option<String>,
}

/// The fields of an execution that TQL may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionField {
    /// The numeric id.
    Num,
    /// The string id.
    Id,
    /// The numeric id of its playbook (answered through the playbook's XID).
    PlaybookNum,
    /// The XID of its playbook.
    PlaybookXid,
    /// The name of its playbook.
    PlaybookName,
    /// Its status.
    Status,
    /// Its log level.
    LogLevel,
    /// How it was started.
    TriggerType,
    /// When it was queued.
    QueuedAt,
    /// When it started.
    StartedAt,
    /// When it ended.
    CompletedAt,
    /// How long it ran.
    DurationMs,
    /// The execution that started it.
    ParentId,
    /// The execution one of whose steps it replays.
    ReplayOf,
}

/// A TQL field over executions.
const fn execution_field(
    keyword: &'static str,
    id: ExecutionField,
    kind: tql::Type,
    description: &'static str,
) -> tql::Field<ExecutionField> {
    tql::Field {
        keyword,
        id,
        kind,
        description,
    }
}

/// The words of an execution's status, as stored and as TQL compares them.
const EXECUTION_STATUSES: &[&str] = &[
    "Queued",
    "Running",
    "Completed",
    "Partially Failed",
    "Failed",
    "Killed",
];

/// The words of a log level.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// The fields TQL may name over executions (seed 000's, and wasp's own).
pub const EXECUTION_FIELDS: tql::Schema<ExecutionField> = &[
    execution_field(
        "id",
        ExecutionField::Num,
        tql::Type::Integer,
        "The execution's numeric id.",
    ),
    execution_field(
        "executionId",
        ExecutionField::Id,
        tql::Type::String,
        "The execution's string id (`ex_…`).",
    ),
    execution_field(
        "playbookId",
        ExecutionField::PlaybookNum,
        tql::Type::Integer,
        "The numeric id of the playbook that was executed.",
    ),
    execution_field(
        "playbookXid",
        ExecutionField::PlaybookXid,
        tql::Type::String,
        "The XID of the playbook that was executed.",
    ),
    execution_field(
        "playbookName",
        ExecutionField::PlaybookName,
        tql::Type::String,
        "The name of the playbook that was executed.",
    ),
    execution_field(
        "status",
        ExecutionField::Status,
        tql::Type::Enum(EXECUTION_STATUSES),
        "The execution's status.",
    ),
    execution_field(
        "logLevel",
        ExecutionField::LogLevel,
        tql::Type::Enum(LOG_LEVELS),
        "The log level used during the execution.",
    ),
    execution_field(
        "triggerType",
        ExecutionField::TriggerType,
        tql::Type::Enum(&["MANUAL", "DEBUG", "WEBHOOK", "TIMER", "EVENT", "PLAYBOOK"]),
        "How the execution was started.",
    ),
    execution_field(
        "queueTime",
        ExecutionField::QueuedAt,
        tql::Type::Date,
        "When the execution was queued.",
    ),
    execution_field(
        "startTime",
        ExecutionField::StartedAt,
        tql::Type::Date,
        "When the execution started.",
    ),
    execution_field(
        "completedTime",
        ExecutionField::CompletedAt,
        tql::Type::Date,
        "When the execution completed.",
    ),
    execution_field(
        "durationMs",
        ExecutionField::DurationMs,
        tql::Type::Integer,
        "How long the execution ran, in milliseconds.",
    ),
    execution_field(
        "parentId",
        ExecutionField::ParentId,
        tql::Type::String,
        "The id of the execution whose sub-playbook node started this one.",
    ),
    execution_field(
        "replayOf",
        ExecutionField::ReplayOf,
        tql::Type::String,
        "The id of the execution one of whose steps this one replays.",
    ),
];

/// Which executions: those a TQL query over [`EXECUTION_FIELDS`] matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFilter {
    /// The query; `None` matches every execution.
    pub tql: Option<tql::Condition<ExecutionField>>,
    /// The order, key by key (ThreatConnect's `sorting`); by number, in the window's
    /// sort, when empty, and after the last key.
    pub order: Vec<OrderBy<ExecutionField>>,
    /// Only what is within this scope; everything when `None`.
    pub scope: Option<Scope>,
}

/// One key of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBy<F> {
    /// The field.
    pub field: F,
    /// Largest first.
    pub descending: bool,
    /// Where records without a value go: first (`Some(true)`), last, or the database's
    /// default for the direction (`None`: first ascending, last descending).
    pub nulls_first: Option<bool>,
}

/// The fields of a step run that TQL may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepField {
    /// The execution it ran in.
    ExecutionId,
    /// The node.
    Node,
    /// The app.
    App,
    /// The action.
    Action,
    /// How it ended.
    Status,
    /// The class of its failure.
    ErrorKind,
    /// Its error's message.
    ErrorMessage,
    /// The iteration of a `for_each`.
    Iteration,
    /// The attempt.
    Attempt,
    /// How long it ran.
    DurationUs,
}

/// A text field of TQL over step runs.
const fn step_text(
    keyword: &'static str,
    id: StepField,
    description: &'static str,
) -> tql::Field<StepField> {
    tql::Field {
        keyword,
        id,
        kind: tql::Type::String,
        description,
    }
}

/// An integer field of TQL over step runs.
const fn step_integer(
    keyword: &'static str,
    id: StepField,
    description: &'static str,
) -> tql::Field<StepField> {
    tql::Field {
        keyword,
        id,
        kind: tql::Type::Integer,
        description,
    }
}

/// The fields TQL may name over step runs (`/api/v1/steps`).
pub const STEP_FIELDS: tql::Schema<StepField> = &[
    step_text(
        "executionId",
        StepField::ExecutionId,
        "The execution the step ran in.",
    ),
    step_text("node", StepField::Node, "The node."),
    step_text(
        "app",
        StepField::App,
        "The app (or, for a sub-playbook node, the playbook).",
    ),
    step_text("action", StepField::Action, "The action."),
    tql::Field {
        keyword: "status",
        id: StepField::Status,
        kind: tql::Type::Enum(&["Succeeded", "Failed", "TimedOut", "Killed"]),
        description: "How the step run ended.",
    },
    step_text(
        "errorKind",
        StepField::ErrorKind,
        "The class of failure (app_error, timeout, memory_limit, …).",
    ),
    step_text(
        "errorMessage",
        StepField::ErrorMessage,
        "The error's message.",
    ),
    step_integer(
        "iteration",
        StepField::Iteration,
        "The iteration of a for_each, from 0.",
    ),
    step_integer("attempt", StepField::Attempt, "The attempt, from 1."),
    step_integer(
        "durationUs",
        StepField::DurationUs,
        "How long the step ran, in microseconds.",
    ),
];

/// Which step runs: those a TQL query over [`STEP_FIELDS`] matches, of one execution
/// and one node when they are named.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepFilter {
    /// The query; `None` matches every step run.
    pub tql: Option<tql::Condition<StepField>>,
    /// Only the step runs of this execution (its string id).
    pub execution: Option<String>,
    /// Only the step runs of this node.
    pub node: Option<String>,
    /// Only what is within this scope; everything when `None`.
    pub scope: Option<Scope>,
}

/// A step run as lists show it: the run, where it is stored, and how it ended.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StepRunRow {
    /// Its number, in the order step runs were stored.
    pub num: i64,
    /// The execution it ran in.
    pub execution_id: String,
    /// How it ended, in the words of a node's status.
    pub status: NodeStatus,
    /// The run.
    #[serde(flatten)]
    pub run: StepRun,
}

/// The fields of an app log line that TQL may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogField {
    /// The execution.
    ExecutionId,
    /// The node whose step logged it.
    Node,
    /// Its level.
    Level,
    /// Its text.
    Message,
}

/// The fields TQL may name over app log lines (`/api/v1/logs`).
pub const LOG_FIELDS: tql::Schema<LogField> = &[
    tql::Field {
        keyword: "executionId",
        id: LogField::ExecutionId,
        kind: tql::Type::String,
        description: "The execution.",
    },
    tql::Field {
        keyword: "node",
        id: LogField::Node,
        kind: tql::Type::String,
        description: "The node whose step logged it.",
    },
    tql::Field {
        keyword: "level",
        id: LogField::Level,
        kind: tql::Type::Enum(LOG_LEVELS),
        description: "The line's level.",
    },
    tql::Field {
        keyword: "message",
        id: LogField::Message,
        kind: tql::Type::String,
        description: "The text.",
    },
];

/// Which app log lines: those a TQL query over [`LOG_FIELDS`] matches, and every
/// condition named besides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// The query; `None` matches every line.
    pub tql: Option<tql::Condition<LogField>>,
    /// Only the lines of this execution (its string id).
    pub execution: Option<String>,
    /// Only the lines of this node.
    pub node: Option<String>,
    /// Only the lines of this iteration of a `for_each`.
    pub iteration: Option<i64>,
    /// Only the lines at this level or above.
    pub level_at_least: Option<LogLevel>,
    /// Only the lines whose text contains this (without regard to ASCII case).
    pub message_contains: Option<String>,
    /// Only what is within this scope; everything when `None`.
    pub scope: Option<Scope>,
}

/// One stored app log line.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LogRow {
    /// Its number, in the order lines were stored.
    pub num: i64,
    /// The execution.
    pub execution_id: String,
    /// The node whose step logged it.
    pub node: String,
    /// The iteration of a `for_each`.
    pub iteration: Option<i64>,
    /// The attempt.
    pub attempt: i64,
    /// When the host received it (RFC 3339).
    pub ts: String,
    /// Its level.
    pub level: LogLevel,
    /// The text (redacted).
    pub message: String,
    /// Its structured fields, when it has any.
    pub fields: Option<Vec<(String, String)>>,
}

/// What the ended executions of a playbook add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    /// How many ended.
    pub total: i64,
    /// How many are queued or running.
    pub running: i64,
    /// How many ended in each status.
    pub by_status: BTreeMap<String, i64>,
    /// Their mean duration, of those that have one (one a restart interrupted has none).
    pub mean_duration_ms: Option<i64>,
    /// The duration at or below which 95% of them ended (nearest rank).
    pub p95_duration_ms: Option<i64>,
}

/// The state of a node of a running execution, as its events left it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct NodeState {
    /// The node.
    pub id: String,
    /// Its status.
    pub status: NodeStatus,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// How long it ran, in microseconds.
    pub duration_us: Option<i64>,
    /// The pathway it took.
    pub pathway: Option<String>,
    /// Its error.
    pub error: Option<StepFailure>,
    /// Iterations run, for `for_each`.
    pub iterations: Option<i64>,
    /// Of those, how many succeeded.
    pub succeeded: Option<i64>,
}

/// The kind of instance a SecMaster audit row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// An execution.
    Playbook,
    /// A step run.
    App,
}

/// The status of an audit row's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStatus {
    /// An execution's.
    Execution(ExecutionStatus),
    /// A step run's, in the words of a node's status.
    Step(NodeStatus),
}

/// Which audit rows (an execution is a playbook instance, each of its step runs an app
/// instance): every condition named holds. A list that is named but empty matches
/// nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only instances of these kinds.
    pub kinds: Option<Vec<AuditKind>>,
    /// Only instances in one of these statuses.
    pub statuses: Option<Vec<AuditStatus>>,
    /// Only instances whose execution (the root's, for a child execution) was started
    /// in one of these ways.
    pub trigger_types: Option<Vec<TriggerType>>,
    /// Only instances whose execution ran at one of these levels.
    pub log_levels: Option<Vec<LogLevel>>,
    /// Only the playbook (its XID) or the app with this id.
    pub action_id: Option<String>,
    /// Only the playbook (its name) or the action with this name.
    pub action_name: Option<String>,
    /// Only the instance with this id.
    pub instance_id: Option<String>,
    /// Only the instances whose parent has this id.
    pub parent_instance_id: Option<String>,
    /// Only instances whose input (as JSON) contains this.
    pub input_contains: Option<String>,
    /// Only instances whose output (as JSON) contains this.
    pub output_contains: Option<String>,
    /// Only instances whose error message contains this.
    pub error_contains: Option<String>,
    /// Only instances that started at or after this.
    pub started_from: Option<DateTime<Utc>>,
    /// Only instances that ended at or before this.
    pub ended_by: Option<DateTime<Utc>>,
    /// Only what is within this scope; everything when `None`.
    pub scope: Option<Scope>,
}

/// Which time an audit list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOrder {
    /// When each instance started.
    Start,
    /// When each instance ended.
    End,
}

/// One SecMaster audit row, in wasp's words (the API says them in SecMaster's).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// The kind of instance.
    pub kind: AuditKind,
    /// The playbook's XID, or the app.
    pub action_id: String,
    /// The playbook's name, or the action.
    pub action_name: String,
    /// The execution's id, or the step run's (`sr_` and its number).
    pub instance_id: String,
    /// The parent execution, or the step run's execution.
    pub parent_instance_id: Option<String>,
    /// The level its execution ran at.
    pub log_level: LogLevel,
    /// Its input (the trigger, for an execution), as JSON text; empty when not captured.
    pub input: String,
    /// Its output, as JSON text; empty when not captured (and for an execution).
    pub output: String,
    /// Its error message; empty when none.
    pub error_msg: String,
    /// When it started.
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    pub end_time: Option<DateTime<Utc>>,
    /// Its status.
    pub status: AuditStatus,
    /// How its execution (the root's, for a child execution) was started.
    pub trigger_type: TriggerType,
}

/// What a playbook's record is saved from: its definition and its seed-003 fields.
#[derive(Debug, Clone)]
pub struct PlaybookFields<'a> {
    /// The XID.
    pub xid: &'a str,
    /// The tenant it belongs to.
    pub tenant: &'a str,
    /// The application it is made for (kept from the stored record when it is
    /// replaced).
    pub app_id: Option<&'a str>,
    /// The name.
    pub name: &'a str,
    /// What it does.
    pub description: &'a str,
    /// The definition as written (the record's `steps`).
    pub steps: &'a Value,
    /// `file` or `api`.
    pub source: &'a str,
    /// The incident-response phase it serves.
    pub category: Option<&'a str>,
    /// Who owns it.
    pub owner_id: Option<&'a str>,
    /// Whether it replaces the stored version incompatibly (a step gone or changed):
    /// then the record's `schema_version` goes up by one.
    pub incompatible: bool,
    /// Who writes it (an API key's id), stamped as `created_by` on a new record and
    /// `updated_by` on every write.
    pub by: Option<&'a str>,
    /// Whether it may run.
    pub enabled: bool,
    /// Whether matching events fire it.
    pub auto_execute: bool,
    /// Its event conditions, as written.
    pub trigger_conditions: Vec<&'a str>,
    /// Free-form tags.
    pub tags: &'a [String],
    /// MITRE ATT&CK tactic ids.
    pub mitre_tactics: &'a [String],
    /// MITRE ATT&CK technique ids.
    pub mitre_techniques: &'a [String],
    /// Assets that must be configured for it to run.
    pub required_connector_ids: &'a [String],
}

impl<'a> PlaybookFields<'a> {
    /// A playbook named `name` with no labels, enabled, fired by nothing automatic.
    pub fn plain(xid: &'a str, name: &'a str, steps: &'a Value, source: &'a str) -> Self {
        Self {
            xid,
            tenant: crate::trace::DEFAULT_TENANT,
            app_id: None,
            name,
            description: "",
            steps,
            source,
            category: None,
            owner_id: None,
            incompatible: false,
            by: None,
            enabled: true,
            auto_execute: false,
            trigger_conditions: Vec::new(),
            tags: &[],
            mitre_tactics: &[],
            mitre_techniques: &[],
            required_connector_ids: &[],
        }
    }
}

/// Where a store is: a SQLite file (the default, embedded), or a PostgreSQL database
/// (`postgres://` or `postgresql://`, or libpq's `key=value` pairs, for a team's
/// service). Shown and logged without
/// its password.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file (created if missing).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl std::str::FromStr for Location {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // A URL, or libpq's `key=value` pairs (`host=db user=wasp dbname=wasp`).
        const KEYWORDS: &[&str] = &[
            "host",
            "hostaddr",
            "port",
            "dbname",
            "user",
            "password",
            "sslmode",
            "options",
            "application_name",
            "connect_timeout",
        ];
        let keywords = text
            .split_whitespace()
            .next()
            .and_then(|first| first.split_once('='))
            .is_some_and(|(key, _)| KEYWORDS.contains(&key));
        Ok(
            if text.starts_with("postgres://") || text.starts_with("postgresql://") || keywords {
                Self::Postgres(text.to_owned())
            } else {
                Self::Sqlite(text.into())
            },
        )
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&postgres::redacted(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({self})")
    }
}

impl Location {
    /// Open the store (creating a SQLite file, migrating either schema).
    pub fn open(&self) -> Result<std::sync::Arc<dyn Store>, Error> {
        Ok(match self {
            Self::Sqlite(path) => std::sync::Arc::new(SqliteStore::open(path)?),
            Self::Postgres(url) => std::sync::Arc::new(PgStore::open(url)?),
        })
    }
}

/// Where playbooks and traces are kept.
///
/// Filters come in typed ([`ExecutionFilter`], [`StepFilter`], [`LogFilter`],
/// [`AuditFilter`]): each backend renders them in its own dialect, and no query text
/// crosses this trait.
pub trait Store: Send + Sync + 'static {
    /// Insert the playbook with XID `xid` from a file or the API, or update it (keeping
    /// its ids, creation stamp and run statistics). [`Error::Taken`], and nothing
    /// written, when another tenant's playbook has the XID.
    fn save_playbook(&self, playbook: &PlaybookFields<'_>) -> Result<PlaybookRecord, Error>;

    /// Soft-delete the playbook of `tenant` (of any for `None`) with string id, numeric
    /// id or XID `key`; returns its record, or `None` when there is no such playbook or
    /// it was already deleted.
    fn delete_playbook(
        &self,
        key: &str,
        tenant: Option<&str>,
        by: Option<&str>,
    ) -> Result<Option<PlaybookRecord>, Error>;

    /// Every playbook that is not deleted, by XID.
    fn playbooks(&self) -> Result<Vec<PlaybookRecord>, Error>;

    /// The playbook of `tenant` (of any for `None`) with string id, numeric id or XID
    /// `key`.
    fn playbook(&self, key: &str, tenant: Option<&str>) -> Result<Option<PlaybookRecord>, Error>;

    /// Record that an execution is queued or running; returns its numeric id. (A
    /// server batches these through [`Store::write`].)
    fn start_execution(&self, execution: &NewExecution) -> Result<i64, Error> {
        self.write(&[Write::Start(execution.clone())])?
            .first()
            .copied()
            .ok_or_else(|| Error::Missing("a started execution got no number".to_owned()))
    }

    /// Record how an execution ended, with its nodes, step runs, log lines and child
    /// executions, in one transaction. (A server batches these through [`Store::write`].)
    fn finish_execution(&self, execution: &Execution) -> Result<(), Error> {
        self.write(&[Write::Finish(Box::new(execution.clone()))])?;
        Ok(())
    }

    /// The summary of the execution with string or numeric id `key`.
    fn execution(&self, key: &str) -> Result<Option<ExecutionRow>, Error>;

    /// The whole record of the execution with string or numeric id `key`, as `wasp run
    /// --output json` prints it, its children by id (`children` holds their ids).
    fn execution_record(&self, key: &str) -> Result<Option<ExecutionRecord>, Error>;

    /// The page `window` (newest or oldest first by number) of the executions `filter`
    /// matches, and, when `count`, how many match in all (a count reads every matching
    /// row; a page reads only its own).
    fn executions(
        &self,
        filter: &ExecutionFilter,
        window: Window,
        count: bool,
    ) -> Result<Page, Error>;

    /// Apply `batch` in one transaction (one commit for many writes is what keeps
    /// persistence cheap under load); returns the numeric id of the execution of each
    /// start and finish in it, in order. A finish whose start was never written records
    /// the execution whole; a start never changes an execution that has ended.
    fn write(&self, batch: &[Write]) -> Result<Vec<i64>, Error>;

    /// What the ended executions of `tenant`'s playbook `xid` add up to: how many ended
    /// in each status, and the mean and 95th percentile of their durations in
    /// milliseconds.
    fn run_stats(&self, xid: &str, tenant: &str) -> Result<RunStats, Error>;

    /// The node states written by [`Write::Event`]s for execution `execution_id`,
    /// in the order they started: what a running execution has done so far. (Once it
    /// has ended, its record holds its nodes instead.)
    fn node_states(&self, execution_id: &str) -> Result<Vec<NodeState>, Error>;

    /// The page `window` (by number, the order they ended in) of the step runs `filter`
    /// matches; and how many match in all.
    fn step_runs(
        &self,
        filter: &StepFilter,
        window: Window,
    ) -> Result<(Vec<StepRunRow>, i64), Error>;

    /// The page `window` (by number) of the app log lines `filter` matches, and how many
    /// match in all.
    fn log_lines(&self, filter: &LogFilter, window: Window) -> Result<(Vec<LogRow>, i64), Error>;

    /// Insert (`num` is `None`; returns the new number) or replace a Splunk SOAR action
    /// run's record; a new one belongs to `tenant`.
    fn save_action_run(&self, num: Option<i64>, tenant: &str, record: &Value)
    -> Result<i64, Error>;

    /// The record of action run `num`, when it is `tenant`'s (any tenant's for `None`).
    fn action_run(&self, num: i64, tenant: Option<&str>) -> Result<Option<Value>, Error>;

    /// Insert (`num` is `None`; returns the new number) or replace the record of an app
    /// run of action run `action_run`.
    fn save_app_run(&self, num: Option<i64>, action_run: i64, record: &Value)
    -> Result<i64, Error>;

    /// A page of the app runs of `action_run` (of all action runs when `None`) that
    /// `query` matches, in its order (oldest first by default), and how many match.
    fn app_runs(
        &self,
        action_run: Option<i64>,
        query: &SoarQuery,
    ) -> Result<(Vec<Value>, i64), Error>;

    /// A page of the action runs that `query` matches, in its order (oldest first by
    /// default), and how many match.
    fn action_runs(&self, query: &SoarQuery) -> Result<(Vec<Value>, i64), Error>;

    /// The record of app run `num`, when its action run is `tenant`'s (any tenant's for
    /// `None`).
    fn app_run(&self, num: i64, tenant: Option<&str>) -> Result<Option<Value>, Error>;

    /// The page `window` of the SecMaster audit rows (executions as playbook instances,
    /// step runs as app instances) that `filter` matches, ordered by the time `order`
    /// names; and how many match.
    fn audit_logs(
        &self,
        filter: &AuditFilter,
        window: Window,
        order: AuditOrder,
    ) -> Result<(Vec<AuditRow>, i64), Error>;

    /// Whether the store takes a write now (a readiness probe): it begins a write and
    /// takes it back.
    fn check_writable(&self) -> Result<(), Error>;

    /// Store a new API key.
    fn save_key(&self, key: &ApiKey) -> Result<(), Error>;

    /// The API key `id`, revoked or not.
    fn key(&self, id: &str) -> Result<Option<ApiKey>, Error>;

    /// Every API key, oldest first.
    fn keys(&self) -> Result<Vec<ApiKey>, Error>;

    /// Revoke API key `id` at `at`; whether there was such a key not yet revoked.
    fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, Error>;

    /// Claim the store for this serving process, until it ends: a second server on it
    /// would fail this one's executions as interrupted when it starts. (A SQLite file
    /// is one machine's; PostgreSQL refuses a second server while this one lives.)
    fn claim_for_serving(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Whether this process still holds what [`Store::claim_for_serving`] claimed (a
    /// server that lost it must stop: another may have started on the store).
    fn still_serving(&self) -> bool {
        true
    }

    /// Mark every execution left Queued or Running, and every Splunk action run left
    /// pending or running with its app runs, by a process that died, failed:
    /// "interrupted by restart". Returns how many of each.
    fn interrupt_unfinished(&self) -> Result<Interrupted, Error>;

    /// Add or replace the API-defined asset `name` of `app` for `tenant`; `spec` holds
    /// secrets as references only. `false` (and nothing written) when another tenant's
    /// asset has the name.
    fn save_asset(&self, tenant: &str, name: &str, app: &str, spec: &Value) -> Result<bool, Error>;

    /// Remove `tenant`'s API-defined asset `name`; whether there was one.
    fn delete_asset(&self, tenant: &str, name: &str) -> Result<bool, Error>;

    /// Every API-defined asset: tenant, name and definition.
    fn assets(&self) -> Result<Vec<(String, String, Value)>, Error>;
}

/// What tests of the store and its writer share.
#[cfg(test)]
pub(crate) mod testing {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use crate::trace::LogLevel;
    use crate::trace::{
        Execution, ExecutionHeader, ExecutionStatus, NodeRecord, NodeStatus, TriggerType,
    };

    /// An execution of playbook `triage` that ended with `status`, queued at
    /// `queued_at`: one node, a trigger, no step runs.
    pub(crate) fn execution(
        id: &str,
        status: ExecutionStatus,
        queued_at: DateTime<Utc>,
    ) -> Execution {
        Execution {
            header: ExecutionHeader {
                id: id.to_owned(),
                parent_id: None,
                replay_of: None,
                playbook_id: "triage".to_owned(),
                playbook_name: "Triage".to_owned(),
                trigger_type: TriggerType::Manual,
                log_level: LogLevel::Debug,
                queued_at,
                tenant_id: crate::trace::DEFAULT_TENANT.to_owned(),
                app_id: None,
            },
            status,
            message: None,
            output: None,
            output_error: None,
            output_status: None,
            started_at: queued_at,
            completed_at: queued_at + chrono::Duration::milliseconds(5),
            duration_us: 5_000,
            trigger: Some(json!({"ip": "8.8.8.8"})),
            nodes: vec![NodeRecord {
                output: Some(json!({"ok": true})),
                ..NodeRecord::new("only".to_owned(), NodeStatus::Succeeded)
            }],
            steps: Vec::new(),
            children: Vec::new(),
        }
    }
}
