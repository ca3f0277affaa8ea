// Stand-in for `wasp:playbook/config@0.1.0`: the settings the test put in `host.js`.
import { settings } from './host.js';

export function get(key) {
  return settings.get(key);
}

export function keys() {
  return [...settings.keys()];
}
