//! The [`Redactor`]: every secret's value, its percent-encoded form, and the start of
//! one that a cut left at the end of a text, replaced by [`REDACTED`].

use serde_json::Value;

/// The length of the longest start of `secret`, shorter than it, that `text` ends
/// with: Knuth–Morris–Pratt over the secret, linear in both (a guest chooses `text`).
fn longest_start_at_end(secret: &[u8], text: &[u8]) -> usize {
    if secret.len() < 2 {
        return 0;
    }
    let mut fallback = vec![0usize; secret.len()];
    let mut k = 0;
    for i in 1..secret.len() {
        while k > 0 && secret[i] != secret[k] {
            k = fallback[k - 1];
        }
        if secret[i] == secret[k] {
            k += 1;
        }
        fallback[i] = k;
    }
    let mut matched = 0;
    for &byte in text {
        while matched > 0 && (matched == secret.len() || byte != secret[matched]) {
            matched = fallback[matched - 1];
        }
        if byte == secret[matched] {
            matched += 1;
        }
    }
    if matched == secret.len() {
        fallback[matched - 1]
    } else {
        matched
    }
}

/// `text` with every byte but RFC 3986's unreserved characters percent-encoded.
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The mask that replaces a secret's value.
pub const REDACTED: &str = "***";

/// Replaces the values of secrets with [`REDACTED`] in everything recorded.
///
/// Longer secrets are replaced first, so that a secret containing another is masked
/// whole.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for `secrets`, and for each its percent-encoded form (as it appears
    /// in a URL); empty values are ignored (they would match everywhere).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| {
                let encoded = percent_encoded(&s);
                [Some(s), Some(encoded)]
            })
            .flatten()
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// This redactor with one more secret.
    #[must_use]
    pub fn with(&self, secret: String) -> Self {
        Self::new(self.secrets.iter().cloned().chain([secret]))
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// `text`, the head of something longer that was cut off, with every secret
    /// replaced, and also a start of a secret that the cut left at its end.
    pub fn text_cut(&self, text: &str) -> String {
        let mut out = self.text(text);
        for secret in &self.secrets {
            // Shorter starts could be chance.
            let k = longest_start_at_end(secret.as_bytes(), out.as_bytes());
            if k >= 4 {
                // Equal bytes from the start of a secret: a character boundary.
                out.truncate(out.len() - k);
                out.push_str(REDACTED);
            }
        }
        out
    }

    /// Redact every string (keys too) inside a JSON value, in place, and every number
    /// whose decimal text holds a numeric secret (`8675309` for the secret
    /// `"8675309"`): such a number becomes the string [`REDACTED`].
    pub fn json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => *s = self.text(s),
            Value::Number(n) => {
                let text = n.to_string();
                if self
                    .secrets
                    .iter()
                    .any(|secret| looks_numeric(secret) && text.contains(secret.as_str()))
                {
                    *value = Value::String(REDACTED.to_owned());
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.json(&mut v);
                    map.insert(self.text(&key), v);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}

/// Whether `secret` could be (part of) the text of a JSON number.
fn looks_numeric(secret: &str) -> bool {
    secret.bytes().any(|b| b.is_ascii_digit())
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn redacts_longest_secret_first_in_text_and_json() {
        let r = Redactor::new(["abc".to_owned(), "abcdef".to_owned(), String::new()]);
        assert_eq!(r.text("key=abcdef, short=abc"), "key=***, short=***");
        let mut v = json!({"abcdef": ["x abc y", 1, {"k": "abcdef"}]});
        r.json(&mut v);
        assert_eq!(v, json!({"***": ["x *** y", 1, {"k": "***"}]}));
    }

    #[test]
    fn numbers_holding_a_numeric_secret_are_masked() {
        let r = Redactor::new(["8675309".to_owned(), "abc".to_owned()]);
        let mut v = json!({"pin": 8675309, "n": 186753090, "other": 42, "f": 8675309.5});
        r.json(&mut v);
        assert_eq!(
            v,
            json!({"pin": "***", "n": "***", "other": 42, "f": "***"})
        );
    }

    #[test]
    fn the_start_of_a_secret_left_by_a_cut_is_masked() {
        let r = Redactor::new(["s3cr3t-value".to_owned()]);
        assert_eq!(
            r.text_cut("key=s3cr3t-value, again s3cr3t-v"),
            "key=***, again ***"
        );
        assert_eq!(
            r.text_cut("ends with s3c"),
            "ends with s3c",
            "three bytes are chance"
        );
        assert_eq!(r.text_cut("nothing here"), "nothing here");
        // Linear, whatever the text: a repetitive secret and a text built against it.
        let secret = "x".repeat(200_000) + "y";
        let text = "x".repeat(300_000) + "z";
        let r = Redactor::new([secret]);
        assert_eq!(r.text_cut(&text), text);
        assert_eq!(longest_start_at_end(b"abcab", b"zzabca"), 4);
        assert_eq!(longest_start_at_end(b"aab", b"aaaa"), 2);
    }

    #[test]
    fn a_secret_is_redacted_percent_encoded_too() {
        let r = Redactor::new(["a+b/c=".to_owned()]);
        assert_eq!(r.text("/x?key=a%2Bb%2Fc%3D&k2=a+b/c="), "/x?key=***&k2=***");
    }
}
