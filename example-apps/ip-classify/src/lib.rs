//! `ip-classify`: what kind of address an IP is, and which of your networks hold it.
//!
//! The `classify` action places an IPv4 or IPv6 address in the special-purpose ranges
//! of the IANA registries (RFC 6890 and its successors) and reports one of seven
//! categories: `private`, `loopback`, `link_local`, `cgnat`, `multicast`, `reserved`
//! and `public`. Everything that is neither routable on the internet nor one of the
//! first five (unspecified, broadcast, documentation, benchmarking, the 6to4 relay
//! anycast, former class E, …) is `reserved`, and `detail` names the range and its RFC.
//! An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is classified, reported and
//! matched as the IPv4 address it carries.
//!
//! The asset's setting `lists` names CIDR lists, as a JSON object
//! `{"corp": ["10.0.0.0/8", "2001:db8:1::/48"], "vpn": ["100.64.0.0/10"]}`; an entry
//! may also be a bare address (a /32 or /128). The output names every list holding
//! the address, so that a playbook can tell "ours" from "theirs".

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasp_sdk::{Action, App, StepError, config, debug};

/// An address to classify.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyInput {
    /// An IPv4 (`203.0.113.7`) or IPv6 (`2001:db8::1`) address; surrounding white
    /// space is ignored.
    pub ip: String,
}

/// The kind of range an address belongs to.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[cfg_attr(test, derive(Deserialize))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Private-use networks: RFC 1918 for IPv4, unique local `fc00::/7` for IPv6.
    Private,
    /// This host: `127.0.0.0/8`, `::1`.
    Loopback,
    /// Link-local: `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT shared address space: `100.64.0.0/10`.
    Cgnat,
    /// Multicast: `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// Any other special-purpose or unassigned range; `detail` says which.
    Reserved,
    /// Routable on the internet.
    Public,
}

/// What `classify` found.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Classification {
    /// The address in canonical form (RFC 5952 for IPv6); an IPv4-mapped IPv6
    /// address is given as its IPv4 address.
    pub ip: String,
    /// 4 or 6.
    pub version: u8,
    /// The kind of range.
    pub category: Category,
    /// The range and the RFC that defines it, e.g. `documentation (RFC 5737)`.
    pub detail: String,
    /// Whether the address is routable on the internet (`category` is `public`).
    pub public: bool,
    /// The names of the configured CIDR lists holding the address, sorted.
    pub lists: Vec<String>,
}

