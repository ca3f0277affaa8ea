//! The on-disk cache of compiled components and of their descriptions.
//!
//! Compiling a Rust component takes ~0.1 s and a Python or JavaScript one ~10 s;
//! loading the compiled code back takes ~0.1–3 ms. Entries are keyed by the SHA-256 of
//! the component's bytes and by the engine's compatibility hash (wasmtime version and
//! every setting that affects code generation), so a changed app or a new wasp never
//! loads stale code.
//!
//! Loading compiled code is `unsafe` in wasmtime: the bytes are trusted to be what
//! wasmtime wrote. The cache directory is therefore the host's own (created `0700`),
//! entries are written to a temporary file and renamed into place, and an entry that
//! fails to load is recompiled and overwritten.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::Error;

/// Where compiled components go when nothing else is configured: `$WASP_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/wasp`, else `$HOME/.cache/wasp`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(crate::env::CACHE_DIR) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("wasp"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("wasp"))
}

#[derive(Debug)]
pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

/// The hex SHA-256 of `bytes`.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn entry(&self, hash: &str, suffix: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{hash}-{}.{suffix}", self.engine_key)))
    }

    /// The compiled form of `bytes` (whose hash is `hash`), from the cache or freshly
    /// compiled (and then cached).
    pub(crate) fn component(
        &self,
        engine: &Engine,
        source: &Path,
        hash: &str,
        bytes: &[u8],
    ) -> Result<Component, Error> {
        let entry = self.entry(hash, "cwasm");
        if let Some(component) = self.cached(engine, entry.as_deref()) {
            return Ok(component);
        }
        // One compiler per entry, across processes (a test suite starts many `wasp`
        // processes at once, and a Python component takes ~10 s and ~0.5 GiB): the
        // others wait on the lock, then load what the first wrote.
        let lock = entry.as_deref().and_then(lock_entry);
        if let Some(component) = self.cached(engine, entry.as_deref()) {
            return Ok(component);
        }
        let component = Component::from_binary(engine, bytes).map_err(|e| Error::Compile {
            path: source.to_owned(),
            message: format!("{e:#}"),
        })?;
        if let Some(entry) = entry {
            match component.serialize() {
                Ok(compiled) => self.write(&entry, &compiled),
                Err(e) => tracing::warn!(error = %e, "could not serialize a compiled component"),
            }
            // The entry exists now, so later loads need no lock: leave no lock file
            // behind. (A process that opened it just before may compile once more;
            // entries are written whole, so that costs time, never correctness.)
            if lock.is_some() {
                let _ = std::fs::remove_file(entry.with_extension("lock"));
            }
        }
        drop(lock);
        Ok(component)
    }

    /// The compiled component of `entry`, when it exists and loads.
    fn cached(&self, engine: &Engine, entry: Option<&Path>) -> Option<Component> {
        if let Some(entry) = entry.filter(|e| e.exists()) {
            #[expect(
                unsafe_code,
                reason = "the cache directory is the host's own and entries are written \
                          whole by `Component::serialize` for this engine's compatibility hash"
            )]
            // SAFETY: see the module docs and the reason above.
            match unsafe { Component::deserialize_file(engine, entry) } {
                Ok(component) => return Some(component),
                Err(e) => {
                    tracing::warn!(entry = %entry.display(), error = %e, "cache entry unusable; recompiling")
                }
            }
        }
        None
    }

    /// The cached description (JSON) of the component with `hash`, if any.
    pub(crate) fn description(&self, hash: &str) -> Option<String> {
        std::fs::read_to_string(self.entry(hash, "describe.json")?).ok()
    }

    pub(crate) fn store_description(&self, hash: &str, json: &str) {
        if let Some(entry) = self.entry(hash, "describe.json") {
            self.write(&entry, json.as_bytes());
        }
    }

    /// Write `bytes` to `path` atomically; a cache that cannot be written only costs
    /// a recompilation next time, so failures are logged, not returned.
    fn write(&self, path: &Path, bytes: &[u8]) {
        let Some(dir) = path.parent() else { return };
        let result = create_private_dir(dir).and_then(|()| {
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            file.write_all(bytes)?;
            file.persist(path).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not write to the component cache");
        }
    }
}

/// An exclusive lock on `entry`'s lock file, held until dropped; `None` (compile
/// without it) when the lock cannot be taken.
fn lock_entry(entry: &Path) -> Option<std::fs::File> {
    let dir = entry.parent()?;
    create_private_dir(dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(entry.with_extension("lock"))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
