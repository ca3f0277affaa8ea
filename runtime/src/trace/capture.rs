//! The capture policy: what an execution's level keeps of each step run (inputs,
//! outputs and OS logs only at DEBUG or TRACE), and the caps on what is kept, so that
//! nothing is cut silently.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{LogLevel, NodeRecord, StepRun};

/// What the capture policy kept of a step run, so that a reader knows why something is
/// missing or short.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Capture {
    /// Whether inputs, outputs and OS logs were captured (the execution ran at DEBUG or
    /// TRACE).
    pub data: bool,
    /// The fields cut to their size cap (`input`, `output`, `stdout`, `stderr`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "capped_fields"
    )]
    pub truncated: Vec<&'static str>,
}

/// The fields the capture policy caps.
const CAPPED: [&str; 4] = ["input", "output", "stdout", "stderr"];

/// [`Capture::truncated`] as stored: each name one of [`CAPPED`].
fn capped_fields<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<&'static str>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|name| {
            CAPPED
                .into_iter()
                .find(|capped| capped == name)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("`{name}` is not a field the capture caps"))
                })
        })
        .collect()
}

/// What was cut from a report, so that no truncation is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Truncation {
    /// Log lines dropped past the line or byte cap.
    pub log_lines_dropped: u64,
    /// Log lines cut to the per-line cap.
    pub log_lines_cut: u64,
    /// Bytes of stdout dropped past the cap.
    pub stdout_bytes_dropped: u64,
    /// Bytes of stderr dropped past the cap.
    pub stderr_bytes_dropped: u64,
}

impl Truncation {
    /// Whether anything was cut.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Apply the capture policy of `level` to a step run: inputs, outputs and OS logs only
/// at DEBUG or TRACE, each capped at [`MAX_CAPTURED_BYTES`].
pub fn apply(run: &mut StepRun, level: LogLevel) {
    run.capture.data = level.captures_data();
    if !run.capture.data {
        run.input = None;
        run.report.output = None;
        run.report.stdout.clear();
        run.report.stderr.clear();
        return;
    }
    if run
        .input
        .as_mut()
        .is_some_and(|v| cap_json(v, MAX_CAPTURED_BYTES))
    {
        run.capture.truncated.push("input");
    }
    if run
        .report
        .output
        .as_mut()
        .is_some_and(|v| cap_json(v, MAX_CAPTURED_BYTES))
    {
        run.capture.truncated.push("output");
    }
    if truncate_utf8(&mut run.report.stdout, MAX_CAPTURED_BYTES) {
        run.capture.truncated.push("stdout");
    }
    if truncate_utf8(&mut run.report.stderr, MAX_CAPTURED_BYTES) {
        run.capture.truncated.push("stderr");
    }
}

/// A copy of `run` as the capture policy of `level` keeps it (see [`apply`]): the data
/// the policy drops is not copied at all.
pub fn captured(run: &StepRun, level: LogLevel) -> StepRun {
    if level.captures_data() {
        let mut copy = run.clone();
        apply(&mut copy, level);
        return copy;
    }
    let report = &run.report;
    StepRun {
        node: run.node.clone(),
        app: run.app.clone(),
        action: run.action.clone(),
        iteration: run.iteration,
        attempt: run.attempt,
        input: None,
        report: super::StepReport {
            status: report.status,
            output: None,
            pathway: report.pathway.clone(),
            error: report.error.clone(),
            logs: report.logs.clone(),
            stdout: String::new(),
            stderr: String::new(),
            duration_us: report.duration_us,
            truncated: report.truncated.clone(),
            egress: report.egress,
        },
        capture: Capture::default(),
        started_at: run.started_at,
        child: run.child.clone(),
    }
}

/// Apply the capture policy of `level` to a node's record: its output only at DEBUG or
/// TRACE, capped at [`MAX_CAPTURED_BYTES`].
pub fn apply_to_node(record: &mut NodeRecord, level: LogLevel) {
    if !level.captures_data() {
        record.output = None;
    } else if let Some(output) = &mut record.output {
        cap_json(output, MAX_CAPTURED_BYTES);
    }
}

/// The trigger payload as the capture policy of `level` keeps it: only at DEBUG or
/// TRACE, capped at [`MAX_CAPTURED_BYTES`]. Shared, it is copied only when kept.
pub fn kept_trigger(trigger: Arc<Value>, level: LogLevel) -> Option<Value> {
    level.captures_data().then(|| {
        let mut trigger = Arc::unwrap_or_clone(trigger);
        cap_json(&mut trigger, MAX_CAPTURED_BYTES);
        trigger
    })
}

/// The largest value captured in a trace, in bytes: one step run's input, output,
/// stdout or stderr. Past it the value is replaced by its head and its size, and the
/// record says so. It is the host's default output limit, so that an output the host
/// accepted is kept whole (stdout and stderr are capped lower, as they are captured).
pub const MAX_CAPTURED_BYTES: usize = 16 << 20;

/// The largest result an execution keeps (a playbook's `output:`): an answer to its
/// caller, kept at every level, so smaller than a captured value.
pub const MAX_RESULT_BYTES: usize = 1 << 20;

/// Cap a captured JSON value at `max` bytes of JSON text: a larger value becomes
/// `{"truncated": true, "bytes": <its size>, "head": "<its first bytes>"}`. Returns
/// whether it was cut.
pub fn cap_json(value: &mut Value, max: usize) -> bool {
    let text = value.to_string();
    if text.len() <= max {
        return false;
    }
    let bytes = text.len();
    let mut head = text;
    truncate_utf8(&mut head, max);
    *value = serde_json::json!({ "truncated": true, "bytes": bytes, "head": head });
    true
}

/// Cut `text` to at most `max` bytes on a character boundary; returns whether it was
/// cut.
pub fn truncate_utf8(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn large_values_are_capped_with_their_size() {
        let mut small = json!({"a": 1});
        assert!(!cap_json(&mut small, 100));
        let mut large = json!(vec!["abcdef"; 10]);
        assert!(cap_json(&mut large, 12));
        assert_eq!(
            large,
            json!({"truncated": true, "bytes": 91, "head": "[\"abcdef\",\"a"})
        );
    }

    #[test]
    fn truncates_on_char_boundaries() {
        let mut s = "héllo".to_owned();
        assert!(truncate_utf8(&mut s, 2));
        assert_eq!(s, "h");
        assert!(!truncate_utf8(&mut s, 10));
    }
}
