// severity-score: turn the signals a triage playbook gathered into one score and a
// severity an analyst (or the next node) can act on.
//
// A wasp app written in JavaScript, built into a WebAssembly component by
// componentize-js against `wit/app.wit` (world `app`). The host calls `describe` once
// when it loads the component and `run` once per step, each time in a fresh instance.
//
// The score (0–100) adds up, and the output lists, these factors:
//
// | factor          | points | why                                                       |
// |-----------------|--------|-----------------------------------------------------------|
// | reputation      | 0–60   | 0.6 × the highest reputation score: the worst indicator   |
// |                 |        | decides most of the severity                              |
// | corroboration   | 0–15   | 5 for each further indicator scored 50 or more (at most 3)|
// | volume          | 0–10   | 1 per indicator, at most 10: kits carry many              |
// | sender-mismatch | 0 or 15| Reply-To or Return-Path on another domain than From       |
//
// The severity is the highest level whose threshold the score reaches: by default
// medium ≥ 25, high ≥ 50, critical ≥ 75, otherwise low. The asset setting `thresholds`
// (a JSON object, e.g. `{"high": 40}`) overrides any of them.

import { log, enabled } from 'wasp:playbook/log@0.1.0';
import { get } from 'wasp:playbook/config@0.1.0';

const NAME = 'severity-score';
const VERSION = '0.1.0';

// A reputation list longer than this is not one alert's indicators but a bulk export
// sent to the wrong node; the step says so instead of scoring it.
const MAX_SCORES = 10000;
const DEFAULT_THRESHOLDS = { medium: 25, high: 50, critical: 75 };
const LEVELS = ['medium', 'high', 'critical'];

/** The error a WIT `result<outcome, step-error>` export throws to fail the step. */
class StepError extends Error {
  constructor(code, message, retryable = false) {
    super(message);
    // componentize-js returns the `payload` of a thrown error as the `err` value.
    this.payload = { code, message, retryable };
  }
}

const invalid = (message) => new StepError('invalid-input', message);

/** The JSON name of a decoded value's type, for error messages. */
function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

/** Log one line into the execution's trace, with structured fields. */
function emit(level, message, fields = {}) {
  log(level, message, Object.entries(fields).map(([key, value]) => ({ key, value: String(value) })));
}

/** Decode and check the input of `score`, naming the first thing that is wrong. */
function readInput(text) {
  let input;
  try {
    input = JSON.parse(text);
  } catch (e) {
    throw invalid(`input of \`score\` is not JSON: ${e.message}`);
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalid(`input of \`score\` must be an object, not ${typeName(input)}`);
  }
  const known = ['reputation_scores', 'indicator_count', 'sender_mismatch'];
  const unknown = Object.keys(input).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw invalid(`input of \`score\` has unknown field \`${unknown[0]}\`; expected ${known.map((k) => `\`${k}\``).join(', ')}`);
  }
  const scores = input.reputation_scores;
  if (scores === undefined) {
    throw invalid('input of `score` is missing the field `reputation_scores`');
  }
  if (!Array.isArray(scores)) {
    throw invalid(`\`reputation_scores\` must be an array of numbers, not ${typeName(scores)}`);
  }
  if (scores.length > MAX_SCORES) {
    throw invalid(`\`reputation_scores\` has ${scores.length} items; at most ${MAX_SCORES} are allowed`);
  }
  scores.forEach((score, index) => {
    if (typeof score !== 'number') {
      throw invalid(`\`reputation_scores[${index}]\` must be a number, not ${typeName(score)}`);
    }
    if (!(score >= 0 && score <= 100)) {
      throw invalid(`\`reputation_scores[${index}]\` is ${score}; scores are 0 to 100`);
    }
  });
  const count = input.indicator_count ?? 0;
  if (!Number.isSafeInteger(count) || count < 0) {
    throw invalid(`\`indicator_count\` must be a whole number of 0 or more, not ${JSON.stringify(count)}`);
  }
  const mismatch = input.sender_mismatch ?? false;
  if (typeof mismatch !== 'boolean') {
    throw invalid(`\`sender_mismatch\` must be true or false, not ${typeName(mismatch)}`);
  }
  return { scores, count, mismatch };
}

