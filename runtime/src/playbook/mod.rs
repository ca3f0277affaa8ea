//! Playbooks: the file (YAML or JSON), its validation into a petgraph DAG, and the
//! input templates.
//!
//! [`PlaybookSpec`] is the file as written; [`Playbook`] is a checked DAG that cannot be
//! invalid again. Validation reports every problem at once, each naming the file, the
//! node and the field, so that an author fixes a playbook in one pass.

pub mod catalog;
mod contract;
mod spec;
pub mod template;
pub mod trigger;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use fixedbitset::FixedBitSet;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde_json::Value;

pub use catalog::{ActionInfo, AppInfo, Apps, AssetLookup, Catalog, Known};
pub use spec::{EdgeSpec, LongEdge, NodeSpec, PlaybookSpec, RetrySpec, TriggerSpec, file_schema};
use template::{Reference, Root, Template};

use crate::trace::LogLevel;

/// The id of the trigger node every playbook has.
pub const TRIGGER: &str = "trigger";
/// Names a node may not take: they mean something in `${…}` references.
const RESERVED: [&str; 5] = [TRIGGER, "item", "item_index", "execution", "playbook"];
/// An execution's maximum runtime when the playbook sets none.
pub const DEFAULT_MAX_RUNTIME: Duration = Duration::from_secs(300);
/// Steps running at once in one execution when the playbook sets no limit.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The most nodes a playbook may have. Real playbooks have tens; the bound keeps the
/// work and memory of validating one request (and of running it) small: a client
/// cannot make the server walk a graph of a million nodes.
pub const MAX_NODES: usize = 5_000;
/// The most edges a playbook may have: four per node on average at [`MAX_NODES`].
pub const MAX_EDGES: usize = 20_000;
/// The longest duration a playbook, an asset or a flag may name (a timeout, a
/// `max_runtime`, a timer's interval): a year. Longer ones mean nothing here and would
/// overflow the clock's arithmetic when a deadline is computed from them.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The largest size a playbook, an asset or a flag may name (a memory limit, a
/// response cap): 4 GiB, the most a 32-bit WebAssembly memory can address.
pub const MAX_SIZE: u64 = 4 << 30;

/// One thing wrong with a playbook.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The node, if the problem is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The field, e.g. `input`, `edges[2]`, `max_runtime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, &self.field) {
            (Some(node), Some(field)) => write!(f, "node `{node}`, `{field}`: {}", self.message),
            (Some(node), None) => write!(f, "node `{node}`: {}", self.message),
            (None, Some(field)) => write!(f, "`{field}`: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// A playbook that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read `{file}`: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a playbook in shape (syntax, unknown field, wrong type).
    #[error("`{file}` is not a valid playbook: {source}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's error (JSON's or YAML's), with its position.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The playbook is well-formed but wrong: every problem is listed.
    #[error("`{file}` has {} problem{}:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" },
            problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        file: String,
        /// The problems, in file order.
        problems: Vec<Problem>,
    },
}

impl Error {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            Error::Read { file, .. } | Error::Parse { file, .. } | Error::Invalid { file, .. } => {
                file
            }
        }
    }

    /// Every problem: an invalid playbook's, or the one that kept the file from being
    /// read or parsed.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Error::Invalid { problems, .. } => problems.clone(),
            Error::Read { source, .. } => vec![Problem {
                node: None,
                field: None,
                message: format!("cannot read it: {source}"),
            }],
            Error::Parse { source, .. } => vec![Problem {
                node: None,
                field: None,
                message: format!("not a valid playbook: {source}"),
            }],
        }
    }
}

/// What kind of node, and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// The trigger: its output is the trigger payload.
    Trigger,
    /// An app's action.
    App {
        /// The app.
        app: String,
        /// The action.
        action: String,
    },
    /// An operator's action, which takes a pathway.
    Operator {
        /// The operator app.
        app: String,
        /// The action.
        action: String,
    },
    /// Another playbook, run as a child execution.
    Playbook {
        /// Its id.
        id: String,
    },
}

/// A retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt, doubled for each later one.
    pub backoff: Duration,
}

/// A checked node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its id.
    pub id: String,
    /// What it runs.
    pub kind: NodeKind,
    /// Its input.
    pub input: Template,
    /// The array it iterates over.
    pub for_each: Option<Reference>,
    /// Iterations running at once.
    pub concurrency: Option<usize>,
    /// The step's wall-clock limit.
    pub timeout: Option<Duration>,
    /// The step's memory limit, in bytes.
    pub memory: Option<usize>,
    /// Its retry policy.
    pub retry: Option<Retry>,
    /// Whether a failure lets the execution go on.
    pub continue_on_error: bool,
    /// The asset it binds.
    pub asset: Option<String>,
}

