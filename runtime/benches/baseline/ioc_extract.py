"""ioc-extract's `extract` as a process per call: refang, then regular expressions."""
import ipaddress
import json
import re
import sys

REFANG = [
    (re.compile(r"\[:\]//|\[://\]"), "://"),
    (re.compile(r"\bh(?:xx|\*\*|__)p(s?)://", re.I), r"http\1://"),
    (re.compile(r"\s?[\[\(\{]\s*(?:\.|dot)\s*[\]\)\}]\s?", re.I), "."),
    (re.compile(r"\s?[\[\(\{]\s*(?:@|at)\s*[\]\)\}]\s?", re.I), "@"),
]
PATTERNS = {
    "urls": re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`{}|\\^\[\]]+", re.I),
    "emails": re.compile(r"\b[a-z0-9._%+-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b", re.I),
    "ipv4": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    "domains": re.compile(r"\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,23}[a-z0-9]\b", re.I),
    "sha256": re.compile(r"\b[0-9a-f]{64}\b", re.I),
    "sha1": re.compile(r"\b[0-9a-f]{40}\b", re.I),
    "md5": re.compile(r"\b[0-9a-f]{32}\b", re.I),
    "cves": re.compile(r"\bCVE-\d{4}-\d{4,7}\b", re.I),
}

text = json.load(sys.stdin)["text"]
for pattern, replacement in REFANG:
    text = pattern.sub(replacement, text)
out = {}
for kind, pattern in PATTERNS.items():
    seen = []
    for match in pattern.findall(text):
        if kind == "ipv4":
            try:
                ipaddress.IPv4Address(match)
            except ValueError:
                continue
        if match not in seen:
            seen.append(match)
    out[kind] = seen
out["count"] = sum(len(v) for v in out.values())
json.dump(out, sys.stdout)
