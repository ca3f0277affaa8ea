//! `indicator-lookup`: offline threat intelligence from a feed the asset carries.
//!
//! The asset's setting `feed` holds the whole feed as JSON:
//!
//! ```json
//! { "name": "contoso-intel",
//!   "entries": [
//!     { "indicator": "m365-verify.top", "type": "domain", "score": 95,
//!       "tags": ["phishing"], "source": "urlhaus", "subdomains": true },
//!     { "indicator": "185.220.101.0/24", "type": "ip", "score": 60, "tags": ["tor-exit"] } ] }
//! ```
//!
//! An entry has an `indicator`, a `score` from 0 to 100 and optionally a `type` (`ip`,
//! `domain`, `hash`, `url`, `email`; detected when absent), `tags`, a `source` (the
//! feed's `name` when absent) and, for domains, `subdomains` (also match every
//! subdomain). An IP entry may be a CIDR. Unknown fields are refused, so that a typo
//! such as `subdomain` cannot silently change what matches.
//!
//! Matching: an IP matches the entries whose network holds it; a domain matches equal
//! entries, and entries with `subdomains` that it is a subdomain of; a hash matches
//! case-insensitively; a URL matches equal URL entries (scheme and host compared
//! case-insensitively) and its host as a domain or IP; an email address matches equal
//! email entries and its domain as a domain. Indicators may be defanged
//! (`hxxps://evil[.]com`).
//!
//! The verdict follows the highest score of the matching entries: 70 or more is
//! `malicious`, 30 or more `suspicious`, anything lower `benign` (an allow-list entry
//! scores 0); no match at all is `unknown`, with a score of 0.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasp_sdk::{Action, App, StepError, config, debug};

/// The kind of an indicator.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorType {
    /// An IPv4 or IPv6 address (a network, in a feed).
    Ip,
    /// A domain name.
    Domain,
    /// An MD5, SHA-1, SHA-256 or SHA-512 hash, in hex.
    Hash,
    /// A URL with a scheme (`https://…`).
    Url,
    /// An email address.
    Email,
}

impl IndicatorType {
    fn name(self) -> &'static str {
        match self {
            Self::Ip => "IP address",
            Self::Domain => "domain",
            Self::Hash => "hash",
            Self::Url => "URL",
            Self::Email => "email address",
        }
    }
}

/// One indicator to look up.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupInput {
    /// The indicator: an IP address, domain, hash, URL or email address, defanged or
    /// not.
    pub indicator: String,
    /// Its type; detected from the indicator when absent.
    #[serde(rename = "type", default)]
    pub kind: Option<IndicatorType>,
}

/// Several indicators to look up.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupManyInput {
    /// The indicators; each one's type is detected.
    pub indicators: Vec<String>,
}

/// What the feed says about an indicator.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[cfg_attr(test, derive(Deserialize))]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The highest matching score is 70 or more.
    Malicious,
    /// The highest matching score is from 30 to 69.
    Suspicious,
    /// Some entry matched, none scoring 30 or more.
    Benign,
    /// No entry matched.
    Unknown,
}

/// The result of looking up one indicator.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
#[cfg_attr(test, derive(Deserialize))]
pub struct LookupResult {
    /// The indicator, refanged and normalised (lower-cased domains, hashes and email
    /// addresses; canonical IP addresses).
    pub indicator: String,
    /// Its type, as given or detected.
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    /// The verdict.
    pub verdict: Verdict,
    /// The highest score of the matching entries; 0 when none matched.
    pub score: u8,
    /// The tags of every matching entry, sorted, without repeats.
    pub tags: Vec<String>,
    /// The sources of every matching entry, sorted, without repeats.
    pub sources: Vec<String>,
    /// The matching entries' indicators, as the feed writes them, in feed order.
    pub matches: Vec<String>,
}

/// The results of `lookup_many`.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
#[cfg_attr(test, derive(Deserialize))]
pub struct LookupManyOutput {
    /// One result per indicator, in input order.
    pub results: Vec<LookupResult>,
    /// How many are malicious.
    pub malicious: usize,
    /// How many are suspicious.
    pub suspicious: usize,
}

