//! The server under load: what SQLite persistence adds to an execution, and runs per
//! second over HTTP from a real load generator.
//!
//! `cargo bench --bench server`. Runs the 3-node playbook `benches/playbooks/
//! three-steps.yaml` (real components) 2,000 times, 16 at a time: in process without a
//! store, then through the server's `Service` with the SQLite store. Then it serves the
//! API on 127.0.0.1 and, when `wrk` is installed (`apt-get install wrk`), drives
//! `POST /api/v1/playbooks/three-steps/run?wait=true` with 16 connections for 10 s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasp_runtime::api::{self, Service};
use wasp_runtime::assets::Assets;
use wasp_runtime::engine::{self, ExecutionStatus, HostRunner, Start, TriggerType};
use wasp_runtime::host::{AppInfo, Host, HostConfig, Registry};
use wasp_runtime::playbook::{Catalog, Playbook};
use wasp_runtime::store::{NewExecution, SqliteStore, Store, Write};

const RUNS: usize = 2_000;
const CONCURRENCY: usize = 16;

struct Apps<'a>(&'a Registry);

impl Catalog for Apps<'_> {
    fn app(&self, name: &str) -> Option<&AppInfo> {
        self.0.get(name).map(|app| &app.info)
    }

    fn has_playbook(&self, _: &str) -> bool {
        false
    }
}

fn trigger(i: usize) -> Value {
    json!({"id": i, "score": 85, "severity": "high"})
}

/// Run `one` RUNS times, CONCURRENCY at once; the wall time and runs per second.
async fn load<F, Fut>(one: F) -> (Duration, f64)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for i in 0..RUNS {
        running.spawn(one(i));
        if running.len() >= CONCURRENCY {
            running.join_next().await;
        }
    }
    while running.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    (elapsed, RUNS as f64 / elapsed.as_secs_f64())
}

/// Write `done` and their `events` into a fresh store on one thread, as the server's
/// writer would: each execution's start, its node events, its record, in batches of
/// `BATCH` writes.
fn store_alone(events: &[engine::Event], done: &[engine::Execution]) {
    const BATCH: usize = 48;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("alone.db")).expect("store");
    let mut by_execution: std::collections::HashMap<&str, Vec<&engine::Event>> = Default::default();
    for event in events {
        by_execution
            .entry(event.execution_id())
            .or_default()
            .push(event);
    }
    let mut writes = Vec::with_capacity(events.len() + done.len() * 2);
    for execution in done {
        writes.push(Write::Start(NewExecution::running(execution)));
        let events = by_execution
            .remove(execution.id.as_str())
            .unwrap_or_default();
        writes.extend(events.into_iter().map(|e| Write::Event(e.clone())));
        writes.push(Write::Finish(Box::new(execution.clone())));
    }
    let started = Instant::now();
    for batch in writes.chunks(BATCH) {
        store.write(batch).expect("written");
    }
    let elapsed = started.elapsed();
    println!(
        "the store alone, one thread  {RUNS} executions ({} writes, {BATCH} a batch) in {elapsed:>8.1?}  \
         {:.0} µs an execution",
        writes.len(),
        elapsed.as_secs_f64() * 1e6 / RUNS as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cache = tempfile::tempdir().expect("temp dir");
        let host = Host::new(HostConfig {
            cache_dir: Some(cache.path().to_owned()),
            ..HostConfig::default()
        })
        .expect("host");
        let apps = PathBuf::from(env!("WASP_EXAMPLE_APPS_DIR"));
        let registry = Registry::scan(&host, &apps).await.expect("example apps");
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/playbooks/three-steps.yaml");
        let playbook = Arc::new(Playbook::load(&file, &Apps(&registry)).expect("playbook"));
        let runner = Arc::new(
            HostRunner::new(host, Arc::new(registry), Arc::new(Assets::default()))
                .with_playbooks([Arc::clone(&playbook)]),
        );

        // Warm the component cache and the pooling allocator.
        for i in 0..50 {
            engine::execute(Arc::clone(&runner), Arc::clone(&playbook), Start::new(trigger(i))).await;
        }
        // Keep what the runs produce, to time the store alone below.
        let (events, mut produced) = tokio::sync::mpsc::unbounded_channel();
        let done = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (elapsed, rate) = load(|i| {
            let runner = Arc::clone(&runner);
            let playbook = Arc::clone(&playbook);
            let events = events.clone();
            let done = Arc::clone(&done);
            async move {
                let start = Start {
                    events: Some(events.clone()),
                    ..Start::new(trigger(i))
                };
                let execution = engine::execute(runner, playbook, start).await;
                assert_eq!(execution.status, ExecutionStatus::Completed);
                done.lock().expect("not poisoned").push(execution);
            }
        })
        .await;
        drop(events);
        println!("in process, no store         {RUNS} runs in {elapsed:>8.1?}  {rate:>7.0} runs/s");
        let mut writes = Vec::new();
        while let Some(event) = produced.recv().await {
            writes.push(event);
        }
        store_alone(&writes, &done.lock().expect("not poisoned"));

        let db = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open(&db.path().join("bench.db")).expect("store"));
        let service = Arc::new(Service::new(store, Arc::clone(&runner), None));
        let (stored_elapsed, stored_rate) = load(|i| {
            let service = Arc::clone(&service);
            async move {
                let started = service
                    .run("three-steps", trigger(i), TriggerType::Manual, None)
                    .await
                    .expect("started");
                let execution = started.done.await.expect("ended");
                assert_eq!(execution.status, ExecutionStatus::Completed);
            }
        })
        .await;
        println!(
            "in process, SQLite store     {RUNS} runs in {stored_elapsed:>8.1?}  {stored_rate:>7.0} runs/s  \
             (persistence adds {:.0}%)",
            (stored_elapsed.as_secs_f64() / elapsed.as_secs_f64() - 1.0) * 100.0
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(api::serve(listener, Arc::clone(&service), std::future::pending()));
        let script = db.path().join("post.lua");
        std::fs::write(
            &script,
            "wrk.method = \"POST\"\nwrk.body = '{\"id\": 1, \"score\": 85, \"severity\": \"high\"}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n",
        )
        .expect("script");
        let url = format!("http://{addr}/api/v1/playbooks/three-steps/run?wait=true");
        let command = {
            let (script, url) = (script.clone(), url.clone());
            move || {
                std::process::Command::new("wrk")
                    .args(["-t", "2", "-c", &CONCURRENCY.to_string(), "-d", "10s", "--latency", "-s"])
                    .arg(&script)
                    .arg(&url)
                    .output()
            }
        };
        let wrk = tokio::task::spawn_blocking(command).await.expect("wrk's thread");
        match wrk {
            Ok(output) => {
                println!("over HTTP: wrk -t 2 -c {CONCURRENCY} -d 10s --latency POST {url}");
                print!("{}", String::from_utf8_lossy(&output.stdout));
            }
            Err(e) => println!("over HTTP: skipped, `wrk` could not run ({e}); apt-get install wrk"),
        }
        server.abort();
    });
}
