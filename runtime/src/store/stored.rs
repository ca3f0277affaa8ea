//! What both backends store the same way: an ended execution's record and a step run
//! as JSON documents (what they leave out, and how it is put back), times as
//! milliseconds since the epoch, enums as their serde words, and the columns their
//! rows are read from.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    ApiKey, AuditKind, AuditOrder, AuditRow, AuditStatus, ExecutionRow, LogRow, NodeState,
    PlaybookRecord, Sort, StepRunRow,
};
use crate::trace::{
    Execution, ExecutionHeader, ExecutionStatus, LogLevel, NodeStatus, StepRun, TriggerType,
};

/// What `execution_records` holds of an ended execution: its record without the step
/// runs (each is stored once, in `step_runs`, and put back on reading) and with its
/// children by id (each has its own record).
#[derive(serde::Serialize)]
pub(super) struct StoredRecord<'a> {
    #[serde(flatten)]
    header: &'a ExecutionHeader,
    status: ExecutionStatus,
    message: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_error: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_status: Option<u16>,
    #[serde(serialize_with = "crate::trace::record::rfc3339")]
    started_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::trace::record::rfc3339")]
    completed_at: DateTime<Utc>,
    duration_us: u64,
    trigger: &'a Option<Value>,
    nodes: &'a [crate::trace::NodeRecord],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    children: Vec<&'a str>,
}

impl<'a> StoredRecord<'a> {
    pub(super) fn of(execution: &'a Execution) -> Self {
        Self {
            header: &execution.header,
            status: execution.status,
            message: &execution.message,
            output: &execution.output,
            output_error: &execution.output_error,
            output_status: execution.output_status,
            started_at: execution.started_at,
            completed_at: execution.completed_at,
            duration_us: execution.duration_us,
            trigger: &execution.trigger,
            nodes: &execution.nodes,
            children: execution
                .children
                .iter()
                .map(|c| c.header.id.as_str())
                .collect(),
        }
    }
}

/// A step run as `step_runs.record` holds it: without the fields that hold nothing (an
/// input not captured, no output, no logs, empty stdout and stderr, nothing cut), which
/// are most of a step run at INFO; [`restore_step`] puts them back into a record read
/// as JSON, and a [`StepRun`] read back has them empty by default.
#[derive(serde::Serialize)]
pub(super) struct StoredStep<'a> {
    node: &'a str,
    app: &'a str,
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    iteration: Option<usize>,
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a Value>,
    report: StoredReport<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capture: Option<&'a crate::trace::Capture>,
    #[serde(serialize_with = "crate::trace::record::rfc3339")]
    started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    child: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct StoredReport<'a> {
    status: crate::trace::StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pathway: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a crate::trace::StepFailure>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    logs: &'a [crate::trace::LogLine],
    #[serde(skip_serializing_if = "str::is_empty")]
    stdout: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    stderr: &'a str,
    duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<&'a crate::trace::Truncation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    egress: Option<&'a crate::trace::Outbound>,
}

impl<'a> StoredStep<'a> {
    pub(super) fn of(step: &'a crate::trace::StepRun) -> Self {
        // Every field named: a field added to a step run must be stored, or this stops
        // compiling.
        let crate::trace::StepRun {
            node,
            app,
            action,
            iteration,
            attempt,
            input,
            report,
            capture,
            started_at,
            child,
        } = step;
        let crate::trace::StepReport {
            status,
            output,
            pathway,
            error,
            logs,
            stdout,
            stderr,
            duration_us,
            truncated,
            egress,
        } = report;
        Self {
            node,
            app,
            action,
            iteration: *iteration,
            attempt: *attempt,
            input: input.as_ref(),
            report: StoredReport {
                status: *status,
                output: output.as_ref(),
                pathway: pathway.as_deref(),
                error: error.as_ref(),
                logs,
                stdout,
                stderr,
                duration_us: *duration_us,
                truncated: (!truncated.is_empty()).then_some(truncated),
                egress: (!egress.is_empty()).then_some(egress),
            },
            capture: (capture.data || !capture.truncated.is_empty()).then_some(capture),
            started_at: *started_at,
            child: child.as_deref(),
        }
    }
}

/// Put back the fields [`StoredStep`] leaves out, as a step run serializes them.
pub(super) fn restore_step(record: &mut Value) {
    let Some(step) = record.as_object_mut() else {
        return;
    };
    step.entry("input").or_insert(Value::Null);
    step.entry("capture").or_insert_with(|| {
        serde_json::to_value(crate::trace::Capture::default()).unwrap_or_default()
    });
    if let Some(report) = step.get_mut("report").and_then(Value::as_object_mut) {
        for key in ["output", "pathway", "error"] {
            report.entry(key).or_insert(Value::Null);
        }
        report
            .entry("logs")
            .or_insert_with(|| Value::Array(Vec::new()));
        for key in ["stdout", "stderr"] {
            report.entry(key).or_insert_with(|| Value::from(""));
        }
        report.entry("truncated").or_insert_with(|| {
            serde_json::to_value(crate::trace::Truncation::default()).unwrap_or_default()
        });
    }
}

