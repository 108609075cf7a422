// Builds every package's src/ into dist/. Workers load the built files: Node 20 cannot load
// TypeScript in a worker.
//
// @occam/core is one CommonJS bundle, dist/core.cjs, that dist/load.cjs loads once per thread
// with V8's code cache (src/internal/load.ts); each of its entries (what package.json exports,
// and the few files loaded by URL or by tests) is a small ES module that exports its part of
// the bundle. So a thread has one instance of core (one runtime, one Channel class) whichever
// entries it imports, and a worker loads core as one file, without the ESM loader and mostly
// without compiling it (a pool's start on 2 cores is the sum of its workers' starts).
// The other packages are bundled with code splitting: one file per entry, shared code in chunks.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

/** Entries beyond package.json's exports: files loaded by URL or by tests. */
const extraEntries = {
  core: ['pool-worker.ts', 'internal/compile.ts', 'internal/codec.ts'],
  pool: [],
  select: [],
};
/**
 * Core's files that are not part of the bundle: the TypeScript loader hooks (they run on a
 * thread of their own, and load no more than esbuild) and the command line, which registers
 * them before it imports the program.
 */
const standalone = ['register.ts', 'cli.ts', 'internal/ts-hooks.ts'];

/** The source files behind a package's exports (./dist/x.js ← src/x.ts). */
function exportedEntries(dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  return Object.values(pkg.exports ?? {})
    .map((e) => (typeof e === 'string' ? e : e.default))
    .filter((p) => typeof p === 'string' && p.startsWith('./dist/') && p.endsWith('.js'))
    .map((p) => p.slice('./dist/'.length, -'.js'.length) + '.ts');
}

/** The first line of dist/core.cjs, where the build writes a hash of the rest. */
const BUILD_ID_PLACEHOLDER = '0000000000000000';
const BUILD_LINE = `// occam core build ${BUILD_ID_PLACEHOLDER}`;

/** esbuild options every build shares. */
const common = {
  bundle: true,
  // Classes keep their names (`NotSendableError`, not the `_NotSendableError` esbuild makes of
  // a class that names itself in its body): errors show and cross threads by name. The price:
  // every function given a name (`const f = () => …`, an object literal's `f: () => …`) is
  // wrapped in a call that defines its name, ~400 ns each time one is made (against ~5 ns;
  // scratch probe). Code run per operation or per task makes no named closure: it uses
  // methods, module-level functions, or arrows passed straight as arguments (never wrapped).
  keepNames: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
};