/// When an edge is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum On {
    /// The source succeeded (and, for an operator, whatever pathway it took).
    Success,
    /// The source failed.
    Failure,
    /// The source ended, either way.
    Always,
    /// The source, an operator, took this pathway.
    Pathway(String),
}

impl fmt::Display for On {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            On::Success => f.write_str("success"),
            On::Failure => f.write_str("failure"),
            On::Always => f.write_str("always"),
            On::Pathway(p) => f.write_str(p),
        }
    }
}

/// What a playbook's record says about it beyond its graph (seed 003's fields).
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// The incident-response phase it serves.
    pub category: Option<String>,
    /// Who owns it.
    pub owner_id: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// MITRE ATT&CK tactic ids.
    pub mitre_tactics: Vec<String>,
    /// MITRE ATT&CK technique ids.
    pub mitre_techniques: Vec<String>,
    /// Assets that must be configured before it may run.
    pub required_connector_ids: Vec<String>,
}

/// A checked playbook: a DAG whose first node is the trigger.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// The XID.
    pub id: String,
    /// The name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The level its executions record at.
    pub log_level: LogLevel,
    /// The reaper's limit.
    pub max_runtime: Duration,
    /// Steps running at once in one execution.
    pub concurrency: usize,
    /// What starts it.
    pub trigger: trigger::Trigger,
    /// The conditions an event must satisfy to fire it.
    pub conditions: trigger::Conditions,
    /// Whether it may run.
    pub enabled: bool,
    /// Whether matching events fire it.
    pub auto_execute: bool,
    /// Executions running at once, when limited.
    pub max_concurrent: Option<usize>,
    /// The record's descriptive fields (category, tags, MITRE ids).
    pub labels: Labels,
    /// The execution's result, when it declares one (`output:`): rendered when the
    /// execution ends, over every node's output.
    pub output: Option<Template>,
    /// The HTTP status to answer the result with (`output_status:`), when it declares
    /// one.
    pub output_status: Option<Template>,
    /// The DAG: nodes and the edges between them.
    pub graph: DiGraph<Node, On>,
    /// The tenant it belongs to (a file's playbooks are the default tenant's; one made
    /// through the API is its maker's). Its executions are that tenant's, and its nodes
    /// bind only that tenant's assets and run only that tenant's playbooks.
    pub tenant: String,
    /// The application it was made for, when one was (seed 003's `app_id`): its nodes
    /// run only that application's playbooks.
    pub app: Option<String>,
    index: HashMap<String, NodeIndex>,
}

impl Playbook {
    /// Whether its `playbook:` nodes may run `child`: one of its tenant, and of its
    /// application when it was made for one.
    pub fn may_call(&self, child: &Playbook) -> bool {
        crate::trace::within_reach(
            (&self.tenant, self.app.as_deref()),
            (&child.tenant, child.app.as_deref()),
        )
    }

