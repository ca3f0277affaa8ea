//! Write wasp apps and operators in Rust.
//!
//! An app is a WebAssembly component that the wasp runtime runs in a fresh sandbox for
//! every step. With this crate you write plain Rust functions from a typed input to a
//! typed output; the crate generates the app's description (with JSON Schemas of every
//! input and output), decodes inputs, encodes outputs and reports errors over the
//! `wasp:playbook` WIT contract. You never touch `wit-bindgen`.
//!
//! # A complete app
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "greet"            # the app's name in playbooks and `wasp app list`
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! wasp-sdk = { path = "../../sdk" }
//! serde = { version = "1", features = ["derive"] }
//! schemars = "1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use wasp_sdk::{Action, App, StepError, config, info};
//! use serde::{Deserialize, Serialize};
//! use schemars::JsonSchema;
//!
//! /// The input of `greet`.
//! #[derive(Deserialize, JsonSchema)]
//! struct GreetInput {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! /// The output of `greet`.
//! #[derive(Serialize, JsonSchema)]
//! struct GreetOutput {
//!     greeting: String,
//! }
//!
//! fn greet(input: GreetInput) -> Result<GreetOutput, StepError> {
//!     if input.name.is_empty() {
//!         return Err(StepError::invalid_input("`name` is empty"));
//!     }
//!     // Settings come from the asset bound to the step.
//!     let salutation = config::get("salutation").unwrap_or_else(|| "Hello".to_owned());
//!     info!(name = input.name; "greeting someone");
//!     Ok(GreetOutput { greeting: format!("{salutation}, {}!", input.name) })
//! }
//!
//! struct Greeter;
//!
//! impl App for Greeter {
//!     const DESCRIPTION: &'static str = "Greets people.";
//!
//!     fn actions() -> Vec<Action> {
//!         vec![Action::new("greet", "Greet someone by name.", greet)]
//!     }
//! }
//!
//! wasp_sdk::export_app!(Greeter);
//! # fn main() {
//! #     let info = wasp_sdk::describe::<Greeter>("greet", "0.1.0");
//! #     assert_eq!(info.actions[0].name, "greet");
//! #     let out = wasp_sdk::run::<Greeter>("greet", r#"{"name":"Ada"}"#).unwrap();
//! #     assert_eq!(out.output, r#"{"greeting":"Hello, Ada!"}"#);
//! # }
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`: the `.wasm` file in
//! `target/wasm32-wasip2/release/` is the component. Then
//! `wasp app run path/to/greet.wasm --action greet --input '{"name":"Ada"}'`.
//!
//! # Operators
//!
//! An operator routes the playbook: its action names a pathway as well as an output.
//! Declare the pathways with [`Action::routed`] and return a [`Routed`] value.
//!
//! # Testing actions natively
//!
//! Action functions are plain Rust, so `cargo test` runs them on the host. Outside
//! WebAssembly, logging goes to an in-memory list ([`testing::logs`]) and config comes
//! from [`testing::set_config`].
#![deny(missing_docs)]

mod action;
pub mod config;
mod error;
pub mod http;
pub mod json;
pub mod log;
pub mod testing;

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "app",
        pub_export_macro: true,
        export_macro_name: "__export_app_world",
        default_bindings_module: "wasp_sdk::__bindings",
        runtime_path: "wasp_sdk::__wit_bindgen::rt",
    });
}

// The generated bindings and export macro name paths through `wasp_sdk::`, so that an
// app crate needs no direct dependency on `wit-bindgen`; this makes the same paths
// resolve inside this crate too.
extern crate self as wasp_sdk;
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use action::{Action, ActionInfo, App, AppInfo, Outcome, Routed, describe, run};
pub use error::{ErrorCode, StepError};
pub use log::Level;

/// Export `$app` (a type implementing [`App`]) as the component's `app` world.
///
/// Use it once per crate. The app is named after the crate (`CARGO_PKG_NAME`) and
/// versioned with it (`CARGO_PKG_VERSION`).
#[macro_export]
macro_rules! export_app {
    ($app:ty) => {
        #[doc(hidden)]
        struct __WaspGuest;

        impl $crate::__bindings::Guest for __WaspGuest {
            fn describe() -> $crate::__bindings::wasp::playbook::types::AppInfo {
                $crate::__private::describe_wit::<$app>(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                )
            }

            fn run(
                call: $crate::__bindings::wasp::playbook::types::Invocation,
            ) -> ::core::result::Result<
                $crate::__bindings::wasp::playbook::types::Outcome,
                $crate::__bindings::wasp::playbook::types::StepError,
            > {
                $crate::__private::run_wit::<$app>(call)
            }
        }

        $crate::__bindings::__export_app_world!(__WaspGuest with_types_in $crate::__bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::action::{describe_wit, run_wit};
}
