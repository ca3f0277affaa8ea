// Loaded with `node --import ./wit-stubs/register.js`: outside a component there is no
// host to provide the WIT imports, so `wasp:playbook/*` resolves to the stand-ins here.
import { register } from 'node:module';

register('./hooks.js', import.meta.url);
