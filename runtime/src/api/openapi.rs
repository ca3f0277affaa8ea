//! The OpenAPI document served at `/api/v1/openapi.json`, built from one table of the
//! routes. A test walks the document and calls every operation on a real server, so a
//! route documented here and missing from the router fails the build.

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::answers::{
    ExecutionPage, Fired, Killed, Listing, Problem, ReplayBody, StartedExecution,
};

/// A query parameter: its name and what it does.
type Param = (&'static str, &'static str);

/// The schema of a body, from the generator that gathers the components.
type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// A request's or an answer's body.
#[derive(Clone, Copy)]
enum Body {
    /// None (or one that is ignored).
    None,
    /// JSON of this schema.
    Json(SchemaOf),
    /// Any JSON: a trigger payload, an event, a playbook's declared output.
    AnyJson(&'static str),
    /// A vendor's own record, in the shape its clients expect (`docs/http-api.md` says
    /// where each is documented).
    Vendor(&'static str),
    /// Another media type, with what it holds.
    Media(&'static str, &'static str),
}

/// One answer an operation gives.
struct Reply {
    status: &'static str,
    description: &'static str,
    body: Body,
}

/// One operation: method, path, summary, query parameters, its body and its answers
/// besides the errors every operation may give (`4XX`, `5XX`: a [`Problem`]).
struct Operation {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    query: &'static [Param],
    request: Body,
    replies: &'static [Reply],
}

/// The schema of `T`, as a component.
fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// An execution as `GET /api/v1/executions/{id}` answers it: its stored record once it
/// has ended (children by id), or, while it runs, its row with its nodes' states and the
/// steps that have ended; with its number and the playbook's graph either way.
fn execution_record(generator: &mut SchemaGenerator) -> Schema {
    let graph = json!({
        "type": "object",
        "description": "The playbook's nodes and edges, to draw (absent when the playbook is gone).",
        "properties": {
            "nodes": {"type": "array", "items": {"type": "object"}},
            "edges": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "on": {"type": "string"},
                },
            }},
        },
    });
    let num = json!({"type": "integer", "description": "The execution's number."});
    let ended = derived::<crate::trace::Execution>(generator, "EndedExecution", |schema| {
        schema["description"] = json!("An execution that has ended, as stored.");
        let properties = &mut schema["properties"];
        properties["children"] = json!({
            "type": "array",
            "items": {"type": "string"},
            "description": "The ids of the executions its `playbook:` nodes started (each has its own record).",
        });
        properties["num"] = num.clone();
        properties["graph"] = graph.clone();
    });
    let nodes = generator.subschema_for::<Vec<crate::store::NodeState>>();
    let steps = generator.subschema_for::<Vec<crate::trace::StepRun>>();
    let running = derived::<crate::store::ExecutionRow>(generator, "RunningExecution", |schema| {
        schema["description"] = json!(
            "An execution that has not ended (or whose process stopped first): its row, \
             its nodes so far and the steps that have ended."
        );
        let properties = &mut schema["properties"];
        properties["nodes"] = nodes.to_value();
        properties["nodes"]["description"] =
            json!("The nodes that have started, with their state.");
        properties["steps"] = steps.to_value();
        properties["steps"]["description"] = json!(
            "The step runs that have ended, in that order (at DEBUG and TRACE with what they saw)."
        );
        properties["num"] = num.clone();
        properties["graph"] = graph.clone();
    });
    json_schema!({"oneOf": [ended, running]})
}

/// A component `name` made from `T`'s schema changed by `change`; a reference to it.
fn derived<T: JsonSchema>(
    generator: &mut SchemaGenerator,
    name: &str,
    change: impl FnOnce(&mut Value),
) -> Schema {
    let reference = generator.subschema_for::<T>().to_value();
    let original = reference["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|n| generator.definitions().get(n).cloned());
    let mut schema = original.unwrap_or_else(|| reference.clone());
    change(&mut schema);
    generator.definitions_mut().insert(name.to_owned(), schema);
    json_schema!({"$ref": format!("#/components/schemas/{name}")})
}

/// `base` (a type's schema) with the fields `properties` added by the view, of which
/// `required` must be there.
fn with_fields(base: Schema, properties: Value, required: &[&str]) -> Schema {
    let mut fields = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        fields["required"] = json!(required);
    }
    json_schema!({"allOf": [base, fields]})
}

