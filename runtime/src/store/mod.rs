//! Persistence of playbooks and execution traces, behind the [`Store`] trait so that
//! the engine and the API do not know which database holds them. SQLite
//! ([`SqliteStore`]) is the embedded default; a PostgreSQL backend (workers on several
//! machines) is another implementation of the same trait.
//!
//! The trait is synchronous: SQLite is a library call. A server makes its reads on
//! Tokio's blocking pool ([`tokio::task::spawn_blocking`]), so that a slow read never
//! stalls the executions' tasks; its writes, in batches, inline on a worker (a commit
//! in WAL mode with `synchronous = NORMAL` waits for no disk but when the log starts
//! over, and a hop to another thread cost more than the write: see `api::persist`).

mod sqlite;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

pub use sqlite::SqliteStore;

use crate::tql;
use crate::trace::{Event, Execution, ExecutionHeader, ExecutionStatus};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database file could not be opened or migrated.
    #[error("cannot open the database `{path}`: {message}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A stored record does not decode: the file was changed by something else.
    #[error("a stored record does not decode: {0}")]
    Corrupt(String),
}

/// A playbook as the store keeps it: the record of seed 003 around the definition.
#[derive(Debug, Clone, Serialize)]
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
    /// The definition: the playbook file, as JSON.
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
}

/// An execution as lists show it: the record without its nodes and steps.
#[derive(Debug, Clone, Serialize)]
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

/// What [`Store::interrupt_unfinished`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted {
    /// Executions left Queued or Running.
    pub executions: usize,
    /// Splunk SOAR action runs left pending or running.
    pub action_runs: usize,
}

/// A page of executions.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The executions on the page.
    pub rows: Vec<ExecutionRow>,
    /// Every execution the query matches, when the query asked for the count.
    pub total: Option<i64>,
    /// Whether more match past this page.
    pub more: bool,
}

/// How to order a list of executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Newest first (the default).
    NewestFirst,
    /// Oldest first.
    OldestFirst,
}

/// A query over executions: a compiled TQL condition and a window.
#[derive(Debug, Clone)]
pub struct Query {
    /// Which executions.
    pub condition: tql::Condition,
    /// Skip this many.
    pub offset: i64,
    /// At most this many.
    pub limit: i64,
    /// In this order.
    pub sort: Sort,
    /// Whether to count every match (a count reads every matching row; a page reads
    /// only its own).
    pub count: bool,
}

/// The fields TQL may name over executions (seed 000's, and wasp's own).
pub const EXECUTION_FIELDS: tql::Schema = &[
    tql::Field {
        keyword: "id",
        column: "e.num",
        kind: tql::Type::Integer,
        description: "The execution's numeric id.",
        via: None,
    },
    tql::Field {
        keyword: "executionId",
        column: "e.id",
        kind: tql::Type::String,
        description: "The execution's string id (`ex_…`).",
        via: None,
    },
    tql::Field {
        keyword: "playbookId",
        column: "p.num",
        kind: tql::Type::Integer,
        description: "The numeric id of the playbook that was executed.",
        // Through the XID's index: an index of its own was one more B-tree for every
        // stored execution to touch.
        via: Some(tql::Lookup::Rows {
            key: "e.playbook_xid",
            select: "SELECT p.xid FROM playbooks p",
        }),
    },
    tql::Field {
        keyword: "playbookXid",
        column: "e.playbook_xid",
        kind: tql::Type::String,
        description: "The XID of the playbook that was executed.",
        via: None,
    },
    tql::Field {
        keyword: "playbookName",
        column: "e.playbook_name",
        kind: tql::Type::String,
        description: "The name of the playbook that was executed.",
        via: None,
    },
    tql::Field {
        keyword: "status",
        column: "e.status",
        kind: tql::Type::Enum(&[
            "Queued",
            "Running",
            "Completed",
            "Partially Failed",
            "Failed",
            "Killed",
        ]),
        description: "The execution's status.",
        via: None,
    },
    tql::Field {
        keyword: "logLevel",
        column: "e.log_level",
        kind: tql::Type::Enum(&["trace", "debug", "info", "warn", "error"]),
        description: "The log level used during the execution.",
        via: None,
    },
    tql::Field {
        keyword: "triggerType",
        column: "e.trigger_type",
        kind: tql::Type::Enum(&["MANUAL", "DEBUG", "WEBHOOK", "TIMER", "EVENT", "PLAYBOOK"]),
        description: "How the execution was started.",
        via: None,
    },
    tql::Field {
        keyword: "queueTime",
        column: "e.queued_at",
        kind: tql::Type::Date,
        description: "When the execution was queued.",
        via: None,
    },
    tql::Field {
        keyword: "startTime",
        column: "e.started_at",
        kind: tql::Type::Date,
        description: "When the execution started.",
        via: None,
    },
    tql::Field {
        keyword: "completedTime",
        column: "e.completed_at",
        kind: tql::Type::Date,
        description: "When the execution completed.",
        via: None,
    },
    tql::Field {
        keyword: "durationMs",
        column: "e.duration_ms",
        kind: tql::Type::Integer,
        description: "How long the execution ran, in milliseconds.",
        via: None,
    },
    tql::Field {
        keyword: "parentId",
        column: "e.parent_id",
        kind: tql::Type::String,
        description: "The id of the execution whose sub-playbook node started this one.",
        via: None,
    },
    tql::Field {
        keyword: "replayOf",
        column: "e.replay_of",
        kind: tql::Type::String,
        description: "The id of the execution one of whose steps this one replays.",
        via: None,
    },
];

