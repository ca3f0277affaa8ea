//! Hostile components: each misbehaviour ends its step with the right classified
//! error within its limit, and the same host then serves a normal call.

use std::sync::Arc;
use std::time::Duration;

use wasp_runtime::host::{Call, Limits, Settings};
use wasp_runtime::trace::LogLevel;
use wasp_runtime::trace::{FailureKind, StepReport, StepStatus};

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

/// Run `action` of the hostile guest with `input`, `limits` and `settings`.
async fn run_with(action: &str, input: &str, limits: Limits, settings: Settings) -> StepReport {
    let app = hostile().await;
    invoke(
        &app,
        Call {
            limits,
            settings: Arc::new(settings),
            ..Call::new(action, input)
        },
    )
    .await
}

/// The message of a cut log value or message.
fn cut(kept: &str) -> String {
    format!("{kept} …[truncated]")
}

// Issue 21, item 8: log fields cost the host memory, empty ones too, and were neither
// counted nor capped (1M empty fields × 20 calls reached 1.25 GB).
#[tokio::test]
async fn empty_log_fields_are_capped_per_line_and_counted() {
    let report = run(
        "empty-log-fields",
        r#"{"fields":100000,"calls":20}"#,
        Limits::default(),
    )
    .await;
    assert_eq!(report.status, StepStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.logs.len(), 20);
    for line in &report.logs {
        assert_eq!(line.fields.len(), 64 + 1);
        assert_eq!(
            line.fields[64],
            ("wasp.fields_dropped".to_owned(), (100_000 - 64).to_string())
        );
    }
    assert_eq!(report.truncated.log_lines_cut, 20);
    assert_host_still_serves().await;
}

// Issue 21, item 8: the per-line cap applied to the message only; a 3 MiB field value
// was kept whole.
#[tokio::test]
async fn a_3_mib_log_field_is_cut_to_its_cap() {
    let report = run("big-log-field", r#"{"n":3145728}"#, Limits::default()).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{:?}", report.error);
    assert_eq!(
        report.logs[0].fields,
        [("blob".to_owned(), cut(&"v".repeat(16 << 10)))]
    );
    assert_eq!(report.truncated.log_lines_cut, 1);
    assert_host_still_serves().await;
}

fn resource_limits(max_resources: usize, max_resource_bytes: usize) -> Limits {
    Limits {
        max_resources,
        max_resource_bytes,
        ..Limits::default()
    }
}

// Issue 21, item 8: header maps are host memory outside the guest's cap (8,000 of
// 127 KiB reached 1 GB at `--memory 16MiB`).
#[tokio::test]
async fn holding_header_maps_hits_the_resource_limit() {
    let report = run(
        "hold-fields",
        r#"{"n":1000,"bytes":100000}"#,
        resource_limits(10_000, 2 << 20),
    )
    .await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::MemoryLimit, "{message}");
    assert!(message.starts_with("the app held "), "{message}");
    assert!(
        message.ends_with(
            " of host memory in resources (HTTP headers, request bodies), over its 2 MiB limit"
        ),
        "{message}"
    );
    assert_host_still_serves().await;
}

// Issue 21, item 8: unsent request bodies held 2 MiB each (500 reached 1.1 GB).
#[tokio::test]
async fn unsent_request_bodies_hit_the_resource_limit() {
    let report = run(
        "hold-bodies",
        r#"{"n":100}"#,
        resource_limits(10_000, 4 << 20),
    )
    .await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::MemoryLimit, "{message}");
    assert!(message.ends_with("over its 4 MiB limit"), "{message}");
    // Under the limit, bodies are held as far as the host buffers them.
    let report = run(
        "hold-bodies",
        r#"{"n":4}"#,
        resource_limits(10_000, 4 << 20),
    )
    .await;
    assert_eq!(
        report.output,
        Some(serde_json::json!({"held": 4})),
        "{:?}",
        report.error
    );
    assert_host_still_serves().await;
}

// Issue 21, items 8 and 10: the resource table allowed 1M handles, and a full table
// was reported as the host's error.
#[tokio::test]
async fn holding_too_many_handles_hits_the_handle_limit() {
    let report = run(
        "hold-handles",
        r#"{"n":20000}"#,
        resource_limits(1_000, 16 << 20),
    )
    .await;
    assert_eq!(
        failed(&report),
        (
            FailureKind::MemoryLimit,
            "the app held more than 1000 resource handles at once"
        )
    );
    let report = run(
        "hold-handles",
        r#"{"n":900}"#,
        resource_limits(1_000, 16 << 20),
    )
    .await;
    assert_eq!(report.output, Some(serde_json::json!({"held": 900})));
    assert_host_still_serves().await;
}

