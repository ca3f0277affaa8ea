//! Typed actions and the app description generated from them.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__bindings::wasp::playbook::types as wit;
use crate::StepError;

/// An app: a description and the actions it offers.
///
/// Export it with [`export_app!`](crate::export_app).
pub trait App {
    /// One line saying what the app is for.
    const DESCRIPTION: &'static str;

    /// Every action the app offers. Called for each `describe` and `run`; keep it cheap
    /// (build the list, do no work).
    fn actions() -> Vec<Action>;
}

type Handler = Box<dyn Fn(&str) -> Result<Outcome, StepError>>;

/// One action: a name, a description, the JSON Schemas of its input and output, the
/// pathways it can take, and the function that runs it.
pub struct Action {
    name: String,
    description: String,
    pathways: Vec<String>,
    input_schema: fn() -> String,
    output_schema: fn() -> String,
    handler: Handler,
}

/// The output of an operator's action together with the pathway the step takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed<O> {
    /// The pathway, one of those declared in [`Action::routed`].
    pub pathway: String,
    /// The output document.
    pub output: O,
}

impl<O> Routed<O> {
    /// Take `pathway` with `output`.
    pub fn new(pathway: impl Into<String>, output: O) -> Self {
        Self {
            pathway: pathway.into(),
            output,
        }
    }
}

/// A successful action's result as the host receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The output as a JSON document.
    pub output: String,
    /// The pathway taken, for operators.
    pub pathway: Option<String>,
}

/// The description of one action, as [`describe`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInfo {
    /// The action's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: String,
    /// JSON Schema of its output.
    pub output_schema: String,
    /// The pathways it can take.
    pub pathways: Vec<String>,
}

/// The description of an app, as [`describe`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// The app's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it is for.
    pub description: String,
    /// Its actions.
    pub actions: Vec<ActionInfo>,
}

fn schema_of<T: JsonSchema>() -> String {
    schemars::schema_for!(T).as_value().to_string()
}

fn decode<I: DeserializeOwned>(action: &str, input: &str) -> Result<I, StepError> {
    serde_json::from_str(input)
        .map_err(|e| StepError::invalid_input(format!("input of `{action}`: {e}")))
}

fn encode<O: Serialize>(action: &str, output: &O) -> Result<String, StepError> {
    serde_json::to_string(output)
        .map_err(|e| StepError::internal(format!("output of `{action}` is not JSON: {e}")))
}

impl Action {
    /// An action named `name` that runs `handler` on its decoded input.
    ///
    /// An input that does not decode into `I` fails the step with an `invalid-input`
    /// error naming the field, before `handler` runs.
    pub fn new<I, O, F>(name: &str, description: &str, handler: F) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
        F: Fn(I) -> Result<O, StepError> + 'static,
    {
        let action = name.to_owned();
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            pathways: Vec::new(),
            input_schema: schema_of::<I>,
            output_schema: schema_of::<O>,
            handler: Box::new(move |input| {
                let output = handler(decode(&action, input)?)?;
                Ok(Outcome {
                    output: encode(&action, &output)?,
                    pathway: None,
                })
            }),
        }
    }

    /// An operator's action: like [`Action::new`], but it returns a [`Routed`] value
    /// naming one of `pathways`, the branches a playbook can connect to this node.
    pub fn routed<I, O, F>(name: &str, description: &str, pathways: &[&str], handler: F) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
        F: Fn(I) -> Result<Routed<O>, StepError> + 'static,
    {
        let action = name.to_owned();
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            pathways: pathways.iter().map(|&p| p.to_owned()).collect(),
            input_schema: schema_of::<I>,
            output_schema: schema_of::<O>,
            handler: Box::new(move |input| {
                let routed = handler(decode(&action, input)?)?;
                Ok(Outcome {
                    output: encode(&action, &routed.output)?,
                    pathway: Some(routed.pathway),
                })
            }),
        }
    }

    fn info(&self) -> ActionInfo {
        ActionInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            input_schema: (self.input_schema)(),
            output_schema: (self.output_schema)(),
            pathways: self.pathways.clone(),
        }
    }
}

