//! `switch`: the operator that routes a playbook to the case a value matches.
//!
//! The `route` action compares `value` with each case in turn and takes the pathway
//! named by the first case that matches, or the `default` pathway (named `default`
//! unless the input says otherwise) when none does:
//!
//! ```json
//! { "value": "${classify.output.category}",
//!   "cases": { "internal": ["private", "loopback", "link_local"], "carrier": "cgnat" },
//!   "default": "external" }
//! ```
//!
//! A case's value is one value or a list of values: the case matches a value equal to
//! it or to one of the list's elements. Equality is the `if-else` operator's `==`:
//! numbers by value, a numeric string equal to its number, other values as JSON; with
//! `ignore_case`, strings compare without regard to case.
//!
//! Cases are tried in the order they are written. That order survives only if every
//! hop between the playbook author and this app keeps the key order of JSON objects;
//! where one may not, write `cases` as a list, which keeps its order anywhere:
//! `[{"pathway": "internal", "value": ["private", "loopback"]}, …]`. The order is read
//! while decoding the input, so this crate needs no `serde_json` `preserve_order`.
//!
//! # Pathways
//!
//! The action declares the single pathway `*`: its pathways are not fixed by the app
//! but named by the node's input (each case's name and the default). A playbook's edges
//! from a switch node use those names in `on:`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use wasp_sdk::{Action, App, Routed, StepError, debug};

/// A value to route on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    /// The value to route on.
    pub value: Value,
    /// The cases, in the order they are tried: an object from pathway name to a value
    /// or a list of values, or a list of `{pathway, value}` objects.
    pub cases: Cases,
    /// The pathway taken when no case matches; `default` when absent.
    #[serde(default)]
    pub default: Option<String>,
    /// Compare strings without regard to case.
    #[serde(default)]
    pub ignore_case: bool,
}

/// One case: a pathway and the value or values that select it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The pathway taken when the case matches.
    pub pathway: String,
    /// A value, or a list of values, that selects the pathway.
    pub value: Value,
}

/// The cases in the order written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cases(pub Vec<Case>);

impl<'de> Deserialize<'de> for Cases {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CasesVisitor)
    }
}

struct CasesVisitor;

impl CasesVisitor {
    fn check<E: de::Error>(cases: Vec<Case>) -> Result<Cases, E> {
        let mut seen = HashSet::new();
        for case in &cases {
            if case.pathway.trim().is_empty() {
                return Err(E::custom("a case has an empty pathway name"));
            }
            if !seen.insert(case.pathway.as_str()) {
                return Err(E::custom(format!("case `{}` appears twice", case.pathway)));
            }
        }
        Ok(Cases(cases))
    }
}

impl<'de> Visitor<'de> for CasesVisitor {
    type Value = Cases;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object from pathway name to value, or a list of {pathway, value}")
    }

    // The map is read entry by entry, so the cases keep the order of the input text
    // whatever map type `serde_json` is built with.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cases, A::Error> {
        let mut cases = Vec::new();
        while let Some((pathway, value)) = map.next_entry::<String, Value>()? {
            cases.push(Case { pathway, value });
        }
        Self::check(cases)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cases, A::Error> {
        let mut cases = Vec::new();
        while let Some(case) = seq.next_element::<Case>()? {
            cases.push(case);
        }
        Self::check(cases)
    }
}

impl JsonSchema for Cases {
    fn schema_name() -> Cow<'static, str> {
        "Cases".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Pathway name to a value or list of values, tried in order.",
            "oneOf": [
                { "type": "object" },
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": { "pathway": { "type": "string" }, "value": {} },
                        "required": ["pathway", "value"],
                        "additionalProperties": false
                    }
                }
            ]
        })
    }
}

/// Where `route` sent the value.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
#[cfg_attr(test, derive(Deserialize))]
pub struct RouteOutput {
    /// The value routed on, as given.
    pub value: Value,
    /// The pathway taken.
    pub pathway: String,
    /// Whether a case matched (false when the default pathway was taken).
    pub matched: bool,
}

/// `==` as in `if-else`: numbers by value, a numeric string equal to its number, JSON
/// equality otherwise.
fn equal(left: &Value, right: &Value, ignore_case: bool) -> bool {
    match (left, right) {
        (Value::String(a), Value::String(b)) if ignore_case => a.to_lowercase() == b.to_lowercase(),
        _ => wasp_sdk::json::loose_eq(left, right),
    }
}

/// Whether `case` selects `value`: equal to it, or, for a list, to one of its elements.
fn selects(case: &Value, value: &Value, ignore_case: bool) -> bool {
    let in_list = |items: &[Value]| items.iter().any(|item| equal(item, value, ignore_case));
    equal(case, value, ignore_case) || matches!(case, Value::Array(items) if in_list(items))
}

/// Route `input.value` to the first matching case, or to the default pathway.
pub fn route(input: RouteInput) -> Result<RouteOutput, StepError> {
    let default = input.default.unwrap_or_else(|| "default".to_owned());
    if default.trim().is_empty() {
        return Err(StepError::invalid_input(
            "`default` is an empty pathway name",
        ));
    }
    let found = input
        .cases
        .0
        .iter()
        .find(|case| selects(&case.value, &input.value, input.ignore_case));
    Ok(RouteOutput {
        pathway: found.map_or(default, |case| case.pathway.clone()),
        matched: found.is_some(),
        value: input.value,
    })
}

struct Switch;

impl App for Switch {
    const DESCRIPTION: &'static str =
        "Route to the pathway of the first case that matches a value, or to a default.";

