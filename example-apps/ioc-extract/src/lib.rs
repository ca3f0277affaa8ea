//! `ioc-extract`: indicators of compromise from free text, as analysts paste it.
//!
//! Understands defanged forms (`hxxp://`, `[.]`, `(dot)`, `[@]`, `[:]`), so that
//! `hxxp://evil[.]com/x` yields the URL `http://evil.com/x` and the domain `evil.com`.
//! Every list is de-duplicated and keeps the order of first appearance.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasp_sdk::{Action, App, StepError, debug};

/// Text to work on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextInput {
    /// Free text: an alert, an email body, a report.
    pub text: String,
}

/// Text after defanging or refanging.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct TextOutput {
    /// The rewritten text.
    pub text: String,
}

/// Every indicator found, by kind, de-duplicated in order of first appearance.
#[derive(Debug, Default, Serialize, JsonSchema, PartialEq)]
pub struct Indicators {
    /// IPv4 addresses.
    pub ipv4: Vec<String>,
    /// IPv6 addresses, in canonical (RFC 5952) form.
    pub ipv6: Vec<String>,
    /// Domain names, lower-cased, including those of URLs and email addresses.
    pub domains: Vec<String>,
    /// URLs (http, https, ftp), refanged.
    pub urls: Vec<String>,
    /// Email addresses, lower-cased.
    pub emails: Vec<String>,
    /// MD5 hashes, lower-cased.
    pub md5: Vec<String>,
    /// SHA-1 hashes, lower-cased.
    pub sha1: Vec<String>,
    /// SHA-256 hashes, lower-cased.
    pub sha256: Vec<String>,
    /// CVE identifiers, upper-cased.
    pub cves: Vec<String>,
    /// The number of indicators in all lists.
    pub count: usize,
}

/// Compile `pattern` case-insensitively, with ASCII classes (`\b`, `\s`, `\d`): every
/// indicator is ASCII, and ASCII classes compile several times faster than Unicode
/// ones. That matters because a fresh instance compiles every pattern on every call.
/// A class that must not split a UTF-8 character opts back in with `(?u:…)`.
fn regex(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .unicode(false)
        .build()
        .expect("the patterns in this file are valid")
}

/// Defanged spellings and what they stand for. Brackets of any kind around the dot,
/// at-sign or colon; the `hxxp` family for schemes.
static REFANG: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        (regex(r"\[:\]//|\[://\]"), "://"),
        (regex(r"\bh(?:xx|\*\*|__)p(s?)://"), "http$1://"),
        (regex(r"\bfxp(s?)://"), "ftp$1://"),
        (regex(r"\s?[\[\(\{]\s*(?:\.|dot)\s*[\]\)\}]\s?"), "."),
        (regex(r"\s?[\[\(\{]\s*(?:@|at)\s*[\]\)\}]\s?"), "@"),
        (regex(r"\[:\]"), ":"),
    ]
});

static URL: LazyLock<Regex> =
    LazyLock::new(|| regex(r#"\b(?:https?|ftp)://(?u:[^\s<>"'`{}|\\^\[\]])+"#));
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b[a-z0-9._%+-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?:^|(?u:[^0-9a-f:]))((?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?)",
    )
});
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,23}[a-z0-9]\b")
});
static SHA256: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[0-9a-f]{64}\b"));
static SHA1: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[0-9a-f]{40}\b"));
static MD5: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[0-9a-f]{32}\b"));
static CVE: LazyLock<Regex> = LazyLock::new(|| regex(r"\bCVE-\d{4}-\d{4,7}\b"));

/// Top-level domains accepted for bare domain names. A closed list keeps file names
/// (`invoice.pdf`, `setup.exe`) and dotted identifiers out of the results; every
/// two-letter country code is accepted as well.
const GENERIC_TLDS: &[&str] = &[
    "com",
    "net",
    "org",
    "info",
    "biz",
    "edu",
    "gov",
    "mil",
    "int",
    "io",
    "app",
    "dev",
    "xyz",
    "online",
    "site",
    "top",
    "club",
    "shop",
    "store",
    "live",
    "icu",
    "vip",
    "work",
    "click",
    "link",
    "email",
    "cloud",
    "tech",
    "space",
    "website",
    "fun",
    "buzz",
    "monster",
    "rest",
    "bar",
    "cyou",
    "sbs",
    "cfd",
    "lol",
    "beauty",
    "hair",
    "skin",
    "mobi",
    "name",
    "pro",
    "tel",
    "asia",
    "onion",
    "support",
    "services",
    "digital",
    "network",
    "systems",
    "solutions",
    "company",
    "center",
    "media",
    "news",
    "blog",
    "help",
    "page",
    "world",
    "today",
    "life",
    "quest",
    "zip",
    "mov",
    "win",
    "bid",
    "loan",
    "download",
    "review",
    "party",
    "trade",
    "date",
    "stream",
    "science",
    "racing",
    "accountant",
    "cricket",
    "faith",
    "men",
    "gdn",
    "ltd",
    "group",
    "global",
    "host",
    "press",
    "ink",
    "pw",
    "run",
    "best",
    "care",
    "cam",
];