/// One stored app log line.
#[derive(Debug, Clone, Serialize)]
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
    pub level: String,
    /// The text (redacted).
    pub message: String,
    /// Its structured fields.
    pub fields: Value,
}

/// A field of TQL.
const fn field(
    keyword: &'static str,
    column: &'static str,
    kind: tql::Type,
    description: &'static str,
) -> tql::Field {
    tql::Field {
        keyword,
        column,
        kind,
        description,
        via: None,
    }
}

/// A text field of TQL.
const fn text(keyword: &'static str, column: &'static str, about: &'static str) -> tql::Field {
    field(keyword, column, tql::Type::String, about)
}

/// An integer field of TQL.
const fn integer(keyword: &'static str, column: &'static str, about: &'static str) -> tql::Field {
    field(keyword, column, tql::Type::Integer, about)
}

/// Where the step runs (`s`) of the execution whose id is bound to both `?` lie: they
/// are written one after the other, and the execution's record keeps the first and the
/// last number. A condition that reads only those rows.
pub(crate) const STEPS_OF_EXECUTION: &str = "s.num BETWEEN \
    (SELECT r.first_step FROM executions e \
        JOIN execution_records r ON r.num = e.num WHERE e.id = ?) \
    AND (SELECT r.last_step FROM executions e \
        JOIN execution_records r ON r.num = e.num WHERE e.id = ?)";

/// The fields TQL may name over step runs (`/api/v1/steps`).
pub const STEP_FIELDS: tql::Schema = &[
    tql::Field {
        via: Some(tql::Lookup::Within {
            range: STEPS_OF_EXECUTION,
        }),
        ..text(
            "executionId",
            "s.execution_id",
            "The execution the step ran in.",
        )
    },
    text("node", "s.node", "The node."),
    text(
        "app",
        "s.app",
        "The app (or, for a sub-playbook node, the playbook).",
    ),
    text("action", "s.action", "The action."),
    field(
        "status",
        "s.status",
        tql::Type::Enum(&["Succeeded", "Failed", "TimedOut", "Killed"]),
        "How the step run ended.",
    ),
    text(
        "errorKind",
        "s.error_kind",
        "The class of failure (app_error, timeout, memory_limit, …).",
    ),
    text("errorMessage", "s.error_message", "The error's message."),
    integer(
        "iteration",
        "s.iteration",
        "The iteration of a for_each, from 0.",
    ),
    integer("attempt", "s.attempt", "The attempt, from 1."),
    integer(
        "durationUs",
        "s.duration_us",
        "How long the step ran, in microseconds.",
    ),
];

/// The fields TQL may name over app log lines (`/api/v1/logs`).
pub const LOG_FIELDS: tql::Schema = &[
    text("executionId", "l.execution_id", "The execution."),
    text("node", "l.node", "The node whose step logged it."),
    field(
        "level",
        "l.level",
        tql::Type::Enum(&["trace", "debug", "info", "warn", "error"]),
        "The line's level.",
    ),
    text("message", "l.message", "The text."),
];

/// The columns of SecMaster's audit log rows that a filter may name (all text but the
/// two times, in milliseconds).
pub const AUDIT_FIELDS: &[&str] = &[
    "instance_type",
    "action_id",
    "action_name",
    "instance_id",
    "parent_instance_id",
    "log_level",
    "input",
    "output",
    "error_msg",
    "start_time",
    "end_time",
    "status",
    "trigger_type",
];

