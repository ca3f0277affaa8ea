//! The server under load: what SQLite persistence adds to an execution, and runs per
//! second over HTTP from a real load generator.
//!
//! `cargo bench --bench server`. Runs the 3-node playbook `benches/playbooks/
//! three-steps.yaml` (real components) 4,000 times, 16 at a time: in process without a
//! store, as `wasp run` does (no event stream), then through the server's `Service` with
//! the SQLite store, in 9 such rounds (the median round's difference is the figure; the
//! fastest rounds are compared too, and the CPU time of all threads). Each side drops an
//! execution as soon as it has checked it. What one untimed pass of runs produces, with
//! their events, is first written by the store alone, on one thread.
//! Then it serves the API on 127.0.0.1 and, when `wrk` is installed (`apt-get install
//! wrk`), drives `POST /api/v1/playbooks/three-steps/run?wait=true` with 16 connections
//! for 10 s. `WASP_BENCH_RUNS`, `WASP_BENCH_ROUNDS` and `WASP_BENCH_CONCURRENCY` change
//! the runs, the rounds and the concurrency; `WASP_BENCH_STORE_BATCH` the batch of the
//! store alone; `WASP_BENCH_NO_HTTP` stops before the HTTP part (for profiling the rest);
//! `WASP_BENCH_CACHE` keeps the compiled components in a directory for the next run;
//! `WASP_BENCH_DB` (a `postgres://` URL of an empty database) stores in PostgreSQL
//! instead of a SQLite file.
//! The diagnostics are installed as `wasp` installs them: with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! set, every execution's spans are exported (the cost of trace export).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasp_runtime::api;
use wasp_runtime::assets::Assets;
use wasp_runtime::engine::{self, Start};
use wasp_runtime::host::{Host, HostConfig, Registry};
use wasp_runtime::playbook::{AppInfo, Catalog, Playbook};
use wasp_runtime::runner::HostRunner;
use wasp_runtime::service::{Report, Service};
use wasp_runtime::store::{Location, NewExecution, Store, Write};
use wasp_runtime::trace::{ExecutionStatus, TriggerType};

/// The allocator the `wasp` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs of each in-process part in a round; `WASP_BENCH_RUNS` sets another number.
/// (1,000 made rounds of 30 ms on a machine where an execution takes 60 µs of CPU: too
/// short to measure, rounds from 9% to 120%.)
fn runs() -> usize {
    knob("WASP_BENCH_RUNS", 4_000)
}

/// Rounds of the in-process comparison; `WASP_BENCH_ROUNDS`.
fn rounds() -> usize {
    knob("WASP_BENCH_ROUNDS", 9).max(1)
}

/// Executions at once in process and connections over HTTP; `WASP_BENCH_CONCURRENCY`.
fn concurrency() -> usize {
    knob("WASP_BENCH_CONCURRENCY", 16)
}

fn knob(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not `{value}`")),
        Err(_) => default,
    }
}

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

/// What each thread has used so far, by thread id: its name, CPU time and the times it
/// was put on a CPU, from `/proc/self/task/*/schedstat` (kept in nanoseconds, where
/// `stat` counts 10 ms ticks; a thread on a CPU at the moment of reading lags by up to
/// a tick); empty elsewhere.
fn by_thread() -> std::collections::BTreeMap<String, (String, Duration, u64)> {
    let mut threads = std::collections::BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        // On CPU (ns), waiting for a CPU (ns), times run.
        let mut fields = stat
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let (on_cpu, _, runs) = (fields.next(), fields.next(), fields.next());
        threads.insert(
            task.file_name().to_string_lossy().into_owned(),
            (
                name.trim().to_owned(),
                Duration::from_nanos(on_cpu.unwrap_or(0)),
                runs.unwrap_or(0),
            ),
        );
    }
    threads
}

/// Run `one` [`runs`] times, [`concurrency`] at once; what each run gave, in the order
/// they ended. A run that panics (a failed check) stops the bench.
async fn run_all<F, Fut>(one: F) -> Vec<Fut::Output>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (mut running, mut ended) = (tokio::task::JoinSet::new(), Vec::with_capacity(runs()));
    for i in 0..runs() {
        running.spawn(one(i));
        if running.len() >= concurrency()
            && let Some(output) = running.join_next().await
        {
            ended.push(output.expect("a run"));
        }
    }
    ended.extend(running.join_all().await);
    ended
}

