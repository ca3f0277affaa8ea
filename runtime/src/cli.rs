//! The `wasp` command line.
//!
//! Data goes to stdout (one JSON record, or a table for people); diagnostics and
//! errors to stderr. Exit codes: 0 the step succeeded, 1 it failed, 2 bad usage
//! (unknown app or action, invalid JSON, missing file), 3 wasp itself failed.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

mod build;
mod keys;
mod progress;

use crate::host::{self, Call, Host, HostConfig, Limits, Registry, Settings};
use crate::trace::StepStatus;

use crate::assets::Assets;
use crate::engine::{self, Start};
use crate::playbook::{Known, NodeKind, Playbook, PlaybookSpec, parse_duration, parse_size};
use crate::runner::HostRunner;
use crate::trace::LogLevel;
use crate::trace::{Event, Execution, ExecutionStatus, NodeRecord, NodeStatus, TriggerType};

/// Exit code: the step failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: wasp itself failed.
pub const EXIT_INTERNAL: u8 = 3;

/// The apps directory used when neither `--apps` nor `WASP_APPS` is given and
/// `CARGO_TARGET_DIR` is not set (or empty): where the build puts the example apps,
/// relative to the repository root.
pub const DEFAULT_APPS_DIR: &str = "target/apps";

/// The build's apps directory, from the current directory: `apps` in
/// `CARGO_TARGET_DIR` when that variable is set (a relative one from the current
/// directory; the build reads it from the repository root, so the two agree when wasp
/// runs there), else [`DEFAULT_APPS_DIR`]. Cargo's other ways to move the target
/// directory (`build.target-dir`) are not read.
fn build_apps_dir() -> PathBuf {
    std::env::var_os(crate::env::CARGO_TARGET_DIR)
        .filter(|dir| !dir.is_empty())
        .map_or_else(
            || PathBuf::from(DEFAULT_APPS_DIR),
            |dir| PathBuf::from(dir).join("apps"),
        )
}

/// Where `wasp app install` puts apps when no `--apps` names a directory: the user's
/// data directory, `$XDG_DATA_HOME/wasp/apps` or `~/.local/share/wasp/apps`.
fn user_apps_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("wasp/apps"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share/wasp/apps"))
}

/// The directories where wasp looks for apps when neither `--apps` nor `WASP_APPS`
/// names one, in order; the first that exists is used: `./apps`, the build's apps
/// directory (in a checkout), the user's (where `wasp app install` puts them), and the
/// apps this `wasp` was built with: where its build put the example apps, and the
/// checkout's `target/apps` (`cargo install` builds in a directory it then removes), so
/// that wasp finds the example apps from any folder.
fn apps_search_path() -> Vec<PathBuf> {
    let mut path = vec![PathBuf::from("apps"), build_apps_dir()];
    path.extend(user_apps_dir());
    path.push(PathBuf::from(env!("WASP_EXAMPLE_APPS_DIR")));
    path.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(DEFAULT_APPS_DIR),
    );
    path
}

/// The apps directory of a command: the one named, or else the first of the search
/// path that exists (the build's, when none does, for the error to name).
fn default_apps_dir() -> PathBuf {
    apps_search_path()
        .into_iter()
        .find(|dir| dir.is_dir())
        .unwrap_or_else(build_apps_dir)
}

/// wasp: WebAssembly Sandboxed Playbooks.
///
/// Runs security-automation apps and playbooks whose steps are WebAssembly
/// components, each in a fresh sandbox.
#[derive(Debug, Parser)]
#[command(name = "wasp", version)]
pub struct Cli {
    /// Directory of app components (`.wasm` files) [default: the first that exists of
    /// ./apps, target/apps (or $CARGO_TARGET_DIR/apps), ~/.local/share/wasp/apps (where
    /// `wasp app install` puts apps), and the build output of the checkout wasp was
    /// built from]
    #[arg(long, global = true, env = crate::env::APPS, value_name = "DIR")]
    apps: Option<PathBuf>,

    /// Where compiled components are cached [default: ~/.cache/wasp]
    #[arg(long, global = true, env = crate::env::CACHE_DIR, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, describe and run apps.
    #[command(subcommand)]
    App(AppCommand),
    /// Check a playbook: every problem is listed, each naming its node and field.
    Validate(ValidateArgs),
    /// Print a playbook's graph as Mermaid or Graphviz DOT.
    Graph(GraphArgs),
    /// Run a playbook once and show every node's end state.
    Run(RunPlaybookArgs),
    /// Serve the API over HTTP, with the playbooks of a directory, storing executions.
    Serve(ServeArgs),
    /// Query the executions in the database.
    #[command(subcommand)]
    Executions(ExecutionsCommand),
    /// Make, list and revoke API keys (each with a role) in the database.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print the JSON Schema of a file wasp reads, for an editor to complete and check
    /// it (VS Code's YAML extension: `# yaml-language-server: $schema=…`).
    Schema {
        /// Which file.
        #[arg(value_enum)]
        of: SchemaOf,
    },
    /// Print the completion script of a shell: `source <(wasp completions bash)`, or
    /// save it where the shell looks (`~/.local/share/bash-completion/completions/wasp`,
    /// a directory of `$fpath` as `_wasp`, `~/.config/fish/completions/wasp.fish`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print wasp's manual page (roff): `wasp man > wasp.1 && man ./wasp.1`.
    Man(ManArgs),
}

/// What `wasp man` writes.
#[derive(Debug, Args)]
struct ManArgs {
    /// Write a page per command (`wasp.1`, `wasp-run.1`, …) into this directory,
    /// instead of printing wasp's own page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SchemaOf {
    /// A playbook file.
    Playbook,
    /// The HTTP API, as an OpenAPI 3.1 document (what `/api/v1/openapi.json` serves).
    Openapi,
    /// The HTTP API's reference in Markdown, generated from the OpenAPI document (the
    /// repository's `docs/http-api.md`).
    HttpApi,
}

