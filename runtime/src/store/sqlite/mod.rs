//! The embedded store: one SQLite file in WAL mode.
//!
//! One connection writes (SQLite allows one writer at a time anyway), behind a std
//! `Mutex` — not a Tokio one: nothing awaits while it is held (the server's writer, a
//! task, holds it for a batch; a change made through the API, on the blocking pool,
//! for its own write). Readers take a connection from a small pool, so that lists and
//! reads never wait for a write to finish (WAL lets them read the last commit).
//! `synchronous = NORMAL` in WAL mode: a commit survives the process dying (what the
//! crash test kills); only an OS crash or power cut can lose the last commits.
//!
//! Times are stored as milliseconds since the epoch (UTC), so that TQL date conditions
//! compare integers on an index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::lock;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

mod schema;

use super::render::{self, Dialect, Sql, SqlValue};
use super::stored::{
    AUDIT_COLUMNS, EXECUTION_COLUMNS, KEY_COLUMNS, LOG_LINES, NODE_STATES_OF, PLAYBOOK_COLUMNS,
    STEP_RUNS, StoredRecord, StoredStep, audit_key, audit_row, execution_row, json_column, key_row,
    log_row, millis, node_state, number, order, parse_word, playbook_row, restore_step,
    step_run_row, word,
};
use schema::MIGRATIONS;

/// SecMaster's audit rows, in this dialect.
static AUDIT_ROWS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| render::audit_rows(Dialect::Sqlite));

use super::{
    ApiKey, AuditFilter, AuditOrder, AuditRow, Error, ExecutionFilter, ExecutionRecord,
    ExecutionRow, Interrupted, LogFilter, LogRow, NewExecution, NodeState, Page, PlaybookFields,
    PlaybookRecord, RunStats, SoarQuery, StepFilter, StepRunRow, Store, Window, Write,
};
use crate::trace::{Event, Execution, ExecutionHeader, ExecutionStatus};

/// The columns of an executions row, as written.
struct RowValues<'a> {
    header: &'a ExecutionHeader,
    status: ExecutionStatus,
    message: Option<&'a str>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
}

/// Readers kept open for reuse; more are opened under load and closed after.
const IDLE_READERS: usize = 4;

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Told after each commit; copies the write-ahead log into the database on its own
    /// thread, so that a commit never waits for a checkpoint and its fsync.
    checkpoints: std::sync::mpsc::SyncSender<()>,
    /// Set by the checkpoint thread when the log has grown long: the writer finishes a
    /// checkpoint before its next commit, so that the log starts over.
    restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How often at most the checkpoint thread copies the write-ahead log back.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// How many frames the write-ahead log may hold before the writer finishes a checkpoint
/// itself, so that the log starts over (32 MiB of 4 KiB pages).
const RESTART_AFTER_FRAMES: i64 = 8192;

/// Copy the write-ahead log of `connection`'s database into it, at most once every
/// `CHECKPOINT_EVERY` while commits are announced on `commits`, until the store is
/// dropped. Passive: it never blocks the writer or a reader; what it cannot copy yet
/// waits for the next round.
///
/// The log starts over only when a commit begins with all of it copied, which steady
/// writes never allow (the writer appends while the copy runs): under sustained load it
/// grew without end, 156 MB for a 31 MB database after 4 s of the server bench. So once
/// it holds more than `restart_after` frames, this sets `restart`, and the writer copies
/// what is left itself before its next commit (see [`SqliteStore::write`]), which then
/// writes the log from its start again. (A `RESTART` checkpoint from this thread would
/// have to win the write lock from a writer that takes it back to back.)
fn checkpoint(
    connection: Connection,
    commits: std::sync::mpsc::Receiver<()>,
    restart_after: i64,
    restart: &std::sync::atomic::AtomicBool,
) {
    while commits.recv().is_ok() {
        let started = std::time::Instant::now();
        match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            Ok(frames) if frames > restart_after => {
                restart.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a checkpoint of the store's write-ahead log failed");
            }
        }
        std::thread::sleep(CHECKPOINT_EVERY.saturating_sub(started.elapsed()));
    }
}

/// A stored column that does not decode, as rusqlite reports one.
fn undecodable(error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(error))
}

/// `text` (a stored JSON column) decoded as a `T`.
fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, rusqlite::Error> {
    serde_json::from_str(text).map_err(undecodable)
}

/// A part of a stored JSON document, as text: SQLite's `json_extract` hands back text for
/// objects and strings, and for a number only the name of its type (which is what the
/// audit rows have always said).
fn json_text(value: rusqlite::types::ValueRef<'_>) -> String {
    match value {
        rusqlite::types::ValueRef::Null => String::new(),
        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        other => format!("{:?}", other.data_type()),
    }
}

impl super::stored::Columns for Row<'_> {
    type Error = rusqlite::Error;

    fn get<T: super::stored::Column>(&self, i: usize) -> Result<T, rusqlite::Error> {
        Row::get(self, i)
    }

    fn word<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, rusqlite::Error> {
        parse_word(self.get_ref(i)?.as_str()?).map_err(undecodable)
    }

    fn decoded<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
    ) -> Result<Option<T>, rusqlite::Error> {
        match self.get_ref(i)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            text => decode(text.as_str()?).map(Some),
        }
    }

    fn json_part(&self, i: usize) -> Result<String, rusqlite::Error> {
        Ok(json_text(self.get_ref(i)?))
    }

    fn missing(&self, i: usize) -> rusqlite::Error {
        rusqlite::Error::InvalidColumnType(i, "NULL".to_owned(), rusqlite::types::Type::Null)
    }
}

