//! The store's typed filters rendered as conditions in each backend's dialect: SQL text
//! with a `?` for each parameter, in order (PostgreSQL's `$1`, typed, are numbered in by
//! [`numbered`] at the end). Every table and column a filter reaches is named here; a
//! value from a client is only ever a parameter, never text pasted into the SQL.

use rusqlite::types::{ToSqlOutput, Value as SqliteValue};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::store::{
    AuditFilter, AuditKind, AuditStatus, ExecutionField, ExecutionFilter, LogField, LogFilter,
    Scope, SoarLookup, SoarQuery, StepField, StepFilter,
};
use crate::tql::{Comparison, Condition, Pattern, Value};
use crate::trace::{DEFAULT_TENANT, LogLevel};

/// Which SQL a condition is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The condition that always holds.
    fn yes(self) -> &'static str {
        match self {
            Dialect::Sqlite => "1",
            Dialect::Postgres => "TRUE",
        }
    }

    /// The condition that never holds.
    fn no(self) -> &'static str {
        match self {
            Dialect::Sqlite => "0",
            Dialect::Postgres => "FALSE",
        }
    }

    /// `LIKE`, which SQLite applies without regard to ASCII case.
    fn like(self) -> &'static str {
        match self {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        }
    }
}

/// A parameter's value. Each backend binds it in its own types: SQLite as it is,
/// PostgreSQL as the type [`numbered`] casts its `$n` to (JSON as `jsonb`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Json(serde_json::Value),
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(SqliteValue::Null),
            SqlValue::Integer(i) => ToSqlOutput::Owned(SqliteValue::Integer(*i)),
            SqlValue::Real(r) => ToSqlOutput::Owned(SqliteValue::Real(*r)),
            SqlValue::Text(t) => ToSqlOutput::Borrowed(t.as_str().into()),
            SqlValue::Json(v) => ToSqlOutput::Owned(SqliteValue::Text(v.to_string())),
        })
    }
}

impl ToSql for SqlValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Integer(i) => i.to_sql(ty, out),
            SqlValue::Real(r) => r.to_sql(ty, out),
            SqlValue::Text(t) => t.to_sql(ty, out),
            SqlValue::Json(v) => v.to_sql(ty, out),
        }
    }

    /// Each value is bound to the type its `$n` is cast to (see [`numbered`]); NULL to
    /// any.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `text`, rendered with a `?` for each of `params`, with PostgreSQL's numbered
/// parameters instead, each cast to the type of its value (`$1::int8`), so that the
/// server never has to guess one (a real compared with an integer column stays a real).
/// A `?` inside a quoted string is left alone.
pub(super) fn numbered(text: &str, params: &[SqlValue]) -> String {
    let mut out = String::with_capacity(text.len() + params.len() * 8);
    let (mut quoted, mut n) = (false, 0_usize);
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                let cast = match params.get(n) {
                    Some(SqlValue::Integer(_)) => "::int8",
                    Some(SqlValue::Real(_)) => "::float8",
                    Some(SqlValue::Text(_)) => "::text",
                    Some(SqlValue::Json(_)) => "::jsonb",
                    Some(SqlValue::Null) | None => "",
                };
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
                out.push_str(cast);
            }
            c => out.push(c),
        }
    }
    out
}

/// A SQL boolean expression, with a `?` for each of `params`, in order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sql {
    /// The expression.
    pub text: String,
    /// Its parameters.
    pub params: Vec<SqlValue>,
}

/// Where the step runs (`s`) of the execution whose id is bound to every `?` lie, in
/// SQLite: those written when it ended lie one after the other, and its record keeps the
/// first and the last number; those written while it ran (`early_steps`) are listed by
/// number. A condition that reads only those rows. (PostgreSQL indexes step runs by
/// their execution.)
pub(super) const STEPS_OF_EXECUTION: &str = "(s.num BETWEEN \
    (SELECT r.first_step FROM executions e \
        JOIN execution_records r ON r.num = e.num WHERE e.id = ?) \
    AND (SELECT r.last_step FROM executions e \
        JOIN execution_records r ON r.num = e.num WHERE e.id = ?) \
    OR s.num IN (SELECT x.step_num FROM early_steps x WHERE x.execution_id = ?))";

/// The `?` of [`STEPS_OF_EXECUTION`], and one more for the comparison of the execution
/// id that follows it.
const STEPS_OF_EXECUTION_BINDS: usize = 4;

/// The column a TQL field reads, and how a record reaches it.
#[derive(Debug, Clone, Copy)]
struct Column {
    /// The SQL expression.
    expr: &'static str,
    /// How the record reaches it.
    via: Via,
}

/// How a field's column is reached.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// It is the record's own.
    Direct,
    /// The column is another table's: a condition on it holds for the record when its
    /// `key` is among the `select`ed rows where the condition holds
    /// (`e.playbook_xid IN (SELECT p.xid FROM playbooks p WHERE p.num = ?)`). A record
    /// whose key selects no row satisfies nothing but `ISNULL`, as a NULL column would.
    Rows {
        /// The record's column that names a row of the other table.
        key: &'static str,
        /// The `SELECT` of the other table's matching column, without a `WHERE`.
        select: &'static str,
    },
    /// The column is the record's own, and the records equal to a value lie within
    /// `range`, a condition with a `?` for the value wherever it needs it: `=` reads
    /// only those rows (the step runs of one execution, by number).
    Within {
        /// The condition that bounds them.
        range: &'static str,
    },
}

