//! Playbooks end to end, in process: validation at the node bound, engine overhead per
//! step, a 10-node linear playbook, a 50-node fan-out / fan-in, steps per second with
//! concurrent executions, and how late the reaper ends an execution whose step spins.
//!
//! `cargo bench --bench playbook`. Results and the command are recorded in
//! BENCHMARKS.md. This is not a test: nothing here asserts a time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wasp_runtime::engine::{self, Start, StepCall, StepRunner};
use wasp_runtime::host::{Host, HostConfig, Registry};
use wasp_runtime::playbook::{AppInfo, Catalog, Playbook, PlaybookSpec};
use wasp_runtime::runner::HostRunner;
use wasp_runtime::trace::ExecutionStatus;
use wasp_runtime::trace::StepReport;

struct Apps(Arc<Registry>);

impl Catalog for Apps {
    fn app(&self, name: &str) -> Option<&AppInfo> {
        self.0.get(name).map(|app| &app.info)
    }

    fn has_playbook(&self, _: &str) -> bool {
        false
    }
}

/// A runner that does no work: what is left is the engine's own cost.
struct NoopRunner;

impl StepRunner for NoopRunner {
    async fn run(&self, call: StepCall) -> StepReport {
        StepReport::success(call.input)
    }
}

fn linear(nodes: usize) -> String {
    let mut text =
        "id: linear\nname: linear\nlog_level: info\ntrigger: { type: manual }\nnodes:\n".to_owned();
    text.push_str("  n0: { app: echo, input: { v: \"${trigger.v}\" } }\n");
    for i in 1..nodes {
        text.push_str(&format!(
            "  n{i}: {{ app: echo, input: {{ v: \"${{n{}.output.v}}\" }} }}\n",
            i - 1
        ));
    }
    text.push_str("edges:\n");
    for i in 1..nodes {
        text.push_str(&format!("  - n{} -> n{i}\n", i - 1));
    }
    text
}

fn fan(width: usize) -> String {
    let mut text =
        "id: fan\nname: fan\nlog_level: info\nconcurrency: 64\ntrigger: { type: manual }\nnodes:\n"
            .to_owned();
    text.push_str("  start: { app: echo, input: { v: \"${trigger.v}\" } }\n");
    for i in 0..width {
        text.push_str(&format!(
            "  b{i}: {{ app: echo, input: {{ v: \"${{start.output.v}}\", i: {i} }} }}\n"
        ));
    }
    text.push_str("  end: { app: echo, input: { v: 1 } }\nedges:\n");
    for i in 0..width {
        text.push_str(&format!("  - start -> b{i}\n  - b{i} -> end\n"));
    }
    text
}

fn playbook(text: &str, apps: &Apps) -> Arc<Playbook> {
    let spec = PlaybookSpec::parse("bench.yaml", text).expect("parses");
    Arc::new(Playbook::validate("bench.yaml", spec, apps).expect("valid"))
}

fn median(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 95 / 100],
    )
}