impl SqliteStore {
    /// Open (creating if need be) the database at `path` and bring its schema up to
    /// date.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_with(path, RESTART_AFTER_FRAMES)
    }

    /// [`SqliteStore::open`], starting the write-ahead log over once it holds more than
    /// `restart_after` frames.
    fn open_with(path: &Path, restart_after: i64) -> Result<Self, Error> {
        let open_error = |source: rusqlite::Error| Error::Open {
            path: path.display().to_string(),
            source,
        };
        let mut writer = Self::connect(path).map_err(open_error)?;
        let applied: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_error)?;
        let applied = usize::try_from(applied).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(Error::Newer {
                path: path.display().to_string(),
                version: applied,
                known: MIGRATIONS.len(),
            });
        }
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let transaction = writer.transaction().map_err(open_error)?;
            transaction.execute_batch(migration).map_err(open_error)?;
            transaction
                .pragma_update(
                    None,
                    "user_version",
                    i64::try_from(version + 1).unwrap_or(i64::MAX),
                )
                .map_err(open_error)?;
            transaction.commit().map_err(open_error)?;
        }
        // The writer leaves checkpoints to their own thread.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(open_error)?;
        let checkpointer = Self::connect(path).map_err(open_error)?;
        let (checkpoints, commits) = std::sync::mpsc::sync_channel(1);
        let restart = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wanted = std::sync::Arc::clone(&restart);
        std::thread::Builder::new()
            .name("wasp-checkpoint".to_owned())
            .spawn(move || checkpoint(checkpointer, commits, restart_after, &wanted))
            .map_err(|source| Error::Checkpointer {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            checkpoints,
            restart,
        })
    }

    fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        // The log is emptied by checkpoints; keep its file from staying at its peak.
        connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        Ok(connection)
    }

    /// Run `read` on a reader connection.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, Error> {
        let pooled = lock(&self.readers).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => Self::connect(&self.path)?,
        };
        let result = read(&connection);
        let mut readers = lock(&self.readers);
        if readers.len() < IDLE_READERS {
            readers.push(connection);
        }
        Ok(result?)
    }

    /// The page `window` of `columns` of `from` where `condition` holds, ordered by
    /// `key`, each row read by `read_row`; and how many rows match in all.
    fn page<T>(
        &self,
        condition: Sql,
        window: Window,
        from: &str,
        key: &str,
        columns: &str,
        read_row: impl FnMut(&Row<'_>) -> Result<T, rusqlite::Error>,
    ) -> Result<(Vec<T>, i64), Error> {
        let Sql {
            text: condition,
            params,
        } = condition;
        let order = order(window.sort);
        self.read(|c| {
            let total = c.query_row(
                &format!("SELECT count(*) FROM {from} WHERE {condition}"),
                rusqlite::params_from_iter(&params),
                |r| r.get(0),
            )?;
            let mut params = params;
            params.push(SqlValue::Integer(window.limit));
            params.push(SqlValue::Integer(window.offset));
            let mut statement = c.prepare(&format!(
                "SELECT {columns} FROM {from} WHERE {condition} ORDER BY {key} {order} \
                 LIMIT ? OFFSET ?"
            ))?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(&params), read_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((rows, total))
        })
    }

    /// The page of the SOAR `records` that `query` matches, in its order, and how many
    /// match.
    fn soar_page(
        &self,
        records: render::SoarRecords,
        query: &SoarQuery,
    ) -> Result<(Vec<Value>, i64), Error> {
        let (condition, order) = render::soar(Dialect::Sqlite, records, query);
        let table = records.table();
        self.read(|c| {
            let total = c.query_row(
                &format!("SELECT count(*) FROM {table} WHERE {}", condition.text),
                rusqlite::params_from_iter(&condition.params),
                |r| r.get(0),
            )?;
            let mut params = condition.params.clone();
            params.extend([
                SqlValue::Integer(query.limit),
                SqlValue::Integer(query.offset),
            ]);
            let rows = c
                .prepare(&format!(
                    "SELECT record FROM {table} WHERE {} ORDER BY {order} LIMIT ? OFFSET ?",
                    condition.text
                ))?
                .query_map(rusqlite::params_from_iter(&params), |r| {
                    Ok(json_column(&r.get::<_, String>(0)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((rows, total))
        })
    }

    /// The step runs of execution `id`, in the order they ended.
    fn step_records(&self, id: &str) -> Result<Vec<Value>, Error> {
        let texts: Vec<String> = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT s.record FROM step_runs s \
                 WHERE {} AND s.execution_id = ? ORDER BY s.num",
                render::STEPS_OF_EXECUTION
            ))?
            .query_map([id; 4], |r| r.get(0))?
            .collect()
        })?;
        texts
            .iter()
            .map(|text| {
                let mut record = serde_json::from_str(text).map_err(|source| Error::Corrupt {
                    what: format!("a step run of `{id}`"),
                    source,
                })?;
                restore_step(&mut record);
                Ok(record)
            })
            .collect()
    }

    /// The writes of `batch`, in the transaction open on `connection`; the numbers of
    /// its starts and finishes, in order.
    fn write_batch(connection: &Connection, batch: &[Write]) -> Result<Vec<i64>, Error> {
        let mut statements = Batch::prepare(connection)?;
        let mut nums = Vec::new();
        // A node state is kept only while its execution runs: the record of one that
        // ends in this batch supersedes its node events.
        let ended_here = Write::ended_in(batch);
        let events: Vec<&Event> = batch
            .iter()
            .filter_map(|w| match w {
                Write::Event(event) if !ended_here.contains(event.execution_id()) => Some(event),
                _ => None,
            })
            .collect();
        for write in batch {
            match write {
                Write::Start(execution) => nums.push(statements.insert_started(execution)?),
                Write::Finish(execution) => nums.push(statements.write_execution(execution)?),
                Write::Event(_) => {}
            }
        }
        statements.write_events(&events)?;
        Ok(nums)
    }
}

/// The statements a batch of writes runs, prepared once for the batch.
struct Batch<'t> {
    connection: &'t Connection,
    /// The playbooks' numbers looked up in this batch, by XID (none can change while
    /// the batch holds the writer).
    playbook_nums: std::collections::HashMap<String, Option<i64>>,
    /// Whether `node_states` held any row when the batch began. The server's batches
    /// mostly find it empty (an execution that ends within 10 ms never has its node
    /// events written), and then an ended execution has none to clear.
    nodes_stored: bool,
    playbook_num: rusqlite::CachedStatement<'t>,
    insert_row: rusqlite::CachedStatement<'t>,
    update_row: rusqlite::CachedStatement<'t>,
    row_num: rusqlite::CachedStatement<'t>,
    count_early: rusqlite::CachedStatement<'t>,
    list_early: rusqlite::CachedStatement<'t>,
    early_keys: rusqlite::CachedStatement<'t>,
    record: rusqlite::CachedStatement<'t>,
    step: rusqlite::CachedStatement<'t>,
    line: rusqlite::CachedStatement<'t>,
    clear_nodes: rusqlite::CachedStatement<'t>,
    node_started: rusqlite::CachedStatement<'t>,
    node_ended: rusqlite::CachedStatement<'t>,
}