/// A record's fields, as columns of the tables its list reads.
trait Columns: Copy {
    /// The column field `self` reads in `dialect`.
    fn column(self, dialect: Dialect) -> Column;
}

const fn direct(expr: &'static str) -> Column {
    Column {
        expr,
        via: Via::Direct,
    }
}

/// Over `executions e`.
impl Columns for ExecutionField {
    fn column(self, _: Dialect) -> Column {
        match self {
            ExecutionField::Num => direct("e.num"),
            ExecutionField::Id => direct("e.id"),
            // Through the XID's index: an index of its own was one more B-tree for every
            // stored execution to touch.
            ExecutionField::PlaybookNum => Column {
                expr: "p.num",
                via: Via::Rows {
                    key: "e.playbook_xid",
                    select: "SELECT p.xid FROM playbooks p",
                },
            },
            ExecutionField::PlaybookXid => direct("e.playbook_xid"),
            ExecutionField::PlaybookName => direct("e.playbook_name"),
            ExecutionField::Status => direct("e.status"),
            ExecutionField::LogLevel => direct("e.log_level"),
            ExecutionField::TriggerType => direct("e.trigger_type"),
            ExecutionField::QueuedAt => direct("e.queued_at"),
            ExecutionField::StartedAt => direct("e.started_at"),
            ExecutionField::CompletedAt => direct("e.completed_at"),
            ExecutionField::DurationMs => direct("e.duration_ms"),
            ExecutionField::ParentId => direct("e.parent_id"),
            ExecutionField::ReplayOf => direct("e.replay_of"),
        }
    }
}

/// Over `step_runs s`.
impl Columns for StepField {
    fn column(self, dialect: Dialect) -> Column {
        match self {
            StepField::ExecutionId if dialect == Dialect::Postgres => direct("s.execution_id"),
            StepField::ExecutionId => Column {
                expr: "s.execution_id",
                via: Via::Within {
                    range: STEPS_OF_EXECUTION,
                },
            },
            StepField::Node => direct("s.node"),
            StepField::App => direct("s.app"),
            StepField::Action => direct("s.action"),
            StepField::Status => direct("s.status"),
            StepField::ErrorKind => direct("s.error_kind"),
            StepField::ErrorMessage => direct("s.error_message"),
            StepField::Iteration => direct("s.iteration"),
            StepField::Attempt => direct("s.attempt"),
            StepField::DurationUs => direct("s.duration_us"),
        }
    }
}

/// Over `log_lines l JOIN step_runs s`.
impl Columns for LogField {
    fn column(self, _: Dialect) -> Column {
        match self {
            LogField::ExecutionId => direct("l.execution_id"),
            LogField::Node => direct("l.node"),
            LogField::Level => direct("l.level"),
            LogField::Message => direct("l.message"),
        }
    }
}

/// A conjunction, built a condition at a time.
struct All {
    dialect: Dialect,
    parts: Vec<String>,
    params: Vec<SqlValue>,
}

impl All {
    fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            parts: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Add `text`, whose `?` bind `params`.
    fn and(&mut self, text: String, params: impl IntoIterator<Item = SqlValue>) {
        self.parts.push(text);
        self.params.extend(params);
    }

