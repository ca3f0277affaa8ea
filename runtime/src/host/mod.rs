//! The WebAssembly host: the one wasmtime `Engine`, the component cache, the sandbox
//! every step runs in, the host imports, and the capture of logs and stdout/stderr.
//!
//! This is the only module that names wasmtime. Its contract with the rest of wasp is
//! [`Host::load`] (a component file → an [`App`] with its description) and
//! [`Host::invoke`] (an app, an action and a JSON input → a [`StepReport`]). Whatever a
//! guest does, `invoke` returns a report: a guest can fail its step, never the host.
//!
//! # Limits and the threats they guard against
//!
//! | limit | default | guards against |
//! |---|---|---|
//! | linear memory, all memories of the instance | 64 MiB | an app exhausting host memory |
//! | wall-clock deadline (epoch callback, 1 ms tick) | 30 s | an app spinning forever |
//! | outer timeout (deadline + 100 ms) | | a host call that never returns (epochs do not interrupt host code) |
//! | wasm stack | 1 MiB | unbounded recursion |
//! | output | 16 MiB | one step's output flooding the trace and the next steps |
//! | JSON values in the output | 1,000,000 | a small output that is costly to parse: `[0,0,…]` of 15 MiB took 511 MB of host memory as a `Value` |
//! | error message | 64 KiB, the cut stated | an app's error text flooding the trace, the terminal and the store |
//! | pathway | 256 bytes | a pathway as large as the output, copied into the error and the trace |
//! | stdout, stderr | 1 MiB each, rest counted | print floods |
//! | log lines | 10,000 lines, 4 MiB, 64 KiB a line (message and fields) | log floods |
//! | log fields | 64 a line, 16 KiB a value, 256 bytes a name; each counted with 48 bytes of overhead | floods of fields, empty ones included, that cost the host memory but no text |
//! | resource handles held at once | 10,000 | handles that each make the host keep an object (`wasi:http` fields, requests, streams) |
//! | host memory held in resources | 16 MiB | `wasi:http` headers, request strings and unsent bodies kept on the host, outside the guest's memory cap |
//! | a `fields` resource | 128 KiB (wasmtime-wasi-http's default) | one header map growing without end |
//! | a request body's buffer | 2 writes of 64 KiB | an unsent request body holding the host's memory |
//! | HTTP requests per step; open at once | 256; 8 (see `egress`) | an app flooding an allowed service, or holding the host's sockets |
//! | HTTP connect, first byte, whole request; response body | 5 s, 10 s, 30 s; 16 MiB (the asset's) | a service that hangs or floods holding the step or the host's memory |
//! | a request's recorded URL; method | 2 KiB; 32 bytes | the host's own log lines, kept past the app's caps, sized by the app |
//! | data copied out of the guest in one host call | 128 MiB (wasmtime's hostcall fuel) | one call (a log line, the returned outcome) making the host allocate without bound |
//! | component-model handles of the guest's own resources | 100,000 (wasmtime's default) | handles created without end |
//! | instances, tables, memories per store | 64 | components that instantiate without end |
//! | elements of a table | 20,000 (the pooling allocator's slot size) | tables grown without end |
//! | `describe()`: descriptions, version; each schema; actions, pathways per action | 4 KiB, 64 bytes; 256 KiB; 256, 256 | descriptions kept for the life of the process: 14 MB schemas in 50 apps held ~800 MB |
//! | a component; its functions; one function's code, locals, locals × code | 64 MiB; 200,000; 1 MiB, 10,000, 64 Mi (see `compile`) | compile time that grows with live locals times code: a 1.5 MB component was still compiling after 7 minutes |
//! | one compilation; compilations at once | 120 s, then the app is refused; 2, abandoned ones included | one bad app holding the compiler, or delaying the others |
//!
//! The guest gets WASI p2 with nothing granted: no preopened directories, no
//! environment, no arguments, no sockets, no name lookups; clocks and randomness
//! remain. HTTP goes only through `wasi:http/outgoing-handler`, to the hosts the bound
//! asset allows, under host-side timeouts and a response cap (see `egress`). Every step gets a fresh `Store` and instance, dropped after the call, so
//! nothing leaks between steps and a trapped store is never reused.

mod cache;
mod capture;
mod compile;
mod egress;
mod registry;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{HasSelf, Linker, ResourceTable, ResourceTableError};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;

pub use cache::default_cache_dir;
pub use compile::{CompileLimits, Refusal};
pub use egress::Egress;
pub use registry::{Loading, Registry};
pub use sandbox::Settings;

use cache::ComponentCache;
use capture::{BoundedPipe, LogCaps, LogSink};
use compile::Compiler;
use egress::Hooks;
use sandbox::{Interrupt, Limiter, ResourceBudget, StepState};

use crate::playbook::catalog::{ActionInfo, AppInfo};
use crate::trace::{
    FailureKind, LogLevel, Redactor, StepFailure, StepReport, StepStatus, Truncation, truncate_utf8,
};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "app",
        path: "../wit",
        exports: { default: async },
    });
}

