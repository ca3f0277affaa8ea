//! Outbound HTTP through the standard `wasi:http/outgoing-handler`.
//!
//! The host lets a request out only to the hosts the bound asset allows, refuses
//! loopback and private addresses unless the asset names them, and enforces connect,
//! first-byte and total timeouts and a response size cap (see the asset's `hosts` and
//! `http` fields). Every request is recorded in the step's trace at DEBUG, without
//! query values.
//!
//! ```no_run
//! use wasp_sdk::{StepError, config, http};
//!
//! fn lookup(ip: &str) -> Result<serde_json::Value, StepError> {
//!     let base = config::require("base_url")?;
//!     let key = config::require("api_key")?;
//!     let response = http::get(&format!("{base}/check?ipAddress={ip}"))
//!         .header("Key", &key)
//!         .header("Accept", "application/json")
//!         .send()?            // a refused host, a timeout, … become a classified StepError
//!         .error_for_status()?; // 401 → unauthorized, 429 → rate_limited (retryable), …
//!     response.json()
//! }
//! ```
//!
//! Outside WebAssembly (in `cargo test`) requests go to the responder set with
//! [`crate::testing::respond_with`], so that actions that call out can be unit-tested.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StepError;

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The absolute `http` or `https` URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
}

/// A `GET` of `url`.
pub fn get(url: &str) -> Request {
    Request::new("GET", url)
}

/// A `POST` to `url`.
pub fn post(url: &str) -> Request {
    Request::new("POST", url)
}

impl Request {
    /// A request with `method` to `url`.
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Add a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The first value of header `name` (any case).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Set the body to `value` as JSON, with its content type.
    #[must_use]
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.body = serde_json::to_vec(value).unwrap_or_default();
        self.header("Content-Type", "application/json")
    }

    /// Set the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Send it and read the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        let url = Url::parse(&self.url)?;
        imp::send(&self, &url)
    }
}

/// A response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The request's URL, for messages.
    pub url: String,
}

impl Response {
    /// A response with `status` and `body`, for [`crate::testing::respond_with`].
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            url: String::new(),
        }
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`; a body that does not fit is an `unavailable`
    /// error naming the URL.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            StepError::unavailable(format!(
                "{} answered something that is not the expected JSON: {e}",
                self.url
            ))
        })
    }

    /// This response when its status is 2xx; otherwise a `StepError` classified by the
    /// status: 400/422 `invalid_input`, 401 `unauthorized`, 403 `forbidden`, 404
    /// `not_found`, 408/504 `timeout`, 429 `rate_limited`, other 5xx `unavailable`
    /// (those four retryable), anything else `internal`.
    pub fn error_for_status(self) -> Result<Self, StepError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let mut snippet = self.text();
        if snippet.len() > 200 {
            let mut end = 200;
            while !snippet.is_char_boundary(end) {
                end -= 1;
            }
            snippet.truncate(end);
            snippet.push('…');
        }
        let message = format!("{} answered {}: {}", self.url, self.status, snippet.trim());
        Err(match self.status {
            400 | 422 => StepError::invalid_input(message),
            401 => StepError::unauthorized(message),
            403 => StepError::new(crate::ErrorCode::Forbidden, message),
            404 => StepError::not_found(message),
            408 | 504 => StepError::new(crate::ErrorCode::Timeout, message).retryable(),
            429 => StepError::new(crate::ErrorCode::RateLimited, message).retryable(),
            500..=599 => StepError::unavailable(message).retryable(),
            _ => StepError::internal(message),
        })
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The class of failure.
    pub kind: HttpErrorKind,
    /// What happened, naming the URL.
    pub message: String,
}

/// The class of an [`HttpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// The host refused it: the asset does not allow the host, or the address is
    /// loopback, private or link-local and not named by the asset.
    Refused,
    /// A timeout: connecting, waiting for the answer, or the whole exchange.
    Timeout,
    /// The response was larger than the asset's cap.
    TooLarge,
    /// The server could not be reached (name, connection, TLS).
    Unreachable,
    /// The URL or request is malformed.
    InvalidRequest,
    /// Anything else.
    Other,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for StepError {
    /// Refusals and malformed requests are `misconfigured` (the asset or the input must
    /// change); timeouts and unreachable servers are retryable.
    fn from(error: HttpError) -> Self {
        match error.kind {
            HttpErrorKind::Refused => StepError::misconfigured(error.message),
            HttpErrorKind::InvalidRequest => StepError::invalid_input(error.message),
            HttpErrorKind::Timeout => {
                StepError::new(crate::ErrorCode::Timeout, error.message).retryable()
            }
            HttpErrorKind::Unreachable => StepError::unavailable(error.message).retryable(),
            HttpErrorKind::TooLarge | HttpErrorKind::Other => StepError::unavailable(error.message),
        }
    }
}