    /// Add `column = value`, when there is a value.
    fn equal(&mut self, column: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.and(
                format!("({column} = ?)"),
                [SqlValue::Text(value.to_owned())],
            );
        }
    }

    /// Add `column IN (values)`; nothing holds for an empty list.
    fn any_of(&mut self, column: &str, values: Vec<SqlValue>) {
        let text = any_of(self.dialect, column, values.len());
        self.and(text, values);
    }

    /// Add `column LIKE '%text%'`, when there is a text.
    fn contains(&mut self, column: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.and(
                format!("({column} {} ? ESCAPE '\\')", self.dialect.like()),
                [SqlValue::Text(format!("%{}%", escape_like(text)))],
            );
        }
    }

    /// Add that the execution columns `e` (its alias) are within `scope`. Only the other
    /// tenants' executions are indexed (most rows are the default tenant's): their
    /// condition repeats the index's, so that SQLite sees the index applies.
    fn scope(&mut self, e: &str, scope: Option<&Scope>) {
        let Some(scope) = scope else { return };
        let tenant = if scope.tenant == DEFAULT_TENANT {
            format!("({e}.tenant_id = ?)")
        } else {
            format!("({e}.tenant_id = ? AND {e}.tenant_id <> '{DEFAULT_TENANT}')")
        };
        self.and(tenant, [SqlValue::Text(scope.tenant.clone())]);
        if let Some(app) = &scope.app {
            self.and(format!("({e}.app_id = ?)"), [SqlValue::Text(app.clone())]);
        }
    }

    /// Add that `column`, an execution's string id, is of an execution within `scope`:
    /// looked up row by row through the executions' unique id (a list reads only the
    /// rows of its page and the ones it skips, not every execution of the tenant).
    fn of_scope(&mut self, column: &str, scope: Option<&Scope>) {
        let Some(scope) = scope else { return };
        let mut inner = All::new(self.dialect);
        inner.scope("x", Some(scope));
        let Sql { text, params } = inner.done();
        self.and(
            format!("EXISTS (SELECT 1 FROM executions x WHERE x.id = {column} AND {text})"),
            params,
        );
    }

    /// Add that a Splunk SOAR record of `records` is `tenant`'s (when one is named), and
    /// an app run its action run's.
    fn soar_scope(&mut self, records: SoarRecords, tenant: Option<&str>) {
        let tenant = tenant.map(|t| SqlValue::Text(t.to_owned()));
        match records {
            SoarRecords::ActionRuns => {
                if let Some(tenant) = tenant {
                    self.and("(tenant_id = ?)".to_owned(), [tenant]);
                }
            }
            SoarRecords::AppRuns(action_run) => {
                if let Some(tenant) = tenant {
                    self.and(
                        "(action_run IN (SELECT num FROM action_runs WHERE tenant_id = ?))"
                            .to_owned(),
                        [tenant],
                    );
                }
                if let Some(action_run) = action_run {
                    self.and(
                        "(action_run = ?)".to_owned(),
                        [SqlValue::Integer(action_run)],
                    );
                }
            }
        }
    }

    /// Add a TQL condition.
    fn tql<F: Columns>(&mut self, condition: Option<&Condition<F>>) {
        if let Some(condition) = condition {
            let mut params = Vec::new();
            let text = render(self.dialect, condition, &mut params);
            self.and(text, params);
        }
    }

    fn done(self) -> Sql {
        Sql {
            text: if self.parts.is_empty() {
                self.dialect.yes().to_owned()
            } else {
                self.parts.join(" AND ")
            },
            params: self.params,
        }
    }
}

/// `(column IN (?, …))` for `count` values; nothing holds for none.
fn any_of(dialect: Dialect, column: &str, count: usize) -> String {
    if count == 0 {
        return dialect.no().to_owned();
    }
    format!("({column} IN ({}))", marks(count))
}

/// `?, ?, …`: `count` of them.
fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// The condition of `filter` over `executions e`.
pub(super) fn executions(dialect: Dialect, filter: &ExecutionFilter) -> Sql {
    let mut all = All::new(dialect);
    all.scope("e", filter.scope.as_ref());
    all.tql(filter.tql.as_ref());
    all.done()
}

/// The condition of a Splunk SOAR list over its `record` column (a JSON document), and
/// its `ORDER BY`. A field's name goes into the JSON path: [`crate::store::SoarField`] holds only
/// a-z, 0-9 and `_`, so it can neither end the path nor the string.
///
/// SQLite compares the values `json_extract` gives; PostgreSQL compares `jsonb` values
/// (a number with a number, a string with a string), and the text ones by their text.
pub(super) fn soar(dialect: Dialect, records: SoarRecords, query: &SoarQuery) -> (Sql, String) {
    let mut all = All::new(dialect);
    all.soar_scope(records, query.tenant.as_deref());
    for condition in &query.conditions {
        let (text, params) = match dialect {
            Dialect::Sqlite => soar_extracted(condition),
            Dialect::Postgres => soar_jsonb(condition),
        };
        // `_exclude_`: where the condition does not hold, a missing field included.
        let text = if condition.negated {
            format!("NOT coalesce(({text}), {})", dialect.no())
        } else {
            format!("({text})")
        };
        all.and(text, params);
    }
    let order = match &query.sort {
        Some((field, descending)) => {
            let (field, nulls) = match dialect {
                Dialect::Sqlite => (format!("json_extract(record, '$.{}')", field.name()), ""),
                Dialect::Postgres => (
                    format!("record->'{}'", field.name()),
                    nulls_as_least(*descending),
                ),
            };
            let direction = if *descending { "DESC" } else { "ASC" };
            format!("{field} {direction}{nulls}, num")
        }
        None => "num".to_owned(),
    };
    (all.done(), order)
}

/// A SOAR condition in SQLite, over what `json_extract` gives.
fn soar_extracted(condition: &crate::store::SoarCondition) -> (String, Vec<SqlValue>) {
    let field = format!("json_extract(record, '$.{}')", condition.field.name());
    let values = || match &condition.value {
        serde_json::Value::Array(items) => items.iter().map(json_value).collect(),
        other => vec![json_value(other)],
    };
    match condition.lookup {
        SoarLookup::Exact => (format!("{field} = ?"), values()),
        SoarLookup::Gt => (format!("{field} > ?"), values()),
        SoarLookup::Gte => (format!("{field} >= ?"), values()),
        SoarLookup::Lt => (format!("{field} < ?"), values()),
        SoarLookup::Lte => (format!("{field} <= ?"), values()),
        SoarLookup::In => {
            let values = values();
            let marks = vec!["?"; values.len().max(1)].join(", ");
            let params = if values.is_empty() {
                vec![SqlValue::Null]
            } else {
                values
            };
            (format!("{field} IN ({marks})"), params)
        }
        SoarLookup::Contains => (format!("instr({field}, ?) > 0"), values()),
        SoarLookup::IContains => (format!("instr(lower({field}), lower(?)) > 0"), values()),
        SoarLookup::StartsWith => {
            let prefix = values();
            let twice = prefix.iter().chain(&prefix).cloned().collect();
            (format!("substr({field}, 1, length(?)) = ?"), twice)
        }
        SoarLookup::IsNull => (format!("{field} {}", null_test(condition)), Vec::new()),
    }
}

