// How built core loads (dist/load.cjs, src/internal/load.ts): one instance per thread whichever
// entries a program imports, and V8's code cache beside the bundle, kept by the main thread.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const coreDir = fileURLToPath(new URL('..', import.meta.url));
const dist = join(coreDir, 'dist');
const WATCHDOG_MS = 20_000;

/** Runs `code` in a fresh Node process (an ES module, in `cwd`) and returns what it printed. */
function node(code: string, cwd: string): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd, encoding: 'utf8', timeout: WATCHDOG_MS });
  if (r.error !== undefined) throw new Error(`node did not finish: ${r.error.message}`);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim();
}

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
    const cache = (): string => join(dir, 'core.cjs.v8cache');
    /** Loads the copy of core in `dir` in a fresh process (in a worker if `worker`); what became of its code cache. */
    const load = (worker = false): string => {
      const loader = JSON.stringify(join(dir, 'load.cjs'));
      const status = `require(${loader})[Symbol.for('occam.codeCache')]`;
      return node(
        worker
          ? `import { Worker } from 'node:worker_threads';
             const w = new Worker("require('node:worker_threads').parentPort.postMessage(" + ${JSON.stringify(status)} + ")", { eval: true, execArgv: [] });
             w.once('message', (m) => { console.log(m); void w.terminate(); });`
          : `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); console.log(${status});`,
        dir,
      );
    };

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'occam-load-test-'));
      for (const f of ['core.cjs', 'load.cjs']) copyFileSync(join(dist, f), join(dir, f));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('is written by the main thread when there is none, then used', () => {
      expect(existsSync(cache())).toBe(false);
      expect(load()).toBe('written');
      const firstLine = readFileSync(cache(), 'latin1').split('\n')[0];
      expect(firstLine).toBe(`${readFileSync(join(dir, 'core.cjs'), 'utf8').split('\n')[0]} ${process.version} ${process.arch}`);
      expect(load()).toBe('used');
      expect(load(true)).toBe('used');
    });

    it('is not written by a worker', () => {
      rmSync(cache());
      expect(load(true)).toBe('none');
      expect(existsSync(cache())).toBe(false);
      expect(load()).toBe('written');
    });

    it('made for another build of core.cjs, is made again', () => {
      expect(load()).toBe('used');
      const file = join(dir, 'core.cjs');
      const source = readFileSync(file, 'utf8');
      const rebuilt = source.replace(/^(\/\/ occam core build )[0-9a-f]{16}/, `$1${'f'.repeat(16)}`);
      expect(rebuilt).not.toBe(source);
      writeFileSync(file, rebuilt);
      try {
        expect(load()).toBe('written');
        expect(readFileSync(cache(), 'latin1').split('\n')[0]).toContain('f'.repeat(16));
        expect(load()).toBe('used');
      } finally {
        writeFileSync(file, source);
      }
      expect(load()).toBe('written');
    });

    it('that V8 refuses is made again', () => {
      const data = readFileSync(cache());
      const header = data.subarray(0, data.indexOf(10) + 1);
      writeFileSync(cache(), Buffer.concat([header, Buffer.alloc(data.length - header.length, 7)]));
      expect(load()).toBe('written');
      expect(load()).toBe('used');
    });

    it('that cannot be written is done without, leaving nothing behind', () => {
      rmSync(cache());
      mkdirSync(cache()); // (running as root, a read-only directory would not stop the write)
      try {
        expect(load()).toBe('none');
        expect(readdirSync(dir).sort()).toEqual(['core.cjs', 'core.cjs.v8cache', 'load.cjs']);
      } finally {
        rmSync(cache(), { recursive: true });
      }
    });
  });
});