/// The parts of an `http`/`https` URL that `wasi:http` takes apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(url: &str) -> Result<Self, HttpError> {
        let invalid = |why: &str| HttpError {
            kind: HttpErrorKind::InvalidRequest,
            message: format!("`{url}` is not a usable URL: {why}"),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("it needs http:// or https://"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid("only http and https are supported")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid("it names no host"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "credentials in the URL would be logged; send them in a header",
            ));
        }
        let tail = tail.split('#').next().unwrap_or("");
        let path_with_query = match tail.strip_prefix('?') {
            Some(query) => format!("/?{query}"),
            None if tail.is_empty() => "/".to_owned(),
            None => tail.to_owned(),
        };
        if path_with_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid(
                "it holds spaces or control characters; percent-encode them",
            ));
        }
        Ok(Self {
            https,
            authority: authority.to_owned(),
            path_with_query,
        })
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasi::io::streams::StreamError;

    use super::{HttpError, HttpErrorKind, Request, Response, Url};

    pub(super) fn send(request: &Request, url: &Url) -> Result<Response, HttpError> {
        let fail = |kind: HttpErrorKind, why: String| HttpError {
            kind,
            message: format!("{} {}: {why}", request.method, request.url),
        };
        let entries: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
            .collect();
        let headers = Fields::from_list(&entries).map_err(|e| {
            fail(
                HttpErrorKind::InvalidRequest,
                format!("a header is not allowed: {e:?}"),
            )
        })?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        let invalid = |what: &str| fail(HttpErrorKind::InvalidRequest, format!("invalid {what}"));
        outgoing
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        let scheme = if url.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        outgoing
            .set_authority(Some(&url.authority))
            .map_err(|()| invalid("host"))?;
        outgoing
            .set_path_with_query(Some(&url.path_with_query))
            .map_err(|()| invalid("path"))?;
        let body = outgoing.body().map_err(|()| invalid("body"))?;
        let pending = outgoing_handler::handle(outgoing, None).map_err(|e| classify(&fail, e))?;
        let sent = (|| {
            if !request.body.is_empty() {
                let stream = body.write().map_err(|()| invalid("body"))?;
                for chunk in request.body.chunks(4096) {
                    stream.blocking_write_and_flush(chunk).map_err(|e| {
                        fail(
                            HttpErrorKind::Unreachable,
                            format!("sending the body failed: {e:?}"),
                        )
                    })?;
                }
            }
            OutgoingBody::finish(body, None).map_err(|e| classify(&fail, e))
        })();
        pending.subscribe().block();
        if let Err(sending) = sent {
            // A request the host refused fails its body too: the response says why.
            return Err(match pending.get() {
                Some(Ok(Err(code))) => classify(&fail, code),
                _ => sending,
            });
        }
        let incoming = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => return Err(classify(&fail, e)),
            Some(Err(())) | None => {
                return Err(fail(
                    HttpErrorKind::Other,
                    "the response was lost".to_owned(),
                ));
            }
        };
        let status = incoming.status();
        let headers = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let body = incoming.consume().map_err(|()| invalid("response body"))?;
        let stream = body.stream().map_err(|()| invalid("response body"))?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(64 << 10) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    // The host classifies a failed read (a cap, a timeout) as an HTTP
                    // error code.
                    if let Some(code) = wasi::http::types::http_error_code(&e) {
                        return Err(classify(&fail, code));
                    }
                    // wasmtime 48 does not carry the code of a failed body read to
                    // `http-error-code`, only its text: classify by that.
                    let text = e.to_debug_string();
                    let lower = text.to_ascii_lowercase();
                    let (kind, why) = if lower.contains("size exceeds limit") {
                        (
                            HttpErrorKind::TooLarge,
                            format!("the response is over the asset's size cap ({text})"),
                        )
                    } else if lower.contains("timeout") || lower.contains("timed out") {
                        (
                            HttpErrorKind::Timeout,
                            format!("timed out reading the response ({text})"),
                        )
                    } else {
                        (
                            HttpErrorKind::Other,
                            format!("reading the response failed: {text}"),
                        )
                    };
                    return Err(fail(kind, why));
                }
            }
        }
        drop(stream);
        drop(body);
        Ok(Response {
            status,
            headers,
            body: bytes,
            url: request.url.clone(),
        })
    }

    fn classify(fail: &dyn Fn(HttpErrorKind, String) -> HttpError, code: ErrorCode) -> HttpError {
        use HttpErrorKind as K;
        let (kind, why) = match code {
            ErrorCode::HttpRequestDenied => (
                K::Refused,
                "the host refused the request: the step's asset does not allow this host (see the step's logs)".to_owned(),
            ),
            ErrorCode::DestinationIpProhibited => (
                K::Refused,
                "the host refused the request: the name resolves to a loopback, private or link-local address the asset does not name (see the step's logs)".to_owned(),
            ),
            ErrorCode::ConnectionLimitReached => (
                K::Refused,
                "the host refused the request: the step made as many requests as a step may".to_owned(),
            ),
            ErrorCode::DnsTimeout
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => (K::Timeout, format!("timed out ({code:?})")),
            ErrorCode::HttpResponseBodySize(size) => (
                K::TooLarge,
                match size {
                    Some(size) => format!("the response ({size} bytes so far) is over the asset's size cap"),
                    None => "the response is over the asset's size cap".to_owned(),
                },
            ),
            ErrorCode::DnsError(e) => (
                K::Unreachable,
                format!("the name did not resolve: {}", e.rcode.unwrap_or_default()),
            ),
            ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTerminated
            | ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_) => (K::Unreachable, format!("{code:?}")),
            ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestUriTooLong => (K::InvalidRequest, format!("{code:?}")),
            other => (K::Other, format!("{other:?}")),
        };
        fail(kind, why)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{HttpError, HttpErrorKind, Request, Response, Url};

    pub(super) fn send(request: &Request, _url: &Url) -> Result<Response, HttpError> {
        match crate::testing::respond(request) {
            Some(mut response) => {
                response.url = request.url.clone();
                Ok(response)
            }
            None => Err(HttpError {
                kind: HttpErrorKind::Refused,
                message: format!(
                    "{} {}: no HTTP outside the wasp host; set a responder with wasp_sdk::testing::respond_with",
                    request.method, request.url
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart_for_wasi_http() {
        let url = Url::parse("https://api.example.com:8443/v2/check?ip=1.2.3.4#frag").unwrap();
        assert_eq!(
            url,
            Url {
                https: true,
                authority: "api.example.com:8443".into(),
                path_with_query: "/v2/check?ip=1.2.3.4".into(),
            }
        );
        assert_eq!(Url::parse("http://h").unwrap().path_with_query, "/");
        assert_eq!(Url::parse("http://h?x=1").unwrap().path_with_query, "/?x=1");
        for (bad, why) in [
            ("ftp://h/", "only http and https"),
            ("h/x", "needs http://"),
            ("http:///x", "names no host"),
            ("http://u:p@h/", "credentials"),
            ("http://h/a b", "percent-encode"),
        ] {
            let error = Url::parse(bad).unwrap_err();
            assert_eq!(error.kind, HttpErrorKind::InvalidRequest);
            assert!(error.message.contains(why), "{bad}: {}", error.message);
        }
    }

    #[test]
    fn statuses_become_classified_errors() {
        let code = |status: u16| {
            Response::new(status, "no")
                .error_for_status()
                .map(|_| ())
                .map_err(|e| (e.code(), e.is_retryable()))
        };
        assert_eq!(code(200), Ok(()));
        assert_eq!(code(401), Err((crate::ErrorCode::Unauthorized, false)));
        assert_eq!(code(429), Err((crate::ErrorCode::RateLimited, true)));
        assert_eq!(code(503), Err((crate::ErrorCode::Unavailable, true)));
        assert_eq!(code(404), Err((crate::ErrorCode::NotFound, false)));
    }

    #[test]
    fn natively_requests_go_to_the_test_responder() {
        crate::testing::respond_with(|request| {
            assert_eq!(request.header_value("key"), Some("k"));
            Response::new(200, r#"{"ok":true}"#)
        });
        let response = get("https://api.example.com/x")
            .header("Key", "k")
            .send()
            .unwrap();
        assert_eq!(response.json::<serde_json::Value>().unwrap()["ok"], true);
        crate::testing::clear_responder();
        assert_eq!(
            get("https://api.example.com/x").send().unwrap_err().kind,
            HttpErrorKind::Refused
        );
    }
}
