//! `email-parse`: an RFC 5322 message, as a phishing analyst reads it.
//!
//! The `parse` action turns raw message text (an `.eml` file, a reported phish) into
//! the facts a triage playbook branches on: who it claims to be from and where replies
//! and bounces really go, the relay path (`Received` hops), the receiving server's
//! SPF/DKIM/DMARC verdicts, every URL in the text and HTML bodies, links whose visible
//! text names another host than the one they point to, and each attachment's SHA-256.
//!
//! Parsing is delegated to `mail-parser`, which decodes MIME, transfer encodings,
//! charsets and RFC 2047 encoded words; this crate only reads its result. It is lenient
//! by design (a reported phish is often malformed): input is refused only when it is
//! empty, has no header section, or has none of the header fields every message has.

use std::collections::HashSet;
use std::sync::LazyLock;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::{
    Addr, Address, Encoding, Host, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasp_sdk::{Action, App, StepError, debug};

/// A raw message to parse.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParseInput {
    /// The whole message as RFC 5322 text: header fields, a blank line, the body.
    /// CRLF and bare LF line endings are both accepted.
    pub raw: String,
}

/// A mailbox: an optional display name and an address.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Mailbox {
    /// The display name (`Microsoft 365` in `"Microsoft 365" <no-reply@…>`), decoded.
    pub name: Option<String>,
    /// The address, as written.
    pub address: String,
}

/// One header field of the message, in the order of the message.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct HeaderField {
    /// The field name, as written (`Received`, `X-Mailer`).
    pub name: String,
    /// The raw value, unfolded (line breaks inside it removed) and trimmed; encoded
    /// words are left as written.
    pub value: String,
}

/// How Reply-To and Return-Path compare with From: the classic signs of a spoofed
/// sender whose replies or bounces go elsewhere.
///
/// Addresses compare case-insensitively. A domain counts as the same as From's when
/// it is equal to it or one is a subdomain of the other (`bounce.example.com` and
/// `example.com`), since mailing services often bounce to a subdomain.
#[derive(Debug, Default, Serialize, JsonSchema, PartialEq)]
pub struct Mismatches {
    /// Reply-To is set to another address than From.
    pub reply_to_address: bool,
    /// Reply-To is on another domain than From.
    pub reply_to_domain: bool,
    /// Return-Path is set to another address than From.
    pub return_path_address: bool,
    /// Return-Path is on another domain than From.
    pub return_path_domain: bool,
    /// Each mismatch, in words, for a ticket or a chat message.
    pub findings: Vec<String>,
}

/// One `Received` hop. Hops are listed as they appear in the message: the first is
/// the last relay, added by the server that delivered the message to the mailbox.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct Hop {
    /// The host name (or address literal) the sending server gave.
    pub from: Option<String>,
    /// The server that received the message.
    pub by: Option<String>,
    /// The protocol (`SMTP`, `ESMTPS`, `ESMTPSA`, …).
    pub with: Option<String>,
    /// The sending server's IP address as the receiving server saw it.
    pub ip: Option<String>,
    /// When the hop happened, RFC 3339.
    pub date: Option<String>,
}

/// The sender-authentication verdicts the receiving server recorded, lower-cased
/// (`pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`).
///
/// Read from the `Authentication-Results` header fields, the topmost (added last, by
/// the server nearest the mailbox) first; `spf` falls back to `Received-SPF`. A
/// verdict no header states is null.
#[derive(Debug, Default, Serialize, JsonSchema, PartialEq)]
pub struct Authentication {
    /// The SPF result.
    pub spf: Option<String>,
    /// The DKIM result (of the first signature reported).
    pub dkim: Option<String>,
    /// The DMARC result.
    pub dmarc: Option<String>,
}

/// An HTML link whose visible text names one host while its `href` goes to another:
/// `<a href="https://evil.example/">https://login.microsoftonline.com/</a>`.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct DeceptiveLink {
    /// The text the reader sees.
    pub text: String,
    /// Where the link really goes.
    pub href: String,
}

