/**
 * Lesson 13 — a worker pool: a parallel map with a progress bar, and a slow batch cancelled.
 *
 * What it does: counts the primes below 3,000,000 by splitting the range into 60 slices and
 * mapping a task over them on a pool of workers, printing a progress bar as results come in
 * (in order), and checks the total against the same count done on one thread. Then it starts a
 * batch of slow tasks and cancels it with one AbortController: the tasks — busy in synchronous
 * loops, or waiting on timers — see the abort and stop, and the pool takes the next task at once.
 *
 * What it introduces:
 *   - `new Pool({ module })`: this very file is the task module (its exports are the tasks;
 *     `main()` only runs on the main thread, so a worker importing the file runs no program).
 *   - `pool.map(name, inputs, { concurrency })`: an async iterable of results in input order,
 *     reading the input no further ahead than `concurrency`; leaving it early (`break`, or its
 *     `signal`) aborts its tasks still in flight.
 *   - `pool.runWith({ signal }, name, ...args)` and `currentTask().signal` in the task: an abort
 *     that a task sees even in a loop that never yields (`aborted` reads shared memory), and
 *     `signal.toAbortSignal()`, a DOM AbortSignal for an asynchronous task.
 *   - `pool.spawn(name, ...args)`: a process (here one that streams primes to main over a
 *     channel) on a worker of the pool that is already up, so it starts in well under a
 *     millisecond; `join()` and `terminate()` on the PoolProcess it returns.
 *   - `pool.stats()` and `pool.close()`: queued tasks finish, then the workers end (an idle pool
 *     would not hold the program anyway: lesson 14).
 *
 * Left for later: what a pool does when a worker dies (its tasks fail with ERR_WORKER_DIED, the
 * rest go on; see the pool's tests).
 *
 * Run: occam run docs/13-a-pool.ts [limit]
 */
import { chan, main, type Sender } from '@occam/core';
import { currentTask, Pool } from '@occam/pool';

/** How many primes lie in [from, to): one argument, as `map` passes one input to each task. */
export function primesIn([from, to]: readonly [number, number]): number {
  let n = 0;
  for (let k = Math.max(2, from); k < to; k++) {
    let prime = true;
    for (let d = 2; d * d <= k; d++) {
      if (k % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) n++;
  }
  return n;
}

/** A slow task: sums for a long while, checking for an abort every 100,000 steps. */
export function slowSum(steps: number): number {
  const signal = currentTask().signal;
  let s = 0;
  for (let i = 0; i < steps; i++) {
    if (i % 100_000 === 0) signal.throwIfAborted(); // throws AbortError once the pool aborts us
    s = (s + i) % 1_000_003;
  }
  return s;
}

/** An asynchronous slow task: waits `ms` unless aborted, through a DOM AbortSignal. */
export async function slowWait(ms: number): Promise<string> {
  const signal = currentTask().signal.toAbortSignal(); // take it before the first await
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    });
  });
  return 'waited';
}

/** A process: sends the primes from `from` on, for ever (until stopped), over `out`. */
export function primeStream(from: number, out: Sender<number>): never {
  for (let k = Math.max(2, from); ; k++) if (primesIn([k, k + 1]) === 1) out.send(k);
}

