//! One batch of writes ([`Store::write`](super::super::Store::write)) in a few
//! statements, whatever its size: every executions row in one `INSERT … SELECT FROM
//! unnest(…)`, every step run in one, every log line, record and node state in one
//! each. Each statement is a round trip to the server, and a batch of one statement per
//! row spent most of its time waiting for them (BENCHMARKS.md, "PostgreSQL").
//!
//! What a batch means is SQLite's (see `store/sqlite`): a start records an execution
//! queued or running, a finish records it whole (its children too), and neither changes
//! an execution that has ended; a node event keeps a node's state while its execution
//! runs; a step run written while its execution runs is kept, and written again (with
//! the record) stays one row.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::Utc;

use super::{Error, column, int};
use crate::store::Write;
use crate::store::stored::{StoredRecord, StoredStep, millis, word};
use crate::trace::{Event, Execution, ExecutionHeader, ExecutionStatus, StepRun};

/// An executions row as the batch leaves it.
struct Row<'a> {
    header: &'a ExecutionHeader,
    log_level: crate::trace::LogLevel,
    status: ExecutionStatus,
    message: Option<&'a str>,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    duration_ms: Option<i64>,
    /// Whether a finish wrote it (a start never overrides one).
    ended: bool,
}

/// A step run to insert: of an execution that ended in this batch, or (`early`) of one
/// still running, written only while its row is there and has not ended.
struct Step<'a> {
    execution_id: &'a str,
    run: &'a StepRun,
    early: bool,
}

/// A node's state as the batch's events leave it.
#[derive(Default)]
struct Node {
    status: String,
    started_at: Option<i64>,
    ended: Option<Ended>,
}

struct Ended {
    at: i64,
    duration_us: i64,
    pathway: Option<String>,
    error: Option<String>,
    iterations: Option<i64>,
    succeeded: Option<i64>,
}