    /// Read and validate the playbook file at `path` (`.yaml`, `.yml` or `.json`).
    pub fn load(path: &Path, catalog: &dyn Catalog) -> Result<Self, Error> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            file: file.clone(),
            source,
        })?;
        let spec = PlaybookSpec::parse(&file, &text)?;
        Self::validate(&file, spec, catalog)
    }

    /// The node with id `id`.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.graph[i])
    }

    /// Whether a step of it can act outside wasp: a node that binds an asset (the only
    /// way a step gets network access or secrets) or runs another playbook. The steps
    /// of one that cannot leave nothing behind but their outputs.
    pub fn reaches_out(&self) -> bool {
        self.graph
            .node_weights()
            .any(|node| node.asset.is_some() || matches!(node.kind, NodeKind::Playbook { .. }))
    }

    /// The graph index of the node with id `id`.
    pub fn index_of(&self, id: &str) -> Option<NodeIndex> {
        self.index.get(id).copied()
    }

    /// Check `spec` (from `file`) against `catalog`, reporting every problem at once.
    ///
    /// The work is linear in nodes and edges, except the check that every reference
    /// reads a node upstream, which takes nodes × edges / 64 word operations (a bit set
    /// of ancestors per node); [`MAX_NODES`] and [`MAX_EDGES`] bound both, and a spec
    /// past them is refused before any of it.
    ///
    /// It runs in phases, which give the problems their order: the bounds, the
    /// playbook's own fields, the nodes (id, what each runs, its templates, limits and
    /// iteration), the edges, the order (no cycle; each reference reads a node
    /// upstream), then the contracts (inputs and output paths against the apps'
    /// schemas, bound assets; see `contract.rs`). Every phase runs whatever the earlier
    /// ones found, but the bounds.
    pub fn validate(file: &str, spec: PlaybookSpec, catalog: &dyn Catalog) -> Result<Self, Error> {
        let mut problems = Problems::default();
        check_bounds(&spec, &mut problems);
        problems.fail_if_any(file)?;
        let fields = check_fields(&spec, &mut problems);
        let mut draft = Draft::with_nodes(&spec, catalog, &mut problems);
        draft.add_edges(&spec, catalog, &mut problems);
        draft.connect_entries();
        draft.check_order(&mut problems);
        draft.check_contracts(catalog, &mut problems);
        draft.check_output("output", fields.output.as_ref(), catalog, &mut problems);
        draft.check_output(
            "output_status",
            fields.output_status.as_ref(),
            catalog,
            &mut problems,
        );
        problems.fail_if_any(file)?;
        Ok(Self::assemble(spec, fields, draft))
    }

    /// The last phase of [`Playbook::validate`], assembly: a spec that passed every
    /// check, its checked fields and its graph become the playbook.
    fn assemble(spec: PlaybookSpec, fields: Fields, draft: Draft) -> Self {
        Self {
            id: spec.id,
            name: spec.name,
            description: spec.description,
            log_level: fields.log_level,
            max_runtime: fields.max_runtime,
            concurrency: spec.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            trigger: fields.trigger,
            conditions: fields.conditions,
            enabled: spec.enabled.unwrap_or(true),
            auto_execute: spec.auto_execute,
            max_concurrent: spec.max_concurrent,
            labels: Labels {
                category: spec.category,
                owner_id: spec.owner_id,
                tags: spec.tags,
                mitre_tactics: spec.mitre_tactics,
                mitre_techniques: spec.mitre_techniques,
                required_connector_ids: spec.required_connector_ids,
            },
            output: fields.output,
            output_status: fields.output_status,
            graph: draft.graph,
            tenant: crate::trace::DEFAULT_TENANT.to_owned(),
            app: None,
            index: draft.index,
        }
    }

    /// The graph in Mermaid flowchart syntax, left to right.
    ///
    /// A node's Mermaid id is its id after `n_`: Mermaid takes some words for its own
    /// (a node named `end` closed a subgraph that was never opened, and nothing drew).
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for node in self.graph.node_weights() {
            out.push_str(&format!(
                "  n_{}[\"{}\"]\n",
                node.id,
                label(node).replace('"', "'")
            ));
        }
        for edge in self.graph.edge_references() {
            let (from, to) = (
                format!("n_{}", self.graph[edge.source()].id),
                format!("n_{}", self.graph[edge.target()].id),
            );
            match edge.weight() {
                On::Success => out.push_str(&format!("  {from} --> {to}\n")),
                on => out.push_str(&format!("  {from} -- {on} --> {to}\n")),
            }
        }
        out
    }

    /// The graph in Graphviz DOT syntax, left to right.
    pub fn dot(&self) -> String {
        let mut out = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
            self.id
        );
        for node in self.graph.node_weights() {
            out.push_str(&format!(
                "  \"{}\" [label=\"{}\"];\n",
                node.id,
                label(node).replace('"', "\\\"")
            ));
        }
        for edge in self.graph.edge_references() {
            let (from, to) = (&self.graph[edge.source()].id, &self.graph[edge.target()].id);
            match edge.weight() {
                On::Success => out.push_str(&format!("  \"{from}\" -> \"{to}\";\n")),
                on => out.push_str(&format!("  \"{from}\" -> \"{to}\" [label=\"{on}\"];\n")),
            }
        }
        out.push_str("}\n");
        out
    }
}

impl PlaybookSpec {
    /// Parse `text` as JSON when it starts with `{`, else as YAML.
    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        let parsed: Result<Self, Box<dyn std::error::Error + Send + Sync>> =
            if text.trim_start().starts_with('{') {
                serde_json::from_str(text).map_err(Into::into)
            } else {
                serde_saphyr::from_str(text).map_err(Into::into)
            };
        parsed.map_err(|source| Error::Parse {
            file: file.to_owned(),
            source,
        })
    }
}

fn label(node: &Node) -> String {
    let what = match &node.kind {
        NodeKind::Trigger => "trigger".to_owned(),
        NodeKind::App { app, action } | NodeKind::Operator { app, action } => {
            format!("{app} {action}")
        }
        NodeKind::Playbook { id } => format!("playbook {id}"),
    };
    let each = if node.for_each.is_some() {
        " (for each)"
    } else {
        ""
    };
    if node.id == TRIGGER {
        what
    } else {
        format!("{}: {what}{each}", node.id)
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A duration such as `30s` or `500ms`, at most [`MAX_DURATION`], with an error naming
/// the text. Playbook fields, assets and command-line flags read durations the same way.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like `30s` or `500ms`: {e}"))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "`{text}` is longer than {} days, the longest duration wasp accepts",
            MAX_DURATION.as_secs() / (24 * 60 * 60)
        ));
    }
    Ok(duration)
}

