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
use wasp::playbook::types::{ActionInfo, ErrorCode, Field, LogLevel};

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
    "empty-log-fields",
    "big-log-field",
    "hold-fields",
    "hold-handles",
    "hold-bodies",
    "big-error",
    "long-pathway",
    "zeros",
    "secret-pathway",
    "number-setting",
    "exit",
    "empty-poll",
    "forged-handle",
    "big-blocking-write",
    "random-flood",
    "invalid-utf8-log",
];

/// Actions that route by a pathway their input chooses.
const ANY_PATHWAY: &[&str] = &["secret-pathway"];

/// A number from the JSON input `{"n": 123}`; the guest has no JSON parser on purpose.
fn number(input: &str) -> u64 {
    nth_number(input, 0)
}

/// The `index`th number of the input: `{"n": 10, "bytes": 20}` has 10 and 20.
fn nth_number(input: &str, index: usize) -> u64 {
    input
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .nth(index)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Hold `n` outgoing requests, each with a body written as far as the host lets it be
/// written without sending the request; never returns while the host allows more.
fn hold_bodies(n: u64) -> Result<Outcome, StepError> {
    use wasi::http::types::{Fields, OutgoingRequest};
    let mut held = Vec::new();
    let chunk = vec![b'b'; 1 << 20];
    for _ in 0..n {
        let request = OutgoingRequest::new(Fields::new());
        let body = request.body().expect("a new request has a body");
        let stream = body.write().expect("a new body has a stream");
        for _ in 0..4 {
            match stream.check_write() {
                Ok(0) | Err(_) => break,
                Ok(permitted) => {
                    let n = (permitted as usize).min(chunk.len());
                    if stream.write(&chunk[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        // Children before parents: the stream, then its body, then the request.
        held.push((stream, body, request));
    }
    ok(format!("{{\"held\":{}}}", held.len()))
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
                    pathways: if ANY_PATHWAY.contains(name) {
                        vec!["*".into()]
                    } else {
                        Vec::new()
                    },
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
            "empty-log-fields" => {
                // `{"fields": n, "calls": m}`: m lines of n empty fields each.
                let fields = vec![
                    Field {
                        key: String::new(),
                        value: String::new(),
                    };
                    nth_number(&input, 0) as usize
                ];
                for _ in 0..nth_number(&input, 1) {
                    log(LogLevel::Info, "", &fields);
                }
                ok("{}".into())
            }
            "big-log-field" => {
                let field = Field {
                    key: "blob".into(),
                    value: "v".repeat(number(&input) as usize),
                };
                log(LogLevel::Info, "one big field", &[field]);
                ok("{}".into())
            }
            "hold-fields" => {
                // `{"n": count, "bytes": of a value}`: header maps kept alive.
                use wasi::http::types::Fields;
                let value = vec![b'h'; nth_number(&input, 1) as usize];
                let mut held = Vec::new();
                for _ in 0..nth_number(&input, 0) {
                    let fields = Fields::new();
                    if fields.append("x-blob", &value).is_err() {
                        return denied("appending a header", "refused");
                    }
                    held.push(fields);
                }
                ok(format!("{{\"held\":{}}}", held.len()))
            }
            "hold-handles" => {
                let held: Vec<_> = (0..number(&input))
                    .map(|_| wasi::http::types::Fields::new())
                    .collect();
                ok(format!("{{\"held\":{}}}", held.len()))
            }
            "hold-bodies" => hold_bodies(number(&input)),
            "big-error" => Err(StepError {
                code: ErrorCode::Internal,
                message: "e".repeat(number(&input) as usize),
                retryable: false,
            }),
            "long-pathway" => Ok(Outcome {
                output: "{}".into(),
                pathway: Some("p".repeat(number(&input) as usize)),
            }),
            "zeros" => {
                let n = number(&input) as usize;
                let mut out = String::with_capacity(2 * n + 2);
                out.push('[');
                for i in 0..n {
                    out.push_str(if i == 0 { "0" } else { ",0" });
                }
                out.push(']');
                ok(out)
            }
            "secret-pathway" => Ok(Outcome {
                output: "{}".into(),
                pathway: wasp::playbook::config::get("api_key"),
            }),
            "number-setting" => {
                let pin = wasp::playbook::config::get("pin").unwrap_or_default();
                ok(format!("{{\"pin\":{pin}}}"))
            }
            "exit" => {
                wasi::cli::exit::exit(Ok(()));
                ok("{}".into())
            }
            "empty-poll" => {
                wasi::io::poll::poll(&[]);
                ok("{}".into())
            }
            "forged-handle" => {
                // SAFETY: not safe at all: a handle this instance was never given.
                let forged = unsafe { wasi::http::types::Fields::from_handle(0x7fff) };
                let _ = forged.entries();
                ok("{}".into())
            }
            "big-blocking-write" => {
                let stdout = wasi::cli::stdout::get_stdout();
                let _ = stdout.blocking_write_and_flush(&vec![b'w'; number(&input) as usize]);
                ok("{}".into())
            }
            "random-flood" => {
                let bytes = wasi::random::random::get_random_bytes(number(&input));
                ok(format!("{{\"bytes\":{}}}", bytes.len()))
            }
            "invalid-utf8-log" => {
                let bytes: &[u8] = black_box(&[b'a', 0xff, 0xfe, b'z']);
                // SAFETY: not safe at all: the host must refuse a string that is not
                // UTF-8, which only a guest that lies about its strings can send.
                let text = unsafe { std::str::from_utf8_unchecked(bytes) };
                log(LogLevel::Info, text, &[]);
                ok("{}".into())
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