/// What `batch` writes, gathered by kind.
#[derive(Default)]
struct Gathered<'a> {
    rows: Vec<Row<'a>>,
    row_of: HashMap<&'a str, usize>,
    steps: Vec<Step<'a>>,
    /// The ended executions (children included), for their records.
    ended: Vec<&'a Execution>,
    nodes: Vec<((&'a str, &'a str), Node)>,
    node_of: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> Gathered<'a> {
    fn row(&mut self, row: Row<'a>) {
        match self.row_of.get(row.header.id.as_str()) {
            // Nothing changes an execution that has ended (the first finish is its row).
            Some(&i) if self.rows[i].ended => {}
            // A later write changes what SQLite's update of the row changes; the rest
            // is the first write's.
            Some(&i) => {
                let first = &mut self.rows[i];
                first.log_level = row.log_level;
                first.status = row.status;
                first.message = row.message;
                first.started_at = row.started_at;
                first.completed_at = row.completed_at;
                first.duration_ms = row.duration_ms;
                first.ended = row.ended;
            }
            None => {
                self.row_of.insert(&row.header.id, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    fn finish(&mut self, execution: &'a Execution) {
        let mut pending = vec![execution];
        while let Some(execution) = pending.pop() {
            self.row(Row {
                header: &execution.header,
                log_level: execution.header.log_level,
                status: execution.status,
                message: execution.message.as_deref(),
                started_at: Some(millis(execution.started_at)),
                completed_at: Some(millis(execution.completed_at)),
                duration_ms: Some(int(execution.duration_us / 1000)),
                ended: true,
            });
            self.steps.extend(execution.steps.iter().map(|run| Step {
                execution_id: &execution.header.id,
                run,
                early: false,
            }));
            self.ended.push(execution);
            pending.extend(execution.children.iter().rev());
        }
    }

    fn node(&mut self, execution_id: &'a str, node: &'a str) -> &mut Node {
        let key = (execution_id, node);
        let i = *self.node_of.entry(key).or_insert_with(|| {
            self.nodes.push((key, Node::default()));
            self.nodes.len() - 1
        });
        &mut self.nodes[i].1
    }

    fn event(&mut self, event: &'a Event) {
        match event {
            Event::NodeStarted {
                execution_id,
                node,
                at,
                ..
            } => {
                let state = self.node(execution_id, node);
                state.status = "Running".to_owned();
                state.started_at = Some(millis(*at));
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
                let state = self.node(execution_id, node);
                state.status = word(status);
                state.ended = Some(Ended {
                    at: millis(*at),
                    duration_us: int(*duration_us),
                    pathway: pathway.as_deref().map(|p| column(p).into_owned()),
                    error: error
                        .as_ref()
                        .map(|e| serde_json::to_string(e).unwrap_or_default()),
                    iterations: iterations.map(int),
                    succeeded: succeeded.map(int),
                });
            }
            Event::StepEnded {
                execution_id,
                run: Some(run),
                ..
            } => self.steps.push(Step {
                execution_id,
                run: run.as_ref(),
                early: true,
            }),
            Event::StepEnded { run: None, .. } | Event::ExecutionEnded { .. } => {}
        }
    }
}

/// Write `batch` in `transaction`; the numbers of its starts and finishes, in order.
pub(super) async fn write(
    transaction: &deadpool_postgres::Transaction<'_>,
    batch: &[Write],
) -> Result<Vec<i64>, Error> {
    let mut gathered = Gathered::default();
    // A node state is kept only while its execution runs: the record of one that ends
    // in this batch supersedes its node events.
    let ended_here = Write::ended_in(batch);
    let now = millis(Utc::now());
    for write in batch {
        match write {
            Write::Start(execution) => gathered.row(Row {
                header: &execution.header,
                log_level: execution.header.log_level,
                status: execution.status,
                message: None,
                started_at: (execution.status == ExecutionStatus::Running).then_some(now),
                completed_at: None,
                duration_ms: None,
                ended: false,
            }),
            Write::Finish(execution) => gathered.finish(execution),
            Write::Event(event) if !ended_here.contains(event.execution_id()) => {
                gathered.event(event);
            }
            Write::Event(_) => {}
        }
    }
    let nums = rows(transaction, &gathered.rows).await?;
    steps(transaction, &gathered.steps).await?;
    records(transaction, &gathered.ended, &nums).await?;
    nodes(transaction, &gathered.nodes).await?;
    batch
        .iter()
        .filter_map(|write| match write {
            Write::Start(execution) => Some(&execution.header.id),
            Write::Finish(execution) => Some(&execution.header.id),
            Write::Event(_) => None,
        })
        .map(|id| {
            nums.get(id.as_str())
                .copied()
                .ok_or_else(|| Error::Missing(format!("execution `{id}` got no number")))
        })
        .collect()
}

/// Insert each row, or update the one with its id unless it has ended; every row's
/// number by id.
async fn rows<'a>(
    t: &deadpool_postgres::Transaction<'_>,
    rows: &[Row<'a>],
) -> Result<HashMap<&'a str, i64>, Error> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let text = |f: &dyn Fn(&Row<'a>) -> &'a str| rows.iter().map(f).collect::<Vec<_>>();
    let ids = text(&|r| r.header.id.as_str());
    let parents: Vec<Option<&str>> = rows.iter().map(|r| r.header.parent_id.as_deref()).collect();
    let xids = text(&|r| r.header.playbook_id.as_str());
    let names: Vec<Cow<'_, str>> = rows
        .iter()
        .map(|r| column(&r.header.playbook_name))
        .collect();
    let triggers: Vec<String> = rows.iter().map(|r| word(&r.header.trigger_type)).collect();
    let levels: Vec<String> = rows.iter().map(|r| r.log_level.to_string()).collect();
    let statuses: Vec<String> = rows.iter().map(|r| word(&r.status)).collect();
    let messages: Vec<Option<Cow<'_, str>>> = rows.iter().map(|r| r.message.map(column)).collect();
    let queued: Vec<i64> = rows.iter().map(|r| millis(r.header.queued_at)).collect();
    let started: Vec<Option<i64>> = rows.iter().map(|r| r.started_at).collect();
    let completed: Vec<Option<i64>> = rows.iter().map(|r| r.completed_at).collect();
    let durations: Vec<Option<i64>> = rows.iter().map(|r| r.duration_ms).collect();
    let replays: Vec<Option<&str>> = rows.iter().map(|r| r.header.replay_of.as_deref()).collect();
    let tenants = text(&|r| r.header.tenant_id.as_str());
    let apps: Vec<Option<&str>> = rows.iter().map(|r| r.header.app_id.as_deref()).collect();
    let upsert = t
        .prepare_cached(
            "INSERT INTO executions (id, parent_id, playbook_num, playbook_xid, playbook_name, \
                 trigger_type, log_level, status, message, queued_at, started_at, \
                 completed_at, duration_ms, replay_of, tenant_id, app_id) \
             SELECT u.id, u.parent_id, (SELECT p.num FROM playbooks p WHERE p.xid = u.xid), \
                 u.xid, u.name, u.trigger_type, u.log_level, u.status, u.message, u.queued_at, \
                 u.started_at, u.completed_at, u.duration_ms, u.replay_of, u.tenant_id, u.app_id \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], \
                 $12::int8[], $13::text[], $14::text[], $15::text[]) WITH ORDINALITY \
                 AS u(id, parent_id, xid, name, trigger_type, log_level, status, message, \
                     queued_at, started_at, completed_at, duration_ms, replay_of, tenant_id, \
                     app_id, n) \
             ORDER BY u.n \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                 message = excluded.message, started_at = excluded.started_at, \
                 completed_at = excluded.completed_at, duration_ms = excluded.duration_ms, \
                 log_level = excluded.log_level \
             WHERE executions.completed_at IS NULL \
             RETURNING id, num",
        )
        .await?;
    let written = t
        .query(
            &upsert,
            &[
                &ids, &parents, &xids, &names, &triggers, &levels, &statuses, &messages, &queued,
                &started, &completed, &durations, &replays, &tenants, &apps,
            ],
        )
        .await?;
    let mut nums: HashMap<&'a str, i64> = HashMap::with_capacity(rows.len());
    let by_id: HashMap<&str, &'a str> = ids.iter().map(|id| (*id, *id)).collect();
    for row in &written {
        let id: &str = row.try_get(0)?;
        if let Some(id) = by_id.get(id) {
            nums.insert(id, row.try_get(1)?);
        }
    }
    // The rows that had ended already were left alone, and returned nothing.
    let unreturned: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !nums.contains_key(id))
        .collect();
    if !unreturned.is_empty() {
        let existing = t
            .prepare_cached("SELECT id, num FROM executions WHERE id = ANY($1::text[])")
            .await?;
        for row in t.query(&existing, &[&unreturned]).await? {
            let id: &str = row.try_get(0)?;
            if let Some(id) = by_id.get(id) {
                nums.insert(id, row.try_get(1)?);
            }
        }
    }
    Ok(nums)
}