/// An ended execution's record, with its number (`?wait=true`).
fn ended_record(generator: &mut SchemaGenerator) -> Schema {
    let record = generator.subschema_for::<crate::trace::Execution>();
    with_fields(
        record,
        json!({"num": {"type": "integer", "description": "The execution's number."}}),
        &[],
    )
}

/// A playbook as the API shows it: the stored record, its run statistics and its
/// trigger.
fn playbook(generator: &mut SchemaGenerator) -> Schema {
    let record = generator.subschema_for::<crate::store::PlaybookRecord>();
    with_fields(
        record,
        json!({
                "trigger": {
                    "type": "object",
                    "description": "Its trigger: `type`, and a webhook's `url` and `signed`, a timer's `cron`/`timezone` or `every` and `next_runs`, an event trigger's `conditions`.",
                },
                "definition": {
                    "type": "object",
                    "description": "The playbook file, as JSON.",
                },
                "steps": {
                    "type": "array",
                    "description": "Its steps in the file's order (seed 003): `id`, `type` (app, operator, playbook), `app`, `action`, `asset`, `for_each`, and `after`, the steps before it with the edge's condition (`{step, on}`).",
                    "items": {"type": "object"},
                },
                "source_type": {
                    "type": "string",
                    "enum": ["server", "api"],
                    "description": "Where the write came from: `server` for a file the server loaded, `api`.",
                },
        }),
        &[],
    )
}

/// A [`Listing`] of `item`s whose schema is made here, not derived.
fn listing(item: Schema) -> Schema {
    json_schema!({
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "data": {"type": "array", "items": item},
        },
        "required": ["count", "data"],
    })
}

fn playbooks(generator: &mut SchemaGenerator) -> Schema {
    listing(playbook(generator))
}

/// An asset as the API shows it: its definition (secrets as references), name and
/// source.
fn asset(generator: &mut SchemaGenerator) -> Schema {
    let spec = generator.subschema_for::<crate::assets::AssetSpec>();
    let source = generator.subschema_for::<crate::assets::Source>();
    with_fields(
        spec,
        json!({"name": {"type": "string"}, "source": source}),
        &[],
    )
}

fn assets(generator: &mut SchemaGenerator) -> Schema {
    listing(asset(generator))
}

/// An asset sent to `POST /api/v1/assets`: its definition and name.
fn new_asset(generator: &mut SchemaGenerator) -> Schema {
    let spec = generator.subschema_for::<crate::assets::AssetSpec>();
    with_fields(
        spec,
        json!({"name": {"type": "string", "description": "Its name, which nodes bind."}}),
        &["name"],
    )
}

const STARTED: Reply = Reply {
    status: "202",
    description: "Started: where to find the execution.",
    body: Body::Json(of::<StartedExecution>),
};

const ENDED: Reply = Reply {
    status: "200",
    description: "With `wait=true`: the ended execution's whole record.",
    body: Body::Json(ended_record),
};

const OK_PLAYBOOK: &[Reply] = &[Reply {
    status: "200",
    description: "The playbook.",
    body: Body::Json(playbook),
}];

const OK_ASSET: &[Reply] = &[Reply {
    status: "200",
    description: "The asset.",
    body: Body::Json(asset),
}];

const LIST: &[Param] = &[
    (
        "tql",
        "A TQL query (OPTIONS /api/v3/playbook/executions/tql lists the fields).",
    ),
    ("offset", "Skip this many (default 0)."),
    ("limit", "At most this many, 1 to 10,000 (default 100)."),
    ("sort", "asc or desc."),
];

/// The query of a Splunk SOAR list.
const SOAR_LIST: &[Param] = &[
    ("page", "From 0."),
    ("page_size", "Default 10; 0 means all, at most 10,000."),
    (
        "_filter_<field>[__<lookup>]",
        "Only records whose top-level field matches: the value as JSON (`\"failed\"`, `7`, `[1,7]` for `__in`); lookups exact, in, gt, gte, lt, lte, contains, icontains, startswith, isnull; at most 32 conditions.",
    ),
    (
        "_exclude_<field>[__<lookup>]",
        "Only records it does not hold for.",
    ),
    ("sort", "A top-level field to order by."),
    ("order", "asc (default) or desc."),
];

