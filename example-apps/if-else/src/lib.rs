//! `if-else`: the operator that routes a playbook on a comparison.
//!
//! The `evaluate` action compares `left` with `right` and takes the pathway `true` or
//! `false`. Operators (each also spelled as the word after it):
//!
//! - `==` `eq`, `!=` `ne`: equality. Numbers compare by value (`1 == 1.0`); a string
//!   holding a number equals that number (`"85" == 85`); other values compare as JSON.
//! - `<` `lt`, `<=` `lte`, `>` `gt`, `>=` `gte`: numbers by value (a numeric string is
//!   coerced when the other side is a number), strings lexicographically (so RFC 3339
//!   timestamps in the same zone compare chronologically). Any other pair of types
//!   fails the step with `invalid-input`, naming both types.
//! - `contains`, `not_contains`: a substring of a string, an element of an array
//!   (compared like `==`), or a key of an object.
//! - `in`, `not_in`: the reverse: `left` is in the string, array or object `right`.
//! - `matches`: `left` matches the regular expression `right` (Rust `regex` syntax,
//!   unanchored: add `^…$` to match the whole text).
//!
//! A quantifier applies the operator to each element of an array `left`: an `any_` or
//! `all_` prefix on the operator (`any_gte`, `all_eq`) or the field `quantifier`. Over
//! an empty array `any` is false and `all` is true, as in logic (no element fails).
//! With `ignore_case`, strings compare without regard to case.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasp_sdk::json::{loose_eq as equal, numbers, type_name};
use wasp_sdk::{Action, App, Routed, StepError, debug};

/// A comparison to evaluate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateInput {
    /// The value tested, usually from an upstream step (`${lookup.output.score}`).
    pub left: Value,
    /// The operator: `==` `!=` `<` `<=` `>` `>=` (or `eq` `ne` `lt` `lte` `gt` `gte`),
    /// `contains`, `not_contains`, `matches`, `in`, `not_in`; optionally prefixed with
    /// `any_` or `all_`.
    pub op: String,
    /// The value `left` is compared with.
    pub right: Value,
    /// Apply the operator to each element of the array `left`.
    #[serde(default)]
    pub quantifier: Option<Quantifier>,
    /// Compare strings without regard to case.
    #[serde(default)]
    pub ignore_case: bool,
}

/// How the results over the elements of an array combine.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Quantifier {
    /// True when some element passes; false for an empty array.
    Any,
    /// True when every element passes; true for an empty array.
    All,
}

/// The outcome of `evaluate`; the step takes the pathway named by `result`.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
#[cfg_attr(test, derive(Deserialize))]
pub struct EvaluateOutput {
    /// Whether the comparison holds.
    pub result: bool,
    /// The operator, in its canonical spelling (`>=`, `contains`).
    pub op: String,
    /// The quantifier applied, if any.
    pub quantifier: Option<Quantifier>,
    /// The comparison in words, e.g. `85 >= 70 is true`.
    pub detail: String,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `contains`
    Contains,
    /// `not_contains`
    NotContains,
    /// `matches`
    Matches,
    /// `in`
    In,
    /// `not_in`
    NotIn,
}

const OPS: &str = "==, !=, <, <=, >, >=, eq, ne, lt, lte, gt, gte, contains, not_contains, \
                   matches, in, not_in (optionally prefixed with any_ or all_)";

impl Op {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "==" | "eq" => Self::Eq,
            "!=" | "ne" => Self::Ne,
            "<" | "lt" => Self::Lt,
            "<=" | "lte" => Self::Lte,
            ">" | "gt" => Self::Gt,
            ">=" | "gte" => Self::Gte,
            "contains" => Self::Contains,
            "not_contains" => Self::NotContains,
            "matches" => Self::Matches,
            "in" => Self::In,
            "not_in" => Self::NotIn,
            _ => return None,
        })
    }

    /// The canonical spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Lte => "<=",
            Self::Gt => ">",
            Self::Gte => ">=",
            Self::Contains => "contains",
            Self::NotContains => "not_contains",
            Self::Matches => "matches",
            Self::In => "in",
            Self::NotIn => "not_in",
        }
    }
}