impl<'t> Batch<'t> {
    fn prepare(connection: &'t Connection) -> Result<Self, rusqlite::Error> {
        Ok(Self {
            connection,
            playbook_nums: std::collections::HashMap::new(),
            nodes_stored: connection
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM node_states)")?
                .query_row([], |r| r.get(0))?,
            playbook_num: connection.prepare_cached("SELECT num FROM playbooks WHERE xid = ?1")?,
            insert_row: connection.prepare_cached(
                "INSERT INTO executions (id, parent_id, playbook_num, playbook_xid, playbook_name, \
                     trigger_type, log_level, status, message, queued_at, started_at, \
                     completed_at, duration_ms, replay_of, tenant_id, app_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
                 ON CONFLICT (id) DO NOTHING",
            )?,
            update_row: connection.prepare_cached(
                "UPDATE executions SET status = ?2, message = ?3, started_at = ?4, \
                     completed_at = ?5, duration_ms = ?6, log_level = ?7 \
                 WHERE id = ?1 AND completed_at IS NULL",
            )?,
            row_num: connection
                .prepare_cached("SELECT num, early_steps FROM executions WHERE id = ?1")?,
            count_early: connection.prepare_cached(
                "UPDATE executions SET early_steps = coalesce(early_steps, 0) + 1 \
                 WHERE id = ?1 AND completed_at IS NULL",
            )?,
            list_early: connection.prepare_cached(
                "INSERT INTO early_steps (execution_id, step_num) VALUES (?1, ?2)",
            )?,
            early_keys: connection.prepare_cached(
                "SELECT s.node, s.iteration, s.attempt FROM early_steps x \
                 JOIN step_runs s ON s.num = x.step_num WHERE x.execution_id = ?1",
            )?,
            record: connection.prepare_cached(
                "INSERT OR REPLACE INTO execution_records (num, record, first_step, last_step) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?,
            step: connection.prepare_cached(
                "INSERT INTO step_runs (execution_id, node, app, action, iteration, attempt, \
                     status, error_kind, error_message, duration_us, child_id, record, started_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?,
            line: connection.prepare_cached(
                "INSERT INTO log_lines (execution_id, step_num, node, ts, level, message, fields) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            clear_nodes: connection
                .prepare_cached("DELETE FROM node_states WHERE execution_id = ?1")?,
            node_started: connection.prepare_cached(
                "INSERT INTO node_states (execution_id, node, status, started_at) \
                 VALUES (?1, ?2, 'Running', ?3) \
                 ON CONFLICT (execution_id, node) DO UPDATE SET status = 'Running', \
                     started_at = excluded.started_at",
            )?,
            node_ended: connection.prepare_cached(
                "INSERT INTO node_states (execution_id, node, status, ended_at, duration_us, \
                     pathway, error, iterations, succeeded) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (execution_id, node) DO UPDATE SET status = excluded.status, \
                     ended_at = excluded.ended_at, duration_us = excluded.duration_us, \
                     pathway = excluded.pathway, error = excluded.error, \
                     iterations = excluded.iterations, succeeded = excluded.succeeded",
            )?,
        })
    }

    fn insert_started(&mut self, execution: &NewExecution) -> Result<i64, Error> {
        Ok(self
            .upsert_row(&RowValues {
                header: &execution.header,
                status: execution.status,
                message: None,
                started_at: (execution.status == ExecutionStatus::Running).then(Utc::now),
                completed_at: None,
                duration_ms: None,
            })?
            .0)
    }

    /// Insert an executions row, or update the one with its id unless it has ended (a
    /// start that comes late never undoes an end); its numeric id, and how many of its
    /// step runs were written while it ran.
    fn upsert_row(&mut self, row: &RowValues<'_>) -> Result<(i64, i64), Error> {
        let playbook_num = match self.playbook_nums.get(&row.header.playbook_id) {
            Some(num) => *num,
            None => {
                let num: Option<i64> = self
                    .playbook_num
                    .query_row([&row.header.playbook_id], |r| r.get(0))
                    .optional()?;
                self.playbook_nums
                    .insert(row.header.playbook_id.clone(), num);
                num
            }
        };
        let (log_level, status) = (row.header.log_level.to_string(), word(&row.status));
        let inserted = self.insert_row.execute(params![
            row.header.id,
            row.header.parent_id,
            playbook_num,
            row.header.playbook_id,
            row.header.playbook_name,
            word(&row.header.trigger_type),
            log_level,
            status,
            row.message,
            millis(row.header.queued_at),
            row.started_at.map(millis),
            row.completed_at.map(millis),
            row.duration_ms,
            row.header.replay_of,
            row.header.tenant_id,
            row.header.app_id,
        ])?;
        // Most rows are new (an execution that ends fast is written once, at its end):
        // the row just inserted has the connection's last number. (Not an upsert with
        // `RETURNING num`: with it, a batch took half as long again.)
        if inserted == 1 {
            return Ok((self.connection.last_insert_rowid(), 0));
        }
        let (num, early): (i64, Option<i64>) = self
            .row_num
            .query_row([&row.header.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        self.update_row.execute(params![
            row.header.id,
            status,
            row.message,
            row.started_at.map(millis),
            row.completed_at.map(millis),
            row.duration_ms,
            log_level,
        ])?;
        Ok((num, early.unwrap_or(0)))
    }

    /// Node state changes.
    fn write_events(&mut self, events: &[&Event]) -> Result<(), Error> {
        for event in events {
            match *event {
                Event::NodeStarted {
                    execution_id,
                    node,
                    at,
                    ..
                } => {
                    self.node_started
                        .execute(params![execution_id, node, millis(*at)])?;
                }
                Event::NodeEnded {
                    execution_id,
                    node,
                    status,
                    at,
                    duration_us,
                    pathway,
                    error,
                    iterations,
                    succeeded,
                    ..
                } => {
                    self.node_ended.execute(params![
                        execution_id,
                        node,
                        word(status),
                        millis(*at),
                        i64::try_from(*duration_us).unwrap_or(i64::MAX),
                        pathway,
                        error
                            .as_ref()
                            .map(|e| serde_json::to_string(e).unwrap_or_default()),
                        iterations.map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
                        succeeded.map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
                    ])?;
                }
                Event::StepEnded {
                    execution_id,
                    run: Some(run),
                    ..
                } => {
                    // Readable while its execution runs. Not when its row is not
                    // there (a child's is written with its parent's record) or it
                    // has ended (its record holds every step).
                    if self.count_early.execute([execution_id])? == 1 {
                        let num = self.insert_step(execution_id, run)?;
                        self.list_early.execute(params![execution_id, num])?;
                    }
                }
                Event::StepEnded { run: None, .. } | Event::ExecutionEnded { .. } => {}
            }
        }
        Ok(())
    }

    /// Insert `step`, a step run of `execution_id`, with its log lines; its number.
    fn insert_step(
        &mut self,
        execution_id: &str,
        step: &crate::trace::StepRun,
    ) -> Result<i64, Error> {
        let error = step.report.error.as_ref();
        let record =
            serde_json::to_string(&StoredStep::of(step)).map_err(|source| Error::Encode {
                what: format!("a step of `{execution_id}`"),
                source,
            })?;
        self.step.execute(params![
            execution_id,
            step.node,
            step.app,
            step.action,
            step.iteration.map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
            step.attempt,
            word(&step.status()),
            error.map(|e| word(&e.kind)),
            error.map(|e| e.message.as_str()),
            i64::try_from(step.report.duration_us).unwrap_or(i64::MAX),
            step.child,
            record,
            millis(step.started_at),
        ])?;
        let step_num = self.connection.last_insert_rowid();
        for line in &step.report.logs {
            let fields = (!line.fields.is_empty())
                .then(|| serde_json::to_string(&line.fields).unwrap_or_default());
            self.line.execute(params![
                execution_id,
                step_num,
                step.node,
                line.ts,
                line.level.to_string(),
                line.message,
                fields,
            ])?;
        }
        Ok(step_num)
    }

    /// Store `execution` whole, its children too; its numeric id.
    fn write_execution(&mut self, execution: &Execution) -> Result<i64, Error> {
        let record = serde_json::to_string(&StoredRecord::of(execution)).map_err(|source| {
            Error::Encode {
                what: format!("execution `{}`", execution.header.id),
                source,
            }
        })?;
        let (num, early) = self.upsert_row(&RowValues {
            header: &execution.header,
            status: execution.status,
            message: execution.message.as_deref(),
            started_at: Some(execution.started_at),
            completed_at: Some(execution.completed_at),
            duration_ms: Some(i64::try_from(execution.duration_us / 1000).unwrap_or(i64::MAX)),
        })?;
        // The step runs written while it ran are kept, numbers and all; the others are
        // written now, one after the other.
        let written: std::collections::HashSet<(String, Option<i64>, i64)> = if early > 0 {
            self.early_keys
                .query_map([&execution.header.id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?
        } else {
            std::collections::HashSet::new()
        };
        // Its step runs, one after the other: the record keeps the first and the last.
        let mut steps: Option<(i64, i64)> = None;
        for step in &execution.steps {
            if !written.is_empty()
                && written.contains(&(
                    step.node.clone(),
                    step.iteration.map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
                    i64::from(step.attempt),
                ))
            {
                continue;
            }
            let step_num = self.insert_step(&execution.header.id, step)?;
            steps = Some((steps.map_or(step_num, |(first, _)| first), step_num));
        }
        self.record.execute(params![
            num,
            record,
            steps.map(|(first, _)| first),
            steps.map(|(_, last)| last)
        ])?;
        // Its record now holds its nodes' final states.
        if self.nodes_stored {
            self.clear_nodes.execute([&execution.header.id])?;
        }
        for child in &execution.children {
            self.write_execution(child)?;
        }
        Ok(num)
    }
}

impl Store for SqliteStore {
    fn save_playbook(&self, playbook: &PlaybookFields<'_>) -> Result<PlaybookRecord, Error> {
        let now = millis(Utc::now());
        let list = |items: &[String]| Value::from(items.to_vec()).to_string();
        {
            let writer = lock(&self.writer);
            let written = writer.execute(
                "INSERT INTO playbooks (id, xid, created_at, updated_at, source, name, \
                     description, steps, category, enabled, auto_execute, trigger_conditions, \
                     tags, mitre_tactics, mitre_techniques, required_connector_ids, owner_id, \
                     created_by, updated_by, tenant_id, app_id) \
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                     ?16, ?18, ?18, ?19, ?20) \
                 ON CONFLICT (xid) DO UPDATE SET updated_at = excluded.updated_at, \
                     source = excluded.source, name = excluded.name, \
                     description = excluded.description, steps = excluded.steps, \
                     category = excluded.category, enabled = excluded.enabled, \
                     auto_execute = excluded.auto_execute, \
                     trigger_conditions = excluded.trigger_conditions, tags = excluded.tags, \
                     mitre_tactics = excluded.mitre_tactics, \
                     mitre_techniques = excluded.mitre_techniques, \
                     required_connector_ids = excluded.required_connector_ids, \
                     owner_id = excluded.owner_id, updated_by = excluded.updated_by, \
                     deleted_at = NULL, deleted_by = NULL, \
                     schema_version = schema_version + ?17 \
                 WHERE playbooks.tenant_id = excluded.tenant_id \
                     AND (excluded.app_id IS NULL OR playbooks.app_id IS excluded.app_id)",
                params![
                    format!("pb_{}", ulid::Ulid::new()),
                    playbook.xid,
                    now,
                    playbook.source,
                    playbook.name,
                    playbook.description,
                    playbook.steps.to_string(),
                    playbook.category,
                    playbook.enabled,
                    playbook.auto_execute,
                    Value::from(playbook.trigger_conditions.clone()).to_string(),
                    list(playbook.tags),
                    list(playbook.mitre_tactics),
                    list(playbook.mitre_techniques),
                    list(playbook.required_connector_ids),
                    playbook.owner_id,
                    i64::from(playbook.incompatible),
                    playbook.by,
                    playbook.tenant,
                    playbook.app_id,
                ],
            )?;
            if written == 0 {
                return Err(Error::Taken(playbook.xid.to_owned()));
            }
        }
        self.playbook(playbook.xid, Some(playbook.tenant))?
            .ok_or_else(|| {
                Error::Missing(format!("playbook `{}` vanished after saving", playbook.xid))
            })
    }

    fn run_stats(&self, xid: &str, tenant: &str) -> Result<RunStats, Error> {
        self.read(|c| {
            let mut by_status = BTreeMap::new();
            let mut ended = 0_i64;
            // Durations: of the ended executions that have one (one a restart
            // interrupted has none).
            let (mut timed, mut total_ms) = (0_i64, 0_i64);
            let mut statement = c.prepare_cached(
                "SELECT status, count(*), count(duration_ms), coalesce(sum(duration_ms), 0) \
                 FROM executions \
                 WHERE playbook_xid = ?1 AND tenant_id = ?2 AND completed_at IS NOT NULL \
                 GROUP BY status",
            )?;
            for row in statement.query_map([xid, tenant], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })? {
                let (status, count, with_duration, sum_ms) = row?;
                ended += count;
                timed += with_duration;
                total_ms += sum_ms;
                by_status.insert(status, count);
            }
            let running: i64 = c.query_row(
                "SELECT count(*) FROM executions \
                 WHERE playbook_xid = ?1 AND tenant_id = ?2 AND completed_at IS NULL",
                [xid, tenant],
                |r| r.get(0),
            )?;
            // The duration at or below which 95% of them ended (nearest rank).
            let p95: Option<i64> = if timed == 0 {
                None
            } else {
                let rank = ((timed as f64) * 0.95).ceil() as i64 - 1;
                c.query_row(
                    "SELECT duration_ms FROM executions \
                     WHERE playbook_xid = ?1 AND tenant_id = ?3 AND completed_at IS NOT NULL \
                         AND duration_ms IS NOT NULL \
                     ORDER BY duration_ms LIMIT 1 OFFSET ?2",
                    params![xid, rank.max(0), tenant],
                    |r| r.get(0),
                )
                .optional()?
            };
            Ok(RunStats {
                total: ended,
                running,
                by_status,
                mean_duration_ms: (timed > 0)
                    .then(|| (total_ms as f64 / timed as f64).round() as i64),
                p95_duration_ms: p95,
            })
        })
    }

    fn delete_playbook(
        &self,
        key: &str,
        tenant: Option<&str>,
        by: Option<&str>,
    ) -> Result<Option<PlaybookRecord>, Error> {
        let Some(playbook) = self.playbook(key, tenant)?.filter(|p| !p.is_deleted) else {
            return Ok(None);
        };
        let changed = lock(&self.writer).execute(
            "UPDATE playbooks SET deleted_at = ?1, updated_at = ?1, deleted_by = ?3 \
             WHERE num = ?2 AND deleted_at IS NULL",
            params![millis(Utc::now()), playbook.num, by],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        self.playbook(&playbook.id, None)
    }

    fn playbooks(&self) -> Result<Vec<PlaybookRecord>, Error> {
        self.read(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {PLAYBOOK_COLUMNS} FROM playbooks WHERE deleted_at IS NULL ORDER BY xid"
            ))?;
            statement.query_map([], |r| playbook_row(r))?.collect()
        })
    }

    fn playbook(&self, key: &str, tenant: Option<&str>) -> Result<Option<PlaybookRecord>, Error> {
        self.read(|c| {
            c.query_row(
                // An XID may be all digits: the XID, then the string id, win over a
                // number (among the tenant's: another's XID cannot hide one of its).
                &format!(
                    "SELECT {PLAYBOOK_COLUMNS} FROM playbooks \
                     WHERE (id = ?1 OR xid = ?1 OR num = ?2) \
                         AND (?3 IS NULL OR tenant_id = ?3) \
                     ORDER BY xid = ?1 DESC, id = ?1 DESC LIMIT 1"
                ),
                params![key, number(key), tenant],
                |r| playbook_row(r),
            )
            .optional()
        })
    }

    fn execution(&self, key: &str) -> Result<Option<ExecutionRow>, Error> {
        self.read(|c| {
            c.query_row(
                &format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions e WHERE e.id = ?1 OR e.num = ?2"
                ),
                params![key, number(key)],
                |r| execution_row(r),
            )
            .optional()
        })
    }

    fn execution_record(&self, key: &str) -> Result<Option<ExecutionRecord>, Error> {
        // The row and the record in one statement, so from one snapshot: read apart, an
        // execution ending between the two reads was answered as its ended row without
        // its record (no trigger, no nodes).
        let found: Option<(ExecutionRow, Option<String>)> = self.read(|c| {
            c.query_row(
                &format!(
                    "SELECT {EXECUTION_COLUMNS}, r.record FROM executions e \
                     LEFT JOIN execution_records r ON r.num = e.num \
                     WHERE e.id = ?1 OR e.num = ?2"
                ),
                params![key, number(key)],
                // The record is the column after the row's.
                |r| {
                    Ok((
                        execution_row(r)?,
                        r.get(EXECUTION_COLUMNS.matches(',').count() + 1)?,
                    ))
                },
            )
            .optional()
        })?;
        Ok(match found {
            None => None,
            Some((row, Some(text))) => {
                let mut record: Value =
                    serde_json::from_str(&text).map_err(|source| Error::Corrupt {
                        what: format!("execution `{key}`"),
                        source,
                    })?;
                // Its step runs were stored with the record, so they are there too.
                record["steps"] = Value::Array(self.step_records(&row.header.id)?);
                Some(ExecutionRecord::Ended(record))
            }
            // Not finished: its record is the row.
            Some((row, None)) => {
                let steps = self.step_records(&row.header.id)?;
                Some(ExecutionRecord::Unfinished {
                    row: Box::new(row),
                    steps,
                })
            }
        })
    }

    fn executions(
        &self,
        filter: &ExecutionFilter,
        window: Window,
        count: bool,
    ) -> Result<Page, Error> {
        let Sql {
            text: condition,
            params,
        } = render::executions(Dialect::Sqlite, filter);
        let order = order(window.sort);
        self.read(|c| {
            let total = if count {
                Some(c.query_row(
                    &format!("SELECT count(*) FROM executions e WHERE {condition}"),
                    rusqlite::params_from_iter(&params),
                    |r| r.get(0),
                )?)
            } else {
                None
            };
            // One row past the page says whether there is a next page.
            let mut params = params;
            params.push(SqlValue::Integer(window.limit.saturating_add(1)));
            params.push(SqlValue::Integer(window.offset));
            let mut statement = c.prepare(&format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions e WHERE {condition} \
                 ORDER BY {} LIMIT ? OFFSET ?",
                render::execution_order(Dialect::Sqlite, filter, order)
            ))?;
            let mut rows = statement
                .query_map(rusqlite::params_from_iter(&params), |r| execution_row(r))?
                .collect::<Result<Vec<_>, _>>()?;
            let more = rows.len() as i64 > window.limit;
            rows.truncate(usize::try_from(window.limit).unwrap_or(usize::MAX));
            Ok(Page { rows, total, more })
        })
    }

    fn write(&self, batch: &[Write]) -> Result<Vec<i64>, Error> {
        let writer = lock(&self.writer);
        // The log has grown long: copy what the checkpoint thread could not (little, it
        // just ran), with nothing appending meanwhile, so that this commit starts it over.
        // This batch waits for the copy's fsyncs: once per 32 MiB of log under sustained
        // load. A reader still on old frames, or the checkpoint thread copying at the
        // same moment, can keep it from finishing; then the next round asks again.
        if self
            .restart
            .swap(false, std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "a checkpoint of the store's write-ahead log failed");
        }
        // A write cut short by a panic may have left its transaction open.
        if !writer.is_autocommit() {
            writer.execute_batch("ROLLBACK")?;
        }
        // Immediate: the write lock is taken at the start, waiting (up to the busy
        // timeout) for a checkpoint that holds it. A transaction that read first could
        // not wait for it: SQLite answers "database is locked" at once to one that must
        // upgrade a read to a write. (Kept prepared, as every statement of a batch:
        // parsing `BEGIN`, `COMMIT` and the `EXISTS` of `Batch::prepare` again for each
        // batch was 5% of the writer's time.)
        writer.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let written = Self::write_batch(&writer, batch).and_then(|nums| {
            writer.prepare_cached("COMMIT")?.execute([])?;
            Ok(nums)
        });
        match written {
            Ok(nums) => {
                // Full means a checkpoint is already due.
                let _ = self.checkpoints.try_send(());
                Ok(nums)
            }
            Err(e) => {
                // The whole batch goes; the error that stopped it is the one to tell (SQLite
                // may have rolled back already, and a second rollback would only say so).
                if !writer.is_autocommit()
                    && let Err(rollback) = writer.execute_batch("ROLLBACK")
                {
                    tracing::warn!(error = %rollback, "rolling back a failed batch failed");
                }
                Err(e)
            }
        }
    }

