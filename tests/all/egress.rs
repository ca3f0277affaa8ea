//! Outbound HTTP from real components (`http-request`, `reputation`) through the real
//! host, against a mock service on 127.0.0.1 that the test starts: what an asset
//! allows is reached, everything else is refused with a step error that says why, and
//! a service that hangs or floods cannot hold a step or the host's memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasp_runtime::assets::{AssetSpec, Source};
use wasp_runtime::host::Call;
use wasp_runtime::trace::LogLevel;
use wasp_runtime::trace::{StepReport, StepStatus};

use crate::common::{example_app, invoke, load};

/// A mock of an AbuseIPDB-style service and of misbehaving servers, on 127.0.0.1.
pub(crate) struct MockService {
    pub(crate) port: u16,
    /// Bytes of the flood routes the service managed to write.
    pub(crate) flooded: Arc<AtomicU64>,
}

/// The API key the mock service accepts.
pub(crate) const API_KEY: &str = "k-7f3a9c2e51d04b8f";

impl MockService {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
        let port = listener.local_addr().expect("an address").port();
        let flooded = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&flooded);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || serve(stream, &counter));
            }
        });
        Self { port, flooded }
    }
}

fn serve(mut stream: TcpStream, flooded: &AtomicU64) {
    let mut reader = BufReader::new(stream.try_clone().expect("a socket"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut received = 0;
    if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_ok() {
            received = body.len();
        }
    } else if header("transfer-encoding").as_deref() == Some("chunked") {
        // A body streamed without a length: `<size in hex>\r\n<bytes>\r\n`, until 0.
        loop {
            let mut size = String::new();
            let Ok(size) = reader
                .read_line(&mut size)
                .map(|_| usize::from_str_radix(size.trim(), 16).unwrap_or(0))
            else {
                break;
            };
            let mut chunk = vec![0; size + 2];
            if size == 0 || reader.read_exact(&mut chunk).is_err() {
                break;
            }
            received += size;
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let respond = |stream: &mut TcpStream, status: &str, body: &str| {
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    match path {
        "/api/v2/check" => {
            if header("key").as_deref() != Some(API_KEY) {
                respond(
                    &mut stream,
                    "401 Unauthorized",
                    r#"{"errors":[{"detail":"Authentication failed."}]}"#,
                );
                return;
            }
            let ip = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("ipAddress="))
                .unwrap_or("");
            let score = if ip.starts_with("185.220.") { 100 } else { 0 };
            let body = json!({"data": {
                "ipAddress": ip, "isPublic": true, "abuseConfidenceScore": score,
                "countryCode": "DE", "usageType": "Data Center/Web Hosting/Transit",
                "isp": "Example Hosting", "totalReports": score * 14,
                "lastReportedAt": "2026-11-21T10:01:02+00:00"
            }});
            respond(&mut stream, "200 OK", &body.to_string());
        }
        "/echo" => {
            let body = json!({"path": path, "query": query, "headers": headers
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>()});
            respond(&mut stream, "200 OK", &body.to_string());
        }
        // How much of the request's body arrived.
        "/received" => respond(
            &mut stream,
            "200 OK",
            &json!({ "bytes": received }).to_string(),
        ),
        // Never answers: only the client's timeout ends the wait.
        "/hang" => std::thread::sleep(Duration::from_secs(120)),
        // 1 GiB, chunked (no length to refuse up front), until the client hangs up.
        "/flood" => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let chunk = vec![b'x'; 64 << 10];
            for _ in 0..(1u64 << 30) / chunk.len() as u64 {
                if write!(stream, "{:x}\r\n", chunk.len()).is_err()
                    || stream.write_all(&chunk).is_err()
                    || stream.write_all(b"\r\n").is_err()
                {
                    return;
                }
                flooded.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        }
        // Declares 1 GiB up front.
        "/declared" => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                1u64 << 30
            );
            let chunk = vec![b'x'; 64 << 10];
            while stream.write_all(&chunk).is_ok() {
                flooded.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        _ => respond(&mut stream, "404 Not Found", r#"{"error":"no such route"}"#),
    }
}

/// Run `action` of example app `app` on `input`, bound to the asset defined by `yaml`.
async fn run_bound(app: &str, action: &str, yaml: &str, input: Value) -> StepReport {
    let spec: AssetSpec = serde_saphyr::from_str(yaml).expect("the asset parses");
    let asset = spec
        .resolve("intel", Path::new("."), Source::File)
        .expect("the asset resolves");
    let component = load(example_app(app)).await;
    let mut call = Call::new(action, input.to_string());
    call.level = LogLevel::Debug;
    call.settings = Arc::clone(&asset.settings);
    call.egress = Arc::clone(&asset.egress);
    call.asset = Some(asset.name.clone());
    if let Some(timeout) = asset.timeout {
        call.limits.timeout = timeout;
    }
    invoke(&component, call).await
}

/// A `GET` of `url` by the `http-request` app bound to the asset defined by `yaml`.
async fn get_via(yaml: &str, url: &str) -> StepReport {
    run_bound("http-request", "request", yaml, json!({ "url": url })).await
}

fn error_of(report: &StepReport) -> (String, String) {
    let error = report
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("the step succeeded: {report:#?}"));
    (
        error.code.clone().unwrap_or_default(),
        error.message.clone(),
    )
}

fn log_text(report: &StepReport) -> String {
    report
        .logs
        .iter()
        .map(|line| format!("{:?} {}\n", line.level, line.message))
        .collect()
}

#[tokio::test]
async fn an_allowed_host_is_reached_and_the_request_recorded() {
    let service = MockService::start();
    let port = service.port;
    let yaml = format!(
        "app: reputation\nsettings: {{base_url: 'http://127.0.0.1:{port}/api/v2'}}\n\
         secrets: {{api_key: {{file: '{}'}}}}\nhosts: ['127.0.0.1:{port}']\n",
        key_file()
    );
    let report = run_bound("reputation", "check", &yaml, json!({"ip": "185.220.101.4"})).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{report:#?}");
    let output = report.output.clone().expect("an output");
    assert_eq!(output["score"], 100);
    assert_eq!(output["verdict"], "malicious");
    assert_eq!(output["country"], "DE");
    // The request is in the trace at DEBUG: method, URL without query values, status,
    // duration and bytes.
    let line = report
        .logs
        .iter()
        .find(|line| line.message.starts_with("GET "))
        .unwrap_or_else(|| panic!("no request line: {}", log_text(&report)));
    assert_eq!(line.level, LogLevel::Debug);
    assert!(
        line.message.starts_with(&format!(
            "GET http://127.0.0.1:{port}/api/v2/check?ipAddress=…&maxAgeInDays=… → 200 in "
        )),
        "{}",
        line.message
    );
    let field = |name: &str| {
        line.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(field("status").as_deref(), Some("200"));
    assert!(field("bytes").is_some_and(|b| b.parse::<u64>().is_ok_and(|b| b > 100)));
    assert!(field("duration_ms").is_some());
    assert!(
        !format!("{report:?}").contains("185.220.101.4&"),
        "no query values in the record"
    );
}

/// A file holding the API key, as a secret's `file:` reference names it.
pub(crate) fn key_file() -> String {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("egress-api-key");
    std::fs::write(&path, format!("{API_KEY}\n")).expect("the key file is written");
    path.display().to_string()
}

#[tokio::test]
async fn hosts_off_the_list_and_loopback_by_name_are_refused() {
    let service = MockService::start();
    let port = service.port;
    let allowed_elsewhere = "app: http-request\nhosts: ['api.example.com', '*.abuseipdb.com']\n";
    let report = get_via(allowed_elsewhere, &format!("http://127.0.0.1:{port}/echo")).await;
    let (code, message) = error_of(&report);
    assert_eq!(code, "misconfigured");
    assert!(
        message.contains(&format!("GET http://127.0.0.1:{port}/echo"))
            && message.contains("does not allow this host"),
        "{message}"
    );
    assert!(
        log_text(&report).contains(&format!(
            "127.0.0.1:{port} is not an allowed host; asset `intel` allows only api.example.com, *.abuseipdb.com"
        )),
        "{}",
        log_text(&report)
    );

    // Allowed by name, but the name is loopback: refused after resolving.
    let by_name = format!("app: http-request\nhosts: ['localhost:{port}']\n");
    let report = get_via(&by_name, &format!("http://localhost:{port}/echo")).await;
    let (code, message) = error_of(&report);
    assert_eq!(code, "misconfigured");
    assert!(
        message.contains("loopback, private or link-local"),
        "{message}"
    );
    assert!(
        log_text(&report).contains("(loopback)"),
        "{}",
        log_text(&report)
    );

    // Named explicitly: reached.
    let named = format!(
        "app: http-request\nhosts: ['localhost:{port}', '127.0.0.1:{port}', '[::1]:{port}']\n"
    );
    let report = get_via(&named, &format!("http://localhost:{port}/echo")).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{report:#?}");

    // No asset: nothing at all.
    let component = load(example_app("http-request")).await;
    let call = Call::new(
        "request",
        json!({"url": "https://example.com/"}).to_string(),
    );
    let report = invoke(&component, call).await;
    assert!(
        log_text(&report).contains("the step binds no asset, so it may not reach any host"),
        "{}",
        log_text(&report)
    );
    // A named address is reachable on its rule's port only, whatever name leads there.
    let other_port = format!("app: http-request\nhosts: ['localhost:{port}', '127.0.0.1:1']\n");
    let report = get_via(&other_port, &format!("http://localhost:{port}/echo")).await;
    assert_eq!(error_of(&report).0, "misconfigured");
    assert!(
        log_text(&report).contains("127.0.0.1 (loopback)"),
        "{}",
        log_text(&report)
    );

    // A refused POST says it was refused (not that its body could not be sent).
    let report = run_bound(
        "http-request",
        "request",
        allowed_elsewhere,
        json!({"method": "POST", "url": format!("http://127.0.0.1:{port}/echo"), "json": {"a": 1}}),
    )
    .await;
    let (code, message) = error_of(&report);
    assert_eq!(code, "misconfigured", "{message}");
    assert!(message.contains("does not allow this host"), "{message}");
}

#[tokio::test]
async fn at_info_a_refusal_is_recorded_and_a_request_is_not() {
    let service = MockService::start();
    let port = service.port;
    let spec: AssetSpec =
        serde_saphyr::from_str(&format!("app: http-request\nhosts: ['127.0.0.1:{port}']\n"))
            .expect("the asset parses");
    let asset = spec
        .resolve("local", Path::new("."), Source::File)
        .expect("the asset resolves");
    let component = load(example_app("http-request")).await;
    let call = |url: String| {
        let mut call = Call::new("request", json!({"url": url}).to_string());
        call.egress = Arc::clone(&asset.egress);
        call.asset = Some(asset.name.clone());
        call
    };
    let report = invoke(&component, call(format!("http://127.0.0.1:{port}/echo"))).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{report:#?}");
    assert_eq!(
        log_text(&report),
        "",
        "an INFO execution keeps no DEBUG request lines"
    );
    let report = invoke(&component, call("http://example.com/".to_owned())).await;
    assert_eq!(
        log_text(&report),
        "Warn the host refused GET http://example.com/: example.com:80 is not an allowed host; \
         asset `local` allows only 127.0.0.1:{port}\n"
            .replace("{port}", &port.to_string())
    );
}

#[tokio::test]
async fn a_server_that_never_answers_ends_at_the_host_side_timeout() {
    let service = MockService::start();
    let port = service.port;
    let yaml = format!(
        "app: http-request\nhosts: ['127.0.0.1:{port}']\nhttp: {{first_byte_timeout: 300ms}}\n"
    );
    let started = Instant::now();
    let report = get_via(&yaml, &format!("http://127.0.0.1:{port}/hang")).await;
    let (code, message) = error_of(&report);
    assert_eq!(code, "timeout", "{message}");
    assert!(report.error.as_ref().is_some_and(|e| e.retryable));
    assert!(
        log_text(&report).contains("the response's first byte took longer than 300ms"),
        "{}",
        log_text(&report)
    );
    // The step's own deadline (30 s) was not what ended it.
    assert!(started.elapsed() < Duration::from_secs(20));

    // With generous HTTP timeouts, the step's deadline still bounds the wait.
    let yaml = format!(
        "app: http-request\nhosts: ['127.0.0.1:{port}']\nlimits: {{timeout: 500ms}}\n\
         http: {{first_byte_timeout: 1h, timeout: 1h}}\n"
    );
    let report = get_via(&yaml, &format!("http://127.0.0.1:{port}/hang")).await;
    let error = report.error.as_ref().expect("the step failed");
    assert!(
        matches!(
            error.kind,
            wasp_runtime::trace::FailureKind::Timeout | wasp_runtime::trace::FailureKind::AppError
        ),
        "{error:?}"
    );
    assert!(
        log_text(&report).contains("ran into the step's deadline")
            || error.message.contains("deadline"),
        "{error:?}\n{}",
        log_text(&report)
    );
}

#[tokio::test]
async fn a_gigabyte_response_is_stopped_at_the_cap() {
    let service = MockService::start();
    let port = service.port;
    let yaml =
        format!("app: http-request\nhosts: ['127.0.0.1:{port}']\nhttp: {{max_response: 1MiB}}\n");
    for route in ["flood", "declared"] {
        service.flooded.store(0, Ordering::Relaxed);
        let report = get_via(&yaml, &format!("http://127.0.0.1:{port}/{route}")).await;
        let (code, message) = error_of(&report);
        assert_eq!(code, "unavailable", "{route}: {message}");
        assert!(
            message.contains("over the asset's size cap"),
            "{route}: {message}"
        );
        assert!(
            log_text(&report).contains("1048576-byte cap"),
            "{route}: {}",
            log_text(&report)
        );
        // The server was cut off long before its gigabyte: what it wrote is what the
        // socket buffers took, not the whole.
        std::thread::sleep(Duration::from_millis(200));
        let written = service.flooded.load(Ordering::Relaxed);
        assert!(
            written < 256 << 20,
            "{route}: the server wrote {written} bytes"
        );
    }
}

/// Every API view of an execution, as text, to search for a secret.
fn everything_served(server: &crate::server::Server, id: &str) -> String {
    let mut seen = String::new();
    for path in [
        format!("/api/v1/executions/{id}"),
        format!("/api/v1/executions/{id}/steps"),
        format!("/api/v1/executions/{id}/logs?level=trace&limit=1000"),
        format!("/api/v1/executions/{id}/logs?level=trace&format=csv"),
        format!("/api/v3/playbook/executions/{id}"),
        "/api/v3/playbook/executions?resultLimit=100".to_owned(),
        "/api/v1/steps?limit=500".to_owned(),
        "/api/v1/logs?limit=1000".to_owned(),
        "/api/v1/assets".to_owned(),
        "/api/v1/playbooks".to_owned(),
    ] {
        let (status, body) = server.get_bytes(&path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        seen.push_str(&String::from_utf8_lossy(&body));
    }
    // The OS logs come zipped (deflated): look inside.
    let (status, zipped) = server.get_bytes(&format!("/api/v1/executions/{id}/oslogs.zip"));
    assert_eq!(status, 200);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).expect("a ZIP");
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("an entry");
        let mut text = String::new();
        file.read_to_string(&mut text).expect("text");
        seen.push_str(&text);
    }
    let (_, audit) = server.post(
        "/v1/p/workspaces/default/soc/playbooks/instances/auditlogs?limit=100",
        "{}",
    );
    seen.push_str(&audit.to_string());
    seen
}

#[test]
fn an_app_that_logs_and_returns_its_api_key_leaves_no_trace_of_it() {
    let service = MockService::start();
    let port = service.port;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("wasp.db");
    let server =
        crate::server::Server::start_with_env(&db, &[], &[("WASP_SECRET_TEST_LEAK_KEY", API_KEY)]);
    // Assets through the API: secrets by reference only.
    let (status, refused) = server.post(
        "/api/v1/assets",
        r#"{"name": "bad", "app": "chaos", "secrets": {"api_key": {"value": "in clear"}}}"#,
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|m| m.contains("never stores a secret's value")),
        "{refused}"
    );
    // The API cannot reach the server's own environment or files.
    for (body, expected) in [
        (
            r#"{"name": "env", "app": "chaos", "secrets": {"k": {"env": "HOME"}}}"#,
            "read only from environment variables named WASP_SECRET_*, not `HOME`",
        ),
        (
            r#"{"name": "file", "app": "chaos", "secrets": {"k": {"file": "/etc/passwd"}}}"#,
            "has no secrets directory",
        ),
        (
            r#"{"name": "plain", "app": "chaos", "settings": {"k": {"file": "/etc/passwd"}}}"#,
            "not a file of the server",
        ),
    ] {
        let (status, refused) = server.post("/api/v1/assets", body);
        assert_eq!(status, 400, "{refused}");
        assert!(
            refused["error"]
                .as_str()
                .is_some_and(|m| m.contains(expected)),
            "{refused}"
        );
    }
    let (status, leaky) = server.post(
        "/api/v1/assets",
        r#"{"name": "leaky", "app": "chaos", "secrets": {"api_key": {"env": "WASP_SECRET_TEST_LEAK_KEY"}}}"#,
    );
    assert_eq!(status, 201, "{leaky}");
    assert_eq!(
        leaky["secrets"]["api_key"],
        json!({"env": "WASP_SECRET_TEST_LEAK_KEY"})
    );
    assert_eq!(leaky["source"], "api");
    let intel = json!({
        "app": "reputation",
        "settings": {"base_url": format!("http://127.0.0.1:{port}/api/v2")},
        "secrets": {"api_key": {"env": "WASP_SECRET_TEST_LEAK_KEY"}},
        "hosts": [format!("127.0.0.1:{port}")],
    });
    let (status, body) = server.send("PUT", "/api/v1/assets/intel", &intel.to_string());
    assert_eq!(status, 201, "{body}");
    let echo = json!({
        "app": "http-request",
        "settings": {"base_url": format!("http://127.0.0.1:{port}")},
        "secrets": {"authorization": {"env": "WASP_SECRET_TEST_LEAK_KEY"}},
        "hosts": [format!("127.0.0.1:{port}")],
    });
    let (status, body) = server.send("PUT", "/api/v1/assets/echo", &echo.to_string());
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.send("DELETE", "/api/v1/assets/soc-feed", "");
    assert_eq!(
        status, 409,
        "assets from the file are read-only here: {body}"
    );

    let playbook = r#"
id: leaky
name: Leaky
log_level: trace
trigger: { type: manual }
required_connector_ids: [leaky, intel, echo]
nodes:
  leak:      { app: chaos, action: leak, asset: leaky, input: { key: api_key } }
  leak_fail: { app: chaos, action: leak, asset: leaky, input: { key: api_key, fail: true } }
  rep:       { app: reputation, action: check, asset: intel, input: { ip: 185.220.101.4 } }
  echo:      { app: http-request, action: request, asset: echo, input: { url: /echo } }
edges: []
"#;
    let (status, body) = server.post("/api/v1/playbooks", playbook);
    assert_eq!(status, 201, "{body}");
    let (status, execution) = server.post("/api/v1/playbooks/leaky/run?wait=true", "{}");
    assert_eq!(status, 200, "{execution}");
    let id = execution["id"].as_str().expect("an id").to_owned();
    assert_eq!(execution["status"], "Partially Failed", "{execution}");

    // The key was really used (the service checks it) and really spilled (masked).
    let (_, steps) = server.get(&format!("/api/v1/executions/{id}/steps"));
    let steps = steps.to_string();
    assert!(steps.contains(r#""verdict":"malicious""#), "{steps}");
    assert!(steps.contains("the api_key is ***!"), "{steps}");
    assert!(steps.contains("rejected: the api_key is ***!"), "{steps}");
    assert!(steps.contains(r#""authorization":"***""#), "{steps}");

    let served = everything_served(&server, &id);
    assert!(served.contains("***"));
    assert!(!served.contains(API_KEY), "the API shows the key");
    assert!(
        !server.log().contains(API_KEY),
        "the server's log holds the key"
    );
    drop(server);
    for file in ["wasp.db", "wasp.db-wal", "wasp.db-shm"] {
        let path = dir.path().join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            let found = bytes
                .windows(API_KEY.len())
                .any(|window| window == API_KEY.as_bytes());
            assert!(!found, "{file} holds the key");
        }
    }

    // A required asset that is missing stops the playbook before it runs.
    let server = crate::server::Server::start(&db, &[]);
    let (status, body) = server.post("/api/v1/playbooks/leaky/run", "{}");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().is_some_and(
            |m| m.contains("requires assets that are not configured: leaky, intel, echo")
        ),
        "{body}"
    );
    assert!(
        server.log().contains("WASP_SECRET_TEST_LEAK_KEY"),
        "the stored assets say why they cannot be used: {}",
        server.log()
    );
}

#[tokio::test]
async fn a_secret_longer_than_the_line_cap_leaves_no_prefix_behind() {
    // 70,000 bytes: a log line holding it is cut at the 64 KiB line cap.
    let secret: String = (0..70_000)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).expect("a letter")))
        .collect();
    let app = load(example_app("chaos")).await;
    let mut call = Call::new("leak", json!({"key": "api_key"}).to_string());
    call.level = LogLevel::Trace;
    call.settings =
        Arc::new(wasp_runtime::host::Settings::new().with_secret("api_key", secret.clone()));
    let report = invoke(&app, call).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{:?}", report.error);
    let line = &report.logs[0];
    assert_eq!(line.message, "the api_key is ***!");
    let recorded = serde_json::to_string(&report).expect("JSON");
    assert!(
        !recorded.contains(&secret[..32]),
        "a piece of the secret was recorded"
    );
}

#[tokio::test]
async fn a_secret_cut_by_the_stdout_cap_leaves_no_prefix_behind() {
    // 1.5 MB: stdout keeps its first MiB, which ends inside the secret.
    let secret: String = (0..1_500_000)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).expect("a letter")))
        .collect();
    let app = load(example_app("chaos")).await;
    let mut call = Call::new("leak", json!({"key": "api_key"}).to_string());
    call.level = LogLevel::Trace;
    call.limits.memory_bytes = 256 << 20;
    call.settings =
        Arc::new(wasp_runtime::host::Settings::new().with_secret("api_key", secret.clone()));
    let report = invoke(&app, call).await;
    assert_eq!(report.status, StepStatus::Succeeded, "{:?}", report.error);
    assert!(report.truncated.stdout_bytes_dropped > 0);
    assert_eq!(report.stdout, "stdout: the api_key is ***");
    let recorded = serde_json::to_string(&report).expect("JSON");
    assert!(
        !recorded.contains(&secret[..32]),
        "a piece of the secret was recorded"
    );
}

#[test]
fn wasp_app_run_reaches_only_the_hosts_given_with_allow_host() {
    let service = MockService::start();
    let port = service.port;
    let input = json!({"url": format!("http://127.0.0.1:{port}/echo")}).to_string();
    let base = [
        "app",
        "run",
        "http-request",
        "--action",
        "request",
        "--input",
        &input,
    ];
    let allowed = format!("127.0.0.1:{port}");

    let output = crate::cli::wasp(
        &[
            &base[..],
            &["--allow-host", &allowed, "--log-level", "debug"],
        ]
        .concat(),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        crate::cli::stderr(&output)
    );
    let report = crate::cli::stdout_json(&output);
    assert_eq!(report["output"]["status"], 200);
    assert!(
        report["logs"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("GET http://127.0.0.1:{port}/echo → 200"))),
        "{report}"
    );

    let output = crate::cli::wasp(&[&base[..], &["--allow-host", "api.example.com"]].concat());
    assert_eq!(output.status.code(), Some(1));
    let report = crate::cli::stdout_json(&output);
    assert!(
        report["logs"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!(
                "127.0.0.1:{port} is not an allowed host; the step may reach only api.example.com"
            ))),
        "{report}"
    );

    let output = crate::cli::wasp(&[&base[..], &["--allow-host", "*"]].concat());
    assert_eq!(output.status.code(), Some(2));
    assert!(crate::cli::stderr(&output).contains("--allow-host: host `*`"));
}

// Issue 21, item 8: a request body now streams through 64 KiB writes (it buffered
// 1 MiB ones); a body larger than that still arrives whole.
#[tokio::test]
async fn a_request_body_larger_than_one_write_arrives_whole() {
    let service = MockService::start();
    let port = service.port;
    let yaml = format!("app: http-request\nhosts: ['127.0.0.1:{port}']\n");
    let report = run_bound(
        "http-request",
        "request",
        &yaml,
        json!({
            "url": format!("http://127.0.0.1:{port}/received"),
            "method": "POST",
            "body": "b".repeat(1 << 20),
        }),
    )
    .await;
    assert_eq!(report.status, StepStatus::Succeeded, "{:?}", report.error);
    assert_eq!(
        report.output.as_ref().map(|output| &output["json"]),
        Some(&json!({ "bytes": 1 << 20 }))
    );
}