/// An attached file.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct Attachment {
    /// The file name from `Content-Disposition` or `Content-Type`, if any.
    pub name: Option<String>,
    /// The MIME type, lower-cased (`text/html`, `application/zip`).
    pub content_type: String,
    /// The decoded size in bytes.
    pub size: usize,
    /// SHA-256 of the decoded bytes, lower-case hex: what a sandbox or a hash
    /// reputation service is asked about.
    pub sha256: String,
}

/// Everything `parse` found in the message.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct ParsedEmail {
    /// The subject, with encoded words decoded.
    pub subject: Option<String>,
    /// The first From mailbox.
    pub from: Option<Mailbox>,
    /// Every To mailbox, groups flattened.
    pub to: Vec<Mailbox>,
    /// Every Cc mailbox, groups flattened.
    pub cc: Vec<Mailbox>,
    /// The first Reply-To mailbox.
    pub reply_to: Option<Mailbox>,
    /// The Return-Path (envelope sender) address, without angle brackets.
    pub return_path: Option<String>,
    /// The Date field, RFC 3339, in the sender's time zone.
    pub date: Option<String>,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// Every header field of the message, in order.
    pub headers: Vec<HeaderField>,
    /// How Reply-To and Return-Path compare with From.
    pub mismatches: Mismatches,
    /// The `Received` hops, the most recent first (the order of the message).
    pub received: Vec<Hop>,
    /// SPF, DKIM and DMARC verdicts.
    pub authentication: Authentication,
    /// The first plain-text body; derived from the HTML body when there is none.
    pub text_body: Option<String>,
    /// Every URL in the text and HTML bodies (not in attachments): URLs in the text,
    /// HTML `href`s with a scheme, and URLs in the HTML source (images, forms).
    /// HTML entities are decoded; de-duplicated, in order of first appearance.
    pub urls: Vec<String>,
    /// HTML links whose visible text names another host than their target.
    pub deceptive_links: Vec<DeceptiveLink>,
    /// Every attachment, in the order of the message.
    pub attachments: Vec<Attachment>,
}

fn regex(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .dot_matches_new_line(true)
        .build()
        .expect("the patterns in this file are valid")
}