    fn node_states(&self, execution_id: &str) -> Result<Vec<NodeState>, Error> {
        self.read(|c| {
            c.prepare(NODE_STATES_OF)?
                .query_map([execution_id], |r| node_state(r))?
                .collect()
        })
    }

    fn step_runs(
        &self,
        filter: &StepFilter,
        window: Window,
    ) -> Result<(Vec<StepRunRow>, i64), Error> {
        let (from, columns) = STEP_RUNS;
        self.page(
            render::steps(Dialect::Sqlite, filter),
            window,
            from,
            "s.num",
            columns,
            |r| step_run_row(r),
        )
    }

    fn log_lines(&self, filter: &LogFilter, window: Window) -> Result<(Vec<LogRow>, i64), Error> {
        let (from, columns) = LOG_LINES;
        self.page(
            render::logs(Dialect::Sqlite, filter),
            window,
            from,
            "l.num",
            columns,
            |r| log_row(r),
        )
    }

    fn save_action_run(
        &self,
        num: Option<i64>,
        tenant: &str,
        record: &Value,
    ) -> Result<i64, Error> {
        let writer = lock(&self.writer);
        match num {
            Some(num) => {
                writer.execute(
                    "UPDATE action_runs SET record = ?1 WHERE num = ?2",
                    params![record.to_string(), num],
                )?;
                Ok(num)
            }
            None => {
                writer.execute(
                    "INSERT INTO action_runs (record, tenant_id) VALUES (?1, ?2)",
                    params![record.to_string(), tenant],
                )?;
                Ok(writer.last_insert_rowid())
            }
        }
    }

