// Runs every numbered lesson in docs/ (docs/NN-*.ts) as a user would, each under a watchdog.
// A lesson passes when it exits 0; a lesson that must fail says so in its header (`expect-exit: N`).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const docs = join(root, 'docs');
const bin = join(root, 'packages/core/bin/occam.mjs');
const watch = join(root, 'scripts/lesson-watch.cjs');
const only = process.argv[2];
const KILL_MS = Number(process.env.OCCAM_LESSON_KILL_MS ?? 60_000);
const REPORT_MS = KILL_MS * 0.75;
const lessons = readdirSync(docs).filter((f) => /^\d\d-.*\.ts$/.test(f) && (!only || f.includes(only))).sort();
// The README's example is run too, from a file beside the lessons (so '@occam/core' resolves).
const readme = /```ts\n([\s\S]*?)```/.exec(readFileSync(join(root, 'README.md'), 'utf8'))?.[1];
if (readme !== undefined && !only) {
  writeFileSync(join(docs, '.readme-example.ts'), readme);
  lessons.push('.readme-example.ts');
}
let failed = 0;
for (const file of lessons) {
  const path = join(docs, file);
  const expectExit = Number(/expect-exit:\s*(\d+)/.exec(readFileSync(path, 'utf8'))?.[1] ?? 0);
  const t0 = performance.now();
  // A lesson still running at REPORT_MS prints what holds it open (lesson-watch.cjs); the
  // watchdog kills it at KILL_MS.
  const env = { ...process.env, OCCAM_LESSON_REPORT_MS: String(REPORT_MS) };
  const r = spawnSync(process.execPath, ['--require', watch, bin, 'run', path], { encoding: 'utf8', timeout: KILL_MS, env });
  const ms = (performance.now() - t0).toFixed(0);
  const ok = r.status === expectExit && r.error === undefined;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${file} (${ms} ms${r.signal ? `, killed by ${r.signal}` : ''})`);
  if (!ok) {
    failed++;
    console.log(`--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}\n--- exit ${r.status}, expected ${expectExit}`);
  }
}
console.log(`${lessons.length - failed}/${lessons.length} lessons passed`);
process.exit(failed === 0 ? 0 : 1);
