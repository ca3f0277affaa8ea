// Native tests: `npm test` runs app.js in Node, with the WIT imports resolved to the
// stand-ins in wit-stubs/ (see wit-stubs/register.js).
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import { describe, run } from './app.js';
import { logs, settings, reset } from './wit-stubs/host.js';

beforeEach(reset);

function errorOf(action, text) {
  try {
    run({ action, input: text });
  } catch (e) {
    assert.ok(e.payload, `a StepError, not ${e}`);
    return e.payload;
  }
  assert.fail(`\`${action}\` accepted ${text}`);
}

test('greets with the configured salutation and logs', () => {
  settings.set('salutation', 'Hi');
  const outcome = run({ action: 'greet', input: '{"name": "Ada"}' });
  assert.deepEqual(JSON.parse(outcome.output), { greeting: 'Hi, Ada!' });
  assert.deepEqual(logs, [{ level: 'info', message: 'greeting someone', fields: { name: 'Ada' } }]);
});

test('bad input is invalid-input', () => {
  for (const [text, message] of [
    ['{"name": " "}', '`name` is empty'],
    ['{"name": 7}', '`name` must be a string'],
    ['{"nme": "Ada"}', 'input of `greet` has unknown field `nme`'],
  ]) {
    assert.deepEqual(errorOf('greet', text), { code: 'invalid-input', message, retryable: false });
  }
});

test('describe lists the action with schemas', () => {
  const info = describe();
  assert.equal(info.name, '{{name}}');
  assert.deepEqual(info.actions.map((a) => a.name), ['greet']);
  assert.deepEqual(JSON.parse(info.actions[0].inputSchema).required, ['name']);
});
