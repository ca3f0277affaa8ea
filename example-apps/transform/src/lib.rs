//! `transform`: shape JSON between steps with JSONPath (RFC 9535).
//!
//! Playbook steps rarely produce exactly what the next step wants: a SIEM alert nests
//! its hosts and users, an enrichment returns one result per indicator. These actions
//! pick, rename, flatten, de-duplicate, count and join values without writing code:
//!
//! - `select`: every value a path selects.
//! - `reshape`: a new object whose fields are paths into the data. A field takes the
//!   first value its path selects (null when none); a field named in `many` takes the
//!   list of every value instead (empty when none).
//! - `flatten`: an object of key paths (`hosts.0.ip`, array elements by index) to
//!   scalar values; empty objects and arrays are kept as values so that nothing
//!   disappears. Two paths that flatten to the same key fail the step rather than
//!   lose a value.
//! - `dedupe`: items without repeats, keeping the first; `key` compares items by what a
//!   path selects in each instead of by the whole item.
//! - `count`: how many items hold each value, of the whole item or of what `by`
//!   selects in it.
//! - `join`: items as one text, strings as they are and other values as JSON.
//!
//! Paths follow RFC 9535 (`$.hosts[*].ip`, `$..user`, `$.users[?@.risk > 50].upn`), as
//! implemented by the `serde_json_path` crate. A path that does not parse fails the
//! step with `invalid-input`, naming the path and where it went wrong.

use std::collections::{BTreeMap, HashSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;
use wasp_sdk::json::type_name;
use wasp_sdk::{Action, App, StepError, debug};

/// Input of `select`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectInput {
    /// The document to query.
    pub data: Value,
    /// A JSONPath query, e.g. `$.hosts[*].ip`.
    pub path: String,
}

/// Output of `select`.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct SelectOutput {
    /// Every value the path selects, in document order.
    pub values: Vec<Value>,
}

/// Input of `reshape`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReshapeInput {
    /// The document to read from.
    pub data: Value,
    /// The output's fields: each name maps to a JSONPath query into `data`.
    pub fields: BTreeMap<String, String>,
    /// Names of fields that take the list of every value their path selects, rather
    /// than the first one.
    #[serde(default)]
    pub many: Vec<String>,
}

/// Input of `flatten`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlattenInput {
    /// An object or array to flatten.
    pub data: Value,
    /// What joins the keys of a path; `.` by default.
    #[serde(default = "default_key_separator")]
    pub separator: String,
}

fn default_key_separator() -> String {
    ".".to_owned()
}

/// Input of `dedupe`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupeInput {
    /// The items.
    pub items: Vec<Value>,
    /// A JSONPath query applied to each item; items are repeats when it selects equal
    /// values in them (the same list of values, when it selects several; items where it
    /// selects nothing are repeats of each other). Whole items are compared when absent.
    #[serde(default)]
    pub key: Option<String>,
}

/// Output of `dedupe`.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct DedupeOutput {
    /// The first item of each group of repeats, in input order.
    pub items: Vec<Value>,
    /// How many items were dropped as repeats.
    pub removed: usize,
}

/// Input of `count`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountInput {
    /// The items.
    pub items: Vec<Value>,
    /// A JSONPath query applied to each item, whose values are counted; an item in
    /// which it selects several distinct values counts once for each. The whole item is
    /// counted when absent.
    #[serde(default)]
    pub by: Option<String>,
}

/// Output of `count`.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct CountOutput {
    /// The number of items.
    pub total: usize,
    /// For each value, the number of items holding it. Keys are strings as they are
    /// and other values as JSON (`42`, `true`, `null`).
    pub counts: BTreeMap<String, usize>,
    /// The number of items in which `by` selects nothing.
    pub missing: usize,
}

/// Input of `join`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinInput {
    /// The items to join.
    pub items: Vec<Value>,
    /// What goes between two items; `, ` by default.
    #[serde(default = "default_join_separator")]
    pub separator: String,
}

fn default_join_separator() -> String {
    ", ".to_owned()
}

/// Output of `join`.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct JoinOutput {
    /// The joined text.
    pub text: String,
}