/// A size such as `32MiB`, in bytes, at most [`MAX_SIZE`], with an error naming the text.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text
        .parse()
        .map_err(|e| format!("`{text}` is not a size like `32MiB`: {e}"))?;
    if size.as_u64() > MAX_SIZE {
        return Err(format!(
            "`{text}` is more than {}, the largest size wasp accepts",
            bytesize::ByteSize(MAX_SIZE).display().iec()
        ));
    }
    usize::try_from(size.as_u64()).map_err(|_| format!("`{text}` is too large"))
}

/// The HTTP status `value` says (`output_status:`, as written or rendered): a number, or
/// a string of one, from 200 to 599. Else why not, naming what it is without quoting a
/// value that could be large.
pub fn http_status(value: &Value) -> Result<u16, String> {
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    number
        .filter(|n| (200..=599).contains(n))
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| {
            let what = match value {
                Value::Number(n) => n.to_string(),
                Value::String(s) if s.len() <= 32 && !s.contains(char::is_control) => {
                    format!("`{s}`")
                }
                Value::String(s) => format!("a string of {} bytes", s.len()),
                Value::Null => "null".to_owned(),
                Value::Bool(b) => b.to_string(),
                Value::Array(_) => "a list".to_owned(),
                Value::Object(_) => "an object".to_owned(),
            };
            format!("is {what}; an HTTP status here is 200 to 599")
        })
}

impl Playbook {
    /// Whether this playbook can stand in for `older` without breaking what refers to
    /// its steps (run profiles, reruns, a client's saved queries): its trigger is of the
    /// same type, and every step of `older` is still here, running the same thing. An
    /// update that is not is incompatible (seed 003 bumps `schema_version`).
    pub fn keeps_steps_of(&self, older: &Playbook) -> bool {
        self.trigger.kind() == older.trigger.kind()
            && older
                .graph
                .node_weights()
                .all(|node| self.node(&node.id).is_some_and(|now| now.kind == node.kind))
    }
}

/// The template of `field`, a part of the execution's result (`output`,
/// `output_status`), which renders in no node and so cannot read `${item}`.
fn result_template(
    value: Option<&Value>,
    field: &str,
    problems: &mut Problems,
) -> Option<Template> {
    let template = Template::parse(value?)
        .map_err(|e| problems.push(None, Some(field), e.to_string()))
        .ok()?;
    let item = template
        .references()
        .iter()
        .any(|r| matches!(r.root, Root::Item | Root::ItemIndex));
    if item {
        problems.push(
            None,
            Some(field),
            "uses `${item}`, which only a node with `for_each` has".to_owned(),
        );
    }
    Some(template)
}

/// The problems [`Playbook::validate`] found so far, in the order found.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    /// Note that `field` of `node` is wrong (either may be absent: the playbook's own
    /// field, or the whole node).
    fn push(&mut self, node: Option<&str>, field: Option<&str>, message: String) {
        self.0.push(Problem {
            node: node.map(str::to_owned),
            field: field.map(str::to_owned),
            message,
        });
    }

    /// `Ok` while none was found; otherwise every one, for `file` (and none are kept).
    fn fail_if_any(&mut self, file: &str) -> Result<(), Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(Error::Invalid {
            file: file.to_owned(),
            problems: std::mem::take(&mut self.0),
        })
    }
}

/// The first phase of [`Playbook::validate`], the bounds: a spec past [`MAX_NODES`] or
/// [`MAX_EDGES`] is refused before any other work.
fn check_bounds(spec: &PlaybookSpec, problems: &mut Problems) {
    for (field, count, bound) in [
        ("nodes", spec.nodes.len(), MAX_NODES),
        ("edges", spec.edges.len(), MAX_EDGES),
    ] {
        if count > bound {
            problems.push(
                None,
                Some(field),
                format!("the playbook has {count} {field}; at most {bound} are allowed"),
            );
        }
    }
}

/// What the playbook's own fields say, checked (the rest is taken from the spec as it
/// is when the playbook is assembled).
struct Fields {
    log_level: LogLevel,
    max_runtime: Duration,
    trigger: trigger::Trigger,
    conditions: trigger::Conditions,
    output: Option<Template>,
    output_status: Option<Template>,
}