    fn actions() -> Vec<Action> {
        vec![Action::routed(
            "route",
            "Take the pathway of the first case matching `value`; the default pathway otherwise.",
            // The pathways are the names the node's input gives its cases.
            &["*"],
            |input: RouteInput| {
                let output = route(input)?;
                debug!(pathway = output.pathway, matched = output.matched; "routed");
                Ok(Routed::new(output.pathway.clone(), output))
            },
        )]
    }
}

wasp_sdk::export_app!(Switch);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasp_sdk::ErrorCode;

    /// Run `route` on the JSON text `input`, as the host does: the pathway and output.
    fn run(input: &str) -> Result<(String, RouteOutput), StepError> {
        let outcome = wasp_sdk::run::<Switch>("route", input)?;
        let output: RouteOutput = serde_json::from_str(&outcome.output).unwrap();
        let pathway = outcome.pathway.unwrap();
        assert_eq!(pathway, output.pathway);
        Ok((pathway, output))
    }

    /// Route on an `ip-classify` category.
    fn by_category(category: &str) -> RouteOutput {
        let input = json!({
            "value": category,
            "cases": { "internal": ["private", "loopback", "link_local"], "carrier": "cgnat" },
            "default": "external"
        });
        run(&input.to_string()).unwrap().1
    }

    #[test]
    fn routes_to_the_matching_case_or_the_default() {
        assert_eq!(
            by_category("private"),
            RouteOutput {
                value: json!("private"),
                pathway: "internal".to_owned(),
                matched: true,
            }
        );
        assert_eq!(by_category("link_local").pathway, "internal");
        assert_eq!(by_category("cgnat").pathway, "carrier");
        assert_eq!(
            by_category("public"),
            RouteOutput {
                value: json!("public"),
                pathway: "external".to_owned(),
                matched: false,
            }
        );
    }

    #[test]
    fn the_first_case_in_written_order_wins() {
        // "malicious" is in both cases; whichever is written first wins, although
        // `serde_json` here sorts object keys (no `preserve_order`).
        let review_written_first = r#"{"value":"malicious","cases":{"review":["suspicious","malicious"],"block":"malicious"}}"#;
        assert_eq!(run(review_written_first).unwrap().0, "review");
        let block_written_first = r#"{"value":"malicious","cases":{"block":"malicious","review":["suspicious","malicious"]}}"#;
        assert_eq!(run(block_written_first).unwrap().0, "block");
        // The same with cases as a list.
        let listed = r#"{"value":"malicious","cases":[
            {"pathway":"review","value":["suspicious","malicious"]},
            {"pathway":"block","value":"malicious"}]}"#;
        assert_eq!(run(listed).unwrap().0, "review");
    }

    #[test]
    fn default_pathway_is_named_default() {
        let (pathway, output) =
            run(r#"{"value":"unknown","cases":{"block":"malicious"}}"#).unwrap();
        assert_eq!((pathway.as_str(), output.matched), ("default", false));
        let (pathway, _) = run(r#"{"value":1,"cases":{}}"#).unwrap();
        assert_eq!(pathway, "default");
    }

    #[test]
    fn values_compare_like_if_else_equality() {
        let route_value = |value: Value| {
            let input = json!({
                "value": value,
                "cases": { "web": [80, 443, 8080], "dns": "53", "pair": ["a", "b"], "cfg": { "mode": "strict" } }
            });
            run(&input.to_string()).unwrap().0
        };
        assert_eq!(route_value(json!(443)), "web");
        assert_eq!(route_value(json!("443")), "web");
        assert_eq!(route_value(json!(443.0)), "web");
        assert_eq!(route_value(json!(53)), "dns");
        // A list case also matches the list itself.
        assert_eq!(route_value(json!(["a", "b"])), "pair");
        assert_eq!(route_value(json!("b")), "pair");
        assert_eq!(route_value(json!({ "mode": "strict" })), "cfg");
        assert_eq!(route_value(json!("WEB")), "default");
        assert_eq!(route_value(json!(null)), "default");
    }

    #[test]
    fn ignore_case() {
        let input = r#"{"value":"HIGH","cases":{"page":["critical","high"]},"ignore_case":true}"#;
        assert_eq!(run(input).unwrap().0, "page");
        let input = r#"{"value":"HIGH","cases":{"page":["critical","high"]}}"#;
        assert_eq!(run(input).unwrap().0, "default");
    }

    #[test]
    fn malformed_cases_are_invalid_input() {
        for (input, expected) in [
            (
                r#"{"value":1,"cases":{"a":1,"a":2}}"#,
                "case `a` appears twice",
            ),
            (
                r#"{"value":1,"cases":{"":1}}"#,
                "a case has an empty pathway name",
            ),
            (
                r#"{"value":1,"cases":[{"pathway":"a","values":[1]}]}"#,
                "unknown field `values`",
            ),
            (
                r#"{"value":1,"cases":"a"}"#,
                "expected an object from pathway name to value",
            ),
            (r#"{"value":1}"#, "missing field `cases`"),
        ] {
            let e = run(input).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput);
            assert!(e.message().contains(expected), "{input}: {}", e.message());
        }
        let e = run(r#"{"value":1,"cases":{},"default":" "}"#).unwrap_err();
        assert_eq!(e.message(), "`default` is an empty pathway name");
    }

    #[test]
    fn describe_declares_the_wildcard_pathway() {
        let info = wasp_sdk::describe::<Switch>("switch", "0.1.0");
        assert_eq!(info.actions[0].pathways, ["*"]);
        let schema: Value = serde_json::from_str(&info.actions[0].input_schema).unwrap();
        assert_eq!(schema["required"], json!(["value", "cases"]));
    }
}
