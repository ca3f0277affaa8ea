//! The on-disk cache of compiled components and of their descriptions.
//!
//! Compiling a Rust component takes ~0.1 s and a Python or JavaScript one ~10 s;
//! loading the compiled code back takes ~0.1–3 ms. Entries are keyed by the SHA-256 of
//! the component's bytes and by the engine's compatibility hash (wasmtime version and
//! every setting that affects code generation), so a changed app or a new wasp never
//! loads stale code.
//!
//! Loading compiled code is `unsafe` in wasmtime: the bytes are trusted to be what
//! wasmtime wrote, and a wrong one runs other code or crashes the process. So:
//! - the cache directory must be the user's own and writable by nobody else: one that
//!   is not is refused when the host starts (a directory we create is `0700`);
//! - an entry must be a file of the user's, writable by nobody else (ours are `0600`);
//! - every entry starts with a header naming the component it was compiled from and the
//!   SHA-256 of the compiled bytes after it. An entry copied over another (it would run
//!   the other app's code) or corrupted (a truncated or flipped entry crashed wasp with
//!   SIGTRAP) fails that check and is recompiled, never deserialized.
//!
//! Entries are written to a temporary file and renamed into place. Someone who can
//! write the directory as this user can still plant code: the checks keep out other
//! users and accidents, not the user's own account.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
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

/// The entry format, part of every entry's name: entries of another format are never
/// read (the first format had no header).
const FORMAT: &str = "v2";

/// The first bytes of every entry, before the source's hash and the payload's.
const MAGIC: &[u8] = b"wasp-cache v2 ";

/// A SHA-256, in hex.
const HEX_HASH: usize = 64;

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
    /// The cache in `dir` (none when `None`), refused when `dir` exists and is not
    /// the user's own or is writable by others.
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self, Error> {
        if let Some(dir) = &dir {
            match std::fs::metadata(dir) {
                Ok(metadata) => {
                    if let Some(problem) = not_private(&metadata, true) {
                        return Err(Error::Cache {
                            path: dir.clone(),
                            problem,
                        });
                    }
                }
                // Created private at the first write.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::CacheUnreadable {
                        path: dir.clone(),
                        source,
                    });
                }
            }
        }
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn entry(&self, hash: &str, suffix: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{hash}-{}-{FORMAT}.{suffix}", self.engine_key)))
    }

    /// The compiled form of the component with `hash`, when the cache holds a sound
    /// entry for it.
    pub(crate) fn compiled(&self, engine: &Engine, hash: &str) -> Option<Component> {
        let entry = self.entry(hash, "cwasm")?;
        let payload = read_entry(&entry, hash)?;
        #[expect(
            unsafe_code,
            reason = "the entry is a file of the user's in the user's private directory, \
                      written by `Component::serialize` for this engine's compatibility hash, \
                      and its header binds it to this component and to these exact bytes"
        )]
        // SAFETY: see the module docs and the reason above.
        match unsafe { Component::deserialize(engine, &payload) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(entry = %entry.display(), error = %e, "cache entry unusable; recompiling");
                None
            }
        }
    }

    /// Keep `component`, compiled from the component with `hash`.
    pub(crate) fn store_compiled(&self, hash: &str, component: &Component) {
        let Some(entry) = self.entry(hash, "cwasm") else {
            return;
        };
        match component.serialize() {
            Ok(compiled) => self.write(&entry, hash, &compiled),
            Err(e) => tracing::warn!(error = %e, "could not serialize a compiled component"),
        }
    }

    /// An exclusive lock on the compiled entry of `hash`, held until dropped, so that
    /// one process compiles a component while the others wait and then load what it
    /// wrote (a test suite starts many `wasp` processes at once, and a Python component
    /// takes ~10 s and ~0.5 GiB). `None` (compile without it) when there is no cache
    /// or the lock cannot be taken.
    pub(crate) fn lock(&self, hash: &str) -> Option<EntryLock> {
        let path = self.entry(hash, "lock")?;
        create_private_dir(path.parent()?).ok()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ok()?;
        file.lock().ok()?;
        Some(EntryLock { file, path })
    }

    /// The cached description (JSON) of the component with `hash`, if any.
    pub(crate) fn description(&self, hash: &str) -> Option<String> {
        String::from_utf8(read_entry(&self.entry(hash, "describe.json")?, hash)?).ok()
    }

    pub(crate) fn store_description(&self, hash: &str, json: &str) {
        if let Some(entry) = self.entry(hash, "describe.json") {
            self.write(&entry, hash, json.as_bytes());
        }
    }

    /// Write the entry of the component with `hash` to `path` atomically: the header,
    /// then `payload`. A cache that cannot be written only costs a recompilation next
    /// time, so failures are logged, not returned.
    fn write(&self, path: &Path, hash: &str, payload: &[u8]) {
        let Some(dir) = path.parent() else { return };
        let result = create_private_dir(dir).and_then(|()| {
            // `NamedTempFile` creates its file `0600`.
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            file.write_all(&header(hash, payload))?;
            file.write_all(payload)?;
            file.persist(path).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not write to the component cache");
        }
    }
}

