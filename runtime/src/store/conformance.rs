//! The store's behaviour, written once and run against each backend: SQLite on a
//! temporary file, and PostgreSQL on a fresh database of the test process's throwaway
//! cluster (`tests/support/postgres.rs`; skipped, and said, without PostgreSQL unless
//! `WASP_POSTGRES=required`). Each backend's module calls [`backend_tests!`] with a
//! function that makes its [`Fixture`].

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};

use super::render::Dialect;
use super::testing::execution;
use super::{
    AuditFilter, AuditKind, AuditOrder, AuditStatus, Error, ExecutionFilter, ExecutionRecord,
    LogFilter, NewExecution, Page, PlaybookFields, RunStats, SoarCondition, SoarField, SoarLookup,
    SoarQuery, Sort, StepFilter, Store, Window, Write,
};
use crate::trace::{
    Event, Execution, ExecutionHeader, ExecutionStatus, LogLevel, NodeStatus, TriggerType,
};

/// A store to test, and what a test needs of its backend beyond the trait.
pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) dialect: Dialect,
    /// A second store on the same database.
    pub(crate) reopen: Box<dyn Fn() -> Arc<dyn Store>>,
    /// Run SQL on the database from outside the store; the first column of the first
    /// row, as text.
    pub(crate) sql: Box<dyn Fn(&str) -> String>,
    /// What keeps the database (a directory) until the test ends.
    pub(crate) _keep: Box<dyn std::any::Any>,
}

impl Fixture {
    pub(crate) fn reopen(&self) -> Arc<dyn Store> {
        (self.reopen)()
    }

    pub(crate) fn sql(&self, sql: &str) -> String {
        (self.sql)(sql)
    }
}

/// A `#[test]` for each test of this module, over the fixture `$make` gives (none:
/// the backend is not there, and the test passes, having said so).
macro_rules! backend_tests {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if let Some(fixture) = $make() {
                    $crate::store::conformance::$name(&fixture);
                }
            }
        )*
    };
}
pub(crate) use backend_tests;

/// Every test of this module, for [`backend_tests!`].
macro_rules! all_backend_tests {
    ($make:expr) => {
        $crate::store::conformance::backend_tests!($make;
            executions_are_stored_queried_by_tql_and_read_back,
            a_record_read_while_its_execution_ends_is_never_an_ended_row_without_it,
            playbook_id_is_answered_through_the_playbooks_xid,
            a_batch_numbers_its_starts_and_finishes_and_a_late_start_never_undoes_an_end,
            a_batch_that_fails_leaves_nothing_and_the_next_one_is_written,
            a_record_reads_back_whole_and_node_states_last_while_it_runs,
            an_all_digit_xid_wins_over_a_number_and_a_delete_takes_one_playbook,
            a_playbook_id_is_one_tenants_and_lookups_keep_to_the_tenant_asked_for,
            an_executions_step_runs_are_found_by_their_range_of_numbers,
            steps_are_readable_as_they_end_and_give_way_to_the_record_once_whole,
            a_step_run_is_stored_without_its_empty_fields_and_reads_back_whole,
            log_lines_read_back_typed_and_each_condition_of_a_filter_holds,
            a_second_store_on_the_same_database_continues_what_the_first_wrote,
            unfinished_executions_fail_as_interrupted_when_the_store_reopens,
            text_an_app_sends_is_stored_whatever_it_holds,
            soar_records_are_filtered_sorted_and_kept_to_their_tenant,
            audit_rows_are_an_execution_and_its_step_runs_in_secmasters_terms,
            keys_assets_and_run_statistics_read_back,
            tql_compares_words_without_case_and_patterns_without_wildcards_of_the_value,
        );
    };
}
pub(crate) use all_backend_tests;

fn fields<'a>(xid: &'a str, name: &'a str, steps: &'a Value) -> PlaybookFields<'a> {
    PlaybookFields {
        category: Some("containment"),
        ..PlaybookFields::plain(xid, name, steps, "api")
    }
}

pub(crate) fn query(store: &dyn Store, tql: &str) -> Page {
    let tql = crate::tql::condition(tql, crate::store::EXECUTION_FIELDS, Utc::now()).unwrap();
    let window = Window {
        offset: 0,
        limit: 100,
        sort: Sort::NewestFirst,
    };
    store
        .executions(
            &ExecutionFilter {
                tql,
                ..Default::default()
            },
            window,
            true,
        )
        .unwrap()
}

/// The ids of the executions TQL `tql` matches, sorted.
fn sorted_ids(store: &dyn Store, tql: &str) -> Vec<String> {
    let mut ids: Vec<String> = query(store, tql)
        .rows
        .into_iter()
        .map(|r| r.header.id)
        .collect();
    ids.sort();
    ids
}

/// The record of execution `key`, ended or not, as JSON (with its steps when ended).
pub(crate) fn record(store: &dyn Store, key: &str) -> Option<Value> {
    store
        .execution_record(key)
        .unwrap()
        .map(|record| match record {
            ExecutionRecord::Ended(record) => record,
            ExecutionRecord::Unfinished { row, .. } => serde_json::to_value(row).unwrap(),
        })
}