/// Whether to colour what goes to `stream`: when it is a terminal and `NO_COLOR` is
/// unset or empty (<https://no-color.org>).
pub fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in the ANSI colour `code` (`32` green, `31` red, `33` yellow, `90` grey)
/// when `on`.
fn tint(text: &str, code: u8, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// The database file used when neither `--db` nor `WASP_DB` is given.
pub const DEFAULT_DB: &str = "wasp.db";

#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on; beyond loopback only with a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,

    /// The database: a SQLite file (created if missing), or a PostgreSQL URL
    /// (`postgres://user@host:port/db`; the password in `PGPASSWORD` keeps it out of
    /// the process list).
    #[arg(long, env = crate::env::DB, hide_env_values = true, default_value = DEFAULT_DB, value_name = "FILE|URL")]
    db: crate::store::Location,

    /// The directory of playbooks to serve.
    #[arg(long, default_value = "example-apps/playbooks", value_name = "DIR")]
    playbooks: PathBuf,

    /// The assets file: configured app instances that nodes bind with `asset:` [default:
    /// `assets.yaml` in the playbooks directory, when there is one]
    #[arg(long, value_name = "FILE")]
    assets: Option<PathBuf>,

    /// Require this token on every request (`Authorization: Bearer <TOKEN>`, or a vendor
    /// client's `TC-Token`, `ph-auth-token` or `X-Auth-Token`): at least 16 characters,
    /// 8 of them different (`openssl rand -hex 16` makes one).
    #[arg(long, env = crate::env::API_TOKEN, hide_env_values = true)]
    token: Option<String>,

    /// A host name clients may reach the server by (the `Host` they send), besides
    /// `localhost` and IP addresses; `*.example.com` allows every name under it.
    /// Requests naming any other host are refused (421), which stops DNS rebinding.
    /// Repeat it, or give a comma-separated list.
    #[arg(long = "allowed-host", env = crate::env::ALLOWED_HOSTS, value_delimiter = ',', value_name = "NAME")]
    allowed_hosts: Vec<String>,

    /// The address clients reach the server by, e.g. `https://wasp.example.com` behind a
    /// TLS proxy: the links answers carry (ThreatConnect's `next`/`prev`) start with it.
    /// Without it they follow the request: its `Host`, and the scheme the proxy names in
    /// `X-Forwarded-Proto` or `Forwarded`.
    #[arg(long, env = crate::env::PUBLIC_URL, value_name = "URL")]
    public_url: Option<String>,

    /// How long a client may take to send a request's head, and may leave a connection
    /// idle between requests, before the server closes it.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    header_timeout: std::time::Duration,

    /// The directory whose files assets created through the API may name as secrets
    /// (`{"file": "name"}`, relative to it). Without it, such assets take secrets from
    /// `WASP_SECRET_*` environment variables only.
    #[arg(long, env = crate::env::SECRETS_DIR, value_name = "DIR")]
    secrets_dir: Option<PathBuf>,

    /// The signing key (made, readable by its owner only, when missing): each API key's
    /// signing secret derives from it, for clients that sign requests instead of sending
    /// a token (ThreatConnect's HMAC, Huawei Cloud's AK/SK; the access id is the key's
    /// id). Every server of one database needs the same file. Without it, signed
    /// requests are refused.
    #[arg(long, env = crate::env::KEY_FILE, value_name = "FILE")]
    key_file: Option<PathBuf>,

    /// Accept JSON Web Tokens signed with this key, from an identity provider: a PEM
    /// public key (RSA for RS256, EC P-256 for ES256), a JWKS file (`{"keys": [...]}`),
    /// or a shared secret for HS256 (32 bytes or more). A token carries `sub`, `exp` and
    /// its tenant (`tenant_id`), and may carry `role` (a viewer's without) and `app_id`.
    /// Needs --token.
    #[arg(long, env = crate::env::JWT_KEY, value_name = "FILE")]
    jwt_key: Option<PathBuf>,

    /// Answer `/metrics` without a token to a scraper on this machine (a loopback
    /// address). Otherwise it takes the server's own token: the metrics count every
    /// tenant's executions.
    #[arg(long)]
    metrics_from_loopback: bool,

    /// The `iss` a JWT must carry.
    #[arg(long, requires = "jwt_key", value_name = "ISSUER")]
    jwt_issuer: Option<String>,

    /// The `aud` a JWT must carry.
    #[arg(long, requires = "jwt_key", value_name = "AUDIENCE")]
    jwt_audience: Option<String>,

    /// The claim a JWT names its tenant in.
    #[arg(long, default_value = "tenant_id", value_name = "CLAIM")]
    jwt_tenant_claim: String,
}

#[derive(Debug, Subcommand)]
enum ExecutionsCommand {
    /// List executions, newest first, filtered by a TQL query.
    List(ExecutionsListArgs),
    /// Show one execution's whole record.
    Show(ExecutionsShowArgs),
}

#[derive(Debug, Args)]
struct ExecutionsListArgs {
    /// A TQL query, e.g. `status = "Failed" AND completedTime > "NOW() - 1 HOUR"`.
    #[arg(long, default_value = "")]
    tql: String,

    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: i64,

    /// The database: a SQLite file, or a PostgreSQL URL.
    #[arg(long, env = crate::env::DB, hide_env_values = true, default_value = DEFAULT_DB, value_name = "FILE|URL")]
    db: crate::store::Location,

    #[command(flatten)]
    output: OutputArg,
}

/// `--output`, on every command that prints records.
#[derive(Debug, Args)]
struct OutputArg {
    /// `text` for people, `json` for scripts [default: text on a terminal, else json]
    #[arg(long = "output", value_name = "FORMAT")]
    format: Option<OutputFormat>,
}

impl OutputArg {
    /// The format asked for, or text at a terminal and JSON elsewhere.
    fn format(&self) -> OutputFormat {
        self.format.unwrap_or(if std::io::stdout().is_terminal() {
            OutputFormat::Text
        } else {
            OutputFormat::Json
        })
    }
}

#[derive(Debug, Args)]
struct ExecutionsShowArgs {
    /// The execution's id (`ex_…`) or number.
    id: String,

    /// The database: a SQLite file, or a PostgreSQL URL.
    #[arg(long, env = crate::env::DB, hide_env_values = true, default_value = DEFAULT_DB, value_name = "FILE|URL")]
    db: crate::store::Location,

    #[command(flatten)]
    output: OutputArg,
}

#[derive(Debug, Args)]
struct RunPlaybookArgs {
    #[command(flatten)]
    playbook: PlaybookArgs,

    /// The trigger payload: JSON, `@FILE`, or `@-` for stdin.
    #[arg(long, default_value = "{}")]
    input: String,

    /// Record at this level instead of the playbook's (trace, debug, info, warn, error).
    #[arg(long, conflicts_with = "debug")]
    log_level: Option<LogLevel>,

    /// A debug run: recorded at TRACE, with trigger type DEBUG.
    #[arg(long)]
    debug: bool,

    /// The assets file: configured app instances that nodes bind with `asset:` [default:
    /// `assets.yaml` beside the playbook, when there is one]
    #[arg(long, value_name = "FILE")]
    assets: Option<PathBuf>,

    /// End the execution (Failed) past this time instead of the playbook's `max_runtime`.
    #[arg(long, value_parser = parse_duration)]
    max_runtime: Option<Duration>,

    /// `text` for people, `json` for the whole trace [default: text on a terminal, else json]
    #[arg(long)]
    output: Option<OutputFormat>,

    /// Print each node on stderr as it starts and ends [default: when stderr is a
    /// terminal]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    progress: Option<bool>,

    /// Also store the execution, and the playbook, in this database, a SQLite file or a
    /// PostgreSQL URL (as `wasp serve` does), for `wasp executions list` and `show` to
    /// query.
    #[arg(long, value_name = "FILE|URL")]
    db: Option<crate::store::Location>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct PlaybookArgs {
    /// The playbook file (`.yaml`, `.yml` or `.json`).
    file: PathBuf,

    /// Where the playbooks that `playbook:` nodes call are [default: the file's directory]
    #[arg(long, value_name = "DIR")]
    playbooks: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    #[command(flatten)]
    playbook: PlaybookArgs,

    /// The assets file the nodes' `asset:` names are checked against [default:
    /// `assets.yaml` beside the playbook, when there is one; without one they are not
    /// checked]
    #[arg(long, value_name = "FILE")]
    assets: Option<PathBuf>,

    #[command(flatten)]
    output: OutputArg,
}

#[derive(Debug, Args)]
struct GraphArgs {
    #[command(flatten)]
    playbook: PlaybookArgs,

    /// `mermaid` or `dot`.
    #[arg(long, default_value = "mermaid")]
    format: GraphFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// List every app in the apps directory, with version and actions.
    List(ListArgs),
    /// Show an app's actions with their input and output JSON Schemas and pathways.
    Describe(DescribeArgs),
    /// Run one action of an app in a fresh sandbox and print the step's record as JSON.
    Run(RunArgs),
    /// Make a new app that builds and passes its own test out of the box.
    New(NewArgs),
    /// Check components (a `.wasm` file, or each one in a directory) and copy them
    /// into the apps directory (--apps, or the user's data directory), compiled.
    Install(InstallArgs),
    /// Build the app in a directory (one `wasp app new` made, or any like it) with its
    /// language's tools, and install it, replacing an earlier build.
    Build(BuildArgs),
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// The app's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,

    /// Only build: print the component's path instead of installing it.
    #[arg(long)]
    no_install: bool,

    /// Replace an installed app of the same name even if it was not built from this
    /// directory (an earlier build from here is always replaced).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct InstallArgs {
    /// A component (`.wasm`), or a directory of them.
    path: PathBuf,

    /// Replace an installed app of the same name.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct NewArgs {
    /// The app's name: 1–64 characters of a-z, 0-9 and `-` (Rust also allows `_`).
    name: String,

    /// The language to write it in.
    #[arg(long, value_enum, default_value = "rust")]
    lang: crate::scaffold::Lang,

