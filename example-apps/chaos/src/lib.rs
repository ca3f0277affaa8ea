//! `chaos`: an app that misbehaves on purpose, so that playbook authors can see what
//! wasp does with a step that hangs, runs long or fails before a real one does.
//!
//! - `spin` burns CPU in a tight loop for `ms` milliseconds, or forever when `ms` is
//!   absent: only the step's timeout, the reaper or a kill ends it.
//! - `sleep` waits `ms` milliseconds without using the CPU.
//! - `fail` fails with the error code, message and retryability it is given.
//! - `flood` writes many log lines and returns a large output, to see how a trace and
//!   the page carry them.
//! - `leak` spills a setting of its asset (say an API key) everywhere it can: a log
//!   line and its fields, stdout, stderr, the output, and with `fail` the error message,
//!   to see that the host masks secrets in all of them.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasp_sdk::{Action, App, ErrorCode, StepError, config, info};

/// How long to spin.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpinInput {
    /// Milliseconds to spin; absent means forever.
    #[serde(default)]
    pub ms: Option<u64>,
}

/// How long to sleep.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepInput {
    /// Milliseconds to sleep.
    pub ms: u64,
}

/// What a `spin` or `sleep` did.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct Waited {
    /// Milliseconds it took, by the guest's clock.
    pub elapsed_ms: u64,
    /// Loop iterations (`spin` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
}

/// The error to fail with.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailInput {
    /// The error's message.
    #[serde(default = "default_message")]
    pub message: String,
    /// Its code: `invalid_input`, `not_found`, `unauthorized`, `forbidden`,
    /// `rate_limited`, `unavailable`, `timeout`, `misconfigured` or `internal`.
    #[serde(default = "default_code")]
    pub code: String,
    /// Whether a retry policy may run the step again.
    #[serde(default)]
    pub retryable: bool,
}

fn default_message() -> String {
    "failing on purpose".to_owned()
}

fn default_code() -> String {
    "internal".to_owned()
}

/// How much to produce.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FloodInput {
    /// Log lines to write (at most 100,000).
    #[serde(default)]
    pub lines: u32,
    /// Bytes of output text (at most 64 MiB).
    #[serde(default)]
    pub bytes: u64,
}

/// What a `flood` produced.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct Flooded {
    /// Log lines written.
    pub lines: u32,
    /// `bytes` bytes of text.
    pub data: String,
}

/// The most `flood` produces, so that a typo cannot ask for gigabytes.
const MAX_FLOOD_LINES: u32 = 100_000;
const MAX_FLOOD_BYTES: u64 = 64 << 20;

/// The output of a flood of `input.bytes` bytes, or why it is refused.
pub fn flood_output(input: &FloodInput) -> Result<Flooded, StepError> {
    if input.lines > MAX_FLOOD_LINES || input.bytes > MAX_FLOOD_BYTES {
        return Err(StepError::invalid_input(format!(
            "`lines` is at most {MAX_FLOOD_LINES} and `bytes` at most {MAX_FLOOD_BYTES}"
        )));
    }
    let pattern = b"wasp-flood ";
    let data = (0..input.bytes)
        .map(|i| char::from(pattern[(i % pattern.len() as u64) as usize]))
        .collect();
    Ok(Flooded {
        lines: input.lines,
        data,
    })
}

/// `fail` never returns an output; this type only names that in the schema.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Never {}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Spin until `ms` milliseconds have passed (forever when `None`).
pub fn spin(ms: Option<u64>) -> Waited {
    let started = Instant::now();
    let deadline = ms.map(Duration::from_millis);
    let mut iterations: u64 = 0;
    loop {
        iterations = std::hint::black_box(iterations.wrapping_add(1));
        if deadline.is_some_and(|d| started.elapsed() >= d) {
            return Waited {
                elapsed_ms: elapsed_ms(started),
                iterations: Some(iterations),
            };
        }
    }
}

/// The error `input` describes.
pub fn failure(input: FailInput) -> StepError {
    let code = match input.code.as_str() {
        "invalid_input" => ErrorCode::InvalidInput,
        "not_found" => ErrorCode::NotFound,
        "unauthorized" => ErrorCode::Unauthorized,
        "forbidden" => ErrorCode::Forbidden,
        "rate_limited" => ErrorCode::RateLimited,
        "unavailable" => ErrorCode::Unavailable,
        "timeout" => ErrorCode::Timeout,
        "misconfigured" => ErrorCode::Misconfigured,
        "internal" => ErrorCode::Internal,
        other => {
            return StepError::invalid_input(format!(
                "`code` `{other}` is not an error code (invalid_input, not_found, \
                 unauthorized, forbidden, rate_limited, unavailable, timeout, \
                 misconfigured, internal)"
            ));
        }
    };
    let error = StepError::new(code, input.message);
    if input.retryable {
        error.retryable()
    } else {
        error.permanent()
    }
}

