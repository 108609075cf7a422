// The packages as a project that installs them sees them (node_modules/@occam/* as an install
// lays them out): the declarations it type-checks against (packages/*/types/, made by
// scripts/build.mjs), with TypeScript's common strict settings rather than this repo's, and
// against nothing else; and a TypeScript process module of its own that runs with no build.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const WATCHDOG_MS = 60_000;
let project = '';

/** The consumer's code: every package's main API, with the types it should infer checked. */
const consumer = `
import { chan, spawn, par, processModule, ChannelClosedError, type Sender, type Receiver } from '@occam/core';
import { selectAsync, recv, send, after } from '@occam/select';
import { Pool } from '@occam/pool';

export function producer(out: Sender<number>, n: number): number {
  for (let i = 0; i < n; i++) out.send(i);
  out.close();
  return n;
}

export async function run(): Promise<number> {
  const ch = chan<number>(4, { name: 'numbers' });
  const typed = processModule<typeof import('./consumer.js')>(new URL('./consumer.js', import.meta.url));
  const p = typed.spawn('producer', [ch.sender(), 3]);
  const q = spawn(new URL('./consumer.js', import.meta.url), 'producer', [chan<number>(1).sender(), 0]);
  let sum = 0;
  for await (const v of ch) sum += v;
  const r = await ch.recvResultAsync();
  if (r.isErr() && r.error instanceof ChannelClosedError) sum += 0;
  const joined: number = await p.join({ ref: false });
  await par(q);
  const rx: Receiver<number> = ch.receiver();
  const picked = await selectAsync([recv(rx), send(chan<string>(1).sender(), 'x'), after(10)]);
  if (picked.index === 0 && picked.ok) sum += picked.value;
  void picked;
  const pool = new Pool<{ inc: (x: number) => number }>({ module: new URL('./tasks.js', import.meta.url), size: 1 });
  const y: number = await pool.run('inc', 1);
  const proc = pool.spawn('inc', 2);
  proc.unref();
  await pool.close();
  return sum + joined + y;
}
`;

beforeAll(() => {
  // (`pnpm test` builds first; building here would rewrite dist/ under the files running beside.)
  if (!existsSync(join(repoRoot, 'packages/pool/types/index.d.ts'))) {
    throw new Error('packages/*/types/ is missing: run the build (node scripts/build.mjs) first');
  }
  project = mkdtempSync(join(tmpdir(), 'occam-consumer-'));
  const modules = join(project, 'node_modules');
  mkdirSync(join(modules, '@occam'), { recursive: true });
  mkdirSync(join(modules, '@types'), { recursive: true });
  // As an install lays them out: the packages (with their own dependencies beside them).
  for (const name of ['core', 'select', 'pool']) symlinkSync(join(repoRoot, 'packages', name), join(modules, '@occam', name), 'dir');
  symlinkSync(join(repoRoot, 'node_modules/@types/node'), join(modules, '@types/node'), 'dir');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] },
      files: ['consumer.ts'],
    }),
  );
  writeFileSync(join(project, 'consumer.ts'), consumer);
  // A program of the project's own, in JavaScript, spawning a TypeScript process of its own
  // that uses a channel it is given.
  writeFileSync(
    join(project, 'proc.ts'),
    `import type { Sender } from '@occam/core';\nexport function double(x: number, out: Sender<number>): number {\n  out.send(x * 2);\n  return x;\n}\n`,
  );
  writeFileSync(
    join(project, 'main.mjs'),
    `import { chan, spawn } from '@occam/core';\nconst ch = chan(1);\nconst p = spawn(new URL('./proc.ts', import.meta.url), 'double', [21, ch.sender()]);\nconsole.log(JSON.stringify({ sent: await ch.recvAsync(), returned: await p.join() }));\n`,
  );
});

afterAll(() => {
  if (project !== '') rmSync(project, { recursive: true, force: true });
});

describe('the installed packages', () => {
  it('run a TypeScript process module of the project with no build, caching it in its node_modules', () => {
    const r = spawnSync(process.execPath, ['main.mjs'], { cwd: project, encoding: 'utf8', timeout: WATCHDOG_MS });
    expect(r.signal, `the program hung:\n${r.stderr}`).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ sent: 42, returned: 21 });
    expect(existsSync(join(project, 'node_modules/.cache/occam'))).toBe(true);
  });

  it('a strict project type-checks against types/, reading none of the TypeScript sources', () => {
    const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', project, '--listFiles'], { encoding: 'utf8', timeout: WATCHDOG_MS });
    expect(r.error, 'tsc did not finish').toBeUndefined();
    const files = r.stdout.split('\n').filter((l) => l.includes('/packages/'));
    expect(r.status, r.stdout).toBe(0);
    expect(files.filter((f) => f.includes('/src/'))).toEqual([]);
    for (const name of ['core', 'select', 'pool']) {
      expect(files.some((f) => f.endsWith(`/packages/${name}/types/index.d.ts`)), name).toBe(true);
    }
  });

  it('a type error in the consumer is reported (the check is real)', () => {
    writeFileSync(join(project, 'consumer.ts'), `${consumer}\nexport const wrong: string = chan<number>().len;\n`);
    try {
      const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
      const r = spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8', timeout: WATCHDOG_MS });
      expect(r.status).not.toBe(0);
      expect(r.stdout).toContain("Type 'number' is not assignable to type 'string'");
    } finally {
      writeFileSync(join(project, 'consumer.ts'), consumer);
    }
  });
});