/// The most one statement carries of records (a step run may hold 16 MiB of captured
/// data, and PostgreSQL refuses a message or an array of more than 1 GB): a batch's
/// step runs and records go in as many statements as they need.
const STATEMENT_BYTES: usize = 64 << 20;

/// The ranges of `sizes` to send in one statement each: up to [`STATEMENT_BYTES`], and at
/// least one item.
pub(super) fn chunks(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < sizes.len() {
        let (mut end, mut bytes) = (start, 0);
        while end < sizes.len() && (end == start || bytes + sizes[end] <= STATEMENT_BYTES) {
            bytes += sizes[end];
            end += 1;
        }
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// Insert the step runs not written yet, and the log lines of those inserted now.
async fn steps(t: &deadpool_postgres::Transaction<'_>, steps: &[Step<'_>]) -> Result<(), Error> {
    let records = steps
        .iter()
        .map(|s| {
            serde_json::to_string(&StoredStep::of(s.run)).map_err(|source| Error::Encode {
                what: format!("a step of `{}`", s.execution_id),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sizes: Vec<usize> = records.iter().map(String::len).collect();
    for range in chunks(&sizes) {
        insert_steps(t, &steps[range.clone()], &records[range]).await?;
    }
    Ok(())
}

/// Insert `steps` (whose records are `records`) unless written already, and the log
/// lines of those inserted now.
async fn insert_steps(
    t: &deadpool_postgres::Transaction<'_>,
    steps: &[Step<'_>],
    records: &[String],
) -> Result<(), Error> {
    let executions: Vec<&str> = steps.iter().map(|s| s.execution_id).collect();
    let nodes: Vec<&str> = steps.iter().map(|s| s.run.node.as_str()).collect();
    let apps: Vec<&str> = steps.iter().map(|s| s.run.app.as_str()).collect();
    let actions: Vec<&str> = steps.iter().map(|s| s.run.action.as_str()).collect();
    let iterations: Vec<Option<i64>> = steps.iter().map(|s| s.run.iteration.map(int)).collect();
    let attempts: Vec<i64> = steps.iter().map(|s| i64::from(s.run.attempt)).collect();
    let statuses: Vec<String> = steps.iter().map(|s| word(&s.run.status())).collect();
    let kinds: Vec<Option<String>> = steps
        .iter()
        .map(|s| s.run.report.error.as_ref().map(|e| word(&e.kind)))
        .collect();
    let errors: Vec<Option<Cow<'_, str>>> = steps
        .iter()
        .map(|s| s.run.report.error.as_ref().map(|e| column(&e.message)))
        .collect();
    let durations: Vec<i64> = steps
        .iter()
        .map(|s| int(s.run.report.duration_us))
        .collect();
    let children: Vec<Option<&str>> = steps.iter().map(|s| s.run.child.as_deref()).collect();
    let started: Vec<i64> = steps.iter().map(|s| millis(s.run.started_at)).collect();
    let early: Vec<bool> = steps.iter().map(|s| s.early).collect();
    let insert = t
        .prepare_cached(
            "INSERT INTO step_runs (execution_id, node, app, action, iteration, attempt, \
                 status, error_kind, error_message, duration_us, child_id, record, started_at) \
             SELECT u.execution_id, u.node, u.app, u.action, u.iteration, u.attempt, u.status, \
                 u.error_kind, u.error_message, u.duration_us, u.child_id, u.record, \
                 u.started_at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
                 $6::int8[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::text[], \
                 $12::text[], $13::int8[], $14::bool[]) WITH ORDINALITY \
                 AS u(execution_id, node, app, action, iteration, attempt, status, error_kind, \
                     error_message, duration_us, child_id, record, started_at, early, n) \
             WHERE NOT u.early OR EXISTS (SELECT 1 FROM executions e \
                 WHERE e.id = u.execution_id AND e.completed_at IS NULL) \
             ORDER BY u.n \
             ON CONFLICT (execution_id, node, (coalesce(iteration, -1)), attempt) DO NOTHING \
             RETURNING num, execution_id, node, coalesce(iteration, -1), attempt",
        )
        .await?;
    let inserted = t
        .query(
            &insert,
            &[
                &executions,
                &nodes,
                &apps,
                &actions,
                &iterations,
                &attempts,
                &statuses,
                &kinds,
                &errors,
                &durations,
                &children,
                &records,
                &started,
                &early,
            ],
        )
        .await?;
    // The log lines of the step runs inserted now, in the order of their steps.
    let mut numbered: HashMap<(&str, &str, i64, i64), i64> = HashMap::new();
    for row in &inserted {
        let key: (&str, &str, i64, i64) = (
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        );
        numbered.insert(key, row.try_get(0)?);
    }
    let (mut of, mut nums, mut at, mut ts, mut levels, mut messages, mut fields) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for step in steps {
        let run = step.run;
        let key = (
            step.execution_id,
            run.node.as_str(),
            run.iteration.map_or(-1, int),
            i64::from(run.attempt),
        );
        // The first of steps that are one: the one inserted now (the rest did nothing).
        let Some(num) = numbered.remove(&key) else {
            continue;
        };
        for line in &run.report.logs {
            of.push(step.execution_id);
            nums.push(num);
            at.push(run.node.as_str());
            ts.push(line.ts.as_str());
            levels.push(line.level.to_string());
            messages.push(column(&line.message));
            fields.push(
                (!line.fields.is_empty())
                    .then(|| serde_json::to_string(&line.fields).unwrap_or_default()),
            );
        }
    }
    if of.is_empty() {
        return Ok(());
    }
    let lines = t
        .prepare_cached(
            "INSERT INTO log_lines (execution_id, step_num, node, ts, level, message, fields) \
             SELECT u.execution_id, u.step_num, u.node, u.ts, u.level, u.message, u.fields \
             FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[]) WITH ORDINALITY \
                 AS u(execution_id, step_num, node, ts, level, message, fields, n) \
             ORDER BY u.n",
        )
        .await?;
    t.execute(&lines, &[&of, &nums, &at, &ts, &levels, &messages, &fields])
        .await?;
    Ok(())
}

/// The records of the ended executions, and their node states cleared (the record
/// holds them now).
async fn records(
    t: &deadpool_postgres::Transaction<'_>,
    ended: &[&Execution],
    nums: &HashMap<&str, i64>,
) -> Result<(), Error> {
    if ended.is_empty() {
        return Ok(());
    }
    // One record per execution: the last written.
    let mut by_num: Vec<(i64, String)> = Vec::with_capacity(ended.len());
    let mut seen = HashMap::new();
    for execution in ended {
        let id = execution.header.id.as_str();
        let num = *nums
            .get(id)
            .ok_or_else(|| Error::Missing(format!("execution `{id}` got no number")))?;
        let record = serde_json::to_string(&StoredRecord::of(execution)).map_err(|source| {
            Error::Encode {
                what: format!("execution `{id}`"),
                source,
            }
        })?;
        match seen.get(&num) {
            Some(&i) => by_num[i] = (num, record),
            None => {
                seen.insert(num, by_num.len());
                by_num.push((num, record));
            }
        }
    }
    let (record_nums, texts): (Vec<i64>, Vec<String>) = by_num.into_iter().unzip();
    let save = t
        .prepare_cached(
            "INSERT INTO execution_records (num, record) \
             SELECT * FROM unnest($1::int8[], $2::text[]) \
             ON CONFLICT (num) DO UPDATE SET record = excluded.record",
        )
        .await?;
    let sizes: Vec<usize> = texts.iter().map(String::len).collect();
    for range in chunks(&sizes) {
        t.execute(&save, &[&&record_nums[range.clone()], &&texts[range]])
            .await?;
    }
    let ids: Vec<&str> = ended.iter().map(|e| e.header.id.as_str()).collect();
    let clear = t
        .prepare_cached("DELETE FROM node_states WHERE execution_id = ANY($1::text[])")
        .await?;
    t.execute(&clear, &[&ids]).await?;
    Ok(())
}

/// The node states as the batch's events leave them: a start sets the status and the
/// start time, an end the status and what it ended with.
async fn nodes(
    t: &deadpool_postgres::Transaction<'_>,
    nodes: &[((&str, &str), Node)],
) -> Result<(), Error> {
    if nodes.is_empty() {
        return Ok(());
    }
    let executions: Vec<&str> = nodes.iter().map(|((e, _), _)| *e).collect();
    let ids: Vec<&str> = nodes.iter().map(|((_, n), _)| *n).collect();
    let statuses: Vec<&str> = nodes.iter().map(|(_, s)| s.status.as_str()).collect();
    let started: Vec<Option<i64>> = nodes.iter().map(|(_, s)| s.started_at).collect();
    let ended = |f: &dyn Fn(&Ended) -> Option<i64>| -> Vec<Option<i64>> {
        nodes
            .iter()
            .map(|(_, s)| s.ended.as_ref().and_then(f))
            .collect()
    };
    let ended_at = ended(&|e| Some(e.at));
    let durations = ended(&|e| Some(e.duration_us));
    let iterations = ended(&|e| e.iterations);
    let succeeded = ended(&|e| e.succeeded);
    let pathways: Vec<Option<&str>> = nodes
        .iter()
        .map(|(_, s)| s.ended.as_ref().and_then(|e| e.pathway.as_deref()))
        .collect();
    let errors: Vec<Option<&str>> = nodes
        .iter()
        .map(|(_, s)| s.ended.as_ref().and_then(|e| e.error.as_deref()))
        .collect();
    let upsert = t
        .prepare_cached(
            "INSERT INTO node_states (execution_id, node, status, started_at, ended_at, \
                 duration_us, pathway, error, iterations, succeeded) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], \
                 $5::int8[], $6::int8[], $7::text[], $8::text[], $9::int8[], $10::int8[]) \
             ON CONFLICT (execution_id, node) DO UPDATE SET status = excluded.status, \
                 started_at = coalesce(excluded.started_at, node_states.started_at), \
                 ended_at = CASE WHEN excluded.ended_at IS NULL THEN node_states.ended_at \
                     ELSE excluded.ended_at END, \
                 duration_us = CASE WHEN excluded.ended_at IS NULL \
                     THEN node_states.duration_us ELSE excluded.duration_us END, \
                 pathway = CASE WHEN excluded.ended_at IS NULL THEN node_states.pathway \
                     ELSE excluded.pathway END, \
                 error = CASE WHEN excluded.ended_at IS NULL THEN node_states.error \
                     ELSE excluded.error END, \
                 iterations = CASE WHEN excluded.ended_at IS NULL \
                     THEN node_states.iterations ELSE excluded.iterations END, \
                 succeeded = CASE WHEN excluded.ended_at IS NULL \
                     THEN node_states.succeeded ELSE excluded.succeeded END",
        )
        .await?;
    t.execute(
        &upsert,
        &[
            &executions,
            &ids,
            &statuses,
            &started,
            &ended_at,
            &durations,
            &pathways,
            &errors,
            &iterations,
            &succeeded,
        ],
    )
    .await?;
    Ok(())
}