/// Special-purpose ranges, checked in order: the first that holds the address wins,
/// so a narrower range comes before the wider one it is carved from.
type Ranges<N> = Vec<(N, Category, &'static str)>;

fn ranges<N: std::str::FromStr>(table: &[(&str, Category, &'static str)]) -> Ranges<N>
where
    N::Err: std::fmt::Debug,
{
    table
        .iter()
        .map(|&(cidr, category, detail)| {
            let net = cidr
                .parse()
                .expect("the ranges in this file are valid CIDRs");
            (net, category, detail)
        })
        .collect()
}

use Category::{Cgnat, LinkLocal, Loopback, Multicast, Private, Public, Reserved};

static V4: LazyLock<Ranges<Ipv4Net>> = LazyLock::new(|| {
    ranges(&[
        ("0.0.0.0/32", Reserved, "unspecified (RFC 1122)"),
        ("0.0.0.0/8", Reserved, "this network (RFC 791)"),
        ("10.0.0.0/8", Private, "private-use (RFC 1918)"),
        (
            "100.64.0.0/10",
            Cgnat,
            "shared address space for carrier-grade NAT (RFC 6598)",
        ),
        ("127.0.0.0/8", Loopback, "loopback (RFC 1122)"),
        ("169.254.0.0/16", LinkLocal, "link-local (RFC 3927)"),
        ("172.16.0.0/12", Private, "private-use (RFC 1918)"),
        (
            "192.0.0.0/24",
            Reserved,
            "IETF protocol assignments (RFC 6890)",
        ),
        ("192.0.2.0/24", Reserved, "documentation (RFC 5737)"),
        (
            "192.88.99.0/24",
            Reserved,
            "6to4 relay anycast, deprecated (RFC 7526)",
        ),
        ("192.168.0.0/16", Private, "private-use (RFC 1918)"),
        ("198.18.0.0/15", Reserved, "benchmarking (RFC 2544)"),
        ("198.51.100.0/24", Reserved, "documentation (RFC 5737)"),
        ("203.0.113.0/24", Reserved, "documentation (RFC 5737)"),
        ("224.0.0.0/4", Multicast, "multicast (RFC 5771)"),
        (
            "255.255.255.255/32",
            Reserved,
            "limited broadcast (RFC 919)",
        ),
        (
            "240.0.0.0/4",
            Reserved,
            "reserved for future use, former class E (RFC 1112)",
        ),
    ])
});

static V6: LazyLock<Ranges<Ipv6Net>> = LazyLock::new(|| {
    ranges(&[
        ("::/128", Reserved, "unspecified (RFC 4291)"),
        ("::1/128", Loopback, "loopback (RFC 4291)"),
        ("64:ff9b::/96", Reserved, "IPv4/IPv6 translation (RFC 6052)"),
        (
            "64:ff9b:1::/48",
            Reserved,
            "local-use IPv4/IPv6 translation (RFC 8215)",
        ),
        ("100::/64", Reserved, "discard-only (RFC 6666)"),
        ("2001::/32", Reserved, "Teredo (RFC 4380)"),
        ("2001:2::/48", Reserved, "benchmarking (RFC 5180)"),
        ("2001:20::/28", Reserved, "ORCHIDv2 (RFC 7343)"),
        (
            "2001::/23",
            Reserved,
            "IETF protocol assignments (RFC 2928)",
        ),
        ("2001:db8::/32", Reserved, "documentation (RFC 3849)"),
        ("3fff::/20", Reserved, "documentation (RFC 9637)"),
        ("5f00::/16", Reserved, "segment routing SIDs (RFC 9602)"),
        ("fc00::/7", Private, "unique local (RFC 4193)"),
        ("fe80::/10", LinkLocal, "link-local unicast (RFC 4291)"),
        ("fec0::/10", Reserved, "site-local, deprecated (RFC 3879)"),
        ("ff00::/8", Multicast, "multicast (RFC 4291)"),
        ("2000::/3", Public, "global unicast (RFC 4291)"),
    ])
});

/// The category and detail of an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> (Category, &'static str) {
    V4.iter()
        .find(|(net, _, _)| net.contains(&ip))
        .map_or((Public, "globally routable"), |&(_, category, detail)| {
            (category, detail)
        })
}

/// The category and detail of an IPv6 address that is not IPv4-mapped.
pub fn classify_v6(ip: Ipv6Addr) -> (Category, &'static str) {
    V6.iter().find(|(net, _, _)| net.contains(&ip)).map_or(
        (Reserved, "reserved by the IETF (RFC 4291)"),
        |&(_, category, detail)| (category, detail),
    )
}

/// The setting `lists`, validated.
pub type Lists = BTreeMap<String, Vec<IpNet>>;

/// Read and validate the setting `lists`; no setting means no lists.
pub fn load_lists() -> Result<Lists, StepError> {
    let raw: BTreeMap<String, Vec<String>> = config::get_json("lists")?.unwrap_or_default();
    let mut lists = Lists::new();
    for (name, entries) in raw {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in &entries {
            let net = parse_net(entry).ok_or_else(|| {
                StepError::misconfigured(format!(
                    "list `{name}` in setting `lists` has `{entry}`, \
                     which is neither a CIDR nor an IP address"
                ))
            })?;
            nets.push(net);
        }
        lists.insert(name, nets);
    }
    Ok(lists)
}

fn parse_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Classify `ip` and find the lists in `lists` holding it.
pub fn classify(ip: &str, lists: &Lists) -> Result<Classification, StepError> {
    let text = ip.trim();
    if text.is_empty() {
        return Err(StepError::invalid_input("`ip` is empty"));
    }
    let parsed: IpAddr = text.parse().map_err(|_| {
        StepError::invalid_input(format!("`ip` `{text}` is not an IPv4 or IPv6 address"))
    })?;
    // The addresses list membership is tested with: a mapped address is both itself
    // and the IPv4 address it carries.
    let mut candidates = vec![parsed];
    let (canonical, (category, detail)) = match parsed {
        IpAddr::V4(v4) => (IpAddr::V4(v4), classify_v4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                candidates.push(IpAddr::V4(v4));
                (IpAddr::V4(v4), classify_v4(v4))
            }
            None => (IpAddr::V6(v6), classify_v6(v6)),
        },
    };
    let lists: Vec<String> = lists
        .iter()
        .filter(|(_, nets)| {
            nets.iter()
                .any(|net| candidates.iter().any(|ip| net.contains(ip)))
        })
        .map(|(name, _)| name.clone())
        .collect();
    Ok(Classification {
        ip: canonical.to_string(),
        version: if canonical.is_ipv4() { 4 } else { 6 },
        category,
        detail: detail.to_owned(),
        public: category == Public,
        lists,
    })
}

struct IpClassify;

impl App for IpClassify {
    const DESCRIPTION: &'static str = "Classify IPv4 and IPv6 addresses (private, loopback, \
        link-local, CGNAT, multicast, reserved, public) and match them against CIDR lists.";

    fn actions() -> Vec<Action> {
        vec![Action::new(
            "classify",
            "Classify an IP address and name the configured CIDR lists that hold it.",
            |input: ClassifyInput| {
                let lists = load_lists()?;
                let found = classify(&input.ip, &lists)?;
                debug!(ip = found.ip, lists = found.lists.len(); "classified an address");
                Ok(found)
            },
        )]
    }
}

wasp_sdk::export_app!(IpClassify);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_sdk::ErrorCode;
    use wasp_sdk::testing::set_config;

    /// Classify with no lists configured: (canonical ip, version, category, detail).
    fn check(ip: &str) -> (String, u8, Category, String) {
        let c = classify(ip, &Lists::new()).unwrap();
        assert_eq!(c.public, c.category == Public, "{ip}");
        assert!(c.lists.is_empty());
        (c.ip, c.version, c.category, c.detail)
    }

    fn assert_class(ip: &str, category: Category, detail: &str) {
        let (_, _, got_category, got_detail) = check(ip);
        assert_eq!(
            (got_category, got_detail.as_str()),
            (category, detail),
            "{ip}"
        );
    }

    #[test]
    fn ipv4_every_category() {
        for (ip, category, detail) in [
            ("10.1.2.3", Private, "private-use (RFC 1918)"),
            ("172.31.255.255", Private, "private-use (RFC 1918)"),
            ("192.168.1.10", Private, "private-use (RFC 1918)"),
            ("127.0.0.1", Loopback, "loopback (RFC 1122)"),
            ("127.255.255.254", Loopback, "loopback (RFC 1122)"),
            ("169.254.169.254", LinkLocal, "link-local (RFC 3927)"),
            (
                "100.64.0.1",
                Cgnat,
                "shared address space for carrier-grade NAT (RFC 6598)",
            ),
            (
                "100.127.255.254",
                Cgnat,
                "shared address space for carrier-grade NAT (RFC 6598)",
            ),
            ("224.0.0.251", Multicast, "multicast (RFC 5771)"),
            ("239.255.255.250", Multicast, "multicast (RFC 5771)"),
            ("0.0.0.0", Reserved, "unspecified (RFC 1122)"),
            ("0.1.2.3", Reserved, "this network (RFC 791)"),
            ("255.255.255.255", Reserved, "limited broadcast (RFC 919)"),
            ("192.0.2.1", Reserved, "documentation (RFC 5737)"),
            ("198.51.100.7", Reserved, "documentation (RFC 5737)"),
            ("203.0.113.9", Reserved, "documentation (RFC 5737)"),
            ("198.18.0.1", Reserved, "benchmarking (RFC 2544)"),
            ("198.19.255.255", Reserved, "benchmarking (RFC 2544)"),
            (
                "192.88.99.1",
                Reserved,
                "6to4 relay anycast, deprecated (RFC 7526)",
            ),
            (
                "192.0.0.8",
                Reserved,
                "IETF protocol assignments (RFC 6890)",
            ),
            (
                "240.0.0.1",
                Reserved,
                "reserved for future use, former class E (RFC 1112)",
            ),
            (
                "255.255.255.254",
                Reserved,
                "reserved for future use, former class E (RFC 1112)",
            ),
            ("8.8.8.8", Public, "globally routable"),
            ("185.220.101.47", Public, "globally routable"),
            // Just outside the ranges above.
            ("100.63.255.255", Public, "globally routable"),
            ("100.128.0.0", Public, "globally routable"),
            ("172.32.0.1", Public, "globally routable"),
            ("198.20.0.1", Public, "globally routable"),
            ("223.255.255.255", Public, "globally routable"),
        ] {
            assert_class(ip, category, detail);
        }
    }

    #[test]
    fn ipv6_every_category() {
        for (ip, category, detail) in [
            ("fd12:3456:789a::1", Private, "unique local (RFC 4193)"),
            ("fc00::1", Private, "unique local (RFC 4193)"),
            ("::1", Loopback, "loopback (RFC 4291)"),
            (
                "fe80::1c2a:3bff:fe4d:5e6f",
                LinkLocal,
                "link-local unicast (RFC 4291)",
            ),
            ("ff02::1", Multicast, "multicast (RFC 4291)"),
            ("ff05::1:3", Multicast, "multicast (RFC 4291)"),
            ("::", Reserved, "unspecified (RFC 4291)"),
            ("2001:db8::1", Reserved, "documentation (RFC 3849)"),
            ("3fff:0:1::1", Reserved, "documentation (RFC 9637)"),
            (
                "64:ff9b::808:808",
                Reserved,
                "IPv4/IPv6 translation (RFC 6052)",
            ),
            ("100::dead:beef", Reserved, "discard-only (RFC 6666)"),
            ("2001:0:4136:e378::1", Reserved, "Teredo (RFC 4380)"),
            ("2001:2::1", Reserved, "benchmarking (RFC 5180)"),
            (
                "2001:100::1",
                Reserved,
                "IETF protocol assignments (RFC 2928)",
            ),
            ("fec0::1", Reserved, "site-local, deprecated (RFC 3879)"),
            ("4000::1", Reserved, "reserved by the IETF (RFC 4291)"),
            ("::102:304", Reserved, "reserved by the IETF (RFC 4291)"),
            ("2606:4700:4700::1111", Public, "global unicast (RFC 4291)"),
            (
                "2a03:2880:f12f:83:face:b00c::25de",
                Public,
                "global unicast (RFC 4291)",
            ),
            ("2001:200::1", Public, "global unicast (RFC 4291)"),
        ] {
            assert_class(ip, category, detail);
        }
    }

    #[test]
    fn canonical_forms_and_versions() {
        assert_eq!(check(" 2001:DB8:0:0:0::1 ").0, "2001:db8::1");
        assert_eq!(check("2001:db8::1").1, 6);
        assert_eq!(check("192.168.1.1").1, 4);
        // IPv4-mapped IPv6 is its IPv4 address.
        assert_eq!(
            check("::ffff:10.1.2.3"),
            (
                "10.1.2.3".to_owned(),
                4,
                Private,
                "private-use (RFC 1918)".to_owned()
            )
        );
        assert_eq!(
            check("::FFFF:808:808"),
            (
                "8.8.8.8".to_owned(),
                4,
                Public,
                "globally routable".to_owned()
            )
        );
    }

    #[test]
    fn bad_addresses_are_invalid_input() {
        for (ip, message) in [
            (
                "10.0.0.256",
                "`ip` `10.0.0.256` is not an IPv4 or IPv6 address",
            ),
            (
                "010.0.0.1",
                "`ip` `010.0.0.1` is not an IPv4 or IPv6 address",
            ),
            (
                "10.0.0.0/8",
                "`ip` `10.0.0.0/8` is not an IPv4 or IPv6 address",
            ),
            (
                "fe80::1%eth0",
                "`ip` `fe80::1%eth0` is not an IPv4 or IPv6 address",
            ),
            ("evil.com", "`ip` `evil.com` is not an IPv4 or IPv6 address"),
            ("  ", "`ip` is empty"),
        ] {
            let e = classify(ip, &Lists::new()).unwrap_err();
            assert_eq!((e.code(), e.message()), (ErrorCode::InvalidInput, message));
        }
    }

    const LISTS: &str = r#"{
        "corp": ["10.0.0.0/8", "172.16.0.0/12", "2001:db8:1::/48"],
        "vpn": ["10.8.0.0/16", "100.64.0.0/10"],
        "scanners": ["198.51.100.23", "2001:db8:ffff::7"],
        "empty": []
    }"#;

    /// Run the action as the host does, config and all.
    fn run(ip: &str) -> Result<Classification, StepError> {
        let input = serde_json::json!({ "ip": ip }).to_string();
        let out = wasp_sdk::run::<IpClassify>("classify", &input)?;
        Ok(serde_json::from_str(&out.output).unwrap())
    }

    #[test]
    fn list_membership_from_config() {
        set_config([("lists", LISTS)]);
        assert_eq!(run("10.8.1.2").unwrap().lists, ["corp", "vpn"]);
        assert_eq!(run("172.20.0.5").unwrap().lists, ["corp"]);
        assert_eq!(run("100.100.1.1").unwrap().lists, ["vpn"]);
        assert_eq!(run("2001:db8:1:42::5").unwrap().lists, ["corp"]);
        assert_eq!(run("2001:db8:ffff::7").unwrap().lists, ["scanners"]);
        assert_eq!(run("198.51.100.23").unwrap().lists, ["scanners"]);
        assert!(run("198.51.100.24").unwrap().lists.is_empty());
        assert!(run("8.8.8.8").unwrap().lists.is_empty());
        // A mapped address matches the IPv4 lists.
        let mapped = run("::ffff:10.8.0.1").unwrap();
        assert_eq!(
            mapped,
            Classification {
                ip: "10.8.0.1".to_owned(),
                version: 4,
                category: Private,
                detail: "private-use (RFC 1918)".to_owned(),
                public: false,
                lists: vec!["corp".to_owned(), "vpn".to_owned()],
            }
        );
    }

    #[test]
    fn no_lists_setting_means_no_lists() {
        set_config::<&str, &str>([]);
        let c = run("203.0.113.7").unwrap();
        assert_eq!(c.category, Reserved);
        assert!(!c.public);
        assert!(c.lists.is_empty());
    }

    #[test]
    fn bad_lists_are_misconfigured() {
        set_config([(
            "lists",
            r#"{"corp": ["10.0.0.0/8"], "vpn": ["10.8.0.0/33"]}"#,
        )]);
        let e = run("10.8.0.1").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Misconfigured);
        assert_eq!(
            e.message(),
            "list `vpn` in setting `lists` has `10.8.0.0/33`, which is neither a CIDR nor an IP address"
        );

        set_config([("lists", r#"["10.0.0.0/8"]"#)]);
        let e = run("10.8.0.1").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Misconfigured);
        assert!(
            e.message().starts_with("setting `lists` is not valid"),
            "{}",
            e.message()
        );
    }
}
