//! Scaffolding: `wasp app new <name> --lang rust|python|js` writes a working app
//! skeleton (an action, its tests, the build and a README) that builds and passes its
//! own tests as written, so that an app author starts from green.
//!
//! The templates are files under `runtime/templates/{rust,python,js}/`, embedded in the
//! binary with `include_str!` so that `wasp` scaffolds without a checkout. They are
//! filled by plain substitution of `{{…}}` markers; the values substituted are either
//! a validated app name or paths checked to need no quoting.
//!
//! Where the app goes decides how it finds the contract:
//! - Given the wasp checkout (`wasp_root`), a Rust app depends on its `sdk/` by path,
//!   and a Python or JavaScript app builds against its `wit/`, both by relative path.
//!   An app made directly in `example-apps/` (Rust) or `example-apps/python|js/` is
//!   then built by `cargo build` with the others.
//! - Without one, the app stands alone: a Python or JavaScript app gets its own copy of
//!   `wit/app.wit`, and a Rust app its own copy of this wasp's SDK (`wasp-sdk/`, with
//!   `wit/` beside it), since the SDK is not published to a registry. The app then
//!   builds anywhere, with nothing outside its directory, and can be committed as is.

use std::path::{Component, Path, PathBuf};

/// The contract, copied into a Python or JavaScript app made outside a checkout.
const WIT: &str = include_str!("../../wit/app.wit");

/// The SDK's sources, copied into a Rust app made outside a checkout (`wasp-sdk/src/`).
/// A test checks that this is every file of `sdk/src`.
const SDK_SOURCES: &[Template] = &[
    ("action.rs", include_str!("../../sdk/src/action.rs")),
    ("config.rs", include_str!("../../sdk/src/config.rs")),
    ("error.rs", include_str!("../../sdk/src/error.rs")),
    ("http.rs", include_str!("../../sdk/src/http.rs")),
    ("json.rs", include_str!("../../sdk/src/json.rs")),
    ("lib.rs", include_str!("../../sdk/src/lib.rs")),
    ("log.rs", include_str!("../../sdk/src/log.rs")),
    ("testing.rs", include_str!("../../sdk/src/testing.rs")),
];

/// The SDK's manifest, and the workspace's, from which the copy's own is made.
const SDK_MANIFEST: &str = include_str!("../../sdk/Cargo.toml");
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

/// The SDK's manifest made standalone: each `key.workspace = true` replaced by the
/// workspace's line for that key (a dependency's version and features, the package's
/// version and edition), and the workspace's lints left out. `None` if a key is not in
/// the workspace's manifest (a test makes sure it is).
fn standalone_sdk_manifest() -> Option<String> {
    let mut out = String::from(
        "# A copy of the SDK of wasp {version}, made by `wasp app new` so that this app builds\n\
         # with nothing outside its directory. `wasp app new` in a newer wasp makes a newer one.\n",
    )
    .replace("{version}", env!("CARGO_PKG_VERSION"));
    let mut lines = SDK_MANIFEST.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "[lints]" {
            // `workspace = true`: the workspace's lints are wasp's own business.
            while lines
                .peek()
                .is_some_and(|next| !next.trim_start().starts_with('['))
            {
                lines.next();
            }
            continue;
        }
        match line.split_once(".workspace = true") {
            Some((key, rest)) if rest.trim().is_empty() => {
                let key = key.trim();
                let found = WORKSPACE_MANIFEST.lines().find(|candidate| {
                    candidate
                        .split_once('=')
                        .is_some_and(|(name, _)| name.trim() == key)
                })?;
                out.push_str(found);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    Some(out)
}

/// A template file: where it goes in the app, and its text.
type Template = (&'static str, &'static str);

const RUST: &[Template] = &[
    (
        "Cargo.toml",
        include_str!("../templates/rust/Cargo.toml.tmpl"),
    ),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("README.md", include_str!("../templates/rust/README.md")),
    (".gitignore", include_str!("../templates/rust/gitignore")),
];

const PYTHON: &[Template] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    (
        "test_app.py",
        include_str!("../templates/python/test_app.py"),
    ),
    ("Makefile", include_str!("../templates/python/Makefile")),
    (
        "requirements.txt",
        include_str!("../templates/python/requirements.txt"),
    ),
    ("README.md", include_str!("../templates/python/README.md")),
    (".gitignore", include_str!("../templates/python/gitignore")),
];

const JS: &[Template] = &[
    ("app.js", include_str!("../templates/js/app.js")),
    ("app.test.js", include_str!("../templates/js/app.test.js")),
    ("package.json", include_str!("../templates/js/package.json")),
    ("README.md", include_str!("../templates/js/README.md")),
    (".gitignore", include_str!("../templates/js/gitignore")),
    (
        "wit-stubs/register.js",
        include_str!("../templates/js/wit-stubs/register.js"),
    ),
    (
        "wit-stubs/hooks.js",
        include_str!("../templates/js/wit-stubs/hooks.js"),
    ),
    (
        "wit-stubs/host.js",
        include_str!("../templates/js/wit-stubs/host.js"),
    ),
    (
        "wit-stubs/log.js",
        include_str!("../templates/js/wit-stubs/log.js"),
    ),
    (
        "wit-stubs/config.js",
        include_str!("../templates/js/wit-stubs/config.js"),
    ),
];

/// The language of a new app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A crate using `wasp-sdk`, built with `cargo build --target wasm32-wasip2`.
    Rust,
    /// A module built by componentize-py.
    Python,
    /// An ES module built by componentize-js.
    Js,
}

