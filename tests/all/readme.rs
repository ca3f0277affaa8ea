//! The commands of the README and of `docs/`, run as written: every line of every `sh`
//! block, in a fresh folder that holds what a clone after the quick start holds
//! (`example-apps/`, `tests/`, the built apps), with the `wasp` built for these tests
//! first on `PATH`.
//! A command passes when it exits 0; a server (`wasp serve`) passes when it gets ready,
//! and the commands after it in its block then talk to it; an event stream (`curl -N`)
//! passes when it is still open a second later.
//!
//! What the harness changes, and only this: `cargo run --` is `wasp`, `cargo build`,
//! `cargo test` (this very run) and `rustup` do nothing, `alias` does nothing (`wasp` is
//! on `PATH`), `curl` fails on an HTTP error (`--fail-with-body`), and a server listens
//! on a free port of 127.0.0.1, to which `localhost:8080` and `127.0.0.1:8080` in later
//! commands are pointed; `postgres://wasp@localhost:5432/wasp` is a database of the
//! test process's own PostgreSQL cluster (`tests/support/postgres.rs`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{cache_dir, example_apps_dir};

/// A command of the README: where it is, and its text (continued lines joined).
#[derive(Debug, Clone, PartialEq)]
struct Line {
    /// Its first line's number in README.md, from 1.
    number: usize,
    text: String,
}

/// The commands of each `sh` block of `markdown`, comments and blank lines left out.
fn blocks(markdown: &str) -> Vec<Vec<Line>> {
    let mut blocks = Vec::new();
    let mut block: Option<Vec<Line>> = None;
    let mut pending: Option<Line> = None;
    for (index, raw) in markdown.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim();
        if let Some(lines) = &mut block {
            if trimmed == "```" {
                blocks.push(block.take().unwrap_or_default());
                continue;
            }
            let (text, continued) = match trimmed.strip_suffix('\\') {
                Some(head) => (head.trim_end(), true),
                None => (trimmed, false),
            };
            let line = match pending.take() {
                Some(mut line) => {
                    line.text.push(' ');
                    line.text.push_str(text);
                    line
                }
                // A comment of its own, or a blank line.
                None if text.is_empty() || text.starts_with('#') => continue,
                None => Line {
                    number,
                    text: text.to_owned(),
                },
            };
            if continued {
                pending = Some(line);
            } else {
                lines.push(line);
            }
        } else if trimmed == "```sh" {
            block = Some(Vec::new());
        }
    }
    assert!(block.is_none(), "README.md ends inside a code block");
    blocks
}

/// The PostgreSQL database the documents name.
const POSTGRES_URL: &str = "postgres://wasp@localhost:5432/wasp";

/// The database [`POSTGRES_URL`] is pointed at: one for the test process (`None` when
/// PostgreSQL is not installed, and then those commands are skipped).
fn readme_database() -> Option<&'static str> {
    static DATABASE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DATABASE.get_or_init(crate::postgres::database).as_deref()
}

/// What the harness defines before each command (see the module's comment).
const PRELUDE: &str = r#"
set -o pipefail
cargo() {
  case "$1" in
    run) shift; [ "${1-}" = -- ] && shift; wasp "$@" ;;
    build|test) ;;
    *) echo "the README harness does not run cargo $1" >&2; return 2 ;;
  esac
}
rustup() { :; }
alias() { :; }
curl() { command curl --fail-with-body --max-time 120 "$@"; }
"#;

/// A folder laid out as a clone after the quick start, and `PATH` with `wasp` first.
struct Clone {
    dir: tempfile::TempDir,
    path: String,
}

impl Clone {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for entry in ["example-apps", "tests"] {
            std::os::unix::fs::symlink(repo.join(entry), dir.path().join(entry))
                .expect("a link to the checkout");
        }
        std::fs::create_dir(dir.path().join("target")).expect("target/");
        std::os::unix::fs::symlink(example_apps_dir(), dir.path().join("target/apps"))
            .expect("a link to the built apps");
        let bin = dir.path().join(".bin");
        std::fs::create_dir(&bin).expect(".bin/");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_wasp"), bin.join("wasp"))
            .expect("a link to wasp");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Clone { dir, path }
    }

    /// `bash -c` on `text` in the folder, with the prelude and the tests' environment.
    fn command(&self, text: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("{PRELUDE}\n{text}"))
            .current_dir(self.dir.path())
            .env("PATH", &self.path)
            .env("WASP_CACHE_DIR", cache_dir())
            // A home of its own: `wasp app install` writes under it.
            .env("HOME", self.dir.path().join(".home"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for name in [
            "XDG_DATA_HOME",
            "WASP_APPS",
            "WASP_DB",
            "WASP_API_TOKEN",
            "WASP_LOG",
            "CARGO_TARGET_DIR",
        ] {
            command.env_remove(name);
        }
        command
    }
}

