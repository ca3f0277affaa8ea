//! Assets created through the API: kept in the store with their secrets as references
//! (`{"env": "WASP_SECRET_…"}`, or `{"file": "name"}` inside `wasp serve
//! --secrets-dir`), resolved by the server process. A secret's value is never
//! accepted or stored, and an API asset cannot reach the rest of the server's
//! environment or files. Assets from the assets file are read-only here.

use std::path::Path as FsPath;
use std::sync::Arc;

use serde_json::Value;

use super::{Error, Service};
use crate::assets::{Asset, AssetSpec, Source, ValueSpec};

/// Refuse what an asset sent to the API may not read on the server: a file as a plain
/// setting, an environment variable outside `WASP_SECRET_*`, a file outside the
/// secrets directory. Without this, anyone holding the API token could copy the
/// server's own credentials into an asset and send them to a host of their choosing.
/// The folder whose files `tenant`'s asset reads (see [`crate::secrets`]) is returned.
fn check_reach(
    name: &str,
    spec: &AssetSpec,
    secrets_dir: Option<&FsPath>,
    tenant: &str,
) -> Result<std::path::PathBuf, String> {
    for (key, value) in &spec.settings {
        if matches!(value, ValueSpec::File { .. }) {
            return Err(format!(
                "asset `{name}`, setting `{key}`: an asset created through the API gives a setting's value, not a file of the server"
            ));
        }
    }
    for (key, secret) in &spec.secrets {
        let what = format!("asset `{name}`, secret `{key}`");
        if let Some(refused) = secret
            .env
            .as_deref()
            .and_then(|var| crate::secrets::refuse_env(tenant, var))
        {
            return Err(format!("{what}: {refused}"));
        }
        if let Some(file) = &secret.file {
            crate::secrets::confine(secrets_dir, tenant, file)
                .map_err(|e| format!("{what}: {e}"))?;
        }
    }
    // Where its files are read from (none are named without a secrets directory).
    Ok(secrets_dir.map_or_else(
        || std::path::PathBuf::from("."),
        |dir| crate::secrets::tenant_dir(dir, tenant),
    ))
}

impl Service {
    /// Use the assets created through the API, kept in the store; one that no longer
    /// resolves (a variable unset, a file gone) is skipped, and logged with the reason.
    pub fn load_stored_assets(&self) -> Result<(), crate::store::Error> {
        for (tenant, name, spec) in self.store.assets()? {
            if self
                .runner
                .assets()
                .get(&name)
                .is_some_and(|a| a.source == Source::File)
            {
                tracing::warn!(
                    asset = %name,
                    "an asset from the database has the name of one in the assets file; the file's is used"
                );
                continue;
            }
            let resolved = serde_json::from_value::<AssetSpec>(spec)
                .map_err(|e| e.to_string())
                .and_then(|spec| {
                    let base = check_reach(&name, &spec, self.secrets_dir.as_deref(), &tenant)?;
                    spec.resolve(&name, &base, Source::Api)
                });
            match resolved {
                Ok(asset) => self.runner.assets().put(Asset { tenant, ..asset }),
                Err(problem) => {
                    tracing::warn!(asset = %name, %problem, "an asset from the database cannot be used");
                }
            }
        }
        Ok(())
    }

    /// Every asset of `tenant`, from the file and from the API.
    pub fn assets(&self, tenant: &str) -> Vec<Arc<Asset>> {
        let mut assets = self.runner.assets().list();
        assets.retain(|asset| asset.tenant == tenant);
        assets
    }

    /// The asset of `tenant` called `name` (another tenant's is not there for it).
    pub fn asset(&self, tenant: &str, name: &str) -> Result<Arc<Asset>, Error> {
        self.runner
            .assets()
            .get(name)
            .filter(|asset| asset.tenant == tenant)
            .ok_or_else(|| Error::NotFound(format!("there is no asset `{name}`")))
    }