/// Split `op` into its quantifier prefix and operator, and reconcile the prefix with
/// the `quantifier` field.
fn parse_op(
    op: &str,
    quantifier: Option<Quantifier>,
) -> Result<(Op, Option<Quantifier>), StepError> {
    let text = op.trim().to_ascii_lowercase();
    let (prefix, name) = if let Some(rest) = text.strip_prefix("any_") {
        (Some(Quantifier::Any), rest)
    } else if let Some(rest) = text.strip_prefix("all_") {
        (Some(Quantifier::All), rest)
    } else {
        (None, text.as_str())
    };
    let parsed = Op::parse(name).ok_or_else(|| {
        StepError::invalid_input(format!("`op` `{op}` is not an operator; use one of {OPS}"))
    })?;
    let quantifier = match (prefix, quantifier) {
        (Some(a), Some(b)) if a != b => {
            return Err(StepError::invalid_input(format!(
                "`op` `{op}` and `quantifier` `{}` disagree",
                quantifier_name(b)
            )));
        }
        (a, b) => a.or(b),
    };
    Ok((parsed, quantifier))
}

fn quantifier_name(quantifier: Quantifier) -> &'static str {
    match quantifier {
        Quantifier::Any => "any",
        Quantifier::All => "all",
    }
}

fn order(left: &Value, right: &Value, op: Op) -> Result<Ordering, StepError> {
    if let Some((a, b)) = numbers(left, right) {
        return Ok(a.cmp(&b));
    }
    match (left, right) {
        (Value::String(a), Value::String(b)) => Ok(a.cmp(b)),
        _ => Err(StepError::invalid_input(format!(
            "cannot compare {} `{}` with {} `{}` using `{}`",
            type_name(left),
            render(left),
            type_name(right),
            render(right),
            op.symbol()
        ))),
    }
}

/// Whether `container` (the input field `field`) holds `item`.
fn holds(container: &Value, item: &Value, field: &str, op: Op) -> Result<bool, StepError> {
    match container {
        Value::Array(items) => Ok(items.iter().any(|element| equal(element, item))),
        Value::String(text) => match item {
            Value::String(needle) => Ok(text.contains(needle.as_str())),
            Value::Number(_) | Value::Bool(_) => Ok(text.contains(&item.to_string())),
            _ => Err(StepError::invalid_input(format!(
                "`{}` cannot look for {} in a string",
                op.symbol(),
                type_name(item)
            ))),
        },
        Value::Object(map) => match item {
            Value::String(key) => Ok(map.contains_key(key)),
            _ => Err(StepError::invalid_input(format!(
                "`{}` looks for keys in an object: {} is not a key",
                op.symbol(),
                type_name(item)
            ))),
        },
        _ => Err(StepError::invalid_input(format!(
            "`{}` needs `{field}` to be a string, an array or an object, not {}",
            op.symbol(),
            type_name(container)
        ))),
    }
}

/// A compiled comparison: the operator, `right`, and the regex when `op` is `matches`.
struct Comparison<'a> {
    op: Op,
    right: &'a Value,
    regex: Option<Regex>,
}

impl<'a> Comparison<'a> {
    fn new(op: Op, right: &'a Value, ignore_case: bool) -> Result<Self, StepError> {
        let regex = if op == Op::Matches {
            let Value::String(pattern) = right else {
                return Err(StepError::invalid_input(format!(
                    "`matches` needs `right` to be a regular expression string, not {}",
                    type_name(right)
                )));
            };
            let regex = RegexBuilder::new(pattern)
                .case_insensitive(ignore_case)
                .build()
                .map_err(|e| {
                    StepError::invalid_input(format!(
                        "`right` `{pattern}` is not a valid regular expression: {e}"
                    ))
                })?;
            Some(regex)
        } else {
            None
        };
        Ok(Self { op, right, regex })
    }