pub(crate) fn executions_are_stored_queried_by_tql_and_read_back(f: &Fixture) {
    let store = &*f.store;
    let playbook = store
        .save_playbook(&fields("triage", "Triage", &json!({"id": "triage"})))
        .unwrap();
    assert!(playbook.id.starts_with("pb_"));
    let old = Utc::now() - chrono::Duration::hours(3);
    store
        .finish_execution(&execution("ex_old", ExecutionStatus::Failed, old))
        .unwrap();
    store
        .finish_execution(&execution("ex_new", ExecutionStatus::Completed, Utc::now()))
        .unwrap();

    let page = query(store, r#"completedTime > "NOW() - 1 HOUR""#);
    let ids: Vec<&str> = page.rows.iter().map(|r| r.header.id.as_str()).collect();
    assert_eq!(ids, ["ex_new"]);
    assert_eq!((page.total, page.more), (Some(1), false));

    // A word the status never is matches nothing, and everything is not it.
    assert_eq!(query(store, r#"status = "NoSuchStatus""#).total, Some(0));
    assert_eq!(query(store, "status NE ''").total, Some(2));
    assert_eq!(
        query(store, r#"status IN "failed""#).rows[0].header.id,
        "ex_old"
    );

    let page = query(store, &format!("playbookId = {}", playbook.num));
    assert_eq!(page.total, Some(2));
    assert_eq!(page.rows[0].header.id, "ex_new", "newest first");
    assert_eq!(page.rows[0].playbook_num, Some(playbook.num));

    let row = store.execution("ex_old").unwrap().unwrap();
    assert_eq!(row.status, ExecutionStatus::Failed);
    assert_eq!(
        store
            .execution(&row.num.to_string())
            .unwrap()
            .unwrap()
            .header
            .id,
        "ex_old"
    );
    let record = record(store, "ex_new").unwrap();
    assert_eq!(record["nodes"][0]["output"], json!({"ok": true}));
    assert_eq!(record["trigger"]["ip"], "8.8.8.8");
    let playbook = store.playbook("triage", None).unwrap().unwrap();
    assert_eq!(playbook.last_run_id.as_deref(), Some("ex_new"));
}

pub(crate) fn a_record_read_while_its_execution_ends_is_never_an_ended_row_without_it(f: &Fixture) {
    let store = Arc::clone(&f.store);
    let now = Utc::now();
    let ids: Vec<String> = (0..300).map(|i| format!("ex_race{i:03}")).collect();
    let (current, watched) = std::sync::mpsc::channel::<String>();
    let reader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut ended_seen = 0;
            for id in watched {
                // Read until it shows its end.
                loop {
                    let Some(record) = record(&*store, &id) else {
                        continue;
                    };
                    if record["status"] == "Running" {
                        continue;
                    }
                    assert_eq!(record["trigger"]["ip"], "8.8.8.8", "{record}");
                    ended_seen += 1;
                    break;
                }
            }
            ended_seen
        })
    };
    for id in &ids {
        let execution = execution(id, ExecutionStatus::Completed, now);
        store
            .write(&[Write::Start(NewExecution::running(&execution))])
            .unwrap();
        current.send(id.clone()).unwrap();
        store.write(&[Write::Finish(Box::new(execution))]).unwrap();
    }
    drop(current);
    assert_eq!(reader.join().unwrap(), ids.len());
}

pub(crate) fn playbook_id_is_answered_through_the_playbooks_xid(f: &Fixture) {
    let store = &*f.store;
    let triage = store
        .save_playbook(&fields("triage", "Triage", &json!({"id": "triage"})))
        .unwrap();
    let other = store
        .save_playbook(&fields("other", "Other", &json!({"id": "other"})))
        .unwrap();
    let now = Utc::now();
    let of = |id: &str, playbook: &str| {
        let mut execution = execution(id, ExecutionStatus::Completed, now);
        execution.header.playbook_id = playbook.to_owned();
        execution
    };
    for (id, playbook) in [
        ("ex_triage", "triage"),
        ("ex_other", "other"),
        ("ex_unsaved", "unsaved"),
    ] {
        store.finish_execution(&of(id, playbook)).unwrap();
    }
    // A playbook saved after its executions were stored is found by them too.
    store.finish_execution(&of("ex_later", "later")).unwrap();
    let later = store
        .save_playbook(&fields("later", "Later", &json!({"id": "later"})))
        .unwrap();
    let ids = |tql: &str| sorted_ids(store, tql);
    let (t, o, l) = (triage.num, other.num, later.num);
    assert_eq!(ids(&format!("playbookId = {t}")), ["ex_triage"]);
    assert_eq!(ids(&format!("playbookId != {t}")), ["ex_later", "ex_other"]);
    assert_eq!(
        ids(&format!("playbookId IN ({t}, {o})")),
        ["ex_other", "ex_triage"]
    );
    assert_eq!(ids(&format!("playbookId NOT IN ({t}, {o})")), ["ex_later"]);
    assert_eq!(ids(&format!("playbookId >= {l}")), ["ex_later"]);
    // An execution whose playbook the store does not hold has no playbook id.
    assert_eq!(ids("playbookId ISNULL"), ["ex_unsaved"]);
    assert_eq!(
        ids("playbookId IS NOT NULL"),
        ["ex_later", "ex_other", "ex_triage"]
    );
    assert_eq!(
        ids(&format!("NOT playbookId = {t}")),
        ["ex_later", "ex_other", "ex_unsaved"]
    );
    assert_eq!(
        ids(&format!("playbookId = {o} OR playbookXid = \"triage\"")),
        ["ex_other", "ex_triage"]
    );
}

pub(crate) fn a_batch_numbers_its_starts_and_finishes_and_a_late_start_never_undoes_an_end(
    f: &Fixture,
) {
    let store = &*f.store;
    let now = Utc::now();
    let running = execution("ex_running", ExecutionStatus::Completed, now);
    let whole = execution("ex_whole", ExecutionStatus::Failed, now);
    let nums = store
        .write(&[
            Write::Start(NewExecution::running(&running)),
            Write::Finish(Box::new(whole.clone())),
        ])
        .unwrap();
    assert_eq!(nums.len(), 2, "one number a start and a finish: {nums:?}");
    assert_eq!(store.execution("ex_running").unwrap().unwrap().num, nums[0]);
    // A finish whose start was never written records the execution whole.
    let row = store.execution("ex_whole").unwrap().unwrap();
    assert_eq!((row.num, row.status), (nums[1], ExecutionStatus::Failed));
    assert!(row.started_at.is_some() && row.completed_at.is_some());

    // A finish of an execution whose start was written answers the same number.
    let again = store
        .write(&[Write::Finish(Box::new(running.clone()))])
        .unwrap();
    assert_eq!(again, [nums[0]]);
    // A start that comes after the end changes nothing.
    let late = store
        .write(&[Write::Start(NewExecution::running(&whole))])
        .unwrap();
    assert_eq!(late, [nums[1]]);
    let row = store.execution("ex_whole").unwrap().unwrap();
    assert_eq!(row.status, ExecutionStatus::Failed);
    assert!(row.completed_at.is_some());
}

pub(crate) fn a_batch_that_fails_leaves_nothing_and_the_next_one_is_written(f: &Fixture) {
    let store = &*f.store;
    // A second connection makes the second execution of the batch fail.
    match f.dialect {
        Dialect::Sqlite => f.sql(
            "CREATE TRIGGER boom BEFORE INSERT ON executions WHEN NEW.id = 'ex_boom' \
             BEGIN SELECT RAISE(ABORT, 'no room for ex_boom'); END",
        ),
        Dialect::Postgres => f.sql(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.id = 'ex_boom' THEN RAISE EXCEPTION 'no room for ex_boom'; END IF; \
                 RETURN NEW; END $$; \
             CREATE TRIGGER boom BEFORE INSERT ON executions \
                 FOR EACH ROW EXECUTE FUNCTION boom()",
        ),
    };
    let now = Utc::now();
    let first = execution("ex_first", ExecutionStatus::Completed, now);
    let boom = execution("ex_boom", ExecutionStatus::Completed, now);
    let error = store
        .write(&[
            Write::Finish(Box::new(first.clone())),
            Write::Finish(Box::new(boom)),
        ])
        .unwrap_err();
    assert!(error.to_string().contains("no room for ex_boom"), "{error}");
    // The whole batch rolled back: the first execution's row and record with it.
    assert!(store.execution("ex_first").unwrap().is_none());
    assert!(store.execution_record("ex_first").unwrap().is_none());
    // The writer is not left in a transaction: the next batch is written.
    let nums = store.write(&[Write::Finish(Box::new(first))]).unwrap();
    let row = store.execution("ex_first").unwrap().unwrap();
    assert_eq!((row.num, row.status), (nums[0], ExecutionStatus::Completed));
    assert!(store.execution_record("ex_first").unwrap().is_some());
}

pub(crate) fn a_record_reads_back_whole_and_node_states_last_while_it_runs(f: &Fixture) {
    use crate::trace::StepReport;
    use crate::trace::StepRun;
    let store = &*f.store;
    let now = Utc::now();
    let mut ended = execution("ex_whole", ExecutionStatus::Completed, now);
    ended.steps = ["first", "second"]
        .into_iter()
        .map(|node| StepRun {
            node: node.to_owned(),
            app: "transform".to_owned(),
            action: "join".to_owned(),
            iteration: None,
            attempt: 1,
            input: Some(json!({"text": node})),
            report: StepReport::success(json!({"node": node})),
            capture: Default::default(),
            started_at: now,
            child: None,
        })
        .collect();
    let mut child = execution("ex_child", ExecutionStatus::Completed, now);
    child.header.parent_id = Some("ex_whole".to_owned());
    ended.children = vec![child];
    let started = NewExecution::running(&ended);
    let node_started = |execution: &str, node: &str| {
        Write::Event(Event::NodeStarted {
            execution_id: execution.to_owned(),
            owner: std::sync::Arc::default(),
            node: node.to_owned(),
            at: now,
        })
    };
    store
        .write(&[Write::Start(started), node_started("ex_whole", "first")])
        .unwrap();
    let running = store.node_states("ex_whole").unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0].status, NodeStatus::Running);

    // The end, with node events that arrive in the same batch: the record wins.
    store
        .write(&[
            node_started("ex_whole", "second"),
            node_started("ex_child", "only"),
            Write::Finish(Box::new(ended.clone())),
        ])
        .unwrap();
    assert_eq!(store.node_states("ex_whole").unwrap(), []);
    assert_eq!(store.node_states("ex_child").unwrap(), []);
    let mut expected = serde_json::to_value(&ended).unwrap();
    expected["children"] = json!(["ex_child"]);
    assert_eq!(record(store, "ex_whole"), Some(expected));
    let child = record(store, "ex_child").unwrap();
    assert_eq!(child["parent_id"], "ex_whole");
    assert_eq!(child["steps"], json!([]));
}