/// One timed [`run_all`].
struct Load {
    elapsed: Duration,
    /// Runs per second.
    rate: f64,
    /// The CPU time of all threads.
    cpu: Duration,
    /// By kind of thread (threads of one name together): CPU time and times put on a
    /// CPU, for those that used any.
    threads: std::collections::BTreeMap<String, (Duration, u64)>,
}

impl Load {
    /// The CPU time an execution took, all threads together and by thread.
    fn print_cpu(&self) {
        let per_run = |d: Duration| d.as_secs_f64() * 1e6 / runs() as f64;
        let scheduled: u64 = self.threads.values().map(|(_, n)| n).sum();
        println!(
            "  CPU {:.1} µs an execution ({:.2} cores busy), {:.2} times on a CPU",
            per_run(self.cpu),
            self.cpu.as_secs_f64() / self.elapsed.as_secs_f64(),
            scheduled as f64 / runs() as f64
        );
        let listed: Vec<String> = self
            .threads
            .iter()
            .map(|(name, (cpu, n))| {
                format!(
                    "{name} {:.1} ({:.2})",
                    per_run(*cpu),
                    *n as f64 / runs() as f64
                )
            })
            .collect();
        println!(
            "  by thread, µs (times on a CPU) an execution: {}",
            listed.join(", ")
        );
    }
}

/// [`run_all`], timed.
async fn load<F, Fut>(one: F) -> Load
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let before = by_thread();
    let started = Instant::now();
    run_all(one).await;
    let elapsed = started.elapsed();
    // What each thread used in the round (a thread that ended in it is not counted).
    let mut threads = std::collections::BTreeMap::<String, (Duration, u64)>::new();
    for (id, (name, cpu, scheduled)) in by_thread() {
        let (_, cpu_before, scheduled_before) = before.get(&id).cloned().unwrap_or_default();
        let entry = threads.entry(name).or_default();
        entry.0 += cpu.saturating_sub(cpu_before);
        entry.1 += scheduled.saturating_sub(scheduled_before);
    }
    threads.retain(|_, (cpu, _)| !cpu.is_zero());
    Load {
        elapsed,
        rate: runs() as f64 / elapsed.as_secs_f64(),
        cpu: threads.values().map(|(cpu, _)| *cpu).sum(),
        threads,
    }
}

/// The median, the lowest and the highest of `values` (not empty).
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

/// Write `done` and their `events` into a fresh store on one thread, as the server's
/// writer would: each execution's start, its node events, its record, in batches of
/// `WASP_BENCH_STORE_BATCH` (48) writes.
fn store_alone(events: &[wasp_runtime::trace::Event], done: &[wasp_runtime::trace::Execution]) {
    let batch = knob("WASP_BENCH_STORE_BATCH", 48);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path(), "alone.db");
    let mut by_execution: std::collections::HashMap<&str, Vec<&wasp_runtime::trace::Event>> =
        Default::default();
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
            .remove(execution.header.id.as_str())
            .unwrap_or_default();
        writes.extend(events.into_iter().map(|e| Write::Event(e.clone())));
        writes.push(Write::Finish(Box::new(execution.clone())));
    }
    let started = Instant::now();
    for chunk in writes.chunks(batch) {
        store.write(chunk).expect("written");
    }
    let elapsed = started.elapsed();
    println!(
        "the store alone, one thread  {} executions ({} writes, {batch} a batch) in {elapsed:>8.1?}  \
         {:.0} µs an execution",
        done.len(),
        writes.len(),
        elapsed.as_secs_f64() * 1e6 / done.len() as f64
    );
}

