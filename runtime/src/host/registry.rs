//! The app registry: the components of an apps directory, addressed by the name their
//! `describe()` gives.
//!
//! A directory is scanned once; its `.wasm` files are loaded at once (compiled within
//! the compile bounds or taken from the cache, described once per content hash), so a
//! component that is slow to compile delays no other. A file that fails to load does
//! not hide the others: it is listed with its error, so `wasp app list` shows both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{App, Error, Host};

/// The apps found in a directory.
#[derive(Debug, Default)]
pub struct Registry {
    apps: BTreeMap<String, Arc<App>>,
    problems: Vec<(PathBuf, String)>,
}

impl Registry {
    /// Load every `.wasm` file in `dir` (not recursively), all at once. Two files
    /// describing the same app name: the first in name order is kept and the second is
    /// a problem.
    pub async fn scan(host: &Host, dir: &Path) -> Result<Self, Error> {
        let read = |source| Error::Read {
            path: dir.to_owned(),
            source,
        };
        let mut files = Vec::new();
        let mut entries = tokio::fs::read_dir(dir).await.map_err(read)?;
        while let Some(entry) = entries.next_entry().await.map_err(read)? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                files.push(path);
            }
        }
        files.sort();
        let mut loads = tokio::task::JoinSet::new();
        for (index, path) in files.into_iter().enumerate() {
            let host = host.clone();
            loads.spawn(async move {
                let loaded = host.load(&path).await;
                (index, path, loaded)
            });
        }
        let mut loaded = Vec::new();
        while let Some(joined) = loads.join_next().await {
            loaded.push(joined.map_err(|e| Error::Engine(format!("loading an app failed: {e}")))?);
        }
        // Problems in file-name order, whichever load ended first.
        loaded.sort_by_key(|(index, _, _)| *index);
        let mut registry = Self::default();
        for (_, path, loaded) in loaded {
            match loaded {
                Ok(app) => registry.add(app),
                Err(e) => registry.problems.push((path, e.to_string())),
            }
        }
        Ok(registry)
    }

    /// Add `app`, unless its name is taken (then it is recorded as a problem).
    pub fn add(&mut self, app: Arc<App>) {
        if let Some(existing) = self.apps.get(&app.info.name) {
            let message = format!(
                "describes itself as `{}`, like `{}`; the first one is used",
                app.info.name,
                existing.path.display()
            );
            self.problems.push((app.path.clone(), message));
            return;
        }
        self.apps.insert(app.info.name.clone(), app);
    }

    /// The app called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.get(name)
    }

    /// Every app, by name.
    pub fn apps(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps.values()
    }

    /// Files that could not be loaded, with why.
    pub fn problems(&self) -> &[(PathBuf, String)] {
        &self.problems
    }
}