/// A held lock on a cache entry: dropping it unlocks it and removes the lock file (the
/// entry exists by then, so later loads need no lock; a process that opened the lock
/// file just before may compile once more, which costs time, never correctness).
pub(crate) struct EntryLock {
    file: std::fs::File,
    path: PathBuf,
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// The header of an entry for the component with `hash` holding `payload`.
fn header(hash: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(hash.as_bytes());
    header.push(b' ');
    header.extend_from_slice(content_hash(payload).as_bytes());
    header.push(b'\n');
    header
}

/// The payload of the entry at `path`, when the entry exists, is a private file of the
/// user's, and its header says it holds exactly that payload for the component with
/// `hash`; anything else is logged (it should not happen) and treated as absent.
fn read_entry(path: &Path, hash: &str) -> Option<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(entry = %path.display(), error = %e, "cache entry unreadable; recompiling");
            return None;
        }
    };
    let refuse = |problem: &str| {
        tracing::warn!(entry = %path.display(), "cache entry refused: {problem}; recompiling");
        None
    };
    // The metadata of the file opened, not of the path: it cannot change in between.
    let metadata = match file.metadata() {
        Ok(metadata) => metadata,
        Err(e) => return refuse(&format!("cannot be inspected: {e}")),
    };
    if let Some(problem) = not_private(&metadata, false) {
        return refuse(&problem);
    }
    let mut bytes = Vec::new();
    if let Err(e) = file.read_to_end(&mut bytes) {
        return refuse(&format!("cannot be read: {e}"));
    }
    let header_len = MAGIC.len() + HEX_HASH + 1 + HEX_HASH + 1;
    if bytes.len() < header_len || !bytes.starts_with(MAGIC) {
        return refuse("it is not an entry of this format");
    }
    let source = &bytes[MAGIC.len()..MAGIC.len() + HEX_HASH];
    let digest = bytes[MAGIC.len() + HEX_HASH + 1..header_len - 1].to_vec();
    if source != hash.as_bytes() {
        return refuse("it was compiled from another component (copied over this one?)");
    }
    let payload = bytes.split_off(header_len);
    if digest != content_hash(&payload).as_bytes() {
        return refuse("its content does not match its checksum (corrupted or altered)");
    }
    Some(payload)
}

/// Why a cache directory (`is_dir`) or entry described by `metadata` may not be trusted,
/// if it may not: it must be the user's own and not writable by group or others.
#[cfg(unix)]
fn not_private(metadata: &std::fs::Metadata, is_dir: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let what = if is_dir { "directory" } else { "file" };
    if is_dir != metadata.is_dir() {
        return Some(format!("is not a {what}"));
    }
    let user = rustix::process::geteuid().as_raw();
    if metadata.uid() != user {
        return Some(format!(
            "is owned by user id {}, not by this user ({user})",
            metadata.uid()
        ));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "is writable by {} (mode {mode:04o}); wasp creates it {}",
            if mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            if is_dir { "0700" } else { "0600" }
        ));
    }
    None
}

/// Only Unix systems are checked.
#[cfg(not(unix))]
fn not_private(metadata: &std::fs::Metadata, is_dir: bool) -> Option<String> {
    (is_dir != metadata.is_dir()).then(|| "is not of the expected kind".to_owned())
}

/// Create `dir` (`0700`) if it is missing, and check that it is private: it may have
/// appeared, made by someone else, after the host checked it at start.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    match not_private(&std::fs::metadata(dir)?, true) {
        Some(problem) => Err(std::io::Error::other(format!(
            "the cache directory {problem}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_bound_to_its_component_and_its_bytes() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("entry");
        let (a, b) = (content_hash(b"a"), content_hash(b"b"));
        let write = |bytes: &[u8]| {
            let mut file = tempfile::NamedTempFile::new_in(dir.path()).expect("a file");
            file.write_all(bytes).expect("written");
            file.persist(&path).expect("renamed");
        };
        let mut entry = header(&a, b"payload");
        entry.extend_from_slice(b"payload");
        write(&entry);
        assert_eq!(read_entry(&path, &a).as_deref(), Some(&b"payload"[..]));
        // Another component's entry.
        assert_eq!(read_entry(&path, &b), None);
        // One byte of the payload changed.
        let last = entry.len() - 1;
        entry[last] ^= 1;
        write(&entry);
        assert_eq!(read_entry(&path, &a), None);
        // No header.
        write(b"payload");
        assert_eq!(read_entry(&path, &a), None);
    }

    #[cfg(unix)]
    #[test]
    fn nothing_is_written_to_a_directory_others_made_writable_since_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("a temporary directory");
        let dir = root.path().join("cache");
        create_private_dir(&dir).expect("a new directory is private");
        let mode = std::fs::metadata(&dir)
            .expect("it exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let error = create_private_dir(&dir).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "the cache directory is writable by others (mode 0777); wasp creates it 0700"
        );
    }
}