/// A SOAR condition in PostgreSQL, over a `jsonb` record.
fn soar_jsonb(condition: &crate::store::SoarCondition) -> (String, Vec<SqlValue>) {
    let name = condition.field.name();
    let (field, text) = (format!("record->'{name}'"), format!("(record->>'{name}')"));
    let items = match &condition.value {
        serde_json::Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let json = || {
        items
            .iter()
            .cloned()
            .map(SqlValue::Json)
            .collect::<Vec<_>>()
    };
    // A string's text, or another value's JSON.
    let texts = || {
        items
            .iter()
            .map(|v| SqlValue::Text(v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect::<Vec<_>>()
    };
    match condition.lookup {
        SoarLookup::Exact => (format!("{field} = ?"), json()),
        SoarLookup::Gt => (format!("{field} > ?"), json()),
        SoarLookup::Gte => (format!("{field} >= ?"), json()),
        SoarLookup::Lt => (format!("{field} < ?"), json()),
        SoarLookup::Lte => (format!("{field} <= ?"), json()),
        SoarLookup::In if items.is_empty() => ("FALSE".to_owned(), Vec::new()),
        SoarLookup::In => (format!("{field} IN ({})", marks(items.len())), json()),
        SoarLookup::Contains => (format!("strpos({text}, ?) > 0"), texts()),
        SoarLookup::IContains => (format!("strpos(lower({text}), lower(?)) > 0"), texts()),
        SoarLookup::StartsWith => (format!("starts_with({text}, ?)"), texts()),
        SoarLookup::IsNull => (format!("{text} {}", null_test(condition)), Vec::new()),
    }
}

/// What `isnull` asks: whether the field is null (unless its value is `false`).
fn null_test(condition: &crate::store::SoarCondition) -> &'static str {
    if matches!(condition.value, serde_json::Value::Bool(false)) {
        "IS NOT NULL"
    } else {
        "IS NULL"
    }
}

/// Which Splunk SOAR records a list reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum SoarRecords {
    /// `action_runs`.
    ActionRuns,
    /// `app_runs`, of one action run when there is one.
    AppRuns(Option<i64>),
}

impl SoarRecords {
    /// The table that holds them.
    pub(super) fn table(self) -> &'static str {
        match self {
            SoarRecords::ActionRuns => "action_runs",
            SoarRecords::AppRuns(_) => "app_runs",
        }
    }
}