/// A `wasp serve` of the README, running.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `line` (a `wasp serve`) on a free port and wait until it is ready.
fn serve(clone: &Clone, line: &Line) -> Result<Server, String> {
    let mut words: Vec<String> = Vec::new();
    let mut addr = false;
    for word in line.text.split(' ') {
        if addr {
            addr = false;
            continue;
        }
        if word == "--addr" {
            addr = true;
            continue;
        }
        words.push(word.to_owned());
    }
    let rest = words.join(" ");
    let rest = rest.strip_prefix("wasp serve").unwrap_or(&rest);
    let text = format!("exec wasp serve --addr 127.0.0.1:0{rest}");
    let mut child = clone
        .command(&text)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    // What it prints, line by line, from both streams.
    let (lines, printed) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(lines);
    let mut seen = Vec::new();
    let mut port = None;
    loop {
        match printed.recv_timeout(Duration::from_secs(300)) {
            Ok(text) => {
                if let Some(rest) = text.split("http://127.0.0.1:").nth(1) {
                    port = port.or_else(|| {
                        rest.split(|c: char| !c.is_ascii_digit())
                            .next()
                            .and_then(|p| p.parse::<u16>().ok())
                    });
                }
                let ready = text.starts_with("wasp ready");
                seen.push(text);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                return Err(format!(
                    "it never said `wasp ready`; it printed:\n{}",
                    seen.join("\n")
                ));
            }
        }
    }
    let port = port.ok_or_else(|| format!("it named no port:\n{}", seen.join("\n")))?;
    // Keep draining what it prints, so that it never blocks on a full pipe.
    std::thread::spawn(move || while printed.recv().is_ok() {});
    Ok(Server { child, port })
}

/// Run one command; `Err` says how it failed.
fn run(clone: &Clone, line: &Line, server: Option<&Server>) -> Result<(), String> {
    let mut text = line.text.clone();
    if let Some(server) = server {
        let to = format!(":{}", server.port);
        text = text
            .replace("localhost:8080", &format!("localhost{to}"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1{to}"));
    }
    if text.starts_with("curl -sN") {
        // `exec`: the shell becomes curl (a function is not exec'd), so that killing
        // the child ends the stream.
        let text = text.replacen("curl", "exec curl --fail-with-body", 1);
        let mut child = clone
            .command(&text)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_secs(1));
        let ended = child.try_wait().map_err(|e| e.to_string())?;
        let _ = child.kill();
        let _ = child.wait();
        return match ended {
            None => Ok(()),
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(format!("the stream ended at once, with {status}")),
        };
    }
    let output = clone.command(&text).output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "it exited with {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Run every command of the `sh` blocks of `document` (a path from the repository's
/// root) in `clone`; the failures, each with its line.
fn run_document(clone: &Clone, document: &str) -> (usize, Vec<String>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(document);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let blocks = blocks(&text);
    let mut failures = Vec::new();
    for block in &blocks {
        let mut server = None;
        for line in block {
            let started = std::time::Instant::now();
            // The documents' PostgreSQL is one database of the test process's cluster.
            let line = &if line.text.contains(POSTGRES_URL) {
                let Some(url) = readme_database() else {
                    continue;
                };
                Line {
                    text: line.text.replace(POSTGRES_URL, url),
                    ..line.clone()
                }
            } else {
                line.clone()
            };
            let ran = if line.text.starts_with("wasp serve") {
                // One server at a time: a block's second one replaces the first.
                server = None;
                serve(clone, line).map(|s| server = Some(s))
            } else {
                run(clone, line, server.as_ref())
            };
            eprintln!("{document}:{} took {:?}", line.number, started.elapsed());
            if let Err(why) = ran {
                failures.push(format!(
                    "{document}:{}: `{}`: {why}",
                    line.number, line.text
                ));
            }
        }
    }
    (blocks.iter().map(Vec::len).sum(), failures)
}

#[test]
fn every_command_in_the_readme_and_the_docs_runs_as_written() {
    let clone = Clone::new();
    let (count, mut failures) = run_document(&clone, "README.md");
    assert!(
        count >= 20,
        "the README has {count} commands; the parser lost some"
    );
    let mut documents: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"))
            .expect("docs/")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.ends_with(".md").then(|| format!("docs/{name}"))
            })
            .collect();
    documents.sort();
    let mut all = count;
    for document in &documents {
        let (count, more) = run_document(&clone, document);
        all += count;
        failures.extend(more);
    }
    assert!(
        failures.is_empty(),
        "{} of {all} documented commands failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_harness_joins_continued_lines_and_drops_comments() {
    let markdown = "text\n```sh\n# a comment\nwasp a \\\n     --b c   # trailing\n\n  # aside\nwasp d\n```\n```yaml\nnot: run\n```\n";
    assert_eq!(
        blocks(markdown),
        vec![vec![
            Line {
                number: 4,
                text: "wasp a --b c   # trailing".to_owned(),
            },
            Line {
                number: 8,
                text: "wasp d".to_owned(),
            },
        ]]
    );
}