fn is_known_tld(tld: &str) -> bool {
    let tld = tld.to_ascii_lowercase();
    (tld.len() == 2 && tld.bytes().all(|b| b.is_ascii_lowercase()))
        || GENERIC_TLDS.contains(&tld.as_str())
}

fn valid_domain(domain: &str) -> bool {
    domain
        .rsplit_once('.')
        .is_some_and(|(_, tld)| is_known_tld(tld))
        && domain.len() <= 253
}

/// Rewrite defanged spellings into their plain form.
pub fn refang(text: &str) -> String {
    REFANG
        .iter()
        .fold(text.to_owned(), |acc, (pattern, replacement)| {
            pattern.replace_all(&acc, *replacement).into_owned()
        })
}

/// Push `value` onto `list` unless `seen` already holds it.
fn push_unique(list: &mut Vec<String>, seen: &mut HashSet<String>, value: String) {
    if seen.insert(value.clone()) {
        list.push(value);
    }
}

/// Trailing characters that end a sentence rather than a URL.
fn trim_url(url: &str) -> &str {
    let mut url = url.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"']);
    // A closing parenthesis belongs to the URL only if it opened one.
    while url.ends_with(')') && url.matches('(').count() < url.matches(')').count() {
        url = &url[..url.len() - 1];
    }
    url
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

/// Find every indicator in `text`.
pub fn extract(text: &str) -> Indicators {
    let text = refang(text);
    let mut out = Indicators::default();
    let mut seen = HashSet::new();
    let mut domains = Vec::new();

    for m in URL.find_iter(&text) {
        let url = trim_url(m.as_str());
        if let Some(host) = host_of(url) {
            domains.push(host.to_ascii_lowercase());
        }
        push_unique(&mut out.urls, &mut seen, url.to_owned());
    }
    for m in EMAIL.find_iter(&text) {
        let email = m.as_str().to_ascii_lowercase();
        if let Some((_, domain)) = email.split_once('@')
            && valid_domain(domain)
        {
            domains.push(domain.to_owned());
            push_unique(&mut out.emails, &mut seen, email);
        }
    }
    for m in IPV4.find_iter(&text) {
        if let Ok(ip) = m.as_str().parse::<Ipv4Addr>() {
            push_unique(&mut out.ipv4, &mut seen, ip.to_string());
        }
    }
    for captures in IPV6.captures_iter(&text) {
        let candidate = &captures[1];
        if candidate.matches(':').count() >= 2
            && let Ok(ip) = candidate.parse::<Ipv6Addr>()
        {
            push_unique(&mut out.ipv6, &mut seen, ip.to_string());
        }
    }
    for m in DOMAIN.find_iter(&text) {
        // A domain directly followed by `@` is an email's local part (`john.doe@…`).
        if text[m.end()..].starts_with('@') {
            continue;
        }
        // In a URL-encoded query (`user=j.doe%40contoso.com`) the match starts with the
        // two hex digits of the escape: the domain is what follows them.
        let mut domain = m.as_str();
        if text[..m.start()].ends_with('%')
            && domain.len() > 2
            && domain.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit)
        {
            domain = &domain[2..];
        }
        domains.push(domain.to_ascii_lowercase());
    }
    for domain in domains {
        if valid_domain(&domain) && domain.parse::<Ipv4Addr>().is_err() {
            push_unique(&mut out.domains, &mut seen, domain);
        }
    }
    for (pattern, list) in [
        (&*SHA256, &mut out.sha256),
        (&*SHA1, &mut out.sha1),
        (&*MD5, &mut out.md5),
    ] {
        for m in pattern.find_iter(&text) {
            push_unique(list, &mut seen, m.as_str().to_ascii_lowercase());
        }
    }
    for m in CVE.find_iter(&text) {
        push_unique(&mut out.cves, &mut seen, m.as_str().to_ascii_uppercase());
    }

    out.count = out.ipv4.len()
        + out.ipv6.len()
        + out.domains.len()
        + out.urls.len()
        + out.emails.len()
        + out.md5.len()
        + out.sha1.len()
        + out.sha256.len()
        + out.cves.len();
    out
}

/// Defang one indicator: `http` → `hxxp`, dots → `[.]`, `@` → `[@]`.
fn defang_one(indicator: &str) -> String {
    let (scheme, rest) = match indicator.split_once("://") {
        Some((scheme, rest)) => (
            Some(scheme.replacen("http", "hxxp", 1).replacen("ftp", "fxp", 1)),
            rest,
        ),
        None => (None, indicator),
    };
    // Only the host part of a URL is defanged: the path stays readable.
    let (host, tail) = match rest.find(['/', '?', '#']) {
        Some(i) if scheme.is_some() => rest.split_at(i),
        _ => (rest, ""),
    };
    let host = host.replace('.', "[.]").replace('@', "[@]");
    match scheme {
        Some(scheme) => format!("{scheme}[://]{host}{tail}"),
        None => format!("{host}{tail}"),
    }
}