impl Lang {
    /// The name `--lang` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Js => "js",
        }
    }

    fn templates(self) -> &'static [Template] {
        match self {
            Self::Rust => RUST,
            Self::Python => PYTHON,
            Self::Js => JS,
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an app could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not one an app may have.
    #[error("`{name}` is not a valid app name: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The app's directory is there already; nothing is overwritten.
    #[error("`{}` already exists; choose another name or directory", path.display())]
    Exists {
        /// The directory the app would have been made in.
        path: PathBuf,
    },
    /// The directory to make the app in does not exist.
    #[error("the directory `{}` does not exist", path.display())]
    NoParent {
        /// The directory given.
        path: PathBuf,
    },
    /// The directory named as the wasp checkout is not one.
    #[error("`{}` is not a wasp checkout: it has no `sdk/Cargo.toml` or no `wit/app.wit`", path.display())]
    NotWaspRoot {
        /// The directory given.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("cannot write `{}`: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Words a Rust package may not be named: a crate with one of these names cannot be
/// referred to, or clashes with a crate of the standard distribution.
const RUST_RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc-macro",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// Check that `name` can name an app in `lang`: the host's rule for app names (1–64
/// characters of a-z, 0-9, `-`, `_`), starting with a letter because Cargo and npm
/// refuse package names that start otherwise, and no Rust keyword for a Rust app.
pub fn validate_name(name: &str, lang: Lang) -> Result<(), ScaffoldError> {
    let invalid = |reason: &str| ScaffoldError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 64 {
        return Err(invalid(&format!(
            "it is {} characters long; at most 64 are allowed",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(invalid(&format!(
            "it contains `{bad}`; names are made of a-z, 0-9, `-` and `_`"
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid("it must start with a letter"));
    }
    if lang == Lang::Rust && RUST_RESERVED.contains(&name) {
        return Err(invalid(
            "it is a Rust keyword or the name of a standard crate",
        ));
    }
    Ok(())
}

/// Make the app `name` in `lang` as the directory `parent_dir/name`, and return that
/// directory. `wasp_root`, the wasp checkout, lets the app use its SDK and WIT by path.
///
/// Nothing is overwritten: an existing directory is an error, and a failure halfway
/// removes what was written.
pub fn new_app(
    name: &str,
    lang: Lang,
    parent_dir: &Path,
    wasp_root: Option<&Path>,
) -> Result<PathBuf, ScaffoldError> {
    validate_name(name, lang)?;
    let parent = parent_dir
        .canonicalize()
        .map_err(|_| ScaffoldError::NoParent {
            path: parent_dir.to_owned(),
        })?;
    let root = match wasp_root {
        Some(root) => {
            let not_root = || ScaffoldError::NotWaspRoot {
                path: root.to_owned(),
            };
            let root = root.canonicalize().map_err(|_| not_root())?;
            if !root.join("sdk/Cargo.toml").is_file() || !root.join("wit/app.wit").is_file() {
                return Err(not_root());
            }
            Some(root)
        }
        None => None,
    };
    let app_dir = parent.join(name);
    let files = render(name, lang, &app_dir, root.as_deref());
    std::fs::create_dir(&app_dir).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => ScaffoldError::Exists {
            path: app_dir.clone(),
        },
        _ => ScaffoldError::Io {
            path: app_dir.clone(),
            source,
        },
    })?;
    for (relative, text) in &files {
        let path = app_dir.join(relative);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(source) = written {
            let _ = std::fs::remove_dir_all(&app_dir);
            return Err(ScaffoldError::Io { path, source });
        }
    }
    Ok(app_dir)
}

/// The files of the app `name` in `lang` that will live in `app_dir`, with every
/// marker filled in.
fn render(name: &str, lang: Lang, app_dir: &Path, root: Option<&Path>) -> Vec<(String, String)> {
    // A relative path that needs no quoting in TOML, JSON, a Makefile or a shell.
    let plain = |to: &Path| {
        relative_path(app_dir, to)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .filter(|p| {
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
            })
    };
    let wit_dir = root.and_then(|root| plain(&root.join("wit")));
    let sdk_path = root.and_then(|root| plain(&root.join("sdk")));
    let sdk_dependency = match &sdk_path {
        Some(path) => format!("wasp-sdk = {{ path = \"{path}\" }}"),
        None => "# The copy of wasp's SDK that `wasp app new` made (the SDK is not published).\n\
                 wasp-sdk = { path = \"wasp-sdk\" }"
            .to_owned(),
    };
    // Directly in `example-apps/`, a Rust app is a member of the wasp workspace (its
    // `members` glob), which `cargo build` builds; anywhere else it stands alone.
    let in_workspace =
        root.is_some_and(|root| app_dir.parent() == Some(&root.join("example-apps")));
    let workspace = if in_workspace {
        String::new()
    } else {
        "\n# A workspace of its own: building it never involves a workspace above it.\n[workspace]\n"
            .to_owned()
    };
    let markers = [
        ("{{name}}", name.to_owned()),
        ("{{crate}}", name.replace('-', "_")),
        ("{{sdk_dependency}}", sdk_dependency),
        ("{{workspace}}", workspace),
        (
            "{{sdk_note}}",
            if sdk_path.is_some() {
                format!(
                    "\n`wasp-sdk` is the SDK of the wasp checkout at `{}`, by relative path.\n",
                    sdk_path.clone().unwrap_or_default()
                )
            } else {
                format!(
                    "\n`wasp-sdk/` is a copy of the SDK of wasp {} (with the contract in `wit/`),\n\
                     so that the app builds with nothing outside this directory; the wasp\n\
                     that runs the app must speak the same contract.\n",
                    env!("CARGO_PKG_VERSION")
                )
            },
        ),
        (
            "{{wit_dir}}",
            wit_dir.clone().unwrap_or_else(|| "wit".to_owned()),
        ),
    ];
    let mut files: Vec<(String, String)> = lang
        .templates()
        .iter()
        .map(|(relative, template)| {
            let text = markers
                .iter()
                .fold((*template).to_owned(), |text, (marker, value)| {
                    text.replace(marker, value)
                });
            ((*relative).to_owned(), text)
        })
        .collect();
    match lang {
        Lang::Python | Lang::Js if wit_dir.is_none() => {
            files.push(("wit/app.wit".to_owned(), WIT.to_owned()));
        }
        Lang::Rust if sdk_path.is_none() => {
            // The SDK reads the contract from `../wit`, beside its own directory.
            files.push(("wit/app.wit".to_owned(), WIT.to_owned()));
            if let Some(manifest) = standalone_sdk_manifest() {
                files.push(("wasp-sdk/Cargo.toml".to_owned(), manifest));
            }
            for (file, text) in SDK_SOURCES {
                files.push((format!("wasp-sdk/src/{file}"), (*text).to_owned()));
            }
        }
        _ => {}
    }
    files
}

/// `to` relative to the directory `from` (both absolute), e.g. `../../wit`; `None` when
/// they share no root (another drive).
fn relative_path(from: &Path, to: &Path) -> Option<PathBuf> {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    if from.first() != to.first() {
        return None;
    }
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for component in &to[common..] {
        path.push(component);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(name: &str, lang: Lang) -> String {
        match validate_name(name, lang) {
            Err(ScaffoldError::InvalidName { reason, .. }) => reason,
            other => panic!("`{name}` was not refused as a name: {other:?}"),
        }
    }

    #[test]
    fn valid_names_are_accepted_in_every_language() {
        for name in [
            "defang",
            "severity-score",
            "ip_classify2",
            "a",
            &"x".repeat(64),
        ] {
            for lang in [Lang::Rust, Lang::Python, Lang::Js] {
                assert!(validate_name(name, lang).is_ok(), "`{name}` in {lang}");
            }
        }
    }

    #[test]
    fn invalid_names_say_why() {
        assert_eq!(reason("", Lang::Js), "it is empty");
        assert_eq!(
            reason(&"x".repeat(65), Lang::Python),
            "it is 65 characters long; at most 64 are allowed"
        );
        assert_eq!(
            reason("Defang", Lang::Python),
            "it contains `D`; names are made of a-z, 0-9, `-` and `_`"
        );
        assert_eq!(
            reason("ip.classify", Lang::Rust),
            "it contains `.`; names are made of a-z, 0-9, `-` and `_`"
        );
        assert_eq!(
            reason("../evil", Lang::Rust),
            "it contains `.`; names are made of a-z, 0-9, `-` and `_`"
        );
        assert_eq!(
            reason("a b", Lang::Js),
            "it contains ` `; names are made of a-z, 0-9, `-` and `_`"
        );
        assert_eq!(
            reason("défang", Lang::Js),
            "it contains `é`; names are made of a-z, 0-9, `-` and `_`"
        );
        for name in ["1password", "-x", "_x"] {
            assert_eq!(reason(name, Lang::Js), "it must start with a letter");
        }
        assert_eq!(
            reason("fn", Lang::Rust),
            "it is a Rust keyword or the name of a standard crate"
        );
        assert_eq!(
            reason("test", Lang::Rust),
            "it is a Rust keyword or the name of a standard crate"
        );
        // Only Rust minds its keywords.
        assert!(validate_name("test", Lang::Python).is_ok());
        let message = validate_name("Bad!", Lang::Rust).unwrap_err().to_string();
        assert_eq!(
            message,
            "`Bad!` is not a valid app name: it contains `B`; names are made of a-z, 0-9, `-` and `_`"
        );
    }

    #[test]
    fn the_sdk_copy_is_every_source_file_with_a_manifest_of_its_own() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let copied: Vec<&str> = SDK_SOURCES.iter().map(|(file, _)| *file).collect();
        assert_eq!(on_disk, copied, "add the new SDK file to SDK_SOURCES");
        let manifest = standalone_sdk_manifest().expect("every workspace key is found");
        assert!(!manifest.contains("workspace"), "{manifest}");
        for line in [
            "name = \"wasp-sdk\"",
            "edition = \"2024\"",
            "wit-bindgen = \"0.63\"",
            "serde = { version = \"1\", features = [\"derive\"] }",
            "wasi = \"0.14\"",
        ] {
            assert!(manifest.lines().any(|l| l == line), "{line} in {manifest}");
        }
        assert!(
            manifest.contains(&format!("version = \"{}\"", env!("CARGO_PKG_VERSION"))),
            "{manifest}"
        );
    }

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative_path(Path::new("/w/example-apps/python/x"), Path::new("/w/wit")),
            Some(PathBuf::from("../../../wit"))
        );
        assert_eq!(
            relative_path(Path::new("/tmp/a"), Path::new("/tmp/a/b")),
            Some(PathBuf::from("b"))
        );
        assert_eq!(
            relative_path(Path::new("/tmp/a"), Path::new("/w/sdk")),
            Some(PathBuf::from("../../w/sdk"))
        );
    }

    /// Every marker of every template is filled in, whatever the language and place.
    #[test]
    fn every_marker_is_filled() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for (dir, root) in [
                (PathBuf::from("/tmp/apps/my-app"), None),
                (root.join("example-apps/my-app"), Some(root)),
                (root.join("example-apps/python/my-app"), Some(root)),
            ] {
                for (file, text) in render("my-app", lang, &dir, root) {
                    assert!(
                        !text.contains("{{"),
                        "{lang} {file} in {}: {text}",
                        dir.display()
                    );
                }
            }
        }
    }

    #[test]
    fn a_new_app_has_its_files_and_refuses_to_overwrite() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let parent = tempfile::tempdir().unwrap();
        let dir = new_app("scan-me", Lang::Python, parent.path(), None).unwrap();
        assert_eq!(dir, parent.path().canonicalize().unwrap().join("scan-me"));
        for file in [
            "app.py",
            "test_app.py",
            "Makefile",
            "README.md",
            ".gitignore",
            "wit/app.wit",
        ] {
            assert!(dir.join(file).is_file(), "{file}");
        }
        assert!(
            std::fs::read_to_string(dir.join("Makefile"))
                .unwrap()
                .contains("WIT ?= wit\n")
        );
        assert!(matches!(
            new_app("scan-me", Lang::Js, parent.path(), None),
            Err(ScaffoldError::Exists { .. })
        ));

        let dir = new_app("scan-rs", Lang::Rust, parent.path(), Some(root)).unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let sdk = relative_path(&dir, &root.canonicalize().unwrap().join("sdk")).unwrap();
        assert!(
            manifest.contains(&format!("wasp-sdk = {{ path = \"{}\" }}", sdk.display())),
            "{manifest}"
        );
        assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
        assert!(dir.join(&sdk).join("Cargo.toml").is_file());

        let dir = new_app("scan-js", Lang::Js, parent.path(), Some(root)).unwrap();
        assert!(
            !dir.join("wit").exists(),
            "the checkout's WIT is used, not a copy"
        );
        let package = std::fs::read_to_string(dir.join("package.json")).unwrap();
        let package: serde_json::Value = serde_json::from_str(&package).unwrap();
        assert_eq!(package["name"], "scan-js");
    }

    #[test]
    fn wrong_places_are_named() {
        let parent = tempfile::tempdir().unwrap();
        let missing = parent.path().join("nowhere");
        assert_eq!(
            new_app("x", Lang::Js, &missing, None)
                .unwrap_err()
                .to_string(),
            format!("the directory `{}` does not exist", missing.display())
        );
        assert_eq!(
            new_app("x", Lang::Rust, parent.path(), Some(parent.path()))
                .unwrap_err()
                .to_string(),
            format!(
                "`{}` is not a wasp checkout: it has no `sdk/Cargo.toml` or no `wit/app.wit`",
                parent.path().display()
            )
        );
        assert!(!parent.path().join("x").exists());
    }

    /// The JavaScript template's stand-ins for the WIT imports are the example app's:
    /// one harness, tested there against the real component's behaviour.
    #[test]
    fn the_js_stand_ins_match_the_example_app() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../example-apps/js/severity-score/wit-stubs");
        for (file, text) in JS.iter().filter(|(f, _)| f.starts_with("wit-stubs/")) {
            let name = file.trim_start_matches("wit-stubs/");
            let theirs = std::fs::read_to_string(example.join(name)).unwrap();
            assert_eq!(
                *text, theirs,
                "wit-stubs/{name} differs from the example app's"
            );
        }
    }
}
