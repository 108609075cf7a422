/**
 * `node --import @occam/core/register app.ts` runs a TypeScript program on Node 20 (20.6 or
 * later): importing this module registers ./internal/ts-hooks.ts for the main thread. Workers
 * do not need it; spawn compiles their modules (see ./internal/compile.ts).
 */

import * as nodeModule from 'node:module';

/** Set on globalThis once hooks are registered, so two copies of this package register once. */
const REGISTERED = Symbol.for('occam.register.tsHooks');

/** Registers the TypeScript hooks for this thread; a second call does nothing. */
export function registerTypeScriptHooks(): void {
  const global = globalThis as { [REGISTERED]?: true };
  if (global[REGISTERED]) return;
  if (typeof nodeModule.register !== 'function') {
    throw new Error(`running TypeScript needs Node.js 20.6 or later (module.register); this is ${process.version}`);
  }
  nodeModule.register(new URL('./internal/ts-hooks.js', import.meta.url));
  // The hooks emit inline source maps; Node applies them to stacks only when asked.
  process.setSourceMapsEnabled(true);
  global[REGISTERED] = true;
}

registerTypeScriptHooks();