/// A URL in text: a scheme, `://`, then anything up to a space, quote or angle bracket.
static URL: LazyLock<Regex> = LazyLock::new(|| regex(r#"\b(?:https?|ftp)://[^\s<>"'`]+"#));
/// An `href` attribute (group 1) or a URL in the HTML source (group 0), whichever comes
/// first, so that a URL inside an `href` is found once.
static HTML_URL: LazyLock<Regex> = LazyLock::new(|| {
    regex(r#"\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))|\b(?:https?|ftp)://[^\s<>"'`]+"#)
});
/// An anchor: its `href` (groups 1 to 3) and its inner HTML (group 4).
static ANCHOR: LazyLock<Regex> = LazyLock::new(|| {
    regex(r#"<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>(.*?)</a\s*>"#)
});
static TAG: LazyLock<Regex> = LazyLock::new(|| regex(r"<[^>]*>"));
/// A parenthesised comment inside a structured header field (no nesting).
static COMMENT: LazyLock<Regex> = LazyLock::new(|| regex(r"\([^()]*\)"));
/// One `method=result` of an `Authentication-Results` field.
static VERDICT: LazyLock<Regex> = LazyLock::new(|| regex(r"^\s*(spf|dkim|dmarc)\s*=\s*([a-z]+)"));

/// Header fields every real message has at least one of. `mail-parser` finds header
/// fields in almost anything; a text without any of these is not a message.
const ESSENTIAL_FIELDS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "received",
    "return-path",
    "sender",
];

/// Parse `raw` into what an analyst needs.
pub fn parse(raw: &str) -> Result<ParsedEmail, StepError> {
    if raw.trim().is_empty() {
        return Err(StepError::invalid_input("`raw` is empty"));
    }
    let message = MessageParser::default().parse(raw).ok_or_else(|| {
        StepError::invalid_input("`raw` is not an RFC 5322 message: it has no header fields")
    })?;
    let headers = header_fields(&message);
    if !headers
        .iter()
        .any(|h| ESSENTIAL_FIELDS.contains(&h.name.to_ascii_lowercase().as_str()))
    {
        return Err(StepError::invalid_input(format!(
            "`raw` is not an RFC 5322 message: it has none of the fields {}",
            ESSENTIAL_FIELDS.join(", ")
        )));
    }

    let from = message.from().and_then(first_mailbox);
    let reply_to = message.reply_to().and_then(first_mailbox);
    let return_path = return_path(&message);
    let mismatches = mismatches(
        from.as_ref().map(|m| m.address.as_str()),
        reply_to.as_ref().map(|m| m.address.as_str()),
        return_path.as_deref(),
    );
    let (urls, deceptive_links) = body_links(&message);

    Ok(ParsedEmail {
        subject: message.subject().map(str::to_owned),
        from,
        to: message.to().map(mailboxes).unwrap_or_default(),
        cc: message.cc().map(mailboxes).unwrap_or_default(),
        reply_to,
        return_path,
        date: message
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_rfc3339()),
        message_id: message.message_id().map(str::to_owned),
        authentication: authentication(&headers),
        headers,
        mismatches,
        received: hops(&message),
        text_body: message.body_text(0).map(|t| t.into_owned()),
        urls,
        deceptive_links,
        attachments: message
            .attachments()
            .map(|part| attachment(part, &message.raw_message))
            .collect(),
    })
}

fn mailbox(addr: &Addr<'_>) -> Option<Mailbox> {
    let address = addr.address()?.trim();
    (!address.is_empty()).then(|| Mailbox {
        name: addr
            .name()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        address: address.to_owned(),
    })
}

fn first_mailbox(address: &Address<'_>) -> Option<Mailbox> {
    address.iter().find_map(mailbox)
}

fn mailboxes(address: &Address<'_>) -> Vec<Mailbox> {
    address.iter().filter_map(mailbox).collect()
}

fn return_path(message: &Message<'_>) -> Option<String> {
    let value = message.return_path();
    let text = value.as_text().or_else(|| {
        value
            .as_text_list()
            .and_then(|l| l.first().map(AsRef::as_ref))
    })?;
    let text = text.trim().trim_start_matches('<').trim_end_matches('>');
    (!text.is_empty()).then(|| text.to_owned())
}

/// The message's header fields with their raw values, unfolded.
fn header_fields(message: &Message<'_>) -> Vec<HeaderField> {
    let raw = message.raw_message.as_ref();
    message
        .headers()
        .iter()
        .map(|header| {
            let bytes = raw
                .get(header.offset_start() as usize..header.offset_end() as usize)
                .unwrap_or_default();
            HeaderField {
                name: header.name().to_owned(),
                value: unfold(&String::from_utf8_lossy(bytes)),
            }
        })
        .collect()
}

/// Undo header folding (RFC 5322 §2.2.3): each line break, with the white space
/// around it, becomes one space.
fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.lines().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(line.trim());
    }
    out.trim().to_owned()
}

fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// Whether `a` and `b` are the same domain or one is a subdomain of the other.
fn related_domains(a: &str, b: &str) -> bool {
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

/// Compare Reply-To and Return-Path with From.
fn mismatches(from: Option<&str>, reply_to: Option<&str>, return_path: Option<&str>) -> Mismatches {
    let mut out = Mismatches::default();
    let Some(from) = from else {
        return out;
    };
    let from_domain = domain_of(from);
    for (field, other) in [("Reply-To", reply_to), ("Return-Path", return_path)] {
        let Some(other) = other else { continue };
        let address_differs = !other.eq_ignore_ascii_case(from);
        let other_domain = domain_of(other);
        let domain_differs = match (&from_domain, &other_domain) {
            (Some(a), Some(b)) => !related_domains(a, b),
            _ => address_differs,
        };
        if domain_differs {
            out.findings.push(format!(
                "{field} `{other}` is on domain `{}`, not the From domain `{}`",
                other_domain.as_deref().unwrap_or("?"),
                from_domain.as_deref().unwrap_or("?"),
            ));
        } else if address_differs {
            out.findings.push(format!(
                "{field} `{other}` differs from the From address `{from}`"
            ));
        }
        if field == "Reply-To" {
            out.reply_to_address = address_differs;
            out.reply_to_domain = domain_differs;
        } else {
            out.return_path_address = address_differs;
            out.return_path_domain = domain_differs;
        }
    }
    out
}

fn host_name(host: &Host<'_>) -> String {
    match host {
        Host::Name(name) => name.to_string(),
        Host::IpAddr(ip) => ip.to_string(),
    }
}

fn hops(message: &Message<'_>) -> Vec<Hop> {
    message
        .received_all()
        .map(|received| Hop {
            from: received.from().map(host_name),
            by: received.by().map(host_name),
            with: received.with().map(|p| p.as_str().to_owned()),
            ip: received.from_ip().map(|ip| ip.to_string()),
            date: received
                .date()
                .filter(|d| d.is_valid())
                .map(|d| d.to_rfc3339()),
        })
        .collect()
}

/// Read SPF, DKIM and DMARC verdicts from the header fields, top first.
fn authentication(headers: &[HeaderField]) -> Authentication {
    let mut out = Authentication::default();
    for header in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Authentication-Results"))
    {
        let mut value = header.value.clone();
        // Comments may hold `=` and `;` (`(sender IP is 1.2.3.4; x=y)`): drop them,
        // innermost first.
        while COMMENT.is_match(&value) {
            value = COMMENT.replace_all(&value, "").into_owned();
        }
        // The first element is the id of the server that checked; then one
        // `method=result` per element.
        for element in value.split(';').skip(1) {
            let Some(captures) = VERDICT.captures(element) else {
                continue;
            };
            let result = captures[2].to_ascii_lowercase();
            let slot = match captures[1].to_ascii_lowercase().as_str() {
                "spf" => &mut out.spf,
                "dkim" => &mut out.dkim,
                _ => &mut out.dmarc,
            };
            slot.get_or_insert(result);
        }
    }
    if out.spf.is_none() {
        out.spf = headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("Received-SPF"))
            .and_then(|h| h.value.split_whitespace().next())
            .map(str::to_ascii_lowercase);
    }
    out
}