/// Errors of the host itself: a component that cannot be loaded, a call that cannot be
/// made. What happens inside a call is reported in a [`StepReport`] instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine could not be configured.
    #[error("could not set up the WebAssembly engine: {source:#}")]
    Engine {
        /// wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
    /// A task of the host (loading an app, reading the cache) failed: wasp's bug.
    #[error("could not set up the WebAssembly engine: {task} failed: {source}")]
    Task {
        /// What the task did.
        task: &'static str,
        /// How it ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A compiler thread could not be started.
    #[error("could not set up the WebAssembly engine: cannot start a compiler thread: {source}")]
    Thread {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host is shutting down, or its compiler is gone.
    #[error("could not set up the WebAssembly engine: {0}")]
    Unavailable(&'static str),
    /// A component file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The component cache directory may not be trusted.
    #[error("the component cache `{}` {problem}: {advice}", path.display(), advice = CACHE_ADVICE)]
    Cache {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The component cache directory cannot be read, so it cannot be checked.
    #[error("the component cache `{}` cannot be read: {source}: {advice}", path.display(), advice = CACHE_ADVICE)]
    CacheUnreadable {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The component is past a bound on what wasp compiles (see [`CompileLimits`]).
    #[error("`{}` is refused: {refusal}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Which bound, and by how much.
        refusal: Refusal,
    },
    /// The file is not a valid component.
    #[error("`{}` is not a WebAssembly component: {source:#}", path.display())]
    Compile {
        /// The file.
        path: PathBuf,
        /// What wasmtime (or the shape check's parser) found.
        #[source]
        source: wasmtime::Error,
    },
    /// The component needs imports wasp does not provide, or lacks the app exports.
    #[error("`{}` does not fit the wasp:playbook app world: {source:#}", path.display())]
    Link {
        /// The file.
        path: PathBuf,
        /// What does not fit, as wasmtime says.
        #[source]
        source: wasmtime::Error,
    },
    /// `describe()` failed or returned something unusable.
    #[error("`{}`: describe() {message}", path.display())]
    Describe {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The app has no such action.
    #[error("app `{app}` has no action `{action}`; it offers: {known}")]
    UnknownAction {
        /// The app.
        app: String,
        /// The action asked for.
        action: String,
        /// The actions it has, comma-separated.
        known: String,
    },
    /// The input is not JSON.
    #[error("the input is not valid JSON: {0}")]
    InputNotJson(#[source] serde_json::Error),
}

/// What an [`Error::Cache`] or [`Error::CacheUnreadable`] asks of the user.
const CACHE_ADVICE: &str = "wasp loads no compiled code from it (make it the user's own and \
     not writable by others, e.g. `chmod 700`, or name another with --cache-dir)";

impl Error {
    /// Whether the host itself failed (wasp's bug or a broken environment), rather than
    /// the component or the call it was given.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Error::Engine { .. }
                | Error::Task { .. }
                | Error::Thread { .. }
                | Error::Unavailable(_)
        )
    }
}

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocator {
    /// Pooling, falling back to on-demand when the pool's address space cannot be
    /// reserved (e.g. under a low `ulimit -v`).
    #[default]
    Auto,
    /// Pooling, or fail.
    Pooling,
    /// Fresh mappings for every instance.
    OnDemand,
}

/// How the host is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// The instance allocator.
    pub allocator: Allocator,
    /// Steps running at once in this process; more wait for a slot. Bounds the
    /// pooling allocator's slots and host memory (concurrency × memory cap).
    pub max_concurrent_steps: usize,
    /// Bounds on the components the host compiles.
    pub compile: CompileLimits,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            allocator: Allocator::Auto,
            max_concurrent_steps: 64,
            compile: CompileLimits::default(),
        }
    }
}

/// Limits for one step run. See the module docs for what each guards against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, over all memories of the instance, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock time for instantiation and the call together.
    pub timeout: Duration,
    /// Size of the output document, in bytes.
    pub max_output_bytes: usize,
    /// Bytes kept of stdout and of stderr, each.
    pub max_stdio_bytes: usize,
    /// Log lines kept.
    pub max_log_lines: usize,
    /// Bytes of log text kept.
    pub max_log_bytes: usize,
    /// Bytes kept of one log line: its message and its fields, each field counted
    /// with a fixed overhead.
    pub max_log_line_bytes: usize,
    /// Fields kept of one log line.
    pub max_log_fields: usize,
    /// Bytes kept of one log field's value.
    pub max_log_value_bytes: usize,
    /// JSON values (array elements, object members, and the document itself) in the
    /// output; counted before it is parsed.
    pub max_output_values: usize,
    /// Resource handles (`wasi:http` fields, requests, responses, streams, pollables)
    /// the step may hold at once.
    pub max_resources: usize,
    /// Host memory the step's resources may hold: headers, request strings and
    /// buffered request bodies.
    pub max_resource_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(30),
            max_output_bytes: 16 << 20,
            max_stdio_bytes: 1 << 20,
            max_log_lines: 10_000,
            max_log_bytes: 4 << 20,
            max_log_line_bytes: 64 << 10,
            max_log_fields: 64,
            max_log_value_bytes: 16 << 10,
            max_output_values: 1_000_000,
            max_resources: 10_000,
            max_resource_bytes: 16 << 20,
        }
    }
}

/// A loaded app: its file, content hash, description and pre-instantiated component.
pub struct App {
    /// The component file it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the component's bytes.
    pub hash: String,
    /// What `describe()` returned.
    pub info: AppInfo,
    pre: bindings::AppPre<StepState>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

impl App {
    /// The action called `name`.
    pub fn action(&self, name: &str) -> Option<&ActionInfo> {
        self.info.actions.iter().find(|a| a.name == name)
    }
}

/// One call to make.
#[derive(Debug, Clone)]
pub struct Call {
    /// The action.
    pub action: String,
    /// The input, a JSON document.
    pub input: String,
    /// Log lines below this level are dropped (and the guest is told so).
    pub level: LogLevel,
    /// The limits.
    pub limits: Limits,
    /// The settings (and secrets) of the bound asset.
    pub settings: Arc<Settings>,
    /// The bound asset's name, for messages.
    pub asset: Option<String>,
    /// Where the step may reach over HTTP: the bound asset's grant.
    pub egress: Arc<Egress>,
    /// Cancelled to kill the step.
    pub kill: CancellationToken,
}

impl Call {
    /// A call of `action` on `input` with default limits, no settings, at INFO.
    pub fn new(action: impl Into<String>, input: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            input: input.into(),
            level: LogLevel::Info,
            limits: Limits::default(),
            settings: Arc::default(),
            asset: None,
            egress: Arc::default(),
            kill: CancellationToken::new(),
        }
    }
}

