//! The records a step run produces, and the capture policy that decides what of them
//! is kept: log levels, log lines, and the redaction of secrets.
//!
//! Secrets are scrubbed here, in one place, so that every path that records something
//! (outputs, logs, stdout/stderr, error messages) goes through the same function.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Severity of a log line, and the level an execution records at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The length of the longest start of `secret`, shorter than it, that `text` ends
/// with: Knuth–Morris–Pratt over the secret, linear in both (a guest chooses `text`).
fn longest_start_at_end(secret: &[u8], text: &[u8]) -> usize {
    if secret.len() < 2 {
        return 0;
    }
    let mut fallback = vec![0usize; secret.len()];
    let mut k = 0;
    for i in 1..secret.len() {
        while k > 0 && secret[i] != secret[k] {
            k = fallback[k - 1];
        }
        if secret[i] == secret[k] {
            k += 1;
        }
        fallback[i] = k;
    }
    let mut matched = 0;
    for &byte in text {
        while matched > 0 && (matched == secret.len() || byte != secret[matched]) {
            matched = fallback[matched - 1];
        }
        if byte == secret[matched] {
            matched += 1;
        }
    }
    if matched == secret.len() {
        fallback[matched - 1]
    } else {
        matched
    }
}

/// `text` with every byte but RFC 3986's unreserved characters percent-encoded.
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The mask that replaces a secret's value.
pub const REDACTED: &str = "***";

/// Replaces the values of secrets with [`REDACTED`] in everything recorded.
///
/// Longer secrets are replaced first, so that a secret containing another is masked
/// whole.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for `secrets`, and for each its percent-encoded form (as it appears
    /// in a URL); empty values are ignored (they would match everywhere).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| {
                let encoded = percent_encoded(&s);
                [Some(s), Some(encoded)]
            })
            .flatten()
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// This redactor with one more secret.
    #[must_use]
    pub fn with(&self, secret: String) -> Self {
        Self::new(self.secrets.iter().cloned().chain([secret]))
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// `text`, the head of something longer that was cut off, with every secret
    /// replaced, and also a start of a secret that the cut left at its end.
    pub fn text_cut(&self, text: &str) -> String {
        let mut out = self.text(text);
        for secret in &self.secrets {
            // Shorter starts could be chance.
            let k = longest_start_at_end(secret.as_bytes(), out.as_bytes());
            if k >= 4 {
                // Equal bytes from the start of a secret: a character boundary.
                out.truncate(out.len() - k);
                out.push_str(REDACTED);
            }
        }
        out
    }

    /// Redact every string (keys too) inside a JSON value, in place, and every number
    /// whose decimal text holds a numeric secret (`8675309` for the secret
    /// `"8675309"`): such a number becomes the string [`REDACTED`].
    pub fn json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => *s = self.text(s),
            Value::Number(n) => {
                let text = n.to_string();
                if self
                    .secrets
                    .iter()
                    .any(|secret| looks_numeric(secret) && text.contains(secret.as_str()))
                {
                    *value = Value::String(REDACTED.to_owned());
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.json(&mut v);
                    map.insert(self.text(&key), v);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}

/// Whether `secret` could be (part of) the text of a JSON number.
fn looks_numeric(secret: &str) -> bool {
    secret.bytes().any(|b| b.is_ascii_digit())
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

/// The largest value captured in a trace, in bytes: one step run's input, output,
/// stdout or stderr. Past it the value is replaced by its head and its size, and the
/// record says so. It is the host's default output limit, so that an output the host
/// accepted is kept whole (stdout and stderr are capped lower, as they are captured).
pub const MAX_CAPTURED_BYTES: usize = 16 << 20;

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
    fn levels_parse_in_any_case_and_order_by_verbosity() {
        assert_eq!("DEBUG".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert!(LogLevel::Trace < LogLevel::Error);
        assert!(LogLevel::Debug.captures_data() && !LogLevel::Info.captures_data());
        assert_eq!(
            "verbose".parse::<LogLevel>().unwrap_err().to_string(),
            "`verbose` is not a log level; expected one of trace, debug, info, warn, error"
        );
    }

    #[test]
    fn redacts_longest_secret_first_in_text_and_json() {
        let r = Redactor::new(["abc".to_owned(), "abcdef".to_owned(), String::new()]);
        assert_eq!(r.text("key=abcdef, short=abc"), "key=***, short=***");
        let mut v = json!({"abcdef": ["x abc y", 1, {"k": "abcdef"}]});
        r.json(&mut v);
        assert_eq!(v, json!({"***": ["x *** y", 1, {"k": "***"}]}));
    }

    #[test]
    fn numbers_holding_a_numeric_secret_are_masked() {
        let r = Redactor::new(["8675309".to_owned(), "abc".to_owned()]);
        let mut v = json!({"pin": 8675309, "n": 186753090, "other": 42, "f": 8675309.5});
        r.json(&mut v);
        assert_eq!(
            v,
            json!({"pin": "***", "n": "***", "other": 42, "f": "***"})
        );
    }

    #[test]
    fn the_start_of_a_secret_left_by_a_cut_is_masked() {
        let r = Redactor::new(["s3cr3t-value".to_owned()]);
        assert_eq!(
            r.text_cut("key=s3cr3t-value, again s3cr3t-v"),
            "key=***, again ***"
        );
        assert_eq!(
            r.text_cut("ends with s3c"),
            "ends with s3c",
            "three bytes are chance"
        );
        assert_eq!(r.text_cut("nothing here"), "nothing here");
        // Linear, whatever the text: a repetitive secret and a text built against it.
        let secret = "x".repeat(200_000) + "y";
        let text = "x".repeat(300_000) + "z";
        let r = Redactor::new([secret]);
        assert_eq!(r.text_cut(&text), text);
        assert_eq!(longest_start_at_end(b"abcab", b"zzabca"), 4);
        assert_eq!(longest_start_at_end(b"aab", b"aaaa"), 2);
    }

    #[test]
    fn a_secret_is_redacted_percent_encoded_too() {
        let r = Redactor::new(["a+b/c=".to_owned()]);
        assert_eq!(r.text("/x?key=a%2Bb%2Fc%3D&k2=a+b/c="), "/x?key=***&k2=***");
    }

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