/// Defang every URL, email address, IP address and domain in `text`, so that it can
/// be pasted into a ticket or chat without becoming a live link.
pub fn defang(text: &str) -> String {
    let text = refang(text);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let overlaps =
        |spans: &[(usize, usize)], s: usize, e: usize| spans.iter().any(|&(a, b)| s < b && a < e);
    for pattern in [&*URL, &*EMAIL, &*IPV4, &*DOMAIN] {
        for m in pattern.find_iter(&text) {
            let end = m.start() + trim_url(m.as_str()).len();
            let matched = &text[m.start()..end];
            let is_domain = std::ptr::eq(pattern, &*DOMAIN);
            if overlaps(&spans, m.start(), end) || (is_domain && !valid_domain(matched)) {
                continue;
            }
            spans.push((m.start(), end));
        }
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len() + spans.len() * 4);
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&text[at..start]);
        out.push_str(&defang_one(&text[start..end]));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

struct IocExtract;

impl App for IocExtract {
    const DESCRIPTION: &'static str =
        "Extract IPs, domains, URLs, emails, hashes and CVE ids from free text; defang and refang.";

    fn actions() -> Vec<Action> {
        vec![
            Action::new(
                "extract",
                "Find every indicator in free text, defanged or not.",
                |input: TextInput| {
                    let found = extract(&input.text);
                    debug!(count = found.count, bytes = input.text.len(); "extracted indicators");
                    Ok::<_, StepError>(found)
                },
            ),
            Action::new(
                "defang",
                "Defang every URL, email, IP and domain in the text.",
                |input: TextInput| {
                    Ok::<_, StepError>(TextOutput {
                        text: defang(&input.text),
                    })
                },
            ),
            Action::new(
                "refang",
                "Turn defanged indicators back into their plain form.",
                |input: TextInput| {
                    Ok::<_, StepError>(TextOutput {
                        text: refang(&input.text),
                    })
                },
            ),
        ]
    }
}

wasp_sdk::export_app!(IocExtract);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refangs_common_spellings() {
        assert_eq!(refang("hxxp://evil[.]com/x"), "http://evil.com/x");
        assert_eq!(refang("hXXps[:]//a(.)b[dot]c"), "https://a.b.c");
        assert_eq!(
            refang("10.1.2[.]3 and bob[@]corp{.}example"),
            "10.1.2.3 and bob@corp.example"
        );
        assert_eq!(refang("evil (dot) com"), "evil.com");
    }

    #[test]
    fn extracts_the_issue_example() {
        let found = extract("see hxxp://evil[.]com/x and 10.1.2[.]3");
        assert_eq!(found.urls, ["http://evil.com/x"]);
        assert_eq!(found.domains, ["evil.com"]);
        assert_eq!(found.ipv4, ["10.1.2.3"]);
        assert_eq!(found.count, 3);
    }

    #[test]
    fn file_names_and_versions_are_not_domains() {
        let found = extract("opened invoice.pdf and setup.exe, version 1.2.3.4567, see e.g. notes");
        assert!(found.domains.is_empty(), "{:?}", found.domains);
        assert!(found.ipv4.is_empty(), "{:?}", found.ipv4);
    }

    #[test]
    fn ipv6_hashes_and_cves() {
        let found = extract(
            "C2 at 2001:DB8::1 and fe80::1%eth0; time 12:30:45. \
             md5 D41D8CD98F00B204E9800998ECF8427E sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 \
             cve-2021-44228",
        );
        assert_eq!(found.ipv6, ["2001:db8::1", "fe80::1"]);
        assert_eq!(found.md5, ["d41d8cd98f00b204e9800998ecf8427e"]);
        assert_eq!(found.sha1, ["da39a3ee5e6b4b0d3255bfef95601890afd80709"]);
        assert_eq!(found.cves, ["CVE-2021-44228"]);
    }

    #[test]
    fn urls_lose_sentence_punctuation_but_keep_balanced_parens() {
        let found =
            extract("(see https://en.example.org/wiki/Foo_(bar)). Or http://x.example.com/a.");
        assert_eq!(
            found.urls,
            [
                "https://en.example.org/wiki/Foo_(bar)",
                "http://x.example.com/a"
            ]
        );
    }

    #[test]
    fn percent_escapes_are_not_part_of_a_domain() {
        let found =
            extract("https://evil.com/login?user=j.doe%40contoso.com&next=%2Fhome.example.org");
        assert_eq!(
            found.domains,
            ["evil.com", "contoso.com", "home.example.org"]
        );
    }

    #[test]
    fn defang_round_trips() {
        let text = "mail bob@evil.com, visit https://evil.com/path?q=1 from 203.0.113.7";
        let defanged = defang(text);
        assert_eq!(
            defanged,
            "mail bob[@]evil[.]com, visit hxxps[://]evil[.]com/path?q=1 from 203[.]0[.]113[.]7"
        );
        assert_eq!(refang(&defanged), text);
    }
}