/** The thresholds: the defaults, overridden by the asset setting `thresholds`. */
function readThresholds() {
  const text = get('thresholds');
  if (text === undefined || text === null) return { ...DEFAULT_THRESHOLDS };
  const misconfigured = (why) =>
    new StepError('misconfigured', `the setting \`thresholds\` ${why}; expected e.g. {"medium": 25, "high": 50, "critical": 75}`);
  let overrides;
  try {
    overrides = JSON.parse(text);
  } catch (e) {
    throw misconfigured(`is not JSON (${e.message})`);
  }
  if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) {
    throw misconfigured(`is ${typeName(overrides)}, not an object`);
  }
  const thresholds = { ...DEFAULT_THRESHOLDS };
  for (const [level, value] of Object.entries(overrides)) {
    if (!LEVELS.includes(level)) throw misconfigured(`names the level \`${level}\`, which is none of medium, high, critical`);
    if (typeof value !== 'number' || !(value >= 0 && value <= 100)) {
      throw misconfigured(`sets \`${level}\` to ${JSON.stringify(value)}, not a number from 0 to 100`);
    }
    thresholds[level] = value;
  }
  if (!(thresholds.medium < thresholds.high && thresholds.high < thresholds.critical)) {
    throw misconfigured(
      `gives medium ${thresholds.medium}, high ${thresholds.high}, critical ${thresholds.critical}, which do not rise`,
    );
  }
  return thresholds;
}

/** Score the signals: the factors, their sum (capped at 100) and the severity. */
function assess({ scores, count, mismatch }, thresholds) {
  const highest = scores.length > 0 ? Math.max(...scores) : 0;
  const flagged = scores.filter((score) => score >= 50).length;
  const factors = [
    {
      factor: 'reputation',
      points: Math.round(0.6 * highest),
      why: scores.length > 0 ? `highest reputation score ${highest} of ${scores.length}` : 'no reputation scores',
    },
    {
      factor: 'corroboration',
      points: 5 * Math.min(Math.max(flagged - 1, 0), 3),
      why: `${flagged} indicator(s) scored 50 or more`,
    },
    { factor: 'volume', points: Math.min(count, 10), why: `${count} indicator(s) in the alert` },
    {
      factor: 'sender-mismatch',
      points: mismatch ? 15 : 0,
      why: mismatch ? 'the sender domains do not match' : 'the sender domains match',
    },
  ];
  const score = Math.min(100, factors.reduce((sum, f) => sum + f.points, 0));
  const severity = [...LEVELS].reverse().find((level) => score >= thresholds[level]) ?? 'low';
  return { score, severity, factors, thresholds };
}

function score(text) {
  const input = readInput(text);
  const thresholds = readThresholds();
  const result = assess(input, thresholds);
  if (enabled('debug')) {
    for (const f of result.factors) emit('debug', 'factor', { factor: f.factor, points: f.points, why: f.why });
  }
  emit('info', 'scored', { score: result.score, severity: result.severity });
  return result;
}

const SCHEMA = 'https://json-schema.org/draft/2020-12/schema';

const INPUT_SCHEMA = {
  $schema: SCHEMA,
  type: 'object',
  properties: {
    reputation_scores: {
      description: 'Reputation scores (0–100) of the indicators, e.g. indicator-lookup results[*].score.',
      type: 'array',
      items: { type: 'number', minimum: 0, maximum: 100 },
      maxItems: MAX_SCORES,
    },
    indicator_count: {
      description: 'How many indicators the alert or email holds (default 0).',
      type: 'integer',
      minimum: 0,
    },
    sender_mismatch: {
      description: 'Whether Reply-To or Return-Path is on another domain than From (default false).',
      type: 'boolean',
    },
  },
  required: ['reputation_scores'],
  additionalProperties: false,
};

const OUTPUT_SCHEMA = {
  $schema: SCHEMA,
  type: 'object',
  properties: {
    score: { description: 'The score, 0 to 100.', type: 'integer', minimum: 0, maximum: 100 },
    severity: { enum: ['low', 'medium', 'high', 'critical'] },
    factors: {
      description: 'What the score is made of.',
      type: 'array',
      items: {
        type: 'object',
        properties: { factor: { type: 'string' }, points: { type: 'integer' }, why: { type: 'string' } },
        required: ['factor', 'points', 'why'],
      },
    },
    thresholds: {
      description: 'The lowest score of each severity, after the asset setting `thresholds`.',
      type: 'object',
      properties: { medium: { type: 'number' }, high: { type: 'number' }, critical: { type: 'number' } },
      required: LEVELS,
    },
  },
  required: ['score', 'severity', 'factors', 'thresholds'],
};

// A Map, not an object: an action named `toString` must not find Object.prototype's.
const ACTIONS = new Map([
  [
    'score',
    {
      description: 'Score triage signals (reputation, indicator count, sender mismatch) into a severity.',
      inputSchema: INPUT_SCHEMA,
      outputSchema: OUTPUT_SCHEMA,
      handler: score,
    },
  ],
]);

/** The `describe` export of the `app` world. */
export function describe() {
  return {
    name: NAME,
    version: VERSION,
    description: 'Score triage signals into a 0–100 score and a low/medium/high/critical severity.',
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
