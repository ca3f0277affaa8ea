//! Logging into the execution's trace.
//!
//! Use the macros [`trace!`](crate::trace), [`debug!`](crate::debug),
//! [`info!`](crate::info), [`warn!`](crate::warn) and [`error!`](crate::error). A line
//! below the execution's log level is neither formatted nor sent. Structured fields go
//! before a `;`:
//!
//! ```
//! let ip = "10.0.0.1";
//! wasp_sdk::info!("looked up {} indicators", 3);
//! wasp_sdk::warn!(ip = ip, attempts = 2; "feed has no entry");
//! ```
//!
//! Log lines go to the trace, not to stdout: what an app prints with `println!` is
//! kept apart, as "OS logs".

use crate::__bindings::wasp::playbook::types as wit;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Step-by-step detail.
    Trace,
    /// Detail useful when diagnosing a playbook.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the app worked around.
    Warn,
    /// Something failed.
    Error,
}

impl From<Level> for wit::LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => wit::LogLevel::Trace,
            Level::Debug => wit::LogLevel::Debug,
            Level::Info => wit::LogLevel::Info,
            Level::Warn => wit::LogLevel::Warn,
            Level::Error => wit::LogLevel::Error,
        }
    }
}

/// Whether a line at `level` would be recorded.
pub fn enabled(level: Level) -> bool {
    #[cfg(target_arch = "wasm32")]
    return crate::__bindings::wasp::playbook::log::enabled(level.into());
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::native_enabled(level);
}

/// Record `message` at `level` with structured `fields`. The macros call this.
pub fn write(level: Level, message: &str, fields: &[(&str, String)]) {
    #[cfg(target_arch = "wasm32")]
    {
        let fields: Vec<wit::Field> = fields
            .iter()
            .map(|(key, value)| wit::Field {
                key: (*key).to_owned(),
                value: value.clone(),
            })
            .collect();
        crate::__bindings::wasp::playbook::log::log(level.into(), message, &fields);
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::native_write(level, message, fields);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:expr, [$(($key:expr, $value:expr)),*], $($arg:tt)+) => {
        if $crate::log::enabled($level) {
            $crate::log::write(
                $level,
                &::std::format!($($arg)+),
                &[$(($key, ::std::string::ToString::to_string(&$value))),*],
            );
        }
    };
}

/// Log at TRACE: `trace!("x = {}", x)` or `trace!(key = value; "message")`.
#[macro_export]
macro_rules! trace {
    ($($key:ident = $value:expr),+ ; $($arg:tt)+) => { $crate::__log!($crate::log::Level::Trace, [$((stringify!($key), $value)),+], $($arg)+) };
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Trace, [], $($arg)+) };
}

/// Log at DEBUG: `debug!("x = {}", x)` or `debug!(key = value; "message")`.
#[macro_export]
macro_rules! debug {
    ($($key:ident = $value:expr),+ ; $($arg:tt)+) => { $crate::__log!($crate::log::Level::Debug, [$((stringify!($key), $value)),+], $($arg)+) };
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Debug, [], $($arg)+) };
}

/// Log at INFO: `info!("x = {}", x)` or `info!(key = value; "message")`.
#[macro_export]
macro_rules! info {
    ($($key:ident = $value:expr),+ ; $($arg:tt)+) => { $crate::__log!($crate::log::Level::Info, [$((stringify!($key), $value)),+], $($arg)+) };
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Info, [], $($arg)+) };
}

/// Log at WARN: `warn!("x = {}", x)` or `warn!(key = value; "message")`.
#[macro_export]
macro_rules! warn {
    ($($key:ident = $value:expr),+ ; $($arg:tt)+) => { $crate::__log!($crate::log::Level::Warn, [$((stringify!($key), $value)),+], $($arg)+) };
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Warn, [], $($arg)+) };
}

/// Log at ERROR: `error!("x = {}", x)` or `error!(key = value; "message")`.
#[macro_export]
macro_rules! error {
    ($($key:ident = $value:expr),+ ; $($arg:tt)+) => { $crate::__log!($crate::log::Level::Error, [$((stringify!($key), $value)),+], $($arg)+) };
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Error, [], $($arg)+) };
}
