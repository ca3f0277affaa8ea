//! The contracts phase of validation: what each node sends an app and reads from
//! another node, checked against the JSON Schemas the apps describe, and the assets
//! nodes bind, against the assets known where validation runs.
//!
//! A template is not a JSON document until it is rendered, so this is not a JSON
//! Schema validator: it checks what a template fixes before the run (the fields of an
//! object, the type of a literal), follows a schema through `properties`, `items`,
//! local `$ref`s and `anyOf`/`oneOf`/`allOf`, and says nothing where the schema or
//! the template leaves the answer to the run. A problem is reported only when the
//! schema says for certain that the run would go wrong.

use serde_json::Value;

use super::template::{Reference, Root, Segment, Template};
use super::{AssetLookup, Catalog, Draft, NodeKind, Problems};

/// How many `$ref`s and nested schemas a lookup follows before it gives up (a schema
/// may refer to itself).
const MAX_DEPTH: usize = 32;

impl Draft {
    /// The contracts phase: each app node's input against its action's input schema,
    /// each `${node.output…}` path against the output schema of the node it reads, and
    /// each bound asset against the assets `catalog` knows.
    pub(super) fn check_contracts(&self, catalog: &dyn Catalog, problems: &mut Problems) {
        for index in self.graph.node_indices() {
            let node = &self.graph[index];
            let here = Some(node.id.as_str());
            if let Some((app, action)) = app_action(&node.kind) {
                if let Some(schema) = action_of(catalog, app, action).map(|a| &a.input_schema) {
                    let whose = format!("{app} `{action}`");
                    let mut check = Input {
                        root: schema,
                        whose: &whose,
                        problems: &mut *problems,
                        node: &node.id,
                    };
                    check.value(&Shape::of(&node.input), schema, "input", 0);
                }
                if let Some(asset) = &node.asset {
                    check_asset(catalog, asset, app, here, problems);
                }
            }
            let references = node
                .input
                .references()
                .into_iter()
                .map(|r| (r, "input"))
                .chain(node.for_each.as_ref().map(|r| (r, "for_each")));
            for (reference, field) in references {
                if let Some(message) = self.read_problem(catalog, reference) {
                    problems.push(here, Some(field), message);
                }
            }
        }
    }

    /// The playbook's `output:`: each node it reads must be a node, and each path one
    /// the node's output schema can have. It is built when the execution ends, so it may
    /// read any node.
    pub(super) fn check_output(
        &self,
        field: &str,
        output: Option<&Template>,
        catalog: &dyn Catalog,
        problems: &mut Problems,
    ) {
        for reference in output.map(Template::references).unwrap_or_default() {
            let message = match &reference.root {
                Root::Output(node) if !self.index.contains_key(node) => Some(format!(
                    "`${{{}}}` reads `{node}`, which is not a node",
                    reference.text
                )),
                _ => self.read_problem(catalog, reference),
            };
            if let Some(message) = message {
                problems.push(None, Some(field), message);
            }
        }
    }