main(async () => {
  const limit = Number(process.argv[2] ?? 3_000_000);
  const slices = 60;
  const width = Math.ceil(limit / slices);
  const ranges = Array.from({ length: slices }, (_, k) => [k * width, Math.min(limit, (k + 1) * width)] as const);

  const pool = new Pool<typeof import('./13-a-pool.js')>({ module: import.meta.url, size: 2 });
  await pool.run('primesIn', [0, 10]); // the workers are up (their start is not part of the timing)

  // ── a parallel map with a progress bar ─────────────────────────────────────
  const t0 = performance.now();
  let total = 0;
  let done = 0;
  let shown = -1;
  const bar = (): void => {
    const tenths = Math.floor((done / slices) * 10);
    if (tenths === shown) return;
    shown = tenths;
    const line = `[${'#'.repeat(tenths)}${'.'.repeat(10 - tenths)}] ${String(done).padStart(2)}/${slices} slices, ${total} primes so far`;
    // A terminal gets one line redrawn; a pipe (CI) a line per tenth.
    process.stdout.write(process.stdout.isTTY ? `\r${line}` : `${line}\n`);
  };
  bar();
  for await (const n of pool.map('primesIn', ranges, { concurrency: 6 })) {
    total += n;
    done++;
    bar();
  }
  if (process.stdout.isTTY) process.stdout.write('\n');
  const parallelMs = performance.now() - t0;

  const t1 = performance.now();
  const alone = primesIn([0, limit]);
  const aloneMs = performance.now() - t1;
  console.log(`pool: ${total} primes below ${limit} in ${parallelMs.toFixed(0)} ms; one thread: ${alone} in ${aloneMs.toFixed(0)} ms (×${(aloneMs / parallelMs).toFixed(2)})`);
  if (total !== alone) throw new Error(`the pool counted ${total} primes, one thread ${alone}`);

  // ── a slow batch, cancelled ────────────────────────────────────────────────
  const batch = new AbortController();
  const slow = [
    ...[0, 1, 2, 3].map((k) => pool.runWith({ signal: batch.signal }, 'slowSum', 4_000_000_000 + k)),
    ...[0, 1].map(() => pool.runWith({ signal: batch.signal }, 'slowWait', 60_000)),
  ];
  const outcome = Promise.allSettled(slow);
  setTimeout(() => batch.abort(new Error('the user pressed cancel')), 100);
  const ended = await outcome;
  const aborted = ended.filter((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'ERR_ABORTED').length;
  const t2 = performance.now();
  const after = await pool.run('primesIn', [0, 1000]); // the pool is free again at once
  console.log(`slow batch: ${aborted} of ${slow.length} tasks aborted; the next task ran in ${(performance.now() - t2).toFixed(1)} ms (${after} primes below 1000)`);
  if (aborted !== slow.length || after !== 168) throw new Error('the slow batch was not cancelled cleanly');

  // ── a map left early ───────────────────────────────────────────────────────
  // A search that stops at its first answer: `break` aborts the map's other tasks (here waiting
  // a minute each), so the pool is free again at once rather than a minute later.
  const t4 = performance.now();
  for await (const answer of pool.map('slowWait', [20, 60_000, 60_000, 60_000], { concurrency: 4 })) {
    console.log(`map: first answer "${answer}" after ${(performance.now() - t4).toFixed(0)} ms; leaving the loop`);
    break;
  }
  const t5 = performance.now();
  const free = await pool.run('primesIn', [0, 1000]);
  console.log(`the next task ran in ${(performance.now() - t5).toFixed(1)} ms (${free} primes below 1000): the map's other tasks were aborted`);
  if (free !== 168 || performance.now() - t5 > 30_000) throw new Error("the map's tasks were not aborted");

  // ── a process on the pool ──────────────────────────────────────────────────
  // It takes an idle worker of the pool (no worker start: compare the ~100 ms of a new one), and
  // no task is sent to that worker while the process runs.
  const primes = chan<number>(16);
  const t3 = performance.now();
  const stream = pool.spawn('primeStream', 1_000_000, primes.sender());
  const first = await primes.recvAsync();
  const startedMs = performance.now() - t3;
  const next = [first];
  while (next.length < 5) next.push(await primes.recvAsync());
  await stream.terminate(); // its blocked send fails with AbortError, and it ends; its worker stays
  // (join() of a terminated process rejects with ProcessFailedError, ERR_PROCESS_FAILED.)
  const joined = await stream.join().catch((e: Error) => e.constructor.name);
  console.log(`a process on the pool: first value after ${startedMs.toFixed(1)} ms; primes from a million: ${next.join(', ')}; joined: ${joined}`);
  if (next[0] !== 1_000_003 || joined !== 'ProcessFailedError') throw new Error('the prime stream went wrong');

  const s = pool.stats();
  console.log(`stats: ${s.completed} completed, ${s.failed} failed, ${s.queued} queued, ${s.running} running`);
  // completed: the slices, three single tasks, the map's first answer; failed: the slow batch,
  // the map's three aborted tasks, the terminated process.
  if (s.completed !== slices + 3 + 1 || s.failed !== slow.length + 3 + 1) throw new Error('the stats do not add up');
  await pool.close();
  console.log('pool closed; the program exits');
});
