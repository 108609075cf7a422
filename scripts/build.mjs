// Builds every package's src/ into dist/. Workers load the built files: Node 20 cannot load
// TypeScript in a worker.
//
// Each package is bundled with code splitting: one file per entry (what package.json exports,
// the worker entries, and the few internal files that are loaded by URL), the code they share in
// chunks beside them. Every entry imports the same chunks, so a thread still has one instance of
// each module (one runtime, one Channel class); and a worker loads a handful of files instead of
// the whole module graph one file at a time (this halves a worker's start).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

/** Entries beyond package.json's exports: worker entries, and files loaded by URL or by tests. */
const extraEntries = {
  core: ['worker-host.ts', 'pool-worker.ts', 'cli.ts', 'internal/ts-hooks.ts', 'internal/compile.ts', 'internal/codec.ts'],
  pool: [],
  select: [],
};

/** The source files behind a package's exports (./dist/x.js ← src/x.ts). */
function exportedEntries(dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  return Object.values(pkg.exports ?? {})
    .map((e) => (typeof e === 'string' ? e : e.default))
    .filter((p) => typeof p === 'string' && p.startsWith('./dist/') && p.endsWith('.js'))
    .map((p) => p.slice('./dist/'.length, -'.js'.length) + '.ts');
}

await Promise.all(
  Object.entries(extraEntries).map(async ([name, extra]) => {
    const dir = join(root, 'packages', name);
    const src = join(dir, 'src');
    const out = join(dir, 'dist');
    rmSync(out, { recursive: true, force: true });
    const entries = [...new Set([...exportedEntries(dir), ...extra])];
    for (const e of entries) if (!existsSync(join(src, e))) throw new Error(`build: ${name} has no src/${e}`);
    await build({
      entryPoints: entries.map((e) => join(src, e)),
      outdir: out,
      outbase: src,
      bundle: true,
      splitting: true,
      // Other packages stay external (@occam/pool runs on @occam/core's files, not a copy; esbuild
      // is loaded only to compile), but ts-results-es is bundled: it is twenty small files that
      // cost a worker ~10 ms to resolve and load one by one.
      external: ['@occam/*', 'esbuild'],
      chunkNames: 'chunks/[name]-[hash]',
      // Classes keep their names (`NotSendableError`, not the `_NotSendableError` esbuild makes of
      // a class that names itself in its body): errors show and cross threads by name.
      keepNames: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'linked',
      logLevel: 'warning',
    });
  }),
);

// The supervisor thread shares no module with any other thread (only the heap), and starts
// beside the first process workers: it is one CommonJS file, so that it loads without the ESM
// loader (half a worker's start) and competes with them as little as it can.
await build({
  entryPoints: [join(root, 'packages/core/src/supervisor.ts')],
  outfile: join(root, 'packages/core/dist/supervisor.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
});

// Code moves between entries and chunks as the bundling sees fit: every file a built module
// names relative to itself (`new URL('./x.js', import.meta.url)`) must exist beside it.
for (const name of Object.keys(extraEntries)) {
  const out = join(root, 'packages', name, 'dist');
  const files = (function walk(dir) {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : [],
    );
  })(out);
  for (const file of files) {
    for (const [, rel] of readFileSync(file, 'utf8').matchAll(/new URL\(\s*"(\.[^"]*\.c?js)",\s*import\.meta\.url\s*\)/g)) {
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
