//! Compiling components, within bounds.
//!
//! Cranelift's time grows much faster than a function's size when the function keeps
//! many values live across a loop: a hostile 650 KB component compiled in 11.5 s, one
//! of 985 KB in 60 s (and `wasp serve` answered nothing while it loaded the apps
//! directory), one of 1.5 MB was still compiling after 7 minutes. wasmtime compiles
//! synchronously and a compilation cannot be cancelled, so the bounds are, in order:
//!
//! 1. A check of the component's shape before compiling anything, with `wasmparser`
//!    (it reads the sections and the locals of each function, not the code): its size,
//!    its number of functions, the size of each function's code, the locals each
//!    declares, and the product of the two. The product is what tells the hostile
//!    shape from real code: compile time grew with code × live locals (on a 2-core
//!    machine, 300 locals × 420 KB took 8 s, 1,000 × 480 KB 30 s), while the largest
//!    function of the example apps, CPython's interpreter loop in a Python component,
//!    has 417 KiB of code and 271 locals, and no function of theirs has a product
//!    above 9 million. These refuse the pathological shapes, deterministically, in
//!    milliseconds. What they still let through compiled in ~12 s at the most (64
//!    locals × 985 KB, on the same machine): like a Python app. [`CompileLimits`]
//!    holds the bounds (see each field).
//! 2. A time bound on the compilation itself: it runs on a thread of its own, and the
//!    load stops waiting for it after [`CompileLimits::timeout`] and refuses the app.
//!    The thread cannot be stopped; it is abandoned, keeps its compiler slot until
//!    it ends, and its result is neither used nor cached, so the app is refused again
//!    the next time (at once in this process: its content hash is remembered).
//! 3. At most [`CompileLimits::max_parallel`] compilations run at once, abandoned ones
//!    included, so runaway compilations never pile up. A load waits for a slot while
//!    the compilations holding them are within their bound (each ends or is abandoned
//!    by then); when every slot is held by an abandoned one for a whole bound, it is
//!    refused, naming them.
//!
//! Loads that find their component in the cache skip 2 and 3 (loading compiled code
//! takes milliseconds), and the registry loads the files of a directory together (16
//! at a time), so one slow app delays no other.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::cache::ComponentCache;
use super::{Error, human_bytes};

/// Bounds on the components wasp compiles. Each guards against a component that
/// would hold a core (and up to gigabytes of memory) for minutes while it compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// Bytes of one component file, checked before the file is read whole. Default
    /// 64 MiB; a Python component (componentize-py: the interpreter and its standard
    /// library) is ~18 MiB, a JavaScript one ~12 MiB.
    pub max_component_bytes: usize,
    /// Functions of all the core modules of one component. Default 200,000; the Python
    /// and JavaScript components have ~13,000.
    pub max_functions: usize,
    /// Bytes of code of one function. Default 1 MiB; the largest function of the
    /// example apps (CPython's interpreter loop) has 417 KiB.
    pub max_function_bytes: usize,
    /// Locals one function declares (each a value cranelift may have to keep live).
    /// Default 10,000; the example apps declare at most 271.
    pub max_locals: u64,
    /// Locals × bytes of code of one function, the measure compile time grew with.
    /// Default 64 Mi (67,108,864); the example apps reach 9 million (a JavaScript
    /// component), 3.5 million (Python), 0.9 million (Rust).
    pub max_function_complexity: u64,
    /// Time one compilation may take before the app is refused. Default 120 s; a
    /// Python component takes ~10 s on an idle 2-core machine.
    pub timeout: Duration,
    /// Compilations running at once, abandoned ones included. Default 2: wasmtime
    /// compiles the functions of one component on every core already, and each
    /// Python or JavaScript compilation takes ~0.5 GiB.
    pub max_parallel: usize,
}

impl Default for CompileLimits {
    fn default() -> Self {
        Self {
            max_component_bytes: 64 << 20,
            max_functions: 200_000,
            max_function_bytes: 1 << 20,
            max_locals: 10_000,
            max_function_complexity: 64 << 20,
            timeout: Duration::from_secs(120),
            max_parallel: 2,
        }
    }
}