/// Describe app `A` under `name` and `version`: what the host's `describe` call
/// returns. Useful in tests; [`export_app!`](crate::export_app) calls it for you.
pub fn describe<A: App>(name: &str, version: &str) -> AppInfo {
    AppInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        description: A::DESCRIPTION.to_owned(),
        actions: A::actions().iter().map(Action::info).collect(),
    }
}

/// Run `action` of app `A` on the JSON `input`, exactly as the host's `run` call does.
/// Useful in tests.
pub fn run<A: App>(action: &str, input: &str) -> Result<Outcome, StepError> {
    let actions = A::actions();
    let Some(found) = actions.iter().find(|a| a.name == action) else {
        let known: Vec<&str> = actions.iter().map(|a| a.name.as_str()).collect();
        return Err(StepError::invalid_input(format!(
            "unknown action `{action}`; this app offers: {}",
            known.join(", ")
        )));
    };
    (found.handler)(input)
}

#[doc(hidden)]
pub fn describe_wit<A: App>(name: &str, version: &str) -> wit::AppInfo {
    let info = describe::<A>(name, version);
    wit::AppInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        actions: info
            .actions
            .into_iter()
            .map(|a| wit::ActionInfo {
                name: a.name,
                description: a.description,
                input_schema: a.input_schema,
                output_schema: a.output_schema,
                pathways: a.pathways,
            })
            .collect(),
    }
}

#[doc(hidden)]
pub fn run_wit<A: App>(call: wit::Invocation) -> Result<wit::Outcome, wit::StepError> {
    run::<A>(&call.action, &call.input)
        .map(|o| wit::Outcome {
            output: o.output,
            pathway: o.pathway,
        })
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    struct In {
        n: i64,
    }

    #[derive(Serialize, JsonSchema)]
    struct Out {
        doubled: i64,
    }

    struct Doubler;

    impl App for Doubler {
        const DESCRIPTION: &'static str = "doubles";

        fn actions() -> Vec<Action> {
            vec![
                Action::new("double", "double n", |i: In| Ok(Out { doubled: i.n * 2 })),
                Action::routed("sign", "route on the sign", &["pos", "neg"], |i: In| {
                    Ok(Routed::new(
                        if i.n >= 0 { "pos" } else { "neg" },
                        Out { doubled: 0 },
                    ))
                }),
            ]
        }
    }

    #[test]
    fn runs_decodes_and_routes() {
        assert_eq!(
            run::<Doubler>("double", r#"{"n":21}"#).unwrap().output,
            r#"{"doubled":42}"#
        );
        let routed = run::<Doubler>("sign", r#"{"n":-1}"#).unwrap();
        assert_eq!(routed.pathway.as_deref(), Some("neg"));
    }

    #[test]
    fn bad_input_and_unknown_action_are_invalid_input() {
        let e = run::<Doubler>("double", r#"{"m":1}"#).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
        assert!(e.message().contains("missing field `n`"), "{}", e.message());
        let e = run::<Doubler>("triple", "{}").unwrap_err();
        assert_eq!(
            e.message(),
            "unknown action `triple`; this app offers: double, sign"
        );
    }

    #[test]
    fn describe_has_schemas_and_pathways() {
        let info = describe::<Doubler>("doubler", "1.0.0");
        assert_eq!(info.actions.len(), 2);
        let input: serde_json::Value = serde_json::from_str(&info.actions[0].input_schema).unwrap();
        assert_eq!(input["properties"]["n"]["type"], "integer");
        assert_eq!(input["required"], serde_json::json!(["n"]));
        assert_eq!(info.actions[1].pathways, ["pos", "neg"]);
    }
}
