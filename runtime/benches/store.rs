//! The store under load: TQL list queries over 100,000 stored executions.
//!
//! `cargo bench --bench store`. Each query is a page of 100 (with its counts, as the
//! APIs answer) and runs 200 times; p50 and p99 are printed. Results are written down
//! in BENCHMARKS.md.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use wasp_runtime::store::{
    EXECUTION_FIELDS, ExecutionFilter, PlaybookFields, Sort, SqliteStore, Store, Window,
};
use wasp_runtime::tql;
use wasp_runtime::trace::{
    Execution, ExecutionHeader, ExecutionStatus, LogLevel, NodeRecord, NodeStatus, TriggerType,
};

const EXECUTIONS: usize = 100_000;

fn execution(i: usize) -> Execution {
    // Oldest first, one every 6 s over the last 7 days; one in five failing; ten
    // playbooks.
    let age = ((EXECUTIONS - i) as i64) * 6;
    let queued_at = Utc::now() - chrono::Duration::seconds(age);
    let status = match i % 10 {
        0 => ExecutionStatus::Failed,
        1 => ExecutionStatus::PartiallyFailed,
        _ => ExecutionStatus::Completed,
    };
    Execution {
        header: ExecutionHeader {
            id: format!("ex_bench{i:08}"),
            parent_id: None,
            replay_of: None,
            playbook_id: format!("playbook-{}", i % 10),
            playbook_name: format!("Phishing triage {}", i % 10),
            trigger_type: TriggerType::Manual,
            log_level: LogLevel::Info,
            queued_at,
            tenant_id: wasp_runtime::trace::DEFAULT_TENANT.to_owned(),
            app_id: None,
        },
        status,
        message: None,
        output: None,
        output_error: None,
        output_status: None,
        started_at: queued_at,
        completed_at: queued_at + chrono::Duration::milliseconds(40),
        duration_us: 40_000,
        trigger: None,
        nodes: vec![NodeRecord::new("parse".to_owned(), NodeStatus::Succeeded)],
        steps: Vec::new(),
        children: Vec::new(),
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("bench.db")).expect("store");
    let steps = json!({});
    for p in 0..10 {
        let xid = format!("playbook-{p}");
        store
            .save_playbook(&PlaybookFields::plain(&xid, "x", &steps, "file"))
            .expect("playbook");
    }
    let started = Instant::now();
    for i in 0..EXECUTIONS {
        store.finish_execution(&execution(i)).expect("insert");
    }
    let inserted = started.elapsed();
    println!(
        "stored {EXECUTIONS} executions in {inserted:.1?} ({:.0} a second, one transaction each)",
        EXECUTIONS as f64 / inserted.as_secs_f64()
    );
    let queries = [
        r#"completedTime > "NOW() - 1 HOUR""#,
        r#"playbookXid = "playbook-3""#,
        r#"status = "Failed" AND completedTime > "NOW() - 1 DAY""#,
        r#"status IN ("Failed", "Partially Failed") AND playbookId = 4"#,
        r#"playbookId = 4"#,
        r#"status = "Failed""#,
        r#"status = "Killed""#,
        r#"queueTime > "NOW() - 1 HOUR""#,
        "",
        r#"playbookName CONTAINS "triage 7""#,
    ];
    for text in queries {
        let mut samples = Vec::new();
        let mut rows = 0;
        for _ in 0..200 {
            let started = Instant::now();
            let tql = tql::condition(text, EXECUTION_FIELDS, Utc::now()).expect("query");
            let window = Window {
                offset: 0,
                limit: 100,
                sort: Sort::NewestFirst,
            };
            let page = store
                .executions(
                    &ExecutionFilter {
                        tql,
                        ..Default::default()
                    },
                    window,
                    false,
                )
                .expect("list");
            samples.push(started.elapsed());
            rows = page.rows.len();
        }
        let (p50, p99) = percentiles(samples);
        let shown = if text.is_empty() { "(no filter)" } else { text };
        let tql = tql::condition(text, EXECUTION_FIELDS, Utc::now()).expect("query");
        let started = Instant::now();
        let window = Window {
            offset: 0,
            limit: 1,
            sort: Sort::NewestFirst,
        };
        let total = store
            .executions(
                &ExecutionFilter {
                    tql,
                    ..Default::default()
                },
                window,
                true,
            )
            .expect("count")
            .total
            .unwrap_or_default();
        let counted = started.elapsed();
        println!(
            "{shown:<62} page of {rows:>3}  p50 {p50:>9.2?}  p99 {p99:>9.2?}   count of {total:>6}: {counted:>8.2?}"
        );
    }
}