/// A JSON scalar as SQLite's `json_extract` gives it back: true and false as 1 and 0.
fn json_value(value: &serde_json::Value) -> SqlValue {
    match value {
        serde_json::Value::Null => SqlValue::Null,
        serde_json::Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(SqlValue::Integer)
            .or_else(|| n.as_f64().map(SqlValue::Real))
            .unwrap_or(SqlValue::Null),
        serde_json::Value::String(text) => SqlValue::Text(text.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// The `ORDER BY` of `filter`'s executions (`executions e`): its keys, then the number in
/// `sort`'s direction.
pub(super) fn execution_order(dialect: Dialect, filter: &ExecutionFilter, sort: &str) -> String {
    let mut keys: Vec<String> = filter
        .order
        .iter()
        .map(|key| {
            let expr = match key.field {
                // Not a column of the execution: the playbook's, by its XID.
                ExecutionField::PlaybookNum => {
                    "(SELECT p.num FROM playbooks p WHERE p.xid = e.playbook_xid)"
                }
                field => field.column(dialect).expr,
            };
            let direction = if key.descending { "DESC" } else { "ASC" };
            let nulls = match (key.nulls_first, dialect) {
                (Some(true), _) => " NULLS FIRST",
                (Some(false), _) => " NULLS LAST",
                (None, Dialect::Sqlite) => "",
                // SQLite's order, where NULL is the least value.
                (None, Dialect::Postgres) => nulls_as_least(key.descending),
            };
            format!("{expr} {direction}{nulls}")
        })
        .collect();
    keys.push(format!("e.num {sort}"));
    keys.join(", ")
}

/// Where NULL goes in PostgreSQL when it sorts as SQLite sorts it, as the least value:
/// first going up, last going down.
pub(super) fn nulls_as_least(descending: bool) -> &'static str {
    if descending {
        " NULLS LAST"
    } else {
        " NULLS FIRST"
    }
}

/// The condition of `filter` over `step_runs s`.
pub(super) fn steps(dialect: Dialect, filter: &StepFilter) -> Sql {
    let mut all = All::new(dialect);
    all.of_scope("s.execution_id", filter.scope.as_ref());
    all.equal("s.node", filter.node.as_deref());
    if let Some(id) = &filter.execution
        && dialect == Dialect::Postgres
    {
        all.equal("s.execution_id", Some(id));
    } else if let Some(id) = &filter.execution {
        all.and(
            format!("({STEPS_OF_EXECUTION} AND s.execution_id = ?)"),
            [id; STEPS_OF_EXECUTION_BINDS].map(|id| SqlValue::Text(id.clone())),
        );
    }
    all.tql(filter.tql.as_ref());
    all.done()
}

/// The condition of `filter` over `log_lines l JOIN step_runs s ON s.num = l.step_num`.
pub(super) fn logs(dialect: Dialect, filter: &LogFilter) -> Sql {
    let mut all = All::new(dialect);
    all.of_scope("l.execution_id", filter.scope.as_ref());
    all.equal("l.execution_id", filter.execution.as_deref());
    if let Some(iteration) = filter.iteration {
        all.and(
            "(s.iteration = ?)".to_owned(),
            [SqlValue::Integer(iteration)],
        );
    }
    all.equal("l.node", filter.node.as_deref());
    all.contains("l.message", filter.message_contains.as_deref());
    if let Some(least) = filter.level_at_least {
        let levels = LogLevel::ALL
            .into_iter()
            .filter(|level| *level >= least)
            .map(|level| SqlValue::Text(level.as_str().to_owned()))
            .collect();
        all.any_of("l.level", levels);
    }
    all.tql(filter.tql.as_ref());
    all.done()
}

/// SecMaster's audit rows, `a`: a PLAYBOOK instance per execution (its output the
/// playbook's declared result, kept at every level), an APP instance per step run (its
/// input and output as captured, at DEBUG and TRACE). A child execution reports the
/// trigger type of the execution that started it. A part of a stored record is what
/// SQLite's `json_extract` gives, or in PostgreSQL its JSON text (a string quoted, which
/// the store unquotes; JSON's null as none).
pub(super) fn audit_rows(dialect: Dialect) -> String {
    let part = |record: &str, path: &[&str]| match dialect {
        Dialect::Sqlite => format!(
            "coalesce(json_extract({record}, '$.{}'), '')",
            path.join(".")
        ),
        Dialect::Postgres => {
            let path: Vec<String> = path.iter().map(|key| format!("'{key}'")).collect();
            format!(
                "coalesce(nullif(({record}::json -> {})::text, 'null'), '')",
                path.join(" -> ")
            )
        }
    };
    let text = if dialect == Dialect::Postgres {
        "::text"
    } else {
        ""
    };
    format!(
        "(SELECT 'PLAYBOOK'{text} AS instance_type,
    e.playbook_xid AS action_id,
    e.playbook_name AS action_name,
    e.id AS instance_id,
    e.parent_id AS parent_instance_id,
    e.log_level AS log_level,
    {} AS input,
    {} AS output,
    coalesce(e.message, '') AS error_msg,
    e.started_at AS start_time,
    e.completed_at AS end_time,
    e.status AS status,
    coalesce(p.trigger_type, e.trigger_type) AS trigger_type,
    e.tenant_id AS tenant_id,
    e.app_id AS app_id
FROM executions e
    LEFT JOIN execution_records r ON r.num = e.num
    LEFT JOIN executions p ON p.id = e.parent_id
UNION ALL
SELECT 'APP',
    s.app,
    s.action,
    'sr_' || s.num,
    s.execution_id,
    e.log_level,
    {},
    {},
    coalesce(s.error_message, ''),
    s.started_at,
    s.started_at + s.duration_us / 1000,
    s.status,
    coalesce(p.trigger_type, e.trigger_type),
    e.tenant_id,
    e.app_id
FROM step_runs s JOIN executions e ON e.id = s.execution_id
    LEFT JOIN executions p ON p.id = e.parent_id) a",
        part("r.record", &["trigger"]),
        part("r.record", &["output"]),
        part("s.record", &["input"]),
        part("s.record", &["report", "output"]),
    )
}

/// The condition of `filter` over the audit rows `a` ([`audit_rows`]).
pub(super) fn audit(dialect: Dialect, filter: &AuditFilter) -> Sql {
    let text = |word: &str| SqlValue::Text(word.to_owned());
    let mut all = All::new(dialect);
    all.scope("a", filter.scope.as_ref());
    if let Some(kinds) = &filter.kinds {
        let kinds = kinds
            .iter()
            .map(|kind| text(instance_type(*kind)))
            .collect();
        all.any_of("a.instance_type", kinds);
    }
    if let Some(statuses) = &filter.statuses {
        // A status word is an execution's or a step run's: each is compared with the
        // rows of its own kind.
        let (mut executions, mut steps) = (Vec::new(), Vec::new());
        for status in statuses {
            match status {
                AuditStatus::Execution(status) => {
                    executions.push(text(&super::stored::word(status)))
                }
                AuditStatus::Step(status) => steps.push(text(&super::stored::word(status))),
            }
        }
        let mut either = Vec::new();
        for (kind, words) in [(AuditKind::Playbook, &executions), (AuditKind::App, &steps)] {
            if !words.is_empty() {
                either.push(format!(
                    "(a.instance_type = '{}' AND {})",
                    instance_type(kind),
                    any_of(dialect, "a.status", words.len())
                ));
            }
        }
        let condition = if either.is_empty() {
            dialect.no().to_owned()
        } else {
            format!("({})", either.join(" OR "))
        };
        all.and(condition, executions.into_iter().chain(steps));
    }
    if let Some(types) = &filter.trigger_types {
        let types = types
            .iter()
            .map(|t| text(&super::stored::word(t)))
            .collect();
        all.any_of("a.trigger_type", types);
    }
    if let Some(levels) = &filter.log_levels {
        let levels = levels.iter().map(|l| text(l.as_str())).collect();
        all.any_of("a.log_level", levels);
    }
    all.equal("a.action_id", filter.action_id.as_deref());
    all.equal("a.action_name", filter.action_name.as_deref());
    all.equal("a.instance_id", filter.instance_id.as_deref());
    all.equal("a.parent_instance_id", filter.parent_instance_id.as_deref());
    all.contains("a.input", filter.input_contains.as_deref());
    all.contains("a.output", filter.output_contains.as_deref());
    all.contains("a.error_msg", filter.error_contains.as_deref());
    if let Some(from) = filter.started_from {
        all.and(
            "(a.start_time >= ?)".to_owned(),
            [SqlValue::Integer(from.timestamp_millis())],
        );
    }
    if let Some(by) = filter.ended_by {
        all.and(
            "(a.end_time <= ?)".to_owned(),
            [SqlValue::Integer(by.timestamp_millis())],
        );
    }
    all.done()
}

/// The `instance_type` of the audit rows of `kind`.
pub(super) fn instance_type(kind: AuditKind) -> &'static str {
    match kind {
        AuditKind::Playbook => "PLAYBOOK",
        AuditKind::App => "APP",
    }
}

