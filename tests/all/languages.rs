//! Apps in any language: the Python and JavaScript example apps run beside Rust apps in
//! one playbook, fail bad input with a classified step error, and pass their own native
//! tests; and every language's `wasp app new` skeleton passes its own tests as written.
//!
//! The Python and JavaScript apps and tools exist only where the build script could
//! install componentize-py and componentize-js (`runtime/build/foreign.rs`). Without
//! them these tests say what is missing and pass, unless `WASP_FOREIGN_APPS=required`
//! (as CI sets it), where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use wasp_runtime::scaffold::{Lang, new_app};

use crate::cli::{sample, stderr, stdout_json, wasp};
use crate::common::{example_app, load};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ sits in the workspace root")
        .to_owned()
}

/// Where the build script installed the pinned tools.
fn tools() -> PathBuf {
    PathBuf::from(env!("WASP_TOOLS_DIR"))
}

/// Go on when `ready` is `Ok`; otherwise fail when the foreign apps are required, and
/// skip (saying why) when they are not. Returns whether to go on.
fn available(ready: Result<(), String>) -> bool {
    let Err(missing) = ready else {
        return true;
    };
    if std::env::var("WASP_FOREIGN_APPS").is_ok_and(|v| v == "required") {
        panic!("{missing} (WASP_FOREIGN_APPS=required)");
    }
    eprintln!("skipped: {missing} (WASP_FOREIGN_APPS=required makes this a failure)");
    false
}

fn foreign_apps_built() -> Result<(), String> {
    for name in ["defang", "severity-score"] {
        if !example_app(name).is_file() {
            return Err(format!("{} was not built", example_app(name).display()));
        }
    }
    Ok(())
}

/// `program --version` runs.
fn runs(program: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`{program} --version` failed: {}", output.status)),
        Err(e) => Err(format!("{program} is not installed ({e})")),
    }
}

/// The installed componentize-py, which generates the Python bindings the native tests
/// import.
fn componentize_py() -> Result<PathBuf, String> {
    runs("python3")?;
    let program = tools().join("python/bin/componentize-py");
    if program.is_file() {
        Ok(program)
    } else {
        Err(format!("{} is not installed", program.display()))
    }
}

fn node_and_npm() -> Result<(), String> {
    runs("node")?;
    runs("npm")
}

/// Run `command` (named `what`), fail the test with its output unless it succeeds, and
/// return its stdout and stderr together.
fn succeed(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{text}",
        output.status
    );
    text
}

/// How many tests a runner said passed: unittest's `Ran N tests`, node's `# pass N`,
/// cargo's `N passed`. A suite that ran nothing proves nothing.
fn passed(text: &str) -> usize {
    let number_after = |marker: &str| {
        text.lines().find_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            rest.split_whitespace().next()?.parse::<usize>().ok()
        })
    };
    number_after("Ran ")
        .or_else(|| number_after("# pass "))
        .or_else(|| number_after("test result: ok. "))
        .unwrap_or(0)
}

