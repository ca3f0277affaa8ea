// What the stand-ins share with the tests: the lines logged and the asset's settings.
export const logs = [];
export const settings = new Map();

/** Forget the logged lines and the settings, between tests. */
export function reset() {
  logs.length = 0;
  settings.clear();
}