/// Parse the JSONPath `path`, given as the input field `field`.
fn compile(field: &str, path: &str) -> Result<JsonPath, StepError> {
    JsonPath::parse(path).map_err(|e| {
        StepError::invalid_input(format!("`{field}` `{path}` is not a valid JSONPath: {e}"))
    })
}

/// Every value `path` selects in `data`.
pub fn select(data: &Value, path: &str) -> Result<Vec<Value>, StepError> {
    let path = compile("path", path)?;
    Ok(path.query(data).all().into_iter().cloned().collect())
}

/// A new object whose fields are paths into `data`.
pub fn reshape(
    data: &Value,
    fields: &BTreeMap<String, String>,
    many: &[String],
) -> Result<BTreeMap<String, Value>, StepError> {
    if let Some(unknown) = many.iter().find(|name| !fields.contains_key(*name)) {
        return Err(StepError::invalid_input(format!(
            "`many` names `{unknown}`, which is not one of `fields`"
        )));
    }
    fields
        .iter()
        .map(|(name, path)| {
            let nodes = compile(&format!("fields.{name}"), path)?.query(data);
            let value = if many.contains(name) {
                Value::Array(nodes.all().into_iter().cloned().collect())
            } else {
                nodes.first().cloned().unwrap_or(Value::Null)
            };
            Ok((name.clone(), value))
        })
        .collect()
}

/// Flatten `data` into key paths joined by `separator`.
pub fn flatten(data: &Value, separator: &str) -> Result<BTreeMap<String, Value>, StepError> {
    if !matches!(data, Value::Object(_) | Value::Array(_)) {
        return Err(StepError::invalid_input(format!(
            "`data` must be an object or an array to flatten, not {}",
            type_name(data)
        )));
    }
    let mut out = BTreeMap::new();
    flatten_into(data, String::new(), separator, &mut out)?;
    Ok(out)
}

fn flatten_into(
    value: &Value,
    prefix: String,
    separator: &str,
    out: &mut BTreeMap<String, Value>,
) -> Result<(), StepError> {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}{separator}{key}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                flatten_into(child, join(key), separator, out)?;
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                flatten_into(child, join(&index.to_string()), separator, out)?;
            }
        }
        leaf => {
            // `{"a.b": 1, "a": {"b": 2}}` gives `a.b` twice: refuse rather than drop one.
            if out.contains_key(&prefix) {
                return Err(StepError::invalid_input(format!(
                    "flattening gives the key `{prefix}` twice; choose another `separator`"
                )));
            }
            out.insert(prefix, leaf.clone());
        }
    }
    Ok(())
}

/// A text that is equal for equal JSON values, whatever the order of object keys.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{}:{}", Value::from(key.as_str()), canonical(value)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => {
            let body: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", body.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// `items` without repeats.
pub fn dedupe(items: Vec<Value>, key: Option<&str>) -> Result<DedupeOutput, StepError> {
    let key = key.map(|path| compile("key", path)).transpose()?;
    let total = items.len();
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for item in items {
        let identity = match &key {
            Some(path) => canonical(&Value::Array(
                path.query(&item).all().into_iter().cloned().collect(),
            )),
            None => canonical(&item),
        };
        if seen.insert(identity) {
            kept.push(item);
        }
    }
    Ok(DedupeOutput {
        removed: total - kept.len(),
        items: kept,
    })
}

/// A value as text: a string as it is, anything else as JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// How many items hold each value.
pub fn count(items: &[Value], by: Option<&str>) -> Result<CountOutput, StepError> {
    let by = by.map(|path| compile("by", path)).transpose()?;
    let mut counts = BTreeMap::new();
    let mut missing = 0;
    for item in items {
        let values: Vec<&Value> = match &by {
            Some(path) => path.query(item).all(),
            None => vec![item],
        };
        if values.is_empty() {
            missing += 1;
        }
        let distinct: HashSet<String> = values.into_iter().map(text_of).collect();
        for value in distinct {
            *counts.entry(value).or_insert(0) += 1;
        }
    }
    Ok(CountOutput {
        total: items.len(),
        counts,
        missing,
    })
}

/// `items` as one text.
pub fn join(items: &[Value], separator: &str) -> String {
    items
        .iter()
        .map(text_of)
        .collect::<Vec<_>>()
        .join(separator)
}