/// What Splunk SOAR's routes take and answer: its own records.
const SOAR_RECORDS: Body =
    Body::Vendor("Splunk SOAR's action_run, app_run and action_result records.");

const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/api/v1/openapi.json",
        summary: "This document.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The OpenAPI 3.1 document.",
            body: Body::AnyJson("An OpenAPI document."),
        }],
    },
    Operation {
        method: "get",
        path: "/healthz",
        summary: "`ok` while the process answers (no token needed; it says nothing else).",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The process answers.",
            body: Body::Media("text/plain", "`ok`"),
        }],
    },
    Operation {
        method: "get",
        path: "/readyz",
        summary: "`ready` once the apps and playbooks are loaded and the store takes a write (no token needed; it says nothing else).",
        query: &[],
        request: Body::None,
        replies: &[
            Reply {
                status: "200",
                description: "Ready to serve.",
                body: Body::Media("text/plain", "`ready`"),
            },
            Reply {
                status: "503",
                description: "Still loading, or the store takes no write.",
                body: Body::Media("text/plain", "`not ready`"),
            },
        ],
    },
    Operation {
        method: "get",
        path: "/metrics",
        summary: "The server's metrics in Prometheus's text format (0.0.4): executions started and ended by playbook, trigger and status, step durations by app, action and status, step failures by kind, executions running and queued, the store's write time and batch size, HTTP requests by route, method and status, and the build. Labels are bounded: no execution id, at most 1,000 names (`other` past them). Takes the server's own token (the metrics count every tenant's), or nothing from a loopback address with `--metrics-from-loopback`.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The metrics.",
            body: Body::Media("text/plain; version=0.0.4", "Prometheus's text format"),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/playbooks",
        summary: "Every playbook (seed 003's record).",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "Every playbook.",
            body: Body::Json(playbooks),
        }],
    },
    Operation {
        method: "post",
        path: "/api/v1/playbooks",
        summary: "Create a playbook from its YAML or JSON definition, validated first.",
        query: &[],
        request: Body::Json(of::<crate::playbook::PlaybookSpec>),
        replies: &[Reply {
            status: "201",
            description: "Created.",
            body: Body::Json(playbook),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/playbooks/{id}",
        summary: "One playbook, by its id, number or XID.",
        query: &[],
        request: Body::None,
        replies: OK_PLAYBOOK,
    },
    Operation {
        method: "put",
        path: "/api/v1/playbooks/{id}",
        summary: "Replace a playbook's definition.",
        query: &[],
        request: Body::Json(of::<crate::playbook::PlaybookSpec>),
        replies: OK_PLAYBOOK,
    },
    Operation {
        method: "delete",
        path: "/api/v1/playbooks/{id}",
        summary: "Soft-delete a playbook.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The deleted playbook's record.",
            body: Body::Json(of::<crate::store::PlaybookRecord>),
        }],
    },
    Operation {
        method: "post",
        path: "/api/v1/playbooks/{id}/run",
        summary: "Run a playbook on the body as its trigger payload.",
        query: &[
            (
                "wait",
                "Answer when the execution has ended, with its record.",
            ),
            (
                "log_level",
                "Record at this level instead of the playbook's.",
            ),
            ("debug", "A debug run: TRACE, trigger type DEBUG."),
        ],
        request: Body::AnyJson("The trigger payload."),
        replies: &[STARTED, ENDED],
    },
    Operation {
        method: "get",
        path: "/api/v1/keys",
        summary: "Every API key (an admin's): who each is, never a secret.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "Every key, oldest first.",
            body: Body::Json(of::<Listing<crate::store::ApiKey>>),
        }],
    },
    Operation {
        method: "post",
        path: "/api/v1/keys",
        summary: "Make an API key with a role (viewer, operator, admin); its token is in this answer only.",
        query: &[],
        request: Body::Json(of::<super::keys::NewKey>),
        replies: &[Reply {
            status: "201",
            description: "Made: the key and its token, shown once.",
            body: Body::Json(of::<super::keys::MadeKey>),
        }],
    },
    Operation {
        method: "delete",
        path: "/api/v1/keys/{id}",
        summary: "Revoke an API key: refused from now on (within 10 s on other processes).",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The revoked key.",
            body: Body::Json(of::<crate::store::ApiKey>),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/assets",
        summary: "Every asset (from the assets file and the API), secrets as references.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "Every asset.",
            body: Body::Json(assets),
        }],
    },
    Operation {
        method: "post",
        path: "/api/v1/assets",
        summary: "Create an asset (JSON or YAML with its `name`); secrets as {env} or {file} only.",
        query: &[],
        request: Body::Json(new_asset),
        replies: &[Reply {
            status: "201",
            description: "Created.",
            body: Body::Json(asset),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/assets/{name}",
        summary: "One asset.",
        query: &[],
        request: Body::None,
        replies: OK_ASSET,
    },
    Operation {
        method: "put",
        path: "/api/v1/assets/{name}",
        summary: "Create or replace an asset defined through the API.",
        query: &[],
        request: Body::Json(of::<crate::assets::AssetSpec>),
        replies: &[
            Reply {
                status: "200",
                description: "Replaced.",
                body: Body::Json(asset),
            },
            Reply {
                status: "201",
                description: "Created.",
                body: Body::Json(asset),
            },
        ],
    },
    Operation {
        method: "delete",
        path: "/api/v1/assets/{name}",
        summary: "Delete an asset defined through the API.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "Deleted.",
            body: Body::Json(asset),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/executions",
        summary: "Executions, newest first.",
        query: LIST,
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "A page of executions.",
            body: Body::Json(of::<ExecutionPage>),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}",
        summary: "One execution: status, nodes so far or at the end, steps, and the graph to draw.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The execution.",
            body: Body::Json(execution_record),
        }],
    },
    Operation {
        method: "post",
        path: "/api/v1/executions/{id}/kill",
        summary: "Kill a running execution.",
        query: &[],
        request: Body::None,
        replies: &[
            Reply {
                status: "202",
                description: "The kill is under way; the execution ends Killed.",
                body: Body::Json(of::<Killed>),
            },
            Reply {
                status: "409",
                description: "The execution is not running.",
                body: Body::Json(of::<Problem>),
            },
        ],
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}/steps",
        summary: "Every step run (iterations, attempts) with what was captured.",
        query: &[
            ("node", "Only this node."),
            ("tql", "A TQL query over step fields."),
        ],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The step runs, oldest first.",
            body: Body::Json(of::<Listing<crate::store::StepRunRow>>),
        }],
    },
    Operation {
        method: "post",
        path: "/api/v1/executions/{id}/steps/{node}/replay",
        summary: "Run one step again with its logged input (or {\"input\": …}) as a new execution.",
        query: &[
            ("iteration", "Which iteration of a for_each."),
            ("attempt", "Which attempt."),
            ("wait", "Answer when it has ended."),
        ],
        request: Body::Json(of::<ReplayBody>),
        replies: &[STARTED, ENDED],
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}/logs",
        summary: "App log lines, as JSON or CSV.",
        query: &[
            ("level", "This level and above."),
            ("q", "Text the message contains."),
            ("node", "Only this node."),
            ("iteration", "Only this iteration of a for_each."),
            ("format", "json or csv."),
        ],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The log lines (`format=csv`: a CSV file).",
            body: Body::Json(of::<Listing<crate::store::LogRow>>),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}/oslogs.zip",
        summary: "Each step run's stdout and stderr, zipped.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "A ZIP file, a stdout and a stderr file per step run.",
            body: Body::Media("application/zip", "The step runs' stdout and stderr."),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}/events",
        summary: "Server-Sent Events: a snapshot, then node and step events until the execution ends.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "An event stream.",
            body: Body::Media(
                "text/event-stream",
                "`snapshot`, then `node_started`, `node_ended`, `step_ended` and `execution_ended` events, each data line a JSON object.",
            ),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/events",
        summary: "Server-Sent Events of every execution.",
        query: &[(
            "types",
            "Only these events: node_started, node_ended, step_ended, execution_ended.",
        )],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "An event stream.",
            body: Body::Media(
                "text/event-stream",
                "Every execution's events, each data line a JSON object with its `execution_id`.",
            ),
        }],
    },
    Operation {
        method: "post",
        path: "/api/v1/events",
        summary: "An event: fires every enabled auto_execute playbook whose trigger_conditions hold.",
        query: &[],
        request: Body::AnyJson("The event: a JSON object of fields."),
        replies: &[Reply {
            status: "202",
            description: "What it fired.",
            body: Body::Json(of::<Fired>),
        }],
    },
    Operation {
        method: "post",
        path: "/api/v1/hooks/{id}",
        summary: "A webhook: runs the playbook with the request as its trigger payload (signed with X-Wasp-Signature-256 when the playbook has a secret).",
        query: &[
            ("wait", "Answer when it has ended (needs the API token)."),
            (
                "respond",
                "`output`: answer the playbook's declared output as the whole body.",
            ),
        ],
        request: Body::AnyJson(
            "Any body: the playbook reads it as `trigger.body`, with the headers and query.",
        ),
        replies: &[
            STARTED,
            Reply {
                status: "200",
                description: "With `wait=true`: the ended execution's whole record (as `POST /api/v1/playbooks/{id}/run?wait=true` answers). With `respond=output`: the playbook's declared `output:` as the whole body, with the status its `output_status:` gives (200 without one, any from 200 to 599).",
                body: Body::AnyJson("The record, or the playbook's output."),
            },
            Reply {
                status: "502",
                description: "With `respond=output`: the execution ended with no output (a reference to a node that did not succeed, no `output:` declared, or an `output_status:` that is not a status); why, and its id.",
                body: Body::AnyJson("`{error, execution_id}`"),
            },
        ],
    },
    Operation {
        method: "get",
        path: "/api/v1/steps",
        summary: "Step runs across executions.",
        query: LIST,
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "A page of step runs.",
            body: Body::Json(of::<Listing<crate::store::StepRunRow>>),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v1/logs",
        summary: "App log lines across executions.",
        query: LIST,
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "A page of log lines.",
            body: Body::Json(of::<Listing<crate::store::LogRow>>),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v3/playbook/executions",
        summary: "ThreatConnect: executions filtered by TQL.",
        query: &[
            ("tql", "A TQL query."),
            ("resultStart", "Skip this many."),
            (
                "resultLimit",
                "At most this many (default 100, at most 10,000).",
            ),
            ("count", "Add the total."),
            (
                "sorting",
                "Keys separated by commas, each a TQL field with asc or desc and optionally nullsfirst or nullslast (default: id desc).",
            ),
        ],
        request: Body::AnyJson(
            "Optional: the query parameters as `{\"data\": {\"tql\": …}}`, as tcex sends a query string of 2,000 characters or more.",
        ),
        replies: &[Reply {
            status: "200",
            description: "`{status, data, count?}`, as ThreatConnect answers.",
            body: Body::Vendor("ThreatConnect's v3 playbook execution answers, in their shape."),
        }],
    },
    Operation {
        method: "options",
        path: "/api/v3/playbook/executions",
        summary: "ThreatConnect: the record's fields (?show=readonly).",
        query: &[("show", "readonly")],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The fields.",
            body: Body::Vendor("ThreatConnect's v3 playbook execution answers, in their shape."),
        }],
    },
    Operation {
        method: "options",
        path: "/api/v3/playbook/executions/tql",
        summary: "ThreatConnect: the TQL fields and their types.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The TQL fields.",
            body: Body::Vendor("ThreatConnect's v3 playbook execution answers, in their shape."),
        }],
    },
    Operation {
        method: "get",
        path: "/api/v3/playbook/executions/{id}",
        summary: "ThreatConnect: one execution.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "`{status, data}`.",
            body: Body::Vendor("ThreatConnect's v3 playbook execution answers, in their shape."),
        }],
    },
    Operation {
        method: "get",
        path: "/rest/version",
        summary: "Splunk SOAR: the version, which its clients read first to check their credentials (wasp's own).",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "`{version, product}`.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "get",
        path: "/rest/action_run",
        summary: "Splunk SOAR: action runs.",
        query: SOAR_LIST,
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "`{count, num_pages, data}`.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "post",
        path: "/rest/action_run",
        summary: "Splunk SOAR: run an app action against targets.",
        query: &[],
        request: SOAR_RECORDS,
        replies: &[Reply {
            status: "200",
            description: "`{success, action_run_id}`.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "get",
        path: "/rest/action_run/{id}",
        summary: "Splunk SOAR: an action run.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The action run.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "post",
        path: "/rest/action_run/{id}",
        summary: "Splunk SOAR: cancel an action run ({\"cancel\": true}).",
        query: &[],
        request: SOAR_RECORDS,
        replies: &[Reply {
            status: "200",
            description: "`{success}`.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "get",
        path: "/rest/action_run/{id}/app_runs",
        summary: "Splunk SOAR: an action run's app runs (`include_expensive` adds result_data).",
        query: SOAR_LIST,
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "`{count, num_pages, data}`.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "get",
        path: "/rest/app_run",
        summary: "Splunk SOAR: every app run.",
        query: SOAR_LIST,
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "`{count, num_pages, data}`.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "get",
        path: "/rest/app_run/{id}",
        summary: "Splunk SOAR: an app run with its results.",
        query: &[],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "The app run.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "get",
        path: "/rest/app_run/{id}/action_result",
        summary: "Splunk SOAR: an app run's results, one per parameter set.",
        query: &[("page", "From 0."), ("page_size", "0 means all.")],
        request: Body::None,
        replies: &[Reply {
            status: "200",
            description: "`{count, num_pages, data}`.",
            body: SOAR_RECORDS,
        }],
    },
    Operation {
        method: "post",
        path: "/v1/{project_id}/workspaces/{workspace_id}/soc/playbooks/instances/auditlogs",
        summary: "SecMaster: instance audit logs.",
        query: &[
            ("offset", "Required, from 0."),
            ("limit", "Required, from 1; offset + limit ≤ 10,000."),
            ("sort_key", "start_time or end_time."),
            ("sort_dir", "asc or desc."),
        ],
        request: Body::Vendor("SecMaster's playbook instance audit log records."),
        replies: &[Reply {
            status: "200",
            description: "`{total, audit_logs}`.",
            body: Body::Vendor("SecMaster's playbook instance audit log records."),
        }],
    },
];

/// Operations that need no token: the health check, and webhooks (a signed one is
/// authenticated by its signature; an unsigned one asks for the token with `wait`).
const UNAUTHENTICATED: &[&str] = &["/healthz", "/readyz", "/api/v1/hooks/{id}"];

/// The document.
pub fn document() -> Value {
    // Answers are described as wasp writes them, bodies as it reads them.
    let settings = |contract| {
        SchemaSettings::draft2020_12().with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.contract = contract;
            settings.meta_schema = None;
        })
    };
    let mut answers = settings(Contract::Serialize).into_generator();
    let mut requests = settings(Contract::Deserialize).into_generator();
    let problem = answers.subschema_for::<Problem>();
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let mut parameters: Vec<Value> = path_parameters(operation.path)
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(operation.query.iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "description": description, "schema": {"type": "string"}})
        }));
        let mut responses = Map::new();
        for reply in operation.replies {
            let mut response = json!({"description": reply.description});
            if let Some(content) = content(reply.body, &mut answers) {
                response["content"] = content;
            }
            responses.insert(reply.status.to_owned(), response);
        }
        for (status, description) in [
            (
                "4XX",
                "Bad input, or not allowed: the body says what to fix.",
            ),
            (
                "5XX",
                "wasp failed (the cause is in its log), or is still loading (503, Retry-After).",
            ),
        ] {
            responses.insert(
                status.to_owned(),
                json!({"description": description, "content": {"application/json": {"schema": problem}}}),
            );
        }
        let mut entry = json!({
            "summary": operation.summary,
            "parameters": parameters,
            "responses": responses,
        });
        if UNAUTHENTICATED.contains(&operation.path) {
            entry["security"] = json!([]);
        }
        if let Some(content) = content(operation.request, &mut requests) {
            entry["requestBody"] = json!({"content": content});
        }
        let item = paths
            .entry(operation.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[operation.method] = entry;
    }
    let mut schemas = requests.take_definitions(true);
    // A type in both (an asset's definition) is described as it is answered.
    schemas.extend(answers.take_definitions(true));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wasp",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "WebAssembly Sandboxed Playbooks: the native API, and the \
                ThreatConnect, Splunk SOAR and SecMaster views over the same executions. \
                With a token configured, send it as `Authorization: Bearer <token>`, or in a \
                vendor client's scheme: `Authorization: TC-Token <token>`, `ph-auth-token`, \
                `X-Auth-Token`.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "tcToken": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "ThreatConnect's `TC-Token <token>`."},
                "phAuthToken": {"type": "apiKey", "in": "header", "name": "ph-auth-token", "description": "Splunk SOAR's token header."},
                "xAuthToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token", "description": "Huawei SecMaster's token header."},
            },
            "schemas": schemas,
        },
        "security": [{"bearer": []}, {"tcToken": []}, {"phAuthToken": []}, {"xAuthToken": []}],
        "paths": paths,
    })
}

