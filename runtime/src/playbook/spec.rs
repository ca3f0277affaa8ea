//! The playbook file as written (YAML or JSON): raw serde types that refuse unknown
//! fields. Nothing here is checked beyond its shape; [`super::Playbook::validate`] turns
//! a spec into a checked DAG.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The JSON Schema (draft 7, which editors' YAML plugins read) of a playbook file,
/// generated from the types below, so that it cannot drift from what wasp accepts
/// (`wasp schema playbook`; `docs/playbook.schema.json` holds a copy).
pub fn file_schema() -> Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<PlaybookSpec>();
    schema.to_value()
}

/// A playbook file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybookSpec {
    /// The XID: stable and unique, used to address the playbook.
    pub id: String,
    /// A human name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The level its executions record at (`trace`, `debug`, `info`, `warn`, `error`).
    #[serde(default)]
    pub log_level: Option<String>,
    /// The reaper's limit for one execution, e.g. `60s`.
    #[serde(default)]
    pub max_runtime: Option<String>,
    /// Steps running at once in one execution.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// What starts it.
    #[serde(default)]
    pub trigger: Option<TriggerSpec>,
    /// Whether it may run at all (default true): a disabled playbook is not fired by
    /// its trigger and refuses runs.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Whether an event whose fields satisfy `trigger_conditions` fires it.
    #[serde(default)]
    pub auto_execute: bool,
    /// TQL conditions over an event's fields, all of which must hold to fire it.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub trigger_conditions: Vec<String>,
    /// Executions of this playbook running at once; more wait as Queued, in order.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// The incident-response phase it serves.
    #[serde(default)]
    pub category: Option<String>,
    /// Who owns it: a person's id (seed 003's `owner_id`).
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Free-form tags.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<String>,
    /// MITRE ATT&CK tactic ids it addresses.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub mitre_tactics: Vec<String>,
    /// MITRE ATT&CK technique ids it addresses.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub mitre_techniques: Vec<String>,
    /// The execution's result: a template over the nodes' outputs and the trigger
    /// (`{ verdict: "${decide.output.verdict}" }`), built when the execution ends, kept
    /// at every log level and answered to `?wait=true` and webhook callers.
    #[serde(default)]
    pub output: Option<Value>,
    /// The HTTP status a webhook caller that asked for the output (`?respond=output`)
    /// gets with it: 200 to 599, or a template that renders to one
    /// (`"${decide.output.code ?? 200}"`); 200 without it.
    #[serde(default)]
    pub output_status: Option<Value>,
    /// Assets that must be configured before it may run (seed 003's connectors).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub required_connector_ids: Vec<String>,
    /// The nodes, by id, in file order. A list of pairs rather than a map, so that a
    /// duplicate id is reported rather than silently replacing the first node.
    #[serde(deserialize_with = "nodes_in_order")]
    #[schemars(with = "BTreeMap<String, NodeSpec>")]
    pub nodes: Vec<(String, NodeSpec)>,
    /// The edges. `edges:` with nothing after it (YAML null) is no edges.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub edges: Vec<EdgeSpec>,
}

/// What starts a playbook.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// `manual`, `webhook`, `timer` or `event`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A webhook's HMAC-SHA256 secret: `env:VARIABLE` or `file:PATH`.
    #[serde(default)]
    pub secret: Option<String>,
    /// A timer's cron expression: 5 fields, or 6 with seconds first.
    #[serde(default)]
    pub cron: Option<String>,
    /// The time zone of `cron` (an IANA name; UTC by default).
    #[serde(default)]
    pub timezone: Option<String>,
    /// A timer's fixed interval, e.g. `30s`.
    #[serde(default)]
    pub every: Option<String>,
}

/// One node: exactly one of `app`, `operator` or `playbook`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The app to run.
    #[serde(default)]
    pub app: Option<String>,
    /// The operator to run (an app that routes).
    #[serde(default)]
    pub operator: Option<String>,
    /// The playbook to run as a child execution.
    #[serde(default)]
    pub playbook: Option<String>,
    /// The action; may be left out when the app or operator has exactly one.
    #[serde(default)]
    pub action: Option<String>,
    /// The input, with `${…}` references.
    #[serde(default = "empty_object")]
    pub input: Value,
    /// Run once per item of this array (a `${…}` reference).
    #[serde(default)]
    pub for_each: Option<String>,
    /// Iterations running at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// The step's wall-clock limit, e.g. `5s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// The step's memory limit, e.g. `32MiB`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Re-run a retryable failure.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Let the execution go on as if the step had succeeded (with no output).
    #[serde(default)]
    pub continue_on_error: bool,
    /// The asset (configured app instance) whose settings the step gets.
    #[serde(default)]
    pub asset: Option<String>,
}

/// A retry policy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt, doubled for each later one, e.g. `200ms`.
    #[serde(default)]
    pub backoff: Option<String>,
}

/// An edge: `"a -> b"`, or `{from, to, on}`.
#[derive(Debug, Clone)]
pub enum EdgeSpec {
    /// `"a -> b"`: taken when `a` succeeds.
    Short(String),
    /// The long form.
    Long(LongEdge),
}

/// An edge in its long form.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LongEdge {
    /// The source node.
    pub from: String,
    /// The target node.
    pub to: String,
    /// `success` (default), `failure`, `always`, or a pathway name.
    #[serde(default)]
    pub on: Option<String>,
}

impl JsonSchema for EdgeSpec {
    fn schema_name() -> Cow<'static, str> {
        "EdgeSpec".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let long = generator.subschema_for::<LongEdge>();
        json_schema!({
            "description": "An edge: `from -> to` (taken when `from` succeeds), or `{ from, to, on }`.",
            "oneOf": [
                {"type": "string", "pattern": "^\\s*[A-Za-z0-9_-]+\\s*->\\s*[A-Za-z0-9_-]+\\s*$"},
                long
            ]
        })
    }
}

// Not `#[serde(untagged)]`: an untagged enum buffers the map without its types, and
// YAML 1.1 readers then take the key `on` for the boolean `true`. Visiting a string
// or a map and deserializing the map as a struct keeps every key a string.
impl<'de> Deserialize<'de> for EdgeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Edge;

        impl<'de> Visitor<'de> for Edge {
            type Value = EdgeSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an edge: `from -> to` or `{ from, to, on }`")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<EdgeSpec, E> {
                Ok(EdgeSpec::Short(text.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EdgeSpec, A::Error> {
                LongEdge::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(EdgeSpec::Long)
            }
        }

        deserializer.deserialize_any(Edge)
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn nodes_in_order<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, NodeSpec)>, D::Error> {
    struct Nodes;

    impl<'de> Visitor<'de> for Nodes {
        type Value = Vec<(String, NodeSpec)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of node ids to nodes")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut nodes = Vec::new();
            while let Some(entry) = map.next_entry::<String, NodeSpec>()? {
                nodes.push(entry);
            }
            Ok(nodes)
        }
    }

    deserializer.deserialize_map(Nodes)
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Option::<Vec<T>>::deserialize(deserializer).map(Option::unwrap_or_default)
}
