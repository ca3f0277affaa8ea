//! The smallest useful app: `echo` returns its input unchanged. It touches nothing of
//! WASI beyond what the Rust standard library links in, so that the benchmark measures
//! the host's own cost per call, not the app's.
#![expect(
    unsafe_code,
    reason = "wit-bindgen's `export!` declares the exported functions with `export_name`"
)]

wit_bindgen::generate!({ path: "../../../wit", world: "app" });

use wasp::playbook::types::ActionInfo;

struct Echo;

impl Guest for Echo {
    fn describe() -> AppInfo {
        AppInfo {
            name: "echo".into(),
            version: "0.1.0".into(),
            description: "Returns its input.".into(),
            actions: vec![ActionInfo {
                name: "echo".into(),
                description: "Return the input unchanged.".into(),
                input_schema: "{}".into(),
                output_schema: "{}".into(),
                pathways: Vec::new(),
            }],
        }
    }

    fn run(call: Invocation) -> Result<Outcome, StepError> {
        Ok(Outcome {
            output: call.input,
            pathway: None,
        })
    }
}

export!(Echo);
