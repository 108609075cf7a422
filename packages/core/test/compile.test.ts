// loadableModuleUrl (src/internal/compile.ts) and `occam run` (src/cli.ts, src/internal/ts-hooks.ts).
// Fixtures: test/fixtures/compile/. The worker and CLI tests use Node directly, outside vitest's
// module runner; the CLI and cross-thread tests run the built dist/ (`pnpm test` builds first).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../src/errors.js';
import { CACHE_FORMAT, cacheDir, compileStats, forgetCompiledModules, loadableModuleUrl } from '../src/internal/compile.js';

const coreDir = fileURLToPath(new URL('..', import.meta.url));
const repoRoot = join(coreDir, '..', '..');
const fixtures = join(coreDir, 'test', 'fixtures', 'compile');
const fixture = (name: string): string => join(fixtures, name);
const WATCHDOG_MS = 20_000;
const esbuildVersion = (createRequire(import.meta.url)('esbuild/package.json') as { version: string }).version;

/** The file Node's ESM resolver picks for `ts-results-es` from core, as a URL. */
const tsResultsUrl = ((): string => {
  const dir = realpathSync(join(coreDir, 'node_modules', 'ts-results-es'));
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { exports: { '.': { import: string } } };
  return pathToFileURL(join(dir, pkg.exports['.'].import)).href;
})();

/** Resolves with the worker's first message; a hang becomes a failure naming what was awaited. */
function firstMessage(worker: Worker, what: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const watchdog = setTimeout(() => reject(new Error(`${what}: no reply within ${WATCHDOG_MS} ms`)), WATCHDOG_MS);
    const settle = (): void => clearTimeout(watchdog);
    worker.once('message', (m: unknown) => (settle(), resolve(m)));
    worker.once('error', (e) => (settle(), reject(e)));
    worker.once('exit', (code) => (settle(), reject(new Error(`${what}: worker exited (${code}) before replying`))));
  });
}

let scratch = '';
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'occam-compile-test-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** A fresh directory with entry.ts, which imports './lib' (lib/index.ts: `where` names it). */
function libImporter(prefix: string): { dir: string; entry: string } {
  const dir = mkdtempSync(join(scratch, prefix));
  const entry = join(dir, 'entry.ts');
  mkdirSync(join(dir, 'lib'));
  writeFileSync(join(dir, 'lib', 'index.ts'), "export const where: string = 'lib/index.ts';\n");
  writeFileSync(entry, "import { where } from './lib';\nexport const from: string = where;\n");
  return { dir, entry };
}