struct Transform;

impl App for Transform {
    const DESCRIPTION: &'static str =
        "Shape JSON with JSONPath: select, reshape, flatten, dedupe, count and join.";

    fn actions() -> Vec<Action> {
        vec![
            Action::new(
                "select",
                "Every value a JSONPath query selects in a document.",
                |input: SelectInput| {
                    let values = select(&input.data, &input.path)?;
                    debug!(path = input.path, values = values.len(); "selected");
                    Ok(SelectOutput { values })
                },
            ),
            Action::new(
                "reshape",
                "Build an object whose fields are JSONPath queries into a document.",
                |input: ReshapeInput| reshape(&input.data, &input.fields, &input.many),
            ),
            Action::new(
                "flatten",
                "Flatten nested objects and arrays into an object of key paths.",
                |input: FlattenInput| flatten(&input.data, &input.separator),
            ),
            Action::new(
                "dedupe",
                "Drop repeated items, comparing whole items or what a JSONPath selects.",
                |input: DedupeInput| dedupe(input.items, input.key.as_deref()),
            ),
            Action::new(
                "count",
                "Count the items holding each value, of the item or of what a JSONPath selects.",
                |input: CountInput| count(&input.items, input.by.as_deref()),
            ),
            Action::new(
                "join",
                "Join items into one text: strings as they are, other values as JSON.",
                |input: JoinInput| {
                    Ok::<_, StepError>(JoinOutput {
                        text: join(&input.items, &input.separator),
                    })
                },
            ),
        ]
    }
}

