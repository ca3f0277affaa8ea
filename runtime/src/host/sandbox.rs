//! The per-invocation sandbox: the state a fresh `Store` holds, the resource limiter,
//! and the host side of the `log` and `config` imports.
//!
//! Nothing here outlives one step run: a new `StepState` is built for every
//! invocation and dropped with its store, trapped or not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::types::{
    HostFutureIncomingResponse, HostIncomingResponse, HostOutgoingRequest,
};
use wasmtime_wasi_http::{FieldMap, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::wasp::playbook::{config, log, types};
use super::capture::{BoundedPipe, LogSink};
use super::egress::Hooks;
use crate::trace::{LogLevel, Redactor};

/// Why the host stopped a guest from inside the epoch callback or the limiter. Carried
/// through wasmtime's error so that the classifier can tell these apart from traps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Interrupt {
    /// The step's wall-clock deadline passed.
    #[error("the step ran past its deadline")]
    Deadline,
    /// The step was killed (the execution was killed or reaped).
    #[error("the step was killed")]
    Killed,
    /// The guest asked for more memory than its cap.
    #[error("the app asked for more memory than its limit")]
    Memory,
    /// The guest asked for a larger table than its cap.
    #[error("the app asked for a larger table than its limit")]
    Table,
    /// The guest held more host memory in resources (HTTP headers, bodies) than its cap.
    #[error("the app held more host memory in resources than its limit")]
    Resources,
}

/// Caps on what one store may allocate.
///
/// Memory is counted over every linear memory of the component (a component built
/// from Rust or Python has several core instances), because all of it is host memory.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) memory_cap: usize,
    pub(crate) memory_used: usize,
    /// The size the guest asked for when it was refused.
    pub(crate) memory_refused_at: Option<usize>,
    pub(crate) table_elements_cap: usize,
    pub(crate) instances_cap: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_used - current.min(self.memory_used) + desired;
        if total > self.memory_cap {
            self.memory_refused_at = Some(total);
            // An error, not `Ok(false)`: `memory.grow` returning -1 makes a Rust guest
            // abort with a generic trap; failing here says what happened.
            return Err(wasmtime::Error::new(Interrupt::Memory));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements_cap {
            return Err(wasmtime::Error::new(Interrupt::Table));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances_cap
    }

    fn tables(&self) -> usize {
        self.instances_cap
    }

    fn memories(&self) -> usize {
        self.instances_cap
    }
}

/// The host memory a step's resources may hold, beyond its linear memory: the
/// `wasi:http` headers, request strings and buffered request bodies that a guest can
/// make the host keep by holding handles (a `fields` of 127 KiB costs the guest a
/// 4-byte handle). `ResourceTable::set_max_capacity` bounds how many handles; this
/// bounds what they hold.
///
/// wasmtime-wasi-http has no hook that sees these allocations as they happen (it caps
/// one `fields` at `WasiHttpCtx::set_field_size_limit` and one body's buffer by
/// `p2_outgoing_body_chunk_size`, but not their sum), so the table is measured instead,
/// at every epoch tick while the guest runs: a guest overshoots by at most what it can
/// allocate in one tick, and the walk stops as soon as the cap is passed.
#[derive(Debug)]
pub(crate) struct ResourceBudget {
    pub(crate) cap: usize,
    /// What one request body may hold buffered until it is sent: the channel between
    /// the guest's stream and the request holds this many bytes at most.
    pub(crate) body_bytes: usize,
    /// What the table held when the cap was passed.
    pub(crate) refused_at: Option<usize>,
}

/// What one live handle costs the host besides its content: the table entry and its
/// box.
const ENTRY_OVERHEAD: usize = 128;

impl ResourceBudget {
    /// Measure `table`; an error once it holds more than the cap.
    pub(crate) fn check(&mut self, table: &mut ResourceTable) -> wasmtime::Result<()> {
        let mut held = 0usize;
        for entry in table.iter_mut() {
            held += ENTRY_OVERHEAD + self.charge(entry);
            if held > self.cap {
                self.refused_at = Some(held);
                return Err(wasmtime::Error::new(Interrupt::Resources));
            }
        }
        Ok(())
    }

    fn charge(&self, entry: &mut (dyn std::any::Any + Send)) -> usize {
        if let Some(fields) = entry.downcast_ref::<FieldMap>() {
            fields_bytes(fields)
        } else if let Some(request) = entry.downcast_ref::<HostOutgoingRequest>() {
            let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
            let method = match &request.method {
                wasmtime_wasi_http::p2::bindings::http::types::Method::Other(name) => name.len(),
                _ => 0,
            };
            fields_bytes(&request.headers)
                + text(&request.path_with_query)
                + text(&request.authority)
                + method
                + if request.body.is_some() {
                    self.body_bytes
                } else {
                    0
                }
        } else if let Some(response) = entry.downcast_ref::<HostIncomingResponse>() {
            fields_bytes(&response.headers)
        } else if let Some(HostFutureIncomingResponse::Pending(_)) =
            entry.downcast_ref::<HostFutureIncomingResponse>()
        {
            // A request on its way out still holds its body's buffer.
            self.body_bytes
        } else {
            0
        }
    }
}

/// The bytes of a header map, counted as wasmtime-wasi-http counts them against its
/// per-map limit: names and values with their in-memory structs.
fn fields_bytes(fields: &FieldMap) -> usize {
    fields
        .iter()
        .map(|(name, value)| {
            name.as_str().len()
                + size_of::<http::HeaderName>()
                + value.len()
                + size_of::<http::HeaderValue>()
        })
        .sum()
}

/// The settings of the asset bound to a step, some of them secret. Shared by every
/// invocation that uses them.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
    redactor: Arc<Redactor>,
}

impl Settings {
    /// No settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the plain setting `key`.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// Add the secret setting `key`: the app can read it, and its value is replaced by
    /// `***` in everything recorded about the step.
    #[must_use]
    pub fn with_secret(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        self.redactor = Arc::new(self.redactor.with(value.clone()));
        self.values.insert(key.into(), value);
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The redactor of the secret values.
    pub fn redactor(&self) -> Arc<Redactor> {
        Arc::clone(&self.redactor)
    }
}

/// Everything a store holds for one step run.
pub(crate) struct StepState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: Hooks,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) resources: ResourceBudget,
    pub(crate) logs: LogSink,
    pub(crate) stdout: BoundedPipe,
    pub(crate) stderr: BoundedPipe,
    pub(crate) settings: Arc<Settings>,
    pub(crate) deadline: Instant,
    pub(crate) kill: CancellationToken,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StepState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl From<types::LogLevel> for LogLevel {
    fn from(level: types::LogLevel) -> Self {
        match level {
            types::LogLevel::Trace => LogLevel::Trace,
            types::LogLevel::Debug => LogLevel::Debug,
            types::LogLevel::Info => LogLevel::Info,
            types::LogLevel::Warn => LogLevel::Warn,
            types::LogLevel::Error => LogLevel::Error,
        }
    }
}

impl types::Host for StepState {}

impl log::Host for StepState {
    fn log(&mut self, level: types::LogLevel, message: String, fields: Vec<types::Field>) {
        let fields = fields.into_iter().map(|f| (f.key, f.value)).collect();
        self.logs.push(level.into(), message, fields);
    }

    fn enabled(&mut self, level: types::LogLevel) -> bool {
        self.logs.enabled(level.into())
    }
}

impl config::Host for StepState {
    fn get(&mut self, key: String) -> Option<String> {
        self.settings.get(&key).map(str::to_owned)
    }

    fn keys(&mut self) -> Vec<String> {
        self.settings.values.keys().cloned().collect()
    }
}
