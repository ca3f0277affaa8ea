//! What an execution leaves behind: its records, the capture policy that decides what
//! of them is kept, and the redaction of secrets.
//!
//! A leaf: it imports nothing of the crate, so that every layer (the engine that makes
//! records, the host that reports a step, the store that keeps them, the service and
//! the API that serve them) can name the records without importing another layer.
//!
//! | module | owns |
//! |---|---|
//! | here | log levels and log lines |
//! | [`record`] | executions, node records, step runs and reports, their statuses, events |
//! | [`capture`] | what each level keeps of a step run, and the size caps |
//! | [`redact`] | the [`Redactor`]: secrets are scrubbed in one place, so that every path that records something (outputs, logs, stdout/stderr, error messages) goes through the same function |

pub mod capture;
pub mod record;
pub mod redact;

pub use capture::{
    Capture, MAX_CAPTURED_BYTES, MAX_RESULT_BYTES, Truncation, cap_json, truncate_utf8,
};
pub use record::{
    DEFAULT_TENANT, Event, Execution, ExecutionHeader, ExecutionStatus, FailureKind, NodeRecord,
    NodeStatus, Outbound, Owner, StepFailure, StepReport, StepRun, StepStatus, TriggerType,
    new_execution_id, valid_tenant, within_reach,
};
pub use redact::{REDACTED, Redactor};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Severity of a log line, and the level an execution records at.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including step-by-step detail.
    Trace,
    /// Inputs, outputs and OS logs are captured from this level down.
    Debug,
    /// Normal progress.
    Info,
    /// Problems worked around.
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    /// Every level, most verbose first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];

    /// The lowercase name, as in playbook files and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// Whether an execution at this level captures inputs, outputs and OS logs
    /// (DEBUG and TRACE do; the seed's "inputs and outputs recorded only at DEBUG or
    /// TRACE").
    pub fn captures_data(self) -> bool {
        self <= LogLevel::Debug
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log level name that is not one of the five.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{0}` is not a log level; expected one of trace, debug, info, warn, error")]
pub struct UnknownLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

/// One line an app logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogLine {
    /// When the host received it (RFC 3339, UTC, microseconds).
    pub ts: String,
    /// Its severity.
    pub level: LogLevel,
    /// The text, redacted and capped.
    pub message: String,
    /// Structured fields, redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_in_any_case_and_order_by_verbosity() {
        assert_eq!("DEBUG".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert!(LogLevel::Trace < LogLevel::Error);
        assert!(LogLevel::Debug.captures_data() && !LogLevel::Info.captures_data());
        assert_eq!(
            "verbose".parse::<LogLevel>().unwrap_err().to_string(),
            "`verbose` is not a log level; expected one of trace, debug, info, warn, error"
        );
    }
}
