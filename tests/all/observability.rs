//! Issue 27: `/metrics` for Prometheus and `/readyz`. The metrics move as executions
//! run, and Prometheus's own `promtool check metrics` accepts them: without promtool
//! that part says so and passes, unless `WASP_PROMTOOL=required` (as CI sets it).

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::server::{Server, sample_input};

const TOKEN: &str = "metrics-0123456789abcdef";

/// `/metrics` as `token` (or nobody) asks: status, content type, text.
fn scrape(server: &Server, token: Option<&str>) -> (u16, String, String) {
    let request = server.agent.get(server.url("/metrics"));
    let request = match token {
        Some(token) => request.header("Authorization", format!("Bearer {token}")),
        None => request,
    };
    let mut response = request.call().expect("the server answers");
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let text = response
        .body_mut()
        .read_to_string()
        .expect("the server answers");
    (response.status().as_u16(), kind, text)
}

/// The value of the sample `line` names (its name and labels, exactly).
fn sample(text: &str, line: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// Whether promtool accepts `text` (`None` when there is no promtool and it is not
/// required).
fn promtool(text: &str) -> Option<Result<(), String>> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var("WASP_PROMTOOL").is_ok_and(|v| v == "required") => {
            panic!("promtool is required: {e}")
        }
        Err(e) => {
            eprintln!(
                "skipped: promtool is not installed ({e}); WASP_PROMTOOL=required makes this a failure"
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("promtool reads");
    let output = child.wait_with_output().expect("promtool runs");
    Some(if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    })
}

#[test]
fn metrics_move_as_executions_run_and_promtool_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &["--token", TOKEN]);
    // The metrics count every tenant's executions: the server's own token reads them.
    assert_eq!(scrape(&server, None).0, 401);
    let viewer = crate::server::keys(
        &dir.path().join("wasp.db"),
        &["create", "--role", "admin", "--name", "not-the-server"],
    );
    assert_eq!(scrape(&server, Some(&viewer)).0, 401);

    let (status, kind, before) = scrape(&server, Some(TOKEN));
    assert_eq!(status, 200, "{before}");
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert!(before.contains("wasp_build_info{version=\""), "{before}");
    let started = "wasp_executions_started_total{playbook=\"ip-enrichment\",trigger=\"MANUAL\"}";
    let ended = "wasp_executions_ended_total{playbook=\"ip-enrichment\",status=\"Completed\"}";
    assert_eq!(sample(&before, started), None);

    for round in 1..=2 {
        let (status, ran) = server.post(
            "/api/v1/playbooks/ip-enrichment/run?wait=true",
            &sample_input("ip-enrichment"),
        );
        assert_eq!(
            (status, &ran["status"]),
            (200, &json!("Completed")),
            "{ran}"
        );
        let (_, _, text) = scrape(&server, Some(TOKEN));
        assert_eq!(sample(&text, started), Some(f64::from(round)), "{text}");
        assert_eq!(sample(&text, ended), Some(f64::from(round)), "{text}");
        let steps = "wasp_step_duration_seconds_count{app=\"transform\",action=\"select\",status=\"succeeded\"}";
        assert!(
            sample(&text, steps).is_some_and(|n| n >= f64::from(round)),
            "{text}"
        );
        let runs = "wasp_http_requests_total{route=\"/api/v1/playbooks/{id}/run\",method=\"POST\",status=\"200\"}";
        assert_eq!(sample(&text, runs), Some(f64::from(round)), "{text}");
        assert!(
            sample(&text, "wasp_store_batch_writes_count").is_some_and(|n| n >= 1.0),
            "{text}"
        );
        if let Some(checked) = promtool(&text) {
            checked.unwrap_or_else(|problems| panic!("promtool: {problems}\n{text}"));
        }
    }
    // An outbound request a step makes is counted by the asset it binds; one the host
    // refuses (no asset allows the host) as refused.
    let fetch = "id: fetch\nname: Fetch\ntrigger: { type: manual }\nnodes:\n  \
                 get: { app: http-request, action: request, input: { url: 'http://192.0.2.1/' } }\n";
    assert_eq!(server.post("/api/v1/playbooks", fetch).0, 201);
    let (_, ran) = server.post("/api/v1/playbooks/fetch/run?wait=true", "{}");
    assert_eq!(ran["status"], "Failed", "{ran}");
    let (_, _, text) = scrape(&server, Some(TOKEN));
    let refused = "wasp_egress_requests_total{asset=\"-\",outcome=\"refused\"}";
    assert_eq!(sample(&text, refused), Some(1.0), "{text}");
    // No execution id, and no path asked for, is ever a label.
    let (_, _, text) = scrape(&server, Some(TOKEN));
    assert!(!text.contains("ex_"), "{text}");
    server.get("/nothing/here");
    let (_, _, text) = scrape(&server, Some(TOKEN));
    assert!(!text.contains("/nothing/here"), "{text}");
    assert!(text.contains("route=\"unmatched\""), "{text}");
}

#[test]
fn metrics_answer_a_scraper_on_this_machine_when_asked_to() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("wasp.db"),
        &["--token", TOKEN, "--metrics-from-loopback"],
    );
    let (status, _, text) = scrape(&server, None);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("wasp_executions_running 0"), "{text}");
    // The rest of the API still takes the token.
    let response = server
        .agent
        .get(server.url("/api/v1/executions"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}