pub(super) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(super) fn time(millis: Option<i64>) -> Option<DateTime<Utc>> {
    millis.and_then(DateTime::from_timestamp_millis)
}

/// The word serde gives `value` (`"Partially Failed"`, `"MANUAL"`).
pub(super) fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The `T` whose serde word is `text`.
pub(super) fn parse_word<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, serde::de::value::Error> {
    use serde::de::IntoDeserializer;
    // Straight from the text: no copy of it for each row read.
    T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(text))
}

/// A stored JSON column; `null` for text that is not JSON.
pub(super) fn json_column(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// A stored log level; `info` for a word that is none (as an executions row reads).
pub(super) fn parse_level(text: &str) -> LogLevel {
    text.parse::<LogLevel>().unwrap_or(LogLevel::Info)
}

/// `key` as a numeric id, when it is one.
pub(super) fn number(key: &str) -> Option<i64> {
    key.parse().ok()
}

/// The SQL direction of `sort`.
pub(super) fn order(sort: Sort) -> &'static str {
    match sort {
        Sort::NewestFirst => "DESC",
        Sort::OldestFirst => "ASC",
    }
}

/// The columns of an executions row (`e`), in the order both backends read them.
pub(super) const EXECUTION_COLUMNS: &str = "e.num, e.id, e.parent_id, e.playbook_num, \
    e.playbook_xid, e.playbook_name, e.trigger_type, e.log_level, e.status, e.message, \
    e.queued_at, e.started_at, e.completed_at, e.duration_ms, e.replay_of, e.tenant_id, e.app_id";

/// The columns of a playbooks row. A playbook's last run is its newest execution, read
/// from the executions' index rather than written to the playbook on every finish
/// (which rewrote its whole row, definition included, in every batch).
pub(super) const PLAYBOOK_COLUMNS: &str = "num, id, xid, tenant_id, created_at, updated_at, \
    created_by, updated_by, source, deleted_at, schema_version, name, description, category, \
    trigger_conditions, auto_execute, mitre_tactics, mitre_techniques, steps, \
    required_connector_ids, owner_id, enabled, \
    (SELECT queued_at FROM executions WHERE playbook_xid = playbooks.xid \
        AND tenant_id = playbooks.tenant_id ORDER BY num DESC LIMIT 1), \
    (SELECT id FROM executions WHERE playbook_xid = playbooks.xid \
        AND tenant_id = playbooks.tenant_id ORDER BY num DESC LIMIT 1), \
    run_stats, tags, deleted_by, app_id";

/// The columns of an api_keys row.
pub(super) const KEY_COLUMNS: &str =
    "id, name, tenant, role, secret_sha256, created_at, revoked_at";

/// A column's value as both backends read it (text, integers, booleans, and either
/// optional).
pub(super) trait Column:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T> Column for T where T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a> {}

/// A row of either backend, read by column number.
pub(super) trait Columns {
    /// What a column that does not read gives.
    type Error;

    /// Column `i`.
    fn get<T: Column>(&self, i: usize) -> Result<T, Self::Error>;

    /// The word in column `i`, read as the `T` serde gives it (from the row's text, not
    /// a copy of it).
    fn word<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, Self::Error>;

    /// The JSON document in column `i`, decoded; `None` for NULL.
    fn decoded<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<Option<T>, Self::Error>;

    /// A part of a stored JSON document in column `i`, as the audit rows give it: its
    /// text, a string's unquoted, nothing for none.
    fn json_part(&self, i: usize) -> Result<String, Self::Error>;

    /// The error of a column `i` that holds NULL where it may not.
    fn missing(&self, i: usize) -> Self::Error;

    /// Column `i`, text.
    fn text(&self, i: usize) -> Result<String, Self::Error> {
        self.get(i)
    }
}

pub(super) fn execution_row<R: Columns>(row: &R) -> Result<ExecutionRow, R::Error> {
    let level = row.text(7)?;
    Ok(ExecutionRow {
        num: row.get(0)?,
        header: ExecutionHeader {
            id: row.get(1)?,
            parent_id: row.get(2)?,
            replay_of: row.get(14)?,
            playbook_id: row.get(4)?,
            playbook_name: row.get(5)?,
            trigger_type: row.word::<TriggerType>(6)?,
            log_level: parse_level(&level),
            queued_at: time(row.get(10)?).unwrap_or_default(),
            tenant_id: row.get(15)?,
            app_id: row.get(16)?,
        },
        playbook_num: row.get(3)?,
        status: row.word::<ExecutionStatus>(8)?,
        message: row.get(9)?,
        started_at: time(row.get(11)?),
        completed_at: time(row.get(12)?),
        duration_ms: row.get(13)?,
    })
}