/// Which setting to spill.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakInput {
    /// The setting's name.
    pub key: String,
    /// Fail with the value in the message instead of returning it.
    #[serde(default)]
    pub fail: bool,
}

/// The spilled setting.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Leaked {
    /// Its value.
    pub value: String,
    /// Its value inside a longer text.
    pub sentence: String,
}

fn leak(input: LeakInput) -> Result<Leaked, StepError> {
    let value = config::require(&input.key)?;
    let sentence = format!("the {} is {value}!", input.key);
    info!(key = input.key, value = value; "{sentence}");
    println!("stdout: {sentence}");
    eprintln!("stderr: {sentence}");
    if input.fail {
        return Err(StepError::unauthorized(format!("rejected: {sentence}")));
    }
    Ok(Leaked { value, sentence })
}

struct Chaos;

impl App for Chaos {
    const DESCRIPTION: &'static str = "Misbehave on purpose: spin the CPU, sleep, or fail \
        with a chosen error, to try timeouts, retries, the reaper and failure paths.";

    fn actions() -> Vec<Action> {
        vec![
            Action::new(
                "spin",
                "Burn CPU in a tight loop for `ms` milliseconds, or until stopped.",
                |input: SpinInput| {
                    match input.ms {
                        Some(ms) => info!("spinning for {ms} ms"),
                        None => info!("spinning until stopped"),
                    }
                    Ok(spin(input.ms))
                },
            ),
            Action::new(
                "sleep",
                "Wait `ms` milliseconds without using the CPU.",
                |input: SleepInput| {
                    let started = Instant::now();
                    std::thread::sleep(Duration::from_millis(input.ms));
                    Ok(Waited {
                        elapsed_ms: elapsed_ms(started),
                        iterations: None,
                    })
                },
            ),
            Action::new(
                "fail",
                "Fail with the given error code, message and retryability.",
                |input: FailInput| Err::<Never, _>(failure(input)),
            ),
            Action::new(
                "flood",
                "Write `lines` log lines and return `bytes` bytes of text.",
                |input: FloodInput| {
                    let output = flood_output(&input)?;
                    for i in 1..=input.lines {
                        info!("flood line {i} of {}", input.lines);
                    }
                    Ok(output)
                },
            ),
            Action::new(
                "leak",
                "Spill the setting `key` into logs, stdout, stderr and the output (or the error).",
                leak,
            ),
        ]
    }
}

wasp_sdk::export_app!(Chaos);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_makes_what_it_is_asked_for_within_its_bounds() {
        let output = flood_output(&FloodInput {
            lines: 3,
            bytes: 25,
        })
        .unwrap();
        assert_eq!(output.data, "wasp-flood wasp-flood was");
        assert!(
            flood_output(&FloodInput {
                lines: 0,
                bytes: u64::MAX
            })
            .is_err()
        );
        assert!(
            flood_output(&FloodInput {
                lines: u32::MAX,
                bytes: 0
            })
            .is_err()
        );
    }

    #[test]
    fn spin_stops_at_its_time() {
        let waited = spin(Some(5));
        assert!(waited.elapsed_ms >= 5, "{waited:?}");
        assert!(waited.iterations.is_some_and(|n| n > 0));
    }

    #[test]
    fn fail_carries_the_code_and_retryability() {
        let error = failure(FailInput {
            message: "feed down".to_owned(),
            code: "unavailable".to_owned(),
            retryable: true,
        });
        assert_eq!(error.code(), ErrorCode::Unavailable);
        assert_eq!(error.message(), "feed down");
        assert!(error.is_retryable());

        let error = failure(FailInput {
            message: "x".to_owned(),
            code: "unavailable".to_owned(),
            retryable: false,
        });
        assert!(!error.is_retryable());
    }

    #[test]
    fn an_unknown_code_is_an_input_error_naming_it() {
        let error = failure(FailInput {
            message: "x".to_owned(),
            code: "oops".to_owned(),
            retryable: false,
        });
        assert_eq!(error.code(), ErrorCode::InvalidInput);
        assert!(error.message().contains("`oops`"), "{}", error.message());
    }
}
