//! The engine's [`StepRunner`] over the host: each step of an execution in a fresh
//! sandbox of the [`Host`], with the settings, secrets and egress of the asset its node
//! binds, and the playbooks its `playbook:` nodes may run.
//!
//! It is the one place where the scheduler meets wasmtime, so that `engine` imports
//! neither `host` nor `assets` (it runs steps through the trait; its tests use a fake).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::assets::Assets;
use crate::engine::{StepCall, StepRunner};
use crate::host::{Call, Host, Limits, Registry};
use crate::playbook::Playbook;
use crate::trace::{FailureKind, StepReport};

/// The real runner: each step in a fresh sandbox of the host, with the settings of the
/// asset its node binds.
#[derive(Debug)]
pub struct HostRunner {
    host: Host,
    /// Replaced whole when a server has loaded its apps directory: it serves before.
    apps: std::sync::RwLock<Arc<Registry>>,
    assets: Arc<Assets>,
    /// By XID; a server adds and removes them while executions run.
    playbooks: std::sync::RwLock<BTreeMap<String, Arc<Playbook>>>,
}

impl HostRunner {
    /// A runner over `host`, finding apps in `apps` and assets in `assets`.
    pub fn new(host: Host, apps: Arc<Registry>, assets: Arc<Assets>) -> Self {
        Self {
            host,
            apps: std::sync::RwLock::new(apps),
            assets,
            playbooks: std::sync::RwLock::default(),
        }
    }

    /// The same runner, with `playbooks` for `playbook:` nodes to run.
    #[must_use]
    pub fn with_playbooks(self, playbooks: impl IntoIterator<Item = Arc<Playbook>>) -> Self {
        for playbook in playbooks {
            self.set_playbook(playbook);
        }
        self
    }

    /// Add `playbook`, or replace the one with its XID. Executions already running keep
    /// the version they started with.
    pub fn set_playbook(&self, playbook: Arc<Playbook>) {
        self.playbooks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(playbook.id.clone(), playbook);
    }

    /// Remove the playbook with XID `id`.
    pub fn remove_playbook(&self, id: &str) {
        self.playbooks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    /// The XIDs of the playbooks it runs.
    pub fn playbook_ids(&self) -> Vec<String> {
        self.playbooks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// The apps it runs now.
    pub fn apps(&self) -> Arc<Registry> {
        Arc::clone(
            &self
                .apps
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Run the apps of `apps` from now on (steps running keep the app they started with).
    pub fn set_apps(&self, apps: Arc<Registry>) {
        *self
            .apps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = apps;
    }

    /// The assets its steps may bind.
    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// Why `playbook` may not run yet: the assets it requires
    /// (`required_connector_ids`) that are not configured. `None` when it may run. (A
    /// node bound to an asset of another app fails its step, naming both.)
    pub fn unmet_requirements(&self, playbook: &Playbook) -> Option<String> {
        let missing: Vec<&str> = playbook
            .labels
            .required_connector_ids
            .iter()
            .filter(|name| {
                self.assets
                    .get(name)
                    .is_none_or(|asset| asset.tenant != playbook.tenant)
            })
            .map(String::as_str)
            .collect();
        match missing.as_slice() {
            [] => None,
            [one] => Some(format!(
                "playbook `{}` requires asset `{one}`, which is not configured",
                playbook.id
            )),
            many => Some(format!(
                "playbook `{}` requires assets that are not configured: {}",
                playbook.id,
                many.join(", ")
            )),
        }
    }
}

impl StepRunner for HostRunner {
    fn playbook(&self, id: &str) -> Option<Arc<Playbook>> {
        self.playbooks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    async fn run(&self, call: StepCall) -> StepReport {
        let Some(app) = self.apps().get(&call.app).cloned() else {
            return StepReport::failure(
                FailureKind::HostError,
                format!("the app `{}` is not loaded", call.app),
            );
        };
        let asset = match &call.asset {
            None => None,
            // Another tenant's asset is not there for this execution.
            Some(name) => match self.assets.get(name).filter(|a| a.tenant == call.tenant) {
                Some(asset) if asset.app == call.app => Some(asset),
                Some(asset) => {
                    return StepReport::failure(
                        FailureKind::InputError,
                        format!(
                            "asset `{name}` is for app `{}`, not `{}`",
                            asset.app, call.app
                        ),
                    );
                }
                None => {
                    return StepReport::failure(
                        FailureKind::InputError,
                        format!(
                            "asset `{name}` is not configured (see --assets, or /api/v1/assets)"
                        ),
                    );
                }
            },
        };
        let defaults = Limits::default();
        // The node's own limits first, then the asset's, then the host's defaults.
        let host_call = Call {
            action: call.action,
            input: call.input.to_string(),
            level: call.level,
            limits: Limits {
                timeout: call
                    .timeout
                    .or(asset.as_ref().and_then(|a| a.timeout))
                    .unwrap_or(defaults.timeout),
                memory_bytes: call
                    .memory
                    .or(asset.as_ref().and_then(|a| a.memory))
                    .unwrap_or(defaults.memory_bytes),
                ..defaults
            },
            settings: asset
                .as_ref()
                .map_or_else(Arc::default, |a| Arc::clone(&a.settings)),
            egress: asset
                .as_ref()
                .map_or_else(Arc::default, |a| Arc::clone(&a.egress)),
            asset: call.asset,
            kill: call.kill,
        };
        self.host
            .invoke(&app, host_call)
            .await
            .unwrap_or_else(|e| StepReport::failure(FailureKind::HostError, e.to_string()))
    }
}
