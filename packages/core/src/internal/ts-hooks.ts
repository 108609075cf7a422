/**
 * Node module customization hooks that let the main thread run TypeScript on Node 20
 * (registered by ../register.ts; they run on Node's hooks thread, not the program's).
 *
 * - resolve: TypeScript's NodeNext convention writes `./x.js` for the file `./x.ts`; when the
 *   .js file does not exist, retry with the TypeScript extension.
 * - load: .ts/.mts/.tsx become ES modules and .cts a CommonJS module, through esbuild's
 *   `transform` with an inline source map, so stacks point at TypeScript lines.
 *
 * One file at a time: no bundling here, unlike ./compile.ts for workers, so every module keeps
 * its own URL, `import.meta` and instance. `transform` does not read tsconfig.json; the options
 * that change emitted code (experimentalDecorators, useDefineForClassFields) take esbuild's
 * defaults here, while worker bundles honour them.
 */

import { readFile } from 'node:fs/promises';
import type { LoadHook, ResolveHook } from 'node:module';
import { fileURLToPath } from 'node:url';

/** JavaScript extension in a specifier → the TypeScript extension it may stand for. */
const TS_FOR_JS: Readonly<Record<string, string>> = { '.js': '.ts', '.mjs': '.mts', '.cjs': '.cts', '.jsx': '.tsx' };

const TS_EXTENSION = /\.(?:[cm]?ts|tsx)$/;

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const alternative = tsAlternative(specifier, context.parentURL);
    if (alternative === undefined || (err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    try {
      return await nextResolve(alternative, context);
    } catch {
      throw err; // the message about the file the program named is the useful one
    }
  }
};

export const load: LoadHook = async (url, context, nextLoad) => {
  if (!url.startsWith('file:')) return nextLoad(url, context);
  const path = fileURLToPath(url);
  const ext = TS_EXTENSION.exec(path)?.[0];
  if (ext === undefined) return nextLoad(url, context);
  const commonjs = ext === '.cts';
  const { transform } = await import('esbuild');
  const result = await transform(await readFile(path, 'utf8'), {
    loader: ext === '.tsx' ? 'tsx' : 'ts',
    format: commonjs ? 'cjs' : 'esm',
    platform: 'node',
    // This Node, not plain `node20`: for node20 (20.0) esbuild silently drops import
    // attributes (`with { type: 'json' }`), which Node 20.10+ requires.
    target: `node${process.versions.node}`,
    sourcemap: 'inline',
    // The URL, so Node's stack traces name the file as it names every other module.
    sourcefile: url,
  });
  // Node 20.6+ runs CommonJS from the `source` given here (and sends its require calls through
  // these hooks too); omitting it would make Node read the .cts file as JavaScript.
  return { format: commonjs ? 'commonjs' : 'module', source: result.code, shortCircuit: true };
};

/** `./x.js` → `./x.ts` for relative, absolute and file: specifiers; undefined for any other. */
function tsAlternative(specifier: string, parentURL: string | undefined): string | undefined {
  if (parentURL === undefined) return undefined;
  if (!/^(?:\.{1,2}\/|\/|file:)/.test(specifier)) return undefined; // packages resolve by their exports
  const js = /\.[cm]?jsx?$/.exec(specifier)?.[0];
  const ts = js === undefined ? undefined : TS_FOR_JS[js];
  return js === undefined || ts === undefined ? undefined : specifier.slice(0, -js.length) + ts;
}