    /// The directory to make the app's directory in.
    #[arg(long, default_value = ".")]
    dir: PathBuf,

    /// The wasp checkout whose SDK and WIT the app uses by relative path [default: the
    /// checkout `--dir` is in, if any]. Without one the app stands alone: it gets its
    /// own copy of the WIT, and a Rust app its own copy of the SDK.
    #[arg(long)]
    wasp_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    output: OutputArg,

    /// The same as `--output json` (kept for scripts written before `--output`).
    #[arg(long, hide = true, conflicts_with = "format")]
    json: bool,
}

#[derive(Debug, Args)]
struct DescribeArgs {
    /// The app: a name from the apps directory, or a path to a `.wasm` file.
    app: String,

    #[command(flatten)]
    output: OutputArg,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The app: a name from the apps directory, or a path to a `.wasm` file.
    app: String,

    /// The action to run.
    #[arg(long)]
    action: String,

    /// The input: JSON, `@FILE` to read it from a file, or `@-` for stdin.
    #[arg(long, default_value = "{}")]
    input: String,

    /// Keep the app's log lines at or above this level (trace, debug, info, warn, error).
    #[arg(long, default_value = "info")]
    log_level: LogLevel,

    /// Wall-clock limit for the step, e.g. `500ms`, `2s`.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,

    /// Memory limit for the step, e.g. `32MiB`.
    #[arg(long, value_parser = parse_size, default_value = "64MiB")]
    memory: usize,

    /// A setting for the app: `KEY=VALUE`, or `KEY=@FILE` to read the value from a file.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,

    /// A secret setting: `KEY=env:VAR`, `KEY=file:PATH` or `KEY=@PATH`. Its value is
    /// replaced by `***` in everything printed.
    #[arg(long = "secret", value_name = "KEY=SOURCE")]
    secret: Vec<String>,

