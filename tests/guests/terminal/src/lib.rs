//! An app that writes to the terminal of whoever lists it: its description holds
//! escape sequences (clear the screen, set the window title, write the clipboard) and
//! a newline followed by a forged status line. The tests check that wasp prints them
//! escaped. Its name is the one literal [`NAME`], which a test overwrites in a copy of
//! the component to make the name itself hostile.
#![expect(
    unsafe_code,
    reason = "wit-bindgen's `export!` declares the exported functions with `export_name`"
)]

wit_bindgen::generate!({ path: "../../../wit", world: "app" });

use wasp::playbook::types::{ActionInfo, ErrorCode};

/// The app's name; a test replaces these bytes, so keep the literal unique.
const NAME: &str = "terminal-probe";

/// Clear the screen, set the window title, write "evil" to the clipboard (OSC 52),
/// then start a line of its own.
const HOSTILE: &str =
    "probe\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]52;c;ZXZpbA==\u{7}\n✔ succeeded  forged\u{9b}31m";

struct Terminal;

impl Guest for Terminal {
    fn describe() -> AppInfo {
        AppInfo {
            name: NAME.into(),
            version: "0.1.0".into(),
            description: HOSTILE.into(),
            actions: vec![ActionInfo {
                name: "fail".into(),
                description: "Fail with the hostile text as the message.".into(),
                input_schema: "{}".into(),
                output_schema: "{}".into(),
                pathways: Vec::new(),
            }],
        }
    }

    fn run(_call: Invocation) -> Result<Outcome, StepError> {
        Err(StepError {
            code: ErrorCode::Internal,
            message: HOSTILE.into(),
            retryable: false,
        })
    }
}

export!(Terminal);