wasp_sdk::export_app!(Transform);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasp_sdk::ErrorCode;

    /// A SIEM alert as a correlation rule raises it: nested hosts, users, observables.
    fn alert() -> Value {
        json!({
            "alert": {
                "id": "INC-20240514-0042",
                "rule": "Impossible travel followed by inbox rule creation",
                "severity": "high",
                "score": 87,
                "created": "2024-05-14T09:20:11Z",
                "assignee": null
            },
            "hosts": [
                { "name": "WS-FIN-023", "ip": "10.20.3.23", "os": "Windows 11", "tags": ["finance", "vip"] },
                { "name": "WS-FIN-031", "ip": "10.20.3.31", "os": "Windows 11", "tags": ["finance"] },
                { "name": "SRV-EXCH-01", "ip": "10.0.5.10", "os": "Windows Server 2019", "tags": ["exchange"] }
            ],
            "users": [
                { "upn": "j.doe@contoso.com", "department": "Finance", "risk": 72 },
                { "upn": "a.smith@contoso.com", "department": "Finance", "risk": 15 }
            ],
            "observables": [
                { "type": "ip", "value": "185.220.101.47" },
                { "type": "domain", "value": "m365-verify.top" },
                { "type": "ip", "value": "185.220.101.47" },
                { "value": "m365-verify.top", "type": "domain" },
                { "type": "url", "value": "https://m365-verify.top/owa/auth.php" }
            ]
        })
    }

    fn observables() -> Vec<Value> {
        serde_json::from_value(alert()["observables"].clone()).unwrap()
    }

    #[test]
    fn select_paths_and_filters() {
        let data = alert();
        assert_eq!(
            select(&data, "$.hosts[*].ip").unwrap(),
            [json!("10.20.3.23"), json!("10.20.3.31"), json!("10.0.5.10")]
        );
        assert_eq!(
            select(&data, "$.users[?@.risk > 50].upn").unwrap(),
            [json!("j.doe@contoso.com")]
        );
        assert_eq!(select(&data, "$.alert.score").unwrap(), [json!(87)]);
        assert_eq!(
            select(&data, "$..tags[0]").unwrap(),
            [json!("finance"), json!("finance"), json!("exchange")]
        );
        assert!(select(&data, "$.alert.nothing").unwrap().is_empty());
    }

    #[test]
    fn reshape_takes_first_or_all_values() {
        let fields: BTreeMap<String, String> = [
            ("id", "$.alert.id"),
            ("severity", "$.alert.severity"),
            ("host", "$.hosts[*].name"),
            ("ips", "$.hosts[*].ip"),
            ("risky_users", "$.users[?@.risk >= 70].upn"),
            ("owner", "$.alert.owner"),
            ("assignee", "$.alert.assignee"),
            ("none", "$.nothing[*]"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let many = [
            "ips".to_owned(),
            "risky_users".to_owned(),
            "none".to_owned(),
        ];
        let out = reshape(&alert(), &fields, &many).unwrap();
        assert_eq!(
            serde_json::to_value(out).unwrap(),
            json!({
                "id": "INC-20240514-0042",
                "severity": "high",
                "host": "WS-FIN-023",
                "ips": ["10.20.3.23", "10.20.3.31", "10.0.5.10"],
                "risky_users": ["j.doe@contoso.com"],
                "owner": null,
                "assignee": null,
                "none": []
            })
        );

        let e = reshape(&alert(), &fields, &["hosts".to_owned()]).unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (
                ErrorCode::InvalidInput,
                "`many` names `hosts`, which is not one of `fields`"
            )
        );
    }

    #[test]
    fn flatten_indexes_arrays_and_keeps_empty_containers() {
        let mut data = alert();
        data["alert"]["labels"] = json!([]);
        data["extra"] = json!({});
        let flat = flatten(&data, ".").unwrap();
        assert_eq!(flat["alert.id"], json!("INC-20240514-0042"));
        assert_eq!(flat["alert.assignee"], json!(null));
        assert_eq!(flat["alert.labels"], json!([]));
        assert_eq!(flat["extra"], json!({}));
        assert_eq!(flat["hosts.2.name"], json!("SRV-EXCH-01"));
        assert_eq!(flat["hosts.0.tags.1"], json!("vip"));
        assert_eq!(flat["users.1.risk"], json!(15));
        assert_eq!(flat["observables.4.type"], json!("url"));
        // 7 alert fields, 3 hosts of 3 fields and 4 tags in all, 2 users of 3 fields,
        // 5 observables of 2, and `extra`.
        assert_eq!(flat.len(), 7 + 3 * 3 + 4 + 2 * 3 + 5 * 2 + 1);

        let flat = flatten(&json!([{ "user": { "upn": "j.doe@contoso.com" } }, 7]), "/").unwrap();
        assert_eq!(
            serde_json::to_string(&flat).unwrap(),
            r#"{"0/user/upn":"j.doe@contoso.com","1":7}"#
        );
    }

    #[test]
    fn flatten_refuses_scalars_and_colliding_keys() {
        let e = flatten(&json!("text"), ".").unwrap_err();
        assert_eq!(
            e.message(),
            "`data` must be an object or an array to flatten, not a string"
        );
        let e = flatten(&json!({ "a.b": 1, "a": { "b": 2 } }), ".").unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (
                ErrorCode::InvalidInput,
                "flattening gives the key `a.b` twice; choose another `separator`"
            )
        );
        assert_eq!(
            flatten(&json!({ "a.b": 1, "a": { "b": 2 } }), "/")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn dedupe_whole_items_and_by_key() {
        // Objects equal but for key order are repeats.
        let out = dedupe(observables(), None).unwrap();
        assert_eq!(out.removed, 2);
        assert_eq!(
            out.items,
            [
                json!({ "type": "ip", "value": "185.220.101.47" }),
                json!({ "type": "domain", "value": "m365-verify.top" }),
                json!({ "type": "url", "value": "https://m365-verify.top/owa/auth.php" }),
            ]
        );
        let out = dedupe(observables(), Some("$.type")).unwrap();
        assert_eq!((out.items.len(), out.removed), (3, 2));

        let hosts: Vec<Value> = serde_json::from_value(alert()["hosts"].clone()).unwrap();
        let out = dedupe(hosts, Some("$.os")).unwrap();
        let names: Vec<&Value> = out.items.iter().map(|h| &h["name"]).collect();
        assert_eq!(names, [&json!("WS-FIN-023"), &json!("SRV-EXCH-01")]);

        // Items where the key selects nothing are repeats of each other.
        let out = dedupe(
            vec![json!({ "a": 1 }), json!({ "b": 2 }), json!({ "k": 1 })],
            Some("$.k"),
        )
        .unwrap();
        assert_eq!(out.items, [json!({ "a": 1 }), json!({ "k": 1 })]);
    }

    #[test]
    fn count_by_value_and_by_path() {
        let hosts: Vec<Value> = serde_json::from_value(alert()["hosts"].clone()).unwrap();
        let out = count(&hosts, Some("$.os")).unwrap();
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({ "total": 3, "counts": { "Windows 11": 2, "Windows Server 2019": 1 }, "missing": 0 })
        );
        // Each item counts once per distinct tag.
        let mut tagged = hosts.clone();
        tagged.push(json!({ "name": "WS-NEW", "tags": ["finance", "finance"] }));
        tagged.push(json!({ "name": "WS-UNTAGGED" }));
        let out = count(&tagged, Some("$.tags[*]")).unwrap();
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({ "total": 5, "counts": { "exchange": 1, "finance": 3, "vip": 1 }, "missing": 1 })
        );
        let out = count(
            &[
                json!("high"),
                json!("low"),
                json!("high"),
                json!(3),
                json!(null),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({ "total": 5, "counts": { "3": 1, "high": 2, "low": 1, "null": 1 }, "missing": 0 })
        );
    }

    #[test]
    fn join_strings_as_is_and_others_as_json() {
        let items = [
            json!("10.20.3.23"),
            json!(443),
            json!(true),
            json!(null),
            json!({ "a": [1] }),
        ];
        assert_eq!(
            join(&items, " | "),
            r#"10.20.3.23 | 443 | true | null | {"a":[1]}"#
        );
        assert_eq!(join(&[], ", "), "");
    }

    #[test]
    fn bad_paths_are_invalid_input_naming_the_path() {
        let e = select(&alert(), "$.hosts[").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert_eq!(
            e.message(),
            "`path` `$.hosts[` is not a valid JSONPath: at position 7, parser error"
        );
        let fields = BTreeMap::from([("ip".to_owned(), "hosts[*].ip".to_owned())]);
        let e = reshape(&alert(), &fields, &[]).unwrap_err();
        assert!(
            e.message()
                .starts_with("`fields.ip` `hosts[*].ip` is not a valid JSONPath"),
            "{}",
            e.message()
        );
        let e = dedupe(vec![], Some("$[?")).unwrap_err();
        assert!(
            e.message()
                .starts_with("`key` `$[?` is not a valid JSONPath"),
            "{}",
            e.message()
        );
        let e = count(&[], Some("$$")).unwrap_err();
        assert!(
            e.message().starts_with("`by` `$$` is not a valid JSONPath"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn actions_run_through_the_sdk() {
        let run = |action: &str, input: Value| -> Value {
            let out = wasp_sdk::run::<Transform>(action, &input.to_string()).unwrap();
            serde_json::from_str(&out.output).unwrap()
        };
        assert_eq!(
            run(
                "select",
                json!({ "data": alert(), "path": "$.users[*].upn" })
            ),
            json!({ "values": ["j.doe@contoso.com", "a.smith@contoso.com"] })
        );
        assert_eq!(
            run(
                "reshape",
                json!({ "data": alert(), "fields": { "id": "$.alert.id", "ips": "$.hosts[*].ip" }, "many": ["ips"] })
            ),
            json!({ "id": "INC-20240514-0042", "ips": ["10.20.3.23", "10.20.3.31", "10.0.5.10"] })
        );
        assert_eq!(
            run(
                "flatten",
                json!({ "data": { "alert": { "id": "x", "score": 87 } } })
            ),
            json!({ "alert.id": "x", "alert.score": 87 })
        );
        assert_eq!(
            run("dedupe", json!({ "items": ["a", "b", "a"] })),
            json!({ "items": ["a", "b"], "removed": 1 })
        );
        assert_eq!(
            run("count", json!({ "items": ["a", "b", "a"] })),
            json!({ "total": 3, "counts": { "a": 2, "b": 1 }, "missing": 0 })
        );
        assert_eq!(
            run("join", json!({ "items": ["a", 1] })),
            json!({ "text": "a, 1" })
        );
        assert_eq!(
            run("join", json!({ "items": ["a", 1], "separator": "\n" })),
            json!({ "text": "a\n1" })
        );

        let e = wasp_sdk::run::<Transform>("select", r#"{"data":{},"path":"$.x","paths":[]}"#)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
    }
}
