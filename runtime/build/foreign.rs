//! Builds the example apps written in Python (`example-apps/python/<name>/app.py`) and
//! JavaScript (`example-apps/js/<name>/app.js`) into `target/apps/<name>.wasm`, the
//! way the Rust apps are built, so that a fresh clone's `cargo build` has them all.
//!
//! - The tools are pinned by files in the repository and installed once into
//!   `target/tools/`: componentize-py from `example-apps/python/requirements.txt` into
//!   a virtual environment, componentize-js from `example-apps/js/package.json` and its
//!   `package-lock.json` with `npm install`. A stamp holding the hash of those files says
//!   which pins an installation was made from; a changed pin reinstalls.
//! - A component build takes 10–40 s and up to ~0.8 GiB, so each runs once: its output
//!   is kept as `target/foreign/<name>-<key>.wasm`, where the key hashes the app's
//!   sources, `wit/`, the tool pins and the build recipe. When that file exists
//!   nothing runs (the check reads a few small files: milliseconds).
//! - No tool here runs cargo, so this step never waits on cargo's build locks. Two
//!   build scripts (say `cargo build` and `cargo build --release`) can run at once
//!   over one `target/`: installs and builds are serialised by a lock on
//!   `target/tools/.lock`, and every output is written beside its place and renamed.
//! - Without python3 (with `venv`) or node and npm, or when an install fails (no
//!   network), the language is skipped with a `cargo::warning` naming what is missing.
//!   `WASP_FOREIGN_APPS=required` (what CI sets) turns that into a failed build, and
//!   `WASP_FOREIGN_APPS=skip` skips both languages. An app that does not build fails
//!   the build in every mode, like a Rust app that does not compile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the commands below change, so that every cached component is rebuilt.
const RECIPE: &str = "wasp-foreign-1";

/// The WIT world every app targets.
const WORLD: &str = "app";

/// Environment variables that would make the tools read something other than the
/// pinned installation and the staged sources.
const TOOL_ENV_REMOVED: &[&str] = &[
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "NODE_OPTIONS",
    "NODE_PATH",
];

/// What `WASP_FOREIGN_APPS` asks for.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Build what the machine's tools allow; warn about the rest.
    Auto,
    /// Fail the build when a language cannot be built (CI).
    Required,
    /// Build no foreign app.
    Skip,
}

impl Mode {
    fn from_env() -> Self {
        match std::env::var("WASP_FOREIGN_APPS").as_deref() {
            Err(_) | Ok("" | "auto") => Self::Auto,
            Ok("required") => Self::Required,
            Ok("skip") => Self::Skip,
            Ok(other) => panic!(
                "WASP_FOREIGN_APPS is `{other}`; it must be `auto` (the default), `required` or `skip`"
            ),
        }
    }
}

/// A language whose apps this step builds.
#[derive(Clone, Copy)]
enum Language {
    Python,
    Js,
}

impl Language {
    const ALL: [Self; 2] = [Self::Python, Self::Js];

    fn name(self) -> &'static str {
        match self {
            Self::Python => "Python",
            Self::Js => "JavaScript",
        }
    }

    /// The tool that builds this language's apps into components.
    fn tool(self) -> &'static str {
        match self {
            Self::Python => "componentize-py",
            Self::Js => "componentize-js",
        }
    }

    /// The directory under `example-apps/` holding this language's apps.
    fn directory(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Js => "js",
        }
    }

    /// The file every app of this language has, which makes a directory an app.
    fn entry(self) -> &'static str {
        match self {
            Self::Python => "app.py",
            Self::Js => "app.js",
        }
    }

    /// The files, relative to the language directory, that pin the tool.
    fn pins(self) -> &'static [&'static str] {
        match self {
            Self::Python => &["requirements.txt"],
            Self::Js => &["package.json", "package-lock.json"],
        }
    }

    /// Whether `name` (a file in an app directory) goes into the component: the
    /// modules the entry may import by relative path (componentize-py bundles the
    /// modules on its path; componentize-js follows relative imports). Tests, their
    /// stand-ins and npm's metadata never do.
    fn is_source(self, name: &str) -> bool {
        match self {
            Self::Python => {
                name.ends_with(".py") && !name.starts_with("test_") && !name.ends_with("_test.py")
            }
            Self::Js => {
                [".js", ".mjs", ".cjs", ".json"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
                    && ![".test.js", ".test.mjs", "package.json", "package-lock.json"]
                        .iter()
                        .any(|suffix| name.ends_with(suffix))
            }
        }
    }
}