/// The phase of [`Playbook::validate`] that checks the playbook's own fields: its id,
/// level, limits and trigger. A field that is wrong takes its default, so that the
/// later phases still run.
fn check_fields(spec: &PlaybookSpec, problems: &mut Problems) -> Fields {
    if !valid_id(&spec.id) {
        problems.push(
            None,
            Some("id"),
            format!(
                "`{}` is not an id: use letters, digits, `-` and `_`",
                spec.id
            ),
        );
    }
    let log_level = match spec.log_level.as_deref().map(str::parse::<LogLevel>) {
        None => LogLevel::Info,
        Some(Ok(level)) => level,
        Some(Err(e)) => {
            problems.push(None, Some("log_level"), e.to_string());
            LogLevel::Info
        }
    };
    let max_runtime = match spec.max_runtime.as_deref().map(parse_duration) {
        None => DEFAULT_MAX_RUNTIME,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            problems.push(None, Some("max_runtime"), e);
            DEFAULT_MAX_RUNTIME
        }
    };
    if spec.concurrency == Some(0) {
        problems.push(None, Some("concurrency"), "must be at least 1".to_owned());
    }
    let (trigger, conditions) = check_trigger(spec, problems);
    if spec.max_concurrent == Some(0) {
        problems.push(
            None,
            Some("max_concurrent"),
            "must be at least 1".to_owned(),
        );
    }
    let output = result_template(spec.output.as_ref(), "output", problems);
    let output_status = result_template(spec.output_status.as_ref(), "output_status", problems);
    if spec.output_status.is_some() && spec.output.is_none() {
        problems.push(
            None,
            Some("output_status"),
            "is the status to answer the `output:` with, and there is no `output:`".to_owned(),
        );
    }
    // A literal (not a `${…}` template) is checked now.
    if let Some(literal) = &spec.output_status
        && output_status
            .as_ref()
            .is_some_and(|t| t.references().is_empty())
        && let Err(e) = http_status(literal)
    {
        problems.push(None, Some("output_status"), e);
    }
    Fields {
        log_level,
        max_runtime,
        trigger,
        conditions,
        output,
        output_status,
    }
}

/// The trigger, its conditions, and whether the fields that only an event trigger
/// reads are set for another kind.
fn check_trigger(
    spec: &PlaybookSpec,
    problems: &mut Problems,
) -> (trigger::Trigger, trigger::Conditions) {
    let (trigger, conditions) = match &spec.trigger {
        None => {
            problems.push(
                None,
                Some("trigger"),
                "the playbook has no trigger; add `trigger: { type: manual }`".to_owned(),
            );
            (trigger::Trigger::Manual, trigger::Conditions::default())
        }
        Some(t) => trigger::check(t, &spec.trigger_conditions, &mut |field, message| {
            problems.push(None, Some(&field), message);
        }),
    };
    if spec.auto_execute && !matches!(trigger, trigger::Trigger::Event) {
        problems.push(
            None,
            Some("auto_execute"),
            format!(
                "only an event trigger fires on its own conditions; this one is `{}`",
                trigger.kind()
            ),
        );
    }
    if !spec.trigger_conditions.is_empty() && !matches!(trigger, trigger::Trigger::Event) {
        problems.push(
            None,
            Some("trigger_conditions"),
            "only an event trigger has conditions".to_owned(),
        );
    }
    (trigger, conditions)
}

/// The DAG as [`Playbook::validate`] builds it: the graph, its nodes by id, and the
/// trigger.
struct Draft {
    graph: DiGraph<Node, On>,
    index: HashMap<String, NodeIndex>,
    trigger: NodeIndex,
}

impl Draft {
    /// The nodes phase: the trigger, then every node of `spec` that can be checked,
    /// in file order. A node whose id or kind is wrong is left out (its edges and
    /// references are then not reported again).
    fn with_nodes(spec: &PlaybookSpec, catalog: &dyn Catalog, problems: &mut Problems) -> Self {
        let mut graph: DiGraph<Node, On> = DiGraph::new();
        let mut index = HashMap::new();
        let trigger = graph.add_node(Node {
            id: TRIGGER.to_owned(),
            kind: NodeKind::Trigger,
            input: Template::Literal(Value::Null),
            for_each: None,
            concurrency: None,
            timeout: None,
            memory: None,
            retry: None,
            continue_on_error: false,
            asset: None,
        });
        index.insert(TRIGGER.to_owned(), trigger);
        for (id, node) in &spec.nodes {
            let here = Some(id.as_str());
            if RESERVED.contains(&id.as_str()) {
                problems.push(here, None, format!("`{id}` is reserved; choose another id"));
                continue;
            }
            if !valid_id(id) {
                problems.push(
                    here,
                    None,
                    format!("`{id}` is not an id: use letters, digits, `-` and `_`"),
                );
            }
            if index.contains_key(id) {
                problems.push(here, None, format!("the id `{id}` is used by two nodes"));
                continue;
            }
            if let Some(checked) = check_node(id, node, catalog, &spec.id, problems) {
                index.insert(id.clone(), graph.add_node(checked));
            }
        }
        Self {
            graph,
            index,
            trigger,
        }
    }

    /// The edges phase: each edge of `spec` whose ends are nodes, with the condition it
    /// is taken on; a pathway must be one its source, an operator, offers.
    fn add_edges(&mut self, spec: &PlaybookSpec, catalog: &dyn Catalog, problems: &mut Problems) {
        for (position, edge) in spec.edges.iter().enumerate() {
            let field = format!("edges[{position}]");
            let Some((from, to, on)) = edge_ends(edge, &field, problems) else {
                continue;
            };
            let Some((source, target)) = self.edge_nodes(spec, (from, to), &field, problems) else {
                continue;
            };
            let on = edge_condition(
                &self.graph[source].kind,
                (from, on),
                catalog,
                &field,
                problems,
            );
            self.graph.add_edge(source, target, on);
        }
    }