    /// Check, resolve and store the asset `name` of `tenant` defined by `spec`, then use
    /// it: a new one unless `replace`. Whether it replaced one, and the asset. Asset names
    /// are one namespace: a name another tenant's asset has is taken.
    pub async fn save_asset(
        &self,
        tenant: &str,
        name: &str,
        spec: Value,
        replace: bool,
    ) -> Result<(bool, Arc<Asset>), Error> {
        let existing = self.runner.assets().get(name);
        if existing.as_ref().is_some_and(|a| a.tenant != tenant) {
            return Err(Error::Conflict(format!(
                "the asset name `{name}` is taken; choose another"
            )));
        }
        match &existing {
            Some(_) if !replace => {
                return Err(Error::Conflict(format!(
                    "an asset `{name}` exists; replace it with PUT /api/v1/assets/{name}"
                )));
            }
            Some(existing) => read_only(existing)?,
            None => {}
        }
        let spec: AssetSpec = serde_json::from_value(spec).map_err(|e| {
            let hint = if e.to_string().contains("`value`") {
                "; a secret is given as {\"env\": VAR} or {\"file\": PATH}: wasp never stores a secret's value"
            } else {
                ""
            };
            Error::Invalid(format!("asset `{name}`: {e}{hint}"))
        })?;
        if self.runner.apps().get(&spec.app).is_none() {
            return Err(Error::Invalid(format!(
                "asset `{name}`: there is no app `{}`",
                spec.app
            )));
        }
        let base = check_reach(name, &spec, self.secrets_dir.as_deref(), tenant)
            .map_err(Error::Invalid)?;
        let asset = Arc::new(Asset {
            tenant: tenant.to_owned(),
            ..spec
                .resolve(name, &base, Source::Api)
                .map_err(Error::Invalid)?
        });
        let stored = serde_json::to_value(&asset.spec).unwrap_or_default();
        let (tenant, key, app) = (tenant.to_owned(), name.to_owned(), asset.app.clone());
        let saved = self
            .blocking(move |store| store.save_asset(&tenant, &key, &app, &stored))
            .await?;
        if !saved {
            // Another process gave the name to another tenant's asset meanwhile.
            return Err(Error::Conflict(format!(
                "the asset name `{name}` is taken; choose another"
            )));
        }
        self.runner.assets().put(Asset::clone(&asset));
        Ok((existing.is_some(), asset))
    }

    /// Delete the asset `name` of `tenant` (one from the API: the file's are
    /// read-only); the asset as it was.
    pub async fn delete_asset(&self, tenant: &str, name: &str) -> Result<Arc<Asset>, Error> {
        let asset = self.asset(tenant, name)?;
        read_only(&asset)?;
        let (tenant, key) = (tenant.to_owned(), name.to_owned());
        self.blocking(move |store| store.delete_asset(&tenant, &key))
            .await?;
        self.runner.assets().remove(name);
        Ok(asset)
    }
}

/// Refuse to change an asset of the assets file.
fn read_only(asset: &Asset) -> Result<(), Error> {
    if asset.source == Source::File {
        return Err(Error::Conflict(format!(
            "asset `{}` comes from the assets file; change it there",
            asset.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> AssetSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn api_assets_reach_only_prefixed_variables_and_the_secrets_directory() {
        let dir = Some(FsPath::new("/srv/wasp-secrets"));
        let allowed = spec("app: a\nsecrets: {k: {env: WASP_SECRET_K}, f: {file: intel/key}}");
        assert_eq!(
            check_reach("x", &allowed, dir, "default"),
            Ok(std::path::PathBuf::from("/srv/wasp-secrets"))
        );
        let theirs = spec("app: a\nsecrets: {k: {env: WASP_SECRET_ACME__K}, f: {file: k}}");
        assert_eq!(
            check_reach("x", &theirs, dir, "acme"),
            Ok(std::path::PathBuf::from("/srv/wasp-secrets/tenants/acme"))
        );
        assert!(check_reach("x", &theirs, dir, "globex").is_err());
        for (yaml, secrets_dir, expected) in [
            (
                "app: a\nsecrets: {k: {env: AWS_SECRET_ACCESS_KEY}}",
                dir,
                "WASP_SECRET_*",
            ),
            (
                "app: a\nsecrets: {k: {file: ../etc/shadow}}",
                dir,
                "plain relative path",
            ),
            (
                "app: a\nsecrets: {k: {file: /etc/shadow}}",
                dir,
                "plain relative path",
            ),
            (
                "app: a\nsecrets: {k: {file: key}}",
                None,
                "no secrets directory",
            ),
            (
                "app: a\nsettings: {k: {file: key}}",
                dir,
                "not a file of the server",
            ),
        ] {
            let error = check_reach("x", &spec(yaml), secrets_dir, "default").unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
            assert!(error.starts_with("asset `x`"), "{error}");
        }
    }
}
