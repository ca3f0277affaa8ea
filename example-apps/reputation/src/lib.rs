//! `reputation`: the reputation of an IP address from an AbuseIPDB-style API.
//!
//! It sends `GET {base_url}/check?ipAddress=<ip>&maxAgeInDays=<days>` with the API key
//! in the `Key` header and `Accept: application/json`, and reads AbuseIPDB's v2 answer:
//!
//! ```json
//! { "data": { "ipAddress": "185.220.101.4", "isPublic": true, "abuseConfidenceScore": 100,
//!             "countryCode": "DE", "usageType": "Data Center/Web Hosting/Transit",
//!             "isp": "…", "domain": "…", "totalReports": 1450,
//!             "lastReportedAt": "2026-11-21T10:01:02+00:00" } }
//! ```
//!
//! Asset: settings `base_url` (default `https://api.abuseipdb.com/api/v2`), optional
//! `max_age_days` (default 90) and `thresholds` (`{"malicious": 75, "suspicious": 25}`);
//! secret `api_key`; `hosts` must allow the API's host. The verdict is `malicious` at or
//! above the first threshold, `suspicious` at or above the second, `clean` below.
//! Private and reserved addresses are not sent to the service: they come back
//! `not_public` with a score of 0.

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasp_sdk::{Action, App, StepError, config, http, info, warn};

/// The address to check.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    /// An IPv4 or IPv6 address.
    pub ip: String,
}

/// What the service says about the address.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct CheckOutput {
    /// The address, as the service normalised it.
    pub ip: String,
    /// Abuse confidence, 0–100.
    pub score: u8,
    /// `malicious`, `suspicious`, `clean` or `not_public`.
    pub verdict: String,
    /// Reports about it in the period.
    pub total_reports: u64,
    /// ISO 3166 country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Its network's operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isp: Option<String>,
    /// How the network is used (hosting, ISP, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_type: Option<String>,
    /// When it was last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reported_at: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    data: Data,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    ip_address: String,
    #[serde(default)]
    is_public: Option<bool>,
    abuse_confidence_score: u8,
    #[serde(default)]
    country_code: Option<String>,
    #[serde(default)]
    usage_type: Option<String>,
    #[serde(default)]
    isp: Option<String>,
    #[serde(default)]
    total_reports: u64,
    #[serde(default)]
    last_reported_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Thresholds {
    malicious: u8,
    suspicious: u8,
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && b & 0xc0 == 64))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| !is_public(IpAddr::V4(v4))))
        }
    }
}

fn check(input: CheckInput) -> Result<CheckOutput, StepError> {
    let ip: IpAddr =
        input.ip.trim().parse().map_err(|_| {
            StepError::invalid_input(format!("`ip` {} is not an IP address", input.ip))
        })?;
    if !is_public(ip) {
        info!(ip = ip; "not a public address; the service is not asked");
        return Ok(CheckOutput {
            ip: ip.to_string(),
            score: 0,
            verdict: "not_public".to_owned(),
            total_reports: 0,
            country: None,
            isp: None,
            usage_type: None,
            last_reported_at: None,
        });
    }
    let base =
        config::get("base_url").unwrap_or_else(|| "https://api.abuseipdb.com/api/v2".to_owned());
    let key = config::require("api_key")?;
    let days: u32 = config::get_json("max_age_days")?.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(StepError::misconfigured(format!(
            "`max_age_days` is {days}; the service takes 1 to 365"
        )));
    }
    let thresholds = config::get_json::<Thresholds>("thresholds")?.unwrap_or(Thresholds {
        malicious: 75,
        suspicious: 25,
    });
    let url = format!(
        "{}/check?ipAddress={ip}&maxAgeInDays={days}",
        base.trim_end_matches('/')
    );
    let answer: Answer = http::get(&url)
        .header("Key", &key)
        .header("Accept", "application/json")
        .send()?
        .error_for_status()?
        .json()?;
    let data = answer.data;
    if data.abuse_confidence_score > 100 {
        return Err(StepError::unavailable(format!(
            "the service answered a score of {}, outside 0–100",
            data.abuse_confidence_score
        )));
    }
    if data.is_public == Some(false) {
        warn!(ip = data.ip_address; "the service says the address is not public");
    }
    let score = data.abuse_confidence_score;
    let verdict = if score >= thresholds.malicious {
        "malicious"
    } else if score >= thresholds.suspicious {
        "suspicious"
    } else {
        "clean"
    };
    info!(ip = data.ip_address, score = score, verdict = verdict; "reputation checked");
    Ok(CheckOutput {
        ip: data.ip_address,
        score,
        verdict: verdict.to_owned(),
        total_reports: data.total_reports,
        country: data.country_code,
        isp: data.isp,
        usage_type: data.usage_type,
        last_reported_at: data.last_reported_at,
    })
}

/// The app.
pub struct Reputation;

impl App for Reputation {
    const DESCRIPTION: &'static str = "IP reputation from an AbuseIPDB-style JSON API: abuse confidence score, verdict, country and ISP.";

    fn actions() -> Vec<Action> {
        vec![Action::new(
            "check",
            "Look an IP address up: abuse confidence score, verdict and where it lives.",
            check,
        )]
    }
}

wasp_sdk::export_app!(Reputation);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_sdk::testing;

    fn run(ip: &str) -> Result<CheckOutput, StepError> {
        check(CheckInput { ip: ip.to_owned() })
    }

    #[test]
    fn scores_become_verdicts() {
        testing::set_config([
            ("base_url", "https://intel.example/api/v2"),
            ("api_key", "k1"),
        ]);
        testing::respond_with(|request| {
            assert_eq!(
                request.url,
                "https://intel.example/api/v2/check?ipAddress=185.220.101.4&maxAgeInDays=90"
            );
            assert_eq!(request.header_value("Key"), Some("k1"));
            http::Response::new(
                200,
                r#"{"data":{"ipAddress":"185.220.101.4","isPublic":true,"abuseConfidenceScore":100,
                    "countryCode":"DE","isp":"Tor","totalReports":1450}}"#,
            )
        });
        let output = run("185.220.101.4").unwrap();
        assert_eq!((output.score, output.verdict.as_str()), (100, "malicious"));
        assert_eq!(output.country.as_deref(), Some("DE"));
    }

    #[test]
    fn private_addresses_are_not_sent() {
        testing::set_config([("api_key", "k1")]);
        testing::clear_responder();
        for ip in ["10.0.0.1", "127.0.0.1", "fd00::1", "169.254.169.254"] {
            assert_eq!(run(ip).unwrap().verdict, "not_public", "{ip}");
        }
    }

    #[test]
    fn service_errors_are_classified() {
        testing::set_config([("api_key", "bad")]);
        testing::respond_with(|_| http::Response::new(401, r#"{"errors":[{"detail":"bad key"}]}"#));
        let error = run("8.8.8.8").unwrap_err();
        assert_eq!(error.code(), wasp_sdk::ErrorCode::Unauthorized);
        testing::set_config::<&str, &str>([]);
        assert_eq!(
            run("8.8.8.8").unwrap_err().code(),
            wasp_sdk::ErrorCode::Misconfigured
        );
        assert_eq!(
            run("not-an-ip").unwrap_err().code(),
            wasp_sdk::ErrorCode::InvalidInput
        );
    }
}