/// The setting `feed` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedSpec {
    name: String,
    /// Kept as JSON so that an entry that does not decode is reported by its index.
    entries: Vec<serde_json::Value>,
}

/// One feed entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntrySpec {
    indicator: String,
    #[serde(rename = "type", default)]
    kind: Option<IndicatorType>,
    score: u8,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    subdomains: bool,
}

/// What an entry matches.
#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Network(IpNet),
    Domain { name: String, subdomains: bool },
    Hash(String),
    Url(String),
    Email(String),
}

/// A validated feed entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// The indicator as the feed writes it.
    written: String,
    matcher: Matcher,
    score: u8,
    tags: Vec<String>,
    source: String,
}

/// A validated feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    entries: Vec<Entry>,
}

impl Feed {
    /// Parse and validate the feed document `json` (the setting `feed`).
    pub fn from_json(json: &str) -> Result<Self, StepError> {
        let spec: FeedSpec = serde_json::from_str(json)
            .map_err(|e| StepError::misconfigured(format!("setting `feed` is not valid: {e}")))?;
        Self::from_spec(spec)
    }

    /// Read the asset's setting `feed`.
    pub fn load() -> Result<Self, StepError> {
        let spec: FeedSpec = config::get_json("feed")?.ok_or_else(|| {
            StepError::misconfigured("the asset has no setting `feed` (the threat-intel feed)")
        })?;
        Self::from_spec(spec)
    }