    fn action_run(&self, num: i64, tenant: Option<&str>) -> Result<Option<Value>, Error> {
        self.read(|c| {
            c.query_row(
                "SELECT record FROM action_runs WHERE num = ?1 \
                 AND (?2 IS NULL OR tenant_id = ?2)",
                params![num, tenant],
                |r| Ok(json_column(&r.get::<_, String>(0)?)),
            )
            .optional()
        })
    }

    fn save_app_run(
        &self,
        num: Option<i64>,
        action_run: i64,
        record: &Value,
    ) -> Result<i64, Error> {
        let writer = lock(&self.writer);
        match num {
            Some(num) => {
                writer.execute(
                    "UPDATE app_runs SET record = ?1 WHERE num = ?2",
                    params![record.to_string(), num],
                )?;
                Ok(num)
            }
            None => {
                writer.execute(
                    "INSERT INTO app_runs (action_run, record) VALUES (?1, ?2)",
                    params![action_run, record.to_string()],
                )?;
                Ok(writer.last_insert_rowid())
            }
        }
    }

    fn app_runs(
        &self,
        action_run: Option<i64>,
        query: &SoarQuery,
    ) -> Result<(Vec<Value>, i64), Error> {
        self.soar_page(render::SoarRecords::AppRuns(action_run), query)
    }