    /// What is wrong with `reference`'s path, when it reads a node's output that its
    /// action's output schema says cannot be there. A reference with a default (`??`)
    /// expects to miss, and is not checked.
    fn read_problem(&self, catalog: &dyn Catalog, reference: &Reference) -> Option<String> {
        let Root::Output(source) = &reference.root else {
            return None;
        };
        if reference.default.is_some() {
            return None;
        }
        let node = &self.graph[*self.index.get(source)?];
        let (app, action) = app_action(&node.kind)?;
        let root = &action_of(catalog, app, action)?.output_schema;
        let mut schema = root;
        let mut path = format!("{source}.output");
        let mut segments = reference.path.iter();
        // A node that runs for each item outputs the list of its items' outputs.
        if node.for_each.is_some() {
            match segments.next() {
                None => return None,
                Some(Segment::Index(i)) => path.push_str(&format!("[{i}]")),
                Some(Segment::All) => path.push_str("[*]"),
                Some(Segment::Field(name)) => {
                    return Some(format!(
                        "`${{{}}}`: `{source}` runs for each item, so its output is a list \
                         of {app} `{action}` outputs: read `${{{source}.output[*].{name}}}` \
                         or `${{{source}.output[0].{name}}}`",
                        reference.text
                    ));
                }
            }
        }
        for segment in segments {
            let found = match segment {
                Segment::Field(name) => field(root, schema, name, 0),
                Segment::Index(_) | Segment::All => items(root, schema, 0),
            };
            match found {
                Lookup::Found(next) => schema = next,
                Lookup::Unknown => return None,
                Lookup::Missing(known) => {
                    let what = match segment {
                        Segment::Field(name) => format!("no field `{name}`"),
                        Segment::Index(_) | Segment::All => "no items".to_owned(),
                    };
                    let hint = match segment {
                        Segment::Field(name) => hint(name, &known),
                        Segment::Index(_) | Segment::All => String::new(),
                    };
                    return Some(format!(
                        "`${{{}}}`: `{path}` has {what} (the output of {app} `{action}`){hint}",
                        reference.text
                    ));
                }
            }
            match segment {
                Segment::Field(name) => {
                    path.push('.');
                    path.push_str(name);
                }
                Segment::Index(i) => path.push_str(&format!("[{i}]")),
                Segment::All => path.push_str("[*]"),
            }
        }
        None
    }
}

/// The app and action a node runs, when it runs one.
fn app_action(kind: &NodeKind) -> Option<(&str, &str)> {
    match kind {
        NodeKind::App { app, action } | NodeKind::Operator { app, action } => {
            Some((app.as_str(), action.as_str()))
        }
        NodeKind::Trigger | NodeKind::Playbook { .. } => None,
    }
}

fn action_of<'c>(
    catalog: &'c dyn Catalog,
    app: &str,
    action: &str,
) -> Option<&'c super::ActionInfo> {
    catalog.app(app)?.actions.iter().find(|a| a.name == action)
}

/// An asset a node binds must be known, and configure the node's app.
fn check_asset(
    catalog: &dyn Catalog,
    asset: &str,
    app: &str,
    here: Option<&str>,
    problems: &mut Problems,
) {
    match catalog.asset(asset) {
        AssetLookup::Unchecked => {}
        AssetLookup::Configures(of) if of == app => {}
        AssetLookup::Configures(of) => problems.push(
            here,
            Some("asset"),
            format!("asset `{asset}` configures the app `{of}`, not `{app}`"),
        ),
        AssetLookup::Missing(known) => {
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let hint = hint(asset, &known);
            let hint = if hint.is_empty() && !known.is_empty() {
                format!("; the assets are {}", quoted(&known))
            } else {
                hint
            };
            problems.push(
                here,
                Some("asset"),
                format!("there is no asset `{asset}`{hint}"),
            );
        }
    }
}

/// What a lookup in a schema found.
enum Lookup<'s> {
    /// The schema of what is there.
    Found(&'s Value),
    /// Nothing can be there; the names that can, for a suggestion.
    Missing(Vec<&'s str>),
    /// The schema does not say.
    Unknown,
}

/// `schema` with its local `$ref`s (`#/$defs/…`, `#/definitions/…`) followed in `root`.
fn resolved<'s>(root: &'s Value, mut schema: &'s Value) -> &'s Value {
    for _ in 0..MAX_DEPTH {
        let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        match target.strip_prefix('#').and_then(|p| root.pointer(p)) {
            Some(next) => schema = next,
            None => return &Value::Bool(true),
        }
    }
    &Value::Bool(true)
}

/// The branches of a schema's `anyOf`/`oneOf`, or of its `allOf`.
fn branches(schema: &Value) -> Option<(&[Value], bool)> {
    for (key, all) in [("anyOf", false), ("oneOf", false), ("allOf", true)] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            return Some((branches, all));
        }
    }
    None
}