/// The wasmtime host: one engine, one linker, the cache. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<StepState>,
    cache: Arc<ComponentCache>,
    compiler: Compiler,
    allocator: Allocator,
    slots: Semaphore,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("allocator", &self.inner.allocator)
            .finish_non_exhaustive()
    }
}

/// How often the engine's epoch advances: the granularity of deadlines and kills.
const TICK: Duration = Duration::from_millis(1);
/// How long past its deadline a call may take before the outer timeout drops it.
const GRACE: Duration = Duration::from_millis(100);
/// Stack for wasm frames; `async_stack_size` (2 MiB by default) must exceed it.
const MAX_WASM_STACK: usize = 1 << 20;
/// Instances, tables and memories one store may create.
const MAX_INSTANCES_PER_STORE: usize = 64;
/// Elements a table may grow to: the pooling allocator's slots are sized for this many,
/// and the limiter refuses more when allocating on demand, so both agree.
const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Bytes kept of an app's error message; the cut is stated in the message.
const MAX_ERROR_MESSAGE_BYTES: usize = 64 << 10;
/// Bytes of a pathway name; a longer one is refused, and named by its head.
const MAX_PATHWAY_BYTES: usize = 256;

fn engine_config(pooling: Option<u32>) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.parallel_compilation(true);
    if let Some(slots) = pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots);
        // A component holds several core instances (its module and WASI adapter
        // shims), each with its own memory and tables.
        pool.total_core_instances(slots * 16);
        pool.total_memories(slots * 4);
        pool.total_tables(slots * 8);
        pool.total_stacks(slots);
        pool.table_elements(MAX_TABLE_ELEMENTS);
        // Keep a slot's pages mapped between instances instead of unmapping them and
        // faulting them back in: without this two workers in one process measured
        // slower than one (kernel time in mmap and page faults), and a trivial call
        // paid ~11 µs of page faults. A Rust app's shadow stack ends just above 1 MiB,
        // so less than that keeps nothing useful. Resetting kept pages with `memset`
        // costs ~45 µs for 2 MiB, so where the kernel has `PAGEMAP_SCAN` (Linux 6.7+)
        // only the pages the guest dirtied are reset (~8 µs; see BENCHMARKS.md).
        pool.linear_memory_keep_resident(4 << 20);
        pool.table_keep_resident(64 << 10);
        pool.async_stack_keep_resident(128 << 10);
        pool.pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Advance `engine`'s epoch every [`TICK`] until the engine is dropped. One thread for
/// the whole engine, whatever the number of steps.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasp-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        });
    if let Err(e) = spawned {
        // Without a ticker no deadline fires: refuse to run rather than run unbounded.
        panic!("cannot start the epoch ticker thread: {e}");
    }
}

