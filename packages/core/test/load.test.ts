// How built core loads (dist/load.cjs, src/internal/load.ts): one instance per thread whichever
// entries a program imports, and V8's code cache beside the bundle, kept by the main thread.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const coreDir = fileURLToPath(new URL('..', import.meta.url));
const dist = join(coreDir, 'dist');
const WATCHDOG_MS = 20_000;

/** Runs Node with `args` in `cwd` (a watchdog ends a hang) and returns what it printed; it must exit 0. */
function run(args: string[], cwd: string, env: Record<string, string> = {}): string {
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: WATCHDOG_MS, env: { ...process.env, NODE_OPTIONS: '', ...env } });
  if (r.error !== undefined) throw new Error(`node did not finish: ${r.error.message}`);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim();
}

/** Runs `code` (an ES module) in a fresh Node process in `cwd`; what it printed. */
const node = (code: string, cwd: string): string => run(['--input-type=module', '-e', code], cwd);

describe('built core', () => {
  it('is one instance per thread, whichever entries import it: on the main thread and in a process', () => {
    const fixture = JSON.stringify(new URL('./fixtures/entries.mjs', import.meta.url).href);
    const out = node(
      `
      import { spawn } from '@occam/core';
      const { entriesShareCore } = await import(${fixture});
      const here = await entriesShareCore();
      const there = await spawn(new URL(${fixture}), 'entriesShareCore', []).join();
      console.log(JSON.stringify({ here, there }));`,
      coreDir,
    );
    const expected = { sameCurrentTask: true, poolWorker: 'InvalidArgumentError', selectKit: 'InvalidArgumentError' };
    expect(JSON.parse(out)).toEqual({ here: expected, there: expected });
  });

  describe('code cache', () => {
    let dir = '';
    /** The cache files in the copy of core, by name. */
    const caches = (): string[] => readdirSync(dir).filter((f) => /^core\.cjs\.[0-9a-f]{8}\.v8cache$/.test(f));
    /** The one cache file there. */
    const cache = (): string => {
      const all = caches();
      expect(all).toHaveLength(1);
      return join(dir, all[0]!);
    };
    /**
     * Loads the copy of core in `dir` in a fresh process (in a worker too if `worker`) run as
     * `node <script> ` with `options`; what became of its code cache there.
     */
    const load = ({ worker = false, options = [] as string[], env = {} as Record<string, string> } = {}): string => {
      const script = join(dir, 'probe.cjs');
      writeFileSync(
        script,
        worker
          ? `const { Worker } = require('node:worker_threads');
             const w = new Worker(${JSON.stringify(`require('node:worker_threads').parentPort.postMessage(require(${JSON.stringify(join(dir, 'load.cjs'))})[Symbol.for('occam.codeCache')])`)}, { eval: true });
             w.once('message', (m) => { console.log(m); void w.terminate(); });`
          : `console.log(require('./load.cjs')[Symbol.for('occam.codeCache')]);`,
      );
      return run([...options, script], dir, env);
    };
    /** Replaces the cache's contents after its first line with `f` of them. */
    const damage = (f: (payload: Buffer) => Buffer): void => {
      const data = readFileSync(cache());
      const end = data.indexOf(10) + 1;
      writeFileSync(cache(), Buffer.concat([data.subarray(0, end), f(Buffer.from(data.subarray(end)))]));
    };

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'occam-load-test-'));
      for (const f of ['core.cjs', 'load.cjs']) copyFileSync(join(dist, f), join(dir, f));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('is written by the main thread when there is none, then used, by workers too', () => {
      expect(caches()).toEqual([]);
      expect(load()).toBe('written');
      const firstLine = readFileSync(cache(), 'latin1').split('\n')[0]!;
      expect(firstLine.startsWith(readFileSync(join(dir, 'core.cjs'), 'latin1').split('\n')[0]!)).toBe(true);
      expect(firstLine).toContain(` ${process.version} ${process.arch} `);
      expect(load()).toBe('used');
      expect(load({ worker: true })).toBe('used');
    });

    it('is not written by a worker', () => {
      rmSync(cache());
      expect(load({ worker: true })).toBe('none');
      expect(caches()).toEqual([]);
      expect(load()).toBe('written');
    });

    it('is one per set of Node options, so that programs run with different ones keep theirs', () => {
      const before = cache();
      expect(load({ options: ['--max-old-space-size=300'] })).toBe('written');
      expect(caches()).toHaveLength(2);
      expect(load({ options: ['--max-old-space-size=300'] })).toBe('used');
      expect(load({ env: { NODE_OPTIONS: '--max-old-space-size=301' } })).toBe('written');
      expect(load()).toBe('used');
      for (const f of caches()) if (join(dir, f) !== before) rmSync(join(dir, f));
    });

    it('made for another build of core.cjs, or before core.cjs was edited, is made again', () => {
      expect(load()).toBe('used');
      const file = join(dir, 'core.cjs');
      const source = readFileSync(file, 'latin1');
      try {
        // Another build: its first line names it.
        writeFileSync(file, source.replace(/^(\/\/ occam core build )[0-9a-f]{16}/, `$1${'f'.repeat(16)}`));
        expect(load()).toBe('written');
        expect(readFileSync(cache(), 'latin1').split('\n')[0]).toContain('f'.repeat(16));
        expect(load()).toBe('used');
        // Edited in place, its length kept (V8 checks no more than the length): the new code runs.
        const edited = source.replace('MAX_CAPACITY = 1 << 20;', 'MAX_CAPACITY = 1 << 10;');
        expect(edited).not.toBe(source);
        expect(edited.length).toBe(source.length);
        writeFileSync(file, edited);
        writeFileSync(join(dir, 'cap.cjs'), `console.log(require('./load.cjs')[Symbol.for('occam.codeCache')], require('./load.cjs').index.MAX_CAPACITY);`);
        expect(run([join(dir, 'cap.cjs')], dir)).toBe('written 1024');
        expect(run([join(dir, 'cap.cjs')], dir)).toBe('used 1024');
      } finally {
        writeFileSync(file, source);
        rmSync(join(dir, 'cap.cjs'), { force: true });
      }
      expect(load()).toBe('written');
    });

    it('damaged or cut short is not given to V8 (a release build may crash on it), and is made again', () => {
      for (const [what, f] of [
        ['bytes overwritten', (p: Buffer) => p.fill(0x5a, 64 * 100, 64 * 2000)],
        ['cut short', (p: Buffer) => p.subarray(0, p.length >> 1)],
      ] as const) {
        expect(load(), what).toBe('used');
        damage(f);
        expect(load(), what).toBe('written');
        expect(load(), what).toBe('used');
      }
    });

    it('that V8 refuses is made again', () => {
      // A whole cache of the right length and sample, but not V8's: made as if by another Node.
      const data = readFileSync(cache());
      const end = data.indexOf(10);
      const header = data.subarray(0, end).toString('latin1');
      const payload = Buffer.alloc(data.length - end - 1, 7);
      const hash = header.split(' ').at(-1)!;
      expect(hash).toMatch(/^[0-9a-f]{8}$/);
      let h = 0x811c9dc5;
      for (let i = 0; i < payload.length; i += 64) h = Math.imul(h ^ payload[i]!, 0x01000193);
      const forged = `${header.slice(0, -hash.length)}${(h >>> 0).toString(16).padStart(8, '0')}\n`;
      writeFileSync(cache(), Buffer.concat([Buffer.from(forged, 'latin1'), payload]));
      expect(load()).toBe('written');
      expect(load()).toBe('used');
    });

    it('that cannot be written is done without, leaving nothing behind', () => {
      const path = cache();
      rmSync(path);
      mkdirSync(path); // (running as root, a read-only directory would not stop the write)
      try {
        expect(load()).toBe('none');
        expect(readdirSync(dir).sort()).toEqual(['core.cjs', 'load.cjs', basename(path), 'probe.cjs'].sort());
      } finally {
        rmSync(path, { recursive: true });
      }
    });

    it('is not used with OCCAM_CODE_CACHE=0, nor while source maps are on (core frames then map to its sources)', () => {
      for (const f of caches()) rmSync(join(dir, f));
      expect(load({ env: { OCCAM_CODE_CACHE: '0' } })).toBe('off');
      expect(caches()).toEqual([]);
      expect(load({ options: ['--enable-source-maps'] })).toBe('off');
      expect(caches()).toEqual([]);
      // In the package itself (its source map and sources beside it): a frame inside core.
      const frames = run(
        ['--enable-source-maps', '--input-type=module', '-e', "import { chan } from '@occam/core'; try { chan(-1); } catch (e) { console.log(e.stack); }"],
        coreDir,
      );
      expect(frames).toMatch(/src\/channel\.ts:\d+:\d+/);
    });
  });
});