describe('loadableModuleUrl', () => {
  it('bundles a TS module with a relative TS import and a package import, importable here', async () => {
    const url = await loadableModuleUrl(fixture('module.ts'));
    expect(url).toMatch(/^file:\/\/.*\.mjs$/);
    const mod = (await import(url)) as typeof import('./fixtures/compile/module.js');
    expect(mod.describe(3)).toEqual({ greeting: 'HELLO, MODULE', checked: 'ok 3' });
    // import.meta names the source file, not the cache file.
    expect(mod.metaUrl).toBe(pathToFileURL(fixture('module.ts')).href);
  });

  it('rewrites the package import to the absolute file URL Node resolves, and keeps it external', async () => {
    const code = readFileSync(new URL(await loadableModuleUrl(fixture('module.ts'))), 'utf8');
    expect(code).toContain(`from ${JSON.stringify(tsResultsUrl)}`);
    expect(code).not.toMatch(/from\s*["']ts-results-es["']/);
    expect(code).not.toContain('class Ok'); // not bundled: one module instance per thread
    // Relative TS is compiled in; the source map points back at it.
    expect(code).toContain('hello, ${name}');
    expect(code).toMatch(/\/\/# sourceMappingURL=data:application\/json;base64,/);
  });

  it('runs in a fresh worker started from the compiled URL, sharing the package instance', async () => {
    const url = await loadableModuleUrl(fixture('worker-entry.ts'));
    const worker = new Worker(new URL(url), { workerData: { tsResultsUrl } });
    try {
      const reply = await firstMessage(worker, 'worker-entry.ts');
      expect(reply).toEqual({
        greeting: 'hello, worker',
        value: 42,
        sameModuleInstance: true,
        metaUrl: pathToFileURL(fixture('worker-entry.ts')).href,
      });
    } finally {
      await worker.terminate();
    }
  });

  it('answers a second call from the memo and a new run from disk, without rebuilding', async () => {
    const url = await loadableModuleUrl(fixture('module.ts'));
    const output = fileURLToPath(url);
    const written = statSync(output).mtimeMs;
    const before = compileStats();

    expect(await loadableModuleUrl(fixture('module.ts'))).toBe(url);
    const afterMemo = compileStats();
    expect(afterMemo.memoHits).toBe(before.memoHits + 1);
    expect(afterMemo.builds).toBe(before.builds);

    forgetCompiledModules(); // as a new run would start
    expect(await loadableModuleUrl(fixture('module.ts'))).toBe(url);
    const afterDisk = compileStats();
    expect(afterDisk.diskHits).toBe(before.diskHits + 1);
    expect(afterDisk.builds).toBe(before.builds);
    expect(statSync(output).mtimeMs).toBe(written);
    expect(output.startsWith(cacheDir())).toBe(true);
  });

  it('uses a manifest only if it was made for this entry (its name is a 64-bit hash)', async () => {
    const url = await loadableModuleUrl(fixture('module.ts'));
    const manifests = readdirSync(cacheDir())
      .filter((f) => f.endsWith('.json'))
      .map((f) => join(cacheDir(), f))
      .filter((f) => {
        const m = JSON.parse(readFileSync(f, 'utf8')) as { format?: number; input?: string; entry?: string };
        // (Older formats have no entry; other Node or esbuild versions name theirs in it.)
        return m.format === CACHE_FORMAT && m.input === fixture('module.ts') && typeof m.entry === 'string' && m.entry.includes(`\0${esbuildVersion}\0${process.versions.node}\0`);
      });
    expect(manifests).toHaveLength(1);
    const manifest = manifests[0]!;
    const stored = JSON.parse(readFileSync(manifest, 'utf8')) as { entry: string };
    // As if another input's entry had hashed to the same name.
    writeFileSync(manifest, JSON.stringify({ ...stored, entry: stored.entry.replace('module.ts', 'other.ts') }));
    forgetCompiledModules();
    const before = compileStats();
    expect(await loadableModuleUrl(fixture('module.ts'))).toBe(url); // same sources: same bundle name
    expect(compileStats().builds).toBe(before.builds + 1);
    expect(compileStats().diskHits).toBe(before.diskHits);
    expect((JSON.parse(readFileSync(manifest, 'utf8')) as { entry: string }).entry).toBe(stored.entry);
  });

  it('notices edits to the module and to its dependencies, written back to back', async () => {
    const entry = join(scratch, 'edited.ts');
    const dep = join(scratch, 'dep.ts');
    writeFileSync(dep, 'export const base: number = 1;\n');
    writeFileSync(entry, "import { base } from './dep.js';\nexport const value: number = base * 10;\n");
    const first = await loadableModuleUrl(entry);
    expect(((await import(first)) as { value: number }).value).toBe(10);

    // Same size, written at once: where file timestamps are as coarse as a kernel tick, only
    // the content check of a recently modified (racy) file tells the two apart.
    writeFileSync(dep, 'export const base: number = 2;\n');
    const second = await loadableModuleUrl(entry);
    expect(second).not.toBe(first);
    expect(((await import(second)) as { value: number }).value).toBe(20);

    writeFileSync(entry, "import { base } from './dep.js';\nexport const value: number = base * 100;\n");
    const third = await loadableModuleUrl(entry);
    expect(new Set([first, second, third]).size).toBe(3);
    expect(((await import(third)) as { value: number }).value).toBe(200);

    // Back to an earlier content: the content-named bundle is found again, not rebuilt.
    writeFileSync(dep, 'export const base: number = 1;\n');
    writeFileSync(entry, "import { base } from './dep.js';\nexport const value: number = base * 10;\n");
    expect(await loadableModuleUrl(entry)).toBe(first);
  });

  it('notices a new file that changes what an import resolves to, and nothing else added beside', async () => {
    const { dir, entry } = libImporter('resolution-');
    const first = await loadableModuleUrl(entry);
    expect(((await import(first)) as { from: string }).from).toBe('lib/index.ts');

    // A log beside the sources: still fresh, no rebuild.
    const builds = compileStats().builds;
    writeFileSync(join(dir, 'run.log'), 'started\n');
    expect(await loadableModuleUrl(entry)).toBe(first);
    expect(compileStats().builds).toBe(builds);

    // lib.ts now wins the resolution of './lib' (esbuild tries ./lib.ts before ./lib/index.ts).
    writeFileSync(join(dir, 'lib.ts'), "export const where: string = 'lib.ts';\n");
    const second = await loadableModuleUrl(entry);
    expect(second).not.toBe(first);
    expect(((await import(second)) as { from: string }).from).toBe('lib.ts');

    // A module that changes no resolution is rebuilt to the same bytes: the same URL.
    writeFileSync(join(dir, 'unrelated.ts'), 'export const x = 1;\n');
    expect(await loadableModuleUrl(entry)).toBe(second);
    expect(compileStats().builds).toBe(builds + 2);
  });

  it('notices a new module beside a file whose directory was quiet when recorded (its stamp, not a listing, is checked)', async () => {
    const { dir, entry } = libImporter('quiet-');
    const past = new Date(Date.now() - 60_000); // long enough ago that the stamps are trusted
    for (const f of [join(dir, 'lib', 'index.ts'), entry, join(dir, 'lib'), dir]) utimesSync(f, past, past);
    const first = await loadableModuleUrl(entry);
    expect(await loadableModuleUrl(entry)).toBe(first); // (a hit on stamps alone)
    writeFileSync(join(dir, 'lib.ts'), "export const where: string = 'lib.ts';\n");
    const second = await loadableModuleUrl(entry);
    expect(((await import(second)) as { from: string }).from).toBe('lib.ts');
  });

  it('notices a module that now wins over the JavaScript an import found, and a package.json edit', async () => {
    const dir = mkdtempSync(join(scratch, 'resolution-js-'));
    const entry = join(dir, 'entry.ts');
    mkdirSync(join(dir, 'sub'));
    mkdirSync(join(dir, 'p'));
    writeFileSync(join(dir, 'sub', 'thing.js'), "export const who = 'sub/thing.js';\n");
    writeFileSync(join(dir, 'p', 'one.js'), "export const which = 'one';\n");
    writeFileSync(join(dir, 'p', 'two.js'), "export const which = 'two';\n");
    writeFileSync(join(dir, 'p', 'package.json'), JSON.stringify({ main: 'one.js' }));
    writeFileSync(entry, "import { who } from './sub/thing';\nimport { which } from './p';\nexport const got: string = `${who} ${which}`;\n");
    const got = async (): Promise<string> => ((await import(await loadableModuleUrl(entry))) as { got: string }).got;
    expect(await got()).toBe('sub/thing.js one');
    // esbuild prefers thing.ts to thing.js for './sub/thing'.
    writeFileSync(join(dir, 'sub', 'thing.ts'), "export const who: string = 'sub/thing.ts';\n");
    expect(await got()).toBe('sub/thing.ts one');
    writeFileSync(join(dir, 'p', 'package.json'), JSON.stringify({ main: 'two.js' }));
    expect(await got()).toBe('sub/thing.ts two');
    // A main in a folder below, JavaScript or TypeScript.
    mkdirSync(join(dir, 'p', 'lib'));
    writeFileSync(join(dir, 'p', 'lib', 'three.js'), "export const which = 'three';\n");
    writeFileSync(join(dir, 'p', 'lib', 'four.ts'), "export const which: string = 'four';\n");
    writeFileSync(join(dir, 'p', 'package.json'), JSON.stringify({ main: 'lib/three.js' }));
    expect(await got()).toBe('sub/thing.ts three');
    writeFileSync(join(dir, 'p', 'package.json'), JSON.stringify({ main: 'lib/four.ts' }));
    expect(await got()).toBe('sub/thing.ts four');
    writeFileSync(join(dir, 'p', 'package.json'), JSON.stringify({ main: 'lib/three.js' }));
    expect(await got()).toBe('sub/thing.ts three');
  });

  it("notices an edit of the package.json of a package a bare import resolved into (its main), the file it found unchanged", async () => {
    const dir = mkdtempSync(join(scratch, 'bare-'));
    const pkg = join(dir, 'node_modules', 'fixture-pkg');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'one.js'), "export const which = 'one';\n");
    writeFileSync(join(pkg, 'two.js'), "export const which = 'two';\n");
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'fixture-pkg', type: 'module', main: 'one.js' }));
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, "import { which } from 'fixture-pkg';\nexport const got: string = which;\n");
    const got = async (): Promise<string> => ((await import(await loadableModuleUrl(entry))) as { got: string }).got;
    expect(await got()).toBe('one');
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'fixture-pkg', type: 'module', main: 'two.js' }));
    expect(await got()).toBe('two');
  });

  it('notices a package installed nearer to the module than the one its bare import was resolved to', async () => {
    const dir = mkdtempSync(join(scratch, 'nearer-'));
    const install = (at: string, which: string): void => {
      const pkg = join(at, 'node_modules', '@fixture', 'pkg');
      mkdirSync(pkg, { recursive: true });
      writeFileSync(join(pkg, 'index.js'), `export const which = '${which}';\n`);
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@fixture/pkg', type: 'module', main: 'index.js' }));
    };
    install(dir, 'hoisted');
    mkdirSync(join(dir, 'app', 'src'), { recursive: true });
    const entry = join(dir, 'app', 'src', 'entry.ts');
    writeFileSync(entry, "import { which } from '@fixture/pkg';\nexport const got: string = which;\n");
    const got = async (): Promise<string> => ((await import(await loadableModuleUrl(entry))) as { got: string }).got;
    expect(await got()).toBe('hoisted');
    install(join(dir, 'app'), 'nearer'); // app/node_modules/@fixture/pkg now shadows the hoisted one
    expect(await got()).toBe('nearer');
  });

  it('notices a tsconfig.json appearing above a module that had none (its options change the output)', async () => {
    const dir = mkdtempSync(join(scratch, 'tsconfig-'));
    mkdirSync(join(dir, 'src'));
    const entry = join(dir, 'src', 'entry.ts');
    // With useDefineForClassFields (the default here), a field is defined and the base's setter
    // is not called; without it, the field is assigned, through the setter.
    writeFileSync(
      entry,
      "let seen = 'defined';\nclass Base { set x(_v: number) { seen = 'assigned'; } }\nclass A extends Base { x = 1; }\nnew A();\nexport const how: string = seen;\n",
    );
    const how = async (): Promise<string> => ((await import(await loadableModuleUrl(entry))) as { how: string }).how;
    expect(await how()).toBe('defined');
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { useDefineForClassFields: false } }));
    expect(await how()).toBe('assigned');
  });

  it('notices an edit of a file its tsconfig.json extends: a relative one, and one in a package', async () => {
    const dir = mkdtempSync(join(scratch, 'extends-'));
    const entry = join(dir, 'entry.ts');
    // (As in the test above: the output says whether class fields are defined or assigned.)
    writeFileSync(
      entry,
      "let seen = 'defined';\nclass Base { set x(_v: number) { seen = 'assigned'; } }\nclass A extends Base { x = 1; }\nnew A();\nexport const how: string = seen;\n",
    );
    const how = async (): Promise<string> => ((await import(await loadableModuleUrl(entry))) as { how: string }).how;
    const options = (define: boolean): string => JSON.stringify({ compilerOptions: { useDefineForClassFields: define } });
    // Written as people write them: comments, a trailing comma, `extends` without `.json`.
    writeFileSync(join(dir, 'tsconfig.json'), '{\n  // shared settings\n  "extends": "./configs/base", /* relative */\n}\n');
    mkdirSync(join(dir, 'configs'));
    writeFileSync(join(dir, 'configs', 'base.json'), options(false));
    expect(await how()).toBe('assigned');
    writeFileSync(join(dir, 'configs', 'base.json'), options(true));
    expect(await how()).toBe('defined');
    // A package's config, found in node_modules (its package.json names the file), extended last.
    const pkg = join(dir, 'node_modules', '@fixture', 'tsconfig');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@fixture/tsconfig', tsconfig: 'strict.json' }));
    writeFileSync(join(pkg, 'strict.json'), options(false));
    writeFileSync(join(dir, 'tsconfig.json'), '{ "extends": ["./configs/base.json", "@fixture/tsconfig",], }');
    expect(await how()).toBe('assigned');
    writeFileSync(join(pkg, 'strict.json'), options(true));
    expect(await how()).toBe('defined');
  });

  it('gives each file its own import.meta, however it is written, and reports errors at the lines the file has', async () => {
    const dir = mkdtempSync(join(scratch, 'meta-'));
    const entry = join(dir, 'entry.ts');
    writeFileSync(join(dir, 'spaced.ts'), 'export const spaced: string = import\n  /* a comment */ .meta.url;');
    writeFileSync(entry, "import { spaced } from './spaced.js';\nexport const both: string[] = [import.meta.url, spaced];\n");
    const { both } = (await import(await loadableModuleUrl(entry))) as { both: string[] };
    expect(both).toEqual([pathToFileURL(entry).href, pathToFileURL(join(dir, 'spaced.ts')).href]);
    const unclosed = join(dir, 'unclosed.ts');
    writeFileSync(unclosed, 'export function f(): string {\n  return import.meta.url;\n');
    const e = await loadableModuleUrl(unclosed).catch((x: unknown) => x as Error);
    expect((e as Error).message).toContain('unclosed.ts:3:1:');
  });

  it('does not trust what changed while it was being built: the next look builds again', async () => {
    const dir = mkdtempSync(join(scratch, 'during-'));
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, "export const v: number = 1;\n");
    // A folder dated after the build began stands for one a module was added to meanwhile (its
    // listing, taken after the build, may show a module the build did not see).
    const later = Date.now() / 1000 + 3600;
    utimesSync(dir, later, later);
    const builds = compileStats().builds;
    await loadableModuleUrl(entry);
    await loadableModuleUrl(entry);
    expect(compileStats().builds).toBe(builds + 2); // each build found its folder changed during it
    const earlier = Date.now() / 1000 - 3600;
    utimesSync(dir, earlier, earlier);
    await loadableModuleUrl(entry); // (its stamp changed: built again, now trusted)
    await loadableModuleUrl(entry);
    await loadableModuleUrl(entry);
    expect(compileStats().builds).toBe(builds + 3);
  });

  it('builds once for concurrent calls in one thread', async () => {
    const entry = join(scratch, 'concurrent.ts');
    writeFileSync(entry, 'export const n: number = 7;\n');
    const before = compileStats().builds;
    const urls = await Promise.all([1, 2, 3, 4].map(() => loadableModuleUrl(entry)));
    expect(new Set(urls).size).toBe(1);
    expect(compileStats().builds).toBe(before + 1);
  });

  it('compiles files that are nothing but type syntax, and code written under type syntax', async () => {
    const empty = await import(await loadableModuleUrl(fixture('types-only.ts')));
    expect(Object.keys(empty)).toEqual([]);
    const typed = (await import(await loadableModuleUrl(fixture('type-syntax.ts')))) as {
      swapped: unknown;
      totalSize: unknown;
    };
    expect(typed.swapped).toEqual([2, 1]);
    expect(typed.totalSize).toBe(5);
  });

  it('accepts a URL object, a file: URL string and a path; JavaScript comes back as it is', async () => {
    const path = fixture('module.ts');
    const url = await loadableModuleUrl(path);
    expect(await loadableModuleUrl(pathToFileURL(path))).toBe(url);
    expect(await loadableModuleUrl(pathToFileURL(path).href)).toBe(url);
    expect(await loadableModuleUrl(fileURLToPath(tsResultsUrl))).toBe(tsResultsUrl);
  });

  it('rejects a missing file, a relative path, another scheme and a module that does not compile', async () => {
    const broken = join(scratch, 'broken.ts');
    writeFileSync(broken, 'export const x: number = ;\n');
    for (const input of [
      fixture('missing.ts'),
      pathToFileURL(fixture('missing.ts')),
      'fixtures/compile/module.ts',
      'https://example.com/module.ts',
      new URL('data:text/javascript,export default 1'),
      join(coreDir, 'package.json'), // exists, but a worker cannot load it
      fixtures, // a directory
      broken,
    ]) {
      const attempt = loadableModuleUrl(input);
      await expect(attempt, String(input)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(attempt, String(input)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
  });
});

describe('built dist/', () => {
  beforeAll(() => {
    // `pnpm test` builds first; build here only when run alone on a fresh checkout, since a
    // rebuild deletes dist/ under any test file running beside this one.
    if (!existsSync(join(coreDir, 'dist', 'cli.js'))) {
      const built = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: repoRoot, timeout: WATCHDOG_MS });
      if (built.status !== 0) throw new Error(`build failed: ${String(built.stderr)}`);
    }
  });

  /** Runs `occam <args>` with a watchdog; a hang fails with a message. */
  function occam(...args: string[]): { status: number | null; stdout: string; stderr: string } {
    const bin = join(coreDir, 'bin', 'occam.mjs');
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: repoRoot, encoding: 'utf8', timeout: WATCHDOG_MS });
    if (r.error !== undefined) throw new Error(`occam ${args.join(' ')} did not finish: ${r.error.message}`);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it('occam run executes a TypeScript program with its arguments', () => {
    const r = occam('run', fixture('cli-main.ts'), 'one', 'two words');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      file: 'cli-main.ts',
      args: ['one', 'two words'],
      greeting: 'hello, cli',
      value: 21,
    });
  });

  it('occam run prints a top-level error with a stack mapped to the .ts line, and exits 1', () => {
    const r = occam('run', fixture('cli-throws.ts'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('cli-throws.ts:7');
  });

  it('occam with an unknown or missing command prints usage and exits 2', () => {
    for (const args of [['frobnicate'], [], ['run']]) {
      const r = occam(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).not.toBe('');
    }
  });

  it('threads compiling one module at once agree on one intact bundle', async () => {
    const entry = join(scratch, 'shared.ts');
    writeFileSync(entry, 'export const answer: number = 42;\n');
    const compileJs = pathToFileURL(join(coreDir, 'dist', 'internal', 'compile.js')).href;
    // All workers park on one word until every one is ready, then start compiling together.
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { gate, compileJs, entry } = workerData;
      import(compileJs).then(async ({ loadableModuleUrl }) => {
        parentPort.postMessage('ready');
        Atomics.wait(gate, 0, 0);
        const url = await loadableModuleUrl(entry);
        parentPort.postMessage({ url, answer: (await import(url)).answer });
      }).catch((e) => parentPort.postMessage({ error: String(e && e.stack) }));`;
    const workers = [1, 2, 3, 4].map(() => new Worker(source, { eval: true, workerData: { gate, compileJs, entry } }));
    try {
      await Promise.all(workers.map((w) => firstMessage(w, 'compile worker ready')));
      const replies = workers.map((w) => firstMessage(w, 'compile worker result'));
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      const results = (await Promise.all(replies)) as { url?: string; answer?: number; error?: string }[];
      expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
      expect(new Set(results.map((r) => r.url)).size).toBe(1);
      expect(results.map((r) => r.answer)).toEqual([42, 42, 42, 42]);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });
});
