"""Native tests of the defang app: its actions run in CPython, not in a component.

The WIT imports (`log`, `config`) have no host outside WebAssembly, so the generated
bindings' functions are replaced by stand-ins that record log lines and serve
settings from a dict. The types are the real generated ones, so a test that passes
here fails to build as a component only if the WIT changed. Run with `make test`
(see ../README.md).
"""

import json
import unittest

from componentize_py_types import Err
from wit_world.imports import config, log, types

LOGS = []
SETTINGS = {}
log.log = lambda level, message, fields: LOGS.append((level, message, {f.key: f.value for f in fields}))
log.enabled = lambda level: True
config.get = SETTINGS.get
config.keys = lambda: sorted(SETTINGS)

import app  # noqa: E402  (after the stand-ins, as the host's imports come first too)


def run(action, document):
    """Run `action` on `document` and return the decoded output."""
    outcome = app.WitWorld().run(types.Invocation(action=action, input=json.dumps(document)))
    assert outcome.pathway is None
    return json.loads(outcome.output)


def error_of(action, text):
    """Run `action` on the raw input `text`, which must fail; return the step error."""
    try:
        app.WitWorld().run(types.Invocation(action=action, input=text))
    except Err as e:
        return e.value
    raise AssertionError(f"`{action}` accepted {text}")


class Defang(unittest.TestCase):
    def setUp(self):
        LOGS.clear()
        SETTINGS.clear()

    def test_every_kind(self):
        out = run("defang", {"values": [
            "evil.com",
            "http://evil.com/a.php?next=b.html",
            "https://bob@login.evil.com:8443/",
            "1.2.3.4",
            "1.2.3.4:443",
            "10.1.0.0/16",
            "bob@evil.com",
            "2001:db8::1",
            "ftp://files.evil.com/x",
            "smb://share.evil.com/c$",
        ]})
        self.assertEqual(out["values"], [
            "evil[.]com",
            "hxxp://evil[.]com/a.php?next=b.html",
            "hxxps://bob[@]login.evil[.]com:8443/",
            "1.2.3[.]4",
            "1.2.3[.]4:443",
            "10.1.0[.]0/16",
            "bob[@]evil[.]com",
            "2001:db8::1",
            "fxp://files.evil[.]com/x",
            "smb[://]share.evil[.]com/c$",
        ])
        self.assertEqual(out["kinds"], ["domain", "url", "url", "ipv4", "ipv4", "cidr", "email", "ipv6", "url", "url"])
        self.assertEqual((out["count"], out["changed"]), (10, 9))
        self.assertIn((types.LogLevel.INFO, "defanged values", {"count": "10", "changed": "9", "dots": "last"}), LOGS)

    def test_idempotent_and_round_trips(self):
        plain = ["https://evil.com/login", "bob@mail.evil.co.uk", "203.0.113.7", "xn--80ak6aa92e.com"]
        once = run("defang", {"values": plain})["values"]
        self.assertEqual(run("defang", {"values": once})["values"], once)
        self.assertEqual(run("refang", {"values": once})["values"], plain)

    def test_all_dots_setting(self):
        SETTINGS["dots"] = "all"
        out = run("defang", {"values": ["http://a.b.evil.com/x.y", "1.2.3.4"]})
        self.assertEqual(out["values"], ["hxxp://a[.]b[.]evil[.]com/x.y", "1[.]2[.]3[.]4"])

    def test_bad_setting_is_misconfigured(self):
        SETTINGS["dots"] = "some"
        e = error_of("defang", '{"values": ["evil.com"]}')
        self.assertEqual(e.code, types.ErrorCode.MISCONFIGURED)
        self.assertEqual(e.message, "the setting `dots` is `some`; it must be `last` or `all`")
        self.assertFalse(e.retryable)

    def test_bad_input_names_what_is_wrong(self):
        cases = {
            "[1]": "input of `defang` must be an object, not an array",
            "{": "input of `defang` is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            "{}": "input of `defang` is missing the field `values`",
            '{"value": []}': "input of `defang` has unknown field `value`; expected only `values`",
            '{"values": "evil.com"}': "`values` must be an array of strings, not a string",
            '{"values": ["evil.com", 7]}': "`values[1]` must be a string, not a number",
            '{"values": ["  "]}': "`values[0]` is empty",
            '{"values": ["hello world"]}':
                "`values[0]` (`hello world`) is not a URL, email address, IP address, network or domain name",
            '{"values": ["999.1.1.1"]}':
                "`values[0]` (`999.1.1.1`) is not a URL, email address, IP address, network or domain name",
            '{"values": ["http:///x"]}': "`values[0]` (`http:///x`) is a URL without a host",
        }
        for text, message in cases.items():
            with self.subTest(text=text):
                e = error_of("defang", text)
                self.assertEqual(e.code, types.ErrorCode.INVALID_INPUT)
                self.assertEqual(e.message, message)

    def test_too_many_values(self):
        e = error_of("defang", json.dumps({"values": ["a.com"] * (app.MAX_VALUES + 1)}))
        self.assertEqual(e.message, "`values` has 10001 items; at most 10000 are allowed")

    def test_unknown_action(self):
        e = error_of("explode", "{}")
        self.assertEqual(e.message, "unknown action `explode`; this app offers: defang, refang")


class Refang(unittest.TestCase):
    def test_common_spellings(self):
        out = run("refang", {"values": ["hXXps[://]evil(.)com/x", "bob[at]corp{.}example", "10.0.0[.]1", "evil [dot] com"]})
        self.assertEqual(out["values"], ["https://evil.com/x", "bob@corp.example", "10.0.0.1", "evil.com"])
        self.assertEqual(out["changed"], 4)


class Describe(unittest.TestCase):
    def test_names_and_schemas(self):
        info = app.WitWorld().describe()
        self.assertEqual((info.name, info.version), ("defang", "0.1.0"))
        self.assertEqual([a.name for a in info.actions], ["defang", "refang"])
        for action in info.actions:
            self.assertEqual(json.loads(action.input_schema)["required"], ["values"])
            self.assertEqual(json.loads(action.output_schema)["type"], "object")
            self.assertEqual(action.pathways, [])


if __name__ == "__main__":
    unittest.main()