// Issue 21, item 8: a 30 MB error message was printed and stored whole.
#[tokio::test]
async fn a_huge_error_message_is_cut_and_says_so() {
    let report = run("big-error", r#"{"n":1048576}"#, Limits::default()).await;
    let (kind, message) = failed(&report);
    assert_eq!(kind, FailureKind::AppError);
    assert_eq!(
        message,
        format!(
            "{} …[truncated: the message was 1 MiB, over the 64 KiB limit]",
            "e".repeat(64 << 10)
        )
    );
    assert_host_still_serves().await;
}

// Issue 21, item 8: a 30 MB undeclared pathway was copied into the error.
#[tokio::test]
async fn a_long_pathway_is_refused_and_named_by_its_head() {
    let report = run("long-pathway", r#"{"n":1048576}"#, Limits::default()).await;
    assert_eq!(
        failed(&report),
        (
            FailureKind::InvalidOutput,
            format!(
                "the app took a pathway of 1 MiB, over the 256-byte limit: `{}…`",
                "p".repeat(64)
            )
            .as_str()
        )
    );
    assert_host_still_serves().await;
}

// Issue 21, item 8: a 15 MiB output of `[0,0,…]` cost 511 MB of host memory to parse.
#[tokio::test]
async fn an_output_of_too_many_values_is_refused_before_parsing() {
    let report = run("zeros", r#"{"n":7864320}"#, Limits::default()).await;
    assert_eq!(
        failed(&report),
        (
            FailureKind::InvalidOutput,
            "the output holds more than 1000000 JSON values (up to 7864321), over the limit"
        )
    );
    let small = Limits {
        max_output_values: 1_000,
        ..Limits::default()
    };
    // The document and 999 elements: exactly at the limit.
    let report = run("zeros", r#"{"n":999}"#, small).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{:?}", report.error);
    let report = run("zeros", r#"{"n":1000}"#, small).await;
    assert_eq!(failed(&report).0, FailureKind::InvalidOutput);
    assert_host_still_serves().await;
}

// Issue 21, item 10: a `*` action returned the secret as its pathway, and a numeric
// secret output as a JSON number was not masked.
#[tokio::test]
async fn secrets_are_masked_in_pathways_and_numbers() {
    let secret = "vt-9f8e7d6c5b4a";
    let settings = Settings::new()
        .with_secret("api_key", secret)
        .with_secret("pin", "8675309");
    let report = run_with("secret-pathway", "{}", Limits::default(), settings.clone()).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.pathway.as_deref(), Some("***"));
    let recorded = serde_json::to_string(&report).unwrap();
    assert!(!recorded.contains(secret), "{recorded}");

    let report = run_with("number-setting", "{}", Limits::default(), settings).await;
    assert_eq!(report.output, Some(serde_json::json!({"pin": "***"})));
    assert_host_still_serves().await;
}

/// Counts the ERROR events emitted on this thread while it is the default subscriber
/// (a `#[tokio::test]` runs its steps on the test's own thread).
struct ErrorEvents(Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

// Issue 21, item 10: each of these was reported as `host_error`, which is kept for
// wasp's own failures, with an ERROR log line.
#[tokio::test]
async fn misusing_wasi_is_the_apps_fault_not_the_hosts() {
    use tracing_subscriber::layer::SubscriberExt;
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(ErrorEvents(Arc::clone(&errors))),
    );
    for (action, input, expected) in [
        (
            "exit",
            "{}",
            "the app called exit(0) instead of returning from its action",
        ),
        (
            "empty-poll",
            "{}",
            "the host refused what the app passed it: empty poll list",
        ),
        (
            "forged-handle",
            "{}",
            "the host refused what the app passed it: unknown handle index 32767",
        ),
        (
            "big-blocking-write",
            r#"{"n":5000}"#,
            "the host refused what the app passed it: Buffer too large for blocking-write-and-flush (expected at most 4096)",
        ),
        (
            "random-flood",
            r#"{"n":67108865}"#,
            "the host refused what the app passed it: requested len 67108865 exceeds limit 67108864",
        ),
        // The canonical ABI checks strings as the host lifts them: a guest can send
        // bytes that are not UTF-8 only by lying about a string, and the call fails.
        (
            "invalid-utf8-log",
            "{}",
            "the host refused what the app passed it: invalid utf-8 sequence of 1 bytes from index 1",
        ),
    ] {
        let report = run(action, input, Limits::default()).await;
        let (kind, message) = failed(&report);
        assert_eq!((kind, message), (FailureKind::Trap, expected), "{action}");
    }
    assert_eq!(
        errors.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no ERROR line"
    );
    assert_host_still_serves().await;
}

// Issue 21, item 10: a 200 MB error message was reported as `host_error`. wasmtime
// 48.0.10 bounds what one host call may copy out of the guest (128 MiB of "hostcall
// fuel"), and running out of it is the app's doing.
#[tokio::test]
async fn a_200_mb_error_message_is_the_apps_fault() {
    let report = run("big-error", r#"{"n":200000000}"#, limits(30_000, 512)).await;
    assert_eq!(
        failed(&report),
        (
            FailureKind::Trap,
            "the host refused what the app passed it: too much data is being copied between the host and the guest: fuel allocated for hostcalls has been exhausted"
        )
    );
    assert_host_still_serves().await;
}