/// Why a component is refused before or while it compiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The file is too large.
    #[error("it is {}, over the {} bound on a component's size", human_bytes(*size), human_bytes(*bound))]
    Size {
        /// Its size.
        size: usize,
        /// The bound.
        bound: usize,
    },
    /// It has too many functions.
    #[error("it has more than {bound} functions, the bound on a component's functions")]
    Functions {
        /// The bound.
        bound: usize,
    },
    /// One function's code is too large.
    #[error(
        "its function {index} (counting the functions of all its modules from 0) has {} of code, over the {} bound on one function",
        human_bytes(*size),
        human_bytes(*bound)
    )]
    FunctionSize {
        /// The function.
        index: usize,
        /// Its size.
        size: usize,
        /// The bound.
        bound: usize,
    },
    /// One function declares too many locals.
    #[error(
        "its function {index} (counting the functions of all its modules from 0) declares {locals} locals, over the bound of {bound} locals in one function"
    )]
    Locals {
        /// The function.
        index: usize,
        /// How many it declares (at least).
        locals: u64,
        /// The bound.
        bound: u64,
    },
    /// One function has too many locals for its size.
    #[error(
        "its function {index} (counting the functions of all its modules from 0) declares {locals} locals over {} of code, {} locals × bytes, over the bound of {bound} (the shape that makes compiling slow)",
        human_bytes(*size),
        locals * *size as u64
    )]
    Complexity {
        /// The function.
        index: usize,
        /// How many locals it declares.
        locals: u64,
        /// Its size.
        size: usize,
        /// The bound.
        bound: u64,
    },
    /// Compiling it took too long.
    #[error(
        "compiling it took longer than the {} bound (a function too complex for the compiler?)",
        humantime::format_duration(*bound)
    )]
    Timeout {
        /// The bound.
        bound: Duration,
    },
    /// Every compiler slot stayed held by a compilation past its bound.
    #[error(
        "no compiler was free within {}: every one is still compiling a component past its bound ({}), and such compilations run on until they end",
        humantime::format_duration(*bound),
        abandoned.join(", ")
    )]
    Busy {
        /// The bound.
        bound: Duration,
        /// The files whose abandoned compilations hold the slots.
        abandoned: Vec<String>,
    },
}

/// Check `bytes`' shape against `limits` without compiling. `Err(Ok(_))` is a
/// refusal; `Err(Err(_))` says the bytes are not WebAssembly.
pub(crate) fn check_shape(
    bytes: &[u8],
    limits: &CompileLimits,
) -> Result<(), Result<Refusal, wasmparser::BinaryReaderError>> {
    if bytes.len() > limits.max_component_bytes {
        return Err(Ok(Refusal::Size {
            size: bytes.len(),
            bound: limits.max_component_bytes,
        }));
    }
    let malformed = Err::<Refusal, wasmparser::BinaryReaderError>;
    let mut index = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let wasmparser::Payload::CodeSectionEntry(body) = payload.map_err(malformed)? else {
            continue;
        };
        if index >= limits.max_functions {
            return Err(Ok(Refusal::Functions {
                bound: limits.max_functions,
            }));
        }
        let size = body.range().len();
        if size > limits.max_function_bytes {
            return Err(Ok(Refusal::FunctionSize {
                index,
                size,
                bound: limits.max_function_bytes,
            }));
        }
        let mut locals = 0u64;
        for declared in body.get_locals_reader().map_err(malformed)? {
            let (count, _) = declared.map_err(malformed)?;
            locals += u64::from(count);
            if locals > limits.max_locals {
                return Err(Ok(Refusal::Locals {
                    index,
                    locals,
                    bound: limits.max_locals,
                }));
            }
        }
        if locals.saturating_mul(size as u64) > limits.max_function_complexity {
            return Err(Ok(Refusal::Complexity {
                index,
                locals,
                size,
                bound: limits.max_function_complexity,
            }));
        }
        index += 1;
    }
    Ok(())
}

/// The compilations of one host: its slots, and the components refused for time.
#[derive(Debug)]
pub(crate) struct Compiler {
    limits: CompileLimits,
    slots: Arc<Semaphore>,
    /// The compilations holding a slot.
    running: Arc<Mutex<Vec<Running>>>,
    /// Numbers the compilations, to find them in `running`.
    next_id: AtomicU64,
    /// The content hashes of components whose compilation ran past the bound.
    timed_out: Mutex<HashSet<String>>,
}

/// A compilation holding a slot.
#[derive(Debug)]
struct Running {
    id: u64,
    source: PathBuf,
    /// Past its bound: nobody waits for it any more.
    abandoned: bool,
}