pub(crate) fn an_all_digit_xid_wins_over_a_number_and_a_delete_takes_one_playbook(f: &Fixture) {
    let store = &*f.store;
    let first = store
        .save_playbook(&fields("alpha", "A", &json!({})))
        .unwrap();
    let digits = first.num.to_string();
    let second = store
        .save_playbook(&fields(&digits, "B", &json!({})))
        .unwrap();
    assert_ne!(first.num, second.num);
    assert_eq!(store.playbook(&digits, None).unwrap().unwrap().xid, digits);
    let deleted = store.delete_playbook(&digits, None, None).unwrap().unwrap();
    assert_eq!(deleted.xid, digits);
    assert!(!store.playbook("alpha", None).unwrap().unwrap().is_deleted);
    assert!(
        store
            .delete_playbook(&digits, None, None)
            .unwrap()
            .is_none(),
        "already deleted"
    );
}

pub(crate) fn a_playbook_id_is_one_tenants_and_lookups_keep_to_the_tenant_asked_for(f: &Fixture) {
    let store = &*f.store;
    let steps = json!({});
    let acme = store
        .save_playbook(&PlaybookFields {
            tenant: "acme",
            ..fields("shared", "A", &steps)
        })
        .unwrap();
    assert_eq!(acme.tenant_id, "acme");
    // Another tenant cannot take it over, nor a file's playbook of that id.
    for tenant in ["globex", "default"] {
        let taken = store.save_playbook(&PlaybookFields {
            tenant,
            ..fields("shared", "B", &steps)
        });
        assert!(
            matches!(taken, Err(Error::Taken(ref xid)) if xid == "shared"),
            "{taken:?}"
        );
    }
    let kept = store.playbook("shared", None).unwrap().unwrap();
    assert_eq!((kept.tenant_id.as_str(), kept.name.as_str()), ("acme", "A"));
    // Globex's all-digit XID does not hide acme's playbook of that number.
    let digits = acme.num.to_string();
    store
        .save_playbook(&PlaybookFields {
            tenant: "globex",
            ..fields(&digits, "G", &steps)
        })
        .unwrap();
    let found = store.playbook(&digits, Some("acme")).unwrap().unwrap();
    assert_eq!(found.xid, "shared");
    assert!(store.playbook("shared", Some("globex")).unwrap().is_none());
    assert!(
        store
            .delete_playbook("shared", Some("globex"), None)
            .unwrap()
            .is_none()
    );
    assert!(!store.playbook("shared", None).unwrap().unwrap().is_deleted);
}

