"""Native tests: the actions run in CPython, not in a component.

Outside WebAssembly there is no host behind the WIT imports, so the generated
bindings' `log` and `config` functions are replaced by stand-ins that keep the lines
logged and serve settings from a dict. The types are the real generated ones.
`make test` generates the bindings and runs these.
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

import app  # noqa: E402  (after the stand-ins are in place)


def run(action, document):
    outcome = app.WitWorld().run(types.Invocation(action=action, input=json.dumps(document)))
    return json.loads(outcome.output)


def error_of(action, text):
    try:
        app.WitWorld().run(types.Invocation(action=action, input=text))
    except Err as e:
        return e.value
    raise AssertionError(f"`{action}` accepted {text}")


class Greet(unittest.TestCase):
    def setUp(self):
        LOGS.clear()
        SETTINGS.clear()

    def test_greets_with_the_configured_salutation_and_logs(self):
        SETTINGS["salutation"] = "Hi"
        self.assertEqual(run("greet", {"name": "Ada"}), {"greeting": "Hi, Ada!"})
        self.assertEqual(LOGS, [(types.LogLevel.INFO, "greeting someone", {"name": "Ada"})])

    def test_bad_input_is_invalid_input(self):
        for text, message in {
            '{"name": " "}': "`name` is empty",
            '{"name": 7}': "`name` must be a string",
            '{"nme": "Ada"}': "input of `greet` has unknown field `nme`",
        }.items():
            e = error_of("greet", text)
            self.assertEqual(e.code, types.ErrorCode.INVALID_INPUT)
            self.assertEqual(e.message, message)
            self.assertFalse(e.retryable)

    def test_describe_lists_the_action_with_schemas(self):
        info = app.WitWorld().describe()
        self.assertEqual(info.name, "{{name}}")
        self.assertEqual([a.name for a in info.actions], ["greet"])
        self.assertEqual(json.loads(info.actions[0].input_schema)["required"], ["name"])


if __name__ == "__main__":
    unittest.main()
