//! Requests signed instead of carrying a token, as two vendors' clients send them:
//!
//! - ThreatConnect (tcex): `Authorization: TC <access id>:<signature>` and `Timestamp:
//!   <unix seconds>`, the signature the Base64 HMAC-SHA256 of `<path and query, as
//!   sent>:<METHOD>:<timestamp>`. It does not cover a body: accepted for reads only
//!   (GET, HEAD, OPTIONS), which is all ThreatConnect's view serves.
//! - Huawei Cloud (its SDKs' AK/SK signing): `Authorization: SDK-HMAC-SHA256
//!   Access=<AK>, SignedHeaders=<a;b>, Signature=<hex>` and `X-Sdk-Date:
//!   <YYYYMMDDTHHMMSSZ>`, the signature the hex HMAC-SHA256 of a string to sign over the
//!   canonical request (method, path, sorted query, the signed headers, the body's
//!   SHA-256).
//!
//! The access id (the AK) is an API key's id; the secret (the SK) is the key's signing
//! secret, which the server derives from its key file. Checking is in two steps: the
//! header is read and checked ([`claim`]: its shape, its time, what it signs) before
//! anything else, and only for a key that exists is a signed body read (at most
//! [`MAX_SIGNED_BODY`]) and the signature computed ([`Claim::signature`]). A signature
//! older or newer than its scheme's window (5 minutes for ThreatConnect, 15 for Huawei,
//! as their gateways allow) is refused; within it, a read could be sent again, and a
//! change is refused the second time (see `api::Replays`).

use axum::http::{HeaderMap, Method, Uri, header};
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac as _};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest as _, Sha256};

/// How far a ThreatConnect `Timestamp` may be from now, in seconds.
pub(super) const TC_WINDOW_SECS: u64 = 5 * 60;
/// How far a Huawei `X-Sdk-Date` may be from now, in seconds.
pub(super) const HUAWEI_WINDOW_SECS: u64 = 15 * 60;
/// The longest `Authorization` header read as a signature.
const MAX_AUTHORIZATION: usize = 4096;
/// The most headers a Huawei signature may sign.
const MAX_SIGNED_HEADERS: usize = 32;
/// The most bytes of signed headers' names and values a Huawei signature may cover.
const MAX_SIGNED_HEADER_BYTES: usize = 16 * 1024;
/// The largest body a Huawei signature may cover (a signed request is checked before
/// anything else: what it may make the server read is bounded tighter than a body).
pub(super) const MAX_SIGNED_BODY: usize = 1024 * 1024;
/// The longest access id (an API key's id is far shorter).
const MAX_KEY_ID: usize = 64;

/// Huawei's canonical encoding: every byte but A-Z, a-z, 0-9, `-`, `_`, `.` and `~`.
const HUAWEI: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A signed request: the key it names, and what to check with the key's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Signature {
    /// What was signed.
    message: String,
    /// The signature sent.
    signature: Vec<u8>,
}

impl Signature {
    /// Whether it is the HMAC-SHA256 of what was signed under `secret`, compared in
    /// constant time.
    pub fn verify(&self, secret: &str) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(self.message.as_bytes());
        mac.verify_slice(&self.signature).is_ok()
    }

    /// The signature sent, to recognise the request if it comes again.
    pub fn sent(&self) -> &[u8] {
        &self.signature
    }
}

/// A signature's header, read and checked: the key it names, and, for Huawei's, what
/// else it signs, to compute once the body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claim {
    /// ThreatConnect's: complete.
    ThreatConnect {
        /// The access id.
        key_id: String,
        /// The signature.
        signature: Signature,
    },
    /// Huawei's: the canonical request but for the body's hash.
    Huawei {
        /// The access id (AK).
        key_id: String,
        /// The canonical request up to the payload hash.
        canonical: String,
        /// `X-Sdk-Date`.
        date: String,
        /// The signature sent.
        signature: Vec<u8>,
    },
}

impl Claim {
    /// The API key it names.
    pub fn key_id(&self) -> &str {
        match self {
            Claim::ThreatConnect { key_id, .. } | Claim::Huawei { key_id, .. } => key_id,
        }
    }

    /// Whether the signature covers the body, which must then be read to check it.
    pub fn covers_body(&self) -> bool {
        matches!(self, Claim::Huawei { .. })
    }

