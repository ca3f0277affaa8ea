//! Hostile components: each misbehaviour ends its step with the right classified
//! error within its limit, and the same host then serves a normal call.

use std::sync::Arc;
use std::time::Duration;

use wasp_runtime::host::{Call, FailureKind, Limits, Settings, StepReport, StepStatus};
use wasp_runtime::trace::LogLevel;

use crate::common::{hostile, invoke};

/// Run `action` of the hostile guest with `input` and `limits`.
async fn run(action: &str, input: &str, limits: Limits) -> StepReport {
    let app = hostile().await;
    invoke(
        &app,
        Call {
            limits,
            ..Call::new(action, input)
        },
    )
    .await
}

/// The failure kind and message of a report that must have failed.
fn failed(report: &StepReport) -> (FailureKind, &str) {
    assert_eq!(report.status, StepStatus::Failed, "{report:#?}");
    assert!(report.output.is_none());
    let error = report.error.as_ref().expect("a failed step has an error");
    (error.kind, error.message.as_str())
}

/// After a hostile call, the host still serves an ordinary one.
async fn assert_host_still_serves() {
    let report = run("echo", r#"{"still":"alive"}"#, Limits::default()).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{report:#?}");
    assert_eq!(report.output, Some(serde_json::json!({"still": "alive"})));
}

fn limits(timeout_ms: u64, memory_mib: usize) -> Limits {
    Limits {
        timeout: Duration::from_millis(timeout_ms),
        memory_bytes: memory_mib << 20,
        ..Limits::default()
    }
}

#[tokio::test]
async fn spinning_forever_times_out() {
    let report = run("spin", "{}", limits(200, 64)).await;
    assert_eq!(
        failed(&report),
        (FailureKind::Timeout, "the step ran past its 200ms deadline")
    );
    assert!(report.error.as_ref().unwrap().retryable);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn sleeping_in_a_host_call_times_out() {
    // `sleep` waits inside WASI's poll, a host call that epochs cannot interrupt.
    let report = run("sleep", r#"{"ms":60000}"#, limits(200, 64)).await;
    assert_eq!(failed(&report).0, FailureKind::Timeout);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn allocating_forever_hits_the_memory_limit() {
    let report = run("alloc", "{}", limits(10_000, 32)).await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::MemoryLimit);
    assert!(message.ends_with("over its 32 MiB limit"), "{message}");
    assert_host_still_serves().await;
}

#[tokio::test]
async fn recursing_forever_overflows_the_stack() {
    let report = run("recurse", "{}", Limits::default()).await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::StackOverflow, "{message}");
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_panic_is_classified_with_its_message() {
    let report = run("panic", r#"{"n":7}"#, Limits::default()).await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::Panic);
    assert!(
        message.starts_with("the app panicked at tests/guests/hostile/src/lib.rs:"),
        "{message}"
    );
    assert!(
        message.ends_with(r#"deliberate panic on input {"n":7}"#),
        "{message}"
    );
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_100_mb_output_is_refused_not_truncated() {
    // With room to build it, the output reaches the host and is refused by size.
    let report = run("big-output", r#"{"n":100000000}"#, limits(30_000, 512)).await;
    assert_eq!(
        failed(&report),
        (
            FailureKind::InvalidOutput,
            "the output is 95.4 MiB, over the 16 MiB limit"
        )
    );
    // Under the default memory limit the app cannot even build it.
    let report = run("big-output", r#"{"n":100000000}"#, Limits::default()).await;
    assert_eq!(failed(&report).0, FailureKind::MemoryLimit);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_million_log_lines_are_capped_and_counted() {
    let report = run("log-flood", r#"{"n":1000000}"#, Limits::default()).await;
    assert_eq!(report.status, StepStatus::Succeeded);
    assert_eq!(report.logs.len(), 10_000);
    assert_eq!(report.logs[9_999].message, "line 9999");
    assert_eq!(report.truncated.log_lines_dropped, 990_000);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_stdout_flood_is_capped_and_counted_without_failing_the_guest() {
    let report = run("stdout-flood", r#"{"n":52428800}"#, Limits::default()).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{report:#?}");
    assert_eq!(report.stdout.len(), 1 << 20);
    assert_eq!(
        report.truncated.stdout_bytes_dropped,
        (50 << 20) - (1 << 20)
    );
    assert_eq!(report.stderr, "done flooding");
    assert_host_still_serves().await;
}

#[tokio::test]
async fn the_filesystem_is_not_there() {
    let report = run("read-file", "{}", Limits::default()).await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::AppError);
    assert!(message.starts_with("reading /etc/passwd: "), "{message}");
    assert_eq!(report.error.unwrap().code.as_deref(), Some("forbidden"));
    assert_host_still_serves().await;
}

#[tokio::test]
async fn the_environment_and_arguments_are_empty() {
    let report = run("read-env", "{}", Limits::default()).await;
    assert_eq!(
        report.output,
        Some(serde_json::json!({"vars": 0, "args": 0}))
    );
    assert_host_still_serves().await;
}

#[tokio::test]
async fn sockets_and_name_lookups_are_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let report = run(
        "open-socket",
        &format!(r#"{{"port":{port}}}"#),
        Limits::default(),
    )
    .await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::AppError);
    assert!(
        message.starts_with("connecting to 127.0.0.1: "),
        "{message}"
    );
    let accepted = listener.accept();
    assert_eq!(
        accepted.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing connected to the listener"
    );

    let report = run("resolve-name", "{}", Limits::default()).await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::AppError);
    assert!(message.starts_with("resolving localhost: "), "{message}");
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_50_mb_input_fits_a_large_limit_and_fails_a_small_one() {
    let input = format!(r#"{{"blob":"{}"}}"#, "a".repeat(50 << 20));
    let report = run("input-size", &input, limits(30_000, 128)).await;
    assert_eq!(
        report.output,
        Some(serde_json::json!({"bytes": input.len()}))
    );
    let report = run("input-size", &input, limits(30_000, 32)).await;
    assert_eq!(failed(&report).0, FailureKind::MemoryLimit);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn invalid_json_and_undeclared_pathways_are_invalid_output() {
    let report = run("invalid-json", "{}", Limits::default()).await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::InvalidOutput);
    assert!(message.starts_with("the output is not JSON: "), "{message}");

    let report = run("bad-pathway", "{}", Limits::default()).await;
    assert_eq!(
        failed(&report),
        (
            FailureKind::InvalidOutput,
            "the app took pathway `sideways`, but action `bad-pathway` declares no pathways"
        )
    );
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_killed_step_stops_and_says_so() {
    let app = hostile().await;
    let call = Call {
        limits: limits(30_000, 64),
        ..Call::new("spin", "{}")
    };
    let kill = call.kill.clone();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        kill.cancel();
    });
    let report = invoke(&app, call).await;
    killer.await.unwrap();
    assert_eq!(
        failed(&report),
        (FailureKind::Killed, "the step was killed")
    );
    assert_host_still_serves().await;
}

#[tokio::test]
async fn secrets_never_appear_in_the_report() {
    let secret = "vt-9f8e7d6c5b4a";
    let app = hostile().await;
    let call = Call {
        level: LogLevel::Trace,
        settings: Arc::new(
            Settings::new()
                .with("region", "eu")
                .with_secret("api_key", secret),
        ),
        ..Call::new("leak-secret", "{}")
    };
    let report = invoke(&app, call).await;
    let recorded = serde_json::to_string(&report).unwrap();
    assert!(!recorded.contains(secret), "{recorded}");
    assert_eq!(report.error.unwrap().message, "the service refused key ***");
    assert_eq!(report.logs[0].message, "using key ***");
    assert_eq!(report.stdout, "stdout key=***\n");
    assert_eq!(report.stderr, "stderr key=***\n");

    // Config reaches the guest, and only the secret is masked in its output.
    let call = Call {
        settings: Arc::new(
            Settings::new()
                .with("region", "eu")
                .with_secret("api_key", secret),
        ),
        ..Call::new("config", "{}")
    };
    let report = invoke(&app, call).await;
    assert_eq!(
        report.output,
        Some(serde_json::json!({"api_key": "***", "region": "eu"}))
    );
}

#[tokio::test]
async fn many_hostile_steps_at_once_leave_the_host_serving() {
    let mut steps = Vec::new();
    for action in ["spin", "alloc", "recurse", "panic", "spin", "alloc"] {
        steps.push(tokio::spawn(async move {
            run(action, "{}", limits(300, 16)).await
        }));
    }
    let mut kinds = Vec::new();
    for step in steps {
        kinds.push(failed(&step.await.unwrap()).0);
    }
    assert_eq!(
        kinds,
        [
            FailureKind::Timeout,
            FailureKind::MemoryLimit,
            FailureKind::StackOverflow,
            FailureKind::Panic,
            FailureKind::Timeout,
            FailureKind::MemoryLimit
        ]
    );
    assert_host_still_serves().await;
}