/// `text` with `%`, `_` and `\` escaped for `LIKE … ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn parameter(value: &Value) -> SqlValue {
    match value {
        Value::Integer(i) | Value::Time(i) => SqlValue::Integer(*i),
        Value::Real(r) => SqlValue::Real(*r),
        Value::Text(t) => SqlValue::Text(t.clone()),
        Value::Word(w) => SqlValue::Text((*w).to_owned()),
    }
}

fn operator(op: Comparison) -> &'static str {
    match op {
        Comparison::Eq => "=",
        Comparison::Ne => "!=",
        Comparison::Lt => "<",
        Comparison::Le => "<=",
        Comparison::Gt => ">",
        Comparison::Ge => ">=",
    }
}

/// `condition` as SQL, its parameters appended to `params` in order.
fn render<F: Columns>(
    dialect: Dialect,
    condition: &Condition<F>,
    params: &mut Vec<SqlValue>,
) -> String {
    match condition {
        Condition::And(a, b) => {
            let a = render(dialect, a, params);
            format!("({a} AND {})", render(dialect, b, params))
        }
        Condition::Or(a, b) => {
            let a = render(dialect, a, params);
            format!("({a} OR {})", render(dialect, b, params))
        }
        // `IS NOT 1` (`IS NOT TRUE`) keeps rows where the condition is NULL (a missing
        // value), as a reader of `NOT` expects.
        Condition::Not(inner) => format!(
            "(({}) IS NOT {})",
            render(dialect, inner, params),
            dialect.yes()
        ),
        Condition::IsNull { field, negated } => {
            let column = field.column(dialect);
            match column.via {
                // Null when the key selects no row.
                Via::Rows { key, select } => format!(
                    "({key} {}IN ({select}))",
                    if *negated { "" } else { "NOT " },
                ),
                Via::Within { .. } | Via::Direct => format!(
                    "({} IS {}NULL)",
                    column.expr,
                    if *negated { "NOT " } else { "" }
                ),
            }
        }
        Condition::In {
            field,
            values,
            negated,
        } => {
            let column = field.column(dialect);
            params.extend(values.iter().map(parameter));
            let folded = values.iter().any(|v| matches!(v, Value::Word(_)));
            let not = if *negated { "NOT " } else { "" };
            let marks = vec![folded_mark(dialect, folded); values.len()].join(", ");
            through(
                column,
                format!("({} {not}IN ({marks}))", collated(dialect, column, folded),),
            )
        }
        Condition::Match {
            field,
            pattern,
            negated,
        } => {
            let column = field.column(dialect);
            let pattern = match pattern {
                Pattern::Like(pattern) => pattern.clone(),
                Pattern::Contains(text) => format!("%{}%", escape_like(text)),
                Pattern::StartsWith(text) => format!("{}%", escape_like(text)),
                Pattern::EndsWith(text) => format!("%{}", escape_like(text)),
            };
            // A client's pattern that ends in a lone escape matches nothing in SQLite,
            // and is an error in PostgreSQL: nothing, in both.
            if pattern.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1 {
                let never = if *negated {
                    dialect.yes()
                } else {
                    dialect.no()
                };
                return format!("({never})");
            }
            params.push(SqlValue::Text(pattern));
            let not = if *negated { "NOT " } else { "" };
            let like = dialect.like();
            through(
                column,
                format!("({} {not}{like} ? ESCAPE '\\')", column.expr),
            )
        }
        Condition::Compare { field, op, value } => {
            let column = field.column(dialect);
            let folded = matches!(value, Value::Word(_));
            let value = parameter(value);
            let within = match column.via {
                Via::Within { range } if *op == Comparison::Eq => {
                    params.extend(range.matches('?').map(|_| value.clone()));
                    format!("{range} AND ")
                }
                _ => String::new(),
            };
            params.push(value);
            through(
                column,
                format!(
                    "({within}{} {} {})",
                    collated(dialect, column, folded),
                    operator(*op),
                    folded_mark(dialect, folded)
                ),
            )
        }
    }
}