    fn action_runs(&self, query: &SoarQuery) -> Result<(Vec<Value>, i64), Error> {
        self.soar_page(render::SoarRecords::ActionRuns, query)
    }

    fn app_run(&self, num: i64, tenant: Option<&str>) -> Result<Option<Value>, Error> {
        self.read(|c| {
            c.query_row(
                "SELECT p.record FROM app_runs p JOIN action_runs a ON a.num = p.action_run \
                 WHERE p.num = ?1 AND (?2 IS NULL OR a.tenant_id = ?2)",
                params![num, tenant],
                |r| Ok(json_column(&r.get::<_, String>(0)?)),
            )
            .optional()
        })
    }

    fn audit_logs(
        &self,
        filter: &AuditFilter,
        window: Window,
        order: AuditOrder,
    ) -> Result<(Vec<AuditRow>, i64), Error> {
        self.page(
            render::audit(Dialect::Sqlite, filter),
            window,
            &AUDIT_ROWS,
            audit_key(order),
            AUDIT_COLUMNS,
            |r| audit_row(r),
        )
    }

    fn save_asset(&self, tenant: &str, name: &str, app: &str, spec: &Value) -> Result<bool, Error> {
        let now = millis(Utc::now());
        let written = lock(&self.writer).execute(
            "INSERT INTO assets (name, app, spec, created_at, updated_at, tenant_id) \
             VALUES (?1, ?2, ?3, ?4, ?4, ?5) \
             ON CONFLICT (name) DO UPDATE SET app = excluded.app, spec = excluded.spec, \
                 updated_at = excluded.updated_at \
             WHERE assets.tenant_id = excluded.tenant_id",
            params![name, app, spec.to_string(), now, tenant],
        )?;
        Ok(written > 0)
    }