/// The store the bench writes: `WASP_BENCH_DB`'s PostgreSQL database (emptied first),
/// else a new SQLite file `name` in `dir`.
fn open_store(dir: &std::path::Path, name: &str) -> Arc<dyn Store> {
    let location = match std::env::var("WASP_BENCH_DB") {
        Ok(url) => {
            let status = std::process::Command::new("psql")
                .args([
                    url.as_str(),
                    "-q",
                    "-c",
                    "DROP SCHEMA public CASCADE; CREATE SCHEMA public",
                ])
                .status()
                .expect("psql runs");
            assert!(status.success(), "emptying {url} failed");
            url.parse().expect("a location")
        }
        Err(_) => Location::Sqlite(dir.join(name)),
    };
    println!("store: {location}");
    location.open().expect("store")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let telemetry = wasp_runtime::telemetry::init(None, false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // A fresh cache compiles the components (a minute on 2 cores); one kept in
        // `WASP_BENCH_CACHE` is reused by later runs.
        let cache = tempfile::tempdir().expect("temp dir");
        let cache_dir = std::env::var_os("WASP_BENCH_CACHE").map_or_else(|| cache.path().to_owned(), PathBuf::from);
        let host = Host::new(HostConfig {
            cache_dir: Some(cache_dir),
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
        let db = tempfile::tempdir().expect("temp dir");
        let store = open_store(db.path(), "bench.db");
        let service = Arc::new(Service::new(store, Arc::clone(&runner)));
        // What the runs produce, with their events, for the store alone (untimed).
        {
            let (events, mut produced) = tokio::sync::mpsc::unbounded_channel();
            let done = run_all(|i| {
                let start = Start {
                    events: Some(events.clone()),
                    ..Start::new(trigger(i))
                };
                engine::execute(Arc::clone(&runner), Arc::clone(&playbook), start)
            })
            .await;
            drop(events);
            let mut writes = Vec::new();
            while let Some(event) = produced.recv().await {
                writes.push(event);
            }
            store_alone(&writes, &done);
        }
        // Rounds of the same runs without and with the store, one after the other, so
        // that a noisy neighbour slows both sides of a round alike; the median round is
        // the figure.
        let (mut added, mut best, mut best_stored) = (Vec::new(), Duration::MAX, Duration::MAX);
        let mut cpu_added = Vec::new();
        let percent_more = |with: Duration, without: Duration| {
            (with.as_secs_f64() / without.as_secs_f64() - 1.0) * 100.0
        };
        for round in 1..=rounds() {
            println!("round {round} of {}", rounds());
            let bare = load(|i| {
                let runner = Arc::clone(&runner);
                let playbook = Arc::clone(&playbook);
                async move {
                    let execution = engine::execute(runner, playbook, Start::new(trigger(i))).await;
                    assert_eq!(execution.status, ExecutionStatus::Completed);
                }
            })
            .await;
            println!(
                "in process, no store         {} runs in {:>8.1?}  {:>7.0} runs/s",
                runs(),
                bare.elapsed,
                bare.rate
            );
            bare.print_cpu();
            let stored = load(|i| {
                let service = Arc::clone(&service);
                async move {
                    let started = service
                        .run(None, "three-steps", trigger(i), TriggerType::Manual, None, Report::End)
                        .await
                        .expect("started");
                    let (_, execution) = started.done.await.expect("ended").expect("recorded");
                    assert_eq!(execution.status, ExecutionStatus::Completed);
                }
            })
            .await;
            let adds = percent_more(stored.elapsed, bare.elapsed);
            println!(
                "in process, with the store   {} runs in {:>8.1?}  {:>7.0} runs/s  \
                 (persistence adds {adds:.0}%)",
                runs(),
                stored.elapsed,
                stored.rate
            );
            stored.print_cpu();
            added.push(adds);
            // Zero where `/proc` does not tell.
            if !bare.cpu.is_zero() {
                cpu_added.push(percent_more(stored.cpu, bare.cpu));
            }
            best = best.min(bare.elapsed);
            best_stored = best_stored.min(stored.elapsed);
        }
        let (median, lowest, highest) = spread(added);
        println!(
            "persistence adds {median:.0}% (the median of {} rounds; from {lowest:.0}% to \
             {highest:.0}%); the fastest round with the store took {:.0}% longer than the \
             fastest without",
            rounds(),
            percent_more(best_stored, best)
        );
        if !cpu_added.is_empty() {
            let rounds = cpu_added.len();
            let (median, lowest, highest) = spread(cpu_added);
            println!(
                "the CPU time of an execution, all threads: persistence adds {median:.0}% (the \
                 median of {rounds} rounds; from {lowest:.0}% to {highest:.0}%)"
            );
        }

        if std::env::var_os("WASP_BENCH_NO_HTTP").is_some() {
            return;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(api::serve(listener, Arc::clone(&service), api::Edge::default(), std::future::pending()));
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
                    .args(["-t", "2", "-c", &concurrency().to_string(), "-d", "10s", "--latency", "-s"])
                    .arg(&script)
                    .arg(&url)
                    .output()
            }
        };
        let wrk = tokio::task::spawn_blocking(command).await.expect("wrk's thread");
        match wrk {
            Ok(output) => {
                println!("over HTTP: wrk -t 2 -c {} -d 10s --latency POST {url}", concurrency());
                print!("{}", String::from_utf8_lossy(&output.stdout));
            }
            Err(e) => println!("over HTTP: skipped, `wrk` could not run ({e}); apt-get install wrk"),
        }
        server.abort();
    });
    telemetry.shutdown();
}