    fn test(&self, left: &Value) -> Result<bool, StepError> {
        let right = self.right;
        Ok(match self.op {
            Op::Eq => equal(left, right),
            Op::Ne => !equal(left, right),
            Op::Lt => order(left, right, self.op)?.is_lt(),
            Op::Lte => order(left, right, self.op)?.is_le(),
            Op::Gt => order(left, right, self.op)?.is_gt(),
            Op::Gte => order(left, right, self.op)?.is_ge(),
            Op::Contains => holds(left, right, "left", self.op)?,
            Op::NotContains => !holds(left, right, "left", self.op)?,
            Op::In => holds(right, left, "right", self.op)?,
            Op::NotIn => !holds(right, left, "right", self.op)?,
            Op::Matches => {
                let text = match left {
                    Value::String(text) => text.clone(),
                    Value::Number(_) | Value::Bool(_) => left.to_string(),
                    _ => {
                        return Err(StepError::invalid_input(format!(
                            "`matches` needs `left` to be a string, not {}",
                            type_name(left)
                        )));
                    }
                };
                self.regex.as_ref().is_some_and(|r| r.is_match(&text))
            }
        })
    }
}

/// Lower-case every string in `value`, object keys included.
fn fold_case(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.to_lowercase()),
        Value::Array(items) => Value::Array(items.into_iter().map(fold_case).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_lowercase(), fold_case(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `value` as compact JSON, shortened for a one-line detail.
fn render(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Evaluate the comparison `input` describes.
pub fn evaluate(input: EvaluateInput) -> Result<EvaluateOutput, StepError> {
    let (op, quantifier) = parse_op(&input.op, input.quantifier)?;
    let (left, right) = if input.ignore_case && op != Op::Matches {
        (fold_case(input.left), fold_case(input.right))
    } else {
        (input.left, input.right)
    };
    let comparison = Comparison::new(op, &right, input.ignore_case)?;
    let symbol = op.symbol();
    let (result, detail) = match quantifier {
        None => {
            let result = comparison.test(&left)?;
            let detail = format!("{} {symbol} {} is {result}", render(&left), render(&right));
            (result, detail)
        }
        Some(quantifier) => {
            let Value::Array(items) = &left else {
                return Err(StepError::invalid_input(format!(
                    "`{}` needs `left` to be an array, not {}",
                    quantifier_name(quantifier),
                    type_name(&left)
                )));
            };
            let mut passed = 0;
            for item in items {
                if comparison.test(item)? {
                    passed += 1;
                }
            }
            let result = match quantifier {
                Quantifier::Any => passed > 0,
                Quantifier::All => passed == items.len(),
            };
            let detail = format!(
                "{} of {} values {symbol} {} is {result} ({passed} passed)",
                quantifier_name(quantifier),
                items.len(),
                render(&right)
            );
            (result, detail)
        }
    };
    Ok(EvaluateOutput {
        result,
        op: symbol.to_owned(),
        quantifier,
        detail,
    })
}

struct IfElse;

impl App for IfElse {
    const DESCRIPTION: &'static str =
        "Compare two values and route to the `true` or `false` pathway.";

    fn actions() -> Vec<Action> {
        vec![Action::routed(
            "evaluate",
            "Compare `left` with `right` (optionally over each element of `left`) and route.",
            &["true", "false"],
            |input: EvaluateInput| {
                let output = evaluate(input)?;
                debug!(result = output.result; "{}", output.detail);
                let pathway = if output.result { "true" } else { "false" };
                Ok(Routed::new(pathway, output))
            },
        )]
    }
}

wasp_sdk::export_app!(IfElse);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasp_sdk::ErrorCode;

    /// Run `evaluate` as the host does; the pathway and the output.
    fn run(input: Value) -> Result<(String, EvaluateOutput), StepError> {
        let outcome = wasp_sdk::run::<IfElse>("evaluate", &input.to_string())?;
        let output: EvaluateOutput = serde_json::from_str(&outcome.output).unwrap();
        let pathway = outcome.pathway.unwrap();
        assert_eq!(pathway, output.result.to_string());
        Ok((pathway, output))
    }

    fn check(left: Value, op: &str, right: Value) -> bool {
        run(json!({ "left": left, "op": op, "right": right }))
            .unwrap()
            .1
            .result
    }

    fn error(input: Value) -> String {
        let e = run(input).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        e.message().to_owned()
    }

    #[test]
    fn threat_score_routes_true_or_false() {
        let (pathway, output) = run(json!({ "left": 85, "op": "gte", "right": 70 })).unwrap();
        assert_eq!(pathway, "true");
        assert_eq!(
            output,
            EvaluateOutput {
                result: true,
                op: ">=".to_owned(),
                quantifier: None,
                detail: "85 >= 70 is true".to_owned(),
            }
        );
        let (pathway, output) = run(json!({ "left": 12, "op": ">=", "right": 70 })).unwrap();
        assert_eq!(
            (pathway.as_str(), output.detail.as_str()),
            ("false", "12 >= 70 is false")
        );
    }

    #[test]
    fn numbers_compare_by_value_and_numeric_strings_are_coerced() {
        assert!(check(json!(1), "==", json!(1.0)));
        assert!(check(json!("85"), ">=", json!(70)));
        assert!(check(json!(70), "==", json!(" 70 ")));
        assert!(check(json!("2.5"), "<", json!(10)));
        assert!(!check(json!("abc"), "==", json!(1)));
        assert!(check(json!(u64::MAX), ">", json!(i64::MAX)));
        assert!(check(json!(-3), "lt", json!(-2.5)));
        assert!(check(json!(443), "ne", json!(80)));
        // Two strings never coerce: "10" sorts before "9".
        assert!(check(json!("10"), "<", json!("9")));
        assert!(!check(json!("10"), "==", json!("10.0")));
    }

    #[test]
    fn strings_and_json_values() {
        assert!(check(
            json!("2024-05-14T09:12:03Z"),
            "<",
            json!("2024-05-14T10:00:00Z")
        ));
        assert!(check(json!("high"), "eq", json!("high")));
        assert!(!check(json!("High"), "eq", json!("high")));
        assert!(check(json!({ "a": [1, 2] }), "==", json!({ "a": [1, 2] })));
        assert!(check(json!(null), "==", json!(null)));
        assert!(check(json!(true), "!=", json!("true")));
    }

    #[test]
    fn ordering_incompatible_types_names_both() {
        assert_eq!(
            error(json!({ "left": 5, "op": "<", "right": "abc" })),
            "cannot compare a number `5` with a string `\"abc\"` using `<`"
        );
        assert_eq!(
            error(json!({ "left": null, "op": "gte", "right": 70 })),
            "cannot compare null `null` with a number `70` using `>=`"
        );
        assert_eq!(
            error(json!({ "left": [1], "op": ">", "right": true })),
            "cannot compare an array `[1]` with a boolean `true` using `>`"
        );
    }

    #[test]
    fn contains_and_in() {
        let subject = json!("⚠ Action required: Your Microsoft 365 password expires today");
        assert!(check(subject.clone(), "contains", json!("password")));
        assert!(check(subject.clone(), "not_contains", json!("invoice")));
        assert!(check(json!("port 443 open"), "contains", json!(443)));
        assert!(check(
            json!(["phishing", "tor-exit"]),
            "contains",
            json!("tor-exit")
        ));
        assert!(check(json!([80, 443]), "contains", json!("443")));
        assert!(check(
            json!({ "spf": "fail", "dkim": null }),
            "contains",
            json!("dkim")
        ));
        assert!(check(json!("RU"), "in", json!(["RU", "KP", "IR"])));
        assert!(check(json!("US"), "not_in", json!(["RU", "KP", "IR"])));
        assert!(check(
            json!("micros0ft"),
            "in",
            json!("no-reply@micros0ft-support.com")
        ));
        assert!(check(json!("spf"), "in", json!({ "spf": "fail" })));
        assert_eq!(
            error(json!({ "left": 42, "op": "contains", "right": 4 })),
            "`contains` needs `left` to be a string, an array or an object, not a number"
        );
        assert_eq!(
            error(json!({ "left": "x", "op": "in", "right": null })),
            "`in` needs `right` to be a string, an array or an object, not null"
        );
        assert_eq!(
            error(json!({ "left": { "a": 1 }, "op": "contains", "right": 1 })),
            "`contains` looks for keys in an object: a number is not a key"
        );
    }

    #[test]
    fn matches_uses_a_regex() {
        assert!(check(
            json!("no-reply@micros0ft-support.com"),
            "matches",
            json!(r"@micros[o0]ft-[a-z-]+\.com$")
        ));
        assert!(!check(
            json!("no-reply@microsoft.com"),
            "matches",
            json!(r"micros0ft")
        ));
        assert!(check(json!(8841), "matches", json!(r"^\d{4}$")));
        let message = error(json!({ "left": "x", "op": "matches", "right": "(unclosed" }));
        assert!(
            message.starts_with("`right` `(unclosed` is not a valid regular expression: "),
            "{message}"
        );
        assert_eq!(
            error(json!({ "left": "x", "op": "matches", "right": 3 })),
            "`matches` needs `right` to be a regular expression string, not a number"
        );
        assert_eq!(
            error(json!({ "left": null, "op": "matches", "right": "x" })),
            "`matches` needs `left` to be a string, not null"
        );
    }

    #[test]
    fn ignore_case_folds_strings() {
        let folded = |left: Value, op: &str, right: Value| {
            let input = json!({ "left": left, "op": op, "right": right, "ignore_case": true });
            run(input).unwrap().1.result
        };
        assert!(folded(json!("HIGH"), "==", json!("high")));
        assert!(folded(
            json!("Reset Your PASSWORD"),
            "contains",
            json!("password")
        ));
        assert!(folded(json!("ru"), "in", json!(["RU", "KP"])));
        // The pattern keeps its case (`\D` is not `\d`); the match ignores it.
        assert!(folded(json!("MICROS0FT"), "matches", json!(r"micros\dft")));
    }

    #[test]
    fn quantifiers_over_arrays() {
        // The scores of a `for_each` enrichment, as in the design's example playbook.
        let scores = json!([12, 85, 40]);
        let (pathway, output) =
            run(json!({ "left": scores, "op": "any_gte", "right": 70 })).unwrap();
        assert_eq!(pathway, "true");
        assert_eq!(
            output,
            EvaluateOutput {
                result: true,
                op: ">=".to_owned(),
                quantifier: Some(Quantifier::Any),
                detail: "any of 3 values >= 70 is true (1 passed)".to_owned(),
            }
        );
        assert!(!check(scores.clone(), "all_gte", json!(70)));
        assert!(check(scores.clone(), "all_lt", json!(100)));
        assert!(check(json!(["fail", "fail"]), "ALL_EQ", json!("fail")));
        let (_, output) = run(
            json!({ "left": ["pass", "fail"], "op": "==", "right": "fail", "quantifier": "all" }),
        )
        .unwrap();
        assert_eq!(
            output.detail,
            "all of 2 values == \"fail\" is false (1 passed)"
        );
        assert!(check(
            json!(["evil.com", "m365-verify.top"]),
            "any_in",
            json!(["m365-verify.top"])
        ));
    }

    #[test]
    fn empty_arrays_any_false_all_true() {
        let (pathway, output) = run(json!({ "left": [], "op": "any_eq", "right": 1 })).unwrap();
        assert_eq!(
            (pathway.as_str(), output.detail.as_str()),
            ("false", "any of 0 values == 1 is false (0 passed)")
        );
        let (pathway, _) = run(json!({ "left": [], "op": "all_eq", "right": 1 })).unwrap();
        assert_eq!(pathway, "true");
    }

    #[test]
    fn bad_operators_and_quantifiers() {
        assert_eq!(
            error(json!({ "left": 1, "op": "=>", "right": 1 })),
            format!("`op` `=>` is not an operator; use one of {OPS}")
        );
        assert_eq!(
            error(json!({ "left": [1], "op": "any_gte", "right": 1, "quantifier": "all" })),
            "`op` `any_gte` and `quantifier` `all` disagree"
        );
        assert_eq!(
            error(json!({ "left": 85, "op": "any_gte", "right": 70 })),
            "`any` needs `left` to be an array, not a number"
        );
        assert!(error(json!({ "left": 1, "op": "==" })).contains("missing field `right`"));
        assert!(
            error(json!({ "left": 1, "op": "==", "right": 1, "quantifier": "some" }))
                .contains("unknown variant `some`")
        );
    }

    #[test]
    fn details_shorten_long_values() {
        let long = "x".repeat(100);
        let (_, output) = run(json!({ "left": long, "op": "==", "right": "y" })).unwrap();
        assert_eq!(
            output.detail,
            format!("\"{}… == \"y\" is false", "x".repeat(59))
        );
    }

    #[test]
    fn describe_declares_both_pathways() {
        let info = wasp_sdk::describe::<IfElse>("if-else", "0.1.0");
        assert_eq!(info.actions[0].name, "evaluate");
        assert_eq!(info.actions[0].pathways, ["true", "false"]);
    }
}
