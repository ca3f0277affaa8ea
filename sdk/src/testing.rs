//! Running actions natively, in `cargo test`.
//!
//! Outside WebAssembly there is no host: log lines are kept in a per-thread list that
//! [`logs`] returns, every level is enabled, and config comes from [`set_config`].
//! Inside a component these functions do nothing useful and the host is used instead.

#![cfg_attr(
    target_arch = "wasm32",
    expect(
        dead_code,
        reason = "the native stand-ins are used only off WebAssembly"
    )
)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::log::Level;

/// What answers HTTP requests natively.
type Responder = Box<dyn Fn(&crate::http::Request) -> crate::http::Response>;

thread_local! {
    static RESPONDER: RefCell<Option<Responder>> = const { RefCell::new(None) };
    static CONFIG: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

/// Set this thread's config to `settings`, replacing what was there.
pub fn set_config<K: Into<String>, V: Into<String>>(settings: impl IntoIterator<Item = (K, V)>) {
    CONFIG.with(|c| {
        *c.borrow_mut() = settings
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
    });
}

/// Answer this thread's HTTP requests ([`crate::http`]) with `responder`, standing in
/// for the remote service in a native unit test.
pub fn respond_with(responder: impl Fn(&crate::http::Request) -> crate::http::Response + 'static) {
    RESPONDER.with(|r| *r.borrow_mut() = Some(Box::new(responder)));
}

/// Stop answering this thread's HTTP requests.
pub fn clear_responder() {
    RESPONDER.with(|r| *r.borrow_mut() = None);
}

pub(crate) fn respond(request: &crate::http::Request) -> Option<crate::http::Response> {
    RESPONDER.with(|r| r.borrow().as_ref().map(|responder| responder(request)))
}

/// Take the lines this thread logged so far, with their levels.
pub fn logs() -> Vec<(Level, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

pub(crate) fn native_enabled(_level: Level) -> bool {
    true
}

pub(crate) fn native_write(level: Level, message: &str, fields: &[(&str, String)]) {
    let mut line = message.to_owned();
    for (key, value) in fields {
        line.push_str(&format!(" {key}={value}"));
    }
    LOGS.with(|l| l.borrow_mut().push((level, line)));
}

pub(crate) fn native_config(key: &str) -> Option<String> {
    CONFIG.with(|c| c.borrow().get(key).cloned())
}

pub(crate) fn native_config_keys() -> Vec<String> {
    CONFIG.with(|c| c.borrow().keys().cloned().collect())
}
