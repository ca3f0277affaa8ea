//! Playbook files: validation against the real example apps, every problem listed at
//! once, and the graph exports.

use std::path::PathBuf;
use std::sync::Arc;

use wasp_runtime::engine::{self, Start};
use wasp_runtime::host::Registry;
use wasp_runtime::playbook::{AppInfo, Catalog, Known, Playbook, PlaybookSpec};
use wasp_runtime::runner::HostRunner;
use wasp_runtime::trace::{ExecutionStatus, NodeStatus};

use crate::common::{HOST, example_apps_dir, generated};

struct Apps {
    registry: Registry,
    playbooks: Vec<&'static str>,
}

impl Catalog for Apps {
    fn app(&self, name: &str) -> Option<&AppInfo> {
        self.registry.get(name).map(|app| &app.info)
    }

    fn has_playbook(&self, id: &str) -> bool {
        self.playbooks.contains(&id)
    }
}

async fn apps() -> Apps {
    Apps {
        registry: Registry::scan(&HOST, &example_apps_dir())
            .await
            .expect("the example apps load"),
        playbooks: vec!["enrich-ip"],
    }
}

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../example-apps/playbooks")
        .join(name)
}

#[tokio::test]
async fn the_phishing_triage_sample_validates_into_a_dag() {
    let playbook = Playbook::load(&sample("phishing-triage.yaml"), &apps().await).unwrap();
    assert_eq!(playbook.id, "phishing-triage");
    assert_eq!(
        playbook.graph.node_count(),
        8,
        "seven nodes and the trigger"
    );
    assert_eq!(playbook.node("lookup").unwrap().retry.unwrap().attempts, 3);
    assert_eq!(
        playbook.mermaid(),
        "flowchart LR
  n_trigger[\"trigger\"]
  n_parse[\"parse: email-parse parse\"]
  n_iocs[\"iocs: ioc-extract extract\"]
  n_lookup[\"lookup: indicator-lookup lookup (for each)\"]
  n_malicious[\"malicious: if-else evaluate\"]
  n_spoofing[\"spoofing: switch route\"]
  n_block-list[\"block-list: transform select\"]
  n_lookup-failed[\"lookup-failed: transform count\"]
  n_parse --> n_iocs
  n_iocs --> n_lookup
  n_lookup --> n_malicious
  n_parse --> n_spoofing
  n_malicious -- true --> n_block-list
  n_lookup -- failure --> n_lookup-failed
  n_trigger --> n_parse
"
    );
    assert!(
        playbook
            .dot()
            .contains("  \"malicious\" -> \"block-list\" [label=\"true\"];\n")
    );
}

/// Only a node bound to an asset (network access, secrets) or one running another
/// playbook can act outside wasp; the server orders its writes by this.
#[tokio::test]
async fn a_playbook_reaches_out_through_an_asset_or_another_playbook() {
    let apps = Apps {
        playbooks: vec!["ip-enrichment"],
        ..apps().await
    };
    let reaches = |file: &str| Playbook::load(&sample(file), &apps).unwrap().reaches_out();
    assert!(reaches("phishing-triage.yaml"), "its lookup binds soc-feed");
    assert!(reaches("parent-child.yaml"), "it runs ip-enrichment");
    assert!(!reaches("runaway.yaml"));
    assert!(!reaches("partial-failure.yaml"));
}

const BROKEN: &str = r#"
id: broken
name: Broken on purpose
log_level: verbose
max_runtime: soon
nodes:
  parse: { app: email-parse, input: { raw: "${trigger.email}" } }
  again: { app: email-parse, input: { raw: "${later.output.x}" } }
  later: { app: ioc-extract, action: extract, input: { text: "${parse.output.text_body}" } }
  guess: { app: ioc-extract, input: { text: x } }
  nope: { app: no-such-app }
  wrong: { app: ioc-extract, action: explode }
  route: { operator: if-else, input: { left: 1, op: eq, right: 1 } }
  plain: { operator: ioc-extract, action: extract }
  loop-a: { app: transform, action: count, timeout: forever, input: { items: "${item}" } }
  loop-b: { app: transform, action: count }
  child: { playbook: missing-playbook }
  trigger: { app: transform, action: count }
edges:
  - parse -> later
  - { from: route, to: guess, on: maybe }
  - { from: parse, to: guess, on: "true" }
  - loop-a -> loop-b
  - loop-b -> loop-a
  - parse -> ghost
  - parse to later
"#;

#[tokio::test]
async fn every_problem_is_listed_at_once_with_node_and_field() {
    let spec = PlaybookSpec::parse("broken.yaml", BROKEN).unwrap();
    let error = Playbook::validate("broken.yaml", spec, &apps().await).unwrap_err();
    assert_eq!(
        error.to_string(),
        "`broken.yaml` has 16 problems:
  - `log_level`: `verbose` is not a log level; expected one of trace, debug, info, warn, error
  - `max_runtime`: `soon` is not a duration like `30s` or `500ms`: expected number at 0
  - `trigger`: the playbook has no trigger; add `trigger: { type: manual }`
  - node `guess`, `action`: app `ioc-extract` has several actions; name one of extract, defang, refang
  - node `nope`, `app`: there is no app `no-such-app`
  - node `wrong`, `action`: app `ioc-extract` has no action `explode`; it offers extract, defang, refang
  - node `plain`, `operator`: `ioc-extract` extract takes no pathways; use `app:` for it
  - node `loop-a`, `timeout`: `forever` is not a duration like `30s` or `500ms`: expected number at 0
  - node `loop-a`, `input`: uses `${item}` but the node has no `for_each`
  - node `child`, `playbook`: there is no playbook `missing-playbook`
  - node `trigger`: `trigger` is reserved; choose another id
  - `edges[5]`: `parse -> ghost` names `ghost`, which is not a node
  - `edges[6]`: `parse to later` is not an edge; write `from -> to`
  - `edges`: the edges form a cycle through `loop-a`, `loop-b`
  - node `again`, `input`: `${later.output.x}`: `later.output` has no field `x` (the output of ioc-extract `extract`)
  - node `loop-b`, `input`: transform `count` requires `items`, which is missing"
    );
}

#[tokio::test]
async fn references_must_be_upstream_and_pathways_offered() {
    let text = r#"
id: refs
name: References
trigger: { type: manual }
nodes:
  parse: { app: email-parse, input: { raw: "${trigger.email}" } }
  early: { app: ioc-extract, action: extract, input: { text: "${late.output.text} ${ghost.output}" } }
  late: { app: ioc-extract, action: refang, input: { text: "${parse.output.subject}" } }
  route: { operator: if-else, input: { left: 1, op: eq, right: 1 } }
  after: { app: ioc-extract, action: refang, input: { text: x } }
  loose: { app: ioc-extract, action: refang, input: { text: x } }
edges:
  - parse -> late
  - parse -> early
  - { from: route, to: after, on: maybe }
  - { from: parse, to: loose, on: "true" }
"#;
    let spec = PlaybookSpec::parse("refs.yaml", text).unwrap();
    let error = Playbook::validate("refs.yaml", spec, &apps().await).unwrap_err();
    assert_eq!(
        error.to_string(),
        "`refs.yaml` has 4 problems:
  - `edges[2]`: `route` (if-else evaluate) has no pathway `maybe`; it offers true, false
  - `edges[3]`: `parse` is not an operator and takes no pathways; `on` is success, failure or always
  - node `early`, `input`: `${late.output.text}` reads `late`, which is not upstream of `early`
  - node `early`, `input`: `${ghost.output}` reads `ghost`, which is not a node"
    );
}

// Issue 23: a node named `end` broke the Mermaid export (Mermaid reads `end` as the
// end of a subgraph).
#[tokio::test]
async fn a_node_named_end_is_drawn_by_mermaid() {
    let text = "id: e\nname: E\ntrigger: { type: manual }\nnodes:\n  \
                start: { app: ioc-extract, action: refang, input: { text: x } }\n  \
                end: { app: ioc-extract, action: refang, input: { text: x } }\n\
                edges:\n  - start -> end\n";
    let spec = PlaybookSpec::parse("end.yaml", text).unwrap();
    let playbook = Playbook::validate("end.yaml", spec, &apps().await).unwrap();
    let mermaid = playbook.mermaid();
    assert!(mermaid.contains("  n_start --> n_end\n"), "{mermaid}");
    assert!(
        !mermaid
            .lines()
            .any(|line| line.split_whitespace().any(|word| word == "end")),
        "{mermaid}"
    );
}

// Issue 23: a field name the app does not take, an output path its schema does not
// have and an asset that does not exist passed validation and failed only at run time.
#[tokio::test]
async fn inputs_output_paths_and_assets_are_checked_against_the_apps_contracts() {
    let text = r#"
id: contracts
name: Contracts
trigger: { type: manual }
nodes:
  iocs: { app: ioc-extract, action: extract, input: { txt: "${trigger.body}" } }
  refang: { app: ioc-extract, action: refang, input: { text: 42, extra: 1 } }
  lookup:
    app: indicator-lookup
    action: lookup
    input: { indicator: "${iocs.output.ipv44[0]}", type: "${trigger.kind}" }
    asset: soc-fed
  classify: { app: ip-classify, input: { ip: "${iocs.output.count.value}" }, asset: soc-feed }
  fine:
    app: ioc-extract
    action: refang
    input: { text: "${iocs.output.ipv4[0]} ${iocs.output.count} ${lookup.output.verdict ?? \"none\"} ${trigger.anything.at.all}" }
  many: { app: indicator-lookup, action: lookup_many, input: { indicators: [ "a", 2 ] } }
  whole: { app: ip-classify, input: "${trigger}", asset: corp-networks }
  each:
    app: indicator-lookup
    action: lookup
    for_each: "${iocs.output.domains}"
    input: { indicator: "${item}" }
  scores: { app: transform, action: count, input: { items: "${each.output[*].score}" } }
  flat: { app: transform, action: count, input: { items: "${each.output.score}" } }
edges:
  - iocs -> lookup
  - iocs -> classify
  - lookup -> fine
  - iocs -> fine
  - iocs -> each
  - each -> scores
  - each -> flat
"#;
    let apps = apps().await;
    let assets = [
        ("soc-feed".to_owned(), "indicator-lookup".to_owned()),
        ("corp-networks".to_owned(), "ip-classify".to_owned()),
    ];
    let catalog = Known {
        apps: &apps.registry,
        playbooks: &[],
        assets: Some(&assets),
    };
    let spec = PlaybookSpec::parse("contracts.yaml", text).unwrap();
    let error = Playbook::validate("contracts.yaml", spec, &catalog).unwrap_err();
    assert_eq!(
        error.to_string(),
        "`contracts.yaml` has 9 problems:
  - node `iocs`, `input.txt`: ioc-extract `extract` takes no field `txt`; did you mean `text`?
  - node `refang`, `input.extra`: ioc-extract `refang` takes no field `extra`; its fields are `text`
  - node `refang`, `input.text`: is an integer, but ioc-extract `refang` takes a string there
  - node `lookup`, `asset`: there is no asset `soc-fed`; did you mean `soc-feed`?
  - node `lookup`, `input`: `${iocs.output.ipv44[0]}`: `iocs.output` has no field `ipv44` (the output of ioc-extract `extract`); did you mean `ipv4`?
  - node `classify`, `asset`: asset `soc-feed` configures the app `indicator-lookup`, not `ip-classify`
  - node `classify`, `input`: `${iocs.output.count.value}`: `iocs.output.count` has no field `value` (the output of ioc-extract `extract`)
  - node `many`, `input.indicators[1]`: is an integer, but indicator-lookup `lookup_many` takes a string there
  - node `flat`, `input`: `${each.output.score}`: `each` runs for each item, so its output is a list of indicator-lookup `lookup` outputs: read `${each.output[*].score}` or `${each.output[0].score}`"
    );

    // Where assets are not known (a server validating what a client sends), the
    // bindings are left to the run; the schemas are still checked.
    let catalog = Known {
        apps: &apps.registry,
        playbooks: &[],
        assets: None,
    };
    let spec = PlaybookSpec::parse("contracts.yaml", text).unwrap();
    let error = Playbook::validate("contracts.yaml", spec, &catalog).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("`contracts.yaml` has 7 problems"),
        "{error}"
    );
}

// Issue 23: the status a webhook caller gets with the result is the playbook's to
// choose, and checked as the result is.
#[tokio::test]
async fn an_output_status_is_an_http_status_over_what_the_result_may_read() {
    let apps = apps().await;
    let problems = |extra: &str| {
        let text = format!(
            "id: s\nname: S\ntrigger: {{ type: webhook }}\nnodes:\n  \
             iocs: {{ app: ioc-extract, action: extract, input: {{ text: x }} }}\n{extra}"
        );
        let spec = PlaybookSpec::parse("s.yaml", &text).unwrap();
        match Playbook::validate("s.yaml", spec, &apps) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(
        problems("output: { n: \"${iocs.output.count}\" }\noutput_status: 201"),
        ""
    );
    assert_eq!(
        problems("output: { n: 1 }\noutput_status: \"${iocs.output.code ?? 200}\""),
        ""
    );
    assert_eq!(
        problems("output: { n: 1 }\noutput_status: 700"),
        "`s.yaml` has 1 problem:\n  - `output_status`: is 700; an HTTP status here is 200 to 599"
    );
    assert_eq!(
        problems("output: { n: 1 }\noutput_status: created"),
        "`s.yaml` has 1 problem:\n  - `output_status`: is `created`; an HTTP status here is 200 to 599"
    );
    assert_eq!(problems("output: { n: 1 }\noutput_status: \"201\""), "");
    assert_eq!(
        problems("output_status: 200"),
        "`s.yaml` has 1 problem:\n  - `output_status`: is the status to answer the `output:` \
         with, and there is no `output:`"
    );
    assert_eq!(
        problems("output: { n: 1 }\noutput_status: \"${iocs.output.cod}\""),
        "`s.yaml` has 1 problem:\n  - `output_status`: `${iocs.output.cod}`: `iocs.output` has \
         no field `cod` (the output of ioc-extract `extract`)"
    );
}

// Issue 21: `timeout: 500000000000y` was taken, then panicked ("overflow when adding
// duration to instant") at run time; `memory: 1EiB` was taken too.
#[tokio::test]
async fn durations_and_sizes_past_their_bounds_are_refused_naming_the_field() {
    let text = r#"
id: huge
name: Huge
max_runtime: 500000000000y
trigger: { type: timer, every: 2y }
nodes:
  spin: { app: chaos, action: spin, timeout: 500000000000y, memory: 1EiB, retry: { attempts: 2, backoff: 400d } }
"#;
    let spec = PlaybookSpec::parse("huge.yaml", text).unwrap();
    let error = Playbook::validate("huge.yaml", spec, &apps().await).unwrap_err();
    assert_eq!(
        error.to_string(),
        "`huge.yaml` has 5 problems:
  - `max_runtime`: `500000000000y` is longer than 365 days, the longest duration wasp accepts
  - `trigger.every`: `2y` is longer than 365 days, the longest duration wasp accepts
  - node `spin`, `timeout`: `500000000000y` is longer than 365 days, the longest duration wasp accepts
  - node `spin`, `retry.backoff`: `400d` is longer than 365 days, the longest duration wasp accepts
  - node `spin`, `memory`: `1EiB` is more than 4.0 GiB, the largest size wasp accepts"
    );
}

#[test]
fn a_deeply_nested_file_is_refused_without_recursing_into_it() {
    for (file, text) in [
        (
            "deep.yaml",
            format!(
                "id: x\nname: y\nnodes:\n  a:\n    app: x\n    input: {}\n",
                "[".repeat(100_000)
            ),
        ),
        (
            "deep.json",
            format!(
                r#"{{"id": "x", "name": "y", "nodes": {{"a": {{"app": "x", "input": {}"#,
                "[".repeat(100_000)
            ),
        ),
    ] {
        let text = text.clone();
        let error = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || PlaybookSpec::parse(file, &text).unwrap_err().to_string())
            .unwrap()
            .join()
            .expect("parsing must not overflow the stack");
        assert!(
            error.starts_with(&format!("`{file}` is not a valid playbook: ")),
            "{error}"
        );
        assert!(
            error.contains("depth") || error.contains("recursion"),
            "{error}"
        );
    }
}

#[test]
fn unknown_fields_and_bad_yaml_are_refused_with_their_position() {
    let error = PlaybookSpec::parse("typo.yaml", "id: x\nname: y\nnodes: {}\nmax_runtme: 5s\n")
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("`typo.yaml` is not a valid playbook: "),
        "{error}"
    );
    assert!(error.to_string().contains("max_runtme"), "{error}");
    let error = PlaybookSpec::parse(
        "typo.json",
        r#"{"id": "x", "name": "y", "nodes": {}, "edgs": []}"#,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("unknown field `edgs`") && error.to_string().contains("line 1"),
        "{error}"
    );
}

#[tokio::test]
async fn the_reaper_ends_an_execution_whose_step_spins_in_a_tight_loop() {
    let mut catalog = apps().await;
    catalog.registry.add(crate::common::hostile().await);
    let text = r#"
id: runaway
name: Runaway
log_level: debug
max_runtime: 300ms
trigger: { type: manual }
nodes:
  first: { app: ioc-extract, action: refang, input: { text: "evil[.]com" } }
  spin: { app: hostile, action: spin, timeout: 1h }
  never: { app: ioc-extract, action: refang, input: { text: x } }
edges:
  - first -> spin
  - spin -> never
"#;
    let playbook = Playbook::validate(
        "runaway.yaml",
        PlaybookSpec::parse("runaway.yaml", text).unwrap(),
        &catalog,
    )
    .unwrap();
    let runner = Arc::new(HostRunner::new(
        HOST.clone(),
        Arc::new(catalog.registry),
        Arc::default(),
    ));
    let execution = engine::execute(
        runner,
        Arc::new(playbook),
        Start::new(serde_json::json!({})),
    )
    .await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(
        execution.message.as_deref(),
        Some("the execution ran past its maximum runtime of 300ms; the reaper ended it")
    );
    let statuses: Vec<(&str, NodeStatus)> = execution
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("first", NodeStatus::Succeeded),
            ("spin", NodeStatus::Killed),
            ("never", NodeStatus::Killed)
        ]
    );
    assert_eq!(
        execution.node("first").unwrap().output,
        Some(serde_json::json!({"text": "evil.com"}))
    );
    assert_eq!(
        execution
            .node("spin")
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .message,
        "the step was killed"
    );
}

/// Validate `text` on a thread with a small stack (256 KiB, an eighth of a Tokio
/// worker's): validation must not recurse with the size of the graph.
fn validate_on_a_small_stack(apps: Arc<Apps>, text: String) -> Result<Playbook, String> {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let spec = PlaybookSpec::parse("generated.json", &text).map_err(|e| e.to_string())?;
            Playbook::validate("generated.json", spec, &*apps).map_err(|e| e.to_string())
        })
        .expect("a thread starts")
        .join()
        .expect("validation must not overflow the stack")
}

// Issue 21: a 4,000-node chain overflowed the stack of the thread that validated it
// (a recursive cycle search), and checking references was quadratic.
#[tokio::test]
async fn a_chain_and_a_fan_out_at_the_node_bound_validate() {
    let apps = Arc::new(apps().await);
    let count = wasp_runtime::playbook::MAX_NODES;
    let chain = validate_on_a_small_stack(Arc::clone(&apps), generated(count, true)).unwrap();
    assert_eq!(chain.graph.node_count(), count + 1);
    assert_eq!(chain.graph.edge_count(), count);
    let fan = validate_on_a_small_stack(Arc::clone(&apps), generated(count, false)).unwrap();
    assert_eq!(
        fan.graph.edge_count(),
        count,
        "every node hangs off the trigger"
    );

    // A reference to a node that is not upstream is still found in a long chain.
    let wrong = generated(count, true).replace("${n10.output}", "${n4000.output}");
    let error = validate_on_a_small_stack(Arc::clone(&apps), wrong).unwrap_err();
    assert!(
        error.contains(
            "node `n11`, `input`: `${n4000.output}` reads `n4000`, which is not upstream of `n11`"
        ),
        "{error}"
    );
    // And a cycle closing the whole chain is named, without recursing along it.
    let cycle = generated(count, true).replace(r#""edges":["#, r#""edges":["n4999 -> n0","#);
    let error = validate_on_a_small_stack(apps, cycle).unwrap_err();
    assert!(
        error.contains("the edges form a cycle through `n0`, `n1`, "),
        "{}",
        &error[..200.min(error.len())]
    );
}

#[tokio::test]
async fn a_playbook_past_the_node_or_edge_bound_is_refused_naming_it() {
    let apps = Arc::new(apps().await);
    let error = validate_on_a_small_stack(Arc::clone(&apps), generated(100_000, true)).unwrap_err();
    assert_eq!(
        error,
        "`generated.json` has 2 problems:\n  - `nodes`: the playbook has 100000 nodes; at most 5000 are allowed\n  - `edges`: the playbook has 99999 edges; at most 20000 are allowed"
    );
    let error = validate_on_a_small_stack(apps, generated(100_000, false)).unwrap_err();
    assert!(
        error.contains("the playbook has 100000 nodes; at most 5000 are allowed"),
        "{error}"
    );
}
