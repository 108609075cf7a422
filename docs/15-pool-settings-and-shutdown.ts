/**
 * Lesson 15 — a pool's settings, what its failures look like, and its three ways to end.
 *
 * What it does: sets up a pool with every setting, and runs tasks that show what each one does:
 * an initializer that every worker runs first, a queue that refuses work past its bound, a task
 * timed out (one that notices, and one that never looks: its worker is stopped), a task whose
 * worker dies, a map that takes results as they finish and one cut short by its signal. Then it
 * ends pools the three ways there are: `close()` after the queue is done, `close({ cancelPending })`
 * that drops what has not started, and `destroy()` that stops everything now; and a pool whose
 * initializer fails, which says so rather than starting workers for ever. Every outcome is checked.
 *
 * What it introduces:
 *   - PoolOptions: `size`, `minSize` (workers kept when idle), `idleTimeout`, `maxQueue`,
 *     `initializer` ({ name, args }), `resourceLimits`, `depth` (tasks a worker holds at once),
 *     `abortGrace` (how long an aborted task may run on before its worker is stopped).
 *   - `pool.runWith({ timeout }, …)`: TimeoutError (ERR_TIMEOUT); `currentTask().id` and
 *     `currentTask().signal.aborted` inside a task.
 *   - `pool.map(name, inputs, { ordered: false, signal })`.
 *   - The pool's errors: QueueFullError (ERR_QUEUE_FULL), WorkerDiedError (ERR_WORKER_DIED),
 *     PoolClosedError (ERR_POOL_CLOSED), PoolBrokenError (ERR_POOL_BROKEN).
 *   - `close({ cancelPending: true })`, `destroy()`, `pool.size`, and `stats()`'s per-worker
 *     figures, run-time histogram and count of workers started.
 *
 * Run: occam run docs/15-pool-settings-and-shutdown.ts
 */
import { main } from '@occam/core';
import { currentTask, Pool, PoolBrokenError, PoolClosedError, QueueFullError, WorkerDiedError } from '@occam/pool';

type Tasks = typeof import('./15-pool-settings-and-shutdown.js');

// ── the tasks (this file is the task module, as in lesson 13) ────────────────────────────────

let greeting = 'not set up';

/** The initializer: each worker runs it once, before its first task. */
export function setUp(name: string): void {
  greeting = `set up by ${name}`;
}

/** Says what the initializer left, and which task this is. */
export function whoAmI(): string {
  return `${greeting}, task ${currentTask().id}`;
}

/** Waits `ms`, then returns it. */
export async function sleep(ms: number): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ms;
}

/** Busy until aborted, looking at its signal now and then (a synchronous loop sees it too). */
export function busyUntilAborted(): string {
  const signal = currentTask().signal;
  while (!signal.aborted) for (let i = 0; i < 10_000; i++);
  return 'noticed the abort'; // (the caller's promise has already failed with the timeout)
}

/** Busy for ever, never looking: only stopping its worker ends it. */
export function busyForEver(): never {
  for (;;);
}

/** Ends its worker's thread. */
export function exitWorker(): never {
  process.exit(3);
}

/** An initializer that fails. */
export function failToSetUp(): never {
  throw new Error('no configuration found');
}

// ── the program ──────────────────────────────────────────────────────────────────────────────

/** The code of a failure (`ERR_…`), or 'ok'. */
const outcome = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (e: { code?: string }) => e.code ?? String(e),
  );

function check(what: string, ok: boolean): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) throw new Error(`lesson 15: ${what}`);
}

