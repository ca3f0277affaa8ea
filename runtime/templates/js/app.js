// {{name}}: a wasp app in JavaScript.
//
// componentize-js builds this ES module into a WebAssembly component for the `app`
// world of the wasp:playbook WIT contract. The host calls `describe` once when it
// loads the component and `run` once per step, each time in a fresh instance.
// It may import the app's other modules by relative path (`./lib.js`).
// Replace `greet` with your own actions.

import { log } from 'wasp:playbook/log@0.1.0';
import { get } from 'wasp:playbook/config@0.1.0';

const NAME = '{{name}}';
const VERSION = '0.1.0';

/** Thrown to fail the step: componentize-js returns its `payload` as the step-error. */
class StepError extends Error {
  constructor(code, message, retryable = false) {
    super(message);
    this.payload = { code, message, retryable };
  }
}

const invalid = (message) => new StepError('invalid-input', message);

/** Log one line into the execution's trace, with structured fields. */
function emit(level, message, fields = {}) {
  log(level, message, Object.entries(fields).map(([key, value]) => ({ key, value: String(value) })));
}

/** Greet someone, with the salutation of the bound asset's `salutation` setting. */
function greet(text) {
  let input;
  try {
    input = JSON.parse(text);
  } catch (e) {
    throw invalid(`input of \`greet\` is not JSON: ${e.message}`);
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalid('input of `greet` must be an object');
  }
  const unknown = Object.keys(input).filter((key) => key !== 'name');
  if (unknown.length > 0) throw invalid(`input of \`greet\` has unknown field \`${unknown[0]}\``);
  if (typeof input.name !== 'string') throw invalid('`name` must be a string');
  const name = input.name.trim();
  if (name === '') throw invalid('`name` is empty');
  if (name.length > 100) throw invalid(`\`name\` is ${name.length} characters long; at most 100 are allowed`);
  const salutation = get('salutation') ?? 'Hello';
  emit('info', 'greeting someone', { name });
  return { greeting: `${salutation}, ${name}!` };
}

const SCHEMA = 'https://json-schema.org/draft/2020-12/schema';

// A Map, not an object: an action named `toString` must not find Object.prototype's.
const ACTIONS = new Map([
  [
    'greet',
    {
      description: 'Greet someone by name.',
      inputSchema: {
        $schema: SCHEMA,
        type: 'object',
        properties: { name: { description: 'Who to greet.', type: 'string', minLength: 1 } },
        required: ['name'],
        additionalProperties: false,
      },
      outputSchema: {
        $schema: SCHEMA,
        type: 'object',
        properties: { greeting: { type: 'string' } },
        required: ['greeting'],
      },
      handler: greet,
    },
  ],
]);

/** The `describe` export of the `app` world. */
export function describe() {
  return {
    name: NAME,
    version: VERSION,
    description: 'Greets people (a skeleton to replace).',
    actions: [...ACTIONS].map(([name, action]) => ({
      name,
      description: action.description,
      inputSchema: JSON.stringify(action.inputSchema),
      outputSchema: JSON.stringify(action.outputSchema),
      pathways: [],
    })),
  };
}

/** The `run` export of the `app` world: returns an outcome, throws a `StepError`. */
export function run(call) {
  const action = ACTIONS.get(call.action);
  if (action === undefined) {
    throw invalid(`unknown action \`${call.action}\`; this app offers: ${[...ACTIONS.keys()].join(', ')}`);
  }
  return { output: JSON.stringify(action.handler(call.input)), pathway: undefined };
}
