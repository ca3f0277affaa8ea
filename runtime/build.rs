//! Builds every guest component in the workspace (the example apps and the hostile
//! test guests) for `wasm32-wasip2`, so that `cargo run` and `cargo test` always use
//! components built from the current source.
//!
//! - The guests are built by a nested `cargo build --profile guest --target
//!   wasm32-wasip2` into the shared `target/` directory. The `guest` profile has its
//!   own output directories and therefore its own build lock, so the nested build never
//!   waits on the outer one (`dev`, `release` or `bench`).
//! - The example apps are copied to `target/apps/<name>.wasm`, the directory `wasp`
//!   uses by default from the repository root. The test guests stay in
//!   `target/wasm32-wasip2/guest/`, exported as `WASP_GUEST_DIR` to the tests.
//! - Without the `wasm32-wasip2` target this warns and builds nothing (the README's
//!   first command installs it). `WASP_SKIP_GUEST_BUILD=1` skips the step.
//! - The example apps written in Python and JavaScript are built first, by the pinned
//!   componentize-py and componentize-js, into `target/apps/` too: see
//!   `build/foreign.rs` (what it installs, how it caches, and `WASP_FOREIGN_APPS`).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/foreign.rs"]
mod foreign;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("runtime/ sits in the workspace root")
        .to_owned();
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target_dir = if target_dir.is_absolute() {
        target_dir
    } else {
        root.join(target_dir)
    };
    let guest_dir = target_dir.join("wasm32-wasip2").join("guest");
    let apps_dir = target_dir.join("apps");

    for watched in ["wit", "sdk", "example-apps", "tests/guests", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo::rerun-if-env-changed=WASP_SKIP_GUEST_BUILD");
    println!("cargo::rustc-env=WASP_GUEST_DIR={}", guest_dir.display());
    println!(
        "cargo::rustc-env=WASP_EXAMPLE_APPS_DIR={}",
        apps_dir.display()
    );
    foreign::declare(&root, &target_dir);

    if std::env::var_os("WASP_SKIP_GUEST_BUILD").is_some_and(|v| v == "1") {
        return;
    }
    foreign::build(&root, &target_dir);

    let examples = crates_in(&root.join("example-apps"));
    let guests = crates_in(&root.join("tests/guests"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (package, _) in examples.iter().chain(&guests) {
        command.args(["--package", package]);
    }
    // The outer cargo's settings are for the host build: a linter wrapper (clippy) or
    // host RUSTFLAGS must not leak into the guests' build.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CLIPPY_ARGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    let output = command
        .output()
        .expect("cannot run cargo to build the guest components");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
            println!(
                "cargo::warning=the wasm32-wasip2 target is not installed, so the example apps were not built: \
                 run `rustup target add wasm32-wasip2`"
            );
            return;
        }
        panic!("building the guest components failed:\n{stderr}");
    }

    std::fs::create_dir_all(&apps_dir).expect("cannot create target/apps");
    for (package, library) in &examples {
        let built = guest_dir.join(format!("{library}.wasm"));
        let copy = apps_dir.join(format!("{package}.wasm"));
        if std::fs::read(&built).ok() != std::fs::read(&copy).ok() {
            std::fs::copy(&built, &copy).unwrap_or_else(|e| {
                panic!("cannot copy {} to {}: {e}", built.display(), copy.display())
            });
        }
    }
}

/// `(package name, library name)` of every crate directly under `dir`.
fn crates_in(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut crates: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml")).ok()?;
            let name = manifest.lines().find_map(|line| {
                let value = line
                    .trim()
                    .strip_prefix("name")?
                    .trim_start()
                    .strip_prefix('=')?;
                Some(value.trim().trim_matches('"').to_owned())
            })?;
            let library = name.replace('-', "_");
            Some((name, library))
        })
        .collect();
    crates.sort();
    crates
}