/// Combine what each branch of a schema found: for `anyOf`/`oneOf`, found when one
/// branch has it and missing only when none can; for `allOf`, missing when one cannot.
fn combine<'s>(found: impl Iterator<Item = Lookup<'s>>, all: bool) -> Lookup<'s> {
    let mut missing = Vec::new();
    let mut any_missing = false;
    let mut first_found = None;
    let mut unknown = false;
    for lookup in found {
        match lookup {
            Lookup::Found(schema) => {
                first_found.get_or_insert(schema);
            }
            Lookup::Missing(known) => {
                any_missing = true;
                missing.extend(known);
            }
            Lookup::Unknown => unknown = true,
        }
    }
    if all && any_missing {
        return Lookup::Missing(missing);
    }
    match first_found {
        Some(schema) => Lookup::Found(schema),
        None if unknown || !any_missing => Lookup::Unknown,
        None => Lookup::Missing(missing),
    }
}

/// The types a schema allows, when it names them.
fn types(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => Some(many.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// What the schema of an object says is under `name`.
fn field<'s>(root: &'s Value, schema: &'s Value, name: &str, depth: usize) -> Lookup<'s> {
    let schema = resolved(root, schema);
    if depth > MAX_DEPTH || !schema.is_object() {
        return Lookup::Unknown;
    }
    if let Some((branches, all)) = branches(schema) {
        return combine(
            branches.iter().map(|b| field(root, b, name, depth + 1)),
            all,
        );
    }
    if let Some(found) = schema.get("properties").and_then(|p| p.get(name)) {
        return Lookup::Found(found);
    }
    if let Some(types) = types(schema)
        && !types.contains(&"object")
    {
        return Lookup::Missing(Vec::new());
    }
    // An output schema that lists the properties describes what the app returns: a
    // name it does not list is not there, unless the schema opens the object up.
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Lookup::Unknown;
    };
    if schema.get("patternProperties").is_some() {
        return Lookup::Unknown;
    }
    match schema.get("additionalProperties") {
        None | Some(Value::Bool(false)) => {
            Lookup::Missing(properties.keys().map(String::as_str).collect())
        }
        Some(Value::Bool(true)) => Lookup::Unknown,
        Some(other) => Lookup::Found(other),
    }
}

/// What the schema of an array says its items are.
fn items<'s>(root: &'s Value, schema: &'s Value, depth: usize) -> Lookup<'s> {
    let schema = resolved(root, schema);
    if depth > MAX_DEPTH || !schema.is_object() {
        return Lookup::Unknown;
    }
    if let Some((branches, all)) = branches(schema) {
        return combine(branches.iter().map(|b| items(root, b, depth + 1)), all);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        return Lookup::Found(items);
    }
    match types(schema) {
        Some(types) if !types.contains(&"array") => Lookup::Missing(Vec::new()),
        _ => Lookup::Unknown,
    }
}

/// What a template fixes before the run.
enum Shape<'t> {
    /// An object whose fields are known.
    Object(Vec<(&'t str, Shape<'t>)>),
    /// An array whose items are known.
    Array(Vec<Shape<'t>>),
    /// A value of this JSON type.
    Typed(&'static str),
    /// Only the run will say (a whole `${…}`).
    Open,
}

impl<'t> Shape<'t> {
    fn of(template: &'t Template) -> Self {
        match template {
            Template::Literal(value) => Self::of_value(value),
            Template::Whole(_) => Self::Open,
            // An interpolation renders text.
            Template::Interpolated(_) => Self::Typed("string"),
            Template::Array(items) => Self::Array(items.iter().map(Self::of).collect()),
            Template::Object(fields) => Self::Object(
                fields
                    .iter()
                    .map(|(name, t)| (name.as_str(), Self::of(t)))
                    .collect(),
            ),
        }
    }

    fn of_value(value: &'t Value) -> Self {
        match value {
            Value::Object(fields) => Self::Object(
                fields
                    .iter()
                    .map(|(name, v)| (name.as_str(), Self::of_value(v)))
                    .collect(),
            ),
            Value::Array(items) => Self::Array(items.iter().map(Self::of_value).collect()),
            Value::Null => Self::Typed("null"),
            Value::Bool(_) => Self::Typed("boolean"),
            Value::Number(n) if n.is_i64() || n.is_u64() => Self::Typed("integer"),
            Value::Number(_) => Self::Typed("number"),
            Value::String(_) => Self::Typed("string"),
        }
    }

    /// Its JSON type, when it is known.
    fn kind(&self) -> Option<&'static str> {
        match self {
            Self::Object(_) => Some("object"),
            Self::Array(_) => Some("array"),
            Self::Typed(kind) => Some(kind),
            Self::Open => None,
        }
    }
}

/// The check of one node's input against its action's input schema.
struct Input<'a> {
    root: &'a Value,
    /// The app and action, for messages.
    whose: &'a str,
    node: &'a str,
    problems: &'a mut Problems,
}

