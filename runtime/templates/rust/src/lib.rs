//! {{name}}: a wasp app.
//!
//! Each action is a plain function from a typed input to a typed output; `wasp-sdk`
//! derives the JSON Schemas that `describe` reports, decodes the input (a malformed
//! one fails the step with `invalid-input` before the function runs) and encodes the
//! output. Replace `greet` with your own actions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasp_sdk::{Action, App, StepError, config, info};

/// The input of `greet`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GreetInput {
    /// Who to greet.
    pub name: String,
}

/// The output of `greet`.
#[derive(Serialize, JsonSchema)]
pub struct GreetOutput {
    /// The greeting.
    pub greeting: String,
}

/// Greet someone, with the salutation of the bound asset's `salutation` setting.
pub fn greet(input: GreetInput) -> Result<GreetOutput, StepError> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err(StepError::invalid_input("`name` is empty"));
    }
    if name.chars().count() > 100 {
        return Err(StepError::invalid_input(format!(
            "`name` is {} characters long; at most 100 are allowed",
            name.chars().count()
        )));
    }
    let salutation = config::get("salutation").unwrap_or_else(|| "Hello".to_owned());
    info!(name = name; "greeting someone");
    Ok(GreetOutput {
        greeting: format!("{salutation}, {name}!"),
    })
}

struct ThisApp;

impl App for ThisApp {
    const DESCRIPTION: &'static str = "Greets people (a skeleton to replace).";

    fn actions() -> Vec<Action> {
        vec![Action::new("greet", "Greet someone by name.", greet)]
    }
}

wasp_sdk::export_app!(ThisApp);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_sdk::{ErrorCode, Level, testing};

    #[test]
    fn greets_with_the_configured_salutation_and_logs() {
        testing::set_config([("salutation", "Hi")]);
        let outcome = wasp_sdk::run::<ThisApp>("greet", r#"{"name": "Ada"}"#).unwrap();
        assert_eq!(outcome.output, r#"{"greeting":"Hi, Ada!"}"#);
        assert_eq!(
            testing::logs(),
            [(Level::Info, "greeting someone name=Ada".to_owned())]
        );
    }

    #[test]
    fn bad_input_is_invalid_input() {
        let error = wasp_sdk::run::<ThisApp>("greet", r#"{"name": " "}"#).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidInput);
        assert_eq!(error.message(), "`name` is empty");
        let error = wasp_sdk::run::<ThisApp>("greet", r#"{"nme": "Ada"}"#).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidInput);
        assert!(error.message().contains("unknown field `nme`"), "{}", error.message());
    }

    #[test]
    fn describe_lists_the_action_with_schemas() {
        let info = wasp_sdk::describe::<ThisApp>("{{name}}", "0.1.0");
        assert_eq!(info.actions.len(), 1);
        assert_eq!(info.actions[0].name, "greet");
        assert!(info.actions[0].input_schema.contains("\"required\":[\"name\"]"));
    }
}
