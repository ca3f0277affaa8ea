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
fn the_gauges_count_running_and_queued_executions_apart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &["--token", TOKEN]);
    let yaml = "id: one-at-a-time\nname: One\nmax_concurrent: 1\ntrigger: { type: manual }\n\
                nodes:\n  wait: { app: chaos, action: spin, timeout: 1h, input: {} }\n";
    assert_eq!(server.post("/api/v1/playbooks", yaml).0, 201);
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let (status, started) = server.post("/api/v1/playbooks/one-at-a-time/run", "{}");
            assert_eq!(status, 202, "{started}");
            started["execution_id"].as_str().unwrap().to_owned()
        })
        .collect();
    // One runs, two wait for its place.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, _, text) = scrape(&server, Some(TOKEN));
        let gauges = (
            sample(&text, "wasp_executions_running"),
            sample(&text, "wasp_executions_queued"),
        );
        if gauges == (Some(1.0), Some(2.0)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{gauges:?}\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for id in &ids {
        server.post(&format!("/api/v1/executions/{id}/kill"), "");
    }
    for id in &ids {
        server.wait_for_end(id);
    }
    let (_, _, text) = scrape(&server, Some(TOKEN));
    assert_eq!(
        sample(&text, "wasp_executions_running"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(sample(&text, "wasp_executions_queued"), Some(0.0), "{text}");
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
    // Not for a proxy on this machine that forwards for someone else.
    let forwarded = server
        .agent
        .get(server.url("/metrics"))
        .header("X-Forwarded-For", "203.0.113.7")
        .call()
        .unwrap();
    assert_eq!(forwarded.status().as_u16(), 401);
    // The rest of the API still takes the token.
    let response = server
        .agent
        .get(server.url("/api/v1/executions"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

/// What a test collector received: every span of every export, decoded.
type Received = std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>;

/// A collector on 127.0.0.1: an axum route that decodes OTLP/HTTP protobuf exports.
async fn collector() -> (String, Received) {
    use prost::Message as _;
    let received: Received = std::sync::Arc::default();
    let kept = std::sync::Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = std::sync::Arc::clone(&kept);
            async move {
                let export = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body)
                    .expect("an OTLP export");
                let mut kept = kept.lock().expect("not poisoned");
                for resource in export.resource_spans {
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans);
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, received)
}

fn attribute(span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match value {
        Value::StringValue(text) => text.clone(),
        Value::IntValue(n) => n.to_string(),
        other => format!("{other:?}"),
    })
}

/// A server on 127.0.0.1 that keeps the `traceparent` of each request it answers.
async fn traced_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let kept = std::sync::Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/ping",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let kept = std::sync::Arc::clone(&kept);
            async move {
                if let Some(parent) = headers.get("traceparent") {
                    kept.lock()
                        .expect("not poisoned")
                        .push(parent.to_str().expect("text").to_owned());
                }
                axum::Json(json!({"pong": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = listener.local_addr().expect("an address").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_is_exported_as_a_span_with_one_per_step_under_the_callers_trace() {
    let (endpoint, received) = collector().await;
    let (port, traceparents) = traced_server().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasp.db");
    let server = tokio::task::spawn_blocking(move || {
        Server::start_with_env(
            &db,
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_SERVICE_NAME", "wasp-under-test"),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ],
        )
    })
    .await
    .unwrap();
    let chain = format!(
        "id: chain\nname: Chain\ntrigger: {{ type: manual }}\nnodes:\n  \
         a: {{ app: transform, action: count, input: {{ items: [1] }} }}\n  \
         b: {{ app: http-request, action: request, asset: local, \
               input: {{ url: 'http://127.0.0.1:{port}/ping' }} }}\n  \
         c: {{ app: transform, action: count, input: {{ items: ['${{trigger.password}}'] }} }}\n\
         edges: [ a -> b, b -> c ]\n"
    );
    let asset =
        format!(r#"{{"name": "local", "app": "http-request", "hosts": ["127.0.0.1:{port}"]}}"#);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let server = std::sync::Arc::new(server);
    let ran = {
        let server = std::sync::Arc::clone(&server);
        tokio::task::spawn_blocking(move || {
            assert_eq!(server.post("/api/v1/assets", &asset).0, 201);
            assert_eq!(server.post("/api/v1/playbooks", &chain).0, 201);
            let request = ureq::http::Request::builder()
                .method("POST")
                .uri(server.url("/api/v1/playbooks/chain/run?wait=true"))
                .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
                .header("Content-Type", "application/json")
                .body(r#"{"password": "hunter2-not-a-span-attribute"}"#.to_owned())
                .unwrap();
            crate::server::read(server.agent.run(request).unwrap())
        })
        .await
        .unwrap()
    };
    assert_eq!(
        (ran.0, &ran.1["status"]),
        (200, &json!("Completed")),
        "{}",
        ran.1
    );
    let execution_id = ran.1["id"].as_str().unwrap().to_owned();

    // The batch goes out within its delay: wait until every span the checks walk has
    // come (they may come in more than one export).
    let complete = |spans: &[opentelemetry_proto::tonic::trace::v1::Span]| {
        let by_id: std::collections::HashMap<&[u8], _> =
            spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
        let reaches = |mut up: Vec<u8>, to: &[u8]| {
            for _ in 0..32 {
                if up == to {
                    return true;
                }
                match by_id.get(up.as_slice()) {
                    Some(parent) => up = parent.parent_span_id.clone(),
                    None => return false,
                }
            }
            false
        };
        let Some(execution) = spans.iter().find(|s| s.name == "wasp.execution") else {
            return false;
        };
        let caller = hex::decode(caller_span).expect("hex");
        let steps: Vec<_> = spans.iter().filter(|s| s.name == "wasp.step").collect();
        steps.len() == 3
            && spans.iter().any(|s| s.name == "wasp.http")
            && reaches(execution.parent_span_id.clone(), &caller)
            && steps
                .iter()
                .all(|step| reaches(step.parent_span_id.clone(), &execution.span_id))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let spans = loop {
        let spans = received.lock().unwrap().clone();
        if complete(&spans) {
            break spans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exported: {spans:#?}\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let execution: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "wasp.execution")
        .collect();
    assert_eq!(execution.len(), 1);
    let execution = execution[0];
    assert_eq!(
        hex::encode(&execution.trace_id),
        trace_id,
        "the caller's trace goes on"
    );
    assert_eq!(
        attribute(execution, "wasp.execution.id").as_deref(),
        Some(execution_id.as_str())
    );
    assert_eq!(
        attribute(execution, "wasp.playbook").as_deref(),
        Some("chain")
    );
    assert_eq!(
        attribute(execution, "wasp.status").as_deref(),
        Some("Completed")
    );
    // Its ancestors lead to the caller's span.
    let by_id: std::collections::HashMap<&[u8], _> =
        spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let mut up = execution.parent_span_id.clone();
    while let Some(parent) = by_id.get(up.as_slice()) {
        up = parent.parent_span_id.clone();
    }
    assert_eq!(hex::encode(&up), caller_span);

    let steps: Vec<_> = spans.iter().filter(|s| s.name == "wasp.step").collect();
    let mut nodes: Vec<String> = steps
        .iter()
        .map(|s| attribute(s, "wasp.node").unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["a", "b", "c"]);
    for step in &steps {
        assert_eq!(step.trace_id, execution.trace_id);
        // Under the execution's span (through its node's).
        let mut up = step.parent_span_id.clone();
        while up != execution.span_id {
            up = by_id
                .get(up.as_slice())
                .expect("a parent exported")
                .parent_span_id
                .clone();
        }
        for (key, value) in [
            ("wasp.execution.id", execution_id.as_str()),
            ("wasp.playbook", "chain"),
            ("wasp.attempt", "1"),
            ("wasp.status", "succeeded"),
        ] {
            assert_eq!(
                attribute(step, key).as_deref(),
                Some(value),
                "{key}: {step:#?}"
            );
        }
    }
    // The step's request carried the trace to the server it called, under a span of
    // its own that names the server, not the path.
    let traceparents = traceparents.lock().unwrap().clone();
    assert_eq!(traceparents.len(), 1, "{traceparents:?}");
    let parts: Vec<&str> = traceparents[0].split('-').collect();
    assert_eq!(parts[1], trace_id, "{traceparents:?}");
    let http: Vec<_> = spans.iter().filter(|s| s.name == "wasp.http").collect();
    assert_eq!(http.len(), 1, "{spans:#?}");
    assert_eq!(hex::encode(&http[0].span_id), parts[2]);
    assert_eq!(
        attribute(http[0], "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert!(!format!("{:?}", http[0]).contains("/ping"));
    // No input, output or trigger value is an attribute of any span.
    let everything = format!("{spans:?}");
    assert!(!everything.contains("hunter2"), "{everything}");
}

#[test]
fn an_https_collector_is_refused_with_the_reason_and_the_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("wasp.db"),
        &[],
        &[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4318",
        )],
    );
    assert!(
        server
            .log()
            .contains("wasp exports over plain HTTP only (no TLS)"),
        "{}",
        server.log()
    );
    assert_eq!(server.get("/api/v1/executions").0, 200);
}