    /// The nodes edge `from -> to` joins, or `None` when it names one that is not a
    /// node (reported unless that node was left out with its own problem) or leads
    /// into the trigger.
    fn edge_nodes(
        &self,
        spec: &PlaybookSpec,
        (from, to): (&str, &str),
        field: &str,
        problems: &mut Problems,
    ) -> Option<(NodeIndex, NodeIndex)> {
        let (Some(&source), Some(&target)) = (self.index.get(from), self.index.get(to)) else {
            for end in [from, to] {
                if !self.index.contains_key(end) && !spec.nodes.iter().any(|(id, _)| id == end) {
                    problems.push(
                        None,
                        Some(field),
                        format!("`{from} -> {to}` names `{end}`, which is not a node"),
                    );
                }
            }
            return None;
        };
        if target == self.trigger {
            problems.push(
                None,
                Some(field),
                format!("`{from} -> {to}`: nothing may lead into the trigger"),
            );
            return None;
        }
        Some((source, target))
    }

    /// Nodes nothing leads into start from the trigger.
    fn connect_entries(&mut self) {
        let graph = &self.graph;
        let entries: Vec<NodeIndex> = graph
            .node_indices()
            .filter(|&n| {
                n != self.trigger
                    && graph
                        .neighbors_directed(n, Direction::Incoming)
                        .next()
                        .is_none()
            })
            .collect();
        for entry in entries {
            self.graph.add_edge(self.trigger, entry, On::Success);
        }
    }

    /// The order phase: the edges must form no cycle (each one is reported), and in
    /// the order they give, every reference must read a node upstream of its reader.
    fn check_order(&self, problems: &mut Problems) {
        match petgraph::algo::toposort(&self.graph, None) {
            Err(_) => {
                for cycle in cycles(&self.graph) {
                    let through: Vec<String> = cycle.iter().map(|id| format!("`{id}`")).collect();
                    problems.push(
                        None,
                        Some("edges"),
                        format!("the edges form a cycle through {}", through.join(", ")),
                    );
                }
            }
            Ok(order) => self.check_references(&order, problems),
        }
    }

    /// The references phase: each `${node.…}` in a node's input or `for_each` reads a
    /// node upstream of it (`order` is a topological order of the graph).
    fn check_references(&self, order: &[NodeIndex], problems: &mut Problems) {
        let graph = &self.graph;
        let upstream = Ancestors::of(graph, order);
        for node in graph.node_indices() {
            let references = graph[node]
                .input
                .references()
                .into_iter()
                .chain(graph[node].for_each.as_ref());
            for reference in references {
                let Root::Output(read) = &reference.root else {
                    continue;
                };
                let read_index = self.index.get(read).copied();
                if read_index.is_some_and(|r| upstream.contains(node, r)) {
                    continue;
                }
                let field = if graph[node].for_each.as_ref() == Some(reference) {
                    "for_each"
                } else {
                    "input"
                };
                let message = if read_index.is_some() {
                    format!(
                        "`${{{}}}` reads `{read}`, which is not upstream of `{}`",
                        reference.text, graph[node].id
                    )
                } else {
                    format!(
                        "`${{{}}}` reads `{read}`, which is not a node",
                        reference.text
                    )
                };
                problems.push(Some(&graph[node].id), Some(field), message);
            }
        }
    }
}

/// One node of the nodes phase, checked: what it runs, its templates, its limits and
/// its iteration. `None` when what it runs is wrong (the rest is still checked where
/// it can be).
fn check_node(
    id: &str,
    node: &NodeSpec,
    catalog: &dyn Catalog,
    own_id: &str,
    problems: &mut Problems,
) -> Option<Node> {
    let kind = match node_kind(node, catalog, own_id) {
        Ok(kind) => kind,
        Err((field, message)) => {
            problems.push(Some(id), Some(field), message);
            return None;
        }
    };
    let (input, for_each) = check_templates(id, node, problems);
    let (timeout, memory, retry) = check_limits(id, node, problems);
    check_iteration(id, node, &input, problems);
    Some(Node {
        id: id.to_owned(),
        kind,
        input,
        for_each,
        concurrency: node.concurrency,
        timeout,
        memory,
        retry,
        continue_on_error: node.continue_on_error,
        asset: node.asset.clone(),
    })
}

