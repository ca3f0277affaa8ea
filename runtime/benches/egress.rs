//! What an allowed outbound HTTP request costs a sandboxed app.
//!
//! `cargo bench --bench egress` runs the `http-request` example app through
//! `Host::invoke`, each call making one `GET` to a small HTTP server on 127.0.0.1 that
//! this benchmark starts (a new connection per request, as the host makes them), and
//! compares it with the same request made natively with a fresh connection. The
//! difference is the host's part: the allow-list, resolving and checking the address,
//! the sandbox and the trace record. Results and the command are in BENCHMARKS.md.
//! This is not a test: nothing here asserts a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasp_runtime::host::{Call, Egress, Host, HostConfig};
use wasp_runtime::trace::LogLevel;
use wasp_runtime::trace::StepStatus;

const WARMUP: usize = 100;
const ITERATIONS: usize = 2_000;
const BODY: &str = r#"{"data":{"ipAddress":"185.220.101.4","abuseConfidenceScore":100}}"#;

fn serve(listener: TcpListener) {
    for stream in listener.incoming().map_while(Result::ok) {
        std::thread::spawn(move || answer(stream));
    }
}

fn answer(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("a socket"));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 95 / 100],
    )
}

fn native(port: u16) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = stream.set_nodelay(true);
    write!(stream, "GET /check HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    assert!(response.ends_with(BODY.as_bytes()));
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    std::thread::spawn(move || serve(listener));

    let app_path = PathBuf::from(env!("WASP_EXAMPLE_APPS_DIR")).join("http-request.wasm");
    let host = Host::new(HostConfig::default()).expect("host");
    let app = host.load(&app_path).await.expect("http-request loads");
    let egress = Arc::new(Egress::allowing([format!("127.0.0.1:{port}")]).expect("a rule"));
    let input = serde_json::json!({"url": format!("http://127.0.0.1:{port}/check")}).to_string();
    let call = |level| Call {
        level,
        egress: Arc::clone(&egress),
        asset: Some("bench".to_owned()),
        ..Call::new("request", input.clone())
    };

    for (name, level) in [
        ("INFO (no request line)", LogLevel::Info),
        ("DEBUG (request line recorded)", LogLevel::Debug),
    ] {
        for _ in 0..WARMUP {
            let report = host.invoke(&app, call(level)).await.expect("call");
            assert_eq!(report.status, StepStatus::Succeeded, "{report:?}");
        }
        let mut samples = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            let started = Instant::now();
            let report = host.invoke(&app, call(level)).await.expect("call");
            samples.push(started.elapsed());
            std::hint::black_box(report);
        }
        let (median, p95) = stats(samples);
        println!("http-request step, one GET, {name:<32} median {median:>9.1?}  p95 {p95:>9.1?}");
    }
    let samples: Vec<Duration> = (0..ITERATIONS).map(|_| native(port)).collect();
    let (median, p95) = stats(samples);
    println!(
        "the same GET made natively, new connection{:<17} median {median:>9.1?}  p95 {p95:>9.1?}",
        ""
    );
}