impl Host {
    /// A host configured by `config`.
    pub fn new(config: HostConfig) -> Result<Self, Error> {
        let slots = u32::try_from(config.max_concurrent_steps.max(1)).unwrap_or(u32::MAX);
        let (engine, allocator) = match config.allocator {
            Allocator::OnDemand => (Engine::new(&engine_config(None)), Allocator::OnDemand),
            Allocator::Pooling => (Engine::new(&engine_config(Some(slots))), Allocator::Pooling),
            Allocator::Auto => match Engine::new(&engine_config(Some(slots))) {
                Ok(engine) => (Ok(engine), Allocator::Pooling),
                Err(e) => {
                    tracing::warn!(error = %e, "pooling allocator unavailable; allocating on demand");
                    (Engine::new(&engine_config(None)), Allocator::OnDemand)
                }
            },
        };
        let engine = engine.map_err(|source| Error::Engine { source })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|source| Error::Engine { source })?;
        // Apps that call out import `wasi:http`; the hooks decide what a call may reach.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|source| Error::Engine { source })?;
        bindings::App::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|source| Error::Engine { source })?;
        let cache = Arc::new(ComponentCache::new(&engine, config.cache_dir)?);
        start_ticker(&engine);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                compiler: Compiler::new(config.compile),
                allocator,
                slots: Semaphore::new(config.max_concurrent_steps.max(1)),
            }),
        })
    }

    /// The allocator in use (after any fallback).
    pub fn allocator(&self) -> Allocator {
        self.inner.allocator
    }

    /// How many compilations this host has started: a component taken from the cache
    /// starts none.
    pub fn compilations(&self) -> u64 {
        self.inner.compiler.started()
    }

    /// Load the component at `path`: check its shape against the compile bounds,
    /// compile it (or take it from the cache) off the async workers and within the
    /// time bound, pre-instantiate it, and describe it (once per content hash, then
    /// cached).
    #[tracing::instrument(
        name = "host.load",
        skip_all,
        fields(path = %path.display(), app = tracing::field::Empty)
    )]
    pub async fn load(&self, path: &Path) -> Result<Arc<App>, Error> {
        let bytes = self.read_component(path).await?;
        let hash = cache::content_hash(&bytes);
        let component = self
            .inner
            .compiler
            .component(&self.inner.engine, &self.inner.cache, path, &hash, bytes)
            .await?;
        let link = |source| Error::Link {
            path: path.to_owned(),
            source,
        };
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(link)?;
        let pre = bindings::AppPre::new(instance_pre).map_err(link)?;
        let info = match self.cached_description(&hash) {
            Some(info) => info,
            None => {
                let info = self.describe(path, &pre).await?;
                if let Ok(json) = serde_json::to_string(&info) {
                    self.inner.cache.store_description(&hash, &json);
                }
                info
            }
        };
        tracing::Span::current().record("app", info.name.as_str());
        Ok(Arc::new(App {
            path: path.to_owned(),
            hash,
            info,
            pre,
        }))
    }

    /// The bytes of the component file at `path`, read no further than the size bound
    /// (a larger file is refused before it is held in memory).
    async fn read_component(&self, path: &Path) -> Result<Vec<u8>, Error> {
        use tokio::io::AsyncReadExt;
        let read = |source| Error::Read {
            path: path.to_owned(),
            source,
        };
        let bound = self.inner.compiler.limits().max_component_bytes;
        let file = tokio::fs::File::open(path).await.map_err(read)?;
        let mut bytes = Vec::new();
        file.take(u64::try_from(bound).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(read)?;
        if bytes.len() > bound {
            let size = tokio::fs::metadata(path)
                .await
                .ok()
                .and_then(|m| usize::try_from(m.len()).ok())
                .unwrap_or(bytes.len());
            return Err(Error::Refused {
                path: path.to_owned(),
                refusal: Refusal::Size { size, bound },
            });
        }
        Ok(bytes)
    }

    fn cached_description(&self, hash: &str) -> Option<AppInfo> {
        serde_json::from_str(&self.inner.cache.description(hash)?).ok()
    }

    async fn describe(
        &self,
        path: &Path,
        pre: &bindings::AppPre<StepState>,
    ) -> Result<AppInfo, Error> {
        let fail = |message: String| Error::Describe {
            path: path.to_owned(),
            message,
        };
        let limits = Limits {
            timeout: Duration::from_secs(10),
            ..Limits::default()
        };
        let mut store = self.store(
            &limits,
            LogLevel::Error,
            Arc::default(),
            (Arc::default(), None),
            CancellationToken::new(),
        );
        let described = tokio::time::timeout(limits.timeout + GRACE, async {
            let app = pre.instantiate_async(&mut store).await?;
            app.call_describe(&mut store).await
        })
        .await
        .map_err(|_| fail("did not return in time".to_owned()))?
        .map_err(|e| {
            fail(format!(
                "failed: {}",
                classify(&e, &store.data().stderr.take().0, &limits).message
            ))
        })?;
        validate_description(described).map_err(fail)
    }

    fn store(
        &self,
        limits: &Limits,
        level: LogLevel,
        settings: Arc<Settings>,
        (egress, asset): (Arc<Egress>, Option<String>),
        kill: CancellationToken,
    ) -> Store<StepState> {
        let deadline = Instant::now() + limits.timeout;
        let stdout = BoundedPipe::new(limits.max_stdio_bytes);
        let stderr = BoundedPipe::new(limits.max_stdio_bytes);
        // The builder grants nothing by default: no files, env, args or network.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        let state = StepState {
            wasi,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks: Hooks::new(egress, asset, deadline),
            table,
            limiter: Limiter {
                memory_cap: limits.memory_bytes,
                memory_used: 0,
                memory_refused_at: None,
                table_elements_cap: MAX_TABLE_ELEMENTS,
                instances_cap: MAX_INSTANCES_PER_STORE,
            },
            resources: ResourceBudget {
                cap: limits.max_resource_bytes,
                body_bytes: egress::BODY_BUFFER_BYTES,
                refused_at: None,
            },
            logs: LogSink::new(
                level,
                LogCaps {
                    lines: limits.max_log_lines,
                    bytes: limits.max_log_bytes,
                    line_bytes: limits.max_log_line_bytes,
                    fields: limits.max_log_fields,
                    value_bytes: limits.max_log_value_bytes,
                },
                settings.redactor(),
            ),
            stdout,
            stderr,
            settings,
            deadline,
            kill,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Check the wall clock at every tick rather than counting ticks (which runs
        // late), and yield in between so a spinning guest does not starve the steps
        // sharing its worker thread.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut context| {
            let state = context.data_mut();
            if state.kill.is_cancelled() {
                return Err(wasmtime::Error::new(Interrupt::Killed));
            }
            if Instant::now() >= state.deadline {
                return Err(wasmtime::Error::new(Interrupt::Deadline));
            }
            state.resources.check(&mut state.table)?;
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Run `call` on `app` in a fresh sandbox.
    ///
    /// Errors only for a call that cannot be made (unknown action, input that is not
    /// JSON); everything that happens inside the sandbox is in the report. The phases:
    /// check the call, wait for a slot, run it in a fresh store, collect what the
    /// sandbox recorded, judge how the call ended, and mask the bound asset's secrets.
    pub async fn invoke(&self, app: &App, call: Call) -> Result<StepReport, Error> {
        let action = check_call(app, &call)?;
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the host is shutting down"))?;
        let redactor = call.settings.redactor();
        let started = Instant::now();
        let mut store = self.store(
            &call.limits,
            call.level,
            Arc::clone(&call.settings),
            (Arc::clone(&call.egress), call.asset.clone()),
            call.kill.clone(),
        );
        let invocation = bindings::wasp::playbook::types::Invocation {
            action: call.action.clone(),
            input: call.input,
        };
        let ended = run_sandboxed(app, &mut store, &invocation, &call.limits, &call.kill).await;
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut report = collect(store.data_mut(), duration_us);
        report.error = match ended {
            Ok(Ok(outcome)) => match check_outcome(action, outcome, &call.limits) {
                Ok((output, pathway)) => {
                    report.status = StepStatus::Succeeded;
                    report.output = Some(output);
                    report.pathway = pathway;
                    None
                }
                Err(message) => Some(StepFailure::new(FailureKind::InvalidOutput, message)),
            },
            Ok(Err(app_error)) => Some(StepFailure {
                kind: FailureKind::AppError,
                message: capped_error_message(app_error.message, &redactor),
                code: Some(error_code(app_error.code).to_owned()),
                retryable: app_error.retryable,
            }),
            Err(Some((phase, error))) => Some(stopped(
                phase,
                &error,
                &report.stderr,
                &call.limits,
                store.data(),
            )),
            Err(None) => Some(StepFailure {
                message: format!(
                    "the step did not finish within {}; it was stopped inside a host call",
                    humantime::format_duration(call.limits.timeout)
                ),
                ..StepFailure::new(FailureKind::Timeout, String::new())
            }),
        };
        redact(&mut report, &redactor);
        Ok(report)
    }
}

/// The first phase of [`Host::invoke`]: the action `call` names, which `app` must
/// have, and an input that is JSON.
fn check_call<'a>(app: &'a App, call: &Call) -> Result<&'a ActionInfo, Error> {
    let Some(action) = app.action(&call.action) else {
        return Err(Error::UnknownAction {
            app: app.info.name.clone(),
            action: call.action.clone(),
            known: app
                .info
                .actions
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    serde_json::from_str::<serde::de::IgnoredAny>(&call.input).map_err(Error::InputNotJson)?;
    Ok(action)
}

/// How a call in the sandbox ended: what the guest returned (its outcome or its own
/// error), or where and why it failed; `Err(None)` when the outer timeout dropped it
/// inside a host call.
type Ended = Result<
    Result<bindings::wasp::playbook::types::Outcome, bindings::wasp::playbook::types::StepError>,
    Option<(Phase, wasmtime::Error)>,
>;

/// The sandbox phase of [`Host::invoke`]: instantiate `app` in `store` and call its
/// `run`, until it returns, the outer timeout (the deadline and a grace) passes, or
/// `kill` is cancelled.
async fn run_sandboxed(
    app: &App,
    store: &mut Store<StepState>,
    invocation: &bindings::wasp::playbook::types::Invocation,
    limits: &Limits,
    kill: &CancellationToken,
) -> Ended {
    // Which side failed decides who is at fault: instantiation is the host's
    // work (but for the guest's start code), while everything that fails inside
    // the call (host calls included) was asked for by the app.
    let run = async {
        let instance = app
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|e| (Phase::Instantiate, e))?;
        instance
            .call_run(&mut *store, invocation)
            .await
            .map_err(|e| (Phase::Call, e))
    };
    tokio::select! {
        result = tokio::time::timeout(limits.timeout + GRACE, run) => match result {
            Ok(Ok(returned)) => Ok(returned),
            Ok(Err(failed)) => Err(Some(failed)),
            Err(_elapsed) => Err(None),
        },
        () = kill.cancelled() => {
            Err(Some((Phase::Call, wasmtime::Error::new(Interrupt::Killed))))
        }
    }
}

/// The collecting phase of [`Host::invoke`]: a failed report holding what the sandbox
/// recorded (the app's log lines with the host's lines of its HTTP requests, in time
/// order; stdout and stderr; what was cut), until the call is judged.
fn collect(state: &mut StepState, duration_us: u64) -> StepReport {
    let (requests, over_limit) = state.http_hooks.records.take();
    let refused = requests.iter().filter(|request| request.refused).count() as u64;
    let egress = crate::trace::Outbound {
        requests: requests.len() as u64 + over_limit,
        refused: refused + over_limit,
    };
    if !requests.is_empty() {
        for request in &requests {
            let (ts, level, message, fields) = request.line();
            state.logs.push_host(ts, level, message, fields);
        }
        if over_limit > 0 {
            let ts = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
            state.logs.push_host(
                ts,
                LogLevel::Warn,
                format!(
                    "the host refused {over_limit} more requests: a step may make {} at most",
                    egress::MAX_REQUESTS_PER_STEP
                ),
                Vec::new(),
            );
        }
        // The request lines join the app's own in time order (the stamps are
        // fixed-width RFC 3339 in UTC, so they sort as text).
        state.logs.lines.sort_by(|a, b| a.ts.cmp(&b.ts));
    }
    let (stdout, stdout_dropped) = state.stdout.take();
    let (stderr, stderr_dropped) = state.stderr.take();
    StepReport {
        status: StepStatus::Failed,
        output: None,
        pathway: None,
        error: None,
        logs: std::mem::take(&mut state.logs.lines),
        stdout,
        stderr,
        duration_us,
        truncated: Truncation {
            log_lines_dropped: state.logs.dropped_lines,
            log_lines_cut: state.logs.truncated_lines,
            stdout_bytes_dropped: stdout_dropped,
            stderr_bytes_dropped: stderr_dropped,
        },
        egress,
    }
}

/// Why a call that failed in `phase` with `error` failed: the host's fault for an
/// instantiation the guest did not stop, else the guest's, classified; a memory or
/// resource limit names what the app asked for (`state` recorded it).
fn stopped(
    phase: Phase,
    error: &wasmtime::Error,
    stderr: &str,
    limits: &Limits,
    state: &StepState,
) -> StepFailure {
    let interrupt = error.downcast_ref::<Interrupt>().copied();
    // Instantiation runs the guest's start code too: its traps are its own.
    let guest_stopped = interrupt.is_some() || error.downcast_ref::<Trap>().is_some();
    let mut classified = if phase == Phase::Instantiate && !guest_stopped {
        host_failure(error)
    } else {
        classify(error, stderr, limits)
    };
    match (
        interrupt,
        state.limiter.memory_refused_at,
        state.resources.refused_at,
    ) {
        (Some(Interrupt::Memory), Some(asked), _) => {
            classified.message = format!(
                "the app asked for {} of memory, over its {} limit",
                human_bytes(asked),
                human_bytes(limits.memory_bytes)
            );
        }
        (Some(Interrupt::Resources), _, Some(held)) => {
            classified.message = format!(
                "the app held {} of host memory in resources (HTTP headers, request bodies), over its {} limit",
                human_bytes(held),
                human_bytes(limits.max_resource_bytes)
            );
        }
        _ => {}
    }
    classified
}

/// Where a call failed: see [`run_sandboxed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Instantiate,
    Call,
}

/// An app's error message, masked, then cut to [`MAX_ERROR_MESSAGE_BYTES`] with the
/// cut stated (masked first, so that a cut cannot leave the start of a secret).
fn capped_error_message(message: String, redactor: &Redactor) -> String {
    let bytes = message.len();
    let mut message = if redactor.is_empty() {
        message
    } else {
        redactor.text(&message)
    };
    if truncate_utf8(&mut message, MAX_ERROR_MESSAGE_BYTES) {
        message.push_str(&format!(
            " …[truncated: the message was {}, over the {} limit]",
            human_bytes(bytes),
            human_bytes(MAX_ERROR_MESSAGE_BYTES)
        ));
    }
    message
}

/// `text` cut to `max` bytes, with `…` if it was cut: to name a value the app chose in
/// a message without copying all of it.
fn head(text: &str, max: usize) -> String {
    let mut head = text.to_owned();
    if truncate_utf8(&mut head, max) {
        head.push('…');
    }
    head
}

fn error_code(code: bindings::wasp::playbook::types::ErrorCode) -> &'static str {
    use bindings::wasp::playbook::types::ErrorCode as C;
    match code {
        C::InvalidInput => "invalid_input",
        C::NotFound => "not_found",
        C::Unauthorized => "unauthorized",
        C::Forbidden => "forbidden",
        C::RateLimited => "rate_limited",
        C::Unavailable => "unavailable",
        C::Timeout => "timeout",
        C::Misconfigured => "misconfigured",
        C::Internal => "internal",
    }
}

