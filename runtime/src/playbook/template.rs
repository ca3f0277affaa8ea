//! Input templates: `${…}` references inside a node's input.
//!
//! ```text
//! ${trigger.email}                 the trigger payload
//! ${parse.output.urls[0]}          a node's output; `.field`, `[n]`, `["odd key"]`
//! ${rep.output[*].score}           `[*]` maps the rest of the path over an array
//! ${item} ${item_index}            inside `for_each`
//! ${execution.id} ${playbook.id}
//! ${parse.output.subject ?? "none"}  a default (any JSON literal) when nothing resolves
//! ```
//!
//! A string that is exactly one reference takes the referenced value with its JSON type;
//! references inside a longer string are interpolated (strings as they are, anything
//! else as JSON). A reference that resolves to nothing fails the step with an error
//! naming it, unless it has a default: no silent nulls.
//!
//! Templates are parsed when the playbook is validated, so a malformed reference or a
//! reference to a node that is not upstream is refused before anything runs.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// What a reference starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The trigger payload.
    Trigger,
    /// The output of the node with this id.
    Output(String),
    /// The current item of a `for_each`.
    Item,
    /// The index of the current item of a `for_each`.
    ItemIndex,
    /// The execution's id.
    ExecutionId,
    /// The playbook's id (its XID).
    PlaybookId,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `.name` or `["name"]`.
    Field(String),
    /// `[n]`.
    Index(usize),
    /// `[*]`: every element.
    All,
}

/// One `${…}` reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// What it starts from.
    pub root: Root,
    /// The path below the root.
    pub path: Vec<Segment>,
    /// The value when the path resolves to nothing.
    pub default: Option<Value>,
    /// The text between `${` and `}`, for messages.
    pub text: String,
}

/// A parsed template: a JSON value whose strings may hold references.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A value with no reference in it.
    Literal(Value),
    /// A string that is exactly one reference: the referenced value, typed.
    Whole(Reference),
    /// A string mixing text and references.
    Interpolated(Vec<Piece>),
    /// An array of templates.
    Array(Vec<Template>),
    /// An object of templates, in order.
    Object(Vec<(String, Template)>),
}

/// A part of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Plain text.
    Text(String),
    /// A reference, rendered as text.
    Reference(Reference),
}

/// A template that does not parse: where in the string, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {message} (at character {position})")]
pub struct SyntaxError {
    /// The whole string.
    pub text: String,
    /// Character offset of the problem.
    pub position: usize,
    /// What was expected.
    pub message: String,
}

/// A reference that cannot be resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`${{{reference}}}` {reason}")]
pub struct ResolveError {
    /// The reference's text.
    pub reference: String,
    /// Why it resolves to nothing.
    pub reason: String,
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Trigger => f.write_str("trigger"),
            Root::Output(node) => write!(f, "{node}.output"),
            Root::Item => f.write_str("item"),
            Root::ItemIndex => f.write_str("item_index"),
            Root::ExecutionId => f.write_str("execution.id"),
            Root::PlaybookId => f.write_str("playbook.id"),
        }
    }
}

impl Template {
    /// Parse every string inside `value`.
    pub fn parse(value: &Value) -> Result<Self, SyntaxError> {
        Ok(match value {
            Value::String(text) => parse_string(text)?,
            Value::Array(items) => Template::Array(
                items
                    .iter()
                    .map(Template::parse)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Template::Object(
                map.iter()
                    .map(|(key, value)| Ok((key.clone(), Template::parse(value)?)))
                    .collect::<Result<_, SyntaxError>>()?,
            ),
            other => Template::Literal(other.clone()),
        })
    }

    /// Every reference in the template.
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Reference>) {
        match self {
            Template::Literal(_) => {}
            Template::Whole(reference) => out.push(reference),
            Template::Interpolated(pieces) => out.extend(pieces.iter().filter_map(|p| match p {
                Piece::Reference(r) => Some(r),
                Piece::Text(_) => None,
            })),
            Template::Array(items) => items.iter().for_each(|t| t.collect(out)),
            Template::Object(entries) => entries.iter().for_each(|(_, t)| t.collect(out)),
        }
    }

