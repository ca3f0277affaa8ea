//! The OpenAPI document served at `/api/v1/openapi.json`, built from one table of the
//! routes. A test walks the document and calls every operation on a real server, so a
//! route documented here and missing from the router fails the build.

use serde_json::{Map, Value, json};

/// A query parameter: its name and what it does.
type Param = (&'static str, &'static str);

/// One operation: method, path, summary, query parameters, and whether it takes a JSON
/// (or YAML) body.
struct Operation {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    query: &'static [Param],
    body: bool,
}

const LIST: &[Param] = &[
    (
        "tql",
        "A TQL query (OPTIONS /api/v3/playbook/executions/tql lists the fields).",
    ),
    ("offset", "Skip this many (default 0)."),
    ("limit", "At most this many, 1 to 10,000 (default 100)."),
    ("sort", "asc or desc."),
];

const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/api/v1/openapi.json",
        summary: "This document.",
        query: &[],
        body: false,
    },
    Operation {
        method: "get",
        path: "/healthz",
        summary: "`ok` while the process answers (no token needed; it says nothing else).",
        query: &[],
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/playbooks",
        summary: "Every playbook (seed 003's record).",
        query: &[],
        body: false,
    },
    Operation {
        method: "post",
        path: "/api/v1/playbooks",
        summary: "Create a playbook from its YAML or JSON definition, validated first.",
        query: &[],
        body: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/playbooks/{id}",
        summary: "One playbook, by its id, number or XID.",
        query: &[],
        body: false,
    },
    Operation {
        method: "put",
        path: "/api/v1/playbooks/{id}",
        summary: "Replace a playbook's definition.",
        query: &[],
        body: true,
    },
    Operation {
        method: "delete",
        path: "/api/v1/playbooks/{id}",
        summary: "Soft-delete a playbook.",
        query: &[],
        body: false,
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
        body: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/assets",
        summary: "Every asset (from the assets file and the API), secrets as references.",
        query: &[],
        body: false,
    },
    Operation {
        method: "post",
        path: "/api/v1/assets",
        summary: "Create an asset (JSON or YAML with its `name`); secrets as {env} or {file} only.",
        query: &[],
        body: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/assets/{name}",
        summary: "One asset.",
        query: &[],
        body: false,
    },
    Operation {
        method: "put",
        path: "/api/v1/assets/{name}",
        summary: "Create or replace an asset defined through the API.",
        query: &[],
        body: true,
    },
    Operation {
        method: "delete",
        path: "/api/v1/assets/{name}",
        summary: "Delete an asset defined through the API.",
        query: &[],
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/executions",
        summary: "Executions, newest first.",
        query: LIST,
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}",
        summary: "One execution: status, nodes so far or at the end, steps, and the graph to draw.",
        query: &[],
        body: false,
    },
    Operation {
        method: "post",
        path: "/api/v1/executions/{id}/kill",
        summary: "Kill a running execution.",
        query: &[],
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}/steps",
        summary: "Every step run (iterations, attempts) with what was captured.",
        query: &[
            ("node", "Only this node."),
            ("tql", "A TQL query over step fields."),
        ],
        body: false,
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
        body: true,
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
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}/oslogs.zip",
        summary: "Each step run's stdout and stderr, zipped.",
        query: &[],
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/executions/{id}/events",
        summary: "Server-Sent Events: a snapshot, then node and step events until the execution ends.",
        query: &[],
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/events",
        summary: "Server-Sent Events of every execution.",
        query: &[(
            "types",
            "Only these events: node_started, node_ended, step_ended, execution_ended.",
        )],
        body: false,
    },
    Operation {
        method: "post",
        path: "/api/v1/events",
        summary: "An event: fires every enabled auto_execute playbook whose trigger_conditions hold.",
        query: &[],
        body: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/hooks/{id}",
        summary: "A webhook: runs the playbook with the request as its trigger payload \
                  (signed with X-Wasp-Signature-256 when the playbook has a secret).",
        query: &[("wait", "Answer when it has ended.")],
        body: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/steps",
        summary: "Step runs across executions.",
        query: LIST,
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/logs",
        summary: "App log lines across executions.",
        query: LIST,
        body: false,
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
            ("sorting", "id asc or id desc."),
        ],
        body: false,
    },
    Operation {
        method: "options",
        path: "/api/v3/playbook/executions",
        summary: "ThreatConnect: the record's fields (?show=readonly).",
        query: &[("show", "readonly")],
        body: false,
    },
    Operation {
        method: "options",
        path: "/api/v3/playbook/executions/tql",
        summary: "ThreatConnect: the TQL fields and their types.",
        query: &[],
        body: false,
    },
    Operation {
        method: "get",
        path: "/api/v3/playbook/executions/{id}",
        summary: "ThreatConnect: one execution.",
        query: &[],
        body: false,
    },
    Operation {
        method: "post",
        path: "/rest/action_run",
        summary: "Splunk SOAR: run an app action against targets.",
        query: &[],
        body: true,
    },
    Operation {
        method: "get",
        path: "/rest/action_run/{id}",
        summary: "Splunk SOAR: an action run.",
        query: &[],
        body: false,
    },
    Operation {
        method: "post",
        path: "/rest/action_run/{id}",
        summary: "Splunk SOAR: cancel an action run ({\"cancel\": true}).",
        query: &[],
        body: true,
    },
    Operation {
        method: "get",
        path: "/rest/action_run/{id}/app_runs",
        summary: "Splunk SOAR: an action run's app runs.",
        query: &[
            ("page", "From 0."),
            ("page_size", "0 means all."),
            ("include_expensive", "Add result_data."),
        ],
        body: false,
    },
    Operation {
        method: "get",
        path: "/rest/app_run",
        summary: "Splunk SOAR: every app run.",
        query: &[("page", "From 0."), ("page_size", "0 means all.")],
        body: false,
    },
    Operation {
        method: "get",
        path: "/rest/app_run/{id}",
        summary: "Splunk SOAR: an app run with its results.",
        query: &[],
        body: false,
    },
    Operation {
        method: "get",
        path: "/rest/app_run/{id}/action_result",
        summary: "Splunk SOAR: an app run's results, one per parameter set.",
        query: &[("page", "From 0."), ("page_size", "0 means all.")],
        body: false,
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
        body: true,
    },
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let mut parameters: Vec<Value> = path_parameters(operation.path)
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(operation.query.iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "description": description, "schema": {"type": "string"}})
        }));
        let mut entry = json!({
            "summary": operation.summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "Success."},
                "4XX": {"description": "Bad input: the body says what to fix."},
            },
        });
        if operation.body {
            entry["requestBody"] = json!({
                "content": {"application/json": {"schema": {}}},
            });
        }
        let item = paths
            .entry(operation.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wasp",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "WebAssembly Sandboxed Playbooks: the native API, and the \
                ThreatConnect, Splunk SOAR and SecMaster views over the same executions. \
                With a token configured, send `Authorization: Bearer <token>`.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    })
}

/// The `{names}` in `path`.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}
