//! The `wasp` binary: exit codes, output and error messages.

use serde_json::json;
use std::process::{Command, Output};

use crate::common::{cache_dir, example_apps_dir, hostile_path};

pub(crate) fn wasp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(args)
        .env("WASP_APPS", example_apps_dir())
        .env("WASP_CACHE_DIR", cache_dir())
        .env_remove("WASP_LOG")
        .output()
        .expect("wasp runs")
}

pub(crate) fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn app_run_prints_one_record_and_exits_0() {
    let output = wasp(&[
        "app",
        "run",
        "ioc-extract",
        "--action",
        "extract",
        "--input",
        r#"{"text":"see hxxp://evil[.]com/x and 10.1.2[.]3"}"#,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let record = stdout_json(&output);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(
        record["output"]["urls"],
        serde_json::json!(["http://evil.com/x"])
    );
    assert_eq!(record["output"]["ipv4"], serde_json::json!(["10.1.2.3"]));
    for key in [
        "pathway",
        "error",
        "logs",
        "stdout",
        "stderr",
        "duration_us",
        "truncated",
    ] {
        assert!(
            record.get(key).is_some(),
            "the record has `{key}`: {record}"
        );
    }
}

#[test]
fn a_failed_step_exits_1_with_the_classified_error() {
    let hostile = hostile_path();
    let output = wasp(&[
        "app",
        "run",
        hostile.to_str().unwrap(),
        "--action",
        "spin",
        "--timeout",
        "100ms",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let record = stdout_json(&output);
    assert_eq!(record["status"], "failed");
    assert_eq!(record["error"]["kind"], "timeout");
}

#[test]
fn bad_usage_exits_2_and_names_the_problem() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["app", "run", "no-such-app", "--action", "x"],
            "error: no app `no-such-app` in `",
        ),
        (
            &["app", "run", "ioc-extract", "--action", "explode"],
            "error: app `ioc-extract` has no action `explode`; it offers: extract, defang, refang",
        ),
        (
            &[
                "app",
                "run",
                "ioc-extract",
                "--action",
                "extract",
                "--input",
                "{not json",
            ],
            "error: --input is not valid JSON: key must be a string at line 1 column 2",
        ),
        (
            &[
                "app",
                "run",
                "ioc-extract",
                "--action",
                "extract",
                "--input",
                "@/no/such/file.json",
            ],
            "error: cannot read --input file `/no/such/file.json`: No such file or directory",
        ),
        (
            &[
                "app",
                "run",
                "ioc-extract",
                "--action",
                "extract",
                "--secret",
                "api_key=hunter2",
            ],
            "error: --secret `api_key`: `hunter2` is not a source; use env:VAR, file:PATH or @PATH",
        ),
        (
            &[
                "app",
                "run",
                "ioc-extract",
                "--action",
                "extract",
                "--timeout",
                "soon",
            ],
            "`soon` is not a duration",
        ),
        (
            &["app", "describe", "./missing.wasm"],
            "error: cannot read `./missing.wasm`",
        ),
    ];
    for (args, expected) in cases {
        let output = wasp(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn secrets_from_the_environment_are_redacted() {
    let hostile = hostile_path();
    let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args([
            "app",
            "run",
            hostile.to_str().unwrap(),
            "--action",
            "leak-secret",
            "--secret",
            "api_key=env:TEST_VT_KEY",
        ])
        .env("TEST_VT_KEY", "s3cr3t-value-123")
        .env("WASP_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("s3cr3t-value-123"), "{stdout}");
    assert_eq!(
        stdout_json(&output)["error"]["message"],
        "the service refused key ***"
    );
}

#[test]
fn app_list_and_describe_show_every_example_app() {
    // Piped, `app list` answers JSON without being asked.
    let output = wasp(&["app", "list"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let names: Vec<String> = stdout_json(&output)
        .as_array()
        .unwrap()
        .iter()
        .map(|app| app["name"].as_str().unwrap().to_owned())
        .collect();
    // The Python and JavaScript apps exist where their tools could be installed
    // (`tests/all/languages.rs` fails without them when they are required).
    let foreign = ["defang", "severity-score"];
    let expected: Vec<&str> = [
        "chaos",
        "defang",
        "email-parse",
        "http-request",
        "if-else",
        "indicator-lookup",
        "ioc-extract",
        "ip-classify",
        "reputation",
        "severity-score",
        "switch",
        "transform",
    ]
    .into_iter()
    .filter(|name| !foreign.contains(name) || crate::common::example_app(name).is_file())
    .collect();
    assert_eq!(names, expected);

    let output = wasp(&["app", "describe", "ioc-extract"]);
    let info = stdout_json(&output);
    let actions: Vec<&str> = info["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["extract", "defang", "refang"]);
    assert_eq!(
        info["actions"][0]["input_schema"]["required"],
        serde_json::json!(["text"])
    );
}

#[test]
fn validate_and_graph_a_playbook() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../example-apps/playbooks/phishing-triage.yaml"
    );
    let output = wasp(&["validate", sample, "--output", "text"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .ends_with("is valid: playbook `phishing-triage`, 8 nodes, 7 edges\n")
    );
    // Piped, it answers JSON, for an editor or CI to read.
    let output = wasp(&["validate", sample]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let answer = stdout_json(&output);
    assert_eq!(
        (
            &answer["valid"],
            &answer["playbook"],
            &answer["nodes"],
            &answer["edges"]
        ),
        (
            &json!(true),
            &json!("phishing-triage"),
            &json!(8),
            &json!(7)
        )
    );

    let output = wasp(&["graph", sample, "--format", "mermaid"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .starts_with("flowchart LR\n  n_trigger[\"trigger\"]\n")
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "id: x\nname: y\ntrigger: {type: manual}\nnodes:\n  a: {app: nope}\n  b: {app: ioc-extract, action: extract, input: {text: \"${c.output}\"}}\n").unwrap();
    let output = wasp(&["validate", broken.to_str().unwrap(), "--output", "text"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "error: `{}` has 2 problems:\n  - node `a`, `app`: there is no app `nope`\n  - node `b`, `input`: `${{c.output}}` reads `c`, which is not a node\n",
            broken.display()
        )
    );
    // As JSON, each problem is an object naming its node and field.
    let output = wasp(&["validate", broken.to_str().unwrap(), "--output", "json"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stdout_json(&output),
        json!({
            "valid": false,
            "file": broken.display().to_string(),
            "problems": [
                {"node": "a", "field": "app", "message": "there is no app `nope`"},
                {"node": "b", "field": "input", "message": "`${c.output}` reads `c`, which is not a node"},
            ],
        })
    );
    let unparsable = dir.path().join("unparsable.yaml");
    std::fs::write(&unparsable, "id: [").unwrap();
    let output = wasp(&["validate", unparsable.to_str().unwrap(), "--output", "json"]);
    assert_eq!(output.status.code(), Some(2));
    let answer = stdout_json(&output);
    assert_eq!(answer["valid"], false);
    assert!(
        answer["problems"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("not a valid playbook: "),
        "{answer}"
    );
}

/// `[playbook, @input, assets]` of the sample playbook `name`.
pub(crate) fn sample(name: &str) -> [String; 3] {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../example-apps/playbooks");
    [
        format!("{dir}/{name}.yaml"),
        format!("@{dir}/{name}.input.json"),
        format!("{dir}/assets.yaml"),
    ]
}

#[test]
fn run_executes_the_phishing_triage_playbook_on_real_components() {
    let [playbook, input, assets] = sample("phishing-triage");
    let output = wasp(&[
        "run", &playbook, "--input", &input, "--assets", &assets, "--output", "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let execution = stdout_json(&output);
    assert_eq!(execution["status"], "Completed");
    let nodes: Vec<(String, String)> = execution["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("parse", "Succeeded"),
        ("iocs", "Succeeded"),
        ("lookup", "Succeeded"),
        ("malicious", "Succeeded"),
        ("spoofing", "Succeeded"),
        ("block-list", "Succeeded"),
        ("lookup-failed", "Skipped"),
    ];
    assert_eq!(
        nodes,
        expected.map(|(id, status)| (id.to_owned(), status.to_owned()))
    );
    let node = |id: &str| {
        execution["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(node("lookup")["iterations"], 2);
    assert_eq!(node("malicious")["pathway"], "true");
    assert_eq!(node("spoofing")["pathway"], "spoofed");
    assert_eq!(
        node("block-list")["output"],
        serde_json::json!({"values": ["m365-verify.top"]})
    );

    // Without --assets, the `assets.yaml` beside the playbook is used, and wasp says so.
    let output = wasp(&["run", &playbook, "--input", &input, "--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout_json(&output)["status"], "Completed");
    assert!(
        stderr(&output).contains(&format!("the assets of `{assets}` (beside the playbook")),
        "{}",
        stderr(&output)
    );

    // With no assets file at all the lookups fail, the failure edge runs, and the
    // execution ends Partially Failed with exit code 1.
    let alone = tempfile::tempdir().unwrap();
    let copy = alone.path().join("phishing-triage.yaml");
    std::fs::copy(&playbook, &copy).unwrap();
    let output = wasp(&[
        "run",
        copy.to_str().unwrap(),
        "--input",
        &input,
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let execution = stdout_json(&output);
    assert_eq!(execution["status"], "Partially Failed");
    let lookup = execution["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "lookup")
        .unwrap();
    assert_eq!(
        lookup["error"]["message"],
        "2 of 2 items failed; the first, item 0: asset `soc-feed` is not configured (see \
         --assets, or /api/v1/assets)"
    );
    assert_eq!(lookup["iterations"], 2);
    assert_eq!(lookup["succeeded"], 0);
}

#[test]
fn a_run_with_db_is_stored_and_queried_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasp.db");
    let db = db.to_str().unwrap();
    let [playbook, input, assets] = sample("phishing-triage");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run", &playbook, "--input", &input, "--assets", &assets, "--output", "json",
        ];
        args.extend_from_slice(extra);
        wasp(&args)
    };
    let output = run(&["--db", db]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let ran = stdout_json(&output);
    let id = ran["id"].as_str().unwrap();
    assert!(stderr(&output).contains(id), "{}", stderr(&output));

    let listed = wasp(&[
        "executions",
        "list",
        "--db",
        db,
        "--tql",
        r#"playbookXid = "phishing-triage" AND status = "Completed""#,
    ]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let listed = stdout_json(&listed);
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["data"][0]["id"], id);
    // The playbook was stored with it, so its number answers too.
    assert!(listed["data"][0]["playbook_num"].is_i64(), "{listed}");

    let shown = wasp(&["executions", "show", id, "--db", db]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let stored = stdout_json(&shown);
    assert_eq!(stored["status"], "Completed");
    assert_eq!(stored["nodes"], ran["nodes"]);
    let nodes = |execution: &serde_json::Value| -> Vec<String> {
        execution["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["node"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(nodes(&stored), nodes(&ran));
    assert!(!nodes(&stored).is_empty());

    // A database that cannot be opened stops the run before it starts, naming it.
    let directory = dir.path().to_str().unwrap();
    let refused = run(&["--db", directory]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains(directory), "{}", stderr(&refused));
    assert!(refused.stdout.is_empty());
}

#[test]
fn the_other_sample_playbooks_end_as_documented() {
    let run = |name: &str| {
        let [playbook, input, assets] = sample(name);
        let output = wasp(&[
            "run", &playbook, "--input", &input, "--assets", &assets, "--output", "json",
        ]);
        (output.status.code(), stdout_json(&output))
    };
    let node = |execution: &serde_json::Value, id: &str| {
        execution["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()
            .clone()
    };

    let (code, execution) = run("ip-enrichment");
    assert_eq!(
        (code, execution["status"].as_str()),
        (Some(0), Some("Completed"))
    );
    assert_eq!(node(&execution, "classify")["iterations"], 5);
    assert_eq!(
        node(&execution, "public")["output"],
        serde_json::json!({"values": ["185.220.101.47", "8.8.8.8"]})
    );
    assert_eq!(
        node(&execution, "reputation")["output"]["results"][1]["verdict"],
        "suspicious"
    );

    let (code, execution) = run("partial-failure");
    assert_eq!(
        (code, execution["status"].as_str()),
        (Some(1), Some("Partially Failed"))
    );
    assert_eq!(
        node(&execution, "classify")["error"]["code"],
        "invalid_input"
    );
    assert_eq!(
        node(&execution, "ticket")["output"]["text"],
        "Defanged for the ticket: C2 at hxxps[://]evil[.]com/gate and 203[.]0[.]113[.]9"
    );

    let (code, execution) = run("parent-child");
    assert_eq!(
        (code, execution["status"].as_str()),
        (Some(0), Some("Completed"))
    );
    let child = &execution["children"][0];
    assert_eq!(child["parent_id"], execution["id"]);
    assert_eq!(child["playbook_id"], "ip-enrichment");
    assert_eq!(child["trigger_type"], "PLAYBOOK");
    assert_eq!(node(&execution, "enrich")["children"][0], child["id"]);
    assert_eq!(node(child, "classify")["iterations"], 4);
    assert_eq!(
        node(&execution, "summary")["output"]["text"],
        "Public IPs: [\"185.220.101.47\",\"8.8.8.8\"] flagged by the feed: 0 malicious, 1 suspicious"
    );

    let (code, execution) = run("runaway");
    assert_eq!(
        (
            code,
            execution["status"].as_str(),
            execution["message"].as_str()
        ),
        (
            Some(1),
            Some("Failed"),
            Some("the execution ran past its maximum runtime of 2s; the reaper ended it")
        )
    );
    let statuses: Vec<(&str, &str)> = execution["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("check", "Succeeded"),
            ("spin", "Killed"),
            ("report", "Killed")
        ]
    );
    assert_eq!(
        node(&execution, "check")["output"]["text"],
        "http://evil.com/payload"
    );
}

#[test]
fn a_debug_run_records_the_debug_trigger_type_and_traces() {
    let [playbook, input, assets] = sample("ip-enrichment");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run", &playbook, "--input", &input, "--assets", &assets, "--output", "json",
        ];
        args.extend(extra);
        let output = wasp(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout_json(&output)
    };
    let execution = run(&["--debug"]);
    assert_eq!(
        (&execution["trigger_type"], &execution["log_level"]),
        (&serde_json::json!("DEBUG"), &serde_json::json!("trace"))
    );
    assert_eq!(execution["trigger"]["ips"][0], "10.20.30.40");

    let execution = run(&["--log-level", "info"]);
    assert_eq!(
        (&execution["trigger_type"], &execution["log_level"]),
        (&serde_json::json!("MANUAL"), &serde_json::json!("info"))
    );
    // At INFO no trigger, input or output is captured, and each step run says so.
    assert_eq!(execution["trigger"], serde_json::Value::Null);
    assert_eq!(execution["steps"][0]["capture"]["data"], false);
    assert_eq!(execution["steps"][0]["input"], serde_json::Value::Null);
}

#[test]
fn max_runtime_on_the_command_line_lets_the_reaper_end_the_run() {
    let [playbook, input, _] = sample("phishing-triage");
    // The whole playbook takes tens of milliseconds; 1 ms ends it during its first step.
    let output = wasp(&[
        "run",
        &playbook,
        "--input",
        &input,
        "--max-runtime",
        "1ms",
        "--output",
        "text",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    // Usually during `parse`; on a loaded machine `parse` may end before the reaper's
    // kill lands, and a later step is the one killed.
    assert!(
        lines[..7].iter().any(|line| line.starts_with("■ killed")),
        "{text}"
    );
    assert!(lines[7].starts_with("Failed in "), "{text}");
    assert_eq!(
        lines[8],
        "the execution ran past its maximum runtime of 1ms; the reaper ended it"
    );
}

#[test]
fn app_new_makes_an_app_once_and_refuses_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().to_str().unwrap();
    let new = [
        "app",
        "new",
        "phish-score",
        "--lang",
        "python",
        "--dir",
        parent,
    ];
    let output = wasp(&new);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for file in ["app.py", "test_app.py", "Makefile", "README.md"] {
        assert!(
            dir.path().join("phish-score").join(file).is_file(),
            "{file}"
        );
    }
    let output = wasp(&new);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
    let output = wasp(&["app", "new", "Bad Name", "--dir", parent]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("Bad Name"), "{}", stderr(&output));
}

/// Without `--apps` or `WASP_APPS`, the apps are where the build put them: `apps` in
/// `CARGO_TARGET_DIR` when that is set, else `target/apps` under the current directory
/// (and a missing one is named).
#[test]
fn the_default_apps_directory_follows_cargo_target_dir() {
    let elsewhere = tempfile::tempdir().unwrap();
    let target_dir = example_apps_dir()
        .parent()
        .expect("the apps are in the target directory")
        .to_owned();
    let list = |target: Option<&std::ffi::OsStr>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasp"));
        command
            .args(["app", "list", "--output", "json"])
            .current_dir(elsewhere.path())
            .env("HOME", elsewhere.path())
            .env_remove("XDG_DATA_HOME")
            .env_remove("WASP_APPS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("WASP_LOG")
            .env("WASP_CACHE_DIR", cache_dir());
        if let Some(target) = target {
            command.env("CARGO_TARGET_DIR", target);
        }
        command.output().expect("wasp runs")
    };

    let found = list(Some(target_dir.as_os_str()));
    assert_eq!(found.status.code(), Some(0), "{}", stderr(&found));
    let apps = stdout_json(&found);
    let ioc_extract = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|app| app["name"] == "ioc-extract")
        .unwrap_or_else(|| panic!("no ioc-extract in {apps}"));
    let path = std::path::PathBuf::from(ioc_extract["path"].as_str().unwrap());
    assert!(path.starts_with(&target_dir), "{}", path.display());

    // Elsewhere, with no target directory that has apps, wasp finds the apps it was
    // built with (issue 23: it failed with "`target/apps` does not exist").
    for unset in [
        None,
        Some(std::ffi::OsStr::new("")),
        Some(elsewhere.path().as_os_str()),
    ] {
        let found = list(unset);
        assert_eq!(found.status.code(), Some(0), "{}", stderr(&found));
        let apps = stdout_json(&found);
        let first = std::path::PathBuf::from(apps[0]["path"].as_str().unwrap());
        assert!(first.starts_with(example_apps_dir()), "{}", first.display());
    }
    // A directory named that does not exist is said, with where wasp looks by default.
    let named = elsewhere.path().join("apps");
    let missing = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["app", "list", "--apps", named.to_str().unwrap()])
        .env("WASP_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains(&format!(
            "the apps directory `{}` does not exist (without --apps or WASP_APPS, wasp looks in `apps`",
            named.display()
        )),
        "{}",
        stderr(&missing)
    );
}

/// `wasp` with `args`, the apps of `apps` and the cache in `cache`.
fn wasp_with(apps: &std::path::Path, cache: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(args)
        .env("WASP_APPS", apps)
        .env("WASP_CACHE_DIR", cache)
        .env_remove("WASP_LOG")
        .output()
        .expect("wasp runs")
}

/// The terminal test guest: its description carries escape sequences and a forged line.
fn terminal_guest() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("WASP_GUEST_DIR")).join("wasp_test_terminal.wasm")
}

/// What no text printed for people may hold: ESC, BEL, a C1 control (CSI), or a
/// line an app started.
fn assert_inert(what: &str, text: &str) {
    assert!(
        !text.contains(['\u{1b}', '\u{7}', '\u{9b}']),
        "{what} holds a raw control character: {text:?}"
    );
    assert!(
        !text
            .lines()
            .any(|line| line.starts_with("✔ succeeded  forged")),
        "{what} holds a forged line: {text:?}"
    );
}

/// Issue 21, item 10: app text reaches the terminal escaped: an error message in
/// `wasp run --output text`, a description in `wasp app list`, a bad name in a warning.
#[test]
fn app_text_reaches_the_terminal_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = dir.path().join("hostile-text.yaml");
    std::fs::write(
        &playbook,
        r#"id: hostile-text
name: Hostile text
trigger: { type: manual }
nodes:
  boom:
    app: chaos
    action: fail
    input: { message: "${trigger.message}" }
"#,
    )
    .unwrap();
    let message =
        "done\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]52;c;ZXZpbA==\u{7}\n✔ succeeded  forged\u{9b}31m";
    let input = serde_json::json!({ "message": message }).to_string();
    let run = wasp(&[
        "run",
        playbook.to_str().unwrap(),
        "--output",
        "text",
        "--input",
        &input,
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    assert_inert("wasp run --output text", &text);
    assert!(
        text.contains(
            r"app_error: done\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\n✔ succeeded  forged\u{9b}31m"
        ),
        "{text}"
    );

    let apps = tempfile::tempdir().unwrap();
    std::fs::copy(terminal_guest(), apps.path().join("terminal.wasm")).unwrap();
    // The same component with its name overwritten by an escape sequence of the same
    // length (its name is one literal in its data).
    let mut renamed = std::fs::read(terminal_guest()).unwrap();
    let name = b"terminal-probe";
    let at = renamed
        .windows(name.len())
        .position(|w| w == name)
        .expect("the guest holds its name");
    renamed[at..at + name.len()].copy_from_slice(b"\x1b]0;pwned\x07\x1b[2J");
    std::fs::write(apps.path().join("renamed.wasm"), renamed).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let list = wasp_with(
        apps.path(),
        cache.path(),
        &["app", "list", "--output", "text"],
    );
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let table = String::from_utf8_lossy(&list.stdout);
    assert_inert("wasp app list", &table);
    assert!(
        table.contains(
            r"probe\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\n✔ succeeded  forged\u{9b}31m"
        ),
        "{table}"
    );
    let warnings = stderr(&list);
    assert_inert("the warnings of wasp app list", &warnings);
    assert!(
        warnings.contains(r"returned the app name `\x1b]0;pwned\x07\x1b[2J`"),
        "{warnings}"
    );
}

/// Issue 21, item 11: two files claiming one name are refused loudly wherever the
/// directory is loaded, `wasp serve` at start included; neither is picked.
#[test]
fn two_files_claiming_one_name_are_refused_by_every_command() {
    let apps = tempfile::tempdir().unwrap();
    let real = apps.path().join("http-request.wasm");
    let evil = apps.path().join("0-evil.wasm");
    std::fs::copy(crate::common::example_app("http-request"), &real).unwrap();
    std::fs::copy(crate::common::example_app("http-request"), &evil).unwrap();
    let warning = |path: &std::path::Path, other: &std::path::Path| {
        format!(
            "warning: skipped `{}`: describes itself as `http-request`, as `{}` does: no file \
             claiming `http-request` is used until only one does",
            path.display(),
            other.display()
        )
    };

    let list = wasp_with(
        apps.path(),
        &cache_dir(),
        &["app", "list", "--output", "json"],
    );
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    assert_eq!(stdout_json(&list), serde_json::json!([]));
    for expected in [warning(&evil, &real), warning(&real, &evil)] {
        assert!(stderr(&list).contains(&expected), "{}", stderr(&list));
    }

    let run = wasp_with(
        apps.path(),
        &cache_dir(),
        &["app", "run", "http-request", "--action", "get"],
    );
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!(
            "error: app `http-request` is claimed by 2 files in `{}`, so none is used: `{}`, `{}`",
            apps.path().display(),
            evil.display(),
            real.display()
        )),
        "{}",
        stderr(&run)
    );

    // `wasp serve` says so as it loads its apps, before it is ready.
    let playbooks = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["serve", "--addr", "127.0.0.1:0", "--playbooks"])
        .arg(playbooks.path())
        .arg("--db")
        .arg(playbooks.path().join("wasp.db"))
        .env("WASP_APPS", apps.path())
        .env("WASP_CACHE_DIR", cache_dir())
        .env_remove("WASP_LOG")
        .env_remove("WASP_API_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wasp serve starts");
    let mut before_ready = Vec::new();
    let stderr_pipe = serve.stderr.take().unwrap();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr_pipe)) {
        let line = line.unwrap();
        if line.starts_with("wasp ready: ") {
            break;
        }
        before_ready.push(line);
    }
    let _ = serve.kill();
    serve.wait().unwrap();
    for expected in [warning(&evil, &real), warning(&real, &evil)] {
        assert!(before_ready.contains(&expected), "{before_ready:#?}");
    }
}

/// Issue 21, item 11: a cache directory others can write is refused, and says so.
#[cfg(unix)]
#[test]
fn a_cache_directory_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = wasp_with(
        &example_apps_dir(),
        cache.path(),
        &["app", "list", "--output", "text"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the component cache `{}` is writable by others (mode 0777); wasp creates it \
             0700: wasp loads no compiled code from it (make it the user's own and not \
             writable by others, e.g. `chmod 700`, or name another with --cache-dir)\n",
            cache.path().display()
        )
    );
    assert!(output.stdout.is_empty());
}

/// Issue 21, item 11: a corrupted compiled entry (once a SIGTRAP) and an entry others
/// can write are refused and recompiled, never run, and wasp says so.
#[cfg(unix)]
#[test]
fn a_corrupted_or_unprotected_cache_entry_is_refused_and_recompiled() {
    use std::os::unix::fs::PermissionsExt;
    let apps = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::common::example_app("ioc-extract"),
        apps.path().join("ioc-extract.wasm"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        wasp_with(
            apps.path(),
            cache.path(),
            &[
                "app",
                "run",
                "ioc-extract",
                "--action",
                "extract",
                "--input",
                r#"{"text":"see 10.1.2[.]3"}"#,
            ],
        )
    };
    let first = run();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let entry = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("a compiled entry");

    // The middle of the compiled code overwritten with `int3` (0xcc).
    let mut compiled = std::fs::read(&entry).unwrap();
    let (from, to) = (compiled.len() / 3, compiled.len() * 2 / 3);
    compiled[from..to].fill(0xcc);
    std::fs::write(&entry, &compiled).unwrap();
    let corrupted = run();
    assert_eq!(corrupted.status.code(), Some(0), "{}", stderr(&corrupted));
    assert_eq!(
        stdout_json(&corrupted)["output"]["ipv4"],
        serde_json::json!(["10.1.2.3"])
    );
    assert!(
        stderr(&corrupted).contains(
            "cache entry refused: its content does not match its checksum (corrupted or altered); recompiling"
        ),
        "{}",
        stderr(&corrupted)
    );

    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    let unprotected = run();
    assert_eq!(
        unprotected.status.code(),
        Some(0),
        "{}",
        stderr(&unprotected)
    );
    assert!(
        stderr(&unprotected).contains(
            "cache entry refused: is writable by others (mode 0666); wasp creates it 0600; recompiling"
        ),
        "{}",
        stderr(&unprotected)
    );
    let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the entry was written anew, private");
}

// Issue 23: editors complete and check playbook files from a JSON Schema that wasp
// prints from the very types it reads them with.
#[test]
fn the_playbook_schema_in_docs_is_the_one_wasp_prints_and_fits_the_samples() {
    let output = wasp(&["schema", "playbook"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8(output.stdout).unwrap();
    let kept_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/playbook.schema.json");
    let kept = std::fs::read_to_string(kept_path).unwrap();
    assert!(
        printed == kept,
        "docs/playbook.schema.json is not what `wasp schema playbook` prints: run \
         `cargo run -- schema playbook > docs/playbook.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    let fields = |schema: &serde_json::Value| -> Vec<String> {
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let top = fields(&schema);
    let node = fields(&schema["definitions"]["NodeSpec"]);
    assert!(node.contains(&"for_each".to_owned()), "{node:?}");
    // Every field every sample uses is one the schema describes.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../example-apps/playbooks");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name == "assets.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../../docs/playbook.schema.json\n"),
            "{name} names the schema for editors"
        );
        let playbook: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        for key in playbook.as_object().unwrap().keys() {
            assert!(top.contains(key), "{name}: `{key}` is not in the schema");
        }
        for (id, spec) in playbook["nodes"].as_object().unwrap() {
            for key in spec.as_object().unwrap().keys() {
                assert!(
                    node.contains(key),
                    "{name}: node `{id}`'s `{key}` is not in the schema"
                );
            }
        }
    }
}

// Issue 23: `wasp run` printed nothing until the end, and Ctrl-C exited with no output
// and stored nothing, even with --db.
#[test]
fn a_run_shows_its_nodes_as_they_go_and_ctrl_c_stores_it_killed_with_what_ran() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasp.db");
    let [playbook, input, _] = sample("runaway");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["run", &playbook, "--input", &input, "--max-runtime", "60s"])
        .args([
            "--progress",
            "--output",
            "json",
            "--db",
            db.to_str().unwrap(),
        ])
        .env("WASP_APPS", example_apps_dir())
        .env("WASP_CACHE_DIR", cache_dir())
        .env_remove("WASP_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its progress: read until the spinning node has started.
    let (lines, printed) = std::sync::mpsc::channel();
    let errors = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(errors).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("◌ spin")) {
        let line = printed
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no progress: {seen:?}"));
        seen.push(line);
    }
    assert!(
        seen.iter().any(|l| l.starts_with("  ✔ check  ")),
        "the first node's end is shown as it ends: {seen:?}"
    );
    // Ctrl-C.
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let rest: Vec<String> = printed.try_iter().collect();
    assert_eq!(output.status.code(), Some(1), "{rest:?}");
    let execution = stdout_json(&output);
    assert_eq!(execution["status"], "Killed", "{execution}");
    let nodes = execution["nodes"].as_array().unwrap();
    let status = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap()["status"].clone();
    assert_eq!(status("check"), "Succeeded");
    assert_eq!(status("spin"), "Killed");
    assert!(
        rest.iter()
            .any(|l| l.contains("interrupted: killing the execution")),
        "{rest:?}"
    );
    // It is stored, killed, with what ran.
    let id = execution["id"].as_str().unwrap();
    let shown = wasp(&["executions", "show", id, "--db", db.to_str().unwrap()]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let stored = stdout_json(&shown);
    assert_eq!(stored["status"], "Killed");
    assert_eq!(
        stored["nodes"][0]["output"]["text"],
        "http://evil.com/payload"
    );
}

// Issue 23: from any folder but the checkout every command failed ("`target/apps` does
// not exist"), and installing an app was a manual copy of a `.wasm`.
#[test]
fn apps_are_installed_into_the_users_directory_and_found_from_any_folder() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wasp"))
            .args(args)
            .current_dir(elsewhere.path())
            .env("HOME", home.path())
            .env("WASP_CACHE_DIR", cache_dir())
            .env_remove("XDG_DATA_HOME")
            .env_remove("WASP_APPS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("WASP_LOG")
            .output()
            .unwrap()
    };
    let component = example_apps_dir().join("ioc-extract.wasm");
    let output = run(&["app", "install", component.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let installed = home.path().join(".local/share/wasp/apps/ioc-extract.wasm");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&component).unwrap()
    );
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        said.starts_with("installed `ioc-extract` 0.1.0 (3 actions) as "),
        "{said}"
    );

    // From a folder that is not a checkout, the user's apps are the ones found.
    let output = run(&["app", "list", "--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let names: Vec<String> = stdout_json(&output)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["ioc-extract"]);
    let output = run(&[
        "app",
        "run",
        "ioc-extract",
        "--action",
        "refang",
        "--input",
        r#"{"text": "evil[.]com"}"#,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // The same name again is refused, unless --force; what is not a component is refused
    // with the reason, and nothing is copied.
    let output = run(&["app", "install", component.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("an app `ioc-extract` is installed"),
        "{}",
        stderr(&output)
    );
    let output = run(&["app", "install", "--force", component.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let bogus = elsewhere.path().join("bogus.wasm");
    std::fs::write(&bogus, b"not a component").unwrap();
    let output = run(&["app", "install", bogus.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is not an app wasp can run"),
        "{}",
        stderr(&output)
    );
    let files = std::fs::read_dir(home.path().join(".local/share/wasp/apps"))
        .unwrap()
        .count();
    assert_eq!(files, 1);
}

// Issue 23: no colour at a terminal, yet ANSI codes in a redirected server log.
#[test]
fn colour_only_at_a_terminal_and_never_with_no_color_or_in_a_redirected_log() {
    let [playbook, input, _] = sample("partial-failure");
    let at_a_terminal = |no_color: bool| {
        // `script` runs wasp with a terminal of its own.
        let line = format!(
            "{} run {playbook} --input {input} --output text",
            env!("CARGO_BIN_EXE_wasp")
        );
        let mut command = Command::new("script");
        command
            .args(["-qec", &line, "/dev/null"])
            .env("WASP_APPS", example_apps_dir())
            .env("WASP_CACHE_DIR", cache_dir())
            .env_remove("WASP_LOG");
        if no_color {
            command.env("NO_COLOR", "1");
        } else {
            command.env_remove("NO_COLOR");
        }
        let output = command.output().expect("script runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let coloured = at_a_terminal(false);
    assert!(
        coloured.contains("\x1b[32m✔ succeeded\x1b[0m  defang"),
        "{coloured:?}"
    );
    assert!(
        coloured.contains("\x1b[31m✘ failed   \x1b[0m  classify"),
        "{coloured:?}"
    );
    let plain = at_a_terminal(true);
    assert!(plain.contains("✔ succeeded  defang"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "{plain:?}");

    let logged = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["app", "describe", "ioc-extract"])
        .env("WASP_APPS", example_apps_dir())
        .env("WASP_CACHE_DIR", cache_dir())
        .env("WASP_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let log = stderr(&logged);
    assert!(log.contains("DEBUG"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
}

// Issue 23: shell completions and a manual page, from the same definition as the
// commands themselves.
#[test]
fn shells_complete_wasp_and_man_reads_its_page() {
    let bash = wasp(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0), "{}", stderr(&bash));
    let script = String::from_utf8(bash.stdout).unwrap();
    // Bash itself loads it, and completes a subcommand.
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{script}\nCOMP_WORDS=(wasp exe); COMP_CWORD=1; COMP_LINE='wasp exe'; COMP_POINT=8; \
             _wasp wasp exe wasp; echo \"${{COMPREPLY[@]}}\""
        ))
        .output()
        .unwrap();
    assert_eq!(loaded.status.code(), Some(0), "{}", stderr(&loaded));
    assert_eq!(String::from_utf8_lossy(&loaded.stdout).trim(), "executions");
    for (shell, mark) in [("zsh", "#compdef wasp"), ("fish", "complete -c wasp")] {
        let output = wasp(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains(mark),
            "{shell}"
        );
    }

    let page = wasp(&["man"]);
    assert_eq!(page.status.code(), Some(0), "{}", stderr(&page));
    let page = String::from_utf8(page.stdout).unwrap();
    assert!(page.contains(".TH wasp 1"), "{page}");
    assert!(page.contains("validate"), "the commands are listed: {page}");
    let dir = tempfile::tempdir().unwrap();
    let output = wasp(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(dir.path().join("wasp-run.1").is_file());
    assert!(dir.path().join("wasp-app-install.1").is_file());
}

// Issue 23: `app describe` printed 189–355 lines of raw schema and `executions` only
// JSON; every command that prints records takes `--output text|json`.
#[test]
fn records_print_as_text_for_people_and_json_for_scripts() {
    let described = wasp(&["app", "describe", "ioc-extract", "--output", "text"]);
    assert_eq!(described.status.code(), Some(0), "{}", stderr(&described));
    let text = String::from_utf8(described.stdout).unwrap();
    assert!(text.starts_with("ioc-extract 0.1.0 — "), "{text}");
    assert!(text.contains("\n  extract: "), "{text}");
    assert!(
        text.contains("    input:  text (string, required)\n"),
        "{text}"
    );
    assert!(
        text.lines().count() < 20,
        "a summary, not the schemas: {text}"
    );
    // Piped, with no --output, it is JSON, as before.
    assert_eq!(
        stdout_json(&wasp(&["app", "describe", "ioc-extract"]))["name"],
        "ioc-extract"
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasp.db");
    let db = db.to_str().unwrap();
    let [playbook, input, _] = sample("partial-failure");
    let ran = wasp(&[
        "run", &playbook, "--input", &input, "--db", db, "--output", "json",
    ]);
    let id = stdout_json(&ran)["id"].as_str().unwrap().to_owned();
    let listed = wasp(&["executions", "list", "--db", db, "--output", "text"]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let text = String::from_utf8(listed.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NUM    ID"), "{text}");
    assert!(
        lines[1].starts_with(&format!("1      {id}  Partially Failed  partial-failure")),
        "{text}"
    );
    assert_eq!(lines[2], "(1 of 1)");
    let shown = wasp(&["executions", "show", &id, "--db", db, "--output", "text"]);
    let text = String::from_utf8(shown.stdout).unwrap();
    assert!(
        text.starts_with(&format!("execution {id} of playbook `partial-failure`")),
        "{text}"
    );
    assert!(text.contains("\n  ✘ failed     classify "), "{text}");
    assert!(text.contains("\nPartially Failed in "), "{text}");
    assert!(
        text.contains("\noutput: {\"category\":\"unknown\""),
        "{text}"
    );
    assert_eq!(
        stdout_json(&wasp(&["executions", "show", &id, "--db", db]))["status"],
        "Partially Failed"
    );
}
