//! wasp: WebAssembly Sandboxed Playbooks.
//!
//! # Layout
//!
//! One module per concept, the data flowing top to bottom:
//!
//! | module | owns |
//! |---|---|
//! | [`playbook`] | the playbook file (YAML or JSON), its validation into a petgraph DAG, input templates |
//! | [`engine`] | running one execution: scheduling ready nodes, pathways, `for_each`, retries |
//! | [`host`] | the wasmtime engine, the component cache, the sandbox (limits, capabilities), host imports, capture of logs and stdout/stderr, the app registry |
//! | [`assets`] | configured app instances: settings and secrets a node binds |
//! | [`secrets`] | secret references, and what a client of the API may name |
//! | [`trace`] | log levels, log lines, and the redaction of secrets |
//! | [`tql`] | the query language over executions, step runs and log lines: parsed, then checked against a schema into a typed condition in no database's dialect |
//! | [`store`] | persistence of playbooks and traces behind typed filters and records; SQLite (which renders the filters to SQL) is the embedded default |
//! | [`api`] | the HTTP server: native API and the ThreatConnect view |
//! | [`cli`] | the `wasp` command line |
//! | [`env`] | every environment variable wasp reads, in one place |
//!
//! `host` is the only module that names wasmtime; `playbook` reads app descriptions
//! through its `Catalog` trait.

pub mod api;
pub mod assets;
pub mod cli;
pub mod engine;
pub mod env;
pub mod host;
pub mod playbook;
pub mod scaffold;
pub mod secrets;
pub mod store;
pub mod tql;
pub mod trace;

/// Lock `mutex`, going on after a panic in another holder: every mutex in wasp guards
/// state that is consistent between statements (a map, a SQLite connection, which rolls
/// back an unfinished transaction when the next one begins).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
