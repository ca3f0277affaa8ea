//! Snapshots of whole traces as `wasp run --output json` prints them, so that a change
//! to what an execution records shows up in review. Ids, times and durations change on
//! every run and are filtered; step runs are sorted, since concurrent steps end in any
//! order.

use serde_json::Value;

use crate::cli::{sample, stderr, stdout_json, wasp};

/// The trace of sample `name` run with `extra` arguments, steps in a stable order.
fn trace(name: &str, extra: &[&str]) -> Value {
    let [playbook, input, assets] = sample(name);
    let mut args = vec![
        "run", &playbook, "--input", &input, "--assets", &assets, "--output", "json",
    ];
    args.extend(extra);
    let output = wasp(&args);
    assert!(output.status.code().is_some(), "{}", stderr(&output));
    let mut execution = stdout_json(&output);
    sort_steps(&mut execution);
    execution
}

fn sort_steps(execution: &mut Value) {
    if let Some(steps) = execution.get_mut("steps").and_then(Value::as_array_mut) {
        steps.sort_by_key(|s| {
            (
                s["node"].as_str().map(str::to_owned),
                s["iteration"].as_u64(),
                s["attempt"].as_u64(),
            )
        });
    }
    if let Some(children) = execution.get_mut("children").and_then(Value::as_array_mut) {
        children.iter_mut().for_each(sort_steps);
    }
}

macro_rules! assert_trace {
    ($name:expr, $trace:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"ex_[0-9A-HJKMNP-TV-Z]{26}", "[execution id]"),
                (r#""\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z""#, "\"[time]\""),
                (r#""duration_us": \d+"#, "\"duration_us\": \"[µs]\""),
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_json_snapshot!($name, $trace);
        });
    };
}

#[test]
fn phishing_triage_at_info() {
    assert_trace!(
        "phishing-triage-info",
        trace("phishing-triage", &["--log-level", "info"])
    );
}

#[test]
fn parent_child_at_debug() {
    assert_trace!("parent-child-debug", trace("parent-child", &[]));
}

#[test]
fn partial_failure_at_debug() {
    assert_trace!("partial-failure-debug", trace("partial-failure", &[]));
}
