//! What validation checks a playbook against: the apps, by their descriptions (what
//! an app's `describe()` returned: its actions, their schemas and pathways), and the
//! other playbooks that `playbook:` nodes may call.
//!
//! The host fills [`AppInfo`] in; the playbook only reads it, so `playbook` does not
//! import `host`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What validation needs to know about the world: the apps (their descriptions) and
/// which other playbooks exist.
pub trait Catalog {
    /// The description of app `name`.
    fn app(&self, name: &str) -> Option<&AppInfo>;
    /// Whether a playbook with id `id` exists.
    fn has_playbook(&self, id: &str) -> bool;
    /// What asset `name` is, where assets are known. By default they are not (a
    /// server's assets may be made after the playbooks that bind them).
    fn asset(&self, name: &str) -> AssetLookup<'_> {
        let _ = name;
        AssetLookup::Unchecked
    }
}

/// What validation knows of an asset a node binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetLookup<'a> {
    /// It exists, and configures this app.
    Configures(&'a str),
    /// There is no such asset; these are the ones there are.
    Missing(Vec<String>),
    /// Assets are not checked where this validation runs.
    Unchecked,
}

/// Where app descriptions are looked up by name (the host's registry of loaded apps).
pub trait Apps {
    /// The description of app `name`.
    fn app(&self, name: &str) -> Option<&AppInfo>;
}

/// The catalog the CLI and the service validate against: a set of apps and the ids
/// of the playbooks beside the one validated.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a, A: ?Sized> {
    /// The apps.
    pub apps: &'a A,
    /// The ids of the other playbooks.
    pub playbooks: &'a [String],
    /// The assets, each with the app it configures, when they are to be checked.
    pub assets: Option<&'a [(String, String)]>,
}

impl<A: Apps + ?Sized> Catalog for Known<'_, A> {
    fn app(&self, name: &str) -> Option<&AppInfo> {
        self.apps.app(name)
    }

    fn has_playbook(&self, id: &str) -> bool {
        self.playbooks.iter().any(|p| p == id)
    }

    fn asset(&self, name: &str) -> AssetLookup<'_> {
        let Some(assets) = self.assets else {
            return AssetLookup::Unchecked;
        };
        match assets.iter().find(|(n, _)| n == name) {
            Some((_, app)) => AssetLookup::Configures(app),
            None => AssetLookup::Missing(assets.iter().map(|(n, _)| n.clone()).collect()),
        }
    }
}

/// An app's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppInfo {
    /// The name apps are addressed by.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it is for.
    pub description: String,
    /// Its actions.
    pub actions: Vec<ActionInfo>,
}

/// One action's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionInfo {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: Value,
    /// JSON Schema of its output.
    pub output_schema: Value,
    /// The pathways it can take; `*` means any name its input chooses.
    pub pathways: Vec<String>,
}

impl ActionInfo {
    /// Whether the action may take `pathway`.
    pub fn offers_pathway(&self, pathway: &str) -> bool {
        self.pathways.iter().any(|p| p == pathway || p == "*")
    }
}
