//! `http-request`: one HTTP request to a service the bound asset allows, for playbook
//! authors who need an API no app wraps yet.
//!
//! The asset decides where the request may go (`hosts`) and can hold:
//! - `base_url` (setting): a relative `url` in the input is joined to it;
//! - `headers` (setting): a JSON object of headers sent with every request;
//! - `authorization` (secret): the value of the `Authorization` header, e.g.
//!   `Bearer …`; the host masks it in everything it records.
//!
//! The output holds the status, the response headers and the body: parsed as `json`
//! when it is JSON, as `text` otherwise. A status outside 2xx fails the step with a
//! classified error (401 `unauthorized`, 429 `rate_limited`, 5xx `unavailable`, …)
//! unless the input sets `fail_on_status: false`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasp_sdk::{Action, App, StepError, config, debug, http};

/// The request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    /// `GET` (the default), `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`.
    #[serde(default = "get")]
    pub method: String,
    /// An absolute `http(s)://` URL, or a path joined to the asset's `base_url`.
    pub url: String,
    /// Query parameters, percent-encoded and appended to the URL.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers, on top of the asset's.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (sent with `Content-Type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    /// A text body. Give `json` or `body`, not both.
    #[serde(default)]
    pub body: Option<String>,
    /// Fail the step when the status is not 2xx (default true).
    #[serde(default = "yes")]
    pub fail_on_status: bool,
}

fn get() -> String {
    "GET".to_owned()
}

fn yes() -> bool {
    true
}

/// The response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RequestOutput {
    /// The status code.
    pub status: u16,
    /// Whether the status is 2xx.
    pub ok: bool,
    /// Response headers, names in lower case (repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The body, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// The body as text, when it is not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Percent-encode `text` for a query component.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The absolute URL of the input, with its query.
fn url_of(input: &RequestInput) -> Result<String, StepError> {
    let mut url = if input.url.contains("://") {
        input.url.clone()
    } else {
        let base = config::get("base_url").ok_or_else(|| {
            StepError::invalid_input(format!(
                "`url` {} is relative, and the asset sets no `base_url`",
                input.url
            ))
        })?;
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            input.url.trim_start_matches('/')
        )
    };
    if !input.query.is_empty() {
        let pairs: Vec<String> = input
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&pairs.join("&"));
    }
    Ok(url)
}

fn request(input: RequestInput) -> Result<RequestOutput, StepError> {
    let method = input.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(StepError::invalid_input(format!(
            "`method` {} is not one of {}",
            input.method,
            METHODS.join(", ")
        )));
    }
    if input.json.is_some() && input.body.is_some() {
        return Err(StepError::invalid_input("give `json` or `body`, not both"));
    }
    let url = url_of(&input)?;
    let mut request = http::Request::new(&method, &url);
    let defaults: BTreeMap<String, String> = config::get_json("headers")?.unwrap_or_default();
    for (name, value) in defaults.iter().chain(&input.headers) {
        request = request.header(name, value);
    }
    if let Some(authorization) = config::get("authorization") {
        request = request.header("Authorization", &authorization);
    }
    if let Some(json) = &input.json {
        request = request.json(json);
    } else if let Some(body) = input.body {
        request = request.body(body);
    }
    let response = request.send()?;
    debug!(status = response.status, bytes = response.body.len(); "response received");
    let response = if input.fail_on_status {
        response.error_for_status()?
    } else {
        response
    };
    let mut headers = BTreeMap::new();
    for (name, value) in &response.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    let (json, text) = match serde_json::from_slice::<Value>(&response.body) {
        Ok(json) if !response.body.is_empty() => (Some(json), None),
        _ => (None, Some(response.text())),
    };
    Ok(RequestOutput {
        status: response.status,
        ok: (200..300).contains(&response.status),
        headers,
        json,
        text,
    })
}

/// The app.
pub struct HttpRequest;

impl App for HttpRequest {
    const DESCRIPTION: &'static str =
        "Make an HTTP request to a host the bound asset allows, for playbook authors.";

    fn actions() -> Vec<Action> {
        vec![Action::new(
            "request",
            "Send one HTTP request and return its status, headers and body.",
            request,
        )]
    }
}

wasp_sdk::export_app!(HttpRequest);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_sdk::testing;

    fn input(json: Value) -> RequestInput {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn relative_urls_join_the_base_and_queries_are_encoded() {
        testing::set_config([("base_url", "https://api.example.com/v1/")]);
        let url = url_of(&input(serde_json::json!({
            "url": "/search", "query": {"q": "a b&c", "limit": "5"}
        })))
        .unwrap();
        assert_eq!(url, "https://api.example.com/v1/search?limit=5&q=a%20b%26c");
        testing::set_config::<&str, &str>([]);
        let error = url_of(&input(serde_json::json!({"url": "search"}))).unwrap_err();
        assert!(error.message().contains("no `base_url`"));
    }

    #[test]
    fn asset_headers_and_authorization_are_sent() {
        testing::set_config([
            ("headers", r#"{"Accept": "application/json"}"#),
            ("authorization", "Bearer t0ken"),
        ]);
        testing::respond_with(|request| {
            assert_eq!(request.method, "POST");
            assert_eq!(request.header_value("accept"), Some("application/json"));
            assert_eq!(request.header_value("authorization"), Some("Bearer t0ken"));
            assert_eq!(request.body, br#"{"a":1}"#);
            http::Response::new(201, r#"{"id":7}"#)
        });
        let output = request(input(serde_json::json!({
            "method": "post", "url": "https://api.example.com/items", "json": {"a": 1}
        })))
        .unwrap();
        assert_eq!((output.status, output.ok), (201, true));
        assert_eq!(output.json, Some(serde_json::json!({"id": 7})));
    }

    #[test]
    fn statuses_fail_the_step_unless_told_not_to() {
        testing::set_config::<&str, &str>([]);
        testing::respond_with(|_| http::Response::new(429, "slow down"));
        let error = request(input(serde_json::json!({"url": "https://x.example/"}))).unwrap_err();
        assert_eq!(error.code(), wasp_sdk::ErrorCode::RateLimited);
        assert!(error.is_retryable());
        let output = request(input(
            serde_json::json!({"url": "https://x.example/", "fail_on_status": false}),
        ))
        .unwrap();
        assert_eq!(output.text.as_deref(), Some("slow down"));
        let error = request(input(
            serde_json::json!({"url": "https://x.example/", "method": "BREW"}),
        ))
        .unwrap_err();
        assert!(error.message().contains("not one of"));
    }
}