/// The templates phase of a node: its input, and its `for_each`, which must be
/// exactly one reference. One that does not parse is reported and left empty.
fn check_templates(
    id: &str,
    node: &NodeSpec,
    problems: &mut Problems,
) -> (Template, Option<Reference>) {
    let here = Some(id);
    let input = Template::parse(&node.input).unwrap_or_else(|e| {
        problems.push(here, Some("input"), e.to_string());
        Template::Literal(Value::Null)
    });
    let for_each = node.for_each.as_ref().and_then(|text| {
        match Template::parse(&Value::String(text.clone())) {
            Ok(Template::Whole(reference)) => Some(reference),
            Ok(_) => {
                problems.push(
                    here,
                    Some("for_each"),
                    format!("`{text}` must be exactly one reference, e.g. `${{iocs.output.ipv4}}`"),
                );
                None
            }
            Err(e) => {
                problems.push(here, Some("for_each"), e.to_string());
                None
            }
        }
    });
    (input, for_each)
}

/// A node's limits: its timeout, its memory and its retry policy. One that does not
/// parse is reported and left unset.
fn check_limits(
    id: &str,
    node: &NodeSpec,
    problems: &mut Problems,
) -> (Option<Duration>, Option<usize>, Option<Retry>) {
    let here = Some(id);
    let mut duration = |field: &str, text: &Option<String>| {
        text.as_deref().and_then(|t| {
            parse_duration(t)
                .map_err(|e| problems.push(here, Some(field), e))
                .ok()
        })
    };
    let timeout = duration("timeout", &node.timeout);
    let backoff = node
        .retry
        .as_ref()
        .and_then(|r| duration("retry.backoff", &r.backoff));
    let memory = node.memory.as_deref().and_then(|text| {
        parse_size(text)
            .map_err(|e| problems.push(here, Some("memory"), e))
            .ok()
    });
    let retry = node.retry.as_ref().map(|r| {
        if r.attempts == 0 {
            problems.push(
                here,
                Some("retry.attempts"),
                "must be at least 1 (the first attempt counts)".to_owned(),
            );
        }
        Retry {
            attempts: r.attempts.max(1),
            backoff: backoff.unwrap_or(Duration::ZERO),
        }
    });
    (timeout, memory, retry)
}

/// What only a node with `for_each` may set or read: its `concurrency`, and
/// `${item}` in its input.
fn check_iteration(id: &str, node: &NodeSpec, input: &Template, problems: &mut Problems) {
    let here = Some(id);
    if node.concurrency == Some(0) {
        problems.push(here, Some("concurrency"), "must be at least 1".to_owned());
    }
    if node.concurrency.is_some() && node.for_each.is_none() {
        problems.push(
            here,
            Some("concurrency"),
            "only applies with `for_each`".to_owned(),
        );
    }
    let references_item = input
        .references()
        .iter()
        .any(|r| matches!(r.root, Root::Item | Root::ItemIndex) && r.default.is_none());
    if references_item && node.for_each.is_none() {
        problems.push(
            here,
            Some("input"),
            "uses `${item}` but the node has no `for_each`".to_owned(),
        );
    }
}

/// An edge's ends and condition as written, or `None` (reported) for a short edge
/// that is not `from -> to`.
fn edge_ends<'a>(
    edge: &'a EdgeSpec,
    field: &str,
    problems: &mut Problems,
) -> Option<(&'a str, &'a str, Option<&'a str>)> {
    match edge {
        EdgeSpec::Short(text) => match text.split_once("->") {
            Some((from, to)) => Some((from.trim(), to.trim(), None)),
            None => {
                problems.push(
                    None,
                    Some(field),
                    format!("`{text}` is not an edge; write `from -> to`"),
                );
                None
            }
        },
        EdgeSpec::Long(LongEdge { from, to, on }) => {
            Some((from.as_str(), to.as_str(), on.as_deref()))
        }
    }
}

/// When an edge out of `from` (a node of kind `source`) is taken: `on` as written. A
/// pathway is kept even when it is reported, so that the edge still orders its nodes.
fn edge_condition(
    source: &NodeKind,
    (from, on): (&str, Option<&str>),
    catalog: &dyn Catalog,
    field: &str,
    problems: &mut Problems,
) -> On {
    let pathway = match on {
        None | Some("success") => return On::Success,
        Some("failure") => return On::Failure,
        Some("always") => return On::Always,
        Some(pathway) => pathway,
    };
    match source {
        NodeKind::Operator { app, action } => {
            let offered = catalog
                .app(app)
                .and_then(|info| info.actions.iter().find(|a| &a.name == action))
                .map(|a| (a.offers_pathway(pathway), a.pathways.join(", ")));
            if let Some((false, declared)) = offered {
                problems.push(
                    None,
                    Some(field),
                    format!(
                        "`{from}` ({app} {action}) has no pathway `{pathway}`; it offers {declared}"
                    ),
                );
            }
        }
        _ => problems.push(
            None,
            Some(field),
            format!(
                "`{from}` is not an operator and takes no pathways; `on` is success, failure or always"
            ),
        ),
    }
    On::Pathway(pathway.to_owned())
}

