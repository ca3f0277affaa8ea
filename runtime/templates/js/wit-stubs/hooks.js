// Node module hooks: map each WIT import of the `app` world to its stand-in module.
const STUBS = {
  'wasp:playbook/log@0.1.0': './log.js',
  'wasp:playbook/config@0.1.0': './config.js',
};

export async function resolve(specifier, context, nextResolve) {
  if (Object.hasOwn(STUBS, specifier)) {
    return { url: new URL(STUBS[specifier], import.meta.url).href, shortCircuit: true };
  }
  if (specifier.startsWith('wasp:')) {
    throw new Error(`no stand-in for the WIT import \`${specifier}\`: the app world imports only log and config`);
  }
  return nextResolve(specifier, context);
}