impl Input<'_> {
    fn report(&mut self, field: &str, message: String) {
        self.problems.push(Some(self.node), Some(field), message);
    }

    /// Check `shape`, at `at` in the input, against `schema`.
    fn value(&mut self, shape: &Shape<'_>, schema: &Value, at: &str, depth: usize) {
        let schema = resolved(self.root, schema);
        if depth > MAX_DEPTH || !schema.is_object() || branches(schema).is_some() {
            return;
        }
        if let (Some(kind), Some(allowed)) = (shape.kind(), types(schema)) {
            let fits =
                allowed.contains(&kind) || (kind == "integer" && allowed.contains(&"number"));
            if !fits {
                let whose = self.whose;
                self.report(
                    at,
                    format!(
                        "is {} {kind}, but {whose} takes {} there",
                        article(kind),
                        allowed
                            .iter()
                            .map(|t| format!("{} {t}", article(t)))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                );
                return;
            }
        }
        match shape {
            Shape::Object(fields) => self.object(fields, schema, at, depth),
            Shape::Array(items) => {
                if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                    for (i, shape) in items.iter().enumerate() {
                        self.value(shape, item, &format!("{at}[{i}]"), depth + 1);
                    }
                }
            }
            Shape::Typed(_) | Shape::Open => {}
        }
    }

    /// An object's fields: each one the schema names is checked against it; one it
    /// does not name is refused when the schema closes the object; each it requires
    /// must be there.
    fn object(&mut self, fields: &[(&str, Shape<'_>)], schema: &Value, at: &str, depth: usize) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let known: Vec<&str> = properties
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false))
            && schema.get("patternProperties").is_none();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let given: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|r| !given.contains(r))
            .collect();
        let whose = self.whose;
        // A name the schema does not know, which is close to one it misses, is the
        // same mistake as the missing one: said once, with the suggestion.
        let mut suggested = Vec::new();
        for (name, shape) in fields {
            let here = format!("{at}.{name}");
            match properties.and_then(|p| p.get(*name)) {
                Some(property) => self.value(shape, property, &here, depth + 1),
                None if closed || suggestion(name, &missing).is_some() => {
                    let near = suggestion(name, &missing).or_else(|| suggestion(name, &known));
                    suggested.extend(near);
                    let hint = match near {
                        Some(near) => format!("; did you mean `{near}`?"),
                        None if known.is_empty() => String::new(),
                        None => format!("; its fields are {}", quoted(&known)),
                    };
                    self.report(&here, format!("{whose} takes no field `{name}`{hint}"));
                }
                None => {}
            }
        }
        for name in missing.into_iter().filter(|m| !suggested.contains(m)) {
            self.report(at, format!("{whose} requires `{name}`, which is missing"));
        }
    }
}

/// `a` or `an`, before a JSON type's name.
fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The name among `known` that `name` is most likely a mistyping of.
fn suggestion<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// `; did you mean `x`?` when one of `known` is close to `name`, else nothing.
fn hint(name: &str, known: &[&str]) -> String {
    suggestion(name, known).map_or_else(String::new, |near| format!("; did you mean `{near}`?"))
}

/// `` `a`, `b`, `c` ``, the first 12.
fn quoted(names: &[&str]) -> String {
    let mut shown: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
    if names.len() > 12 {
        shown.push(format!("and {} more", names.len() - 12));
    }
    shown.join(", ")
}
