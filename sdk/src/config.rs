//! The settings and secrets of the asset bound to the step.
//!
//! Values are strings; [`get_json`] decodes one that holds JSON (a feed, a list of
//! CIDRs). A secret may be read like any setting: the host, which knows which values
//! are secret, replaces them with `***` in everything it records.

use serde::de::DeserializeOwned;

use crate::StepError;

/// The value of the setting `key`, or `None` when the asset does not set it.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::__bindings::wasp::playbook::config::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::native_config(key);
}

/// The names of every setting the asset has.
pub fn keys() -> Vec<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::__bindings::wasp::playbook::config::keys();
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::native_config_keys();
}

/// The value of `key`, or a `misconfigured` error naming it.
pub fn require(key: &str) -> Result<String, StepError> {
    get(key).ok_or_else(|| StepError::misconfigured(format!("the asset has no setting `{key}`")))
}

/// The setting `key` decoded from JSON; `None` when it is not set, a `misconfigured`
/// error when it is not valid JSON of the expected shape.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, StepError> {
    get(key)
        .map(|raw| {
            serde_json::from_str(&raw)
                .map_err(|e| StepError::misconfigured(format!("setting `{key}` is not valid: {e}")))
        })
        .transpose()
}