async fn time<R: StepRunner>(
    runner: &Arc<R>,
    playbook: &Arc<Playbook>,
    runs: usize,
) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs + runs / 10 {
        let started = Instant::now();
        let execution = engine::execute(
            Arc::clone(runner),
            Arc::clone(playbook),
            Start::new(json!({"v": 1})),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(execution.status, ExecutionStatus::Completed);
        if i >= runs / 10 {
            samples.push(elapsed);
        }
    }
    median(samples)
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
        let guests = PathBuf::from(env!("WASP_GUEST_DIR"));
        let mut registry = Registry::default();
        registry.add(host.load(&guests.join("wasp_test_echo.wasm")).await.expect("echo"));
        registry.add(host.load(&guests.join("wasp_test_hostile.wasm")).await.expect("hostile"));
        let registry = Arc::new(registry);
        let apps = Apps(Arc::clone(&registry));

        // Validation at the node bound: parsing and checking a 5,000-node chain (each
        // node reading the one before) and fan-out/in, and refusing 100,000 nodes.
        for (name, text) in [
            ("5,000-node chain", linear(wasp_runtime::playbook::MAX_NODES)),
            ("5,000-node fan-out/in", fan(wasp_runtime::playbook::MAX_NODES - 2)),
        ] {
            let mut samples = Vec::new();
            for _ in 0..20 {
                let started = Instant::now();
                drop(playbook(&text, &apps));
                samples.push(started.elapsed());
            }
            let (m, p) = median(samples);
            println!("parse and validate, {name:<22} median {m:>9.1?}  p95 {p:>9.1?}");
        }
        // The YAML parser's own budget (250,000 YAML nodes) refuses this one before
        // validation does.
        let huge = linear(100_000);
        let started = Instant::now();
        let refused = match PlaybookSpec::parse("bench.yaml", &huge) {
            Ok(spec) => Playbook::validate("bench.yaml", spec, &apps)
                .err()
                .map(|_| "by validation"),
            Err(_) => Some("by the parser"),
        };
        println!(
            "parse and refuse a 100,000-node chain     {:>9.1?}  ({} bytes of YAML, refused {})",
            started.elapsed(),
            huge.len(),
            refused.unwrap_or("by nothing")
        );

        let line = playbook(&linear(10), &apps);
        let fan_in = playbook(&fan(48), &apps);
        let noop = Arc::new(NoopRunner);
        let (m, p) = time(&noop, &line, 2_000).await;
        println!("engine only, 10-node linear       median {m:>9.1?}  p95 {p:>9.1?}  ({:.1?} a step)", m / 10);
        let (m, p) = time(&noop, &fan_in, 1_000).await;
        println!("engine only, 50-node fan-out/in   median {m:>9.1?}  p95 {p:>9.1?}  ({:.1?} a step)", m / 50);

        let real = Arc::new(HostRunner::new(host.clone(), Arc::clone(&registry), Arc::default()));
        let (m, p) = time(&real, &line, 1_000).await;
        println!("real steps, 10-node linear        median {m:>9.1?}  p95 {p:>9.1?}");
        let (m, p) = time(&real, &fan_in, 300).await;
        println!("real steps, 50-node fan-out/in    median {m:>9.1?}  p95 {p:>9.1?}");

        // Throughput: executions of the fan-out playbook, 8 at a time, on 2 cores.
        let executions = 200;
        let started = Instant::now();
        let mut running = tokio::task::JoinSet::new();
        for i in 0..executions {
            let real = Arc::clone(&real);
            let fan_in = Arc::clone(&fan_in);
            running.spawn(async move {
                engine::execute(real, fan_in, Start::new(json!({"v": i}))).await
            });
            if running.len() >= 8 {
                running.join_next().await;
            }
        }
        while running.join_next().await.is_some() {}
        let elapsed = started.elapsed();
        println!(
            "throughput, 50-node fan-out/in     {:.0} steps/s ({executions} executions, 8 at a time, {elapsed:.2?})",
            (executions * 50) as f64 / elapsed.as_secs_f64()
        );

        // The reaper: how long past max_runtime an execution with a spinning step ends.
        let runaway = playbook(
            "id: runaway\nname: runaway\nmax_runtime: 50ms\ntrigger: { type: manual }\nnodes:\n  spin: { app: hostile, action: spin, timeout: 1h }\n",
            &apps,
        );
        let mut overshoot = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            let execution = engine::execute(Arc::clone(&real), Arc::clone(&runaway), Start::new(json!({}))).await;
            assert_eq!(execution.status, ExecutionStatus::Failed);
            overshoot.push(started.elapsed().saturating_sub(Duration::from_millis(50)));
        }
        let (m, p) = median(overshoot);
        println!("reaper overshoot past a 50 ms max_runtime  median {m:>9.1?}  p95 {p:>9.1?}");
    });
}