    fn delete_asset(&self, tenant: &str, name: &str) -> Result<bool, Error> {
        Ok(lock(&self.writer).execute(
            "DELETE FROM assets WHERE name = ?1 AND tenant_id = ?2",
            [name, tenant],
        )? > 0)
    }

    fn assets(&self) -> Result<Vec<(String, String, Value)>, Error> {
        let rows: Vec<(String, String, String)> = self.read(|c| {
            let mut statement =
                c.prepare("SELECT tenant_id, name, spec FROM assets ORDER BY name")?;
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(tenant, name, spec)| {
                let spec = serde_json::from_str(&spec).map_err(|source| Error::Corrupt {
                    what: format!("asset `{name}`: the stored definition is not JSON"),
                    source,
                })?;
                Ok((tenant, name, spec))
            })
            .collect()
    }

    fn check_writable(&self) -> Result<(), Error> {
        // The writer busy is the store being written: nothing to wait for.
        let Ok(writer) = self.writer.try_lock() else {
            return Ok(());
        };
        // The write lock, taken and given back: a disk that refuses writes, or a lock
        // held past the busy timeout, answers an error.
        writer.execute_batch("BEGIN IMMEDIATE; ROLLBACK")?;
        Ok(())
    }

    fn save_key(&self, key: &ApiKey) -> Result<(), Error> {
        lock(&self.writer).execute(
            "INSERT INTO api_keys (id, name, tenant, role, secret_sha256, created_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                key.id,
                key.name,
                key.tenant,
                key.role,
                key.secret_sha256,
                millis(key.created_at),
                key.revoked_at.map(millis),
            ],
        )?;
        Ok(())
    }