/// The `content` of a body, its schemas gathered by `generator`; `None` for no body.
fn content(body: Body, generator: &mut SchemaGenerator) -> Option<Value> {
    Some(match body {
        Body::None => return None,
        Body::Json(schema) => json!({"application/json": {"schema": schema(generator)}}),
        Body::AnyJson(description) => {
            json!({"application/json": {"schema": {"description": description}}})
        }
        Body::Vendor(description) => {
            json!({"application/json": {"schema": {"type": "object", "description": description}}})
        }
        Body::Media(media, description) => {
            json!({media: {"schema": {"type": "string", "description": description}}})
        }
    })
}

/// The `{names}` in `path`.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// The reference of the HTTP API in Markdown (`docs/http-api.md`), from the document,
/// so that it says what the server does: a test compares the file with it.
pub fn markdown() -> String {
    let document = document();
    let mut out = String::from(
        "# The HTTP API\n\n\
         <!-- Generated from the OpenAPI document by `wasp schema http-api`; a test keeps \
         it equal. Do not edit by hand. -->\n\n\
         `wasp serve` answers these; `GET /api/v1/openapi.json` is the same as an OpenAPI \
         3.1 document (`wasp schema openapi` prints it), for generating clients. With a \
         token configured, every operation but the health check and signed webhooks needs \
         it, or an API key's token (`/api/v1/keys`), as `Authorization: Bearer <token>` \
         or in a vendor client's scheme (`Authorization: TC-Token <token>`, \
         `ph-auth-token: <token>`, `X-Auth-Token: <token>`), each accepted on every path. \
         A key's role decides what it may do: a `viewer` reads (SecMaster's audit-log \
         search too), an `operator` also changes and runs, an `admin` also manages assets \
         and keys; beyond its role a request is answered 403. A revoked key is refused \
         from then on; requests it already has open (an event stream, a `wait`) run to \
         their end. A key acts in one tenant (`wasp keys create --tenant T`; the \
         server's own token and a server without one act in `default`): what it makes \
         is that tenant's, every list and stream shows only that tenant's records, and \
         another tenant's record answers 404, as a missing one. Playbook ids and asset \
         names are one namespace: one another tenant has is taken (409). The playbooks \
         and assets of files are `default`'s. In SecMaster's paths the workspace is the \
         tenant: any other workspace id is refused (400, `SecMaster.20010001`). An admin \
         key manages its own tenant's keys; the server's own token, every tenant's. \
         Vendor clients may sign instead: ThreatConnect's HMAC (`Authorization: TC \
         <key id>:<signature>` with `Timestamp`, for reads) and Huawei Cloud's AK/SK \
         (`SDK-HMAC-SHA256`, with `X-Sdk-Date`), the key's id the access id and its \
         signing secret (on a server with `--key-file`) the secret; Splunk SOAR's basic \
         auth takes a token as its password, and starts a web session (`sessionid`, \
         with `csrftoken` to send as `X-CSRFToken` with a change). With `--jwt-key`, an identity provider's \
         JSON Web Tokens are accepted as tokens: `sub` is who writes, `tenant_id` the \
         tenant, `role` the role (a viewer's without), and `app_id` limits the caller to \
         that application's playbooks and their executions (and manages no keys). \
         Every operation may also answer `4XX` (bad input \
         or not allowed) and `5XX` (wasp failed, or is still loading: 503 with \
         `Retry-After`) with a [Problem](#problem).\n\n\
         The ThreatConnect, Splunk SOAR and SecMaster views answer in each vendor's own \
         shape, for its clients (the README's \"Serving\" says what each view covers). \
         `/api/v1/soc/playbooks…` (seed 003's path) answers as `/api/v1/playbooks…` does.\n\n## Operations\n",
    );
    // In the table's order, which groups them as the README does.
    for Operation { method, path, .. } in OPERATIONS {
        let operation = &document["paths"][path][method];
        {
            let _ = write!(
                out,
                "\n### `{} {path}`\n\n{}\n",
                method.to_uppercase(),
                operation["summary"].as_str().unwrap_or_default()
            );
            let parameters: Vec<&Value> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .collect();
            if !parameters.is_empty() {
                out.push_str("\n| query | |\n|---|---|\n");
                for parameter in parameters {
                    let _ = writeln!(
                        out,
                        "| `{}` | {} |",
                        parameter["name"].as_str().unwrap_or_default(),
                        cell(parameter["description"].as_str().unwrap_or_default())
                    );
                }
            }
            if let Some(body) = body(&operation["requestBody"]) {
                let _ = writeln!(out, "\nBody: {body}");
            }
            out.push_str("\n| answer | | body |\n|---|---|---|\n");
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                if status.ends_with("XX") {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "| {status} | {} | {} |",
                    cell(response["description"].as_str().unwrap_or_default()),
                    cell(&body(response).unwrap_or_default())
                );
            }
        }
    }
    out.push_str("\n## Schemas\n");
    let schemas = document["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, schema) in &schemas {
        let _ = write!(out, "\n### {name}\n");
        if let Some(description) = schema["description"].as_str() {
            let _ = write!(out, "\n{description}\n");
        }
        if let Some(properties) = schema["properties"].as_object() {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str("\n| field | type | |\n|---|---|---|\n");
            for (field, property) in properties {
                let optional = if required.contains(&field.as_str()) {
                    ""
                } else {
                    " (optional)"
                };
                let _ = writeln!(
                    out,
                    "| `{field}`{optional} | {} | {} |",
                    cell(&kind(property)),
                    cell(property["description"].as_str().unwrap_or_default())
                );
            }
        } else {
            let _ = writeln!(out, "\n{}", kind(schema));
        }
    }
    out
}