/// Directories inside an app that hold no sources of the component: build outputs,
/// caches, installed packages, and the tests' stand-ins for the WIT imports.
const NOT_SOURCE_DIRECTORIES: &[&str] = &[
    "build",
    "__pycache__",
    "node_modules",
    "tests",
    "test",
    "wit-stubs",
];

/// One app to build.
struct ForeignApp {
    /// Its directory's name, which names `target/apps/<name>.wasm`.
    name: String,
    directory: PathBuf,
    /// Its source files, relative to `directory`, sorted.
    sources: Vec<PathBuf>,
    /// Where its component is cached: `target/foreign/<name>-<key>.wasm`.
    output: PathBuf,
}

/// Why a language could not be built on this machine.
struct Unavailable(String);

/// Paths this step reads and writes.
struct Layout {
    root: PathBuf,
    wit: PathBuf,
    tools: PathBuf,
    cache: PathBuf,
    apps: PathBuf,
}

impl Layout {
    fn new(root: &Path, target_dir: &Path) -> Self {
        Self {
            root: root.to_owned(),
            wit: root.join("wit"),
            tools: tools_dir(target_dir),
            cache: target_dir.join("foreign"),
            apps: target_dir.join("apps"),
        }
    }

    fn language_dir(&self, language: Language) -> PathBuf {
        self.root.join("example-apps").join(language.directory())
    }
}

/// Where the pinned tools are installed: `target/tools/{python,js}`.
pub fn tools_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("tools")
}

/// Tell cargo what this step reads, and the tests where the tools are. Called before
/// `WASP_SKIP_GUEST_BUILD` is looked at, since the tests need the path either way.
pub fn declare(root: &Path, target_dir: &Path) {
    println!(
        "cargo::rustc-env=WASP_TOOLS_DIR={}",
        tools_dir(target_dir).display()
    );
    println!("cargo::rerun-if-env-changed=WASP_FOREIGN_APPS");
    for language in Language::ALL {
        println!(
            "cargo::rerun-if-changed={}",
            root.join("example-apps")
                .join(language.directory())
                .display()
        );
    }
    println!("cargo::rerun-if-changed={}", root.join("wit").display());
}

/// Build every foreign app whose component is not cached yet, and copy each to
/// `target/apps/<name>.wasm`.
pub fn build(root: &Path, target_dir: &Path) {
    let mode = Mode::from_env();
    if mode == Mode::Skip {
        return;
    }
    let layout = Layout::new(root, target_dir);
    let started = Instant::now();
    let wit_hash = hash_tree(&layout.wit, &|_| true);
    let mut count = 0;
    for language in Language::ALL {
        let apps = discover(&layout, language, &wit_hash);
        count += apps.len();
        if apps.is_empty() {
            continue;
        }
        if let Err(Unavailable(why)) = build_language(&layout, language, &apps) {
            let message = format!("the {} example apps were not built: {why}", language.name());
            if mode == Mode::Required {
                panic!("{message} (WASP_FOREIGN_APPS=required)");
            }
            // A component built from older sources must not pass for the current one.
            for app in &apps {
                let _ = std::fs::remove_file(layout.apps.join(format!("{}.wasm", app.name)));
            }
            println!("cargo::warning={message}; set WASP_FOREIGN_APPS=skip to silence this");
            continue;
        }
        for app in &apps {
            publish(&layout, app);
        }
    }
    println!(
        "wasp-foreign: {count} apps checked in {} ms",
        started.elapsed().as_millis()
    );
}