    /// A host the app may reach over HTTP: `api.example.com`, `host:8443`,
    /// `*.example.com`, or an IP literal (the only way to reach loopback or private
    /// addresses). Repeatable; without it the app reaches nothing.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    allow_host: Vec<String>,
}

/// What stopped a command before or instead of running a step.
#[derive(Debug)]
enum Failure {
    Usage(String),
    Internal(String),
    /// A playbook that cannot be used (a usage error, which `validate --output json`
    /// prints as its problems).
    Playbook(crate::playbook::Error),
}

impl From<host::Error> for Failure {
    fn from(error: host::Error) -> Self {
        // A host error can quote an app (its description, a name it gave): escaped
        // whole, so that no line of it can pass for one of wasp's.
        let message = for_terminal(&error.to_string()).into_owned();
        if error.is_internal() {
            Failure::Internal(message)
        } else {
            Failure::Usage(message)
        }
    }
}

/// `text` made safe to print to a terminal as one field: every control character (C0,
/// newlines and tabs included; DEL; C1) and every bidirectional-text control is shown
/// as a Rust escape (`\x1b`, `\n`, `\u{9b}`, `\u{202e}`). Apps write much of what wasp
/// prints (error messages, pathways, descriptions, the names they give): raw, their
/// escape sequences would clear the screen, set the window title or write the
/// clipboard, and a newline would start a line that looks like wasp's own (a forged
/// `✔ succeeded`). JSON output needs none of this: serde escapes controls.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() && unsafe_char(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// wasp's own message `text`, which may span lines (a playbook's problems, one a line),
/// for a terminal: each line escaped as by [`for_terminal`].
fn lines_for_terminal(text: &str) -> String {
    text.split('\n')
        .map(for_terminal)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `wasp man`: wasp's page on stdout, or every command's page into a directory.
fn manual(args: &ManArgs) -> Result<ExitCode, Failure> {
    let failed = |e: std::io::Error| Failure::Internal(format!("cannot write the manual: {e}"));
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(failed)?;
            clap_mangen::generate_to(Cli::command(), dir).map_err(failed)?;
        }
        None => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(failed)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `wasp schema`: the schema, indented, as a file to keep.
fn schema(of: SchemaOf) -> Result<ExitCode, Failure> {
    let schema = match of {
        SchemaOf::Playbook => crate::playbook::file_schema(),
        SchemaOf::Openapi => crate::api::openapi::document(),
        SchemaOf::HttpApi => {
            print!("{}", crate::api::openapi::markdown());
            return Ok(ExitCode::SUCCESS);
        }
    };
    let text =
        serde_json::to_string_pretty(&schema).map_err(|e| Failure::Internal(e.to_string()))?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Run the command line `cli`.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {}", lines_for_terminal(&message));
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Internal(message)) => {
            eprintln!("error: {}", lines_for_terminal(&message));
            ExitCode::from(EXIT_INTERNAL)
        }
        Err(Failure::Playbook(error)) => {
            eprintln!("error: {}", lines_for_terminal(&error.to_string()));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    // What needs no apps.
    match &cli.command {
        Command::App(AppCommand::New(args)) => return new_app(args),
        Command::Schema { of } => return schema(*of),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "wasp", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man(args) => return manual(args),
        Command::Keys(command) => return keys::run(command),
        _ => {}
    }
    let host = Host::new(HostConfig {
        cache_dir: cli.cache_dir.clone().or_else(host::default_cache_dir),
        ..HostConfig::default()
    })?;
    let apps_dir = cli.apps.clone().unwrap_or_else(default_apps_dir);
    match cli.command {
        Command::App(AppCommand::List(args)) => list(&host, &apps_dir, &args).await,
        Command::App(AppCommand::Describe(args)) => {
            let app = resolve(&host, &apps_dir, &args.app).await?;
            match args.output.format() {
                OutputFormat::Json => print_json(&app.info),
                OutputFormat::Text => print!("{}", describe_text(&app.info)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::App(AppCommand::Run(args)) => run_app(&host, &apps_dir, args).await,
        Command::App(AppCommand::New(args)) => new_app(&args),
        Command::App(AppCommand::Install(args)) => {
            install(&host, cli.apps.clone().or_else(user_apps_dir), &args).await
        }
        Command::App(AppCommand::Build(args)) => {
            let (dir, component) = build::build(&args.dir)?;
            if args.no_install {
                println!("{}", component.display());
            } else {
                let replace = if args.force {
                    Replace::Any
                } else {
                    Replace::BuiltFrom(dir)
                };
                let into = cli.apps.clone().or_else(user_apps_dir);
                install_files(&host, into, &[component], &replace).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(args) => {
            let file = &args.playbook.file;
            let beside = file.parent().unwrap_or(Path::new("."));
            let assets = load_assets(args.assets.as_deref(), beside, "beside the playbook")?;
            let loaded =
                load_playbook_with_apps(&host, &apps_dir, &args.playbook, assets.as_ref()).await;
            match (loaded, args.output.format()) {
                (Ok((playbook, ..)), OutputFormat::Text) => println!(
                    "`{}` is valid: playbook `{}`, {} nodes, {} edges",
                    for_terminal(&file.display().to_string()),
                    for_terminal(&playbook.id),
                    playbook.graph.node_count(),
                    playbook.graph.edge_count()
                ),
                (Ok((playbook, ..)), OutputFormat::Json) => print_json(&serde_json::json!({
                    "valid": true,
                    "file": file,
                    "playbook": playbook.id,
                    "nodes": playbook.graph.node_count(),
                    "edges": playbook.graph.edge_count(),
                })),
                (Err(Failure::Playbook(error)), OutputFormat::Json) => {
                    print_json(&serde_json::json!({
                        "valid": false,
                        "file": error.file(),
                        "problems": error.problems(),
                    }));
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
                (Err(failure), _) => return Err(failure),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run_playbook(&host, &apps_dir, args).await,
        Command::Serve(args) => serve(&host, &apps_dir, args).await,
        Command::Executions(ExecutionsCommand::List(args)) => list_executions(&args),
        Command::Executions(ExecutionsCommand::Show(args)) => show_execution(&args),
        Command::Schema { of } => schema(of),
        Command::Completions { .. } | Command::Man(_) | Command::Keys(_) => Ok(ExitCode::SUCCESS),
        Command::Graph(args) => {
            let (playbook, ..) =
                load_playbook_with_apps(&host, &apps_dir, &args.playbook, None).await?;
            match args.format {
                GraphFormat::Mermaid => print!("{}", playbook.mermaid()),
                GraphFormat::Dot => print!("{}", playbook.dot()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The ids and files of the playbooks in `dir` (files that do not parse are skipped:
/// they are reported when validated themselves).
fn playbook_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let spec = PlaybookSpec::parse(&p.display().to_string(), &text).ok()?;
            Some((spec.id, p))
        })
        .collect()
}

async fn run_playbook(
    host: &Host,
    apps_dir: &Path,
    args: RunPlaybookArgs,
) -> Result<ExitCode, Failure> {
    let beside = args.playbook.file.parent().unwrap_or(Path::new("."));
    let assets = load_assets(args.assets.as_deref(), beside, "beside the playbook")?;
    let (mut playbook, registry, children) =
        load_playbook_with_apps(host, apps_dir, &args.playbook, assets.as_ref()).await?;
    let input = read_input(&args.input)?;
    let trigger: serde_json::Value = serde_json::from_str(&input)
        .map_err(|e| Failure::Usage(format!("--input is not valid JSON: {e}")))?;
    if let Some(max_runtime) = args.max_runtime {
        playbook.max_runtime = max_runtime;
    }
    let assets = assets.unwrap_or_default();
    let runner = Arc::new(
        HostRunner::new(host.clone(), Arc::new(registry), Arc::new(assets))
            .with_playbooks(children),
    );
    if let Some(unmet) = runner.unmet_requirements(&playbook) {
        return Err(Failure::Usage(format!("{unmet} (see --assets)")));
    }
    let start = Start {
        trigger_type: if args.debug {
            TriggerType::Debug
        } else {
            TriggerType::Manual
        },
        log_level: if args.debug {
            Some(LogLevel::Trace)
        } else {
            args.log_level
        },
        ..Start::new(trigger)
    };
    let playbook = Arc::new(playbook);
    let progress = args
        .progress
        .unwrap_or_else(|| std::io::stderr().is_terminal());
    // Ctrl-C kills the execution: it ends Killed with what ran, and is stored with --db.
    let kill = start.kill.clone();
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("wasp: interrupted: killing the execution (Ctrl-C again to quit at once)");
            kill.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let top = start.id.clone();
    let execution = match &args.db {
        None => {
            let mut start = start;
            if progress {
                let (events, received) = tokio::sync::mpsc::unbounded_channel();
                start.events = Some(events);
                tokio::spawn(print_progress(received, top));
            }
            engine::execute(runner, playbook, start).await
        }
        Some(path) => {
            // Through the service, as `wasp serve` runs it: recorded as it starts and
            // stored whole when it ends.
            let store = open_store(path)?;
            let definition = definition(&args.playbook.file);
            store
                .save_playbook(&crate::service::stored_fields(
                    &playbook,
                    &definition,
                    "file",
                ))
                .map_err(|e| match e {
                    crate::store::Error::Taken(_) => {
                        Failure::Usage(format!("{e}: a tenant's playbook in `{}` has it", path))
                    }
                    e => Failure::Internal(e.to_string()),
                })?;
            let service = Arc::new(crate::service::Service::new(store, runner));
            if progress {
                // The service broadcasts each event once it is stored.
                let mut broadcast = service.subscribe();
                let (events, received) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(async move {
                    while let Ok(event) = broadcast.recv().await {
                        if events.send(Event::clone(&event)).is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(print_progress(received, top));
            }
            let started = service
                .start(playbook, start, crate::service::Report::End)
                .await
                .map_err(|e| Failure::Internal(crate::ErrorChain(&e).to_string()))?;
            let (_, execution) =
                started.done.await.ok().flatten().ok_or_else(|| {
                    Failure::Internal("the execution could not be stored".to_owned())
                })?;
            let path = for_terminal(&path.to_string()).into_owned();
            eprintln!(
                "stored as execution {} in `{path}` (`wasp executions show {} --db {path}`)",
                execution.header.id, execution.header.id,
            );
            execution
        }
    };
    interrupt.abort();
    let format = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        OutputFormat::Text
    } else {
        OutputFormat::Json
    });
    match format {
        OutputFormat::Json => print_json(&execution),
        OutputFormat::Text => print!("{}", summary(&execution, colour(&std::io::stdout()))),
    }
    Ok(match execution.status {
        ExecutionStatus::Completed => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_FAILED),
    })
}

/// Print on stderr each node of execution `top` (and of its children, indented) as it
/// starts and ends, until `events` ends.
async fn print_progress(mut events: tokio::sync::mpsc::UnboundedReceiver<Event>, top: String) {
    while let Some(event) = events.recv().await {
        let indent = |id: &str| if id == top { "  " } else { "      " };
        let line = match &event {
            Event::NodeStarted {
                execution_id, node, ..
            } => format!("{}◌ {} …", indent(execution_id), for_terminal(node)),
            Event::NodeEnded {
                execution_id,
                node,
                status,
                duration_us,
                error,
                iterations,
                succeeded,
                ..
            } => {
                let mark = match status {
                    NodeStatus::Succeeded => "✔",
                    NodeStatus::Failed => "✘",
                    NodeStatus::TimedOut => "⏱",
                    NodeStatus::Killed => "■",
                    NodeStatus::Skipped => "·",
                    NodeStatus::Pending | NodeStatus::Running => "…",
                };
                let mut line = format!(
                    "{}{mark} {}  {}",
                    indent(execution_id),
                    for_terminal(node),
                    format_us(*duration_us)
                );
                if let (Some(iterations), Some(succeeded)) = (iterations, succeeded) {
                    line.push_str(&format!("  {succeeded} of {iterations} items"));
                }
                if let Some(error) = error {
                    line.push_str(&format!("  {}", for_terminal(&error.message)));
                }
                line
            }
            Event::ExecutionEnded { execution_id, .. } if *execution_id == top => break,
            _ => continue,
        };
        eprintln!("{line}");
    }
}

/// An execution for people: a line per node (mark, id, duration, pathway, iterations,
/// error), each child execution indented under the node that started it, then the
/// status and the total time.
fn summary(execution: &Execution, coloured: bool) -> String {
    let mut out = String::new();
    write_summary(&mut out, execution, "", coloured);
    out
}

fn write_summary(out: &mut String, execution: &Execution, indent: &str, coloured: bool) {
    let width = execution
        .nodes
        .iter()
        .map(|n| for_terminal(&n.id).chars().count())
        .max()
        .unwrap_or(0);
    for node in &execution.nodes {
        let line = node_line(node, width, coloured);
        out.push_str(indent);
        out.push_str(line.trim_end());
        out.push('\n');
        for child in execution
            .children
            .iter()
            .filter(|c| node.children.contains(&c.header.id))
        {
            let nested = format!("{indent}    ");
            out.push_str(&format!(
                "{nested}child execution {} of playbook `{}`:\n",
                child.header.id,
                for_terminal(&child.header.playbook_id)
            ));
            write_summary(out, child, &format!("{nested}  "), coloured);
        }
    }
    let status = serde_json::to_value(execution.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    out.push_str(&format!(
        "{indent}{status} in {} (execution {})\n",
        format_us(execution.duration_us),
        execution.header.id
    ));
    if let Some(message) = &execution.message {
        out.push_str(&format!("{indent}{}\n", for_terminal(message)));
    }
    if let Some(output) = &execution.output {
        out.push_str(&format!(
            "{indent}output: {}\n",
            for_terminal(&output.to_string())
        ));
    }
    if let Some(error) = &execution.output_error {
        out.push_str(&format!("{indent}no output: {}\n", for_terminal(error)));
    }
}

fn format_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// The playbook of `args`, the apps, and every playbook its `playbook:` nodes call,
/// directly or not, each validated (the assets its nodes bind against `assets`, when
/// there is an assets file).
async fn load_playbook_with_apps(
    host: &Host,
    apps_dir: &Path,
    args: &PlaybookArgs,
    assets: Option<&Assets>,
) -> Result<(Playbook, Registry, Vec<Arc<Playbook>>), Failure> {
    let registry = scan(host, apps_dir).await?;
    let dir = args
        .playbooks
        .clone()
        .or_else(|| args.file.parent().map(Path::to_owned))
        .unwrap_or_default();
    let files = playbook_files(&dir);
    let ids: Vec<String> = files.iter().map(|(id, _)| id.clone()).collect();
    let assets: Option<Vec<(String, String)>> = assets.map(|assets| {
        assets
            .list()
            .iter()
            .map(|a| (a.name.clone(), a.app.clone()))
            .collect()
    });
    let catalog = Known {
        apps: &registry,
        playbooks: &ids,
        assets: assets.as_deref(),
    };
    let load = |path: &Path| Playbook::load(path, &catalog).map_err(Failure::Playbook);
    let playbook = load(&args.file)?;
    let mut children: Vec<Arc<Playbook>> = Vec::new();
    let mut wanted = called(&playbook);
    while let Some(id) = wanted.pop() {
        if id == playbook.id || children.iter().any(|c| c.id == id) {
            continue;
        }
        // Validation checked that the playbook exists.
        let Some((_, path)) = files.iter().find(|(p, _)| *p == id) else {
            continue;
        };
        let child = load(path)?;
        wanted.extend(called(&child));
        children.push(Arc::new(child));
    }
    Ok((playbook, registry, children))
}

/// The playbook file at `path` as stored (its `steps`): the file as JSON (YAML read as
/// JSON), or null when it cannot be read (`Playbook::load` then says why).
fn definition(path: &Path) -> serde_json::Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_saphyr::from_str::<serde_json::Value>(&text).ok())
        .unwrap_or_default()
}

/// Every valid playbook in `dir`, validated against the apps of `registry`; each
/// invalid one is reported on stderr and skipped, so that one bad file does not keep
/// the others from being served.
fn load_directory(
    registry: Registry,
    dir: &Path,
) -> (Vec<(Arc<Playbook>, serde_json::Value)>, Registry) {
    let files = playbook_files(dir);
    let ids: Vec<String> = files.iter().map(|(id, _)| id.clone()).collect();
    let catalog = Known {
        apps: &registry,
        playbooks: &ids,
        assets: None,
    };
    let mut loaded = Vec::new();
    for (_, path) in &files {
        let definition = definition(path);
        match Playbook::load(path, &catalog) {
            Ok(playbook) => loaded.push((Arc::new(playbook), definition)),
            Err(e) => eprintln!(
                "warning: not serving `{}`: {}",
                for_terminal(&path.display().to_string()),
                lines_for_terminal(&e.to_string())
            ),
        }
    }
    (loaded, registry)
}

/// The name of the assets file a command uses when `--assets` names none, in the
/// playbook's directory.
const ASSETS_FILE: &str = "assets.yaml";

/// The assets of a command: from the file `named`, or else from `assets.yaml` in `dir`
/// when there is one (said on stderr, as the user did not name it); `None` when there
/// is no assets file.
fn load_assets(named: Option<&Path>, dir: &Path, place: &str) -> Result<Option<Assets>, Failure> {
    let path = match named {
        Some(path) => path.to_owned(),
        None => {
            let path = dir.join(ASSETS_FILE);
            if !path.is_file() {
                return Ok(None);
            }
            eprintln!(
                "wasp: the assets of `{}` ({place}; --assets names another file)",
                path.display()
            );
            path
        }
    };
    Assets::load(&path)
        .map(Some)
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// The signing key in `path`, made when missing (and said so).
fn signing_key(path: &Path) -> Result<crate::service::keys::SigningKey, Failure> {
    let (key, made) =
        crate::service::keys::SigningKey::load_or_create(path).map_err(Failure::Usage)?;
    if made {
        eprintln!(
            "made the signing key `{}`: keep it with the database, and give every server of \
             it the same file",
            path.display()
        );
    }
    Ok(key)
}

async fn serve(host: &Host, apps_dir: &Path, args: ServeArgs) -> Result<ExitCode, Failure> {
    crate::api::check_exposure(&args.addr, args.token.as_deref()).map_err(Failure::Usage)?;
    let edge = crate::api::Edge {
        header_timeout: args.header_timeout,
        token: args.token.clone(),
        metrics_from_loopback: args.metrics_from_loopback,
        ..crate::api::Edge::default()
    }
    .allowing(&args.allowed_hosts)
    .and_then(|edge| edge.reached_at(args.public_url.as_deref()))
    .map_err(Failure::Usage)?;
    check_apps_dir(apps_dir)?;
    if !args.playbooks.is_dir() {
        return Err(Failure::Usage(format!(
            "the playbooks directory `{}` does not exist; name one with --playbooks",
            args.playbooks.display()
        )));
    }
    let assets = load_assets(
        args.assets.as_deref(),
        &args.playbooks,
        "in the playbooks directory",
    )?
    .unwrap_or_default();
    let signing = args.key_file.as_deref().map(signing_key).transpose()?;
    let jwt = match &args.jwt_key {
        None => None,
        // Without a token every caller is the admin: a JWT's role would mean nothing.
        Some(_) if args.token.is_none() => {
            return Err(Failure::Usage(
                "--jwt-key needs --token: a server without one lets every caller in as its \
                 admin, and a JWT's tenant and role would mean nothing"
                    .to_owned(),
            ));
        }
        Some(path) => Some({
            if args.jwt_audience.is_none() {
                eprintln!(
                    "warning: without --jwt-audience, any token the provider signs with this \
                     key (for another service too) is accepted when it names a tenant"
                );
            }
            crate::service::jwt::JwtConfig::load(
                path,
                args.jwt_issuer.clone(),
                args.jwt_audience.clone(),
                args.jwt_tenant_claim.clone(),
            )
            .map_err(Failure::Usage)?
        }),
    };
    let store = open_store(&args.db)?;
    store
        .claim_for_serving()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    // Keys and their roles are enforced by a server with a token; without one it is open
    // on loopback, and a key's role would mean nothing (a viewer's key could make an
    // admin's): refused rather than ignored.
    let active_keys = store
        .keys()
        .map_err(|e| Failure::Internal(e.to_string()))?
        .iter()
        .filter(|key| key.revoked_at.is_none())
        .count();
    if active_keys > 0 && args.token.is_none() {
        return Err(Failure::Usage(format!(
            "`{}` holds {active_keys} API key(s), whose roles only a server with a token \
             enforces: start it with --token (the bootstrap admin), or revoke the keys \
             (`wasp keys revoke`)",
            args.db
        )));
    }
    let interrupted = store
        .interrupt_unfinished()
        .map_err(|e| Failure::Internal(e.to_string()))?;
    if interrupted.executions > 0 || interrupted.action_runs > 0 {
        eprintln!(
            "{} executions and {} Splunk action runs left unfinished by the last run are now \
             failed (interrupted by restart)",
            interrupted.executions, interrupted.action_runs
        );
    }
    // The server answers while the apps load (compiling one can take seconds): it has
    // none at first, and answers what needs one with 503 until they are in.
    let runner = Arc::new(HostRunner::new(
        host.clone(),
        Arc::new(Registry::default()),
        Arc::new(assets),
    ));
    let service = Arc::new(
        crate::service::Service::new(Arc::clone(&store), Arc::clone(&runner))
            .with_secrets_dir(args.secrets_dir)
            .with_signing_key(signing)
            .with_jwt(jwt),
    );
    service.set_loading(true);
    service
        .load_stored_assets()
        .map_err(|e| Failure::Internal(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {}: {e}", args.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Internal(e.to_string()))?;
    eprintln!(
        "wasp serving on http://{addr} (database `{}`); the web page is http://{addr}/",
        args.db
    );
    // Stopped by Ctrl-C or SIGTERM, or when another server may have taken the store.
    let taken = {
        let store = Arc::clone(&store);
        async move {
            while store.still_serving() {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = taken => {}
        }
    };
    let mut server = tokio::spawn(crate::api::serve(
        listener,
        Arc::clone(&service),
        edge,
        stop,
    ));
    let load = async {
        let registry = scan(host, apps_dir).await?;
        let (mut playbooks, registry) = load_directory(registry, &args.playbooks);
        let mut served = Vec::with_capacity(playbooks.len());
        for (playbook, definition) in playbooks.drain(..) {
            match store.save_playbook(&crate::service::stored_fields(
                &playbook,
                &definition,
                "file",
            )) {
                Ok(_) => served.push((playbook, definition)),
                // The XID of a tenant's playbook made through the API: that one stays.
                Err(taken @ crate::store::Error::Taken(_)) => {
                    eprintln!(
                        "warning: {taken}: playbook `{}` of the playbooks directory is not \
                         served, another tenant's playbook has its id",
                        playbook.id
                    );
                }
                Err(e) => return Err(Failure::Internal(e.to_string())),
            }
        }
        let playbooks = served;
        let apps = registry.apps().count();
        runner.set_apps(Arc::new(registry));
        for (playbook, _) in &playbooks {
            runner.set_playbook(Arc::clone(playbook));
        }
        service
            .load_stored_playbooks()
            .map_err(|e| Failure::Internal(e.to_string()))?;
        service.start_timers();
        service.set_loading(false);
        eprintln!(
            "wasp ready: {apps} apps, {} playbooks",
            runner.playbook_ids().len()
        );
        Ok::<(), Failure>(())
    };
    let ended = tokio::select! {
        loaded = load => {
            loaded?;
            server.await
        }
        // Stopped (Ctrl-C, SIGTERM) while the apps were loading.
        ended = &mut server => ended,
    };
    if !store.still_serving() {
        return Err(Failure::Internal(format!(
            "stopped: the database `{}` was taken by another `wasp serve` while this one's \
             connection to it was down",
            args.db
        )));
    }
    finish(ended)
}

/// The exit of a server task that ended.
fn finish(ended: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<ExitCode, Failure> {
    match ended {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(Failure::Internal(e.to_string())),
        Err(e) => Err(Failure::Internal(format!("the server stopped: {e}"))),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn open_store(location: &crate::store::Location) -> Result<Arc<dyn crate::store::Store>, Failure> {
    location.open().map_err(|e| Failure::Usage(e.to_string()))
}

fn list_executions(args: &ExecutionsListArgs) -> Result<ExitCode, Failure> {
    let store = open_store(&args.db)?;
    let tql = crate::tql::condition(
        &args.tql,
        crate::store::EXECUTION_FIELDS,
        chrono::Utc::now(),
    )
    .map_err(|e| Failure::Usage(format!("--tql: {e}")))?;
    let window = crate::store::Window {
        offset: 0,
        limit: args.limit.max(1),
        sort: crate::store::Sort::NewestFirst,
    };
    let page = store
        .executions(
            &crate::store::ExecutionFilter {
                tql,
                ..Default::default()
            },
            window,
            true,
        )
        .map_err(|e| Failure::Internal(e.to_string()))?;
    if let OutputFormat::Text = args.output.format() {
        print!("{}", executions_text(&page.rows, page.total));
        return Ok(ExitCode::SUCCESS);
    }
    print_json(&serde_json::json!({
        "count": page.total,
        "more": page.more,
        "data": page.rows,
    }));
    Ok(ExitCode::SUCCESS)
}

/// Executions for people: a line each, newest first, then how many of how many.
fn executions_text(rows: &[crate::store::ExecutionRow], total: Option<i64>) -> String {
    let mut out = format!(
        "{:<6} {:<30} {:<17} {:<24} {:<24} {}\n",
        "NUM", "ID", "STATUS", "PLAYBOOK", "QUEUED", "DURATION"
    );
    for row in rows {
        let status = serde_json::to_value(row.status).unwrap_or_default();
        out.push_str(&format!(
            "{:<6} {:<30} {:<17} {:<24} {:<24} {}\n",
            row.num,
            row.header.id,
            status.as_str().unwrap_or_default(),
            for_terminal(&row.header.playbook_id),
            row.header.queued_at.format("%Y-%m-%d %H:%M:%SZ"),
            row.duration_ms
                .map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms"))
        ));
    }
    let total = total.map_or_else(String::new, |t| format!(" of {t}"));
    out.push_str(&format!("({}{total})\n", rows.len()));
    out
}

/// An app's description for people: each action with its input's and output's fields
/// (type, and whether it is required), not the whole schemas.
fn describe_text(info: &crate::playbook::AppInfo) -> String {
    let mut out = format!(
        "{} {} — {}\n",
        for_terminal(&info.name),
        for_terminal(&info.version),
        for_terminal(&info.description)
    );
    for action in &info.actions {
        out.push_str(&format!(
            "\n  {}: {}\n",
            for_terminal(&action.name),
            for_terminal(&action.description)
        ));
        out.push_str(&format!(
            "    input:  {}\n",
            fields_text(&action.input_schema)
        ));
        out.push_str(&format!(
            "    output: {}\n",
            fields_text(&action.output_schema)
        ));
        if !action.pathways.is_empty() {
            out.push_str(&format!(
                "    pathways: {}\n",
                for_terminal(&action.pathways.join(", "))
            ));
        }
    }
    out
}

/// A schema's top-level fields: `name (type, required)`, or `any` when it lists none.
fn fields_text(schema: &serde_json::Value) -> String {
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        return "any JSON".to_owned();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let fields: Vec<String> = properties
        .iter()
        .map(|(name, property)| {
            let kind = match property.get("type") {
                Some(serde_json::Value::String(kind)) => kind.clone(),
                Some(serde_json::Value::Array(kinds)) => kinds
                    .iter()
                    .filter_map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join("|"),
                _ => "any".to_owned(),
            };
            let required = if required.contains(&name.as_str()) {
                ", required"
            } else {
                ""
            };
            format!("{} ({kind}{required})", for_terminal(name))
        })
        .collect();
    if fields.is_empty() {
        "none".to_owned()
    } else {
        fields.join(", ")
    }
}

fn show_execution(args: &ExecutionsShowArgs) -> Result<ExitCode, Failure> {
    let store = open_store(&args.db)?;
    match store
        .execution_record(&args.id)
        .map_err(|e| Failure::Internal(e.to_string()))?
    {
        Some(crate::store::ExecutionRecord::Ended(record)) => {
            match args.output.format() {
                OutputFormat::Json => print_json(&record),
                OutputFormat::Text => {
                    print!("{}", record_text(&record, colour(&std::io::stdout())));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(crate::store::ExecutionRecord::Unfinished { row, steps }) => {
            // As a JSON value, so that its keys print in the same order as an ended one's.
            let mut record = serde_json::json!(row);
            record["steps"] = serde_json::Value::Array(steps);
            print_json(&record);
            Ok(ExitCode::SUCCESS)
        }
        None => Err(Failure::Usage(format!(
            "there is no execution `{}` in `{}`",
            args.id, args.db
        ))),
    }
}

/// One node's line in a summary: its mark and status, id, time, pathway, iterations
/// and error.
fn node_line(node: &NodeRecord, width: usize, coloured: bool) -> String {
    let id = for_terminal(&node.id);
    let (mark, code) = match node.status {
        NodeStatus::Succeeded => ("✔ succeeded", 32),
        NodeStatus::Failed => ("✘ failed   ", 31),
        NodeStatus::TimedOut => ("⏱ timed out", 31),
        NodeStatus::Killed => ("■ killed   ", 31),
        NodeStatus::Skipped => ("· skipped  ", 90),
        NodeStatus::Pending | NodeStatus::Running => ("… running  ", 33),
    };
    let mut line = format!("{}  {id:width$}", tint(mark, code, coloured));
    // A node that never started (skipped, or killed before it ran) has no time.
    if node.duration_us > 0 {
        line.push_str(&format!("  {:>9}", format_us(node.duration_us)));
    }
    if let Some(pathway) = &node.pathway {
        line.push_str(&format!("  → {}", for_terminal(pathway)));
    }
    if let Some(iterations) = node.iterations {
        line.push_str(&format!(
            "  {iterations} iteration{}",
            if iterations == 1 { "" } else { "s" }
        ));
        if let Some(succeeded) = node.succeeded.filter(|s| *s < iterations) {
            line.push_str(&format!(", {succeeded} succeeded"));
        }
    }
    if let Some(error) = &node.error {
        let kind = serde_json::to_value(error.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        line.push_str(&format!("  {kind}: {}", for_terminal(&error.message)));
    }
    line
}

/// A stored execution's record for people: what it is, a line per node (as `wasp run`
/// prints them), how it ended, and its result.
fn record_text(record: &serde_json::Value, coloured: bool) -> String {
    let text = |key: &str| for_terminal(record[key].as_str().unwrap_or_default()).into_owned();
    let mut out = format!(
        "execution {} of playbook `{}` ({}), {} at {}\n",
        text("id"),
        text("playbook_id"),
        text("playbook_name"),
        text("trigger_type"),
        text("log_level")
    );
    let nodes: Vec<NodeRecord> =
        serde_json::from_value(record["nodes"].clone()).unwrap_or_default();
    let width = nodes
        .iter()
        .map(|n| for_terminal(&n.id).chars().count())
        .max()
        .unwrap_or(0);
    for node in &nodes {
        out.push_str("  ");
        out.push_str(node_line(node, width, coloured).trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} in {}\n",
        text("status"),
        format_us(record["duration_us"].as_u64().unwrap_or_default())
    ));
    if let Some(message) = record["message"].as_str() {
        out.push_str(&format!("{}\n", for_terminal(message)));
    }
    if let Some(output) = record.get("output") {
        out.push_str(&format!("output: {}\n", for_terminal(&output.to_string())));
    }
    out
}

/// The playbooks that `playbook`'s nodes call.
fn called(playbook: &Playbook) -> Vec<String> {
    playbook
        .graph
        .node_weights()
        .filter_map(|node| match &node.kind {
            NodeKind::Playbook { id } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// A usage error naming where wasp looked, and what to do, when `apps_dir` does not
/// exist.
fn check_apps_dir(apps_dir: &Path) -> Result<(), Failure> {
    if !apps_dir.is_dir() {
        let looked: Vec<String> = apps_search_path()
            .iter()
            .map(|d| format!("`{}`", d.display()))
            .collect();
        return Err(Failure::Usage(format!(
            "the apps directory `{}` does not exist (without --apps or {}, wasp looks in {}); \
             install an app with `wasp app install FILE.wasm`, build the example apps with \
             `cargo build` from the repository root, or name a directory with --apps",
            apps_dir.display(),
            crate::env::APPS,
            looked.join(", ")
        )));
    }
    Ok(())
}

async fn scan(host: &Host, apps_dir: &Path) -> Result<Registry, Failure> {
    check_apps_dir(apps_dir)?;
    let registry = scan_showing_progress(host, apps_dir).await?;
    // Every command that loads the directory says what it refused, `wasp serve` at
    // start included: two files claiming one name are refused loudly, never picked.
    for (path, problem) in registry.problems() {
        eprintln!(
            "warning: skipped `{}`: {}",
            for_terminal(&path.display().to_string()),
            for_terminal(problem)
        );
    }
    Ok(registry)
}

/// The apps of `dir`, with progress on stderr when loading them takes a while.
async fn scan_showing_progress(host: &Host, dir: &Path) -> Result<Registry, host::Error> {
    let progress = progress::LoadProgress::start(host, dir);
    let registry = Registry::scan_reporting(host, dir, &|loading| progress.update(loading)).await;
    progress.finish();
    registry
}

/// The component at `file`, with progress on stderr when it takes a while (compiling).
async fn load_showing_progress(host: &Host, file: &Path) -> Result<Arc<host::App>, host::Error> {
    let progress = progress::LoadProgress::start_file(host, file);
    progress.update(&host::Loading {
        loaded: 0,
        total: 1,
        waiting_for: vec![file],
    });
    let loaded = host.load(file).await;
    progress.finish();
    loaded
}

/// An app named `name` in the apps directory, or the component file at `name`.
async fn resolve(host: &Host, apps_dir: &Path, name: &str) -> Result<Arc<host::App>, Failure> {
    if name.ends_with(".wasm") || name.contains(std::path::MAIN_SEPARATOR) {
        return Ok(load_showing_progress(host, Path::new(name)).await?);
    }
    let registry = scan(host, apps_dir).await?;
    if let Some(claimants) = registry.claimants(name) {
        let files: Vec<String> = claimants
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect();
        return Err(Failure::Usage(
            for_terminal(&format!(
                "app `{name}` is claimed by {} files in `{}`, so none is used: {}",
                files.len(),
                apps_dir.display(),
                files.join(", ")
            ))
            .into_owned(),
        ));
    }
    registry.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = registry.apps().map(|a| a.info.name.as_str()).collect();
        Failure::Usage(format!(
            "no app `{name}` in `{}`; the apps there are: {}",
            apps_dir.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })
}

async fn list(host: &Host, apps_dir: &Path, args: &ListArgs) -> Result<ExitCode, Failure> {
    let registry = scan(host, apps_dir).await?;
    if args.json || args.output.format() == OutputFormat::Json {
        let apps: Vec<_> = registry
            .apps()
            .map(|app| {
                serde_json::json!({
                    "name": app.info.name,
                    "version": app.info.version,
                    "description": app.info.description,
                    "actions": app.info.actions.iter().map(|a| &a.name).collect::<Vec<_>>(),
                    "path": app.path,
                })
            })
            .collect();
        print_json(&apps);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = registry
        .apps()
        .map(|app| {
            let actions: Vec<&str> = app.info.actions.iter().map(|a| a.name.as_str()).collect();
            [
                &app.info.name,
                &app.info.version,
                &actions.join(", "),
                &app.info.description,
            ]
            .map(|cell| for_terminal(cell).into_owned())
        })
        .collect();
    let headers = ["NAME", "VERSION", "ACTIONS", "DESCRIPTION"];
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .chain([headers[column].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let mut out = std::io::stdout().lock();
    let mut line = |cells: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:w0$}  {:w1$}  {:w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    };
    line(headers);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_app(host: &Host, apps_dir: &Path, args: RunArgs) -> Result<ExitCode, Failure> {
    let app = resolve(host, apps_dir, &args.app).await?;
    if app.action(&args.action).is_none() {
        let known: Vec<&str> = app.info.actions.iter().map(|a| a.name.as_str()).collect();
        return Err(Failure::Usage(format!(
            "app `{}` has no action `{}`; it offers: {}",
            app.info.name,
            args.action,
            known.join(", ")
        )));
    }
    let input = read_input(&args.input)?;
    serde_json::from_str::<serde::de::IgnoredAny>(&input)
        .map_err(|e| Failure::Usage(format!("--input is not valid JSON: {e}")))?;
    let mut settings = Settings::new();
    for spec in &args.config {
        let (key, value) = split_setting("--config", spec)?;
        let value = match value.strip_prefix('@') {
            Some(path) => read_file("--config", key, path)?,
            None => value.to_owned(),
        };
        settings = settings.with(key, value);
    }
    for spec in &args.secret {
        let (key, source) = split_setting("--secret", spec)?;
        settings = settings.with_secret(key, read_secret(key, source)?);
    }
    let call = Call {
        level: args.log_level,
        limits: Limits {
            memory_bytes: args.memory,
            timeout: args.timeout,
            ..Limits::default()
        },
        settings: Arc::new(settings),
        egress: Arc::new(
            crate::host::Egress::allowing(&args.allow_host)
                .map_err(|e| Failure::Usage(format!("--allow-host: {e}")))?,
        ),
        ..Call::new(args.action, input)
    };
    let report = host.invoke(&app, call).await?;
    print_json(&report);
    Ok(match report.status {
        StepStatus::Succeeded => ExitCode::SUCCESS,
        StepStatus::Failed => ExitCode::from(EXIT_FAILED),
    })
}

/// `wasp app install`: load each component (which checks it and compiles it into the
/// cache), refuse a name an installed app has unless `--force`, and copy it into `into`
/// as `<name>.wasm`.
async fn install(
    host: &Host,
    into: Option<PathBuf>,
    args: &InstallArgs,
) -> Result<ExitCode, Failure> {
    let files: Vec<PathBuf> = if args.path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&args.path)
            .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", args.path.display())))?
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![args.path.clone()]
    };
    if files.is_empty() {
        return Err(Failure::Usage(format!(
            "`{}` holds no `.wasm` component",
            args.path.display()
        )));
    }
    let replace = if args.force {
        Replace::Any
    } else {
        Replace::Nothing
    };
    install_files(host, into, &files, &replace).await?;
    Ok(ExitCode::SUCCESS)
}

/// Which installed app an app being installed may replace.
enum Replace {
    /// None: an installed app of the same name is an error (`--force` says otherwise).
    Nothing,
    /// Any of the same name (`--force`).
    Any,
    /// One of the same name that `wasp app build` built from this directory before
    /// (each build of an app replaces the last, but not an app built elsewhere).
    BuiltFrom(PathBuf),
}

/// The file beside an installed app that names the directory `wasp app build` built
/// it from.
fn built_from_file(into: &Path, name: &str) -> PathBuf {
    into.join(format!(".{name}.built-from"))
}

/// Install each of `files` into `into` (see `install`), replacing an installed app of
/// the same name as `replace` allows.
async fn install_files(
    host: &Host,
    into: Option<PathBuf>,
    files: &[PathBuf],
    replace: &Replace,
) -> Result<(), Failure> {
    let into = into.ok_or_else(|| {
        Failure::Usage("there is no apps directory to install into: name one with --apps".into())
    })?;
    std::fs::create_dir_all(&into)
        .map_err(|e| Failure::Usage(format!("cannot make `{}`: {e}", into.display())))?;
    let installed = scan_showing_progress(host, &into).await?;
    for file in files {
        let shown = for_terminal(&file.display().to_string()).into_owned();
        let app = load_showing_progress(host, file)
            .await
            .map_err(|e| Failure::Usage(format!("`{shown}` is not an app wasp can run: {e}")))?;
        let name = &app.info.name;
        let target = into.join(format!("{name}.wasm"));
        let built_from = built_from_file(&into, name);
        if let Some(other) = installed.get(name) {
            let allowed = match replace {
                Replace::Nothing => false,
                Replace::Any => true,
                Replace::BuiltFrom(dir) => std::fs::read(&built_from)
                    .is_ok_and(|before| before == dir.as_os_str().as_encoded_bytes()),
            };
            if !allowed {
                let how = match replace {
                    Replace::BuiltFrom(_) => " and was not built from this directory",
                    _ => "",
                };
                return Err(Failure::Usage(format!(
                    "an app `{}` is installed (`{}`){how}; --force replaces it",
                    for_terminal(name),
                    other.path.display()
                )));
            }
            if other.path != target {
                std::fs::remove_file(&other.path).map_err(|e| {
                    Failure::Usage(format!("cannot remove `{}`: {e}", other.path.display()))
                })?;
            }
        }
        // Copied beside its place and renamed, so that a server scanning the directory
        // never reads half a component.
        let partial = into.join(format!(".{name}.wasm.partial"));
        std::fs::copy(file, &partial)
            .and_then(|_| std::fs::rename(&partial, &target))
            .map_err(|e| {
                Failure::Usage(format!(
                    "cannot copy `{shown}` into `{}`: {e}",
                    into.display()
                ))
            })?;
        // Where it was built, for the next build to replace it; an app installed
        // otherwise is nobody's build.
        let said = match replace {
            Replace::BuiltFrom(dir) => {
                std::fs::write(&built_from, dir.as_os_str().as_encoded_bytes())
            }
            _ => match std::fs::remove_file(&built_from) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        said.map_err(|e| Failure::Usage(format!("cannot write `{}`: {e}", built_from.display())))?;
        println!(
            "installed `{}` {} ({} actions) as `{}`",
            for_terminal(name),
            for_terminal(&app.info.version),
            app.info.actions.len(),
            target.display()
        );
    }
    Ok(())
}

/// `wasp app new`: scaffold the app, then say how to build and test it.
fn new_app(args: &NewArgs) -> Result<ExitCode, Failure> {
    let is_checkout =
        |dir: &Path| dir.join("sdk/Cargo.toml").is_file() && dir.join("wit/app.wit").is_file();
    let root = args.wasp_root.clone().or_else(|| {
        let dir = args.dir.canonicalize().ok()?;
        dir.ancestors()
            .find(|d| is_checkout(d))
            .map(Path::to_path_buf)
    });
    let made = crate::scaffold::new_app(&args.name, args.lang, &args.dir, root.as_deref())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    println!(
        "made the {} app `{}` in {}; `wasp app build {}` builds and installs it, and its \
         README says how to test it",
        args.lang.as_str(),
        args.name,
        made.display(),
        made.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_input(spec: &str) -> Result<String, Failure> {
    match spec.strip_prefix('@') {
        Some("-") => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| Failure::Usage(format!("cannot read --input from stdin: {e}")))?;
            Ok(input)
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read --input file `{path}`: {e}"))),
        None => Ok(spec.to_owned()),
    }
}

fn split_setting<'a>(flag: &str, spec: &'a str) -> Result<(&'a str, &'a str), Failure> {
    match spec.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key, value)),
        _ => Err(Failure::Usage(format!(
            "{flag} `{spec}` is not of the form KEY=VALUE"
        ))),
    }
}

fn read_file(flag: &str, key: &str, path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("{flag} `{key}`: cannot read `{path}`: {e}")))
}

/// A secret's value from `env:VAR`, `file:PATH` or `@PATH`. A trailing newline of a
/// file is not part of the secret.
fn read_secret(key: &str, source: &str) -> Result<String, Failure> {
    if let Some(var) = source.strip_prefix("env:") {
        return std::env::var(var).map_err(|_| {
            Failure::Usage(format!(
                "--secret `{key}`: the environment variable `{var}` is not set"
            ))
        });
    }
    let path = source.strip_prefix("file:").or_else(|| source.strip_prefix('@')).ok_or_else(|| {
        Failure::Usage(format!(
            "--secret `{key}`: `{source}` is not a source; use env:VAR, file:PATH or @PATH \
             (secrets are never given in clear on the command line, where `ps` and shell history see them)"
        ))
    })?;
    let value = read_file("--secret", key, path)?;
    Ok(value
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(&value)
        .to_owned())
}

/// Print `value` as JSON on stdout: indented for a person at a terminal, one line for
/// a pipe.
fn print_json<T: serde::Serialize>(value: &T) {
    let stdout = std::io::stdout();
    let text = if stdout.is_terminal() {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    match text {
        Ok(text) => {
            let _ = writeln!(stdout.lock(), "{text}");
        }
        Err(e) => eprintln!("error: cannot encode the result as JSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_for_a_terminal_has_no_control_characters() {
        assert!(matches!(for_terminal("plain ✔ text"), Cow::Borrowed(_)));
        assert_eq!(
            for_terminal("a\u{1b}[2J\u{1b}]0;t\u{7}\tb\r\n✔ ok\u{7f}\u{9b}1m\u{202e}x\0"),
            r"a\x1b[2J\x1b]0;t\x07\tb\r\n✔ ok\x7f\u{9b}1m\u{202e}x\x00"
        );
        assert_eq!(lines_for_terminal("one\u{1b}[2J\ntwo"), "one\\x1b[2J\ntwo");
    }
}
