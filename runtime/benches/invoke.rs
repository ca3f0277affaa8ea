//! Per-invocation overhead of the host, against a process per call.
//!
//! `cargo bench --bench invoke` runs, in one process:
//! - a trivial action (`echo` of `{}`, from the smallest guest, `tests/guests/echo`) and `ioc-extract` on 10 KB of text, each with
//!   the pooling allocator and with on-demand allocation: the whole of
//!   `Host::invoke` (fresh store, WASI context, instantiation, call, capture, report);
//! - the same logic as a fresh `python3` process per call, the way today's SOAR
//!   platforms run app steps.
//!
//! It prints the median and p95 of each and the ratios. Results and the command are
//! recorded in BENCHMARKS.md. This is not a test: nothing here asserts a time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasp_runtime::host::{Allocator, App, Call, Host, HostConfig};
use wasp_runtime::trace::StepStatus;

const WARMUP: usize = 200;
const ITERATIONS: usize = 5_000;
const PROCESS_ITERATIONS: usize = 40;

struct Stats {
    median: Duration,
    p95: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    Stats {
        median: samples[samples.len() / 2],
        p95: samples[samples.len() * 95 / 100],
    }
}

fn report(name: &str, stats: &Stats) {
    println!(
        "{name:<44} median {:>10.1?}  p95 {:>10.1?}",
        stats.median, stats.p95
    );
}

async fn measure_host(
    host: &Host,
    app: &App,
    action: &str,
    input: &str,
    iterations: usize,
) -> Stats {
    for _ in 0..WARMUP {
        let report = host
            .invoke(app, Call::new(action, input))
            .await
            .expect("call");
        assert_eq!(report.status, StepStatus::Succeeded, "{report:?}");
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let report = host
            .invoke(app, Call::new(action, input))
            .await
            .expect("call");
        samples.push(started.elapsed());
        std::hint::black_box(report);
    }
    stats(samples)
}

/// The interpreter `python3` runs, resolved once: on a machine where `python3` on the
/// PATH is a version manager's shim (pyenv's), spawning the shim costs ~90 ms that no
/// platform running Python steps pays.
fn python() -> PathBuf {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    PathBuf::from(String::from_utf8(output.stdout).expect("a path").trim())
}

fn measure_process(python: &Path, script: &Path, input: &str) -> Stats {
    let mut samples = Vec::with_capacity(PROCESS_ITERATIONS);
    for _ in 0..PROCESS_ITERATIONS {
        let started = Instant::now();
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("python3 finishes");
        samples.push(started.elapsed());
        assert!(output.status.success());
    }
    stats(samples)
}

fn ten_kb_of_text() -> String {
    let paste = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/analyst-paste.txt"),
    )
    .expect("fixture");
    let mut text = String::new();
    while text.len() < 10 * 1024 {
        text.push_str(&paste);
    }
    text.truncate(10 * 1024);
    text
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list of tests; there are none.
    }
    let guest_dir = PathBuf::from(env!("WASP_GUEST_DIR"));
    let apps_dir = PathBuf::from(env!("WASP_EXAMPLE_APPS_DIR"));
    let trivial = guest_dir.join("wasp_test_echo.wasm");
    let ioc = apps_dir.join("ioc-extract.wasm");
    let text_input = serde_json::json!({ "text": ten_kb_of_text() }).to_string();
    let cache = tempfile::tempdir().expect("temp dir");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline");

    let mut results = Vec::new();
    for allocator in [Allocator::Pooling, Allocator::OnDemand] {
        let host = Host::new(HostConfig {
            cache_dir: Some(cache.path().to_owned()),
            allocator,
            ..HostConfig::default()
        })
        .expect("host");
        let trivial_app: Arc<App> = host.load(&trivial).await.expect("trivial app");
        let ioc_app = host.load(&ioc).await.expect("ioc-extract");
        let t = measure_host(&host, &trivial_app, "echo", "{}", ITERATIONS).await;
        report(&format!("trivial action, {allocator:?}"), &t);
        let i = measure_host(&host, &ioc_app, "extract", &text_input, ITERATIONS / 10).await;
        report(&format!("ioc-extract 10 KB, {allocator:?}"), &i);
        results.push((allocator, t, i));
    }
    let python = python();
    println!("the process per call runs {}", python.display());
    let py_trivial = measure_process(&python, &scripts.join("echo.py"), "{}");
    report("trivial action, python3 process per call", &py_trivial);
    let py_ioc = measure_process(&python, &scripts.join("ioc_extract.py"), &text_input);
    report("ioc-extract 10 KB, python3 process per call", &py_ioc);

    for (allocator, trivial, ioc) in &results {
        println!(
            "{allocator:?}: trivial {:.0}x faster than a process per call; ioc-extract {:.1}x",
            py_trivial.median.as_secs_f64() / trivial.median.as_secs_f64(),
            py_ioc.median.as_secs_f64() / ioc.median.as_secs_f64(),
        );
    }
}