/// The apps of `language`: every directory under its language directory that holds
/// the entry file.
fn discover(layout: &Layout, language: Language, wit_hash: &str) -> Vec<ForeignApp> {
    let language_dir = layout.language_dir(language);
    let Ok(entries) = std::fs::read_dir(&language_dir) else {
        return Vec::new();
    };
    let mut directories: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join(language.entry()).is_file())
        .collect();
    if directories.is_empty() {
        return Vec::new();
    }
    directories.sort();
    let mut pins = Hasher::new();
    for pin in language.pins() {
        let path = language_dir.join(pin);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read the tool pin {}: {e}", path.display()));
        pins.field(pin.as_bytes());
        pins.field(&bytes);
    }
    let pins = pins.finish();
    directories
        .into_iter()
        .map(|directory| {
            let name = directory
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            assert!(
                valid_name(&name),
                "the app directory {} is not a valid app name: names are 1–64 characters of a-z, 0-9, `-` and `_`",
                directory.display()
            );
            let sources = files_under(&directory, &|name| language.is_source(name));
            let mut key = Hasher::new();
            for part in [RECIPE, language.directory(), WORLD, wit_hash, &pins] {
                key.field(part.as_bytes());
            }
            for source in &sources {
                key.field(source.to_string_lossy().as_bytes());
                key.field(&read(&directory.join(source)));
            }
            let output = layout.cache.join(format!("{name}-{}.wasm", key.finish()));
            ForeignApp {
                name,
                directory,
                sources,
                output,
            }
        })
        .collect()
}

/// Build the apps of `language` whose output is not cached, installing the tool first
/// if needed.
fn build_language(
    layout: &Layout,
    language: Language,
    apps: &[ForeignApp],
) -> Result<(), Unavailable> {
    if apps.iter().all(|app| app.output.is_file()) {
        return Ok(());
    }
    std::fs::create_dir_all(&layout.tools)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", layout.tools.display()));
    let lock_path = layout.tools.join(".lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    // Held until this function returns: another build script over the same target
    // directory waits here rather than installing or writing beside this one.
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    let tool = install(layout, language)?;
    for app in apps.iter().filter(|app| !app.output.is_file()) {
        let started = Instant::now();
        build_app(layout, language, &tool, app);
        println!(
            "wasp-foreign: built {} ({}) in {:.1} s",
            app.name,
            language.name(),
            started.elapsed().as_secs_f64()
        );
    }
    prune(layout, apps);
    Ok(())
}

/// How to run an installed tool: the program and the arguments before its own.
struct Tool {
    program: PathBuf,
    prefix: Vec<PathBuf>,
}

impl Tool {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.prefix);
        for var in TOOL_ENV_REMOVED {
            command.env_remove(var);
        }
        command
    }
}

/// Install the pinned tool of `language` into `target/tools/<language>` unless the
/// stamp there says it was installed from the same pins.
fn install(layout: &Layout, language: Language) -> Result<Tool, Unavailable> {
    let language_dir = layout.language_dir(language);
    let home = layout.tools.join(language.directory());
    let stamp = home.join(".wasp-stamp");
    let mut pins = Hasher::new();
    for pin in language.pins() {
        pins.field(&read(&language_dir.join(pin)));
    }
    let want = pins.finish();
    let tool = match language {
        Language::Python => Tool {
            program: home
                .join(if cfg!(windows) { "Scripts" } else { "bin" })
                .join("componentize-py"),
            prefix: Vec::new(),
        },
        Language::Js => Tool {
            program: PathBuf::from("node"),
            prefix: vec![home.join("node_modules/@bytecodealliance/componentize-js/src/cli.js")],
        },
    };
    let installed = std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want);
    if installed
        && tool
            .command()
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(tool);
    }
    let started = Instant::now();
    if home.exists() {
        std::fs::remove_dir_all(&home)
            .unwrap_or_else(|e| panic!("cannot remove {}: {e}", home.display()));
    }
    match language {
        Language::Python => {
            require_version("python3", "python3 (3.10 or later)", (3, 10))?;
            run_tool(
                Command::new("python3").args(["-m", "venv"]).arg(&home),
                "python3 -m venv (on Debian: apt-get install python3-venv)",
            )?;
            let python = home
                .join(if cfg!(windows) { "Scripts" } else { "bin" })
                .join("python");
            run_tool(
                Command::new(python)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        "--no-input",
                        "-r",
                    ])
                    .arg(language_dir.join("requirements.txt")),
                "pip install -r example-apps/python/requirements.txt",
            )?;
        }
        Language::Js => {
            require_version("node", "node (20 or later)", (20, 0))?;
            require("npm", "npm")?;
            std::fs::create_dir_all(&home)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", home.display()));
            for pin in language.pins() {
                copy(&language_dir.join(pin), &home.join(pin));
            }
            // `npm install` with the lock, not `npm ci`: npm 11's `ci` refuses this lock
            // because jco lists platform packages that were never published (and so
            // are not in the lock); `install` takes the locked versions all the same.
            run_tool(
                Command::new("npm")
                    .args([
                        "install",
                        "--no-save",
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                    ])
                    .current_dir(&home),
                "npm install from example-apps/js/package-lock.json",
            )?;
        }
    }
    let version = tool
        .command()
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .ok_or_else(|| {
            Unavailable(format!(
                "the installed tool {} does not run",
                tool.program.display()
            ))
        })?;
    write_atomically(&stamp, want.as_bytes());
    println!(
        "wasp-foreign: installed {} ({version}) in {:.1} s",
        language.tool(),
        started.elapsed().as_secs_f64()
    );
    Ok(tool)
}