/// Check what a guest returned against its action's declaration and the limits.
fn check_outcome(
    action: &ActionInfo,
    outcome: bindings::wasp::playbook::types::Outcome,
    limits: &Limits,
) -> Result<(Value, Option<String>), String> {
    if outcome.output.len() > limits.max_output_bytes {
        return Err(format!(
            "the output is {}, over the {} limit",
            human_bytes(outcome.output.len()),
            human_bytes(limits.max_output_bytes)
        ));
    }
    if let Some(pathway) = &outcome.pathway
        && pathway.len() > MAX_PATHWAY_BYTES
    {
        return Err(format!(
            "the app took a pathway of {}, over the {MAX_PATHWAY_BYTES}-byte limit: `{}`",
            human_bytes(pathway.len()),
            head(pathway, 64)
        ));
    }
    // The size cap alone does not bound what parsing costs: 16 MiB of `[0,0,…]` is
    // 8 million values of 32 bytes each, in vectors that double as they grow.
    let values = json_values_at_most(&outcome.output);
    if values > limits.max_output_values {
        return Err(format!(
            "the output holds more than {} JSON values (up to {values}), over the limit",
            limits.max_output_values
        ));
    }
    let output: Value = serde_json::from_str(&outcome.output)
        .map_err(|e| format!("the output is not JSON: {e}"))?;
    match (&outcome.pathway, action.pathways.is_empty()) {
        (Some(pathway), false) if !action.offers_pathway(pathway) => Err(format!(
            "the app took pathway `{pathway}`, which action `{}` does not declare (it declares {})",
            action.name,
            head(&action.pathways.join(", "), 1024)
        )),
        (Some(pathway), true) => Err(format!(
            "the app took pathway `{pathway}`, but action `{}` declares no pathways",
            action.name
        )),
        (None, false) => Err(format!(
            "action `{}` routes ({}), but the app took no pathway",
            action.name,
            head(&action.pathways.join(", "), 1024)
        )),
        _ => Ok((output, outcome.pathway)),
    }
}

