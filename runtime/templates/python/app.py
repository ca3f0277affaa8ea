"""{{name}}: a wasp app in Python.

componentize-py builds this module into a WebAssembly component for the `app` world of
the wasp:playbook WIT contract. The host calls `WitWorld.describe` once when it loads
the component and `WitWorld.run` once per step, each time in a fresh instance. Replace
`greet` with your own actions.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log, types

NAME = "{{name}}"
VERSION = "0.1.0"


def fail(code, message):
    """The `Err` that fails the step with a classified error (a `step-error`).

    Bad input and bad settings fail the same way again, so they are not retryable; a
    transient failure (a remote service down) would pass `retryable=True`.
    """
    return Err(types.StepError(code=code, message=message, retryable=False))


def emit(level, message, **fields):
    """Log one line into the execution's trace, with structured fields."""
    log.log(level, message, [types.Field(key=k, value=str(v)) for k, v in fields.items()])


def greet(text):
    """Greet someone, with the salutation of the bound asset's `salutation` setting."""
    try:
        document = json.loads(text)
    except ValueError as e:
        raise fail(types.ErrorCode.INVALID_INPUT, f"input of `greet` is not JSON: {e}") from None
    if not isinstance(document, dict):
        raise fail(types.ErrorCode.INVALID_INPUT, "input of `greet` must be an object")
    unknown = sorted(set(document) - {"name"})
    if unknown:
        raise fail(types.ErrorCode.INVALID_INPUT, f"input of `greet` has unknown field `{unknown[0]}`")
    name = document.get("name")
    if not isinstance(name, str):
        raise fail(types.ErrorCode.INVALID_INPUT, "`name` must be a string")
    name = name.strip()
    if not name:
        raise fail(types.ErrorCode.INVALID_INPUT, "`name` is empty")
    if len(name) > 100:
        raise fail(types.ErrorCode.INVALID_INPUT, f"`name` is {len(name)} characters long; at most 100 are allowed")
    salutation = config.get("salutation") or "Hello"
    emit(types.LogLevel.INFO, "greeting someone", name=name)
    return {"greeting": f"{salutation}, {name}!"}


ACTIONS = {
    "greet": {
        "description": "Greet someone by name.",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"name": {"description": "Who to greet.", "type": "string", "minLength": 1}},
            "required": ["name"],
            "additionalProperties": False,
        },
        "output_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"greeting": {"type": "string"}},
            "required": ["greeting"],
        },
        "handler": greet,
    },
}


class WitWorld(wit_world.WitWorld):
    """The component's exports: `describe` and `run` of the `app` world."""

    def describe(self) -> types.AppInfo:
        return types.AppInfo(
            name=NAME,
            version=VERSION,
            description="Greets people (a skeleton to replace).",
            actions=[
                types.ActionInfo(
                    name=name,
                    description=action["description"],
                    input_schema=json.dumps(action["input_schema"]),
                    output_schema=json.dumps(action["output_schema"]),
                    pathways=[],
                )
                for name, action in ACTIONS.items()
            ],
        )

    def run(self, call: types.Invocation) -> types.Outcome:
        action = ACTIONS.get(call.action)
        if action is None:
            raise fail(
                types.ErrorCode.INVALID_INPUT,
                f"unknown action `{call.action}`; this app offers: {', '.join(ACTIONS)}",
            )
        return types.Outcome(output=json.dumps(action["handler"](call.input)), pathway=None)
