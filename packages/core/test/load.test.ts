// How built core loads (dist/load.cjs, src/internal/load.ts): one instance per thread whichever
// entries a program imports, and V8's code cache beside the bundle, kept by the main thread.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

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


describe('built core', () => {
  it('is one instance per thread, whichever entries import it: on the main thread and in a process', () => {
    // (Run as `node file`, as the build's own first load is: no other code cache is written.)
    const out = run([join(coreDir, 'test', 'fixtures', 'entries-main.mjs')], coreDir);
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
     * `node [options] <script>`; what became of its code cache there (and what `extra` printed).
     */
    const load = ({ worker = false, options = [] as string[], env = {} as Record<string, string>, extra = '' } = {}): string => {
      const script = join(dir, 'probe.cjs');
      writeFileSync(
        script,
        worker
          ? `const { Worker } = require('node:worker_threads');
             const w = new Worker(${JSON.stringify(`require('node:worker_threads').parentPort.postMessage(require(${JSON.stringify(join(dir, 'load.cjs'))})[Symbol.for('occam.codeCache')])`)}, { eval: true });
             w.once('message', (m) => { console.log(m); void w.terminate(); });`
          : `const core = require('./load.cjs'); console.log([core[Symbol.for('occam.codeCache')], ${extra || "''"}].join(' ').trim());`,
      );
      return run([...options, script], dir, env);
    };
    /** Replaces what follows the cache's first line with `f` of it. */
    const damage = (f: (payload: Buffer) => Buffer): void => {
      const data = readFileSync(cache());
      const end = data.indexOf(10) + 1;
      writeFileSync(cache(), Buffer.concat([data.subarray(0, end), f(Buffer.from(data.subarray(end)))]));
    };
    const core = (): string => join(dir, 'core.cjs');

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'occam-load-test-'));
      copyFileSync(join(dist, 'load.cjs'), join(dir, 'load.cjs'));
    });
    // Each test starts from core.cjs as built, and no cache.
    beforeEach(() => {
      for (const f of readdirSync(dir)) if (f !== 'load.cjs') rmSync(join(dir, f), { recursive: true, force: true });
      copyFileSync(join(dist, 'core.cjs'), core());
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('is written by the main thread when there is none, then used, by workers too', () => {
      expect(caches()).toEqual([]);
      expect(load()).toBe('written');
      const firstLine = readFileSync(cache(), 'latin1').split('\n')[0]!;
      expect(firstLine.startsWith(readFileSync(core(), 'latin1').split('\n')[0]!)).toBe(true);
      expect(firstLine).toContain(` ${process.version} ${process.arch} `);
      expect(load()).toBe('used');
      expect(load({ worker: true })).toBe('used');
    });

    it('is not written by a worker', () => {
      expect(load({ worker: true })).toBe('none');
      expect(caches()).toEqual([]);
    });

    it('is one per set of Node options (a program given with -e or -pe is not one), the latest eight kept', () => {
      expect(load()).toBe('written');
      const plain = cache();
      expect(load({ options: ['--max-old-space-size=300'] })).toBe('written');
      expect(caches()).toHaveLength(2);
      expect(load({ options: ['--max-old-space-size=300'] })).toBe('used');
      expect(load({ env: { NODE_OPTIONS: '--max-old-space-size=301' } })).toBe('written');
      expect(load()).toBe('used');
      expect(caches()).toHaveLength(3);
      // The program text of -e / -pe is not an option: such programs share the plain one.
      for (const [i, flag] of ['-e', '-pe', '-pe'].entries()) {
        const status = `require(${JSON.stringify(join(dir, 'load.cjs'))})[Symbol.for('occam.codeCache')] + ' ${i}'`;
        expect(run(flag === '-e' ? ['-e', `console.log(${status})`] : [flag, status], dir)).toBe(`used ${i}`);
      }
      expect(caches()).toHaveLength(3);
      for (let i = 0; i < 6; i++) expect(load({ options: [`--max-old-space-size=${400 + i}`] })).toBe('written');
      expect(caches()).toHaveLength(8);
      expect(caches()).not.toContain(basename(plain)); // among the oldest
    });

    it('made for another build of core.cjs, or before core.cjs was edited in place, is made again', () => {
      expect(load()).toBe('written');
      expect(load()).toBe('used');
      const source = readFileSync(core(), 'latin1');
      // Edited in place, its length and first line kept (V8 checks no more than the length): the
      // new code runs, from a new cache.
      const edited = source.replace('MAX_CAPACITY = 1 << 20;', 'MAX_CAPACITY = 1 << 10;');
      expect(edited).not.toBe(source);
      expect(edited.length).toBe(source.length);
      writeFileSync(core(), edited);
      const capacity = "require('./load.cjs').index.MAX_CAPACITY";
      expect(load({ extra: capacity })).toBe('written 1024');
      expect(load({ extra: capacity })).toBe('used 1024');
      // Another build: its first line names it.
      writeFileSync(core(), source.replace(/^(\/\/ occam core build )[0-9a-f]{16}/, `$1${'f'.repeat(16)}`));
      expect(load()).toBe('written');
      expect(readFileSync(cache(), 'latin1').split('\n')[0]).toContain('f'.repeat(16));
      expect(load()).toBe('used');
    });

    it('damaged or cut short is never given to V8 (a release build may crash on it), and is made again', () => {
      expect(load()).toBe('written');
      for (const [what, f] of [
        ['63 bytes zeroed', (p: Buffer) => p.fill(0, 64 * 1000 + 1, 64 * 1001)],
        ['one byte changed', (p: Buffer) => (p.writeUInt8(p.readUInt8(77_777) ^ 0x10, 77_777), p)],
        ['a 4 KiB block zeroed', (p: Buffer) => p.fill(0, 40_960, 45_056)],
        ['one byte short', (p: Buffer) => p.subarray(0, p.length - 1)],
        ['eight bytes short', (p: Buffer) => p.subarray(0, p.length - 8)],
        ['bytes added', (p: Buffer) => Buffer.concat([p, Buffer.alloc(16, 1)])],
      ] as const) {
        damage(f);
        expect(load(), what).toBe('written');
        expect(load(), what).toBe('used');
      }
    });

    it('that V8 refuses is made again', () => {
      expect(load()).toBe('written');
      // Whole by its first line (length and hash), but not V8's: as if made by another Node.
      const data = readFileSync(cache());
      const header = data.subarray(0, data.indexOf(10)).toString('latin1');
      const payload = Buffer.alloc(1000, 7);
      let h = 0x811c9dc5;
      for (let i = 0; i < payload.length; i += 4) h = Math.imul(h ^ payload.readInt32LE(i), 0x01000193);
      const forged = header.replace(/ \d+ [0-9a-f]{8}$/, ` ${payload.length} ${(h >>> 0).toString(16).padStart(8, '0')}`);
      writeFileSync(cache(), Buffer.concat([Buffer.from(`${forged}\n`, 'latin1'), payload]));
      expect(load()).toBe('written');
      expect(load()).toBe('used');
    });

    it('that cannot be written is done without, leaving nothing behind', () => {
      expect(load()).toBe('written');
      const path = cache();
      rmSync(path);
      mkdirSync(path); // (running as root, a read-only directory would not stop the write)
      expect(load()).toBe('none');
      expect(readdirSync(dir).sort()).toEqual(['core.cjs', 'load.cjs', basename(path), 'probe.cjs'].sort());
    });

    it('is not used with OCCAM_CODE_CACHE=0, nor while source maps are on (core frames then map to its sources)', () => {
      expect(load({ env: { OCCAM_CODE_CACHE: '0' } })).toBe('off');
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
