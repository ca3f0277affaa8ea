//! The app registry: the components of an apps directory, addressed by the name their
//! `describe()` gives.
//!
//! A directory is scanned once; its `.wasm` files are loaded at once (compiled within
//! the compile bounds or taken from the cache, described once per content hash), so a
//! component that is slow to compile delays no other. A file that fails to load does
//! not hide the others: it is listed with its error, so `wasp app list` shows both.
//!
//! A name is an app's identity: a playbook node, an asset and an API call all address
//! the app by it. Two files that claim one name are both refused, each problem naming
//! the other file: were one picked (say the first in name order), a file
//! `0-evil.wasm` describing itself as `http-request` would silently take the real
//! app's place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{App, Error, Host};

/// Files of a directory loaded at once: enough that a few slow ones (each holds one of
/// the host's compiler slots at most until the compile bound) delay no other, few
/// enough to bound the component bytes held in memory (16 × 64 MiB at the most).
const MAX_LOADS_AT_ONCE: usize = 16;

/// How far a scan has got.
#[derive(Debug)]
pub struct Loading<'a> {
    /// Files loaded (or refused) so far.
    pub loaded: usize,
    /// Component files in the directory.
    pub total: usize,
    /// The files still loading, in name order.
    pub waiting_for: Vec<&'a Path>,
}

/// The apps found in a directory.
#[derive(Debug, Default)]
pub struct Registry {
    apps: BTreeMap<String, Arc<App>>,
    /// Names claimed by more than one file, with every file that claims them.
    contested: BTreeMap<String, Vec<PathBuf>>,
    problems: Vec<(PathBuf, String)>,
}

impl Registry {
    /// Load every `.wasm` file in `dir` (not recursively), all at once. Files that
    /// describe the same app name are all refused (and listed as problems).
    pub async fn scan(host: &Host, dir: &Path) -> Result<Self, Error> {
        Self::scan_reporting(host, dir, &|_| {}).await
    }

    /// [`Registry::scan`], telling `report` how far it has got: once the files are
    /// counted, then after each one loads (a command shows it as progress, since a
    /// component not yet in the cache can take many seconds to compile).
    pub async fn scan_reporting(
        host: &Host,
        dir: &Path,
        report: &(dyn Fn(&Loading<'_>) + Sync),
    ) -> Result<Self, Error> {
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
        let mut waiting: BTreeMap<usize, PathBuf> = files.iter().cloned().enumerate().collect();
        let total = files.len();
        report(&Loading {
            loaded: 0,
            total,
            waiting_for: waiting.values().map(PathBuf::as_path).collect(),
        });
        // Each load holds its file's bytes (up to the compile bound's 64 MiB) until it
        // is compiled: a directory of many large files must not hold them all at once.
        let at_once = Arc::new(tokio::sync::Semaphore::new(MAX_LOADS_AT_ONCE));
        let mut loads = tokio::task::JoinSet::new();
        for (index, path) in files.into_iter().enumerate() {
            let host = host.clone();
            let at_once = Arc::clone(&at_once);
            loads.spawn(async move {
                let _permit = at_once.acquire_owned().await;
                let loaded = host.load(&path).await;
                (index, path, loaded)
            });
        }
        let mut loaded = Vec::new();
        while let Some(joined) = loads.join_next().await {
            let joined = joined.map_err(|source| Error::Task {
                task: "loading an app",
                source,
            })?;
            waiting.remove(&joined.0);
            loaded.push(joined);
            report(&Loading {
                loaded: loaded.len(),
                total,
                waiting_for: waiting.values().map(PathBuf::as_path).collect(),
            });
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

    /// Add `app`, unless another file claims its name: then neither is used, and each
    /// is recorded as a problem naming the others.
    pub fn add(&mut self, app: Arc<App>) {
        let name = app.info.name.clone();
        if let Some(claimants) = self.contested.get_mut(&name) {
            claimants.push(app.path.clone());
        } else if let Some(existing) = self.apps.remove(&name) {
            self.contested
                .insert(name.clone(), vec![existing.path.clone(), app.path.clone()]);
        } else {
            self.apps.insert(name, app);
            return;
        }
        // Each claimant's problem names the others, restated as the claimants grow.
        let claimants = &self.contested[&name];
        self.problems.retain(|(path, _)| !claimants.contains(path));
        for path in claimants {
            let others: Vec<String> = claimants
                .iter()
                .filter(|other| *other != path)
                .map(|other| format!("`{}`", other.display()))
                .collect();
            self.problems.push((
                path.clone(),
                format!(
                    "describes itself as `{name}`, as {} does: no file claiming `{name}` is used \
                     until only one does",
                    others.join(" and ")
                ),
            ));
        }
    }

    /// The app called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.get(name)
    }

    /// The files that claim `name` when more than one does (none of them is used).
    pub fn claimants(&self, name: &str) -> Option<&[PathBuf]> {
        self.contested.get(name).map(Vec::as_slice)
    }

    /// Every app, by name.
    pub fn apps(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps.values()
    }

    /// Files that could not be loaded or were refused, with why.
    pub fn problems(&self) -> &[(PathBuf, String)] {
        &self.problems
    }
}
impl crate::playbook::Apps for Registry {
    fn app(&self, name: &str) -> Option<&crate::playbook::AppInfo> {
        self.get(name).map(|app| &app.info)
    }
}
