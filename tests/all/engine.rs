//! The engine around the sandbox: both allocators, and the on-disk component cache.

use std::path::PathBuf;

use wasp_runtime::host::{Allocator, Call, Host, HostConfig};
use wasp_runtime::trace::StepStatus;

use crate::common::example_app;

fn echo_path() -> PathBuf {
    PathBuf::from(env!("WASP_GUEST_DIR")).join("wasp_test_echo.wasm")
}

#[tokio::test]
async fn on_demand_allocation_runs_the_same_calls() {
    let host = Host::new(HostConfig {
        cache_dir: None,
        allocator: Allocator::OnDemand,
        ..HostConfig::default()
    })
    .unwrap();
    assert_eq!(host.allocator(), Allocator::OnDemand);
    let app = host.load(&echo_path()).await.unwrap();
    let report = host
        .invoke(&app, Call::new("echo", r#"{"a":1}"#))
        .await
        .unwrap();
    assert_eq!(report.status, StepStatus::Succeeded);
    assert_eq!(report.output, Some(serde_json::json!({"a": 1})));
}

#[tokio::test]
async fn compiled_components_and_descriptions_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = || HostConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..HostConfig::default()
    };
    let first = Host::new(config()).unwrap();
    let loaded = first.load(&example_app("ip-classify")).await.unwrap();
    let mut entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries[0].starts_with(&loaded.hash) && entries[0].ends_with(".cwasm"),
        "{entries:?}"
    );
    assert!(entries[1].ends_with(".describe.json"), "{entries:?}");

    // A corrupt entry is recompiled, not trusted.
    let compiled = dir.path().join(&entries[0]);
    std::fs::write(&compiled, b"not a compiled component").unwrap();
    let second = Host::new(config()).unwrap();
    let reloaded = second.load(&example_app("ip-classify")).await.unwrap();
    assert_eq!(reloaded.info, loaded.info);
    let report = second
        .invoke(&reloaded, Call::new("classify", r#"{"ip":"127.0.0.1"}"#))
        .await
        .unwrap();
    assert_eq!(report.output.unwrap()["category"], "loopback");
    assert!(
        std::fs::read(&compiled).unwrap().len() > 1000,
        "the entry was rewritten"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_component_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let error = crate::common::HOST
        .load(&path)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!("`{}` ", path.display())),
        "{error}"
    );
}
