//! Assets: named, configured instances of an app, with settings, secrets, the hosts its
//! steps may reach over HTTP, and their own limits. A playbook node binds one with
//! `asset:`; the step's app reads its settings through the `config` import.
//!
//! ```yaml
//! threat-intel:
//!   app: reputation
//!   settings:
//!     base_url: https://api.abuseipdb.com/api/v2
//!     feed: { file: feeds/soc-feed.json }   # a file's contents, relative to this file
//!   secrets:
//!     api_key: { env: ABUSEIPDB_KEY }       # or { file: /run/secrets/abuseipdb }
//!   hosts: [api.abuseipdb.com]              # host[:port], *.domain, or an IP literal
//!   limits: { memory: 32MiB, timeout: 20s } # defaults for the steps that bind it
//!   http: { connect_timeout: 5s, first_byte_timeout: 10s, timeout: 30s, max_response: 16MiB }
//! ```
//!
//! Assets come from an assets file (read-only to the API) or from the API, which
//! stores them in the database. Either way a secret is only ever a reference (`env:` or
//! `file:`), resolved when the asset is loaded: its value is never written anywhere,
//! and the host replaces it with `***` in everything it records about a step.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::{Egress, Settings};
use crate::playbook::{parse_duration, parse_size};

/// A configured app instance.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Its name, which nodes bind.
    pub name: String,
    /// The app it configures.
    pub app: String,
    /// Its settings and secrets, resolved.
    pub settings: Arc<Settings>,
    /// What its steps may reach over HTTP.
    pub egress: Arc<Egress>,
    /// Memory of its steps, unless the node sets its own.
    pub memory: Option<usize>,
    /// Deadline of its steps, unless the node sets its own.
    pub timeout: Option<Duration>,
    /// Where it was defined.
    pub source: Source,
    /// The tenant whose executions may bind it (an assets file's are the default
    /// tenant's; one made through the API is its maker's).
    pub tenant: String,
    /// Its definition, with secrets as references only: what the API shows and stores.
    pub spec: AssetSpec,
}

/// Where an asset was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The assets file given to `wasp serve`/`wasp run`: read-only to the API.
    File,
    /// Created through the API and kept in the database.
    Api,
}

/// The definition of an asset, as written in an assets file or sent to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetSpec {
    /// The app it configures.
    pub app: String,
    /// Plain settings: a value, or `{file: PATH}` for a file's contents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, ValueSpec>,
    /// Secret settings: `{env: VAR}` or `{file: PATH}`, never a value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Hosts its steps may reach over HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Limits of its steps.
    #[serde(default, skip_serializing_if = "LimitsSpec::is_empty")]
    pub limits: LimitsSpec,
    /// Timeouts and the response cap of its HTTP requests.
    #[serde(default, skip_serializing_if = "HttpSpec::is_empty")]
    pub http: HttpSpec,
}

/// A plain setting's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ValueSpec {
    /// The value itself.
    Plain(String),
    /// The contents of a file.
    File {
        /// The file; relative paths are relative to the assets file.
        file: String,
    },
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// An environment variable of the wasp process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file (one trailing newline is dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Step limits an asset sets for the steps that bind it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Linear memory, e.g. `32MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// The step's deadline, e.g. `20s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

impl LimitsSpec {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// HTTP limits an asset sets for its steps' requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Name resolution, connection and TLS handshake together (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// From the request to the response's head (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout: Option<String>,
    /// The whole exchange (default 30s; the step's deadline bounds it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Bytes of one response body (default 16MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response: Option<String>,
}

impl HttpSpec {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Every asset, by name. Shared by the runner and the API, which may change it while
/// executions run (a step takes the asset as it is when the step starts).
#[derive(Debug, Default)]
pub struct Assets {
    assets: RwLock<BTreeMap<String, Arc<Asset>>>,
}

/// An assets file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("assets file `{file}`: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a map of assets in shape.
    #[error("assets file `{file}`: {source}")]
    Parse {
        /// The file.
        file: String,
        /// The YAML parser's error, with its position.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// An asset of the file cannot be resolved.
    #[error("assets file `{file}`: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong, naming the asset and setting.
        message: String,
    },
}