/// An upper bound of the JSON values in `text` (the document, and every array element
/// and object member), in one pass without parsing: a value other than the first of a
/// container follows a `,`, the first follows its `[` or `{`.
fn json_values_at_most(text: &str) -> usize {
    let mut values = 1;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b',' | b'[' | b'{' => values += 1,
                _ => {}
            }
        }
    }
    values
}

/// Turn an error out of wasmtime into a classified failure.
fn classify(error: &wasmtime::Error, stderr: &str, limits: &Limits) -> StepFailure {
    if let Some(interrupt) = error.downcast_ref::<Interrupt>() {
        return interrupted(*interrupt, limits);
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return trapped(trap, stderr);
    }
    if let Some(table) = error.downcast_ref::<ResourceTableError>() {
        return match table {
            ResourceTableError::Full => StepFailure::new(
                FailureKind::MemoryLimit,
                format!(
                    "the app held more than {} resource handles at once",
                    limits.max_resources
                ),
            ),
            other => StepFailure::new(
                FailureKind::Trap,
                format!("the app passed a host call a resource handle it may not use: {other}"),
            ),
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return StepFailure::new(
            FailureKind::Trap,
            format!(
                "the app called exit({}) instead of returning from its action",
                exit.0
            ),
        );
    }
    if error.downcast_ref::<wasmtime::OutOfMemory>().is_some() {
        return host_failure(error);
    }
    // A host function refused what the app asked of it (an empty poll list, a handle
    // it does not own, a write larger than it was offered, a string that is not
    // UTF-8, too many random bytes): every import checks its arguments and fails the
    // call, so this is the app's doing, and only worth a debug line.
    // The root cause: the outer layers are wasmtime's backtrace of the guest.
    let mut why = error.root_cause().to_string();
    truncate_utf8(&mut why, 1024);
    tracing::debug!(error = %why, "a host call of the app failed");
    StepFailure::new(
        FailureKind::Trap,
        format!("the host refused what the app passed it: {why}"),
    )
}

/// A call the sandbox interrupted: the deadline, a kill, or a limit the app passed.
fn interrupted(interrupt: Interrupt, limits: &Limits) -> StepFailure {
    match interrupt {
        Interrupt::Deadline => StepFailure::new(
            FailureKind::Timeout,
            format!(
                "the step ran past its {} deadline",
                humantime::format_duration(limits.timeout)
            ),
        ),
        Interrupt::Killed => {
            StepFailure::new(FailureKind::Killed, "the step was killed".to_owned())
        }
        Interrupt::Memory => StepFailure::new(
            FailureKind::MemoryLimit,
            format!(
                "the app asked for more than its {} memory limit",
                human_bytes(limits.memory_bytes)
            ),
        ),
        Interrupt::Table => StepFailure::new(
            FailureKind::MemoryLimit,
            format!("the app grew a table past {MAX_TABLE_ELEMENTS} elements"),
        ),
        Interrupt::Resources => StepFailure::new(
            FailureKind::MemoryLimit,
            format!(
                "the app held more than {} of host memory in resources (HTTP headers, request bodies)",
                human_bytes(limits.max_resource_bytes)
            ),
        ),
    }
}

/// A call the guest trapped: its stack, a Rust panic it printed to `stderr`, or
/// another trap.
fn trapped(trap: &Trap, stderr: &str) -> StepFailure {
    if *trap == Trap::StackOverflow {
        return StepFailure::new(
            FailureKind::StackOverflow,
            format!(
                "the app exhausted its {} stack (runaway recursion?)",
                human_bytes(MAX_WASM_STACK)
            ),
        );
    }
    if let Some(panic) = panic_message(stderr) {
        return StepFailure::new(FailureKind::Panic, panic);
    }
    StepFailure::new(FailureKind::Trap, format!("the app trapped: {trap}"))
}

/// The host itself failed: wasp's bug or a broken environment, logged as an error.
fn host_failure(error: &wasmtime::Error) -> StepFailure {
    tracing::error!(
        error = format!("{error:#}"),
        "host error while running a step"
    );
    StepFailure::new(
        FailureKind::HostError,
        format!("the host failed to run the step: {error:#}"),
    )
}

/// The panic message a Rust guest printed before aborting: `panicked at <location>:
/// <message>`.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let rest = &stderr[start..];
    let end = rest.find("\nnote: ").unwrap_or(rest.len());
    let message = rest[..end].trim().replace(":\n", ": ").replace('\n', " ");
    let mut message = format!("the app {message}");
    truncate_utf8(&mut message, 4096);
    Some(message)
}