/// Decode the HTML character references that occur in URLs and link texts.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((ch, end))
        });
        match decoded {
            Some((ch, end)) => {
                out.push(ch);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
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

/// The host of a URL, lower-cased, without user info or port; for text that is not a
/// URL (`www.example.com/login`), its first path segment.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[')
    } else {
        host.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Whether `text` reads like a URL or a host name: what a reader would take for the
/// link's destination.
fn looks_like_destination(text: &str) -> bool {
    !text.is_empty()
        && !text.contains(char::is_whitespace)
        && (text.contains("://")
            || host_of(text)
                .is_some_and(|h| h.contains('.') && h.chars().any(|c| c.is_ascii_alphabetic())))
}

fn push_url(urls: &mut Vec<String>, seen: &mut HashSet<String>, url: &str) {
    let url = trim_url(url.trim());
    if !url.is_empty() && seen.insert(url.to_owned()) {
        urls.push(url.to_owned());
    }
}

/// URLs and deceptive links of the text and HTML bodies, in part order.
fn body_links(message: &Message<'_>) -> (Vec<String>, Vec<DeceptiveLink>) {
    let mut urls = Vec::new();
    let mut seen = HashSet::new();
    let mut deceptive = Vec::new();
    let mut body_parts: Vec<u32> = message
        .text_body
        .iter()
        .chain(&message.html_body)
        .copied()
        .collect();
    body_parts.sort_unstable();
    body_parts.dedup();

    for part in body_parts.iter().filter_map(|&id| message.part(id)) {
        match &part.body {
            PartType::Text(text) => {
                for m in URL.find_iter(text) {
                    push_url(&mut urls, &mut seen, m.as_str());
                }
            }
            PartType::Html(html) => {
                for captures in HTML_URL.captures_iter(html) {
                    let href = captures
                        .get(1)
                        .or_else(|| captures.get(2))
                        .or_else(|| captures.get(3));
                    match href {
                        Some(href) if href.as_str().contains("://") => {
                            push_url(&mut urls, &mut seen, &decode_entities(href.as_str()));
                        }
                        Some(_) => {}
                        None => push_url(&mut urls, &mut seen, &decode_entities(&captures[0])),
                    }
                }
                deceptive.extend(deceptive_links(html));
            }
            _ => {}
        }
    }
    (urls, deceptive)
}

/// Anchors whose visible text reads as a destination on another host than the
/// `href`'s.
fn deceptive_links(html: &str) -> Vec<DeceptiveLink> {
    let mut out = Vec::new();
    for captures in ANCHOR.captures_iter(html) {
        let Some(href) = captures
            .get(1)
            .or_else(|| captures.get(2))
            .or_else(|| captures.get(3))
        else {
            continue;
        };
        let href = decode_entities(href.as_str().trim());
        let text = decode_entities(TAG.replace_all(&captures[4], "").trim());
        if !href.contains("://") || !looks_like_destination(&text) {
            continue;
        }
        if host_of(&text) != host_of(&href) {
            out.push(DeceptiveLink { text, href });
        }
    }
    out
}

/// The bytes of an attachment after its transfer encoding is undone.
///
/// `mail-parser` converts text parts to UTF-8, which would change the hash of an
/// attached HTML file in another charset; a base64 text part is therefore decoded
/// again from the raw message, so that the hash is that of the file the sender
/// attached.
fn attachment_bytes<'a>(part: &'a MessagePart<'_>, raw: &[u8]) -> std::borrow::Cow<'a, [u8]> {
    if matches!(part.body, PartType::Text(_) | PartType::Html(_))
        && part.encoding == Encoding::Base64
        && let Some(decoded) = raw
            .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)
            .and_then(base64_decode)
    {
        return decoded.into();
    }
    part.contents().into()
}

/// Describe one attachment; `raw` is the message the part's offsets point into.
fn attachment(part: &MessagePart<'_>, raw: &[u8]) -> Attachment {
    let bytes = attachment_bytes(part, raw);
    let content_type = part.content_type().map_or_else(
        || "application/octet-stream".to_owned(),
        |ct| match ct.subtype() {
            Some(subtype) => format!("{}/{}", ct.ctype(), subtype),
            None => ct.ctype().to_owned(),
        },
    );
    Attachment {
        name: part.attachment_name().map(str::to_owned),
        content_type: content_type.to_ascii_lowercase(),
        size: bytes.len(),
        sha256: hex(&Sha256::digest(&bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct EmailParse;

impl App for EmailParse {
    const DESCRIPTION: &'static str = "Parse an RFC 5322 email: senders and their mismatches, \
        relay hops, SPF/DKIM/DMARC verdicts, URLs and attachment hashes.";

    fn actions() -> Vec<Action> {
        vec![Action::new(
            "parse",
            "Parse a raw email message into headers, hops, verdicts, URLs and attachments.",
            |input: ParseInput| {
                let parsed = parse(&input.raw)?;
                debug!(
                    bytes = input.raw.len(),
                    urls = parsed.urls.len(),
                    attachments = parsed.attachments.len();
                    "parsed a message"
                );
                Ok(parsed)
            },
        )]
    }
}

wasp_sdk::export_app!(EmailParse);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_sdk::ErrorCode;

    /// A credential-phishing message shaped like real campaigns; also used by the
    /// end-to-end tests.
    const PHISH: &str = include_str!("../../../tests/fixtures/phishing.eml");

    fn mailbox(name: Option<&str>, address: &str) -> Mailbox {
        Mailbox {
            name: name.map(str::to_owned),
            address: address.to_owned(),
        }
    }

    #[test]
    fn phishing_senders_and_identity() {
        let p = parse(PHISH).unwrap();
        assert_eq!(
            p.subject.as_deref(),
            Some("⚠ Action required: Your Microsoft 365 password expires today")
        );
        assert_eq!(
            p.from,
            Some(mailbox(
                Some("Microsoft 365"),
                "no-reply@micros0ft-support.com"
            ))
        );
        assert_eq!(p.to, [mailbox(Some("Jane Doe"), "j.doe@contoso.com")]);
        assert_eq!(p.cc, [mailbox(None, "it-helpdesk@contoso.com")]);
        assert_eq!(
            p.reply_to,
            Some(mailbox(
                Some("M365 Support Desk"),
                "support-desk@m365-helpcenter.net"
            ))
        );
        assert_eq!(
            p.return_path.as_deref(),
            Some("bounce+8841-jdoe=contoso.com@mailer.bulk-notify.ru")
        );
        assert_eq!(p.date.as_deref(), Some("2024-05-14T11:11:50+02:00"));
        assert_eq!(
            p.message_id.as_deref(),
            Some("20240514091150.8841.a7f3c2@micros0ft-support.com")
        );
    }

    #[test]
    fn phishing_headers_in_order_unfolded() {
        let p = parse(PHISH).unwrap();
        let names: Vec<&str> = p.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Return-Path",
                "Received",
                "Received",
                "Received",
                "Authentication-Results",
                "Received-SPF",
                "From",
                "Reply-To",
                "To",
                "Cc",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "X-Mailer",
                "X-Priority",
                "Content-Type",
            ]
        );
        assert_eq!(
            p.headers[1].value,
            "from mail.micros0ft-support.com (unknown [185.220.101.47]) by mx1.contoso.com \
             (Postfix) with ESMTPS id 4VfQ2k1Zx9z4wJ for <j.doe@contoso.com>; \
             Tue, 14 May 2024 09:12:03 +0000 (UTC)"
        );
        assert_eq!(
            p.headers[10].value,
            "=?UTF-8?Q?=E2=9A=A0_Action_required:_Your_Microsoft_365?= \
             =?UTF-8?Q?_password_expires_today?="
        );
        assert_eq!(
            p.headers[14].value,
            "PHPMailer 6.8.1 (https://github.com/PHPMailer/PHPMailer)"
        );
    }

    #[test]
    fn phishing_mismatches() {
        let p = parse(PHISH).unwrap();
        assert_eq!(
            p.mismatches,
            Mismatches {
                reply_to_address: true,
                reply_to_domain: true,
                return_path_address: true,
                return_path_domain: true,
                findings: vec![
                    "Reply-To `support-desk@m365-helpcenter.net` is on domain \
                     `m365-helpcenter.net`, not the From domain `micros0ft-support.com`"
                        .to_owned(),
                    "Return-Path `bounce+8841-jdoe=contoso.com@mailer.bulk-notify.ru` is on \
                     domain `mailer.bulk-notify.ru`, not the From domain `micros0ft-support.com`"
                        .to_owned(),
                ],
            }
        );
    }

    #[test]
    fn phishing_hops_and_verdicts() {
        let p = parse(PHISH).unwrap();
        let hop = |from: &str, by: &str, with: &str, ip: &str, date: &str| Hop {
            from: Some(from.to_owned()),
            by: Some(by.to_owned()),
            with: Some(with.to_owned()),
            ip: Some(ip.to_owned()),
            date: Some(date.to_owned()),
        };
        assert_eq!(
            p.received,
            [
                hop(
                    "mail.micros0ft-support.com",
                    "mx1.contoso.com",
                    "ESMTPS",
                    "185.220.101.47",
                    "2024-05-14T09:12:03Z"
                ),
                hop(
                    "webmail.bulk-notify.ru",
                    "mail.micros0ft-support.com",
                    "ESMTPSA",
                    "45.142.212.100",
                    "2024-05-14T11:11:58+02:00"
                ),
                hop(
                    "127.0.0.1",
                    "webmail.bulk-notify.ru",
                    "SMTP",
                    "127.0.0.1",
                    "2024-05-14T12:11:52+03:00"
                ),
            ]
        );
        assert_eq!(
            p.authentication,
            Authentication {
                spf: Some("fail".to_owned()),
                dkim: Some("none".to_owned()),
                dmarc: Some("fail".to_owned()),
            }
        );
    }

    #[test]
    fn phishing_bodies_urls_and_deceptive_link() {
        let p = parse(PHISH).unwrap();
        let lure = "https://login.microsoftonline.com@m365-verify.top/owa/auth.php?user=j.doe%40contoso.com&id=8841";
        assert_eq!(
            p.text_body.as_deref(),
            Some(
                format!(
                    "Dear Jane,\n\nYour Microsoft 365 password for j.doe@contoso.com expires today.\n\
                     To keep access to Outlook, Teams and OneDrive, confirm your current\n\
                     password within 24 hours:\n\n{lure}\n\n\
                     If you do not confirm, your mailbox will be suspended.\n\n\
                     Microsoft 365 Security Team\n"
                )
                .as_str()
            )
        );
        // The href (with `&amp;` decoded) is the same lure as in the text part: listed once.
        assert_eq!(
            p.urls,
            [
                lure,
                "https://login.microsoftonline.com/common/reset",
                "https://privacy.microsoft.com/en-us/privacystatement",
                "https://m365-verify.top/t/open.gif?id=8841",
            ]
        );
        assert_eq!(
            p.deceptive_links,
            [DeceptiveLink {
                text: "https://login.microsoftonline.com/common/reset".to_owned(),
                href: lure.to_owned(),
            }]
        );
    }

    #[test]
    fn phishing_attachment_hash() {
        // sha256sum of the attachment decoded with `base64 -d`.
        let p = parse(PHISH).unwrap();
        assert_eq!(
            p.attachments,
            [Attachment {
                name: Some("Invoice_8841.html".to_owned()),
                content_type: "text/html".to_owned(),
                size: 804,
                sha256: "f2ee667d98c2bdae9e03167ba5e260711faf40caf9f59e2fbd3c424334964f93"
                    .to_owned(),
            }]
        );
    }

    #[test]
    fn attachments_hash_the_sent_bytes_not_a_charset_conversion() {
        // Hashes from `sha256sum` on `printf 'Caf\xe9 na\xefve\n'` (ISO-8859-1) and on
        // the 22-byte empty ZIP archive.
        let raw = "From: a@example.com\r\n\
            To: b@example.com\r\n\
            Subject: files\r\n\
            Content-Type: multipart/mixed; boundary=XX\r\n\
            \r\n\
            --XX\r\n\
            Content-Type: text/plain; charset=us-ascii\r\n\
            \r\n\
            see attached\r\n\
            --XX\r\n\
            Content-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Disposition: attachment; filename=notes.txt\r\n\
            Content-Transfer-Encoding: base64\r\n\
            \r\n\
            Q2Fm6SBuYe92ZQo=\r\n\
            --XX\r\n\
            Content-Type: application/zip; name=\"empty.zip\"\r\n\
            Content-Transfer-Encoding: base64\r\n\
            \r\n\
            UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\r\n\
            --XX--\r\n";
        let p = parse(raw).unwrap();
        assert_eq!(
            p.attachments,
            [
                Attachment {
                    name: Some("notes.txt".to_owned()),
                    content_type: "text/plain".to_owned(),
                    size: 11,
                    sha256: "47b28cd93f3024491cad9738d165253871e471644e4771978f68d17e853d25c1"
                        .to_owned(),
                },
                Attachment {
                    name: Some("empty.zip".to_owned()),
                    content_type: "application/zip".to_owned(),
                    size: 22,
                    sha256: "8739c76e681f900923b900c9df0ef75cf421d39cabb54650c4b9ad19b6a76d85"
                        .to_owned(),
                },
            ]
        );
        assert_eq!(p.text_body.as_deref(), Some("see attached"));
    }

    #[test]
    fn legitimate_bulk_mail_bouncing_to_a_subdomain_is_no_domain_mismatch() {
        let raw = "Return-Path: <bounces+123@em.example.com>\n\
            Authentication-Results: mx.contoso.com; spf=pass smtp.mailfrom=em.example.com;\n \
            dkim=pass header.d=example.com; dmarc=pass header.from=example.com\n\
            Authentication-Results: relay.contoso.com; spf=fail; dkim=fail; dmarc=fail\n\
            From: Example News <news@example.com>\n\
            To: j.doe@contoso.com\n\
            Subject: Your May newsletter\n\
            Date: sometime last week\n\
            \n\
            Read it at https://www.example.com/news/may. Thanks!\n";
        let p = parse(raw).unwrap();
        assert_eq!(
            p.mismatches,
            Mismatches {
                return_path_address: true,
                findings: vec![
                    "Return-Path `bounces+123@em.example.com` differs from the From address \
                     `news@example.com`"
                        .to_owned()
                ],
                ..Mismatches::default()
            }
        );
        // The topmost Authentication-Results wins.
        assert_eq!(
            p.authentication,
            Authentication {
                spf: Some("pass".to_owned()),
                dkim: Some("pass".to_owned()),
                dmarc: Some("pass".to_owned()),
            }
        );
        assert_eq!(p.urls, ["https://www.example.com/news/may"]);
        assert!(p.received.is_empty());
        assert_eq!(p.date, None);
        assert!(p.attachments.is_empty());
    }

    #[test]
    fn spf_falls_back_to_received_spf_and_missing_verdicts_are_null() {
        let raw = "Received-SPF: SoftFail (mx.contoso.com: domain of transitioning example.net)\n\
            From: a@example.net\n\
            Subject: hi\n\
            \n\
            body\n";
        let p = parse(raw).unwrap();
        assert_eq!(
            p.authentication,
            Authentication {
                spf: Some("softfail".to_owned()),
                dkim: None,
                dmarc: None,
            }
        );
        assert_eq!(p.mismatches, Mismatches::default());
    }

    #[test]
    fn html_only_message_gets_a_text_body_and_entity_decoded_links() {
        let raw = "From: \"PayPal\" <service@paypa1-secure.com>\n\
            Subject: Account limited\n\
            Content-Type: text/html; charset=utf-8\n\
            \n\
            <p>Restore access: <a href='http://paypa1-secure.com/r?a=1&amp;b=2'>www.paypal.com</a>\n\
            or <a href=\"https://www.paypal.com/help\">https://www.paypal.com/help</a>\n\
            <a href=\"#top\">top</a> <a href=\"mailto:x@y.z\">write us</a></p>\n";
        let p = parse(raw).unwrap();
        assert_eq!(
            p.urls,
            [
                "http://paypa1-secure.com/r?a=1&b=2",
                "https://www.paypal.com/help"
            ]
        );
        assert_eq!(
            p.deceptive_links,
            [DeceptiveLink {
                text: "www.paypal.com".to_owned(),
                href: "http://paypa1-secure.com/r?a=1&b=2".to_owned(),
            }]
        );
        assert_eq!(
            p.text_body.as_deref().map(str::trim),
            Some("Restore access: www.paypal.com or https://www.paypal.com/help top write us")
        );
    }

    #[test]
    fn malformed_input_is_invalid_input() {
        for (raw, expected) in [
            ("", "`raw` is empty"),
            ("  \n ", "`raw` is empty"),
            (
                "just some text pasted by mistake\nno headers here\n",
                "`raw` is not an RFC 5322 message",
            ),
            ("X-Custom: 1\n\nbody\n", "`raw` is not an RFC 5322 message"),
        ] {
            let e = parse(raw).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{raw:?}");
            assert!(
                e.message().starts_with(expected),
                "{raw:?}: {}",
                e.message()
            );
        }
    }

    #[test]
    fn action_runs_through_the_sdk() {
        let input = serde_json::json!({ "raw": PHISH }).to_string();
        let out = wasp_sdk::run::<EmailParse>("parse", &input).unwrap();
        let out: serde_json::Value = serde_json::from_str(&out.output).unwrap();
        assert_eq!(out["authentication"]["dmarc"], "fail");
        assert_eq!(out["mismatches"]["reply_to_domain"], true);
        assert_eq!(out["received"][0]["ip"], "185.220.101.47");
        assert_eq!(out["attachments"][0]["name"], "Invoice_8841.html");

        let e = wasp_sdk::run::<EmailParse>("parse", r#"{"raw":"x","extra":1}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert!(
            e.message().contains("unknown field `extra`"),
            "{}",
            e.message()
        );
    }
}