pub(crate) fn an_executions_step_runs_are_found_by_their_range_of_numbers(f: &Fixture) {
    use crate::trace::StepReport;
    use crate::trace::{Capture, StepRun};
    let store = &*f.store;
    let now = Utc::now();
    let steps = |nodes: &[&str]| -> Vec<StepRun> {
        nodes
            .iter()
            .map(|node| StepRun {
                node: (*node).to_owned(),
                app: "transform".to_owned(),
                action: "join".to_owned(),
                iteration: None,
                attempt: 1,
                input: None,
                report: StepReport::success(Value::Null),
                capture: Capture::default(),
                started_at: now,
                child: None,
            })
            .collect()
    };
    let with = |id: &str, nodes: &[&str]| Execution {
        steps: steps(nodes),
        ..execution(id, ExecutionStatus::Completed, now)
    };
    // A parent with a child, each with step runs of its own, an execution without
    // any, and executions of one batch and of the next.
    let mut parent = with("ex_parent", &["p1", "p2"]);
    let mut child = with("ex_child", &["c1"]);
    child.header.parent_id = Some("ex_parent".to_owned());
    parent.children = vec![child];
    store
        .write(&[
            Write::Finish(Box::new(with("ex_first", &["f1", "f2", "f3"]))),
            Write::Finish(Box::new(parent)),
            Write::Finish(Box::new(with("ex_none", &[]))),
        ])
        .unwrap();
    store
        .write(&[Write::Finish(Box::new(with("ex_next", &["n1"])))])
        .unwrap();
    let nodes = |id: &str| -> Vec<String> {
        record(store, id).unwrap()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["node"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(nodes("ex_first"), ["f1", "f2", "f3"]);
    assert_eq!(nodes("ex_parent"), ["p1", "p2"]);
    assert_eq!(nodes("ex_child"), ["c1"]);
    assert!(nodes("ex_none").is_empty());
    assert_eq!(nodes("ex_next"), ["n1"]);
    let listed = |tql: &str| -> Vec<String> {
        let filter = StepFilter {
            tql: crate::tql::condition(tql, crate::store::STEP_FIELDS, now).unwrap(),
            ..StepFilter::default()
        };
        let (rows, total) = store
            .step_runs(&filter, Window::all(Sort::OldestFirst))
            .unwrap();
        assert_eq!(total as usize, rows.len());
        rows.into_iter().map(|s| s.run.node).collect()
    };
    assert_eq!(listed(r#"executionId = "ex_parent""#), ["p1", "p2"]);
    assert_eq!(
        listed(r#"executionId = "ex_child" AND node = "c1""#),
        ["c1"]
    );
    assert!(listed(r#"executionId = "ex_none""#).is_empty());
    assert!(listed(r#"executionId = "ex_unknown""#).is_empty());
    assert_eq!(
        listed(r#"executionId IN ("ex_child", "ex_next")"#),
        ["c1", "n1"]
    );
    assert_eq!(
        listed(r#"executionId != "ex_first" AND NOT executionId = "ex_parent""#),
        ["c1", "n1"]
    );
}

/// Issue 23: a running execution's finished steps could not be read ("still
/// running…"): they were stored only with its record.
pub(crate) fn steps_are_readable_as_they_end_and_give_way_to_the_record_once_whole(f: &Fixture) {
    use crate::trace::{LogLine, StepReport, StepRun};
    let store = &*f.store;
    let now = Utc::now();
    let run = |execution: &str, node: &str| StepRun {
        node: node.to_owned(),
        app: "transform".to_owned(),
        action: "join".to_owned(),
        iteration: None,
        attempt: 1,
        input: Some(json!({"text": node})),
        report: StepReport {
            logs: vec![LogLine {
                ts: now.to_rfc3339(),
                level: LogLevel::Info,
                message: format!("{execution} {node}"),
                fields: Vec::new(),
            }],
            ..StepReport::success(json!({"node": node}))
        },
        capture: Default::default(),
        started_at: now,
        child: None,
    };
    let step_ended = |execution: &str, node: &str| {
        let run = run(execution, node);
        Write::Event(Event::StepEnded {
            execution_id: execution.to_owned(),
            owner: std::sync::Arc::default(),
            node: node.to_owned(),
            iteration: None,
            attempt: 1,
            status: run.report.status,
            duration_us: 0,
            logs: run.report.logs.clone(),
            run: Some(Arc::new(run)),
        })
    };
    let mut long = execution("ex_long", ExecutionStatus::Completed, now);
    long.steps = vec![run("ex_long", "first"), run("ex_long", "second")];
    let other = execution("ex_other", ExecutionStatus::Completed, now);
    store
        .write(&[
            Write::Start(NewExecution::running(&long)),
            Write::Start(NewExecution::running(&other)),
        ])
        .unwrap();
    // Its first step ends, then another execution's, then its second.
    store.write(&[step_ended("ex_long", "first")]).unwrap();
    store.write(&[step_ended("ex_other", "only")]).unwrap();
    store.write(&[step_ended("ex_long", "second")]).unwrap();
    let Some(ExecutionRecord::Unfinished { steps, .. }) =
        store.execution_record("ex_long").unwrap()
    else {
        panic!("ex_long has ended");
    };
    let nodes: Vec<&Value> = steps.iter().map(|s| &s["node"]).collect();
    assert_eq!(nodes, [&json!("first"), &json!("second")], "{steps:?}");
    assert_eq!(steps[1]["report"]["output"], json!({"node": "second"}));
    let logs = |id: &str| {
        let filter = LogFilter {
            execution: Some(id.to_owned()),
            ..LogFilter::default()
        };
        let (rows, _) = store
            .log_lines(&filter, Window::all(Sort::OldestFirst))
            .unwrap();
        rows.into_iter().map(|r| r.message).collect::<Vec<_>>()
    };
    assert_eq!(logs("ex_long"), ["ex_long first", "ex_long second"]);
    let filter = StepFilter {
        execution: Some("ex_long".to_owned()),
        ..StepFilter::default()
    };
    let numbers = || {
        let (rows, _) = store
            .step_runs(&filter, Window::all(Sort::OldestFirst))
            .unwrap();
        rows.iter()
            .map(|r| (r.num, r.run.node.clone()))
            .collect::<Vec<_>>()
    };
    let early = numbers();
    assert_eq!(early.len(), 2, "{early:?}");

    // Its record holds every step: the ones written early keep their numbers (a
    // client may have seen them), none is written twice, and the one that had not
    // been written is.
    long.steps.insert(1, run("ex_long", "between"));
    store.write(&[Write::Finish(Box::new(long))]).unwrap();
    let Some(ExecutionRecord::Ended(record)) = store.execution_record("ex_long").unwrap() else {
        panic!("ex_long has not ended");
    };
    let nodes: Vec<&Value> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["node"])
        .collect();
    assert_eq!(
        nodes,
        [&json!("first"), &json!("second"), &json!("between")],
        "{record}"
    );
    assert_eq!(
        logs("ex_long"),
        ["ex_long first", "ex_long second", "ex_long between"]
    );
    let ended = numbers();
    assert_eq!(ended[..2], early[..], "{ended:?}");
    assert_eq!(ended.len(), 3, "{ended:?}");
    // The other execution's step, written between, is its own still.
    let Some(ExecutionRecord::Unfinished { steps, .. }) =
        store.execution_record("ex_other").unwrap()
    else {
        panic!("ex_other has ended");
    };
    assert_eq!(steps.len(), 1);
    assert_eq!(logs("ex_other"), ["ex_other only"]);
}

pub(crate) fn a_step_run_is_stored_without_its_empty_fields_and_reads_back_whole(f: &Fixture) {
    use crate::trace::LogLine;
    use crate::trace::{Capture, StepRun};
    use crate::trace::{FailureKind, StepReport, Truncation};
    let store = &*f.store;
    let now = Utc::now();
    let step = |node: &str, report: StepReport| StepRun {
        node: node.to_owned(),
        app: "transform".to_owned(),
        action: "join".to_owned(),
        iteration: None,
        attempt: 1,
        input: None,
        report,
        capture: Capture::default(),
        started_at: now,
        child: None,
    };
    // At INFO: nothing captured, nothing logged, nothing cut.
    let bare = step(
        "bare",
        StepReport {
            output: None,
            ..StepReport::success(Value::Null)
        },
    );
    // Every field holding something.
    let mut full = step(
        "full",
        StepReport {
            pathway: Some("true".to_owned()),
            logs: vec![LogLine {
                ts: "2026-11-23T06:00:00.000000Z".to_owned(),
                level: LogLevel::Warn,
                message: "slow".to_owned(),
                fields: vec![("ms".to_owned(), "900".to_owned())],
            }],
            stdout: "out".to_owned(),
            stderr: "err".to_owned(),
            duration_us: 1_234,
            truncated: Truncation {
                log_lines_dropped: 1,
                log_lines_cut: 2,
                stdout_bytes_dropped: 3,
                stderr_bytes_dropped: 4,
            },
            ..StepReport::success(json!({"joined": "a b"}))
        },
    );
    full.iteration = Some(2);
    full.attempt = 3;
    full.input = Some(json!({"items": ["a", "b"]}));
    full.capture = Capture {
        data: true,
        truncated: vec!["stdout"],
    };
    full.child = Some("ex_child".to_owned());
    let failed = step(
        "failed",
        StepReport::failure(FailureKind::Timeout, "too slow".to_owned()),
    );
    let mut ended = execution("ex_steps", ExecutionStatus::Failed, now);
    ended.steps = vec![bare.clone(), full.clone(), failed.clone()];
    store.write(&[Write::Finish(Box::new(ended))]).unwrap();

    let stored = f.sql("SELECT record FROM step_runs WHERE node = 'bare'");
    for absent in ["input", "capture", "output", "logs", "stdout", "truncated"] {
        assert!(
            !stored.contains(&format!("\"{absent}\"")),
            "{absent} in {stored}"
        );
    }
    let expected: Vec<Value> = [bare, full, failed]
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
    assert_eq!(record(store, "ex_steps").unwrap()["steps"], json!(expected));
    let (listed, _) = store
        .step_runs(&StepFilter::default(), Window::all(Sort::OldestFirst))
        .unwrap();
    assert_eq!(listed.len(), expected.len());
    for (listed, expected) in listed.iter().zip(&expected) {
        assert_eq!(&serde_json::to_value(&listed.run).unwrap(), expected);
        let mut row = serde_json::to_value(listed).unwrap();
        for added in ["num", "execution_id", "status"] {
            row.as_object_mut().unwrap().remove(added);
        }
        assert_eq!(&row, expected);
    }
}

pub(crate) fn log_lines_read_back_typed_and_each_condition_of_a_filter_holds(f: &Fixture) {
    use crate::trace::{LogLine, StepReport, StepRun};
    let store = &*f.store;
    let now = Utc::now();
    let line = |level, message: &str, fields: &[(&str, &str)]| LogLine {
        ts: "2026-11-23T06:00:00.000000Z".to_owned(),
        level,
        message: message.to_owned(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let step = |node: &str, iteration, logs| StepRun {
        node: node.to_owned(),
        app: "transform".to_owned(),
        action: "join".to_owned(),
        iteration,
        attempt: 1,
        input: None,
        report: StepReport {
            logs,
            ..StepReport::success(json!({}))
        },
        capture: Default::default(),
        started_at: now,
        child: None,
    };
    let mut ended = execution("ex_logs", ExecutionStatus::Completed, now);
    ended.steps = vec![
        step(
            "a",
            Some(0),
            vec![
                line(LogLevel::Info, "100% done", &[("ms", "9")]),
                line(LogLevel::Debug, "100 done", &[]),
            ],
        ),
        step("b", Some(1), vec![line(LogLevel::Error, "it's 100%", &[])]),
    ];
    store.write(&[Write::Finish(Box::new(ended))]).unwrap();
    let messages = |filter: LogFilter| -> Vec<String> {
        let (rows, total) = store
            .log_lines(&filter, Window::all(Sort::OldestFirst))
            .unwrap();
        assert_eq!(total as usize, rows.len());
        rows.into_iter().map(|row| row.message).collect()
    };
    let (rows, _) = store
        .log_lines(&LogFilter::default(), Window::all(Sort::OldestFirst))
        .unwrap();
    assert_eq!(
        (rows[0].level, rows[0].fields.clone()),
        (
            LogLevel::Info,
            Some(vec![("ms".to_owned(), "9".to_owned())])
        )
    );
    assert_eq!(
        (rows[1].level, rows[1].fields.clone()),
        (LogLevel::Debug, None)
    );
    // `%` in the text is a character, not a wildcard.
    let contains = |text: &str| LogFilter {
        message_contains: Some(text.to_owned()),
        ..LogFilter::default()
    };
    assert_eq!(messages(contains("100%")), ["100% done", "it's 100%"]);
    assert_eq!(messages(contains("0_d")), Vec::<String>::new());
    let at_least = LogFilter {
        level_at_least: Some(LogLevel::Info),
        ..LogFilter::default()
    };
    assert_eq!(messages(at_least), ["100% done", "it's 100%"]);
    let of_node = LogFilter {
        execution: Some("ex_logs".to_owned()),
        node: Some("a".to_owned()),
        iteration: Some(0),
        tql: crate::tql::condition(r#"level = "DEBUG""#, crate::store::LOG_FIELDS, now).unwrap(),
        ..LogFilter::default()
    };
    assert_eq!(messages(of_node), ["100 done"]);
    let elsewhere = LogFilter {
        execution: Some("ex_other".to_owned()),
        ..LogFilter::default()
    };
    assert!(messages(elsewhere).is_empty());
}

pub(crate) fn a_second_store_on_the_same_database_continues_what_the_first_wrote(f: &Fixture) {
    let now = Utc::now();
    let ended = execution("ex_across", ExecutionStatus::Completed, now);
    let queued = NewExecution {
        status: ExecutionStatus::Queued,
        ..NewExecution::running(&ended)
    };
    let first = Arc::clone(&f.store);
    let num = first.write(&[Write::Start(queued)]).unwrap()[0];
    first
        .write(&[Write::Event(Event::NodeStarted {
            execution_id: "ex_across".to_owned(),
            owner: std::sync::Arc::default(),
            node: "only".to_owned(),
            at: now,
        })])
        .unwrap();
    // Its playbook is not in the store (yet): no playbook number.
    assert_eq!(
        first.execution("ex_across").unwrap().unwrap().playbook_num,
        None
    );
    drop(first);

    let second = f.reopen();
    // Its start, again (queued, then running), and its end: the same row throughout,
    // and the node state written by the first store goes with the record.
    let running = second
        .write(&[Write::Start(NewExecution::running(&ended))])
        .unwrap();
    assert_eq!(running, [num]);
    assert_eq!(
        second.execution("ex_across").unwrap().unwrap().status,
        ExecutionStatus::Running
    );
    assert_eq!(second.node_states("ex_across").unwrap().len(), 1);
    let finished = second
        .write(&[Write::Finish(Box::new(ended.clone()))])
        .unwrap();
    assert_eq!(finished, [num]);
    let row = second.execution("ex_across").unwrap().unwrap();
    assert_eq!(row.status, ExecutionStatus::Completed);
    assert!(row.completed_at.is_some());
    assert_eq!(second.node_states("ex_across").unwrap(), []);

    // A playbook saved after the writer looked for it: later executions carry its
    // number.
    let saved = second
        .save_playbook(&fields("triage", "Triage", &json!({"nodes": {}})))
        .unwrap();
    let later = execution("ex_later", ExecutionStatus::Completed, now);
    second.write(&[Write::Finish(Box::new(later))]).unwrap();
    assert_eq!(
        second.execution("ex_later").unwrap().unwrap().playbook_num,
        Some(saved.num)
    );
}

pub(crate) fn unfinished_executions_fail_as_interrupted_when_the_store_reopens(f: &Fixture) {
    {
        let store = &*f.store;
        store
            .start_execution(&NewExecution {
                header: ExecutionHeader {
                    id: "ex_running".to_owned(),
                    parent_id: None,
                    replay_of: None,
                    playbook_id: "triage".to_owned(),
                    playbook_name: "Triage".to_owned(),
                    trigger_type: TriggerType::Manual,
                    log_level: LogLevel::Info,
                    queued_at: Utc::now(),
                    tenant_id: crate::trace::DEFAULT_TENANT.to_owned(),
                    app_id: None,
                },
                status: ExecutionStatus::Running,
            })
            .unwrap();
        store
            .finish_execution(&execution(
                "ex_done",
                ExecutionStatus::Completed,
                Utc::now(),
            ))
            .unwrap();
    }
    let store = f.reopen();
    assert_eq!(store.interrupt_unfinished().unwrap().executions, 1);
    let row = store.execution("ex_running").unwrap().unwrap();
    assert_eq!(row.status, ExecutionStatus::Failed);
    assert_eq!(row.message.as_deref(), Some("interrupted by restart"));
    // It counts as ended, but has no duration to weigh in the mean or the p95.
    let stats = store.run_stats("triage", "default").unwrap();
    assert_eq!(
        stats,
        RunStats {
            total: 2,
            running: 0,
            by_status: [("Completed".to_owned(), 1), ("Failed".to_owned(), 1)].into(),
            mean_duration_ms: Some(5),
            p95_duration_ms: Some(5),
        }
    );
    assert!(row.completed_at.is_some());
    let row = store.execution("ex_done").unwrap().unwrap();
    assert_eq!(row.status, ExecutionStatus::Completed);
}

/// What an app sends is its own: a NUL in a message, an error or an output is stored
/// (PostgreSQL's text columns refuse the character: there it reads back as U+FFFD in
/// the columns a filter reads, and whole in the record).
pub(crate) fn text_an_app_sends_is_stored_whatever_it_holds(f: &Fixture) {
    use crate::trace::{Capture, FailureKind, LogLine, StepReport, StepRun};
    let store = &*f.store;
    let now = Utc::now();
    let mut failed = StepReport::failure(FailureKind::AppError, "bad\0byte".to_owned());
    failed.logs = vec![LogLine {
        ts: now.to_rfc3339(),
        level: LogLevel::Warn,
        message: "nul\0here".to_owned(),
        fields: vec![("k\0".to_owned(), "v\0".to_owned())],
    }];
    failed.output = Some(json!({"text": "a\0b"}));
    let mut ended = execution("ex_nul", ExecutionStatus::Failed, now);
    ended.message = Some("step `s` failed: bad\0byte".to_owned());
    ended.steps = vec![StepRun {
        node: "s".to_owned(),
        app: "transform".to_owned(),
        action: "join".to_owned(),
        iteration: None,
        attempt: 1,
        input: Some(json!({"text": "\0"})),
        report: failed,
        capture: Capture::default(),
        started_at: now,
        child: None,
    }];
    store.write(&[Write::Finish(Box::new(ended))]).unwrap();
    let record = record(store, "ex_nul").unwrap();
    assert_eq!(record["steps"][0]["report"]["output"]["text"], "a\0b");
    assert_eq!(record["steps"][0]["input"]["text"], "\0");
    let (lines, _) = store
        .log_lines(&LogFilter::default(), Window::all(Sort::OldestFirst))
        .unwrap();
    assert_eq!(lines.len(), 1);
    let kept = ["nul\0here", "nul\u{fffd}here"];
    assert!(kept.contains(&lines[0].message.as_str()), "{:?}", lines[0]);
    assert_eq!(
        lines[0].fields,
        Some(vec![("k\0".to_owned(), "v\0".to_owned())])
    );
    let row = store.execution("ex_nul").unwrap().unwrap();
    assert!(row.message.unwrap().starts_with("step `s` failed: bad"));
}

fn soar_query(conditions: Vec<SoarCondition>) -> SoarQuery {
    SoarQuery {
        conditions,
        sort: None,
        offset: 0,
        limit: 100,
        tenant: None,
    }
}

fn soar(field: &str, lookup: SoarLookup, value: Value) -> SoarCondition {
    SoarCondition {
        field: SoarField::new(field).unwrap(),
        lookup,
        value,
        negated: false,
    }
}

pub(crate) fn soar_records_are_filtered_sorted_and_kept_to_their_tenant(f: &Fixture) {
    let store = &*f.store;
    let runs = [
        (
            "default",
            json!({"name": "Block IP", "status": "running", "count": 3, "ok": true}),
        ),
        (
            "default",
            json!({"name": "block host", "status": "success", "count": 1, "ok": false}),
        ),
        (
            "acme",
            json!({"name": "Unblock", "status": "pending", "count": 2, "note": null}),
        ),
    ];
    let mut nums = Vec::new();
    for (tenant, record) in &runs {
        nums.push(store.save_action_run(None, tenant, record).unwrap());
    }
    let names = |query: &SoarQuery| -> Vec<String> {
        let (records, total) = store.action_runs(query).unwrap();
        assert_eq!(total as usize, records.len(), "{records:?}");
        records
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let one = |c: SoarCondition| names(&soar_query(vec![c]));
    assert_eq!(
        one(soar("status", SoarLookup::Exact, json!("running"))),
        ["Block IP"]
    );
    assert_eq!(
        one(soar("count", SoarLookup::Gt, json!(1))),
        ["Block IP", "Unblock"]
    );
    assert_eq!(
        one(soar("count", SoarLookup::Lte, json!(2))),
        ["block host", "Unblock"]
    );
    assert_eq!(
        one(soar(
            "status",
            SoarLookup::In,
            json!(["pending", "success"])
        )),
        ["block host", "Unblock"]
    );
    assert!(one(soar("status", SoarLookup::In, json!([]))).is_empty());
    assert_eq!(
        one(soar("name", SoarLookup::Contains, json!("lock"))),
        ["Block IP", "block host", "Unblock"]
    );
    assert_eq!(
        one(soar("name", SoarLookup::Contains, json!("Block"))),
        ["Block IP"]
    );
    assert_eq!(
        one(soar("name", SoarLookup::IContains, json!("BLOCK H"))),
        ["block host"]
    );
    assert_eq!(
        one(soar("name", SoarLookup::StartsWith, json!("Un"))),
        ["Unblock"]
    );
    assert_eq!(
        one(soar("note", SoarLookup::IsNull, json!(true))),
        ["Block IP", "block host", "Unblock"]
    );
    assert!(one(soar("note", SoarLookup::IsNull, json!(false))).is_empty());
    assert_eq!(
        one(soar("ok", SoarLookup::Exact, json!(true))),
        ["Block IP"]
    );
    // `_exclude_`: a record without the field is kept.
    let mut excluded = soar("ok", SoarLookup::Exact, json!(true));
    excluded.negated = true;
    assert_eq!(one(excluded), ["block host", "Unblock"]);
    // Sorted by a field, descending; a page of one; one tenant's.
    let sorted = SoarQuery {
        sort: Some((SoarField::new("count").unwrap(), true)),
        ..soar_query(Vec::new())
    };
    assert_eq!(names(&sorted), ["Block IP", "Unblock", "block host"]);
    let page = SoarQuery {
        offset: 1,
        limit: 1,
        ..sorted.clone()
    };
    let (records, total) = store.action_runs(&page).unwrap();
    assert_eq!((records.len(), total), (1, 3));
    assert_eq!(records[0]["name"], "Unblock");
    let acme = SoarQuery {
        tenant: Some("acme".to_owned()),
        ..soar_query(Vec::new())
    };
    assert_eq!(names(&acme), ["Unblock"]);
    assert!(
        store
            .action_run(nums[2], Some("default"))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.action_run(nums[2], Some("acme")).unwrap().unwrap()["name"],
        "Unblock"
    );

    // App runs belong to their action run, and to its tenant.
    let app = store
        .save_app_run(None, nums[0], &json!({"app": "geo", "status": "running"}))
        .unwrap();
    store
        .save_app_run(None, nums[2], &json!({"app": "dns", "status": "success"}))
        .unwrap();
    let (of_first, total) = store
        .app_runs(Some(nums[0]), &soar_query(Vec::new()))
        .unwrap();
    assert_eq!((of_first.len(), total), (1, 1));
    assert_eq!(of_first[0]["app"], "geo");
    let (of_acme, _) = store.app_runs(None, &acme).unwrap();
    assert_eq!(of_acme.len(), 1);
    assert_eq!(of_acme[0]["app"], "dns");
    assert!(store.app_run(app, Some("acme")).unwrap().is_none());
    store
        .save_app_run(
            Some(app),
            nums[0],
            &json!({"app": "geo", "status": "running", "n": 2}),
        )
        .unwrap();
    assert_eq!(store.app_run(app, None).unwrap().unwrap()["n"], 2);

    // A restart fails what was pending or running, and says so.
    let interrupted = store.interrupt_unfinished().unwrap();
    assert_eq!(interrupted.action_runs, 2);
    let first = store.action_run(nums[0], None).unwrap().unwrap();
    assert_eq!(
        (&first["status"], &first["message"]),
        (&json!("failed"), &json!("interrupted by restart"))
    );
    assert!(first["close_time"].is_string());
    let app = store.app_run(app, None).unwrap().unwrap();
    assert_eq!(
        (&app["status"], &app["exception_occured"]),
        (&json!("failed"), &json!(true))
    );
    assert_eq!(
        store.action_run(nums[1], None).unwrap().unwrap()["status"],
        "success"
    ); // A NUL in a record is kept (as U+FFFD where the database cannot hold it).
    let odd = store
        .save_action_run(None, "globex", &json!({"name": "a\0b", "status": "failed"}))
        .unwrap();
    let name = store.action_run(odd, None).unwrap().unwrap()["name"].clone();
    assert!(name == "a\0b" || name == "a\u{fffd}b", "{name}");
}

pub(crate) fn audit_rows_are_an_execution_and_its_step_runs_in_secmasters_terms(f: &Fixture) {
    use crate::trace::{Capture, StepReport, StepRun};
    let store = &*f.store;
    let now = Utc::now();
    let mut ended = execution("ex_audit", ExecutionStatus::Completed, now);
    ended.header.trigger_type = TriggerType::Webhook;
    ended.steps = vec![StepRun {
        node: "geo".to_owned(),
        app: "geoip".to_owned(),
        action: "lookup".to_owned(),
        iteration: None,
        attempt: 1,
        input: Some(json!({"ip": "8.8.8.8"})),
        report: StepReport::success(json!("Mountain View")),
        capture: Capture::default(),
        started_at: now,
        child: None,
    }];
    store.write(&[Write::Finish(Box::new(ended))]).unwrap();
    store
        .finish_execution(&execution("ex_other", ExecutionStatus::Failed, now))
        .unwrap();
    let rows = |filter: &AuditFilter| {
        let (rows, total) = store
            .audit_logs(filter, Window::all(Sort::OldestFirst), AuditOrder::Start)
            .unwrap();
        assert_eq!(total as usize, rows.len());
        rows
    };
    let apps = rows(&AuditFilter {
        kinds: Some(vec![AuditKind::App]),
        ..AuditFilter::default()
    });
    assert_eq!(apps.len(), 1, "{apps:?}");
    let app = &apps[0];
    assert!(app.instance_id.starts_with("sr_"), "{app:?}");
    assert_eq!(
        (app.action_id.as_str(), app.action_name.as_str()),
        ("geoip", "lookup")
    );
    assert_eq!(app.parent_instance_id.as_deref(), Some("ex_audit"));
    assert_eq!(app.input, r#"{"ip":"8.8.8.8"}"#);
    // A string output is its text, unquoted.
    assert_eq!(app.output, "Mountain View");
    assert_eq!(app.status, AuditStatus::Step(NodeStatus::Succeeded));
    assert_eq!(app.trigger_type, TriggerType::Webhook);
    let playbooks = rows(&AuditFilter {
        kinds: Some(vec![AuditKind::Playbook]),
        statuses: Some(vec![AuditStatus::Execution(ExecutionStatus::Completed)]),
        ..AuditFilter::default()
    });
    assert_eq!(playbooks.len(), 1, "{playbooks:?}");
    assert_eq!(playbooks[0].instance_id, "ex_audit");
    assert_eq!(playbooks[0].input, r#"{"ip":"8.8.8.8"}"#);
    let found = rows(&AuditFilter {
        input_contains: Some("8.8.8".to_owned()),
        trigger_types: Some(vec![TriggerType::Manual]),
        ..AuditFilter::default()
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].instance_id, "ex_other");
    assert!(
        rows(&AuditFilter {
            statuses: Some(Vec::new()),
            ..AuditFilter::default()
        })
        .is_empty()
    );
}

pub(crate) fn keys_assets_and_run_statistics_read_back(f: &Fixture) {
    use crate::store::ApiKey;
    let store = &*f.store;
    let now = Utc::now();
    let key = ApiKey {
        id: "key_1".to_owned(),
        name: "ci".to_owned(),
        tenant: "acme".to_owned(),
        role: "operator".to_owned(),
        secret_sha256: "ab".repeat(32),
        created_at: now,
        revoked_at: None,
    };
    store.save_key(&key).unwrap();
    let read = store.key("key_1").unwrap().unwrap();
    assert_eq!(
        (read.name.as_str(), read.tenant.as_str(), read.role.as_str()),
        ("ci", "acme", "operator")
    );
    assert_eq!(read.created_at.timestamp_millis(), now.timestamp_millis());
    assert!(store.revoke_key("key_1", now).unwrap());
    assert!(!store.revoke_key("key_1", now).unwrap(), "revoked once");
    assert!(store.keys().unwrap()[0].revoked_at.is_some());
    assert!(store.key("key_2").unwrap().is_none());

    let spec = json!({"base_url": "https://example.com", "token": "env:TOKEN"});
    assert!(
        store
            .save_asset("acme", "intel", "http-request", &spec)
            .unwrap()
    );
    assert!(
        !store
            .save_asset("globex", "intel", "http-request", &spec)
            .unwrap()
    );
    assert_eq!(
        store.assets().unwrap(),
        [("acme".to_owned(), "intel".to_owned(), spec.clone())]
    );
    assert!(!store.delete_asset("globex", "intel").unwrap());
    assert!(store.delete_asset("acme", "intel").unwrap());
    assert!(store.assets().unwrap().is_empty());

    for (i, status) in [
        ExecutionStatus::Completed,
        ExecutionStatus::Completed,
        ExecutionStatus::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        let mut ended = execution(&format!("ex_stat{i}"), status, now);
        ended.duration_us = 10_000 * (i as u64 + 1);
        store.finish_execution(&ended).unwrap();
    }
    let running = execution("ex_stat_running", ExecutionStatus::Completed, now);
    store
        .start_execution(&NewExecution::running(&running))
        .unwrap();
    assert_eq!(
        store.run_stats("triage", "default").unwrap(),
        RunStats {
            total: 3,
            running: 1,
            by_status: [("Completed".to_owned(), 2), ("Failed".to_owned(), 1)].into(),
            mean_duration_ms: Some(20),
            p95_duration_ms: Some(30),
        }
    );
    assert_eq!(store.run_stats("triage", "acme").unwrap().total, 0);
}

pub(crate) fn tql_compares_words_without_case_and_patterns_without_wildcards_of_the_value(
    f: &Fixture,
) {
    let store = &*f.store;
    let now = Utc::now();
    for (id, name, ms) in [("ex_a", "Triage 50%", 2), ("ex_b", "triage 500", 3)] {
        let mut ended = execution(id, ExecutionStatus::Completed, now);
        ended.header.playbook_name = name.to_owned();
        ended.duration_us = ms * 1000;
        store.finish_execution(&ended).unwrap();
    }
    let ids = |tql: &str| sorted_ids(store, tql);
    assert_eq!(ids(r#"status = "completed""#), ["ex_a", "ex_b"]);
    assert_eq!(ids(r#"status IN ("COMPLETED")"#), ["ex_a", "ex_b"]);
    assert_eq!(ids(r#"playbookName CONTAINS "50%""#), ["ex_a"]);
    assert_eq!(ids(r#"playbookName LIKE "tri%500""#), ["ex_b"]);
    assert_eq!(ids(r#"playbookName STARTSWITH "triage""#), ["ex_a", "ex_b"]);
    assert_eq!(ids("durationMs > 2.5"), ["ex_b"]);
    assert_eq!(ids("durationMs >= 2"), ["ex_a", "ex_b"]);
    assert_eq!(
        ids(r#"queueTime > "NOW() - 1 HOUR" AND NOT parentId ISNULL"#),
        Vec::<String>::new()
    );
    assert_eq!(ids(r#"NOT playbookName = "Triage 50%""#), ["ex_b"]);
    assert_eq!(ids(r#"executionId = "ex_a" OR id = 0"#), ["ex_a"]);
    // A pattern ending in a lone escape matches nothing (and is no error).
    assert!(ids(r#"playbookName LIKE "tri\\""#).is_empty());
    assert_eq!(ids(r#"playbookName NOT LIKE "tri\\""#), ["ex_a", "ex_b"]);
    // Without a value (still running) is the least value, as SQLite sorts it, unless
    // the order says where.
    let running = execution("ex_c", ExecutionStatus::Completed, now);
    store
        .start_execution(&NewExecution::running(&running))
        .unwrap();
    let ordered = |descending: bool, nulls_first: Option<bool>| -> Vec<String> {
        let filter = ExecutionFilter {
            order: vec![crate::store::OrderBy {
                field: crate::store::ExecutionField::CompletedAt,
                descending,
                nulls_first,
            }],
            ..ExecutionFilter::default()
        };
        let page = store
            .executions(&filter, Window::all(Sort::OldestFirst), false)
            .unwrap();
        page.rows.into_iter().map(|r| r.header.id).collect()
    };
    assert_eq!(ordered(false, None)[0], "ex_c");
    assert_eq!(ordered(true, None)[2], "ex_c");
    assert_eq!(ordered(true, Some(true))[0], "ex_c");
    assert_eq!(ordered(false, Some(false))[2], "ex_c");
}
