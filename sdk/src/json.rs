//! Comparing JSON values the way playbook authors expect, shared by operators.
//!
//! Playbook templates often turn numbers into strings (`"85"`), so two values compare
//! as numbers when both are numbers or one is a number and the other a numeric string.
//! Integers compare exactly; an integer next to a float compares as a float (past 2^53
//! that loses precision, but a JSON float is no more precise anyway).
//!
//! ```
//! use serde_json::json;
//! use wasp_sdk::json::{loose_eq, numbers};
//! assert!(loose_eq(&json!("85"), &json!(85)));
//! assert!(loose_eq(&json!(1), &json!(1.0)));
//! let (a, b) = numbers(&json!(70), &json!("85")).unwrap();
//! assert!(a < b);
//! ```

use std::cmp::Ordering;

use serde_json::Value;

/// A JSON number, exact when it is an integer.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// An integer (any `i64` or `u64`).
    Int(i128),
    /// Anything else.
    Float(f64),
}

impl Number {
    /// `value` as a number, if it is one.
    pub fn of(value: &Value) -> Option<Self> {
        let number = value.as_number()?;
        Some(match (number.as_i64(), number.as_u64()) {
            (Some(i), _) => Self::Int(i.into()),
            (None, Some(u)) => Self::Int(u.into()),
            _ => Self::Float(number.as_f64()?),
        })
    }

    /// A string holding a number (`" 85 "`, `"0.5"`), if it holds one.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(i) = text.parse::<i128>() {
            return Some(Self::Int(i));
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Self::Float)
    }

    fn as_f64(self) -> f64 {
        match self {
            // The documented loss of precision past 2^53.
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Number {}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a.cmp(b),
            (a, b) => a.as_f64().total_cmp(&b.as_f64()),
        }
    }
}

/// Both sides as numbers: both numbers, or a number and a numeric string.
pub fn numbers(left: &Value, right: &Value) -> Option<(Number, Number)> {
    match (left, right) {
        (Value::Number(_), Value::Number(_)) => Number::of(left).zip(Number::of(right)),
        (Value::Number(_), Value::String(s)) => Number::of(left).zip(Number::parse(s)),
        (Value::String(s), Value::Number(_)) => Number::parse(s).zip(Number::of(right)),
        _ => None,
    }
}

/// Equality for operators: numbers by value (numeric strings coerced), JSON equality
/// otherwise.
pub fn loose_eq(left: &Value, right: &Value) -> bool {
    match numbers(left, right) {
        Some((a, b)) => a == b,
        None => left == right,
    }
}

/// The JSON type of `value` with its article (`a string`, `an array`), for messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
