// Native tests of the severity-score app: `npm test` runs app.js in Node, with the
// WIT imports resolved to the stand-ins in wit-stubs/ (see wit-stubs/register.js).
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import { describe, run } from './app.js';
import { logs, settings, reset } from './wit-stubs/host.js';

beforeEach(reset);

/** Run `score` on `input` and return the decoded output. */
function score(input) {
  const outcome = run({ action: 'score', input: JSON.stringify(input) });
  assert.equal(outcome.pathway, undefined);
  return JSON.parse(outcome.output);
}

/** Run `action` on the raw `text`, which must fail; return the step error. */
function errorOf(text, action = 'score') {
  try {
    run({ action, input: text });
  } catch (e) {
    assert.ok(e.payload, `a StepError, not ${e}`);
    return e.payload;
  }
  assert.fail(`\`${action}\` accepted ${text}`);
}

test('a phishing email with a known-bad domain and a spoofed sender is critical', () => {
  const out = score({ reputation_scores: [90, 40, 60], indicator_count: 8, sender_mismatch: true });
  assert.deepEqual(
    out.factors.map((f) => [f.factor, f.points]),
    [['reputation', 54], ['corroboration', 5], ['volume', 8], ['sender-mismatch', 15]],
  );
  assert.equal(out.score, 82);
  assert.equal(out.severity, 'critical');
  assert.deepEqual(logs.at(-1), { level: 'info', message: 'scored', fields: { score: '82', severity: 'critical' } });
});

test('nothing known is low, and the optional fields default', () => {
  const out = score({ reputation_scores: [] });
  assert.equal(out.score, 0);
  assert.equal(out.severity, 'low');
});

test('the score is capped at 100', () => {
  const out = score({ reputation_scores: [100, 100, 100, 100, 100], indicator_count: 50, sender_mismatch: true });
  assert.equal(out.score, 100);
});

test('the thresholds setting overrides some levels', () => {
  settings.set('thresholds', '{"high": 40}');
  const out = score({ reputation_scores: [70] });
  assert.equal(out.score, 42);
  assert.equal(out.severity, 'high');
  assert.deepEqual(out.thresholds, { medium: 25, high: 40, critical: 75 });
});

test('bad thresholds are misconfigured', () => {
  for (const [value, why] of [
    ['{"high": 90}', 'gives medium 25, high 90, critical 75, which do not rise'],
    ['{"severe": 10}', 'names the level `severe`, which is none of medium, high, critical'],
    ['[1]', 'is an array, not an object'],
    ['{"high": "40"}', 'sets `high` to "40", not a number from 0 to 100'],
  ]) {
    settings.set('thresholds', value);
    const e = errorOf('{"reputation_scores": []}');
    assert.equal(e.code, 'misconfigured');
    assert.equal(e.message, `the setting \`thresholds\` ${why}; expected e.g. {"medium": 25, "high": 50, "critical": 75}`);
    assert.equal(e.retryable, false);
  }
});

test('bad input names what is wrong', () => {
  for (const [text, message] of [
    ['[]', 'input of `score` must be an object, not an array'],
    ['{}', 'input of `score` is missing the field `reputation_scores`'],
    ['{"reputation_scores": [], "extra": 1}', 'input of `score` has unknown field `extra`; expected `reputation_scores`, `indicator_count`, `sender_mismatch`'],
    ['{"reputation_scores": {}}', '`reputation_scores` must be an array of numbers, not an object'],
    ['{"reputation_scores": [1, "90"]}', '`reputation_scores[1]` must be a number, not a string'],
    ['{"reputation_scores": [101]}', '`reputation_scores[0]` is 101; scores are 0 to 100'],
    ['{"reputation_scores": [], "indicator_count": -1}', '`indicator_count` must be a whole number of 0 or more, not -1'],
    ['{"reputation_scores": [], "indicator_count": 1.5}', '`indicator_count` must be a whole number of 0 or more, not 1.5'],
    ['{"reputation_scores": [], "sender_mismatch": "yes"}', '`sender_mismatch` must be true or false, not a string'],
  ]) {
    const e = errorOf(text);
    assert.equal(e.code, 'invalid-input', text);
    assert.equal(e.message, message);
  }
  assert.match(errorOf('{').message, /^input of `score` is not JSON: /);
  assert.equal(errorOf('{}', 'toString').message, 'unknown action `toString`; this app offers: score');
});

test('describe names the app and gives JSON schemas', () => {
  const info = describe();
  assert.equal(info.name, 'severity-score');
  assert.match(info.name, /^[a-z0-9_-]{1,64}$/);
  assert.deepEqual(info.actions.map((a) => a.name), ['score']);
  const [action] = info.actions;
  assert.deepEqual(JSON.parse(action.inputSchema).required, ['reputation_scores']);
  assert.equal(JSON.parse(action.outputSchema).properties.severity.enum.length, 4);
  assert.deepEqual(action.pathways, []);
});
