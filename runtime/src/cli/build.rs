//! `wasp app build`: build the app in a directory with its language's own tools (the
//! ones its README names) and say where the component is, for `wasp app install`.
//!
//! The kind of app is read from its files: `Cargo.toml` (Rust: `cargo build --release
//! --target wasm32-wasip2`, the component found in cargo's own report of what it
//! built), a `Makefile` beside `app.py` (Python: `make build`, with the app's
//! `.venv/bin/componentize-py` when there is one), or `package.json` (JavaScript: `npm
//! run build`). The tools' output goes to stderr; stdout stays wasp's.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Failure, for_terminal};

/// The languages an app directory can be built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rust,
    Python,
    Js,
}

/// The kind of app in `dir`, by its files.
fn kind(dir: &Path) -> Result<Kind, Failure> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Kind::Rust)
    } else if dir.join("Makefile").is_file() && dir.join("app.py").is_file() {
        Ok(Kind::Python)
    } else if dir.join("package.json").is_file() {
        Ok(Kind::Js)
    } else {
        Err(Failure::Usage(format!(
            "`{}` is not an app directory wasp can build: it has no `Cargo.toml` (Rust), \
             `Makefile` and `app.py` (Python) or `package.json` (JavaScript); `wasp app new` \
             makes one",
            for_terminal(&dir.display().to_string())
        )))
    }
}

/// Build the app in `dir`; the directory, made absolute, and its component file.
pub(super) fn build(dir: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    let dir = dir.canonicalize().map_err(|e| {
        Failure::Usage(format!(
            "cannot read `{}`: {e}",
            for_terminal(&dir.display().to_string())
        ))
    })?;
    let component = match kind(&dir)? {
        Kind::Rust => build_rust(&dir),
        Kind::Python => {
            let mut make = Command::new("make");
            make.arg("build");
            // Through the environment (the Makefile's `?=`), so that no character of
            // the path is read by make.
            let venv = dir.join(".venv/bin/componentize-py");
            if std::env::var_os("COMPONENTIZE_PY").is_none() && venv.is_file() {
                make.env("COMPONENTIZE_PY", venv);
            }
            run(&mut make, &dir, "make build", "")?;
            newest_component(&dir.join("build"))
        }
        Kind::Js => {
            let hint = if dir.join("node_modules").is_dir() {
                ""
            } else {
                " (there is no `node_modules`: run `npm install` once first)"
            };
            run(
                Command::new("npm").args(["run", "build"]),
                &dir,
                "npm run build",
                hint,
            )?;
            newest_component(&dir.join("build"))
        }
    }?;
    Ok((dir, component))
}

/// Run `command` in `dir` with its output on stderr; `what` names it in errors, with
/// `hint` after a failure.
fn run(command: &mut Command, dir: &Path, what: &str, hint: &str) -> Result<(), Failure> {
    let status = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stderr_stdio()?)
        .status()
        .map_err(|e| Failure::Usage(format!("cannot run `{what}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Usage(format!("`{what}` failed ({status}){hint}")))
    }
}

/// Our stderr, for a child's stdout.
fn stderr_stdio() -> Result<Stdio, Failure> {
    use std::os::fd::AsFd;
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Failure::Internal(format!("cannot pass stderr on: {e}")))?;
    Ok(Stdio::from(fd))
}

/// `cargo build` for the component, which cargo names in its JSON messages: the
/// `cdylib` of the package whose manifest is `dir/Cargo.toml`.
fn build_rust(dir: &Path) -> Result<PathBuf, Failure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = dir.join("Cargo.toml");
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Failure::Usage(format!(
                "cannot run `cargo`: {e}; install Rust from https://rustup.rs"
            ))
        })?;
    let mut component = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(found) = cdylib(&line, &manifest) {
                component = Some(found);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::Internal(format!("cannot wait for cargo: {e}")))?;
    if !status.success() {
        return Err(Failure::Usage(format!(
            "`cargo build --release --target wasm32-wasip2` failed ({status}); if the target is \
             not installed: `rustup target add wasm32-wasip2`"
        )));
    }
    component.ok_or_else(|| {
        Failure::Usage(format!(
            "`{}` built no component: its `[lib]` needs `crate-type = [\"cdylib\", \"rlib\"]`",
            manifest.display()
        ))
    })
}

/// The `.wasm` file of a cargo JSON message that reports the `cdylib` of the package
/// whose manifest is `manifest`.
fn cdylib(line: &str, manifest: &Path) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact"
        || message["manifest_path"].as_str().map(Path::new) != Some(manifest)
        || !message["target"]["kind"]
            .as_array()?
            .iter()
            .any(|kind| kind == "cdylib")
    {
        return None;
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .find(|file| file.ends_with(".wasm"))
        .map(PathBuf::from)
}

/// The `.wasm` file in `dir` written last (by this build, or by an earlier one when
/// the tool found nothing to do).
fn newest_component(dir: &Path) -> Result<PathBuf, Failure> {
    let written = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .filter_map(|path| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))
        .max();
    written.map(|(_, path)| path).ok_or_else(|| {
        Failure::Usage(format!(
            "the build wrote no `.wasm` file into `{}`",
            for_terminal(&dir.display().to_string())
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_the_cdylib_of_the_apps_own_package() {
        let manifest = Path::new("/a/my-app/Cargo.toml");
        let artifact = |manifest: &str, kind: &str, file: &str| {
            serde_json::json!({
                "reason": "compiler-artifact",
                "manifest_path": manifest,
                "target": {"kind": [kind]},
                "filenames": [file],
            })
            .to_string()
        };
        assert_eq!(
            cdylib(
                &artifact("/a/my-app/Cargo.toml", "cdylib", "/t/my_app.wasm"),
                manifest
            ),
            Some(PathBuf::from("/t/my_app.wasm"))
        );
        // A dependency's library, the app's rlib, another message: none is the app.
        for line in [
            artifact("/a/my-app/wasp-sdk/Cargo.toml", "cdylib", "/t/sdk.wasm"),
            artifact("/a/my-app/Cargo.toml", "lib", "/t/libmy_app.rlib"),
            r#"{"reason":"build-finished","success":true}"#.to_owned(),
            "not json".to_owned(),
        ] {
            assert_eq!(cdylib(&line, manifest), None, "{line}");
        }
    }

    #[test]
    fn a_directory_that_is_no_app_says_what_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let Err(Failure::Usage(message)) = build(dir.path()) else {
            panic!("an empty directory was built");
        };
        assert!(message.contains("has no `Cargo.toml` (Rust)"), "{message}");
    }
}