/// `bytes` in the largest binary unit that keeps it readable, e.g. `64 MiB`.
pub fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let exponent = (0..UNITS.len())
        .rev()
        .find(|&e| bytes >= 1 << (10 * e))
        .unwrap_or(0);
    let unit = 1usize << (10 * exponent);
    if bytes.is_multiple_of(unit) {
        format!("{} {}", bytes / unit, UNITS[exponent])
    } else {
        format!("{:.1} {}", bytes as f64 / unit as f64, UNITS[exponent])
    }
}

fn redact(report: &mut StepReport, redactor: &Redactor) {
    if redactor.is_empty() {
        return;
    }
    if let Some(output) = &mut report.output {
        redactor.json(output);
    }
    if let Some(error) = &mut report.error {
        error.message = redactor.text(&error.message);
    }
    // A `*` action's pathway is whatever the app chose, a secret included. Masking it
    // also sends the step down no declared branch, which is what a secret deserves.
    if let Some(pathway) = &mut report.pathway {
        *pathway = redactor.text(pathway);
    }
    // Log lines, the app's and the host's, were masked as they were recorded.
    // A cut stream may end in the start of a secret.
    let redact_stream = |text: &str, dropped: u64| {
        if dropped > 0 {
            redactor.text_cut(text)
        } else {
            redactor.text(text)
        }
    };
    report.stdout = redact_stream(&report.stdout, report.truncated.stdout_bytes_dropped);
    report.stderr = redact_stream(&report.stderr, report.truncated.stderr_bytes_dropped);
}

/// What one app's description may hold. `describe()` runs once per component and its
/// answer is kept for the life of the process (every `wasp app list`, every playbook
/// validated against it): a schema of 14 MB in each of 50 apps held ~800 MB.
const MAX_DESCRIPTION_TEXT: usize = 4 << 10;
/// See [`MAX_DESCRIPTION_TEXT`]: the bytes of one action's input or output JSON Schema.
const MAX_SCHEMA_BYTES: usize = 256 << 10;
/// See [`MAX_DESCRIPTION_TEXT`]: actions of one app, and pathways of one action.
const MAX_ACTIONS: usize = 256;
const MAX_PATHWAYS: usize = 256;
/// See [`MAX_DESCRIPTION_TEXT`]: an app's version text.
const MAX_VERSION_TEXT: usize = 64;

/// `text` as it may appear in a message: at most its first 64 characters. (What prints
/// a message for people escapes its control characters; JSON escapes them itself.)
fn quoted(text: &str) -> String {
    let mut shown: String = text.chars().take(64).collect();
    if text.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}

/// Check a description a guest returned and turn it into the host's form.
fn validate_description(info: bindings::wasp::playbook::types::AppInfo) -> Result<AppInfo, String> {
    if !valid_name(&info.name) {
        return Err(format!(
            "returned the app name `{}`; names are 1–64 characters of a-z, 0-9, `-` and `_`",
            quoted(&info.name)
        ));
    }
    bounded("a version".to_owned(), &info.version, MAX_VERSION_TEXT)?;
    bounded(
        "a description".to_owned(),
        &info.description,
        MAX_DESCRIPTION_TEXT,
    )?;
    if info.actions.len() > MAX_ACTIONS {
        return Err(format!(
            "returned {} actions; at most {MAX_ACTIONS} are allowed",
            info.actions.len()
        ));
    }
    let mut actions: Vec<ActionInfo> = Vec::with_capacity(info.actions.len());
    for action in info.actions {
        if actions.iter().any(|a| a.name == action.name) {
            return Err(format!("lists action `{}` twice", action.name));
        }
        actions.push(validate_action(action)?);
    }
    Ok(AppInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        actions,
    })
}