main(async () => {
  const module = import.meta.url;
  const pool = new Pool<Tasks>({
    module,
    size: 2, // at most two workers
    minSize: 1, // one kept when idle; a second starts when work waits, and goes after idleTimeout
    idleTimeout: 1_000,
    maxQueue: 4, // tasks waiting beyond what the workers hold
    depth: 2, // each worker holds two tasks at once
    initializer: { name: 'setUp', args: ['lesson 15'] },
    resourceLimits: { maxOldGenerationSizeMb: 128 },
    abortGrace: 200,
  });

  // The initializer ran in the worker before its first task.
  const me = await pool.run('whoAmI');
  check(`the initializer ran first: "${me}"`, me.startsWith('set up by lesson 15, task '));

  // A bounded queue: 2 workers × depth 2 held, 4 waiting; the rest refused at once.
  const burst = await Promise.all(Array.from({ length: 12 }, () => pool.run('sleep', 50).catch((e: unknown) => e)));
  const refused = burst.filter((r) => r instanceof QueueFullError).length;
  const done = burst.filter((r) => r === 50).length;
  check(`of 12 tasks sent at once, ${done} done and ${refused} refused at once with QueueFullError`, done === 8 && refused === 4);

  // Timeouts: the task that looks at its signal ends by itself; the one that never looks is
  // stopped with its worker after abortGrace, and the pool starts another.
  const noticed = await outcome(pool.runWith({ timeout: 50 }, 'busyUntilAborted'));
  const forced = await outcome(pool.runWith({ timeout: 50 }, 'busyForEver'));
  check(`tasks past their timeout fail with TimeoutError (${noticed}, ${forced})`, noticed === 'ERR_TIMEOUT' && forced === 'ERR_TIMEOUT');
  check('the pool serves on after a worker was stopped', (await pool.run('sleep', 1)) === 1);

  // A dead worker costs only its own task.
  const died = await pool.run('exitWorker').catch((e: unknown) => e);
  check(`a task whose worker exits fails with WorkerDiedError (${(died as Error).message})`, died instanceof WorkerDiedError);
  check('the pool serves on after a worker died', (await pool.run('sleep', 1)) === 1);

  // map: results as they finish (ordered: false), and a map cut short by its signal. (Four
  // tasks at once first: both workers are up, so no task of the map waits for a worker's start.)
  await Promise.all([1, 1, 1, 1].map((ms) => pool.run('sleep', ms)));
  const asTheyFinish: number[] = [];
  for await (const ms of pool.map('sleep', [300, 10, 150], { ordered: false, concurrency: 3 })) asTheyFinish.push(ms);
  check(`map with ordered: false gives results as they finish: ${asTheyFinish.join(', ')}`, asTheyFinish.join() === '10,150,300');
  const stop = new AbortController();
  const seen: number[] = [];
  const cut = await outcome(
    (async () => {
      for await (const ms of pool.map('sleep', [10, 5_000, 5_000], { signal: stop.signal, concurrency: 3 })) {
        seen.push(ms);
        stop.abort(); // enough: the tasks still running are aborted
      }
    })(),
  );
  check(`a map's signal ends it with AbortError (${cut}) after ${seen.length} result`, cut === 'ERR_ABORTED' && seen.join() === '10');

  const s = pool.stats();
  const runs = s.runTimeHistogram.reduce((a, b) => a + b, 0);
  console.log(`stats: size ${pool.size}, ${s.completed} completed, ${s.failed} failed; workers now:`);
  for (const w of s.workers) console.log(`  worker ${w.index}: ${w.tasks} tasks, ${w.inFlight} in flight, busy ${(w.utilisation * 100).toFixed(0)}% of its life`);
  check(`${runs} run times in the histogram`, runs > 0 && pool.size === 2);
  // Workers started so far: the first, the second the burst asked for, and the replacements of
  // the one stopped past its grace and the one that exited (more if an idle one retired and a
  // later task started another).
  check(`${s.started} workers started in all, replacements included`, s.started >= 4);

  // ── three ways to end a pool ───────────────────────────────────────────────────────────────
  // close(): what is queued and running finishes; nothing new is taken.
  const last = pool.run('sleep', 30);
  const closing = pool.close();
  const afterClose = await outcome(pool.run('sleep', 1));
  await closing;
  check(`close() finishes its work (${await outcome(last)}) and refuses new tasks (${afterClose})`, afterClose === 'ERR_POOL_CLOSED');

  // close({ cancelPending: true }): tasks not started yet are dropped with PoolClosedError.
  const second = new Pool<Tasks>({ module, size: 1, depth: 1 });
  await second.run('sleep', 1); // (its worker is up)
  const queued = [200, 200, 200, 200].map((ms) => outcome(second.run('sleep', ms)));
  await new Promise((resolve) => setTimeout(resolve, 30)); // (the first one is running by now)
  await second.close({ cancelPending: true });
  const cancelled = await Promise.all(queued);
  check(`close({ cancelPending: true }) lets the running task finish, drops the rest: ${cancelled.join(', ')}`, cancelled.join() === 'ok,ERR_POOL_CLOSED,ERR_POOL_CLOSED,ERR_POOL_CLOSED');

  // destroy(): every worker stopped now; what had not finished fails with PoolClosedError.
  const third = new Pool<Tasks>({ module, size: 2 });
  const running = [third.run('busyForEver'), third.run('sleep', 60_000)].map((p) => p.catch((e: unknown) => e));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const t0 = performance.now();
  await third.destroy();
  const destroyed = await Promise.all(running);
  check(
    `destroy() stopped a busy pool in ${(performance.now() - t0).toFixed(0)} ms`,
    destroyed.every((e) => e instanceof PoolClosedError),
  );

  // A pool whose initializer fails is broken: it says why, instead of retrying for ever.
  const broken = new Pool<Tasks>({ module, size: 1, initializer: 'failToSetUp' });
  const why = await broken.run('whoAmI').catch((e: unknown) => e);
  check(
    `a failing initializer breaks the pool: ${(why as Error).message} (cause: ${((why as Error).cause as Error | undefined)?.message})`,
    why instanceof PoolBrokenError,
  );
  await broken.destroy();
  console.log('every pool ended; the program exits');
});