/// What a node runs, checked against the catalog; errors name the field.
fn node_kind(
    node: &NodeSpec,
    catalog: &dyn Catalog,
    own_id: &str,
) -> Result<NodeKind, (&'static str, String)> {
    let (field, name) = match (&node.app, &node.operator, &node.playbook) {
        (Some(app), None, None) => ("app", app),
        (None, Some(operator), None) => ("operator", operator),
        (None, None, Some(playbook)) => return playbook_kind(node, playbook, catalog, own_id),
        (None, None, None) => {
            return Err((
                "app",
                "the node names no `app`, `operator` or `playbook`".to_owned(),
            ));
        }
        _ => {
            return Err((
                "app",
                "the node names more than one of `app`, `operator` and `playbook`".to_owned(),
            ));
        }
    };
    let action = app_action(node, (field, name), catalog)?;
    if field == "operator" && action.pathways.is_empty() {
        return Err((
            "operator",
            format!(
                "`{name}` {} takes no pathways; use `app:` for it",
                action.name
            ),
        ));
    }
    Ok(if field == "operator" {
        NodeKind::Operator {
            app: name.clone(),
            action: action.name.clone(),
        }
    } else {
        NodeKind::App {
            app: name.clone(),
            action: action.name.clone(),
        }
    })
}

/// A `playbook:` node's kind: another playbook that exists, with no action.
fn playbook_kind(
    node: &NodeSpec,
    playbook: &str,
    catalog: &dyn Catalog,
    own_id: &str,
) -> Result<NodeKind, (&'static str, String)> {
    if playbook == own_id {
        return Err((
            "playbook",
            format!("`{playbook}` is this playbook; a playbook cannot call itself"),
        ));
    }
    if !catalog.has_playbook(playbook) {
        return Err(("playbook", format!("there is no playbook `{playbook}`")));
    }
    if node.action.is_some() {
        return Err(("action", "a `playbook` node has no action".to_owned()));
    }
    Ok(NodeKind::Playbook {
        id: playbook.to_owned(),
    })
}

/// The action an `app:` or `operator:` node (its `field`) runs of app `name`: the one
/// it names, or the app's only one.
fn app_action<'a>(
    node: &NodeSpec,
    (field, name): (&'static str, &str),
    catalog: &'a dyn Catalog,
) -> Result<&'a ActionInfo, (&'static str, String)> {
    let info = catalog
        .app(name)
        .ok_or_else(|| (field, format!("there is no app `{name}`")))?;
    let known = || {
        info.actions
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &node.action {
        Some(action) => info
            .actions
            .iter()
            .find(|a| &a.name == action)
            .ok_or_else(|| {
                (
                    "action",
                    format!(
                        "app `{name}` has no action `{action}`; it offers {}",
                        known()
                    ),
                )
            }),
        None => match info.actions.as_slice() {
            [only] => Ok(only),
            _ => Err((
                "action",
                format!("app `{name}` has several actions; name one of {}", known()),
            )),
        },
    }
}

/// Every cycle (strongly connected component of more than one node, or a self-loop),
/// named by its node ids in order. Kosaraju's search, which petgraph runs with explicit
/// stacks: Tarjan's recursive one overflowed the stack on a long chain.
fn cycles(graph: &DiGraph<Node, On>) -> Vec<Vec<String>> {
    let mut found: Vec<Vec<String>> = petgraph::algo::kosaraju_scc(graph)
        .into_iter()
        .filter(|component| component.len() > 1 || graph.contains_edge(component[0], component[0]))
        .map(|component| {
            let mut ids: Vec<String> = component.iter().map(|&n| graph[n].id.clone()).collect();
            ids.sort();
            ids
        })
        .collect();
    found.sort();
    found
}

/// For every node of an acyclic graph, the set of nodes upstream of it (the trigger
/// included), as one bit set per node: built in one pass over a topological order, each
/// node's set the union of its predecessors' sets and the predecessors themselves.
struct Ancestors {
    sets: Vec<FixedBitSet>,
}

impl Ancestors {
    fn of(graph: &DiGraph<Node, On>, order: &[NodeIndex]) -> Self {
        let count = graph.node_count();
        let mut sets = vec![FixedBitSet::new(); count];
        for &node in order {
            let mut set = FixedBitSet::with_capacity(count);
            for predecessor in graph.neighbors_directed(node, Direction::Incoming) {
                set.union_with(&sets[predecessor.index()]);
                set.insert(predecessor.index());
            }
            sets[node.index()] = set;
        }
        Self { sets }
    }

    /// Whether `ancestor` is upstream of `node`.
    fn contains(&self, node: NodeIndex, ancestor: NodeIndex) -> bool {
        self.sets[node.index()].contains(ancestor.index())
    }
}