/// One action of a description, checked: its name, the sizes of its texts, its
/// pathways, and schemas that are JSON.
fn validate_action(
    action: bindings::wasp::playbook::types::ActionInfo,
) -> Result<ActionInfo, String> {
    if !valid_name(&action.name) {
        return Err(format!(
            "returned the action name `{}`; names are 1–64 characters of a-z, 0-9, `-` and `_`",
            quoted(&action.name)
        ));
    }
    let name = &action.name;
    bounded(
        format!("a description of `{name}`"),
        &action.description,
        MAX_DESCRIPTION_TEXT,
    )?;
    bounded(
        format!("an input schema for `{name}`"),
        &action.input_schema,
        MAX_SCHEMA_BYTES,
    )?;
    bounded(
        format!("an output schema for `{name}`"),
        &action.output_schema,
        MAX_SCHEMA_BYTES,
    )?;
    if action.pathways.len() > MAX_PATHWAYS {
        return Err(format!(
            "returned {} pathways for `{name}`; at most {MAX_PATHWAYS} are allowed",
            action.pathways.len()
        ));
    }
    if let Some(long) = action.pathways.iter().find(|p| p.len() > MAX_PATHWAY_BYTES) {
        return Err(format!(
            "returned the pathway `{}` for `{name}`; a pathway has at most {MAX_PATHWAY_BYTES} bytes",
            quoted(long)
        ));
    }
    let schema = |which: &str, text: &str| {
        serde_json::from_str::<Value>(text)
            .map_err(|e| format!("returned an {which} schema for `{name}` that is not JSON: {e}"))
    };
    Ok(ActionInfo {
        input_schema: schema("input", &action.input_schema)?,
        output_schema: schema("output", &action.output_schema)?,
        name: action.name,
        description: action.description,
        pathways: action.pathways,
    })
}

/// Whether an app or action name is 1–64 characters of a-z, 0-9, `-` and `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `Ok` when `text` (the description's `what`) is at most `bound` bytes.
fn bounded(what: String, text: &str, bound: usize) -> Result<(), String> {
    if text.len() > bound {
        Err(format!(
            "returned {what} of {} bytes; at most {} are kept",
            text.len(),
            human_bytes(bound)
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 21: `describe()` schemas of 14 MB each were kept for the life of the server.
    #[test]
    fn a_description_past_its_bounds_is_refused_naming_the_bound() {
        use bindings::wasp::playbook::types::{ActionInfo as Action, AppInfo as Info};
        let action = |schema: String, pathways: Vec<String>| Action {
            name: "lookup".to_owned(),
            description: String::new(),
            input_schema: schema,
            output_schema: "{}".to_owned(),
            pathways,
        };
        let app = |actions: Vec<Action>| Info {
            name: "bloated".to_owned(),
            version: "1.0.0".to_owned(),
            description: String::new(),
            actions,
        };
        let fine = format!("{{\"description\": \"{}\"}}", "x".repeat(200 << 10));
        assert!(validate_description(app(vec![action(fine, vec![])])).is_ok());
        let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(14 << 20));
        assert_eq!(
            validate_description(app(vec![action(huge, vec![])])).unwrap_err(),
            "returned an input schema for `lookup` of 14680083 bytes; at most 256 KiB are kept"
        );
        let many: Vec<String> = (0..300).map(|i| format!("p{i}")).collect();
        assert_eq!(
            validate_description(app(vec![action("{}".to_owned(), many)])).unwrap_err(),
            "returned 300 pathways for `lookup`; at most 256 are allowed"
        );
        let long = vec!["x".repeat(300)];
        let error = validate_description(app(vec![action("{}".to_owned(), long)])).unwrap_err();
        assert_eq!(
            error,
            format!(
                "returned the pathway `{}…` for `lookup`; a pathway has at most 256 bytes",
                "x".repeat(64)
            )
        );
        let mut named = app(vec![]);
        named.name = "n".repeat(1 << 20);
        let error = validate_description(named).unwrap_err();
        assert!(error.len() < 200, "the name is cut in its error: {error}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(16 << 20), "16 MiB");
        assert_eq!(human_bytes(100_000_000), "95.4 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn panic_messages_are_lifted_from_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom at 3\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "the app panicked at src/lib.rs:10:5: boom at 3"
        );
        assert_eq!(panic_message("all fine"), None);
    }

    #[test]
    fn json_values_are_bounded_without_parsing() {
        assert_eq!(json_values_at_most("7"), 1);
        assert_eq!(json_values_at_most("[0,0,0]"), 4);
        assert_eq!(json_values_at_most(r#"{"a":[1,2],"b":{}}"#), 6);
        // Commas and brackets inside strings, escaped quotes included, do not count.
        assert_eq!(json_values_at_most(r#"["a,[{", "\",\"", 1]"#), 4);
        assert_eq!(json_values_at_most(r#"["\\", ","]"#), 3);
    }

    #[test]
    fn outcomes_are_checked_against_the_declaration() {
        let action = ActionInfo {
            name: "evaluate".into(),
            description: String::new(),
            input_schema: Value::Null,
            output_schema: Value::Null,
            pathways: vec!["true".into(), "false".into()],
        };
        let outcome =
            |output: &str, pathway: Option<&str>| bindings::wasp::playbook::types::Outcome {
                output: output.into(),
                pathway: pathway.map(Into::into),
            };
        let limits = Limits::default();
        assert!(check_outcome(&action, outcome("{}", Some("true")), &limits).is_ok());
        assert_eq!(
            check_outcome(&action, outcome("{}", Some("maybe")), &limits).unwrap_err(),
            "the app took pathway `maybe`, which action `evaluate` does not declare (it declares true, false)"
        );
        assert!(
            check_outcome(&action, outcome("{", Some("true")), &limits)
                .unwrap_err()
                .starts_with("the output is not JSON")
        );
        let small = Limits {
            max_output_bytes: 1,
            ..limits
        };
        assert_eq!(
            check_outcome(&action, outcome("[1]", Some("true")), &small).unwrap_err(),
            "the output is 3 B, over the 1 B limit"
        );
    }
}
