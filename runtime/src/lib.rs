//! wasp: WebAssembly Sandboxed Playbooks.
//!
//! # Layout
//!
//! One module per concept. The data flows playbook → engine → host → trace → store,
//! and the service, the API and the CLI sit on top (`docs/architecture.md` draws it):
//!
//! | module | owns |
//! |---|---|
//! | [`trace`] | the records an execution leaves (its header, node records, step runs and reports, statuses, events), the capture policy per level, and the redaction of secrets. A leaf: it imports nothing of the crate |
//! | [`playbook`] | the playbook file (YAML or JSON), its validation into a petgraph DAG against a [`playbook::Catalog`] of app descriptions, input templates, triggers |
//! | [`engine`] | running one execution: scheduling ready nodes, pathways, `for_each`, retries, the reaper; it runs steps through a [`engine::StepRunner`] |
//! | [`runner`] | the real [`engine::StepRunner`]: each step in a sandbox of the host, with its asset, and the playbooks `playbook:` nodes run |
//! | [`host`] | the wasmtime engine, the component cache, the sandbox (limits, capabilities), host imports, capture of logs and stdout/stderr, the app registry |
//! | [`assets`] | configured app instances: settings and secrets a node binds |
//! | [`secrets`] | secret references, and what a client of the API may name |
//! | [`tql`] | the query language over executions, step runs and log lines: parsed, then checked against a schema into a typed condition in no database's dialect |
//! | [`store`] | persistence of playbooks and traces behind typed filters and records; SQLite (which renders the filters to SQL) is the embedded default; all SQL text lives here |
//! | [`service`] | the application core the API and the CLI call: start, queue, kill, the writer with its group commit, stored playbooks and assets, timers and events, replay, Splunk SOAR's action runs |
//! | [`api`] | HTTP only: the native API, the three vendor views, the page; each handler parses, calls the service or the store, and maps the error |
//! | [`cli`] | the `wasp` command line |
//! | [`env`] | every environment variable wasp reads, in one place |
//! | [`telemetry`] | wasp's own log on stderr, and its traces over OTLP when a collector is named |
//!
//! The rules the imports keep: `trace` imports nothing of the crate; `store` imports
//! neither `engine`, `host` nor `service`; `engine` imports only `playbook` and `trace`
//! (not `host`, `assets`, `store`, `api` nor `service`); `host` never imports `engine`; `api` imports neither `engine` nor `host`.
//! `host` is the only module that names wasmtime. A test (`layers_keep_their_rules`)
//! reads the sources and holds the code to them.

pub mod api;
pub mod assets;
pub mod cli;
pub mod engine;
pub mod env;
pub mod host;
pub mod playbook;
pub mod runner;
pub mod scaffold;
pub mod secrets;
pub mod service;
pub mod store;
pub mod telemetry;
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

/// Compare without an early exit, so that response times do not reveal a secret.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error and its sources, `: `-separated.
pub(crate) struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Each layer, and the modules of the crate it may not name.
    const RULES: &[(&str, &[&str])] = &[
        (
            "trace",
            &[
                "api", "assets", "cli", "engine", "env", "host", "playbook", "scaffold", "secrets",
                "service", "store", "tql",
            ],
        ),
        ("store", &["engine", "host", "service", "api", "cli"]),
        (
            "engine",
            &["store", "api", "service", "cli", "host", "assets", "runner"],
        ),
        ("host", &["engine", "store", "api", "service", "cli"]),
        ("api", &["engine", "host"]),
    ];

    /// The Rust files of module `name`: `name.rs`, or every file under `name/`.
    fn files(src: &Path, name: &str) -> Vec<PathBuf> {
        let file = src.join(format!("{name}.rs"));
        if file.is_file() {
            return vec![file];
        }
        let mut found = Vec::new();
        let mut dirs = vec![src.join(name)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    found.push(path);
                }
            }
        }
        found
    }

    /// Whether `line` names module `module` of the crate (`crate::store::…`,
    /// `crate::store;`, `crate::{…, store, …}` is not used in this crate).
    fn names(line: &str, module: &str) -> bool {
        let pattern = format!("crate::{module}");
        line.match_indices(&pattern).any(|(at, _)| {
            !line[at + pattern.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    }

    #[test]
    fn layers_keep_their_rules() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut broken = Vec::new();
        for (layer, forbidden) in RULES {
            let files = files(&src, layer);
            assert!(!files.is_empty(), "no sources for `{layer}`");
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                for (number, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    for module in *forbidden {
                        if names(code, module) {
                            broken.push(format!(
                                "{}:{}: `{layer}` names `{module}`: {}",
                                file.display(),
                                number + 1,
                                line.trim()
                            ));
                        }
                    }
                }
            }
        }
        assert!(broken.is_empty(), "{}", broken.join("\n"));
    }
}