/// What a playbook's record is saved from: its definition and its seed-003 fields.
#[derive(Debug, Clone)]
pub struct PlaybookFields<'a> {
    /// The XID.
    pub xid: &'a str,
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
            name,
            description: "",
            steps,
            source,
            category: None,
            enabled: true,
            auto_execute: false,
            trigger_conditions: Vec::new(),
            tags: &[],
            mitre_tactics: &[],
            mitre_techniques: &[],
            required_connector_ids: &[],
        }
    }

    /// The fields of `playbook`, defined by `steps`, from `source`.
    pub fn of(playbook: &'a crate::playbook::Playbook, steps: &'a Value, source: &'a str) -> Self {
        Self {
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
}

/// Where playbooks and traces are kept.
pub trait Store: Send + Sync + 'static {
    /// Insert the playbook with XID `xid` from a file or the API, or update it (keeping
    /// its ids, creation stamp and run statistics).
    fn save_playbook(&self, playbook: &PlaybookFields<'_>) -> Result<PlaybookRecord, Error>;

    /// Soft-delete the playbook with string id, numeric id or XID `key`; returns its
    /// record, or `None` when there is no such playbook or it was already deleted.
    fn delete_playbook(&self, key: &str) -> Result<Option<PlaybookRecord>, Error>;

    /// Every playbook that is not deleted, by XID.
    fn playbooks(&self) -> Result<Vec<PlaybookRecord>, Error>;

    /// The playbook with string id, numeric id or XID `key`.
    fn playbook(&self, key: &str) -> Result<Option<PlaybookRecord>, Error>;

    /// Record that an execution is queued or running; returns its numeric id. (A
    /// server batches these through [`Store::write`].)
    fn start_execution(&self, execution: &NewExecution) -> Result<i64, Error> {
        self.write(&[Write::Start(execution.clone())])?
            .first()
            .copied()
            .ok_or_else(|| Error::Corrupt("a started execution got no number".to_owned()))
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
    fn execution_record(&self, key: &str) -> Result<Option<Value>, Error>;

    /// A page of the executions `query` matches.
    fn executions(&self, query: &Query) -> Result<Page, Error>;

    /// Apply `batch` in one transaction (one commit for many writes is what keeps
    /// persistence cheap under load); returns the numeric id of the execution of each
    /// start and finish in it, in order. A finish whose start was never written records
    /// the execution whole; a start never changes an execution that has ended.
    fn write(&self, batch: &[Write]) -> Result<Vec<i64>, Error>;

    /// What the ended executions of playbook `xid` add up to: how many ended in each
    /// status, and the mean and 95th percentile of their durations in milliseconds.
    fn run_stats(&self, xid: &str) -> Result<Value, Error>;

    /// The node states written by [`Write::Event`]s for execution `execution_id`,
    /// in the order they started: what a running execution has done so far. (Once it
    /// has ended, its record holds its nodes instead.)
    fn node_states(&self, execution_id: &str) -> Result<Vec<Value>, Error>;

    /// A page of the step runs `query` matches (over [`STEP_FIELDS`]), each its whole
    /// record with `num`, `execution_id` and `status`; and how many match in all.
    fn step_runs(&self, query: &Query) -> Result<(Vec<Value>, i64), Error>;

    /// A page of the app log lines `query` matches (over [`LOG_FIELDS`]), and how many
    /// match in all.
    fn log_lines(&self, query: &Query) -> Result<(Vec<LogRow>, i64), Error>;

    /// Insert (`num` is `None`; returns the new number) or replace a Splunk SOAR action
    /// run's record.
    fn save_action_run(&self, num: Option<i64>, record: &Value) -> Result<i64, Error>;

    /// The record of action run `num`.
    fn action_run(&self, num: i64) -> Result<Option<Value>, Error>;

    /// Insert (`num` is `None`; returns the new number) or replace the record of an app
    /// run of action run `action_run`.
    fn save_app_run(&self, num: Option<i64>, action_run: i64, record: &Value)
    -> Result<i64, Error>;

    /// A page of the app runs of `action_run` (of all action runs when `None`), oldest
    /// first, and how many there are.
    fn app_runs(
        &self,
        action_run: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Value>, i64), Error>;

    /// The record of app run `num`.
    fn app_run(&self, num: i64) -> Result<Option<Value>, Error>;

    /// A page of SecMaster audit log rows (executions as PLAYBOOK instances, step runs as
    /// APP instances) that `query` matches over [`AUDIT_FIELDS`], sorted by start time
    /// (or end time when `by_end`); and how many match.
    fn audit_logs(&self, query: &Query, by_end: bool) -> Result<(Vec<Value>, i64), Error>;

    /// Mark every execution left Queued or Running, and every Splunk action run left
    /// pending or running with its app runs, by a process that died, failed:
    /// "interrupted by restart". Returns how many of each.
    fn interrupt_unfinished(&self) -> Result<Interrupted, Error>;

    /// Add or replace the API-defined asset `name` of `app`; `spec` holds secrets as
    /// references only.
    fn save_asset(&self, name: &str, app: &str, spec: &Value) -> Result<(), Error>;

    /// Remove the API-defined asset `name`; whether there was one.
    fn delete_asset(&self, name: &str) -> Result<bool, Error>;

    /// Every API-defined asset: name and definition.
    fn assets(&self) -> Result<Vec<(String, Value)>, Error>;
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
            },
            status,
            message: None,
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
