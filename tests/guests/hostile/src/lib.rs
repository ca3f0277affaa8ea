//! A hostile guest: every action misbehaves in one way the host must survive, and the
//! tests check that each ends with the right classified error and that the host then
//! serves a normal call. Written against the raw bindings, not the SDK, so that it can
//! return what the SDK would never produce (invalid JSON, undeclared pathways).
#![expect(
    unsafe_code,
    reason = "wit-bindgen's `export!` declares the exported functions with `export_name`"
)]

use std::hint::black_box;
use std::io::Write;

wit_bindgen::generate!({ path: "../../../wit", world: "app" });

use wasp::playbook::log::log;
use wasp::playbook::types::{ActionInfo, ErrorCode, LogLevel};

struct Hostile;

const ACTIONS: &[&str] = &[
    "echo",
    "noop",
    "spin",
    "alloc",
    "recurse",
    "panic",
    "big-output",
    "log-flood",
    "stdout-flood",
    "read-file",
    "read-env",
    "open-socket",
    "resolve-name",
    "input-size",
    "invalid-json",
    "bad-pathway",
    "sleep",
    "config",
    "leak-secret",
];

/// A number from the JSON input `{"n": 123}`; the guest has no JSON parser on purpose.
fn number(input: &str) -> u64 {
    input
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn ok(output: String) -> Result<Outcome, StepError> {
    Ok(Outcome {
        output,
        pathway: None,
    })
}

fn denied(what: &str, error: impl std::fmt::Display) -> Result<Outcome, StepError> {
    Err(StepError {
        code: ErrorCode::Forbidden,
        message: format!("{what}: {error}"),
        retryable: false,
    })
}

#[inline(never)]
#[expect(unconditional_recursion, reason = "recursing without end is the point")]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))) + 1
}

impl Guest for Hostile {
    fn describe() -> AppInfo {
        AppInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            description: "Misbehaves on request.".into(),
            actions: ACTIONS
                .iter()
                .map(|name| ActionInfo {
                    name: (*name).into(),
                    description: String::new(),
                    input_schema: "{}".into(),
                    output_schema: "{}".into(),
                    pathways: Vec::new(),
                })
                .collect(),
        }
    }

    fn run(call: Invocation) -> Result<Outcome, StepError> {
        let input = call.input;
        match call.action.as_str() {
            "echo" => ok(input),
            "noop" => ok("{}".into()),
            "spin" => loop {
                black_box(());
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => ok(recurse(0).to_string()),
            "panic" => panic!("deliberate panic on input {input}"),
            "big-output" => ok(format!("\"{}\"", "x".repeat(number(&input) as usize))),
            "log-flood" => {
                for i in 0..number(&input) {
                    log(LogLevel::Info, &format!("line {i}"), &[]);
                }
                ok("{}".into())
            }
            "stdout-flood" => {
                let chunk = vec![b'o'; 64 << 10];
                let mut left = number(&input) as usize;
                let mut out = std::io::stdout();
                while left > 0 {
                    let n = left.min(chunk.len());
                    if out.write_all(&chunk[..n]).is_err() {
                        return Err(StepError {
                            code: ErrorCode::Internal,
                            message: "stdout refused a write".into(),
                            retryable: false,
                        });
                    }
                    left -= n;
                }
                eprint!("done flooding");
                ok("{}".into())
            }
            "read-file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => ok(format!("{{\"read\":{}}}", text.len())),
                Err(e) => denied("reading /etc/passwd", e),
            },
            "read-env" => ok(format!(
                "{{\"vars\":{},\"args\":{}}}",
                std::env::vars_os().count(),
                std::env::args_os().count()
            )),
            "open-socket" => {
                let port = number(&input) as u16;
                match std::net::TcpStream::connect(("127.0.0.1", port)) {
                    Ok(_) => ok("{\"connected\":true}".into()),
                    Err(e) => denied("connecting to 127.0.0.1", e),
                }
            }
            "resolve-name" => match std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)) {
                Ok(addresses) => ok(format!("{{\"resolved\":{}}}", addresses.count())),
                Err(e) => denied("resolving localhost", e),
            },
            "input-size" => ok(format!("{{\"bytes\":{}}}", input.len())),
            "invalid-json" => ok("{\"unterminated\": ".into()),
            "bad-pathway" => Ok(Outcome {
                output: "{}".into(),
                pathway: Some("sideways".into()),
            }),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(number(&input)));
                ok("{}".into())
            }
            "config" => {
                let keys = wasp::playbook::config::keys();
                let pairs: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        let v = wasp::playbook::config::get(k).unwrap_or_default();
                        format!("\"{k}\":\"{v}\"")
                    })
                    .collect();
                ok(format!("{{{}}}", pairs.join(",")))
            }
            "leak-secret" => {
                let key = wasp::playbook::config::get("api_key").unwrap_or_default();
                log(LogLevel::Error, &format!("using key {key}"), &[]);
                println!("stdout key={key}");
                eprintln!("stderr key={key}");
                Err(StepError {
                    code: ErrorCode::Unauthorized,
                    message: format!("the service refused key {key}"),
                    retryable: false,
                })
            }
            other => Err(StepError {
                code: ErrorCode::InvalidInput,
                message: format!("unknown action {other}"),
                retryable: false,
            }),
        }
    }
}

export!(Hostile);