    fn from_spec(spec: FeedSpec) -> Result<Self, StepError> {
        let entries = spec
            .entries
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                entry(value, &spec.name).map_err(|reason| {
                    StepError::misconfigured(format!(
                        "entry {index} of feed `{}`: {reason}",
                        spec.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Look `indicator` up; its type is detected when `kind` is `None`.
    pub fn lookup(
        &self,
        indicator: &str,
        kind: Option<IndicatorType>,
    ) -> Result<LookupResult, StepError> {
        let parsed = Indicator::parse(indicator, kind).map_err(StepError::invalid_input)?;
        let matched: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| parsed.matches(&e.matcher))
            .collect();
        let score = matched.iter().map(|e| e.score).max();
        let verdict = match score {
            None => Verdict::Unknown,
            Some(70..) => Verdict::Malicious,
            Some(30..) => Verdict::Suspicious,
            Some(_) => Verdict::Benign,
        };
        let tags: BTreeSet<&String> = matched.iter().flat_map(|e| &e.tags).collect();
        let sources: BTreeSet<&String> = matched.iter().map(|e| &e.source).collect();
        Ok(LookupResult {
            indicator: parsed.text(),
            kind: parsed.kind(),
            verdict,
            score: score.unwrap_or(0),
            tags: tags.into_iter().cloned().collect(),
            sources: sources.into_iter().cloned().collect(),
            matches: matched.iter().map(|e| e.written.clone()).collect(),
        })
    }

    /// Look every indicator up, detecting each one's type.
    pub fn lookup_many(&self, indicators: &[String]) -> Result<LookupManyOutput, StepError> {
        let results = indicators
            .iter()
            .enumerate()
            .map(|(i, indicator)| {
                self.lookup(indicator, None).map_err(|e| {
                    StepError::invalid_input(format!("`indicators[{i}]`: {}", e.message()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let count = |verdict| results.iter().filter(|r| r.verdict == verdict).count();
        Ok(LookupManyOutput {
            malicious: count(Verdict::Malicious),
            suspicious: count(Verdict::Suspicious),
            results,
        })
    }
}

/// Validate one feed entry; the error is the reason, without the entry's index.
fn entry(value: serde_json::Value, feed: &str) -> Result<Entry, String> {
    let spec: EntrySpec = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if spec.score > 100 {
        return Err(format!("`score` is {}, above 100", spec.score));
    }
    let text = refang(spec.indicator.trim());
    let kind = match spec.kind {
        Some(kind) => kind,
        None if parse_network(&text).is_some() => IndicatorType::Ip,
        None => Indicator::detect(&text)?,
    };
    let invalid = || {
        format!(
            "`indicator` `{}` is not a valid {}",
            spec.indicator,
            kind.name()
        )
    };
    let matcher = match kind {
        IndicatorType::Ip => Matcher::Network(parse_network(&text).ok_or_else(invalid)?),
        IndicatorType::Domain => Matcher::Domain {
            name: normalize_domain(&text).ok_or_else(invalid)?,
            subdomains: spec.subdomains,
        },
        IndicatorType::Hash => Matcher::Hash(normalize_hash(&text).ok_or_else(invalid)?),
        IndicatorType::Url => Matcher::Url(normalize_url(&text).ok_or_else(invalid)?.0),
        IndicatorType::Email => Matcher::Email(normalize_email(&text).ok_or_else(invalid)?.0),
    };
    if spec.subdomains && kind != IndicatorType::Domain {
        return Err(format!(
            "`subdomains` applies to domains, not to the {} `{}`",
            kind.name(),
            spec.indicator
        ));
    }
    Ok(Entry {
        written: spec.indicator,
        matcher,
        score: spec.score,
        tags: spec.tags,
        source: spec.source.unwrap_or_else(|| feed.to_owned()),
    })
}

fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// An indicator being looked up, normalised.
#[derive(Debug, Clone, PartialEq)]
enum Indicator {
    Ip(IpAddr),
    Domain(String),
    Hash(String),
    Url { url: String, host: Host },
    Email { address: String, domain: String },
}

/// The host of a URL: a name or an address literal.
#[derive(Debug, Clone, PartialEq)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Indicator {
    /// The type `text` (refanged) looks like.
    fn detect(text: &str) -> Result<IndicatorType, String> {
        Ok(if text.parse::<IpAddr>().is_ok() {
            IndicatorType::Ip
        } else if text.contains("://") {
            IndicatorType::Url
        } else if normalize_hash(text).is_some() {
            IndicatorType::Hash
        } else if text.contains('@') {
            IndicatorType::Email
        } else if normalize_domain(text).is_some() {
            IndicatorType::Domain
        } else {
            return Err(format!(
                "cannot tell what kind of indicator `{text}` is; give its `type` (ip, domain, hash, url or email)"
            ));
        })
    }

    /// Parse `raw` as an indicator of type `kind`, or of the type it looks like.
    fn parse(raw: &str, kind: Option<IndicatorType>) -> Result<Self, String> {
        let text = refang(raw.trim());
        if text.is_empty() {
            return Err("`indicator` is empty".to_owned());
        }
        let kind = match kind {
            Some(kind) => kind,
            None => Self::detect(&text)?,
        };
        let invalid = || format!("`{raw}` is not a valid {}", kind.name());
        Ok(match kind {
            IndicatorType::Ip => Self::Ip(text.parse().map_err(|_| invalid())?),
            IndicatorType::Domain => Self::Domain(normalize_domain(&text).ok_or_else(invalid)?),
            IndicatorType::Hash => Self::Hash(normalize_hash(&text).ok_or_else(invalid)?),
            IndicatorType::Url => {
                let (url, host) = normalize_url(&text).ok_or_else(invalid)?;
                Self::Url { url, host }
            }
            IndicatorType::Email => {
                let (address, domain) = normalize_email(&text).ok_or_else(invalid)?;
                Self::Email { address, domain }
            }
        })
    }

    fn kind(&self) -> IndicatorType {
        match self {
            Self::Ip(_) => IndicatorType::Ip,
            Self::Domain(_) => IndicatorType::Domain,
            Self::Hash(_) => IndicatorType::Hash,
            Self::Url { .. } => IndicatorType::Url,
            Self::Email { .. } => IndicatorType::Email,
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Ip(ip) => ip.to_string(),
            Self::Domain(text) | Self::Hash(text) => text.clone(),
            Self::Url { url, .. } => url.clone(),
            Self::Email { address, .. } => address.clone(),
        }
    }

    fn matches(&self, matcher: &Matcher) -> bool {
        match (self, matcher) {
            (Self::Ip(ip), Matcher::Network(net)) => ip_in(*ip, net),
            (Self::Domain(name), Matcher::Domain { .. }) => domain_matches(name, matcher),
            (Self::Hash(hash), Matcher::Hash(entry)) => hash == entry,
            (Self::Url { url, .. }, Matcher::Url(entry)) => url == entry,
            (
                Self::Url {
                    host: Host::Name(name),
                    ..
                },
                Matcher::Domain { .. },
            ) => domain_matches(name, matcher),
            (
                Self::Url {
                    host: Host::Ip(ip), ..
                },
                Matcher::Network(net),
            ) => ip_in(*ip, net),
            (Self::Email { address, .. }, Matcher::Email(entry)) => address == entry,
            (Self::Email { domain, .. }, Matcher::Domain { .. }) => domain_matches(domain, matcher),
            _ => false,
        }
    }
}

/// Whether `net` holds `ip`, or the IPv4 address an IPv4-mapped `ip` carries.
fn ip_in(ip: IpAddr, net: &IpNet) -> bool {
    let mapped = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    net.contains(&ip) || mapped.is_some_and(|v4| net.contains(&v4))
}

fn domain_matches(name: &str, matcher: &Matcher) -> bool {
    match matcher {
        Matcher::Domain {
            name: entry,
            subdomains,
        } => {
            name == entry
                || (*subdomains
                    && name
                        .strip_suffix(entry.as_str())
                        .is_some_and(|prefix| prefix.ends_with('.')))
        }
        _ => false,
    }
}

/// Undo the usual defanging: `hxxp`, `[.]`, `(.)`, `[dot]`, `[@]`, `[:]`.
fn refang(text: &str) -> String {
    let mut out = text.to_owned();
    for (defanged, plain) in [
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("(dot)", "."),
        ("[@]", "@"),
        ("(@)", "@"),
        ("[at]", "@"),
        ("[://]", "://"),
        ("[:]", ":"),
    ] {
        out = out.replace(defanged, plain);
    }
    for (defanged, plain) in [
        ("hxxp", "http"),
        ("hXXp", "http"),
        ("HXXP", "HTTP"),
        ("fxp", "ftp"),
    ] {
        if let Some(rest) = out.strip_prefix(defanged) {
            out = format!("{plain}{rest}");
        }
    }
    out
}

/// A domain name, lower-cased and without a trailing dot; `None` if `text` is not one.
fn normalize_domain(text: &str) -> Option<String> {
    let name = text.trim_end_matches('.').to_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let valid = name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
        // A top-level domain is never all digits: that would be an IP address.
        && labels.last().is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    valid.then_some(name)
}

/// A hash in lower-case hex: 32 (MD5), 40 (SHA-1), 64 (SHA-256) or 128 (SHA-512)
/// digits.
fn normalize_hash(text: &str) -> Option<String> {
    (matches!(text.len(), 32 | 40 | 64 | 128) && text.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// A URL with its scheme and host lower-cased, and its host; `None` without a scheme
/// or a host.
fn normalize_url(text: &str) -> Option<(String, Host)> {
    let (scheme, rest) = text.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, _)) => (host, &host_port[host.len()..]),
            None => (host_port, ""),
        }
    };
    let host = if let Ok(ip) = host.parse::<IpAddr>() {
        Host::Ip(ip)
    } else {
        Host::Name(
            normalize_domain(host).or_else(|| (host == "localhost").then(|| host.to_owned()))?,
        )
    };
    let host_text = match &host {
        Host::Name(name) => name.clone(),
        Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        Host::Ip(ip) => ip.to_string(),
    };
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let tail = if tail == "/" { "" } else { tail };
    let url = format!(
        "{}://{userinfo}{host_text}{port}{tail}",
        scheme.to_ascii_lowercase()
    );
    Some((url, host))
}

/// An email address lower-cased, and its domain.
fn normalize_email(text: &str) -> Option<(String, String)> {
    let (local, domain) = text.rsplit_once('@')?;
    let domain = normalize_domain(domain)?;
    let valid_local =
        !local.is_empty() && !local.contains(char::is_whitespace) && !local.contains('@');
    valid_local.then(|| (format!("{}@{domain}", local.to_lowercase()), domain))
}

struct IndicatorLookup;

impl App for IndicatorLookup {
    const DESCRIPTION: &'static str =
        "Look IPs, domains, hashes, URLs and email addresses up in an offline threat-intel feed.";

    fn actions() -> Vec<Action> {
        vec![
            Action::new(
                "lookup",
                "Look one indicator up in the feed and give its verdict, score, tags and sources.",
                |input: LookupInput| {
                    let result = Feed::load()?.lookup(&input.indicator, input.kind)?;
                    debug!(
                        indicator = result.indicator,
                        score = result.score;
                        "looked an indicator up"
                    );
                    Ok(result)
                },
            ),
            Action::new(
                "lookup_many",
                "Look several indicators up and count the malicious and suspicious ones.",
                |input: LookupManyInput| {
                    let output = Feed::load()?.lookup_many(&input.indicators)?;
                    debug!(
                        indicators = output.results.len(),
                        malicious = output.malicious;
                        "looked indicators up"
                    );
                    Ok(output)
                },
            ),
        ]
    }
}

wasp_sdk::export_app!(IndicatorLookup);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_sdk::ErrorCode;
    use wasp_sdk::testing::set_config;

    /// A feed as a SOC might assemble it from public feeds, incident response and an
    /// allow-list, covering the indicators of `tests/fixtures/phishing.eml`.
    const FEED: &str = r#"{
        "name": "contoso-intel",
        "entries": [
            { "indicator": "micros0ft-support.com", "type": "domain", "score": 90,
              "tags": ["phishing", "brand-impersonation"], "source": "phishtank", "subdomains": true },
            { "indicator": "m365-verify.top", "type": "domain", "score": 95,
              "tags": ["phishing", "credential-harvesting"], "source": "urlhaus", "subdomains": true },
            { "indicator": "bulk-notify.ru", "type": "domain", "score": 40,
              "tags": ["spam"], "source": "spamhaus-dbl" },
            { "indicator": "185.220.101.0/24", "type": "ip", "score": 60,
              "tags": ["tor-exit"], "source": "tor-project" },
            { "indicator": "185.220.101.47", "score": 85,
              "tags": ["phishing-infra", "tor-exit"], "source": "abuse.ch" },
            { "indicator": "45.142.212.100", "type": "ip", "score": 75,
              "tags": ["bulletproof-hosting"] },
            { "indicator": "F2EE667D98C2BDAE9E03167BA5E260711FAF40CAF9F59E2FBD3C424334964F93",
              "type": "hash", "score": 100, "tags": ["html-smuggling", "phishing-kit"], "source": "virustotal" },
            { "indicator": "44d88612fea8a8f36de82e1278abb02f", "score": 100,
              "tags": ["eicar", "test-file"], "source": "eicar.org" },
            { "indicator": "hxxps://m365-verify[.]top/owa/auth.php", "type": "url", "score": 100,
              "tags": ["credential-harvesting"], "source": "urlhaus" },
            { "indicator": "support-desk@m365-helpcenter.net", "type": "email", "score": 80,
              "tags": ["reply-to-lure"], "source": "internal-ir" },
            { "indicator": "2001:db8:bad::/48", "type": "ip", "score": 50, "tags": ["scanner"], "source": "internal-ir" },
            { "indicator": "8.8.8.8", "type": "ip", "score": 0, "tags": ["allowlist", "google-dns"],
              "source": "internal-allowlist" },
            { "indicator": "microsoft.com", "type": "domain", "score": 0, "tags": ["allowlist"],
              "source": "internal-allowlist", "subdomains": true }
        ]
    }"#;

    fn feed() -> Feed {
        Feed::from_json(FEED).unwrap()
    }

    fn result(
        indicator: &str,
        kind: IndicatorType,
        verdict: Verdict,
        score: u8,
        tags: &[&str],
        sources: &[&str],
        matches: &[&str],
    ) -> LookupResult {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        LookupResult {
            indicator: indicator.to_owned(),
            kind,
            verdict,
            score,
            tags: strings(tags),
            sources: strings(sources),
            matches: strings(matches),
        }
    }

    #[test]
    fn ips_match_addresses_and_networks() {
        let feed = feed();
        assert_eq!(
            feed.lookup("185.220.101.47", None).unwrap(),
            result(
                "185.220.101.47",
                IndicatorType::Ip,
                Verdict::Malicious,
                85,
                &["phishing-infra", "tor-exit"],
                &["abuse.ch", "tor-project"],
                &["185.220.101.0/24", "185.220.101.47"],
            )
        );
        assert_eq!(
            feed.lookup("185.220.101.9", None).unwrap(),
            result(
                "185.220.101.9",
                IndicatorType::Ip,
                Verdict::Suspicious,
                60,
                &["tor-exit"],
                &["tor-project"],
                &["185.220.101.0/24"],
            )
        );
        // An entry without a source is credited to the feed.
        let bulletproof = feed
            .lookup("45.142.212[.]100", Some(IndicatorType::Ip))
            .unwrap();
        assert_eq!(bulletproof.sources, ["contoso-intel"]);
        assert_eq!(bulletproof.verdict, Verdict::Malicious);
        // IPv6 networks, canonical output, and IPv4-mapped addresses.
        let scanner = feed.lookup("2001:DB8:BAD:0:0::1", None).unwrap();
        assert_eq!(
            (scanner.indicator.as_str(), scanner.verdict),
            ("2001:db8:bad::1", Verdict::Suspicious)
        );
        assert_eq!(
            feed.lookup("::ffff:185.220.101.47", None).unwrap().score,
            85
        );
    }

    #[test]
    fn allow_listed_is_benign_and_absent_is_unknown() {
        let feed = feed();
        assert_eq!(
            feed.lookup("8.8.8.8", None).unwrap(),
            result(
                "8.8.8.8",
                IndicatorType::Ip,
                Verdict::Benign,
                0,
                &["allowlist", "google-dns"],
                &["internal-allowlist"],
                &["8.8.8.8"],
            )
        );
        assert_eq!(
            feed.lookup("1.1.1.1", None).unwrap(),
            result(
                "1.1.1.1",
                IndicatorType::Ip,
                Verdict::Unknown,
                0,
                &[],
                &[],
                &[]
            )
        );
        assert_eq!(
            feed.lookup("login.microsoft.com", None).unwrap().verdict,
            Verdict::Benign
        );
    }

    #[test]
    fn domains_match_exactly_or_as_allowed_subdomains() {
        let feed = feed();
        assert_eq!(
            feed.lookup("Login.M365-Verify.top.", None).unwrap(),
            result(
                "login.m365-verify.top",
                IndicatorType::Domain,
                Verdict::Malicious,
                95,
                &["credential-harvesting", "phishing"],
                &["urlhaus"],
                &["m365-verify.top"],
            )
        );
        assert_eq!(
            feed.lookup("bulk-notify.ru", None).unwrap().verdict,
            Verdict::Suspicious
        );
        // `bulk-notify.ru` does not allow subdomains, and a lookalike suffix is no subdomain.
        assert_eq!(
            feed.lookup("mailer.bulk-notify.ru", None).unwrap().verdict,
            Verdict::Unknown
        );
        assert_eq!(
            feed.lookup("notm365-verify.top", None).unwrap().verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn hashes_match_case_insensitively() {
        let feed = feed();
        assert_eq!(
            feed.lookup(
                "f2ee667d98c2bdae9e03167ba5e260711faf40caf9f59e2fbd3c424334964f93",
                None
            )
            .unwrap(),
            result(
                "f2ee667d98c2bdae9e03167ba5e260711faf40caf9f59e2fbd3c424334964f93",
                IndicatorType::Hash,
                Verdict::Malicious,
                100,
                &["html-smuggling", "phishing-kit"],
                &["virustotal"],
                &["F2EE667D98C2BDAE9E03167BA5E260711FAF40CAF9F59E2FBD3C424334964F93"],
            )
        );
        let eicar = feed
            .lookup("44D88612FEA8A8F36DE82E1278ABB02F", None)
            .unwrap();
        assert_eq!((eicar.kind, eicar.score), (IndicatorType::Hash, 100));
    }

    #[test]
    fn urls_match_exactly_and_by_host() {
        let feed = feed();
        // The URL entry and the domain entry both match.
        assert_eq!(
            feed.lookup("HTTPS://M365-VERIFY.TOP/owa/auth.php", None)
                .unwrap(),
            result(
                "https://m365-verify.top/owa/auth.php",
                IndicatorType::Url,
                Verdict::Malicious,
                100,
                &["credential-harvesting", "phishing"],
                &["urlhaus"],
                &["m365-verify.top", "hxxps://m365-verify[.]top/owa/auth.php"],
            )
        );
        // The lure from the phishing fixture: user info before `@` is not the host.
        let lure = "hxxps://login.microsoftonline.com@m365-verify[.]top/owa/auth.php?user=j.doe%40contoso.com&id=8841";
        let found = feed.lookup(lure, None).unwrap();
        assert_eq!(
            found.indicator,
            "https://login.microsoftonline.com@m365-verify.top/owa/auth.php?user=j.doe%40contoso.com&id=8841"
        );
        assert_eq!(
            (found.score, found.matches.as_slice()),
            (95, ["m365-verify.top".to_owned()].as_slice())
        );
        // A URL on a bare IP matches IP entries.
        assert_eq!(
            feed.lookup("http://185.220.101.47:8080/gate.php", None)
                .unwrap()
                .score,
            85
        );
        assert_eq!(
            feed.lookup("https://www.microsoft.com/", None)
                .unwrap()
                .verdict,
            Verdict::Benign
        );
    }

    #[test]
    fn emails_match_exactly_and_by_domain() {
        let feed = feed();
        assert_eq!(
            feed.lookup("Support-Desk@M365-Helpcenter.net", None)
                .unwrap(),
            result(
                "support-desk@m365-helpcenter.net",
                IndicatorType::Email,
                Verdict::Malicious,
                80,
                &["reply-to-lure"],
                &["internal-ir"],
                &["support-desk@m365-helpcenter.net"],
            )
        );
        let spoof = feed
            .lookup("no-reply[@]micros0ft-support[.]com", None)
            .unwrap();
        assert_eq!((spoof.kind, spoof.score), (IndicatorType::Email, 90));
        assert_eq!(
            feed.lookup("other@m365-helpcenter.net", None)
                .unwrap()
                .verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn bad_indicators_are_invalid_input() {
        let feed = feed();
        for (indicator, kind, message) in [
            (
                "evil.com",
                Some(IndicatorType::Ip),
                "`evil.com` is not a valid IP address",
            ),
            (
                "1.2.3.4",
                Some(IndicatorType::Hash),
                "`1.2.3.4` is not a valid hash",
            ),
            (
                "abc123",
                Some(IndicatorType::Hash),
                "`abc123` is not a valid hash",
            ),
            (
                "no scheme",
                Some(IndicatorType::Url),
                "`no scheme` is not a valid URL",
            ),
            (
                "@evil.com",
                None,
                "`@evil.com` is not a valid email address",
            ),
            (
                "not an indicator!",
                None,
                "cannot tell what kind of indicator `not an indicator!` is; give its `type` (ip, domain, hash, url or email)",
            ),
            (" ", None, "`indicator` is empty"),
        ] {
            let e = feed.lookup(indicator, kind).unwrap_err();
            assert_eq!((e.code(), e.message()), (ErrorCode::InvalidInput, message));
        }
    }

    #[test]
    fn lookup_many_counts_verdicts() {
        let out = feed()
            .lookup_many(&[
                "185.220.101.47".to_owned(),
                "mailer.bulk-notify.ru".to_owned(),
                "bulk-notify.ru".to_owned(),
                "https://privacy.microsoft.com/en-us/privacystatement".to_owned(),
                "m365-verify.top".to_owned(),
            ])
            .unwrap();
        let verdicts: Vec<Verdict> = out.results.iter().map(|r| r.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Malicious,
                Verdict::Unknown,
                Verdict::Suspicious,
                Verdict::Benign,
                Verdict::Malicious
            ]
        );
        assert_eq!((out.malicious, out.suspicious), (2, 1));

        let e = feed()
            .lookup_many(&["8.8.8.8".to_owned(), "???".to_owned()])
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert!(
            e.message().starts_with("`indicators[1]`: cannot tell"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn actions_read_the_feed_from_config() {
        set_config([("feed", FEED)]);
        let out = wasp_sdk::run::<IndicatorLookup>(
            "lookup",
            r#"{"indicator":"m365-verify[.]top","type":"domain"}"#,
        )
        .unwrap();
        let out: LookupResult = serde_json::from_str(&out.output).unwrap();
        assert_eq!((out.verdict, out.score), (Verdict::Malicious, 95));

        let out = wasp_sdk::run::<IndicatorLookup>(
            "lookup_many",
            r#"{"indicators":["45.142.212.100","1.1.1.1"]}"#,
        )
        .unwrap();
        let out: LookupManyOutput = serde_json::from_str(&out.output).unwrap();
        assert_eq!(
            (out.results.len(), out.malicious, out.suspicious),
            (2, 1, 0)
        );

        let e = wasp_sdk::run::<IndicatorLookup>("lookup", r#"{"indicator":"x.com","type":"asn"}"#)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
    }

    #[test]
    fn missing_feed_is_misconfigured() {
        set_config::<&str, &str>([]);
        let e =
            wasp_sdk::run::<IndicatorLookup>("lookup", r#"{"indicator":"evil.com"}"#).unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (
                ErrorCode::Misconfigured,
                "the asset has no setting `feed` (the threat-intel feed)"
            )
        );
    }

    #[test]
    fn bad_feed_entries_are_misconfigured_by_index() {
        for (entries, message) in [
            (
                r#"[{"indicator":"evil.com","score":50},{"indicator":"not-an-ip","type":"ip","score":50}]"#,
                "entry 1 of feed `t`: `indicator` `not-an-ip` is not a valid IP address",
            ),
            (
                r#"[{"indicator":"evil.com","score":150}]"#,
                "entry 0 of feed `t`: `score` is 150, above 100",
            ),
            (
                r#"[{"indicator":"evil.com","score":300}]"#,
                "entry 0 of feed `t`: invalid value: integer `300`, expected u8",
            ),
            (
                r#"[{"indicator":"evil.com","score":90,"subdomain":true}]"#,
                "entry 0 of feed `t`: unknown field `subdomain`, expected one of `indicator`, `type`, `score`, `tags`, `source`, `subdomains`",
            ),
            (
                r#"[{"indicator":"10.0.0.0/8","score":0,"subdomains":true}]"#,
                "entry 0 of feed `t`: `subdomains` applies to domains, not to the IP address `10.0.0.0/8`",
            ),
            (
                r#"[{"indicator":"evil.com","type":"asn","score":1}]"#,
                "entry 0 of feed `t`: unknown variant `asn`, expected one of `ip`, `domain`, `hash`, `url`, `email`",
            ),
        ] {
            let e = Feed::from_json(&format!(r#"{{"name":"t","entries":{entries}}}"#)).unwrap_err();
            assert_eq!((e.code(), e.message()), (ErrorCode::Misconfigured, message));
        }
        let e = Feed::from_json(r#"{"entries":[]}"#).unwrap_err();
        assert!(
            e.message()
                .starts_with("setting `feed` is not valid: missing field `name`"),
            "{}",
            e.message()
        );
    }
}