    fn key(&self, id: &str) -> Result<Option<ApiKey>, Error> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                [id],
                |r| key_row(r),
            )
            .optional()
        })
    }

    fn keys(&self) -> Result<Vec<ApiKey>, Error> {
        self.read(|c| {
            c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            ))?
            .query_map([], |r| key_row(r))?
            .collect()
        })
    }

    fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, Error> {
        let changed = lock(&self.writer).execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, millis(at)],
        )?;
        Ok(changed == 1)
    }

    fn interrupt_unfinished(&self) -> Result<Interrupted, Error> {
        let now = Utc::now();
        // Splunk's records keep their times as text, in the shape the SOAR view writes.
        let text = now.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut writer = lock(&self.writer);
        let transaction = writer.transaction()?;
        let executions = transaction.execute(
            "UPDATE executions SET status = 'Failed', message = 'interrupted by restart', \
                 completed_at = ?1 \
             WHERE completed_at IS NULL AND status IN ('Queued', 'Running')",
            [millis(now)],
        )?;
        let action_runs = transaction.execute(
            "UPDATE action_runs SET record = json_set(record, '$.status', 'failed', \
                 '$.message', 'interrupted by restart', '$.close_time', ?1, '$.update_time', ?1) \
             WHERE json_extract(record, '$.status') IN ('pending', 'running')",
            [&text],
        )?;
        transaction.execute(
            "UPDATE app_runs SET record = json_set(record, '$.status', 'failed', \
                 '$.message', 'interrupted by restart', '$.end_time', ?1, \
                 '$.exception_occured', json('true')) \
             WHERE json_extract(record, '$.status') = 'running'",
            [&text],
        )?;
        transaction.commit()?;
        Ok(Interrupted {
            executions,
            action_runs,
        })
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The store writes a time exactly as chrono would, whatever its precision.
        #[test]
        fn a_time_is_written_as_chrono_writes_it(
            // From before year 0 to past year 9999, which chrono writes with a sign.
            seconds in -70_000_000_000_i64..320_000_000_000,
            nanos in 0_u32..1_000_000_000,
            precision in 0_u32..4,
        ) {
            // Times on whole seconds, milliseconds and microseconds, as well as any.
            let nanos = match precision {
                0 => 0,
                1 => nanos / 1_000_000 * 1_000_000,
                2 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            let time = chrono::DateTime::from_timestamp(seconds, nanos).expect("in range");
            let mut ours = serde_json::Serializer::new(Vec::new());
            crate::trace::record::rfc3339(&time, &mut ours).expect("written");
            proptest::prop_assert_eq!(
                String::from_utf8(ours.into_inner()).expect("text"),
                serde_json::to_string(&time).expect("chrono's")
            );
        }
    }

    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::store::Sort;
    use crate::store::conformance::{query, record};
    use crate::store::testing::execution;

    /// The store's tests (`store::conformance`) on a new database file.
    fn fixture() -> Option<crate::store::conformance::Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wasp.db");
        let (again, outside) = (path.clone(), path.clone());
        Some(crate::store::conformance::Fixture {
            store: Arc::new(SqliteStore::open(&path).unwrap()),
            dialect: Dialect::Sqlite,
            reopen: Box::new(move || Arc::new(SqliteStore::open(&again).unwrap())),
            sql: Box::new(move |sql| {
                let connection = Connection::open(&outside).unwrap();
                if sql.trim_start().starts_with("SELECT") {
                    connection.query_row(sql, [], |r| r.get(0)).unwrap()
                } else {
                    connection.execute_batch(sql).unwrap();
                    String::new()
                }
            }),
            _keep: Box::new(dir),
        })
    }

    crate::store::conformance::all_backend_tests!(fixture);

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("wasp.db")).unwrap();
        (dir, store)
    }

    /// `executionId =` reads the execution\'s range of numbers (and the steps written
    /// while it ran, by number), never the whole table.
    #[test]
    fn the_step_runs_of_one_execution_are_read_by_number_never_by_a_scan() {
        let (_dir, store) = store();
        let tql = crate::tql::condition(
            r#"executionId = "ex_first""#,
            crate::store::STEP_FIELDS,
            Utc::now(),
        )
        .unwrap();
        let condition = render::steps(
            Dialect::Sqlite,
            &StepFilter {
                tql,
                ..StepFilter::default()
            },
        );
        let plan: Vec<String> = lock(&store.writer)
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT s.num FROM step_runs s WHERE {}",
                condition.text
            ))
            .unwrap()
            .query_map(rusqlite::params_from_iter(&condition.params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH s USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_database_of_the_first_schema_is_upgraded_and_keeps_its_executions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let first = Connection::open(&path).unwrap();
            first.execute_batch(MIGRATIONS[0]).unwrap();
            first.pragma_update(None, "user_version", 1).unwrap();
            first
                .execute(
                    "INSERT INTO executions (id, playbook_xid, playbook_name, trigger_type, \
                         log_level, status, queued_at, completed_at) \
                     VALUES ('ex_kept', 'triage', 'Triage', 'MANUAL', 'info', 'Completed', ?1, ?1)",
                    [millis(Utc::now())],
                )
                .unwrap();
            first
                .execute(
                    "INSERT INTO execution_records (execution_id, record) \
                     VALUES ('ex_kept', '{\"id\": \"ex_kept\", \"trigger\": {\"ip\": \"8.8.8.8\"}}')",
                    [],
                )
                .unwrap();
            first
                .execute(
                    "INSERT INTO playbooks (id, xid, created_at, updated_at, source, name, steps, \
                         last_run_id) \
                     VALUES ('pb_1', 'triage', 0, 0, 'api', 'Triage', '{}', 'ex_gone')",
                    [],
                )
                .unwrap();
            // Step runs of two executions, found through an index then, by range now.
            first
                .execute(
                    "INSERT INTO executions (id, playbook_xid, playbook_name, trigger_type, \
                         log_level, status, queued_at, completed_at) \
                     VALUES ('ex_two', 'other', 'Other', 'MANUAL', 'info', 'Completed', 0, 0)",
                    [],
                )
                .unwrap();
            first
                .execute(
                    "INSERT INTO execution_records (execution_id, record) \
                     VALUES ('ex_two', '{\"id\": \"ex_two\"}')",
                    [],
                )
                .unwrap();
            for (execution, node) in [("ex_kept", "a"), ("ex_kept", "b"), ("ex_two", "c")] {
                first
                    .execute(
                        "INSERT INTO step_runs (execution_id, node, app, action, attempt, \
                             status, duration_us, record) \
                         VALUES (?1, ?2, 'transform', 'join', 1, 'Succeeded', 5, ?3)",
                        params![execution, node, json!({"node": node}).to_string()],
                    )
                    .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        let page = query(&store, r#"completedTime > "NOW() - 1 HOUR""#);
        assert_eq!(page.rows[0].header.id, "ex_kept");
        // Records moved to their number's key, and the audit log view reads them there.
        let kept = record(&store, "ex_kept").unwrap();
        assert_eq!(kept["trigger"]["ip"], "8.8.8.8");
        let nodes = |record: &Value| -> Vec<String> {
            record["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["node"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(nodes(&kept), ["a", "b"]);
        let two = record(&store, "ex_two").unwrap();
        assert_eq!(nodes(&two), ["c"]);
        let filter = AuditFilter {
            instance_id: Some("ex_kept".to_owned()),
            ..AuditFilter::default()
        };
        let (rows, _) = store
            .audit_logs(&filter, Window::all(Sort::NewestFirst), AuditOrder::Start)
            .unwrap();
        assert_eq!(rows[0].input, r#"{"ip":"8.8.8.8"}"#);
        // A playbook's last run is its newest execution.
        let playbook = store.playbook("triage", None).unwrap().unwrap();
        assert_eq!(playbook.last_run_id.as_deref(), Some("ex_kept"));
        let version: i64 = lock(&store.writer)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn the_write_ahead_log_starts_over_under_steady_writes() {
        // The log's header counts its restarts (a big-endian u32 at byte 12).
        fn restarts(path: &Path) -> u32 {
            let header = std::fs::read(path.with_extension("db-wal")).unwrap();
            u32::from_be_bytes(header[12..16].try_into().unwrap())
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steady.db");
        // A tiny limit, so that every checkpoint round (every 200 ms) finds the log over it.
        let store = SqliteStore::open_with(&path, 1).unwrap();
        let now = Utc::now();
        // Batches back to back, as under load: the writer never pauses for a passive
        // checkpoint to catch up. (How long it writes only sets how many rounds pass.)
        let began = std::time::Instant::now();
        let mut written = 0;
        while began.elapsed() < std::time::Duration::from_secs(3) {
            let batch: Vec<Write> = (0..8)
                .map(|i| {
                    let id = format!("ex_steady_{written}_{i}");
                    Write::Finish(Box::new(execution(&id, ExecutionStatus::Completed, now)))
                })
                .collect();
            store.write(&batch).unwrap();
            written += 8;
        }
        let restarted = restarts(&path);
        assert!(
            restarted >= 5,
            "the log started over {restarted} times in 3 s of steady writes"
        );
        // Nothing lost on the way.
        assert_eq!(query(&store, "id > 0").total, Some(written));
    }

    #[test]
    fn a_database_from_a_newer_wasp_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wasp.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let error = SqliteStore::open(&path).unwrap_err().to_string();
        assert!(error.contains("its schema is version 99"), "{error}");
    }
}