#[test]
fn the_polyglot_playbook_runs_rust_python_and_js_steps() {
    if !available(foreign_apps_built()) {
        return;
    }
    let [playbook, input, assets] = sample("polyglot");
    let output = wasp(&[
        "run", &playbook, "--input", &input, "--assets", &assets, "--output", "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let execution = stdout_json(&output);
    assert_eq!(execution["status"], "Completed", "{execution}");
    let node = |id: &str| {
        execution["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("no node `{id}`: {execution}"))
            .clone()
    };
    for id in [
        "parse",
        "iocs",
        "reputation",
        "defang",
        "severity",
        "url-list",
        "ticket",
    ] {
        assert_eq!(node(id)["status"], "Succeeded", "{}", node(id));
    }
    // Python
    assert_eq!(
        node("defang")["output"],
        json!({
            "values": [
                "hxxps://login.m365-verify[.]top/secure?user=a.smith",
                "hxxp://micros0ft-support[.]com/activity.php"
            ],
            "kinds": ["url", "url"],
            "count": 2,
            "changed": 2
        })
    );
    // JavaScript, with the `critical` threshold of the `severity-policy` asset.
    let severity = node("severity")["output"].clone();
    assert_eq!(severity["score"], 82, "{severity}");
    assert_eq!(severity["severity"], "critical");
    assert_eq!(
        severity["thresholds"],
        json!({"medium": 25, "high": 50, "critical": 70})
    );
    assert_eq!(
        node("ticket")["output"]["text"],
        "critical (score 82): Unusual sign-in activity on your account - URLs: \
         hxxps://login.m365-verify[.]top/secure?user=a.smith, hxxp://micros0ft-support[.]com/activity.php"
    );
    // Their log lines reach the trace through the `log` import, fields and all.
    let logs = |id: &str| {
        execution["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["node"] == id)
            .unwrap_or_else(|| panic!("no step of `{id}`"))["report"]["logs"]
            .clone()
    };
    let info = |id: &str| {
        logs(id)
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["level"] == "info")
            .cloned()
            .unwrap_or_else(|| panic!("`{id}` logged no info line: {}", logs(id)))
    };
    assert_eq!(info("defang")["message"], "defanged values");
    assert_eq!(
        info("defang")["fields"],
        json!([["count", "2"], ["changed", "2"], ["dots", "last"]])
    );
    assert_eq!(info("severity")["message"], "scored");
    assert_eq!(
        info("severity")["fields"],
        json!([["score", "82"], ["severity", "critical"]])
    );
}

#[test]
fn python_and_js_apps_fail_bad_input_and_bad_settings_with_a_step_error() {
    if !available(foreign_apps_built()) {
        return;
    }
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[
                "defang",
                "--action",
                "defang",
                "--input",
                r#"{"values": ["evil.com", 7]}"#,
            ],
            "invalid_input",
            "`values[1]` must be a string, not a number",
        ),
        (
            &[
                "defang",
                "--action",
                "defang",
                "--input",
                r#"{"values": ["evil.com"]}"#,
                "--config",
                "dots=some",
            ],
            "misconfigured",
            "the setting `dots` is `some`; it must be `last` or `all`",
        ),
        (
            &[
                "severity-score",
                "--action",
                "score",
                "--input",
                r#"{"reputation_scores": [101]}"#,
            ],
            "invalid_input",
            "`reputation_scores[0]` is 101; scores are 0 to 100",
        ),
        (
            &[
                "severity-score",
                "--action",
                "score",
                "--input",
                r#"{"reputation_scores": []}"#,
                "--config",
                r#"thresholds={"high": 90}"#,
            ],
            "misconfigured",
            "the setting `thresholds` gives medium 25, high 90, critical 75, which do not rise; \
             expected e.g. {\"medium\": 25, \"high\": 50, \"critical\": 75}",
        ),
    ];
    for (args, code, message) in cases {
        let output = wasp(&[&["app", "run"][..], args].concat());
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        let record = stdout_json(&output);
        assert_eq!(
            record["error"],
            json!({"kind": "app_error", "code": code, "message": message, "retryable": false}),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn python_and_js_apps_load_and_describe_themselves_through_the_host() {
    if !available(foreign_apps_built()) {
        return;
    }
    for (name, actions) in [
        ("defang", vec!["defang", "refang"]),
        ("severity-score", vec!["score"]),
    ] {
        // Loading links the component's imports against the host's: it fails if the
        // component needs anything the host does not give.
        let app = load(example_app(name)).await;
        assert_eq!(app.info.name, name);
        assert_eq!(app.info.version, "0.1.0");
        let names: Vec<&str> = app.info.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, actions);
        for action in &app.info.actions {
            assert_eq!(
                action.input_schema["type"], "object",
                "{name} {}",
                action.name
            );
            assert_eq!(
                action.output_schema["type"], "object",
                "{name} {}",
                action.name
            );
            assert!(action.pathways.is_empty());
        }
    }
}

#[test]
fn the_python_example_app_passes_its_native_tests() {
    let componentize_py = match componentize_py() {
        Ok(program) => program,
        Err(missing) => {
            available(Err(missing));
            return;
        }
    };
    // The bindings go to a temporary directory and no bytecode is written: nothing
    // lands in example-apps/, whose changes make the build script run again.
    let bindings = tempfile::tempdir().unwrap();
    succeed(
        Command::new(&componentize_py)
            .arg("-d")
            .arg(root().join("wit"))
            .args(["-w", "app", "bindings"])
            .arg(bindings.path().join("wit")),
        "componentize-py bindings",
    );
    let text = succeed(
        Command::new("python3")
            .args(["-m", "unittest", "-v"])
            .current_dir(root().join("example-apps/python/defang"))
            .env("PYTHONPATH", bindings.path().join("wit"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "the defang app's unittest",
    );
    assert!(passed(&text) >= 9, "{text}");
}

#[test]
fn the_js_example_app_passes_its_native_tests() {
    if !available(node_and_npm()) {
        return;
    }
    let text = succeed(
        Command::new("npm")
            .args(["test", "--silent"])
            .current_dir(root().join("example-apps/js/severity-score")),
        "the severity-score app's npm test",
    );
    assert!(passed(&text) >= 7, "{text}");
    assert!(text.contains("# fail 0"), "{text}");
}

/// A Rust app made outside a checkout stands alone (its own copy of the SDK and the
/// contract), passes its own tests, and `wasp app build` builds and installs it where
/// `wasp app run` finds it by name.
#[test]
fn a_new_rust_app_passes_its_own_tests_and_builds_and_installs_alone() {
    let parent = tempfile::tempdir().unwrap();
    let dir = new_app("scaffold-rs", Lang::Rust, parent.path(), None).unwrap();
    assert!(dir.join("wasp-sdk/src/lib.rs").is_file());
    assert!(dir.join("wit/app.wit").is_file());
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("wasp-sdk = { path = \"wasp-sdk\" }"),
        "{manifest}"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Its own target directory, kept between runs: the dependencies (serde, schemars,
    // wit-bindgen, wasp-sdk) build once, and no lock is shared with the cargo running
    // these tests. Offline: what the app needs is what wasp's own build fetched.
    let isolate = |command: &mut Command| {
        command
            .env(
                "CARGO_TARGET_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target"),
            )
            .env("CARGO_NET_OFFLINE", "true");
        // The outer build's settings are not the app's.
        for var in [
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_TARGET",
        ] {
            command.env_remove(var);
        }
    };
    let mut test = Command::new(&cargo);
    test.arg("test").current_dir(&dir);
    isolate(&mut test);
    let text = succeed(&mut test, "cargo test of a new Rust app");
    assert!(passed(&text) >= 3, "{text}");

    let apps = tempfile::tempdir().unwrap();
    let wasp_in = |dir: &Path, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasp"));
        command
            .args(["--apps", apps.path().to_str().unwrap()])
            .args(args)
            .env("WASP_CACHE_DIR", crate::common::cache_dir())
            .current_dir(dir);
        isolate(&mut command);
        command.output().unwrap()
    };
    let wasp = |args: &[&str]| wasp_in(&dir, args);
    // Built twice: the second build replaces the first without being asked.
    for _ in 0..2 {
        assert_installed(&wasp(&["app", "build"]), "scaffold-rs");
    }
    assert!(apps.path().join("scaffold-rs.wasm").is_file());
    // Another app of the same name, built elsewhere, replaces it only with --force.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("scaffold-rs");
    succeed(
        Command::new("cp").arg("-r").arg(&dir).arg(&copy),
        "copying the app",
    );
    let refused = wasp_in(&copy, &["app", "build"]);
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("and was not built from this directory; --force replaces it"),
        "{said}"
    );
    let forced = wasp_in(&copy, &["app", "build", "--force"]);
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let ran = wasp(&[
        "app",
        "run",
        "scaffold-rs",
        "--action",
        "greet",
        "--input",
        r#"{"name":"Ada"}"#,
        "--config",
        "salutation=Hi",
    ]);
    assert_eq!(
        ran.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(record["output"]["greeting"], "Hi, Ada!");
}

/// `output` is of a `wasp app build` that installed version 0.1.0 of `name`.
fn assert_installed(output: &std::process::Output, name: &str) {
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with(&format!("installed `{name}` 0.1.0")),
        "{said}"
    );
}

#[test]
fn a_new_python_app_passes_its_own_tests() {
    let componentize_py = match componentize_py().and_then(|p| runs("make").map(|()| p)) {
        Ok(program) => program,
        Err(missing) => {
            available(Err(missing));
            return;
        }
    };
    let parent = tempfile::tempdir().unwrap();
    let dir = new_app("scaffold-py", Lang::Python, parent.path(), Some(&root())).unwrap();
    let text = succeed(
        Command::new("make")
            .arg("test")
            .arg(format!("COMPONENTIZE_PY={}", componentize_py.display()))
            .current_dir(&dir),
        "make test of a new Python app",
    );
    assert!(passed(&text) >= 3, "{text}");
    // `wasp app build` runs its `make build` and installs the component; again, with
    // nothing changed, make has nothing to do and the build is still there.
    let apps = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let built = Command::new(env!("CARGO_BIN_EXE_wasp"))
            .args(["--apps", apps.path().to_str().unwrap(), "app", "build"])
            .arg(&dir)
            .env("COMPONENTIZE_PY", &componentize_py)
            .env("WASP_CACHE_DIR", crate::common::cache_dir())
            .output()
            .unwrap();
        assert_installed(&built, "scaffold-py");
    }
    assert!(apps.path().join("scaffold-py.wasm").is_file());
}

#[test]
fn a_new_js_app_passes_its_own_tests() {
    if !available(node_and_npm()) {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    // Without the checkout: the app carries its own copy of the contract.
    let dir = new_app("scaffold-js", Lang::Js, parent.path(), None).unwrap();
    assert!(dir.join("wit/app.wit").is_file());
    let text = succeed(
        Command::new("npm")
            .args(["test", "--silent"])
            .current_dir(&dir),
        "npm test of a new JavaScript app",
    );
    assert!(passed(&text) >= 3, "{text}");
    assert!(text.contains("# fail 0"), "{text}");
}