    /// The signature to check, once the request's `body` is read (ignored by a claim
    /// that does not cover it).
    pub fn signature(self, headers: &HeaderMap, body: &[u8]) -> Result<Signature, String> {
        match self {
            Claim::ThreatConnect { signature, .. } => Ok(signature),
            Claim::Huawei {
                canonical,
                date,
                signature,
                ..
            } => {
                let payload = if body.is_empty() {
                    hex::encode(Sha256::digest(b""))
                } else if header_text(headers, "x-sdk-content-sha256").is_some() {
                    // "UNSIGNED-PAYLOAD": a body that anyone could change on the way.
                    return Err("the body must be signed (no `X-Sdk-Content-Sha256`)".to_owned());
                } else {
                    hex::encode(Sha256::digest(body))
                };
                let canonical = format!("{canonical}{payload}");
                Ok(Signature {
                    message: format!(
                        "SDK-HMAC-SHA256\n{date}\n{}",
                        hex::encode(Sha256::digest(canonical.as_bytes()))
                    ),
                    signature,
                })
            }
        }
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        .filter(|value| value.len() <= MAX_AUTHORIZATION)
}

/// The signature the request's head carries, checked as far as it can be without the
/// key and the body: `None` when it carries none, an error saying what is wrong with
/// one that cannot be accepted (malformed, outside its window, signing what cannot be
/// signed unambiguously).
pub(super) fn claim(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<Result<Claim, String>> {
    let value = authorization(headers)?;
    if let Some(rest) = value.strip_prefix("TC ") {
        Some(threatconnect(method, uri, headers, rest, now))
    } else {
        let rest = value.strip_prefix("SDK-HMAC-SHA256 ")?;
        Some(huawei(method, uri, headers, rest, now))
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `id` when it can be an API key's id.
fn key_id(id: &str) -> Result<String, String> {
    let id = id.trim();
    let valid = !id.is_empty()
        && id.len() <= MAX_KEY_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(id.to_owned())
    } else {
        Err("the access id is not an API key's id".to_owned())
    }
}

fn threatconnect(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    credential: &str,
    now: DateTime<Utc>,
) -> Result<Claim, String> {
    if !super::reads(method) {
        return Err(format!(
            "a TC signature does not cover a body: it is accepted for reads, not {method} \
             (send the key's token, `Authorization: TC-Token <token>`)"
        ));
    }
    let (key, signature) = credential
        .rsplit_once(':')
        .ok_or("`Authorization: TC` is `TC <access id>:<signature>`")?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| "the TC signature is not Base64")?;
    let timestamp = header_text(headers, "timestamp").ok_or("a TC signature needs `Timestamp`")?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "`Timestamp` is not a number of seconds")?;
    if now.timestamp().abs_diff(seconds) > TC_WINDOW_SECS {
        return Err(format!(
            "`Timestamp` is more than {} minutes from the server's time",
            TC_WINDOW_SECS / 60
        ));
    }
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(Claim::ThreatConnect {
        key_id: key_id(key)?,
        signature: Signature {
            message: format!("{target}:{}:{timestamp}", method.as_str()),
            signature,
        },
    })
}

fn huawei(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    credential: &str,
    now: DateTime<Utc>,
) -> Result<Claim, String> {
    let (mut access, mut signed, mut signature) = (None, None, None);
    for part in credential.split(',') {
        match part.trim().split_once('=') {
            Some(("Access", value)) => access = Some(value),
            Some(("SignedHeaders", value)) => signed = Some(value),
            Some(("Signature", value)) => signature = Some(value),
            _ => {}
        }
    }
    let (Some(access), Some(signed), Some(signature)) = (access, signed, signature) else {
        return Err(
            "`SDK-HMAC-SHA256` needs `Access=`, `SignedHeaders=` and `Signature=`".to_owned(),
        );
    };
    let key_id = key_id(access)?;
    let signature = hex::decode(signature).map_err(|_| "the signature is not hexadecimal")?;
    let names: Vec<&str> = signed.split(';').collect();
    // Sorted, each once, in lower case, as the SDKs sign them: one name cannot stand for
    // many copies of a large header.
    let ordered = names.windows(2).all(|pair| pair[0] < pair[1])
        && names
            .iter()
            .all(|name| !name.is_empty() && !name.bytes().any(|b| b.is_ascii_uppercase()));
    if !ordered || names.len() > MAX_SIGNED_HEADERS {
        return Err(format!(
            "`SignedHeaders` lists at most {MAX_SIGNED_HEADERS} names, in lower case, sorted, \
             each once"
        ));
    }
    // What makes a signature fresh and names the server must be signed.
    for needed in ["x-sdk-date", "host"] {
        if !names.contains(&needed) {
            return Err(format!("`{needed}` must be among the signed headers"));
        }
    }
    let date = header_text(headers, "x-sdk-date").unwrap_or_default();
    let signed_at = NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| "`X-Sdk-Date` is not a time like 20261207T231523Z")?
        .and_utc();
    if now.timestamp().abs_diff(signed_at.timestamp()) > HUAWEI_WINDOW_SECS {
        return Err(format!(
            "`X-Sdk-Date` is more than {} minutes from the server's time",
            HUAWEI_WINDOW_SECS / 60
        ));
    }
    // Huawei's canonical path decodes the path first: an encoded `/` would sign one path
    // and route another. A repeated query parameter would be sorted for the signature
    // and read in its order by the server.
    let path = uri.path();
    if path.to_ascii_lowercase().contains("%2f") {
        return Err("a signed request's path may not hold an encoded `/` (%2F)".to_owned());
    }
    let query = uri.query().unwrap_or_default();
    let mut keys: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .map(|(key, _)| key.into_owned())
        .collect();
    keys.sort_unstable();
    if keys.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err("a signed request names each query parameter once".to_owned());
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = header_text(headers, name).unwrap_or_default().trim();
        canonical_headers.push_str(&format!("{name}:{value}\n"));
        if canonical_headers.len() > MAX_SIGNED_HEADER_BYTES {
            return Err(format!(
                "the signed headers hold more than {MAX_SIGNED_HEADER_BYTES} bytes"
            ));
        }
    }
    Ok(Claim::Huawei {
        key_id,
        canonical: format!(
            "{}\n{}\n{}\n{canonical_headers}\n{signed}\n",
            method.as_str(),
            canonical_path(path),
            canonical_query(query),
        ),
        date: date.to_owned(),
        signature,
    })
}

