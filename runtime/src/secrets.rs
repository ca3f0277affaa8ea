//! Secret references: where the wasp process may read a secret from, for whom.
//!
//! A secret is never a value in a playbook, an asset or a request: it is a reference (an
//! environment variable, a file) that the process resolves when it needs the value. What
//! the operator writes (the playbooks directory, the assets file) may name any variable
//! or file. What a client sends through the API may name only variables called
//! `WASP_SECRET_*` and files inside the secrets directory (`wasp serve --secrets-dir`),
//! by a plain relative path, with no symbolic link leading out of it: otherwise anyone
//! holding the API token could read the server's own credentials through an asset, or
//! confirm guesses of any file's content through a webhook's signature check.

//!
//! Each tenant has its own: the default tenant names `WASP_SECRET_*` variables (without
//! `__`, which separates another tenant's) and files of the secrets directory outside
//! its `tenants/` folder; tenant `acme-eu` names `WASP_SECRET_ACME_EU__*` variables and
//! the files of `tenants/acme-eu/` in it, by paths relative to that folder. No tenant can
//! name another's.

use std::path::{Component, Path, PathBuf};

use crate::env::SECRET_ENV_PREFIX;
use crate::trace::DEFAULT_TENANT;

/// The folder of the secrets directory that holds the other tenants' folders.
const TENANTS_DIR: &str = "tenants";

/// The prefix of the environment variables `tenant` may name.
pub fn env_prefix(tenant: &str) -> String {
    if tenant == DEFAULT_TENANT {
        SECRET_ENV_PREFIX.to_owned()
    } else {
        format!(
            "{SECRET_ENV_PREFIX}{}__",
            tenant.to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// Why `tenant` may not name the environment variable `var` through the API, if it may
/// not.
pub fn refuse_env(tenant: &str, var: &str) -> Option<String> {
    let prefix = env_prefix(tenant);
    // A tenant's name holds no `_`, so `__` marks where its prefix ends: a name that
    // holds one, or starts with `_`, would read as another tenant's.
    let allowed = var
        .strip_prefix(&prefix)
        .is_some_and(|name| !name.is_empty() && !name.starts_with('_') && !name.contains("__"));
    (!allowed).then(|| {
        let others = " (a `__` in the name marks another tenant's)";
        format!(
            "a secret given through the API is read only from environment variables named \
             {prefix}*, not `{var}`{others}"
        )
    })
}

/// The folder `tenant`'s secret files are read from, if a client may name `file`: a
/// plain relative path (no `..`, no root) inside it, on a server that has a secrets
/// directory. The default tenant's folder is the secrets directory (but for its
/// `tenants/`); another's is `tenants/<tenant>/` in it.
pub fn confine(secrets_dir: Option<&Path>, tenant: &str, file: &str) -> Result<PathBuf, String> {
    let Some(dir) = secrets_dir else {
        return Err(
            "this server has no secrets directory (wasp serve --secrets-dir), so a secret given \
             through the API cannot be a file"
                .to_owned(),
        );
    };
    let relative = Path::new(file);
    let plain = !file.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(format!(
            "`{file}` must be a plain relative path inside the secrets directory"
        ));
    }
    // Whatever the file system's case: `Tenants/` may be `tenants/`.
    let others = relative
        .components()
        .next()
        .and_then(|first| first.as_os_str().to_str())
        .is_some_and(|first| first.eq_ignore_ascii_case(TENANTS_DIR));
    if tenant == DEFAULT_TENANT && others {
        return Err(format!(
            "`{file}`: the secrets directory's `{TENANTS_DIR}/` holds other tenants' secrets"
        ));
    }
    Ok(tenant_dir(dir, tenant))
}

/// `tenant`'s folder of the secrets directory `dir`.
pub fn tenant_dir(dir: &Path, tenant: &str) -> PathBuf {
    if tenant == DEFAULT_TENANT {
        dir.to_owned()
    } else {
        dir.join(TENANTS_DIR).join(tenant)
    }
}

/// Read `file` (a path relative to `secrets_dir`) when it is inside the directory once
/// every symbolic link is followed: a link out of the directory is refused, one to
/// another file inside it is read.
pub fn read_confined(secrets_dir: &Path, file: &Path) -> Result<Vec<u8>, String> {
    let shown = file.display();
    let dir = secrets_dir
        .canonicalize()
        .map_err(|e| format!("the secrets directory `{}`: {e}", secrets_dir.display()))?;
    let real = secrets_dir
        .join(file)
        .canonicalize()
        .map_err(|e| format!("cannot read the secret file `{shown}`: {e}"))?;
    if !real.starts_with(&dir) {
        return Err(format!(
            "the secret file `{shown}` leads out of the secrets directory (a symbolic link)"
        ));
    }
    std::fs::read(&real).map_err(|e| format!("cannot read the secret file `{shown}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_name_prefixed_variables_and_plain_paths_only() {
        assert!(refuse_env(DEFAULT_TENANT, "WASP_SECRET_HOOK").is_none());
        for var in [
            "HOME",
            "WASP_SECRET_",
            "wasp_secret_x",
            "AWS_SECRET_ACCESS_KEY",
            "WASP_SECRET_ACME__VT",
        ] {
            assert!(refuse_env(DEFAULT_TENANT, var).is_some(), "{var}");
        }
        let dir = Path::new("/run/wasp");
        assert_eq!(
            confine(Some(dir), DEFAULT_TENANT, "hooks/github").unwrap(),
            dir
        );
        for file in [
            "/etc/passwd",
            "../etc/passwd",
            "a/../../b",
            "./x",
            "",
            "tenants/acme/vt",
            "Tenants/acme/vt",
        ] {
            assert!(confine(Some(dir), DEFAULT_TENANT, file).is_err(), "{file}");
        }
        assert!(
            confine(None, DEFAULT_TENANT, "x")
                .unwrap_err()
                .contains("no secrets directory")
        );
    }

    #[test]
    fn each_tenant_names_its_own_variables_and_folder_only() {
        assert!(refuse_env("acme-eu", "WASP_SECRET_ACME_EU__VT").is_none());
        for var in [
            "WASP_SECRET_VT",
            "WASP_SECRET_ACME_EU__",
            "WASP_SECRET_GLOBEX__VT",
            "WASP_SECRET_ACME_EU___VT",
            "WASP_SECRET_ACME_EU__X__VT",
        ] {
            let refused = refuse_env("acme-eu", var).unwrap();
            assert!(refused.contains("WASP_SECRET_ACME_EU__*"), "{refused}");
        }
        let dir = Path::new("/run/wasp");
        assert_eq!(
            confine(Some(dir), "acme-eu", "vt").unwrap(),
            Path::new("/run/wasp/tenants/acme-eu")
        );
        assert!(confine(Some(dir), "acme-eu", "../globex/vt").is_err());
    }

    #[test]
    fn a_symbolic_link_out_of_the_secrets_directory_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("private"), "root's secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook"), "s3cret\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("private"), dir.path().join("escape"))
            .unwrap();
        std::os::unix::fs::symlink(dir.path().join("hook"), dir.path().join("alias")).unwrap();
        assert_eq!(
            read_confined(dir.path(), Path::new("hook")).unwrap(),
            b"s3cret\n"
        );
        assert_eq!(
            read_confined(dir.path(), Path::new("alias")).unwrap(),
            b"s3cret\n"
        );
        assert_eq!(
            read_confined(dir.path(), Path::new("escape")).unwrap_err(),
            "the secret file `escape` leads out of the secrets directory (a symbolic link)"
        );
        assert!(read_confined(dir.path(), Path::new("missing")).is_err());
    }
}