/// `condition` on `column`, as a condition on the record (see [`Via`]).
fn through(column: Column, condition: String) -> String {
    match column.via {
        Via::Rows { key, select } => format!("({key} IN ({select} WHERE {condition}))"),
        Via::Within { .. } | Via::Direct => condition,
    }
}

/// The column, compared without regard to case when `folded` (an enum's words).
fn collated(dialect: Dialect, column: Column, folded: bool) -> String {
    match (folded, dialect) {
        (false, _) => column.expr.to_owned(),
        (true, Dialect::Sqlite) => format!("{} COLLATE NOCASE", column.expr),
        (true, Dialect::Postgres) => format!("lower({})", column.expr),
    }
}

/// The parameter a [`collated`] column is compared with.
fn folded_mark(dialect: Dialect, folded: bool) -> &'static str {
    if folded && dialect == Dialect::Postgres {
        "lower(?)"
    } else {
        "?"
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::store::{EXECUTION_FIELDS, LOG_FIELDS, STEP_FIELDS};
    use crate::trace::{ExecutionStatus, NodeStatus, TriggerType};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 4, 4, 21, 39, 42).unwrap()
    }

    fn text(t: &str) -> SqlValue {
        SqlValue::Text(t.to_owned())
    }

    /// The SQL of TQL `query` over executions.
    fn sql(query: &str) -> (String, Vec<SqlValue>) {
        let tql = crate::tql::condition(query, EXECUTION_FIELDS, now()).unwrap();
        let Sql { text, params } = executions(
            Dialect::Sqlite,
            &ExecutionFilter {
                tql,
                ..Default::default()
            },
        );
        (text, params)
    }

    #[test]
    fn the_seed_queries_render_to_parameterised_sql() {
        let hour_ago = now().timestamp_millis() - 3_600_000;
        assert_eq!(
            sql(r#"completedTime > "NOW() - 1 HOUR""#),
            (
                "(e.completed_at > ?)".to_owned(),
                vec![SqlValue::Integer(hour_ago)]
            )
        );
        assert_eq!(
            sql(r#"playbookXid = "GiTVUWaN""#),
            ("(e.playbook_xid = ?)".to_owned(), vec![text("GiTVUWaN")])
        );
        assert_eq!(
            sql("id = 12345"),
            ("(e.num = ?)".to_owned(), vec![SqlValue::Integer(12345)])
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_keeps_missing_values() {
        let (sql, params) =
            sql(r#"PLAYBOOKXID == 'a' or status eq "failed" AND NOT completedtime isnull"#);
        assert_eq!(
            sql,
            "((e.playbook_xid = ?) OR ((e.status COLLATE NOCASE = ?) AND \
             (((e.completed_at IS NULL)) IS NOT 1)))"
        );
        assert_eq!(params, [text("a"), text("Failed")]);
    }

    #[test]
    fn text_operators_escape_the_value_and_in_lists_bind_each_value() {
        assert_eq!(
            sql(r#"playbookXid CONTAINS "50%_off""#),
            (
                "(e.playbook_xid LIKE ? ESCAPE '\\')".to_owned(),
                vec![text("%50\\%\\_off%")]
            )
        );
        assert_eq!(
            sql(r#"playbookXid not startswith "x""#),
            (
                "(e.playbook_xid NOT LIKE ? ESCAPE '\\')".to_owned(),
                vec![text("x%")]
            )
        );
        assert_eq!(sql(r#"playbookXid endswith "\\""#).1, [text("%\\\\")]);
        // A LIKE pattern is the client's own: its wildcards stay wildcards.
        assert_eq!(sql(r#"playbookName LIKE "a%_b""#).1, [text("a%_b")]);
        assert_eq!(
            sql(r#"status NOT IN ("Completed", "failed")"#),
            (
                "(e.status COLLATE NOCASE NOT IN (?, ?))".to_owned(),
                vec![text("Completed"), text("Failed")]
            )
        );
        // A hostile value stays a parameter.
        let (sql, params) = sql(r#"playbookXid = "x' OR 1=1; DROP TABLE executions; --""#);
        assert_eq!(sql, "(e.playbook_xid = ?)");
        assert_eq!(params, [text("x' OR 1=1; DROP TABLE executions; --")]);
    }

    #[test]
    fn a_field_of_another_table_is_reached_through_its_key() {
        assert_eq!(
            sql("playbookId = 4"),
            (
                "(e.playbook_xid IN (SELECT p.xid FROM playbooks p WHERE (p.num = ?)))".to_owned(),
                vec![SqlValue::Integer(4)]
            )
        );
        assert_eq!(
            sql("playbookId ISNULL").0,
            "(e.playbook_xid NOT IN (SELECT p.xid FROM playbooks p))"
        );
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        assert_eq!(sql("   "), ("1".to_owned(), Vec::new()));
        assert_eq!(logs(Dialect::Sqlite, &LogFilter::default()).text, "1");
        assert_eq!(audit(Dialect::Sqlite, &AuditFilter::default()).text, "1");
    }

    #[test]
    fn the_step_runs_of_an_execution_are_read_by_their_range_of_numbers() {
        let tql = crate::tql::condition(r#"status = "failed""#, STEP_FIELDS, now()).unwrap();
        let Sql { text: sql, params } = steps(
            Dialect::Sqlite,
            &StepFilter {
                tql,
                scope: None,
                execution: Some("ex_1".to_owned()),
                node: Some("enrich".to_owned()),
            },
        );
        assert_eq!(
            sql,
            format!(
                "(s.node = ?) AND ({STEPS_OF_EXECUTION} AND s.execution_id = ?) AND \
                 (s.status COLLATE NOCASE = ?)"
            )
        );
        assert_eq!(
            params,
            [
                text("enrich"),
                text("ex_1"),
                text("ex_1"),
                text("ex_1"),
                text("ex_1"),
                text("Failed")
            ]
        );
        // TQL's own `executionId =` reads the same range.
        let tql = crate::tql::condition(r#"executionId = "ex_2""#, STEP_FIELDS, now()).unwrap();
        let filter = StepFilter {
            tql,
            ..StepFilter::default()
        };
        assert_eq!(
            steps(Dialect::Sqlite, &filter),
            Sql {
                text: format!("({STEPS_OF_EXECUTION} AND s.execution_id = ?)"),
                params: vec![text("ex_2"); STEPS_OF_EXECUTION_BINDS]
            }
        );
    }

    #[test]
    fn a_log_filter_renders_each_condition_it_names() {
        let tql = crate::tql::condition(r#"node = "a""#, LOG_FIELDS, now()).unwrap();
        let Sql { text: sql, params } = logs(
            Dialect::Sqlite,
            &LogFilter {
                tql,
                scope: None,
                execution: Some("ex_1".to_owned()),
                node: Some("b".to_owned()),
                iteration: Some(2),
                level_at_least: Some(LogLevel::Warn),
                message_contains: Some("100%".to_owned()),
            },
        );
        assert_eq!(
            sql,
            "(l.execution_id = ?) AND (s.iteration = ?) AND (l.node = ?) AND \
             (l.message LIKE ? ESCAPE '\\') AND (l.level IN (?, ?)) AND (l.node = ?)"
        );
        assert_eq!(
            params,
            [
                text("ex_1"),
                SqlValue::Integer(2),
                text("b"),
                text("%100\\%%"),
                text("warn"),
                text("error"),
                text("a")
            ]
        );
    }

    #[test]
    fn an_audit_filter_compares_each_status_with_rows_of_its_own_kind() {
        let from = now();
        let Sql { text: sql, params } = audit(
            Dialect::Sqlite,
            &AuditFilter {
                kinds: Some(vec![AuditKind::App]),
                statuses: Some(vec![
                    AuditStatus::Execution(ExecutionStatus::PartiallyFailed),
                    AuditStatus::Step(NodeStatus::TimedOut),
                ]),
                trigger_types: Some(vec![TriggerType::Webhook]),
                log_levels: Some(Vec::new()),
                instance_id: Some("sr_1".to_owned()),
                error_contains: Some("it's_".to_owned()),
                started_from: Some(from),
                ..AuditFilter::default()
            },
        );
        assert_eq!(
            sql,
            "(a.instance_type IN (?)) AND \
             ((a.instance_type = 'PLAYBOOK' AND (a.status IN (?))) OR \
             (a.instance_type = 'APP' AND (a.status IN (?)))) AND \
             (a.trigger_type IN (?)) AND 0 AND (a.instance_id = ?) AND \
             (a.error_msg LIKE ? ESCAPE '\\') AND (a.start_time >= ?)"
        );
        assert_eq!(
            params,
            [
                text("APP"),
                text("Partially Failed"),
                text("TimedOut"),
                text("WEBHOOK"),
                text("sr_1"),
                text("%it's\\_%"),
                SqlValue::Integer(from.timestamp_millis())
            ]
        );
        // Statuses named but none known: nothing matches.
        let none = audit(
            Dialect::Sqlite,
            &AuditFilter {
                statuses: Some(Vec::new()),
                ..AuditFilter::default()
            },
        );
        assert_eq!((none.text.as_str(), none.params.len()), ("0", 0));
    }
}