    /// The nodes whose outputs the template reads.
    pub fn nodes(&self) -> BTreeSet<&str> {
        self.references()
            .into_iter()
            .filter_map(|r| match &r.root {
                Root::Output(node) => Some(node.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The value of the template, with every reference looked up by `scope`.
    pub fn render(&self, scope: &dyn Scope) -> Result<Value, ResolveError> {
        Ok(match self {
            Template::Literal(value) => value.clone(),
            Template::Whole(reference) => reference.resolve(scope)?,
            Template::Interpolated(pieces) => {
                let mut text = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => text.push_str(t),
                        Piece::Reference(r) => match r.resolve(scope)? {
                            Value::String(s) => text.push_str(&s),
                            other => text.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(text)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(scope))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, t)| Ok((key.clone(), t.render(scope)?)))
                    .collect::<Result<_, ResolveError>>()?,
            ),
        })
    }
}

/// What references are resolved against.
pub trait Scope {
    /// The value of `root`, if there is one (`None`: e.g. `item` outside `for_each`, or
    /// a node that did not run). Borrowed where it can be: only the value a reference
    /// ends at is cloned.
    fn root(&self, root: &Root) -> Option<Cow<'_, Value>>;
}

impl Reference {
    /// The referenced value.
    pub fn resolve(&self, scope: &dyn Scope) -> Result<Value, ResolveError> {
        let fail = |reason: String| match &self.default {
            Some(default) => Ok(default.clone()),
            None => Err(ResolveError {
                reference: self.text.clone(),
                reason,
            }),
        };
        let Some(start) = scope.root(&self.root) else {
            return fail(match &self.root {
                Root::Output(node) => {
                    format!("reads the output of `{node}`, which has none (it did not succeed)")
                }
                Root::Item | Root::ItemIndex => "is only defined inside `for_each`".to_owned(),
                other => format!("reads `{other}`, which is not set"),
            });
        };
        match walk(&start, &self.path) {
            Ok(value) => Ok(value),
            Err(reason) => fail(reason),
        }
    }
}

/// Follow `path` from `value`.
fn walk(value: &Value, path: &[Segment]) -> Result<Value, String> {
    let Some((segment, rest)) = path.split_first() else {
        return Ok(value.clone());
    };
    match segment {
        Segment::Field(name) => match value.get(name) {
            Some(next) => walk(next, rest),
            None if value.is_object() => Err(format!("has no field `{name}`")),
            None => Err(format!("reads field `{name}` of {}", kind(value))),
        },
        Segment::Index(index) => match value.as_array() {
            Some(items) => match items.get(*index) {
                Some(next) => walk(next, rest),
                None => Err(format!(
                    "reads index {index} of an array of {}",
                    items.len()
                )),
            },
            None => Err(format!("reads index {index} of {}", kind(value))),
        },
        Segment::All => match value.as_array() {
            Some(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|item| walk(item, rest))
                    .collect::<Result<_, _>>()?,
            )),
            None => Err(format!("applies `[*]` to {}", kind(value))),
        },
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The most segments (`.field`, `[n]`, `[*]`) a reference's path may have: real ones
/// have a handful, and following a path recurses once per segment.
pub const MAX_PATH: usize = 64;

fn parse_string(text: &str) -> Result<Template, SyntaxError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let inner_start = start + 2;
        let Some(length) = closing_brace(&rest[inner_start..]) else {
            return Err(SyntaxError {
                text: text.to_owned(),
                position: char_position(text, offset + start),
                message: "`${` is not closed by `}`".to_owned(),
            });
        };
        let inner = &rest[inner_start..inner_start + length];
        let reference = parse_reference(inner).map_err(|(at, message)| SyntaxError {
            text: text.to_owned(),
            position: char_position(text, offset + inner_start + at),
            message,
        })?;
        pieces.push(Piece::Reference(reference));
        let consumed = inner_start + length + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(match pieces.as_slice() {
        [] => Template::Literal(Value::String(String::new())),
        [Piece::Text(_)] => Template::Literal(Value::String(text.to_owned())),
        [Piece::Reference(reference)] => Template::Whole(reference.clone()),
        _ => Template::Interpolated(pieces),
    })
}

/// The length up to the `}` that closes a reference, skipping braces inside a quoted
/// default.
fn closing_brace(text: &str) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '}' if !in_string => return Some(i),
            _ => {}
        }
    }
    None
}

fn char_position(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].chars().count()
}