/// Whether `name` can name an asset: 1–64 characters of a-z, 0-9, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl AssetSpec {
    /// Resolve the definition of asset `name`: read its files (relative to `base`) and
    /// secrets, and check its hosts and limits. The error names the asset and field.
    pub fn resolve(&self, name: &str, base: &Path, source: Source) -> Result<Asset, String> {
        if !valid_name(name) {
            return Err(format!(
                "`{name}` is not an asset name: use 1–64 characters of a-z, 0-9, `-` and `_`"
            ));
        }
        // A client's asset reads only inside the secrets directory, following no link
        // out of it; the operator's assets file reads where it says.
        let read = |what: String, relative: &str| {
            let bytes = match source {
                Source::Api => crate::secrets::read_confined(base, Path::new(relative))
                    .map_err(|e| format!("{what}: {e}"))?,
                Source::File => std::fs::read(base.join(relative))
                    .map_err(|e| format!("{what}: cannot read `{relative}`: {e}"))?,
            };
            String::from_utf8(bytes).map_err(|_| format!("{what}: `{relative}` is not UTF-8 text"))
        };
        let mut settings = Settings::new();
        for (key, value) in &self.settings {
            let value = match value {
                ValueSpec::Plain(value) => value.clone(),
                ValueSpec::File { file } => read(format!("asset `{name}`, setting `{key}`"), file)?,
            };
            settings = settings.with(key.clone(), value);
        }
        for (key, secret) in &self.secrets {
            let what = format!("asset `{name}`, secret `{key}`");
            if self.settings.contains_key(key) {
                return Err(format!("{what}: `{key}` is also a plain setting"));
            }
            let value = match (&secret.env, &secret.file) {
                (Some(var), None) => std::env::var(var)
                    .map_err(|_| format!("{what}: the environment variable `{var}` is not set"))?,
                (None, Some(file)) => {
                    let value = read(what, file)?;
                    value.strip_suffix('\n').unwrap_or(&value).to_owned()
                }
                _ => return Err(format!("{what}: give exactly one of `env` and `file`")),
            };
            settings = settings.with_secret(key.clone(), value);
        }
        let field = |field: &str, problem: String| format!("asset `{name}`, `{field}`: {problem}");
        let mut egress = Egress::allowing(&self.hosts).map_err(|e| field("hosts", e))?;
        let duration = |name: &str, text: &Option<String>| {
            text.as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| field(name, e))
        };
        let size = |name: &str, text: &Option<String>| {
            text.as_deref()
                .map(parse_size)
                .transpose()
                .map_err(|e| field(name, e))
        };
        if let Some(timeout) = duration("http.connect_timeout", &self.http.connect_timeout)? {
            egress.connect_timeout = timeout;
        }
        if let Some(timeout) = duration("http.first_byte_timeout", &self.http.first_byte_timeout)? {
            egress.first_byte_timeout = timeout;
        }
        if let Some(timeout) = duration("http.timeout", &self.http.timeout)? {
            egress.request_timeout = timeout;
        }
        if let Some(cap) = size("http.max_response", &self.http.max_response)? {
            egress.max_response_bytes = cap as u64;
        }
        Ok(Asset {
            name: name.to_owned(),
            app: self.app.clone(),
            settings: Arc::new(settings),
            egress: Arc::new(egress),
            memory: size("limits.memory", &self.limits.memory)?,
            timeout: duration("limits.timeout", &self.limits.timeout)?,
            source,
            tenant: crate::trace::DEFAULT_TENANT.to_owned(),
            spec: self.clone(),
        })
    }
}

impl Assets {
    /// Load the assets file at `path`; relative file paths in it are relative to it.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let file = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            file: file(),
            source,
        })?;
        let specs: BTreeMap<String, AssetSpec> =
            serde_saphyr::from_str(&text).map_err(|source| Error::Parse {
                file: file(),
                source: Box::new(source),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let assets = Self::default();
        for (name, spec) in specs {
            let asset =
                spec.resolve(&name, base, Source::File)
                    .map_err(|message| Error::Invalid {
                        file: file(),
                        message,
                    })?;
            assets.put(asset);
        }
        Ok(assets)
    }

    /// The asset called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Asset>> {
        self.read().get(name).cloned()
    }

    /// Every asset, by name.
    pub fn list(&self) -> Vec<Arc<Asset>> {
        self.read().values().cloned().collect()
    }

    /// Add `asset`, or replace the one of its name.
    pub fn put(&self, asset: Asset) {
        self.assets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(asset.name.clone(), Arc::new(asset));
    }

    /// Remove the asset called `name`.
    pub fn remove(&self, name: &str) -> Option<Arc<Asset>> {
        self.assets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Asset>>> {
        self.assets.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> AssetSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn an_asset_resolves_hosts_limits_and_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "s3cret\n").unwrap();
        let asset = spec(
            "app: reputation\nsettings: {base_url: 'http://127.0.0.1:9/x'}\nsecrets: {api_key: {file: key}}\n\
             hosts: ['127.0.0.1:9', '*.abuseipdb.com']\nlimits: {memory: 32MiB, timeout: 2s}\n\
             http: {connect_timeout: 1s, max_response: 1KiB}\n",
        )
        .resolve("intel", dir.path(), Source::Api)
        .unwrap();
        assert_eq!(asset.settings.get("api_key"), Some("s3cret"));
        assert_eq!(asset.settings.redactor().text("key=s3cret"), "key=***");
        assert_eq!(asset.memory, Some(32 << 20));
        assert_eq!(asset.timeout, Some(Duration::from_secs(2)));
        assert_eq!(asset.egress.connect_timeout, Duration::from_secs(1));
        assert_eq!(asset.egress.max_response_bytes, 1024);
        assert!(asset.egress.allows("www.abuseipdb.com", 443, 443));
        // The stored definition holds the reference, never the value.
        let stored = serde_json::to_string(&asset.spec).unwrap();
        assert!(stored.contains(r#""api_key":{"file":"key"}"#), "{stored}");
        assert!(!stored.contains("s3cret"));
    }

    #[test]
    fn bad_assets_name_the_asset_and_field() {
        let base = Path::new(".");
        for (yaml, expected) in [
            ("app: a\nhosts: ['*']", "asset `x`, `hosts`: host `*`"),
            (
                "app: a\nlimits: {timeout: soon}",
                "asset `x`, `limits.timeout`: `soon`",
            ),
            (
                "app: a\nhttp: {max_response: lots}",
                "asset `x`, `http.max_response`: `lots`",
            ),
            (
                "app: a\nsecrets: {k: {}}",
                "asset `x`, secret `k`: give exactly one",
            ),
            (
                "app: a\nsecrets: {k: {env: WASP_TEST_SURELY_UNSET}}",
                "the environment variable `WASP_TEST_SURELY_UNSET` is not set",
            ),
        ] {
            let error = spec(yaml).resolve("x", base, Source::Api).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
        assert!(
            serde_saphyr::from_str::<AssetSpec>("app: a\nsecrets: {k: {value: plain}}").is_err(),
            "a secret's value is never accepted"
        );
        let error = spec("app: a")
            .resolve("Bad Name", base, Source::Api)
            .unwrap_err();
        assert!(error.contains("not an asset name"), "{error}");
    }
}