/** The name of an entry's part of the core bundle: 'pool-kit.ts' → poolKit, 'internal/codec.ts' → codec. */
const partName = (e) => e.replace(/^.*\//, '').replace(/\.ts$/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());

const coreDir = join(root, 'packages/core');
const coreSrc = join(coreDir, 'src');
const coreOut = join(coreDir, 'dist');
const views = [...new Set([...exportedEntries(coreDir), ...extraEntries.core])].filter((e) => !standalone.includes(e));
const bundled = [...views, 'worker-host.ts'];
for (const e of [...bundled, ...standalone]) if (!existsSync(join(coreSrc, e))) throw new Error(`build: core has no src/${e}`);

/** In the core bundle, internal/loader-import.ts is the loader's import() (see that file). */
const loaderImport = {
  name: 'occam-loader-import',
  setup(b) {
    b.onLoad({ filter: /[\\/]internal[\\/]loader-import\.ts$/ }, () => ({
      contents: 'declare const coreImport: ((url: string) => Promise<unknown>) | undefined;\n' +
        // (Loaded by require, with source maps on, the bundle gets none: it can import() itself.)
        "export const loaderImport = (url: string): Promise<unknown> => (typeof coreImport === 'function' ? coreImport(url) : import(url));",
      loader: 'ts',
    }));
  },
};

await Promise.all([
  ...['pool', 'select'].map(async (name) => {
    const dir = join(root, 'packages', name);
    const src = join(dir, 'src');
    const out = join(dir, 'dist');
    rmSync(out, { recursive: true, force: true });
    const entries = [...new Set([...exportedEntries(dir), ...extraEntries[name]])];
    for (const e of entries) if (!existsSync(join(src, e))) throw new Error(`build: ${name} has no src/${e}`);
    await build({
      ...common,
      entryPoints: entries.map((e) => join(src, e)),
      outdir: out,
      outbase: src,
      splitting: true,
      // Other packages stay external (@occam/pool runs on @occam/core's files, not a copy).
      external: ['@occam/*'],
      chunkNames: 'chunks/[name]-[hash]',
      format: 'esm',
    });
  }),
  (async () => {
    rmSync(coreOut, { recursive: true, force: true });
    // ts-results-es is bundled (twenty small files a worker would resolve and load one by one);
    // esbuild is loaded only to compile.
    await build({
      ...common,
      stdin: {
        contents: bundled.map((e) => `export * as ${partName(e)} from './${e.replace(/\.ts$/, '.js')}';`).join('\n'),
        resolveDir: coreSrc,
        sourcefile: 'core-parts.ts',
        loader: 'ts',
      },
      outfile: join(coreOut, 'core.cjs'),
      external: ['esbuild'],
      format: 'cjs',
      // load.cjs runs the bundle as a function of (exports, require, module, __filename,
      // __dirname, coreImport); `import.meta.url` is the bundle's own URL (dist/core.cjs).
      // Its first line names this build (filled in below): load.cjs keys its code cache on it.
      // Core's modules are ES modules, strict throughout: so is the bundle.
      banner: { js: `${BUILD_LINE}\n'use strict';\nconst __coreUrl = require("node:url").pathToFileURL(__filename).href;` },
      define: { 'import.meta.url': '__coreUrl' },
      plugins: [loaderImport],
    });
    const coreCjs = join(coreOut, 'core.cjs');
    const built = readFileSync(coreCjs, 'utf8');
    if (!built.startsWith(BUILD_LINE)) throw new Error('build: dist/core.cjs does not start with its build line');
    // esbuild writes strings, names and patterns in ASCII; only comments still hold other
    // characters: each UTF-16 unit of theirs becomes '?' (columns hold), and load.cjs reads the
    // file as Latin-1, the quickest way to a string (~1 ms of each thread's start here).
    const rest = built.slice(BUILD_LINE.length).replace(/[^\x00-\x7f]/g, '?');
    const id = createHash('sha256').update(rest).digest('hex').slice(0, BUILD_ID_PLACEHOLDER.length);
    writeFileSync(coreCjs, BUILD_LINE.replace(BUILD_ID_PLACEHOLDER, id) + rest); // (same length: the source map holds)
    // (A CommonJS module written in TypeScript: it assigns module.exports.)
    await build({
      ...common,
      entryPoints: [join(coreSrc, 'internal/load.ts')],
      outfile: join(coreOut, 'load.cjs'),
      format: 'cjs',
      logOverride: { 'commonjs-variable-in-esm': 'silent' },
    });
    await build({
      ...common,
      entryPoints: standalone.map((e) => join(coreSrc, e)),
      outdir: coreOut,
      outbase: coreSrc,
      external: ['esbuild', './register.js'],
      format: 'esm',
    });
  })(),
]);

// The supervisor thread shares no module with any other thread (only the heap), and starts
// beside the first process workers: it is one CommonJS file of its own, so that it loads
// without the ESM loader and competes with them as little as it can.
await build({ ...common, entryPoints: [join(coreSrc, 'supervisor.ts')], outfile: join(coreOut, 'supervisor.cjs'), format: 'cjs' });

// A process worker's entry: core, then the host (src/worker-host.ts).
writeFileSync(
  join(coreOut, 'worker-host.cjs'),
  "'use strict';\n// A process worker's entry (see src/worker-host.ts).\nrequire('./load.cjs').workerHost.startHost();\n",
);

// Each entry of core exports its part of the bundle. The names are read from the bundle loaded
// in a child process (its top level only defines things), which also writes its first code cache.
{
  // (A script file, not -e: the cache it writes is the one for `node program.js`.)
  const lister = join(coreOut, 'list-parts.cjs');
  writeFileSync(lister, `const core = require('./load.cjs'); console.log(JSON.stringify(Object.fromEntries(Object.entries(core).map(([k, v]) => [k, Object.keys(v)]))));\n`);
  const listed = spawnSync(process.execPath, [lister], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  rmSync(lister);
  if (listed.status !== 0) throw new Error(`build: dist/core.cjs did not load: ${listed.stderr}`);
  const parts = JSON.parse(listed.stdout);
  for (const e of views) {
    const names = parts[partName(e)];
    if (names === undefined) throw new Error(`build: dist/core.cjs has no part ${partName(e)}`);
    if (names.includes('default')) throw new Error(`build: src/${e} has a default export, which its view cannot re-export`);
    const file = join(coreOut, e.replace(/\.ts$/, '.js'));
    const loader = relative(dirname(file), join(coreOut, 'load.cjs'));
    // (By require: an import of a CommonJS module would have Node lex its source for export
    // names, which starts a WebAssembly lexer in each thread: ~6 ms of a worker's start.)
    writeFileSync(
      file,
      `// @occam/core's src/${e}: its part of dist/core.cjs (see scripts/build.mjs).\n` +
        `import { createRequire } from 'node:module';\n` +
        `const core = createRequire(import.meta.url)('${loader.startsWith('.') ? loader : `./${loader}`}');\n` +
        `export const { ${names.join(', ')} } = core.${partName(e)};\n`,
    );
  }
}

// Every file a built module names relative to itself (`new URL('./x.js', import.meta.url)`;
// in core's bundle, relative to dist/core.cjs) must exist beside it.
for (const name of Object.keys(extraEntries)) {
  const out = join(root, 'packages', name, 'dist');
  const files = (function walk(dir) {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : /\.c?js$/.test(e.name) ? [join(dir, e.name)] : [],
    );
  })(out);
  for (const file of files) {
    for (const [, rel] of readFileSync(file, 'utf8').matchAll(/new URL\(\s*"(\.[^"]*\.c?js)",\s*(?:import\.meta\.url|__coreUrl)\s*\)/g)) {
      if (!existsSync(join(dirname(file), rel))) throw new Error(`build: ${file} names ${rel}, which is not in dist/`);
    }
  }
}

// Declarations for consumers of the installed packages (types/, what their exports' "types"
// name); in this repo TypeScript reads src/ instead (the "occam-source" condition). Made by tsc
// (esbuild writes none), core first: the others read it through its declarations. Skipped while
// they are newer than every source they come from (a few seconds each).
const tsc = join(root, 'node_modules/typescript/bin/tsc');
/** The latest change under `dir`: a file written, or one added, removed or renamed (its directory). */
function newest(dir) {
  return readdirSync(dir, { withFileTypes: true }).reduce((t, e) => {
    const p = join(dir, e.name);
    return Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }, statSync(dir).mtimeMs);
}
for (const name of ['core', 'select', 'pool']) {
  const dir = join(root, 'packages', name);
  const stamp = join(dir, 'types', '.built');
  const sources = Math.max(
    newest(join(dir, 'src')),
    newest(join(root, 'packages/core/src')),
    statSync(join(dir, 'tsconfig.types.json')).mtimeMs,
    statSync(join(root, 'tsconfig.base.json')).mtimeMs,
  );
  if (existsSync(stamp) && statSync(stamp).mtimeMs > sources) continue;
  rmSync(join(dir, 'types'), { recursive: true, force: true });
  const r = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.types.json')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`build: the declarations of @occam/${name} did not compile`);
  writeFileSync(stamp, '');
}
