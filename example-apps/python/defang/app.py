"""defang: make indicators safe to paste into tickets, chats and reports, and back.

A wasp app written in Python, built into a WebAssembly component by componentize-py
against `wit/app.wit` (world `app`). The host calls `WitWorld.describe` once when it
loads the component and `WitWorld.run` once per step, each time in a fresh instance.

How an indicator is defanged (the scheme most threat-intelligence reports use, chosen
so that nothing auto-links it and an analyst still reads it at a glance):

| kind     | before                       | after                              |
|----------|------------------------------|------------------------------------|
| url      | http://evil.com/a.php?x=1    | hxxp://evil[.]com/a.php?x=1        |
| url      | https://bob@evil.com:8443/   | hxxps://bob[@]evil[.]com:8443/     |
| domain   | login.evil.com               | login.evil[.]com                   |
| ipv4     | 1.2.3.4 / 1.2.3.4:443        | 1.2.3[.]4 / 1.2.3[.]4:443          |
| cidr     | 10.1.0.0/16                  | 10.1.0[.]0/16                      |
| email    | bob@evil.com                 | bob[@]evil[.]com                   |
| ipv6     | 2001:db8::1                  | 2001:db8::1 (nothing links it)     |

Schemes: http → hxxp, https → hxxps, ftp → fxp, ftps → fxps; any other scheme keeps
its name and its `://` becomes `[://]`. Only the host of a URL is changed: its path
and query stay readable. With the asset setting `dots` = `all`, every dot of a host is
bracketed (`login[.]evil[.]com`) instead of the last one only.

Values that are already defanged are refanged first, so defanging is idempotent.
`refang` undoes this scheme and the common variants (`hXXp`, `h**p`, `fxp`, `(.)`,
`{.}`, `[dot]`, `(at)`, `[:]`).
"""

import ipaddress
import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log, types

NAME = "defang"
VERSION = "0.1.0"

# A ticket holds tens of indicators and a bulk export thousands; past these a caller
# has sent something else by mistake, and the step says so instead of churning.
MAX_VALUES = 10_000
MAX_VALUE_CHARS = 8_192

# --- the scheme ------------------------------------------------------------------

SCHEMES = {"http": "hxxp", "https": "hxxps", "ftp": "fxp", "ftps": "fxps"}

# Defanged spellings and what they stand for, applied in order. The scheme patterns
# run first so that `hxxp[://]` becomes `http://` in one pass.
REFANG = [
    (re.compile(r"\[\s*:\s*\]\s*//|\[\s*://\s*\]|\(\s*://\s*\)"), "://"),
    (re.compile(r"\bh(?:xx|\*\*|__)p(s?)(?=://)", re.IGNORECASE), r"http\1"),
    (re.compile(r"\bfxp(s?)(?=://)", re.IGNORECASE), r"ftp\1"),
    (re.compile(r"\s?[\[\(\{]\s*(?:\.|dot)\s*[\]\)\}]\s?", re.IGNORECASE), "."),
    (re.compile(r"\s?[\[\(\{]\s*(?:@|at)\s*[\]\)\}]\s?", re.IGNORECASE), "@"),
    (re.compile(r"\[\s*:\s*\]"), ":"),
]

URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)$", re.DOTALL)
# One DNS label: letters (any script, for IDNs), digits and inner hyphens.
LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
DOMAIN = re.compile(rf"^(?:{LABEL}\.)+(?:[^\W\d_]{{2,63}}|xn--[a-z0-9-]{{1,59}})\.?$", re.IGNORECASE)
PORT = re.compile(r"^(.*?)(:\d{1,5})?$", re.DOTALL)
EMAIL = re.compile(r"^([^@\s]+)@([^@\s]+)$")


class BadValue(ValueError):
    """A value that is none of the kinds this app knows how to defang."""


def refang(value):
    """Turn every defanged spelling in `value` back into its plain form."""
    for pattern, replacement in REFANG:
        value = pattern.sub(replacement, value)
    return value


