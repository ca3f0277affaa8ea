// Stand-in for `wasp:playbook/log@0.1.0`. It checks its arguments as the component's
// bindings would (a wrong level or field there traps the step), then keeps the line.
import { logs } from './host.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

export function log(level, message, fields) {
  if (!LEVELS.includes(level)) throw new TypeError(`log level \`${level}\` is none of ${LEVELS.join(', ')}`);
  if (typeof message !== 'string') throw new TypeError('a log message must be a string');
  for (const field of fields) {
    if (typeof field.key !== 'string' || typeof field.value !== 'string') {
      throw new TypeError(`log fields are {key, value} strings, not ${JSON.stringify(field)}`);
    }
  }
  logs.push({ level, message, fields: Object.fromEntries(fields.map((f) => [f.key, f.value])) });
}

export function enabled(level) {
  if (!LEVELS.includes(level)) throw new TypeError(`log level \`${level}\` is none of ${LEVELS.join(', ')}`);
  return true;
}