/// Fail with what is missing unless `program --version` runs and prints a version of at
/// least `min` (major, minor): `Python 3.11.7`, `v20.20.2`.
fn require_version(program: &str, what: &str, min: (u32, u32)) -> Result<(), Unavailable> {
    let output = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| Unavailable(format!("{what} is not installed ({program}: {e})")))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let version = text.split_whitespace().find_map(|word| {
        let mut parts = word.trim_start_matches('v').split('.');
        let major = parts.next()?.parse::<u32>().ok()?;
        let minor = parts.next()?.parse::<u32>().ok()?;
        Some((major, minor))
    });
    match version {
        Some(found) if output.status.success() && found >= min => Ok(()),
        Some((major, minor)) => Err(Unavailable(format!(
            "{what} is needed; `{program} --version` says {major}.{minor}"
        ))),
        None => Err(Unavailable(format!(
            "{what} is needed; `{program} --version` printed no version: {}",
            text.trim()
        ))),
    }
}

/// Fail with what is missing unless `program --version` runs.
fn require(program: &str, what: &str) -> Result<(), Unavailable> {
    match Command::new(program).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(Unavailable(format!(
            "`{program} --version` failed ({}): {}",
            output.status,
            tail(&output.stderr)
        ))),
        Err(e) => Err(Unavailable(format!(
            "{what} is not installed ({program}: {e})"
        ))),
    }
}

/// Run an installation step; its failure makes the language unavailable.
fn run_tool(command: &mut Command, what: &str) -> Result<(), Unavailable> {
    for var in TOOL_ENV_REMOVED {
        command.env_remove(var);
    }
    let output = command
        .output()
        .map_err(|e| Unavailable(format!("{what} could not start: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Unavailable(format!(
            "{what} failed ({}): {}",
            output.status,
            tail(&output.stderr)
        )))
    }
}