/// What the body of a request or response holds: its schema in a few words, after its
/// media type when that is not JSON.
fn body(holder: &Value) -> Option<String> {
    let (media, content) = holder["content"].as_object()?.iter().next()?;
    let schema = &content["schema"];
    Some(if media == "application/json" {
        match schema.as_object() {
            // Any JSON, said in words.
            Some(fields) if fields.keys().all(|key| key == "description") => schema["description"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            _ => kind(schema),
        }
    } else {
        format!(
            "`{media}`: {}",
            schema["description"].as_str().unwrap_or_default()
        )
    })
}

/// `text` fit for a table cell: on one line, with no column separator.
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

/// What a schema is, in a few words: a link to a named one, `[T]`, `T or null`, a
/// type, the values of an enumeration, or its description.
fn kind(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        return values.join(", ");
    }
    if let Some(value) = schema.get("const") {
        return format!("`{value}`");
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(parts) = schema[combinator].as_array() {
            let parts: Vec<String> = parts
                .iter()
                .filter(|part| part["type"] != "null")
                .map(kind)
                .collect();
            let joiner = if combinator == "allOf" {
                " and "
            } else {
                " or "
            };
            let nullable = schema[combinator]
                .as_array()
                .is_some_and(|all| all.iter().any(|part| part["type"] == "null"));
            return format!(
                "{}{}",
                parts.join(joiner),
                if nullable { " or null" } else { "" }
            );
        }
    }
    match &schema["type"] {
        Value::String(kind) if kind == "array" => format!("[{}]", self::kind(&schema["items"])),
        Value::String(kind) if kind == "object" && schema["properties"].is_object() => {
            let fields: Vec<String> = schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            format!("object with {}", fields.join(", "))
        }
        Value::String(kind) => match schema["format"].as_str() {
            Some(format) => format!("{kind} ({format})"),
            None => kind.clone(),
        },
        Value::Array(kinds) => {
            let kinds: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
            let nullable = kinds.contains(&"null");
            let named: Vec<String> = kinds
                .iter()
                .filter(|k| **k != "null")
                .map(|k| {
                    if *k == "array" {
                        format!("[{}]", kind(&schema["items"]))
                    } else {
                        (*k).to_owned()
                    }
                })
                .collect();
            format!(
                "{}{}",
                named.join(" or "),
                if nullable { " or null" } else { "" }
            )
        }
        _ => "any JSON".to_owned(),
    }
}
