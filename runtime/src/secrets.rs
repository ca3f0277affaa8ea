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

use std::path::{Component, Path};

use crate::env::SECRET_ENV_PREFIX;

/// Why a client may not name the environment variable `var`, if it may not.
pub fn refuse_env(var: &str) -> Option<String> {
    (!var.starts_with(SECRET_ENV_PREFIX) || var.len() == SECRET_ENV_PREFIX.len()).then(|| {
        format!(
            "a secret given through the API is read only from environment variables named \
             {SECRET_ENV_PREFIX}*, not `{var}`"
        )
    })
}

/// The secrets directory `file` is read from, if a client may name it: a plain
/// relative path (no `..`, no root), on a server that has a secrets directory.
pub fn confine<'a>(secrets_dir: Option<&'a Path>, file: &str) -> Result<&'a Path, String> {
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
    Ok(dir)
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
        assert!(refuse_env("WASP_SECRET_HOOK").is_none());
        for var in [
            "HOME",
            "WASP_SECRET_",
            "wasp_secret_x",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(refuse_env(var).is_some(), "{var}");
        }
        let dir = Path::new("/run/wasp");
        assert_eq!(confine(Some(dir), "hooks/github").unwrap(), dir);
        for file in ["/etc/passwd", "../etc/passwd", "a/../../b", "./x", ""] {
            assert!(confine(Some(dir), file).is_err(), "{file}");
        }
        assert!(
            confine(None, "x")
                .unwrap_err()
                .contains("no secrets directory")
        );
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