/// Build one app into its cached output. The app's sources are staged first, so that
/// the component holds only them (componentize-py bundles every module on its path).
fn build_app(layout: &Layout, language: Language, tool: &Tool, app: &ForeignApp) {
    let stage = layout.cache.join("stage").join(&app.name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .unwrap_or_else(|e| panic!("cannot remove {}: {e}", stage.display()));
    }
    for source in &app.sources {
        copy(&app.directory.join(source), &stage.join(source));
    }
    let partial = app.output.with_extension("wasm.partial");
    let mut command = tool.command();
    command.current_dir(&stage);
    match language {
        Language::Python => {
            command
                .args(["--quiet", "--wit-path"])
                .arg(&layout.wit)
                .args(["--world", WORLD, "componentize", "app", "--python-path"])
                .arg(&stage)
                .arg("--output")
                .arg(&partial);
        }
        Language::Js => {
            // wasi:http and the fetch event are disabled: the app world has no use for
            // them, and without this the component imports wasi:http.
            command
                .arg("--wit")
                .arg(&layout.wit)
                .args([
                    "--world-name",
                    WORLD,
                    "--disable",
                    "http",
                    "fetch-event",
                    "--out",
                ])
                .arg(&partial)
                .arg(stage.join("app.js"));
        }
    }
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} to build {}: {e}",
            tool.program.display(),
            app.directory.display()
        )
    });
    if !output.status.success() || !partial.is_file() {
        panic!(
            "building the {} app {} failed ({}):\n{}\n{}",
            language.name(),
            app.directory.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&partial, &app.output).unwrap_or_else(|e| {
        panic!(
            "cannot move {} to {}: {e}",
            partial.display(),
            app.output.display()
        )
    });
    let _ = std::fs::remove_dir_all(&stage);
}

/// Remove the cached components of `apps` other than the current ones: each is
/// 10–20 MB and would otherwise pile up with every edit.
fn prune(layout: &Layout, apps: &[ForeignApp]) {
    let Ok(entries) = std::fs::read_dir(&layout.cache) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let stale = apps.iter().any(|app| {
            path != app.output
                && file
                    .strip_prefix(&app.name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .and_then(|rest| rest.strip_suffix(".wasm"))
                    .is_some_and(|key| {
                        key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
                    })
        });
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Copy the cached component to `target/apps/<name>.wasm` unless it is there already.
fn publish(layout: &Layout, app: &ForeignApp) {
    let built = read(&app.output);
    let copy = layout.apps.join(format!("{}.wasm", app.name));
    if std::fs::read(&copy).ok().as_deref() != Some(built.as_slice()) {
        write_atomically(&copy, &built);
    }
}

/// Whether `name` is a valid app name (the host's rule for `describe`).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Every file under `directory` whose name `keep` accepts, relative and sorted;
/// hidden entries and [`NOT_SOURCE_DIRECTORIES`] are left out.
fn files_under(directory: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if !NOT_SOURCE_DIRECTORIES.contains(&name) {
                    walk(base, &path, keep, out);
                }
            } else if keep(name) {
                out.push(path.strip_prefix(base).unwrap_or(&path).to_owned());
            }
        }
    }
    let mut files = Vec::new();
    walk(directory, directory, keep, &mut files);
    files.sort();
    files
}

/// The hash of every file under `directory` that `keep` accepts, with its path.
fn hash_tree(directory: &Path, keep: &dyn Fn(&str) -> bool) -> String {
    let mut hasher = Hasher::new();
    for file in files_under(directory, keep) {
        hasher.field(file.to_string_lossy().as_bytes());
        hasher.field(&read(&directory.join(file)));
    }
    hasher.finish()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}

/// Write `bytes` to `path` through a file beside it, so that a reader (a test, `wasp`)
/// never sees half a component.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let parent = path.parent().expect("an output path has a parent");
    std::fs::create_dir_all(parent)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, bytes)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", partial.display()));
    std::fs::rename(&partial, path).unwrap_or_else(|e| {
        panic!(
            "cannot move {} to {}: {e}",
            partial.display(),
            path.display()
        )
    });
}

/// The lines of a tool's stderr that say why it failed: those naming an error (pip and
/// npm print their cause there, and pages of help or progress around it), else the last.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .take(8)
        .collect();
    if errors.is_empty() {
        lines[lines.len().saturating_sub(8)..].join(" | ")
    } else {
        errors.join(" | ")
    }
}

/// FNV-1a, 128 bits: a stable content hash with no dependency (a build dependency
/// such as `sha2` would be compiled a second time for the build script). It guards
/// against stale outputs, not against an adversary, who could edit the sources anyway.
struct Hasher(u128);

impl Hasher {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    /// Add one length-prefixed field, so that `("ab", "c")` and `("a", "bc")` differ.
    fn field(&mut self, bytes: &[u8]) {
        for byte in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u128::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> String {
        format!("{:032x}", self.0)
    }
}