def bracket_dots(host, dots):
    """Bracket the last dot of `host`, or every dot when `dots` is `all`."""
    if dots == "all":
        return host.replace(".", "[.]")
    head, dot, tail = host.rpartition(".")
    return f"{head}[.]{tail}" if dot else host


def host_kind(host):
    """`ipv4`, `domain`, or None when `host` is neither."""
    try:
        ipaddress.IPv4Address(host)
        return "ipv4"
    except ValueError:
        pass
    return "domain" if DOMAIN.match(host) else None


def defang_authority(authority, dots):
    """Defang the `user@host:port` part of a URL; an IPv6 literal stays as it is."""
    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        host, port = hostport, ""
    else:
        host, port = PORT.match(hostport).groups()
        host = bracket_dots(host.rstrip("."), dots)
    return f"{userinfo}[@]" * bool(at) + host + (port or "")


def defang_one(value, dots):
    """Defang one indicator; returns `(defanged, kind)` or raises `BadValue`."""
    plain = refang(value.strip())
    url = URL.match(plain)
    if url:
        scheme, authority, rest = url.groups()
        if not authority:
            raise BadValue("is a URL without a host")
        mapped = SCHEMES.get(scheme.lower())
        head = f"{mapped}://" if mapped else f"{scheme}[://]"
        return head + defang_authority(authority, dots) + rest, "url"
    email = EMAIL.match(plain)
    if email:
        local, domain = email.groups()
        if host_kind(domain.rstrip(".")) is None:
            raise BadValue("looks like an email address, but its domain is not a domain name")
        return f"{local}[@]{bracket_dots(domain.rstrip('.'), dots)}", "email"
    try:
        ipaddress.IPv6Address(plain)
        return plain, "ipv6"
    except ValueError:
        pass
    if "/" in plain:
        try:
            network = ipaddress.ip_network(plain, strict=False)
        except ValueError:
            raise BadValue("contains `/` but is not a URL or an IP network") from None
        address, _, prefix = plain.partition("/")
        if network.version == 6:
            return plain, "cidr"
        return f"{bracket_dots(address, dots)}/{prefix}", "cidr"
    host, port = PORT.match(plain).groups()
    kind = host_kind(host.rstrip("."))
    if kind is None:
        raise BadValue("is not a URL, email address, IP address, network or domain name")
    return bracket_dots(host.rstrip("."), dots) + (port or ""), kind


# --- input, output and errors -------------------------------------------------------

def step_error(code, message):
    """The `Err` a WIT `result<outcome, step-error>` export raises to fail the step.

    Bad input and bad settings will fail the same way again, so they are never
    retryable.
    """
    return Err(types.StepError(code=code, message=message, retryable=False))


def invalid(message):
    return step_error(types.ErrorCode.INVALID_INPUT, message)


def type_name(value):
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def read_values(action, text):
    """Decode `{"values": [strings]}`, naming the first thing that is wrong."""
    try:
        document = json.loads(text)
    except ValueError as e:
        raise invalid(f"input of `{action}` is not JSON: {e}") from None
    if not isinstance(document, dict):
        raise invalid(f"input of `{action}` must be an object, not {type_name(document)}")
    unknown = sorted(set(document) - {"values"})
    if unknown:
        raise invalid(f"input of `{action}` has unknown field `{unknown[0]}`; expected only `values`")
    if "values" not in document:
        raise invalid(f"input of `{action}` is missing the field `values`")
    values = document["values"]
    if not isinstance(values, list):
        raise invalid(f"`values` must be an array of strings, not {type_name(values)}")
    if len(values) > MAX_VALUES:
        raise invalid(f"`values` has {len(values)} items; at most {MAX_VALUES} are allowed")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise invalid(f"`values[{index}]` must be a string, not {type_name(value)}")
        if not value.strip():
            raise invalid(f"`values[{index}]` is empty")
        if len(value) > MAX_VALUE_CHARS:
            raise invalid(
                f"`values[{index}]` is {len(value)} characters long; at most {MAX_VALUE_CHARS} are allowed"
            )
    return values