impl Compiler {
    /// How many compilations have started (components taken from the cache are not).
    pub(crate) fn started(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    pub(crate) fn new(limits: CompileLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_parallel.max(1))),
            limits,
            running: Arc::default(),
            next_id: AtomicU64::new(0),
            timed_out: Mutex::default(),
        }
    }

    pub(crate) fn limits(&self) -> &CompileLimits {
        &self.limits
    }

    /// The compiled component of `bytes` (from `source`, with content hash `hash`):
    /// shape-checked, then from `cache` or compiled within the bounds and cached.
    pub(crate) async fn component(
        &self,
        engine: &Engine,
        cache: &Arc<ComponentCache>,
        source: &Path,
        hash: &str,
        bytes: Vec<u8>,
    ) -> Result<Component, Error> {
        if lock(&self.timed_out).contains(hash) {
            return Err(Error::Refused {
                path: source.to_owned(),
                refusal: Refusal::Timeout {
                    bound: self.limits.timeout,
                },
            });
        }
        let (cached, bytes) = self
            .checked_or_cached(engine, cache, source, hash, bytes)
            .await?;
        if let Some(component) = cached {
            return Ok(component);
        }
        let slot = self.slot(source).await?;
        let job = Job {
            engine: engine.clone(),
            cache: Arc::clone(cache),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            source: source.to_owned(),
            hash: hash.to_owned(),
            bytes,
            abandoned: Arc::new(AtomicBool::new(false)),
            running: Arc::clone(&self.running),
        };
        self.compile(job, slot, source, hash).await
    }

    /// Bound 1, the shape check, then the cache: the cached component, if any, and the
    /// bytes back. Both run off the async workers: the check reads every function's
    /// header (tens of milliseconds for a large component) and a cache entry is hashed
    /// whole.
    async fn checked_or_cached(
        &self,
        engine: &Engine,
        cache: &Arc<ComponentCache>,
        source: &Path,
        hash: &str,
        bytes: Vec<u8>,
    ) -> Result<(Option<Component>, Vec<u8>), Error> {
        let (checked, bytes) = {
            let (engine, cache, hash) = (engine.clone(), Arc::clone(cache), hash.to_owned());
            let limits = self.limits;
            tokio::task::spawn_blocking(move || {
                let checked = check_shape(&bytes, &limits).map(|()| cache.compiled(&engine, &hash));
                (checked, bytes)
            })
            .await
            .map_err(|source| Error::Task {
                task: "the cache task",
                source,
            })?
        };
        let cached = checked.map_err(|e| match e {
            Ok(refusal) => Error::Refused {
                path: source.to_owned(),
                refusal,
            },
            Err(malformed) => Error::Compile {
                path: source.to_owned(),
                source: wasmtime::Error::new(malformed),
            },
        })?;
        Ok((cached, bytes))
    }

    /// Bound 3: a compiler slot, waited for while the compilations holding them are
    /// within their bound; refused when abandoned ones have held every slot for a
    /// whole bound.
    async fn slot(&self, source: &Path) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        let bound = self.limits.timeout;
        loop {
            match tokio::time::timeout(bound, Arc::clone(&self.slots).acquire_owned()).await {
                Ok(Ok(slot)) => return Ok(slot),
                Ok(Err(_)) => return Err(Error::Unavailable("the compiler is closed")),
                Err(_) => {
                    let running = lock(&self.running);
                    let abandoned: Vec<String> = running
                        .iter()
                        .filter(|r| r.abandoned)
                        .map(|r| format!("`{}`", r.source.display()))
                        .collect();
                    if abandoned.len() >= self.limits.max_parallel.max(1) {
                        return Err(Error::Refused {
                            path: source.to_owned(),
                            refusal: Refusal::Busy { bound, abandoned },
                        });
                    }
                    // Compilations within their bound hold a slot: each ends or is
                    // abandoned within a bound, so waiting on makes progress.
                }
            }
        }
    }

    /// Bound 2: `job` (of `source`, with content hash `hash`) on a thread of its own,
    /// holding `slot` until it ends, waited for no longer than the time bound; past it,
    /// the compilation is abandoned and its component refused from then on.
    async fn compile(
        &self,
        job: Job,
        slot: tokio::sync::OwnedSemaphorePermit,
        source: &Path,
        hash: &str,
    ) -> Result<Component, Error> {
        let bound = self.limits.timeout;
        let (id, abandoned) = (job.id, Arc::clone(&job.abandoned));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        lock(&self.running).push(Running {
            id,
            source: source.to_owned(),
            abandoned: false,
        });
        // A thread of its own, not the blocking pool: an abandoned compilation may run
        // for minutes, and the slot (moved in) is given back only when it ends.
        let spawned = std::thread::Builder::new()
            .name("wasp-compile".into())
            .spawn(move || {
                let result = job.run();
                drop(slot);
                let _ = sender.send(result);
            });
        if let Err(source) = spawned {
            forget(&self.running, id);
            return Err(Error::Thread { source });
        }
        match tokio::time::timeout(bound, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Unavailable(
                "the compiler thread ended without an answer",
            )),
            Err(_) => {
                abandoned.store(true, Ordering::Release);
                if let Some(running) = lock(&self.running).iter_mut().find(|r| r.id == id) {
                    running.abandoned = true;
                }
                lock(&self.timed_out).insert(hash.to_owned());
                tracing::warn!(
                    path = %source.display(),
                    bound = %humantime::format_duration(bound),
                    "compilation abandoned past its bound; it runs on until it ends, holding a compiler slot"
                );
                Err(Error::Refused {
                    path: source.to_owned(),
                    refusal: Refusal::Timeout { bound },
                })
            }
        }
    }
}