/// The path decoded, each segment encoded again, and ending in `/`.
fn canonical_path(path: &str) -> String {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let mut canonical = decoded
        .split('/')
        .map(|segment| utf8_percent_encode(segment, HUAWEI).to_string())
        .collect::<Vec<_>>()
        .join("/");
    if !canonical.ends_with('/') {
        canonical.push('/');
    }
    canonical
}

/// The query's pairs decoded, sorted, and each side encoded again.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(key, HUAWEI),
                utf8_percent_encode(value, HUAWEI)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// The signature of a request, as the server checks it: its head, then its body.
    fn signature(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Option<Result<Signature, String>> {
        claim(method, uri, headers, now).map(|claim| claim?.signature(headers, body))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    /// Requests signed by tcex 5.0.0 (captured on the wire), and its secret.
    #[test]
    fn a_request_tcex_signed_verifies_and_a_changed_one_does_not() {
        let uri: Uri = "/api/v3/playbook/executions?result_limit=3&resultLimit=1&count=True&tql=status+%3D+%22Completed%22+and+id+%3E+0"
            .parse()
            .unwrap();
        let sent = headers(&[
            (
                "authorization",
                "TC wasp-tc-id:wFt6EikcUzk7+x492naxX7G1tLHTMJZHWjOHCMeu7Mc=",
            ),
            ("timestamp", "1796685322"),
        ]);
        let now = DateTime::from_timestamp(1_796_685_400, 0).unwrap();
        let claimed = claim(&Method::GET, &uri, &sent, now).unwrap().unwrap();
        assert_eq!(claimed.key_id(), "wasp-tc-id");
        let signed = signature(&Method::GET, &uri, &sent, b"", now)
            .unwrap()
            .unwrap();
        assert!(signed.verify("tc-secret-0123456789"));
        assert!(!signed.verify("tc-secret-012345678"));
        // Another method, another query, another time: the signature no longer holds. A
        // change is not accepted at all (the signature does not cover its body).
        let head = signature(&Method::HEAD, &uri, &sent, b"", now)
            .unwrap()
            .unwrap();
        assert!(!head.verify("tc-secret-0123456789"));
        let post = signature(&Method::POST, &uri, &sent, b"", now).unwrap();
        assert!(post.unwrap_err().contains("accepted for reads"));
        let other: Uri = "/api/v3/playbook/executions?resultLimit=2".parse().unwrap();
        let moved = signature(&Method::GET, &other, &sent, b"", now)
            .unwrap()
            .unwrap();
        assert!(!moved.verify("tc-secret-0123456789"));
        let late = DateTime::from_timestamp(1_796_685_322 + 301, 0).unwrap();
        let refused = signature(&Method::GET, &uri, &sent, b"", late).unwrap();
        assert!(refused.unwrap_err().contains("5 minutes"));
        // A token is not a signature.
        let token = headers(&[("authorization", "TC-Token abc")]);
        assert_eq!(signature(&Method::GET, &uri, &token, b"", now), None);
    }

    /// A request Huawei's Python SDK (huaweicloudsdkcore 3.1.219) signed, captured on
    /// the wire, and its SK.
    #[test]
    fn a_request_huaweis_sdk_signed_verifies_and_a_changed_one_does_not() {
        let uri: Uri = "/v1/0123456789abcdef0123456789abcdef/workspaces/ws-1/soc/playbooks/instances/auditlogs?limit=3&offset=0&sort_dir=desc&sort_key=start_time"
            .parse()
            .unwrap();
        let user_agent = "huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 python/3.11.7 impl/CPython; app/5dcc238d-80c2-4229-ab40-be03957b6e68";
        let sent = headers(&[
            ("user-agent", user_agent),
            ("content-type", "application/json"),
            ("x-project-id", "0123456789abcdef0123456789abcdef"),
            ("x-sdk-date", "20261207T231523Z"),
            ("host", "127.0.0.1:18182"),
            (
                "authorization",
                "SDK-HMAC-SHA256 Access=AKWASPEXAMPLE, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=1c0f2a1ec0c189271b667d8ddecafa091989930a4914d7cb075ac6f60669a973",
            ),
        ]);
        let body = br#"{"instance_type": "PLAYBOOK", "status": "FINISHED"}"#;
        let now = at("2026-12-07T23:20:00Z");
        let claimed = claim(&Method::POST, &uri, &sent, now).unwrap().unwrap();
        assert_eq!(claimed.key_id(), "AKWASPEXAMPLE");
        assert!(claimed.covers_body());
        let signed = signature(&Method::POST, &uri, &sent, body, now)
            .unwrap()
            .unwrap();
        assert!(signed.verify("SKWASPEXAMPLE0123456789"));
        // Another body, or another host, and it does not.
        let changed = br#"{"instance_type": "APP", "status": "FINISHED"}"#;
        let other = signature(&Method::POST, &uri, &sent, changed, now)
            .unwrap()
            .unwrap();
        assert!(!other.verify("SKWASPEXAMPLE0123456789"));
        let mut moved = sent.clone();
        moved.insert("host", "wasp.example.com".parse().unwrap());
        let other = signature(&Method::POST, &uri, &moved, body, now)
            .unwrap()
            .unwrap();
        assert!(!other.verify("SKWASPEXAMPLE0123456789"));
        // An old date is refused; so is an unsigned body.
        let late = at("2026-12-07T23:31:00Z");
        let refused = signature(&Method::POST, &uri, &sent, body, late).unwrap();
        assert!(refused.unwrap_err().contains("15 minutes"));
        let mut unsigned = sent.clone();
        unsigned.insert("x-sdk-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        let refused = signature(&Method::POST, &uri, &unsigned, body, now).unwrap();
        assert!(refused.unwrap_err().contains("body must be signed"));
    }

    #[test]
    fn a_huawei_signature_over_what_would_read_two_ways_is_refused() {
        let now = at("2026-12-07T23:20:00Z");
        let sent = |signed: &str| {
            let authorization =
                format!("SDK-HMAC-SHA256 Access=key_1, SignedHeaders={signed}, Signature=00");
            headers(&[
                ("x-sdk-date", "20261207T231523Z"),
                ("host", "h"),
                ("x-big", &"x".repeat(20_000)),
                ("authorization", &authorization),
            ])
        };
        let refused = |uri: &str, signed: &str| {
            let uri: Uri = uri.parse().unwrap();
            claim(&Method::GET, &uri, &sent(signed), now)
                .unwrap()
                .unwrap_err()
        };
        let plain = "host;x-sdk-date";
        assert!(refused("/v1/a%2fb", plain).contains("%2F"));
        assert!(refused("/v1/x?a=1&a=2", plain).contains("once"));
        assert!(refused("/v1/x", "x-sdk-date;host").contains("sorted"));
        assert!(refused("/v1/x", "host;host;x-sdk-date").contains("each once"));
        assert!(refused("/v1/x", "host;x-big;x-sdk-date").contains("bytes"));
        assert!(refused("/v1/x", "host").contains("x-sdk-date"));
        let long = format!(
            "SDK-HMAC-SHA256 Access={}, SignedHeaders={plain}, Signature=00",
            "k".repeat(65)
        );
        let mut headers = sent(plain);
        headers.insert("authorization", long.parse().unwrap());
        let uri: Uri = "/v1/x".parse().unwrap();
        let refused = claim(&Method::GET, &uri, &headers, now)
            .unwrap()
            .unwrap_err();
        assert!(refused.contains("access id"), "{refused}");
    }

    #[test]
    fn the_canonical_path_and_query_are_huaweis() {
        assert_eq!(canonical_path("/v1/a b/%2Fc"), "/v1/a%20b//c/");
        assert_eq!(canonical_path("/v1/x/"), "/v1/x/");
        assert_eq!(canonical_query("b=2&a=x+y&a=%2F&c"), "a=%2F&a=x%20y&b=2&c=");
    }
}