pub(super) fn playbook_row<R: Columns>(row: &R) -> Result<PlaybookRecord, R::Error> {
    let json = |i: usize| -> Result<Value, R::Error> { Ok(json_column(&row.text(i)?)) };
    let deleted_at = time(row.get(9)?);
    Ok(PlaybookRecord {
        num: row.get(0)?,
        id: row.get(1)?,
        xid: row.get(2)?,
        tenant_id: row.get(3)?,
        created_at: time(row.get(4)?).unwrap_or_default(),
        updated_at: time(row.get(5)?).unwrap_or_default(),
        created_by: row.get(6)?,
        updated_by: row.get(7)?,
        source: row.get(8)?,
        is_deleted: deleted_at.is_some(),
        deleted_at,
        schema_version: row.get(10)?,
        name: row.get(11)?,
        description: row.get(12)?,
        category: row.get(13)?,
        trigger_conditions: json(14)?,
        auto_execute: row.get(15)?,
        mitre_tactics: json(16)?,
        mitre_techniques: json(17)?,
        steps: json(18)?,
        required_connector_ids: json(19)?,
        owner_id: row.get(20)?,
        enabled: row.get(21)?,
        last_run_at: time(row.get(22)?),
        last_run_id: row.get(23)?,
        run_stats: json(24)?,
        tags: json(25)?,
        deleted_by: row.get(26)?,
        app_id: row.get(27)?,
    })
}

pub(super) fn key_row<R: Columns>(row: &R) -> Result<ApiKey, R::Error> {
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        tenant: row.get(2)?,
        role: row.get(3)?,
        secret_sha256: row.get(4)?,
        created_at: time(Some(row.get(5)?)).unwrap_or_default(),
        revoked_at: time(row.get(6)?),
    })
}

/// The columns [`node_state`] reads, of `node_states`, in the order they started.
pub(super) const NODE_STATES_OF: &str = "SELECT node, status, started_at, ended_at, \
    duration_us, pathway, error, iterations, succeeded \
    FROM node_states WHERE execution_id = ? ORDER BY coalesce(started_at, ended_at)";

pub(super) fn node_state<R: Columns>(r: &R) -> Result<NodeState, R::Error> {
    Ok(NodeState {
        id: r.get(0)?,
        status: r.word::<NodeStatus>(1)?,
        started_at: time(r.get(2)?),
        ended_at: time(r.get(3)?),
        duration_us: r.get(4)?,
        pathway: r.get(5)?,
        error: r.decoded(6)?,
        iterations: r.get(7)?,
        succeeded: r.get(8)?,
    })
}

/// What a list of step runs reads (`step_runs s`) and its columns, for [`step_run_row`].
pub(super) const STEP_RUNS: (&str, &str) =
    ("step_runs s", "s.num, s.execution_id, s.status, s.record");

pub(super) fn step_run_row<R: Columns>(r: &R) -> Result<StepRunRow, R::Error> {
    Ok(StepRunRow {
        num: r.get(0)?,
        execution_id: r.get(1)?,
        status: r.word::<NodeStatus>(2)?,
        // The fields the store left out read back empty (see `StoredStep`).
        run: r.decoded::<StepRun>(3)?.ok_or_else(|| r.missing(3))?,
    })
}

/// What a list of log lines reads and its columns, for [`log_row`].
pub(super) const LOG_LINES: (&str, &str) = (
    "log_lines l JOIN step_runs s ON s.num = l.step_num",
    "l.num, l.execution_id, l.node, s.iteration, s.attempt, l.ts, l.level, l.message, l.fields",
);

pub(super) fn log_row<R: Columns>(r: &R) -> Result<LogRow, R::Error> {
    Ok(LogRow {
        num: r.get(0)?,
        execution_id: r.get(1)?,
        node: r.get(2)?,
        iteration: r.get(3)?,
        attempt: r.get(4)?,
        ts: r.get(5)?,
        level: r.word(6)?,
        message: r.get(7)?,
        fields: r.decoded(8)?,
    })
}

/// The columns [`audit_row`] reads of the audit rows `a`.
pub(super) const AUDIT_COLUMNS: &str = "a.instance_type, a.action_id, a.action_name, \
    a.instance_id, a.parent_instance_id, a.log_level, a.input, a.output, a.error_msg, \
    a.start_time, a.end_time, a.status, a.trigger_type";

/// The column audit rows are ordered by.
pub(super) fn audit_key(order: AuditOrder) -> &'static str {
    match order {
        AuditOrder::Start => "a.start_time",
        AuditOrder::End => "a.end_time",
    }
}

pub(super) fn audit_row<R: Columns>(r: &R) -> Result<AuditRow, R::Error> {
    let kind = if r.text(0)? == super::render::instance_type(AuditKind::App) {
        AuditKind::App
    } else {
        AuditKind::Playbook
    };
    Ok(AuditRow {
        kind,
        action_id: r.get(1)?,
        action_name: r.get(2)?,
        instance_id: r.get(3)?,
        parent_instance_id: r.get(4)?,
        log_level: parse_level(&r.text(5)?),
        input: r.json_part(6)?,
        output: r.json_part(7)?,
        error_msg: r.get(8)?,
        start_time: time(r.get(9)?),
        end_time: time(r.get(10)?),
        status: match kind {
            AuditKind::Playbook => AuditStatus::Execution(r.word(11)?),
            AuditKind::App => AuditStatus::Step(r.word(11)?),
        },
        trigger_type: r.word(12)?,
    })
}
