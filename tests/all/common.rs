//! What every test module shares: one host (as one process has), and the paths of the
//! components the build script built.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use wasp_runtime::host::{App, Call, Host, HostConfig};
use wasp_runtime::trace::StepReport;

/// The directory the example apps are copied to.
pub fn example_apps_dir() -> PathBuf {
    PathBuf::from(env!("WASP_EXAMPLE_APPS_DIR"))
}

/// The example app `name`'s component.
pub fn example_app(name: &str) -> PathBuf {
    example_apps_dir().join(format!("{name}.wasm"))
}

/// The hostile test guest's component.
pub fn hostile_path() -> PathBuf {
    PathBuf::from(env!("WASP_GUEST_DIR")).join("wasp_test_hostile.wasm")
}

/// A fixture file under `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The cache directory the tests use, so they never touch the user's.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// One host for the whole test binary, like one `wasp` process.
pub static HOST: LazyLock<Host> = LazyLock::new(|| {
    Host::new(HostConfig {
        cache_dir: Some(cache_dir()),
        ..HostConfig::default()
    })
    .expect("the host starts")
});

pub async fn load(path: PathBuf) -> Arc<App> {
    HOST.load(&path).await.unwrap_or_else(|e| panic!("{e}"))
}

pub async fn hostile() -> Arc<App> {
    load(hostile_path()).await
}

pub async fn invoke(app: &App, call: Call) -> StepReport {
    HOST.invoke(app, call)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Run `action` of the example app `name` on `input` and return its output, failing
/// the test with the whole report if the step failed.
pub async fn output_of(name: &str, action: &str, input: serde_json::Value) -> serde_json::Value {
    let app = load(example_app(name)).await;
    let report = invoke(&app, Call::new(action, input.to_string())).await;
    report
        .output
        .clone()
        .unwrap_or_else(|| panic!("{name} {action} failed: {report:#?}"))
}

/// A playbook of `count` `transform select` nodes, as JSON: a chain where each node
/// reads the one before it, or a fan-out where every node reads the trigger.
pub fn generated(count: usize, chain: bool) -> String {
    let nodes: serde_json::Map<String, serde_json::Value> = (0..count)
        .map(|i| {
            let data = if chain && i > 0 {
                format!("${{n{}.output}}", i - 1)
            } else {
                "${trigger}".to_owned()
            };
            let node = serde_json::json!({
                "app": "transform", "action": "select",
                "input": { "data": data, "path": "$" },
            });
            (format!("n{i}"), node)
        })
        .collect();
    let edges: Vec<String> = if chain {
        (1..count).map(|i| format!("n{} -> n{i}", i - 1)).collect()
    } else {
        Vec::new()
    };
    serde_json::json!({
        "id": "generated", "name": "Generated", "trigger": { "type": "manual" },
        "nodes": nodes, "edges": edges,
    })
    .to_string()
}
