/**
 * Imports an ES module by URL: a process's module, a pool's task module. Every import of a
 * module that is not core's own goes through here.
 *
 * A `.mjs` file (every compiled TypeScript module is one) is loaded by `require` where Node can
 * require ES modules (`process.features.require_module`: Node 20.19+ and 22.12+): the same
 * module instance as `import()` gives, without starting the ES loader's asynchronous pipeline,
 * which costs a thread's first `import()` ~5 ms here (against ~1 ms by `require`), in every
 * worker that a pool or a spawn starts. A module graph with top-level await cannot be required
 * (Node says so before it runs any of it): it is imported. Any other file goes to `import()`:
 * a `.js` or `.cjs` file may be CommonJS, which `require` would hand over as `module.exports`
 * where `import()` gives a namespace.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { loaderImport } from './loader-import.js';

let req: NodeJS.Require | undefined;

export async function importModule(url: string): Promise<unknown> {
  if (process.features.require_module === true && /^file:.*\.mjs$/i.test(url)) {
    req ??= createRequire(import.meta.url);
    try {
      return req(fileURLToPath(url));
    } catch (e) {
      // Top-level await, or a file that is not there: the loader says what it says of it.
      const code = (e as { code?: unknown } | null)?.code;
      if (code !== 'ERR_REQUIRE_ASYNC_MODULE' && code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') throw e;
    }
  }
  return loaderImport(url);
}