/// Parse the inside of `${…}`; errors carry a byte offset into `inner`.
fn parse_reference(inner: &str) -> Result<Reference, (usize, String)> {
    let (expression, default) = split_default(inner)?;
    let leading = expression.len() - expression.trim_start().len();
    let expression = expression.trim();
    if expression.is_empty() {
        return Err((
            leading,
            "expected a reference such as `trigger.field` or `node.output`".to_owned(),
        ));
    }
    let mut cursor = Cursor {
        text: expression,
        at: 0,
        base: leading,
    };
    let root = cursor.root()?;
    let path = cursor.path()?;
    if matches!(root, Root::ItemIndex | Root::ExecutionId | Root::PlaybookId) && !path.is_empty() {
        return Err((
            leading,
            format!("`{root}` is a plain value and has no fields"),
        ));
    }
    Ok(Reference {
        root,
        path,
        default,
        text: inner.trim().to_owned(),
    })
}

/// The expression of a reference and its `?? default`, a JSON literal, if it has one.
fn split_default(inner: &str) -> Result<(&str, Option<Value>), (usize, String)> {
    let Some(at) = inner.find("??") else {
        return Ok((inner, None));
    };
    let literal = inner[at + 2..].trim();
    let value: Value = serde_json::from_str(literal).map_err(|_| {
        (
            at + 2,
            format!("the default `{literal}` is not a JSON literal (quote strings: \"none\")"),
        )
    })?;
    Ok((&inner[..at], Some(value)))
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    /// What a reference starts from: `trigger`, `item`, `item_index`, `execution.id`,
    /// `playbook.id`, or `node.output`.
    fn root(&mut self) -> Result<Root, (usize, String)> {
        let first = self.identifier()?;
        Ok(match first {
            "trigger" => Root::Trigger,
            "item" => Root::Item,
            "item_index" => Root::ItemIndex,
            "execution" | "playbook" => {
                self.expect('.')?;
                let field = self.identifier()?;
                if field != "id" {
                    return Err(self.error(format!("`{first}` has only `id`, not `{field}`")));
                }
                if first == "execution" {
                    Root::ExecutionId
                } else {
                    Root::PlaybookId
                }
            }
            node => {
                self.expect('.')?;
                let field = self.identifier()?;
                if field != "output" {
                    return Err(self.error(format!(
                        "a node's value is `{node}.output`, not `{node}.{field}`"
                    )));
                }
                Root::Output(node.to_owned())
            }
        })
    }

    /// The fields and indexes after the root, to the end of the expression.
    fn path(&mut self) -> Result<Vec<Segment>, (usize, String)> {
        let mut path = Vec::new();
        while let Some(c) = self.peek() {
            if path.len() == MAX_PATH {
                return Err(self.error(format!(
                    "a reference goes at most {MAX_PATH} fields or indexes deep"
                )));
            }
            match c {
                '.' => {
                    self.bump();
                    path.push(Segment::Field(self.identifier()?.to_owned()));
                }
                '[' => {
                    self.bump();
                    path.push(self.bracket()?);
                }
                other => {
                    return Err(self.error(format!(
                        "unexpected `{other}`; expected `.field`, `[n]`, `[*]` or `}}`"
                    )));
                }
            }
        }
        Ok(path)
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.at += c.len_utf8();
        }
    }

    fn error(&self, message: String) -> (usize, String) {
        (self.base + self.at, message)
    }

    fn expect(&mut self, wanted: char) -> Result<(), (usize, String)> {
        match self.peek() {
            Some(c) if c == wanted => {
                self.bump();
                Ok(())
            }
            Some(c) => Err(self.error(format!("expected `{wanted}`, found `{c}`"))),
            None => Err(self.error(format!("expected `{wanted}` before the end"))),
        }
    }

    fn identifier(&mut self) -> Result<&'a str, (usize, String)> {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                self.bump();
            } else {
                break;
            }
        }
        if self.at == start {
            return Err(self.error("expected a name".to_owned()));
        }
        Ok(&self.text[start..self.at])
    }

    /// After `[`: `n]`, `*]` or `"key"]`.
    fn bracket(&mut self) -> Result<Segment, (usize, String)> {
        let segment = match self.peek() {
            Some('*') => {
                self.bump();
                Segment::All
            }
            Some('"') => {
                let rest = &self.text[self.at..];
                let mut deserializer =
                    serde_json::Deserializer::from_str(rest).into_iter::<String>();
                let key = match deserializer.next() {
                    Some(Ok(key)) => key,
                    _ => return Err(self.error("expected a quoted key".to_owned())),
                };
                self.at += deserializer.byte_offset();
                Segment::Field(key)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.at;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
                let index = self.text[start..self.at]
                    .parse()
                    .map_err(|_| (self.base + start, "the index is too large".to_owned()))?;
                Segment::Index(index)
            }
            _ => {
                return Err(
                    self.error("expected an index, `*` or a quoted key after `[`".to_owned())
                );
            }
        };
        self.expect(']')?;
        Ok(segment)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    struct TestScope(BTreeMap<String, Value>);

    impl Scope for TestScope {
        fn root(&self, root: &Root) -> Option<Cow<'_, Value>> {
            self.0.get(&root.to_string()).map(Cow::Borrowed)
        }
    }

    fn scope() -> TestScope {
        TestScope(BTreeMap::from([
            (
                "trigger".to_owned(),
                json!({"email": "raw", "n": 3, "odd key": true}),
            ),
            (
                "rep.output".to_owned(),
                json!([{"score": 90}, {"score": 10}]),
            ),
            ("execution.id".to_owned(), json!("ex_1")),
        ]))
    }

    fn render(value: Value) -> Result<Value, ResolveError> {
        Template::parse(&value).unwrap().render(&scope())
    }

    #[test]
    fn whole_references_keep_their_type_and_strings_interpolate() {
        assert_eq!(render(json!("${trigger.n}")).unwrap(), json!(3));
        assert_eq!(
            render(json!("${rep.output[*].score}")).unwrap(),
            json!([90, 10])
        );
        assert_eq!(
            render(json!("n=${trigger.n} in ${execution.id}")).unwrap(),
            json!("n=3 in ex_1")
        );
        assert_eq!(
            render(json!({"a": ["${trigger[\"odd key\"]}", 1]})).unwrap(),
            json!({"a": [true, 1]})
        );
        assert_eq!(render(json!("no refs")).unwrap(), json!("no refs"));
    }

    #[test]
    fn nothing_resolved_is_an_error_unless_defaulted() {
        assert_eq!(
            render(json!("${trigger.subject}")).unwrap_err().to_string(),
            "`${trigger.subject}` has no field `subject`"
        );
        assert_eq!(
            render(json!("${rep.output[5].score}"))
                .unwrap_err()
                .to_string(),
            "`${rep.output[5].score}` reads index 5 of an array of 2"
        );
        assert_eq!(
            render(json!("${parse.output.body}"))
                .unwrap_err()
                .to_string(),
            "`${parse.output.body}` reads the output of `parse`, which has none (it did not succeed)"
        );
        assert_eq!(
            render(json!("${trigger.subject ?? \"none\"}")).unwrap(),
            json!("none")
        );
        assert_eq!(render(json!("${item ?? 0}")).unwrap(), json!(0));
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let error = |text: &str| Template::parse(&json!(text)).unwrap_err().to_string();
        assert_eq!(
            error("${parse.outpt}"),
            "`${parse.outpt}`: a node's value is `parse.output`, not `parse.outpt` (at character 13)"
        );
        assert_eq!(
            error("x ${trigger"),
            "`x ${trigger`: `${` is not closed by `}` (at character 2)"
        );
        assert_eq!(
            error("${trigger.a[x]}"),
            "`${trigger.a[x]}`: expected an index, `*` or a quoted key after `[` (at character 12)"
        );
        assert_eq!(
            error("${a.output ?? none}"),
            "`${a.output ?? none}`: the default `none` is not a JSON literal (quote strings: \"none\") (at character 13)"
        );
        assert_eq!(
            error("${execution.name}"),
            "`${execution.name}`: `execution` has only `id`, not `name` (at character 16)"
        );
    }

    #[test]
    fn a_path_past_its_bound_is_refused_not_followed() {
        let path = |segments: usize| format!("${{trigger{}}}", ".a".repeat(segments));
        assert!(Template::parse(&json!(path(MAX_PATH))).is_ok());
        let error = Template::parse(&json!(path(MAX_PATH + 1))).unwrap_err();
        assert_eq!(
            error.message,
            "a reference goes at most 64 fields or indexes deep"
        );
        // Following a path recurses once per segment: 100,000 would overflow the stack.
        assert!(Template::parse(&json!(path(100_000))).is_err());
    }

    #[test]
    fn nodes_read_are_listed() {
        let template = Template::parse(
            &json!({"x": "${a.output.b} ${b.output}", "y": ["${a.output}", "${trigger}"]}),
        )
        .unwrap();
        assert_eq!(template.nodes().into_iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