def dots_setting():
    """The asset setting `dots`: `last` (the default) or `all`."""
    dots = config.get("dots")
    if dots is None:
        return "last"
    if dots not in ("last", "all"):
        raise step_error(
            types.ErrorCode.MISCONFIGURED,
            f"the setting `dots` is `{dots}`; it must be `last` or `all`",
        )
    return dots


def emit(level, message, **fields):
    """Log one line into the execution's trace, with structured fields."""
    log.log(level, message, [types.Field(key=k, value=str(v)) for k, v in fields.items()])


# --- actions ---------------------------------------------------------------------------

def defang(text):
    values = read_values("defang", text)
    dots = dots_setting()
    out, kinds = [], []
    for index, value in enumerate(values):
        try:
            defanged, kind = defang_one(value, dots)
        except BadValue as e:
            raise invalid(f"`values[{index}]` (`{value[:200]}`) {e}") from None
        out.append(defanged)
        kinds.append(kind)
    changed = sum(1 for before, after in zip(values, out) if before != after)
    if log.enabled(types.LogLevel.DEBUG):
        for kind in sorted(set(kinds)):
            emit(types.LogLevel.DEBUG, "defanged values by kind", kind=kind, count=kinds.count(kind))
    emit(types.LogLevel.INFO, "defanged values", count=len(out), changed=changed, dots=dots)
    return {"values": out, "kinds": kinds, "count": len(out), "changed": changed}


def refang_action(text):
    values = read_values("refang", text)
    out = [refang(value.strip()) for value in values]
    changed = sum(1 for before, after in zip(values, out) if before != after)
    emit(types.LogLevel.INFO, "refanged values", count=len(out), changed=changed)
    return {"values": out, "count": len(out), "changed": changed}


VALUES_INPUT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "values": {
            "description": "Indicators, one per item: URLs, domains, IPv4/IPv6 addresses, networks, emails.",
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_CHARS},
            "maxItems": MAX_VALUES,
        }
    },
    "required": ["values"],
    "additionalProperties": False,
}

COUNTS = {
    "count": {"description": "How many values there are.", "type": "integer", "minimum": 0},
    "changed": {"description": "How many values differ from the input.", "type": "integer", "minimum": 0},
}

DEFANG_OUTPUT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "values": {"description": "The defanged values, in input order.", "type": "array", "items": {"type": "string"}},
        "kinds": {
            "description": "What each value was, in input order.",
            "type": "array",
            "items": {"enum": ["url", "domain", "ipv4", "ipv6", "cidr", "email"]},
        },
        **COUNTS,
    },
    "required": ["values", "kinds", "count", "changed"],
}

REFANG_OUTPUT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "values": {"description": "The plain values, in input order.", "type": "array", "items": {"type": "string"}},
        **COUNTS,
    },
    "required": ["values", "count", "changed"],
}

ACTIONS = {
    "defang": (
        "Defang indicators (hxxp://, evil[.]com, 1.2.3[.]4, bob[@]evil[.]com) for tickets and chats.",
        VALUES_INPUT,
        DEFANG_OUTPUT,
        defang,
    ),
    "refang": (
        "Turn defanged indicators back into their plain form.",
        VALUES_INPUT,
        REFANG_OUTPUT,
        refang_action,
    ),
}


class WitWorld(wit_world.WitWorld):
    """The component's exports: the `app` world of `wit/app.wit`."""

    def describe(self) -> types.AppInfo:
        return types.AppInfo(
            name=NAME,
            version=VERSION,
            description="Defang indicators for tickets and chats, and refang them.",
            actions=[
                types.ActionInfo(
                    name=name,
                    description=description,
                    input_schema=json.dumps(input_schema),
                    output_schema=json.dumps(output_schema),
                    pathways=[],
                )
                for name, (description, input_schema, output_schema, _) in ACTIONS.items()
            ],
        )

    def run(self, call: types.Invocation) -> types.Outcome:
        action = ACTIONS.get(call.action)
        if action is None:
            raise invalid(f"unknown action `{call.action}`; this app offers: {', '.join(ACTIONS)}")
        output = action[3](call.input)
        return types.Outcome(output=json.dumps(output), pathway=None)