/// One compilation, run on its own thread.
struct Job {
    engine: Engine,
    cache: Arc<ComponentCache>,
    id: u64,
    source: PathBuf,
    hash: String,
    bytes: Vec<u8>,
    abandoned: Arc<AtomicBool>,
    running: Arc<Mutex<Vec<Running>>>,
}

impl Job {
    fn run(self) -> Result<Component, Error> {
        // One compiler per entry, across processes: the others wait on the lock, then
        // load what the first wrote.
        let entry_lock = self.cache.lock(&self.hash);
        let result = match self.cache.compiled(&self.engine, &self.hash) {
            Some(component) => Ok(component),
            None => Component::from_binary(&self.engine, &self.bytes)
                .map_err(|source| Error::Compile {
                    path: self.source.clone(),
                    source,
                })
                .inspect(|component| {
                    // What ran past the bound stays refused: caching it would let the
                    // next start load it.
                    if !self.abandoned.load(Ordering::Acquire) {
                        self.cache.store_compiled(&self.hash, component);
                    }
                }),
        };
        drop(entry_lock);
        forget(&self.running, self.id);
        result
    }
}

/// Take compilation `id` off the list of those holding a slot.
fn forget(running: &Mutex<Vec<Running>>, id: u64) {
    lock(running).retain(|r| r.id != id);
}

/// `mutex`'s value; a panic while it was held leaves nothing half-done here.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component holding one core module whose one function has `locals` locals and
    /// `body` more bytes of `nop`s.
    fn component(locals: u32, body: usize) -> Vec<u8> {
        use wasm_encoder::{
            CodeSection, Component, Function, FunctionSection, Instruction, Module, ModuleSection,
            TypeSection, ValType,
        };
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut function = Function::new([(locals, ValType::I64)]);
        for _ in 0..body {
            function.instruction(&Instruction::Nop);
        }
        function.instruction(&Instruction::End);
        let mut code = CodeSection::new();
        code.function(&function);
        let mut module = Module::new();
        module.section(&types).section(&functions).section(&code);
        let mut component = Component::new();
        component.section(&ModuleSection(&module));
        component.finish()
    }

    #[test]
    fn shapes_past_a_bound_are_refused_with_it() {
        let limits = CompileLimits {
            max_component_bytes: 10_000,
            max_functions: 1,
            max_function_bytes: 1_000,
            max_locals: 100,
            max_function_complexity: 20_000,
            ..CompileLimits::default()
        };
        // The parser's error, the cause of a malformed component's, has no `==`.
        assert!(check_shape(&component(20, 900), &limits).is_ok());
        assert!(matches!(
            check_shape(&component(101, 10), &limits),
            Err(Ok(Refusal::Locals {
                index: 0,
                locals: 101,
                bound: 100
            }))
        ));
        assert!(matches!(
            check_shape(&component(1, 1_000), &limits),
            Err(Ok(Refusal::FunctionSize {
                index: 0,
                bound: 1_000,
                ..
            }))
        ));
        assert!(matches!(
            check_shape(&component(1, 20_000), &limits),
            Err(Ok(Refusal::Size { bound: 10_000, .. }))
        ));
        assert!(matches!(
            check_shape(&component(100, 300), &limits),
            Err(Ok(Refusal::Complexity {
                index: 0,
                locals: 100,
                bound: 20_000,
                ..
            }))
        ));
        let none = CompileLimits {
            max_functions: 0,
            ..limits
        };
        assert!(matches!(
            check_shape(&component(1, 1), &none),
            Err(Ok(Refusal::Functions { bound: 0 }))
        ));
        assert!(
            check_shape(b"\0asm\x0d\0\x01\0\x01\x05", &limits)
                .unwrap_err()
                .is_err()
        );
    }
}
