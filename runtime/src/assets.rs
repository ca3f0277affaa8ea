//! Assets: named, configured instances of an app, with settings and secrets. A
//! playbook node binds one with `asset:`; the step's app reads its settings through the
//! `config` import.
//!
//! ```yaml
//! soc-feed:
//!   app: indicator-lookup
//!   settings:
//!     feed: { file: feeds/soc-feed.json }   # a file's contents, relative to this file
//!     region: eu                            # a plain value
//!   secrets:
//!     api_key: { env: VT_KEY }              # or { file: /run/secrets/vt }
//! ```
//!
//! Secret values are read when the file is loaded and never written anywhere: the host
//! replaces them with `***` in everything it records about a step.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::host::Settings;

/// A configured app instance.
#[derive(Debug, Clone)]
pub struct Asset {
    /// The app it configures.
    pub app: String,
    /// Its settings and secrets.
    pub settings: Arc<Settings>,
}

/// Every asset of an assets file, by name.
#[derive(Debug, Clone, Default)]
pub struct Assets {
    assets: BTreeMap<String, Asset>,
}

/// An assets file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("assets file `{file}`: {message}")]
pub struct Error {
    /// The file.
    pub file: String,
    /// What is wrong, naming the asset and setting.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetSpec {
    app: String,
    #[serde(default)]
    settings: BTreeMap<String, ValueSpec>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ValueSpec {
    Plain(String),
    File { file: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSpec {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

impl Assets {
    /// Load the assets file at `path`; relative file paths in it are relative to it.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let file = path.display().to_string();
        let fail = |message: String| Error {
            file: file.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let specs: BTreeMap<String, AssetSpec> =
            serde_saphyr::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let read = |what: String, relative: &str| {
            std::fs::read_to_string(base.join(relative))
                .map_err(|e| fail(format!("{what}: cannot read `{relative}`: {e}")))
        };
        let mut assets = BTreeMap::new();
        for (name, spec) in specs {
            let mut settings = Settings::new();
            for (key, value) in spec.settings {
                let value = match value {
                    ValueSpec::Plain(value) => value,
                    ValueSpec::File { file } => {
                        read(format!("asset `{name}`, setting `{key}`"), &file)?
                    }
                };
                settings = settings.with(key, value);
            }
            for (key, secret) in spec.secrets {
                let what = format!("asset `{name}`, secret `{key}`");
                let value = match (secret.env, secret.file) {
                    (Some(var), None) => std::env::var(&var).map_err(|_| {
                        fail(format!(
                            "{what}: the environment variable `{var}` is not set"
                        ))
                    })?,
                    (None, Some(file)) => {
                        let value = read(what, &file)?;
                        value.strip_suffix('\n').unwrap_or(&value).to_owned()
                    }
                    _ => {
                        return Err(fail(format!(
                            "{what}: give exactly one of `env` and `file`"
                        )));
                    }
                };
                settings = settings.with_secret(key, value);
            }
            assets.insert(
                name,
                Asset {
                    app: spec.app,
                    settings: Arc::new(settings),
                },
            );
        }
        Ok(Self { assets })
    }

    /// The asset called `name`.
    pub fn get(&self, name: &str) -> Option<&Asset> {
        self.assets.get(name)
    }

    /// Every asset, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Asset)> {
        self.assets
            .iter()
            .map(|(name, asset)| (name.as_str(), asset))
    }
}
