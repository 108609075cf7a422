import { describe, expect, test } from 'vitest';
import { AbortError, chan, TimeoutError } from '@occam/core';
import { hostsStarted, setFault, threadStats } from '@occam/core/testing';
import { currentTask, Pool, PoolBrokenError, PoolClosedError, QueueFullError, WorkerDiedError } from '@occam/pool';
import { ProcessFailedError } from '@occam/core';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { until, watchdog as coreWatchdog } from '../../core/test/helpers.js';
import type * as Tasks from './fixtures/tasks.js';

const module = new URL('./fixtures/tasks.ts', import.meta.url);

/** The core tests' watchdog, with the pool's longer default (workers start within it). */
function watchdog<T>(p: Promise<T>, what: string, ms = 15_000): Promise<T> {
  return coreWatchdog(p, what, ms);
}

function pool(opts: Partial<ConstructorParameters<typeof Pool>[0]> = {}): Pool<typeof Tasks> {
  return new Pool<typeof Tasks>({ module, size: 2, ...opts });
}

describe('Pool', () => {
  test('runs tasks from a TypeScript module and gives their results', async () => {
    const p = pool();
    const xs = Array.from({ length: 200 }, (_, i) => i);
    const ys = await watchdog(Promise.all(xs.map((x) => p.run('inc', x))), 'the tasks');
    expect(ys).toEqual(xs.map((x) => x + 1));
    const s = p.stats();
    expect(s.completed).toBe(200);
    expect(s.failed).toBe(0);
    expect(s.workers.reduce((n, w) => n + w.tasks, 0)).toBe(200);
    expect(s.runTimeHistogram.reduce((a, b) => a + b, 0)).toBe(200);
    await watchdog(p.close(), 'close');
  });

  test('keeps several tasks in flight per worker: async tasks overlap', async () => {
    const p = pool({ size: 1 });
    await p.run('inc', 0); // started
    const t0 = performance.now();
    const ys = await watchdog(Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((x) => p.run('later', x, 200))), 'async tasks');
    const took = performance.now() - t0;
    expect(ys).toEqual([2, 4, 6, 8, 10, 12, 14, 16]);
    expect(took).toBeLessThan(8 * 200 * 0.5); // one worker, eight 200 ms waits at once
    await p.close();
  });

  test('runs the initializer once per worker before its tasks', async () => {
    const p = pool({ initializer: { name: 'init', args: [3] } });
    expect(await watchdog(Promise.all([1, 2, 3].map((x) => p.run('scaled', x))), 'scaled')).toEqual([3, 6, 9]);
    await p.close();
  });

  test('a failing initializer breaks the pool with a clear error instead of respawning for ever', async () => {
    const before = hostsStarted();
    const p = pool({ initializer: 'failingInit' });
    const e = await watchdog(p.run('inc', 1), 'a task on a broken pool').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PoolBrokenError);
    expect((e as Error).message).toContain('the initializer cannot find its data');
    expect((e as Error & { cause: Error }).cause).toBeInstanceOf(RangeError);
    await expect(p.run('inc', 2)).rejects.toBeInstanceOf(PoolBrokenError);
    // No respawning: its first two workers, no replacement (not even one started for the task a
    // worker held, when its end is seen before its report of the failure), no thread past theirs.
    expect(p.stats().started).toBe(2);
    await watchdog(p.close(), 'close');
    expect(p.stats().started).toBe(2);
    expect(hostsStarted()).toBeLessThanOrEqual(before + 2);
  });

  test('a task given to a worker still starting fails with the pool when that worker\'s initializer fails', async () => {
    // The worker reports INIT_FAILED and ends; its end may be seen before its report: the task it
    // held must not go with it. (Several pools: which comes first varies.)
    for (const ms of [0, 0, 50, 50, 100, 100]) {
      const p = pool({ size: 1, initializer: { name: 'slowFailingInit', args: [ms] } });
      const e = await watchdog(p.run('inc', 1), 'the task held by the failing worker').catch((x: unknown) => x);
      expect(e).toBeInstanceOf(PoolBrokenError);
      await watchdog(p.close(), 'close');
      expect(p.stats().started).toBe(1); // (the task it held taken back started no other)
    }
  });

  test('a worker that dies while starting (its initializer exits) breaks the pool instead of respawning for ever', async () => {
    const before = hostsStarted();
    const p = pool({ initializer: 'exitingInit' });
    const e = await watchdog(p.run('inc', 1), 'a task on a pool whose workers die while starting').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PoolBrokenError);
    expect((e as Error).message).toContain('died while starting');
    expect((e as Error & { cause: Error }).cause).toBeInstanceOf(WorkerDiedError);
    await expect(p.run('inc', 2)).rejects.toBeInstanceOf(PoolBrokenError);
    await watchdog(p.close(), 'close');
    expect(p.stats().started).toBe(2);
    expect(hostsStarted()).toBeLessThanOrEqual(before + 2); // its two workers, no replacement
  });

  test('a task that throws rejects with its class, code, message and stack; the worker is reused', async () => {
    const p = pool({ size: 1 });
    const first = await p.run('count');
    const e = await p.run('fails', 'divide').catch((x: unknown) => x);
    expect((e as Error).name).toBe('TaskError');
    expect((e as { code: string }).code).toBe('E_TASK');
    expect((e as Error).message).toBe('cannot divide');
    expect((e as Error).stack).toContain('tasks.ts');
    expect(await p.run('count')).toBe(first + 1); // the same worker, its module state kept
    expect(p.stats().failed).toBe(1);
    await p.close();
  });

  test('process.exit in a task rejects that task only; the pool replaces the worker and keeps serving', async () => {
    const p = pool({ size: 1, depth: 4 });
    await p.run('inc', 0);
    const many = [p.run('later', 1, 50), p.run('exits', 7), p.run('inc', 10), p.run('inc', 11)];
    const settled = await watchdog(Promise.allSettled(many), 'the tasks around the death');
    const dead = settled.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as Error);
    // The exiting task fails; others it had taken with it may too (they were its own); none is lost.
    expect(dead.length).toBeGreaterThanOrEqual(1);
    for (const e of dead) expect(e).toBeInstanceOf(WorkerDiedError);
    expect(dead.some((e) => /exit code 7/.test(e.message))).toBe(true);
    expect(await watchdog(p.run('inc', 41), 'a task after the death')).toBe(42);
    expect(p.stats().started).toBe(2); // the first worker and its replacement
    await p.close();
  });

  test('a result a worker sent before it died is delivered, not failed with the worker', async () => {
    const p = pool({ size: 1, depth: 4 });
    await p.run('inc', 0);
    for (let round = 0; round < 5; round++) {
      // Both go to the one worker: it finishes the first, sends its result, then exits.
      const [done, died] = await watchdog(Promise.allSettled([p.run('inc', round), p.run('exits', 3)]), 'the two tasks');
      expect(done).toEqual({ status: 'fulfilled', value: round + 1 });
      expect(died.status === 'rejected' && died.reason).toBeInstanceOf(WorkerDiedError);
    }
    await p.close();
  });

  test('a worker that dies inside the shared results channel: the pool replaces the channel and goes on', async () => {
    const p = pool({ size: 1 });
    await p.run('inc', 0);
    // Test-only fault: a worker that hands a value to a parked party exits right there, holding
    // the channel's lock — here its result to main, parked on the results channel.
    // Main must be parked on the results channel when the result comes (it is, within
    // microseconds of sending, for the task's 20 ms); should it not be, the result simply
    // arrives, and the test tries again.
    setFault('die-claiming');
    const outcomes: unknown[] = [];
    try {
      for (let attempt = 0; attempt < 5 && !(outcomes.at(-1) instanceof WorkerDiedError); attempt++) {
        outcomes.push(await watchdog(p.run('later', 1, 20), 'the task whose result was lost').catch((x: unknown) => x));
      }
    } finally {
      setFault(null);
    }
    expect(outcomes.at(-1)).toBeInstanceOf(WorkerDiedError);
    for (const o of outcomes.slice(0, -1)) expect(o).toBe(2); // an attempt without the death: a plain result
    expect(await watchdog(p.run('inc', 41), 'a task after the results channel broke')).toBe(42);
    await p.close();
  });

  test('a worker that runs out of memory rejects its task with the cause; the pool goes on', async () => {
    const p = pool({ size: 1, resourceLimits: { maxOldGenerationSizeMb: 24 } });
    const e = await watchdog(p.run('hog'), 'the hog').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(WorkerDiedError);
    expect((e as Error).message).toContain('out of memory');
    expect(await watchdog(p.run('inc', 1), 'a task after')).toBe(2);
    await p.close();
  });

  test('maxQueue overflow is an immediate error with a stable code', async () => {
    const p = pool({ size: 1, depth: 1, maxQueue: 2 });
    await p.run('inc', 0);
    const running = [p.run('later', 1, 100), p.run('later', 2, 100), p.run('later', 3, 100)]; // 1 sent, 2 queued
    await expect(p.run('inc', 4)).rejects.toBeInstanceOf(QueueFullError);
    expect(await watchdog(Promise.all(running), 'the accepted tasks')).toEqual([2, 4, 6]);
    await p.close();
  });

  test('abort before start: rejected at once, never run', async () => {
    const p = pool({ size: 1, depth: 1 });
    const before = await p.run('count'); // (a warm host may have run this module before)
    const ac = new AbortController();
    const blocker = p.run('later', 1, 100);
    const queued = p.runWith({ signal: ac.signal }, 'count');
    ac.abort();
    await expect(queued).rejects.toBeInstanceOf(AbortError);
    await blocker;
    expect(await p.run('count')).toBe(before + 1); // the aborted count never ran on the worker
    await p.close();
  });

  test('abort while running: the task sees it in synchronous code, and the pool moves on', async () => {
    const p = pool({ size: 1 });
    await p.run('inc', 0); // a ready worker: the task goes out at once, with its abort channel
    const seen = chan<string>(4);
    const ac = new AbortController();
    const task = p.runWith({ signal: ac.signal }, 'spinUntilAborted', seen.sender());
    expect(await watchdog(seen.recvAsync(), 'the task to start')).toBe('started');
    ac.abort('enough');
    await expect(task).rejects.toBeInstanceOf(AbortError);
    expect(await watchdog(seen.recvAsync(), 'the task to see the abort')).toBe('saw the abort');
    expect(await watchdog(p.run('inc', 1), 'the next task')).toBe(2);
    await p.close();
  });

  test('abort wakes a task blocked in a channel operation; its worker goes on', async () => {
    const p = pool({ size: 1, abortGrace: 60_000 }); // no hard stop: the task must let go by itself
    const before = await p.run('count');
    const nobody = chan<number>();
    const seen = chan<string>(4);
    const ac = new AbortController();
    const task = p.runWith({ signal: ac.signal }, 'waitOn', nobody.receiver(), seen.sender());
    expect(await watchdog(seen.recvAsync(), 'the task to block')).toBe('waiting');
    await until(() => nobody.waitingReceivers === 1, 'the task to park in recv');
    ac.abort();
    await expect(task).rejects.toBeInstanceOf(AbortError);
    expect(await watchdog(seen.recvAsync(), 'the task to wake')).toBe('ERR_ABORTED');
    expect(await watchdog(p.run('count'), 'the next task')).toBe(before + 1); // the same worker
    expect(nobody.waitingReceivers).toBe(0);
    await p.close();
  });

  test('an async task gets a DOM AbortSignal from its task signal', async () => {
    const p = pool({ size: 1 });
    await p.run('inc', 0);
    const seen = chan<string>(4);
    const task = p.runWith({ timeout: 100 }, 'sleepUnlessAborted', 60_000, seen.sender());
    expect(await watchdog(seen.recvAsync(), 'the task to sleep')).toBe('sleeping');
    await expect(task).rejects.toBeInstanceOf(TimeoutError);
    expect(await watchdog(seen.recvAsync(), 'the abort to reach the task')).toBe('woken by the abort');
    expect(await watchdog(p.run('inc', 1), 'the next task')).toBe(2);
    await p.close();
  });

  test('timeout: the task is rejected, and a task that ignores it has its worker stopped after the grace', async () => {
    const p = pool({ size: 1, abortGrace: 100 });
    await p.run('inc', 0); // warm: the timeout below is for the task, not for the worker's start
    const seen = chan<string>(4);
    const task = p.runWith({ timeout: 100 }, 'spinForever', seen.sender());
    expect(await watchdog(seen.recvAsync(), 'the task to start')).toBe('started');
    await expect(watchdog(task, 'the timeout')).rejects.toBeInstanceOf(TimeoutError);
    expect(await watchdog(p.run('inc', 5), 'a task on the replacement worker')).toBe(6);
    await p.close();
  });

  test('channels as task arguments stream progress back', async () => {
    const p = pool();
    const progress = chan<number>(2);
    const result = p.run('withProgress', 5, progress.sender());
    const got: number[] = [];
    for await (const n of progress) got.push(n);
    expect(got).toEqual([1, 2, 3, 4, 5]);
    expect(await result).toBe(5);
    await p.close();
  });

  test('a result or an argument that cannot be sent fails its task with ERR_NOT_SENDABLE, naming it', async () => {
    const p = pool({ size: 1 });
    await expect(p.run('unsendable')).rejects.toMatchObject({ code: 'ERR_NOT_SENDABLE', path: 'the result' });
    const bad = { ok: 1, f: () => 1 } as unknown as number;
    await expect(p.run('inc', bad)).rejects.toMatchObject({ code: 'ERR_NOT_SENDABLE', path: 'argument 0 of inc.f' });
    expect(await p.run('inc', 1)).toBe(2); // the worker and the pool go on
    expect(() => currentTask()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' })); // not in a task
    await p.close();
  });

  test('map keeps input order, and reads no further ahead than its concurrency', async () => {
    const p = pool();
    let read = 0;
    let maxAhead = 0;
    let yielded = 0;
    function* input(): Generator<number> {
      for (let i = 0; i < 50; i++) {
        read++;
        maxAhead = Math.max(maxAhead, read - yielded);
        yield i;
      }
    }
    const out: unknown[] = [];
    for await (const y of p.map('inc', input(), { concurrency: 4 })) {
      out.push(y);
      yielded++;
    }
    expect(out).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(maxAhead).toBeLessThanOrEqual(5); // 4 in flight, and the one being read
    const unordered: number[] = [];
    for await (const y of p.map('later', [[3, 300], [1, 10], [2, 100]].map(([x]) => x!), { ordered: false })) unordered.push(y);
    expect(unordered.sort((a, b) => a - b)).toEqual([2, 4, 6]);
    await p.close();
  });

  test('map over a slow async input yields each result when it is ready, and sees its signal meanwhile', async () => {
    const p = pool();
    // The next item comes only once the previous result has been seen (a crawler's feedback):
    // a map that waited for its window to fill first would never yield.
    let seen = 0;
    let wake: (() => void) | undefined;
    async function* feedback(): AsyncGenerator<number> {
      for (let i = 0; i < 4; i++) {
        while (seen < i) await new Promise<void>((r) => (wake = r));
        yield i;
      }
    }
    const got: number[] = [];
    await watchdog(
      (async () => {
        for await (const r of p.map('inc', feedback(), { concurrency: 4 })) {
          got.push(r);
          seen++;
          wake?.();
        }
      })(),
      'a map fed by its own results',
    );
    expect(got).toEqual([1, 2, 3, 4]);
    // An async iterator whose next() gives a plain result, as for await takes.
    let k = 0;
    const plain: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({ next: () => (k < 3 ? { done: false, value: k++ } : { done: true, value: undefined }) as never }),
    };
    const fromPlain: number[] = [];
    for await (const r of p.map('inc', plain)) fromPlain.push(r);
    expect(fromPlain).toEqual([1, 2, 3]);
    // An input that never yields again: the signal still ends the iteration.
    const ac = new AbortController();
    async function* stalls(): AsyncGenerator<number> {
      yield 1;
      await new Promise(() => undefined);
    }
    const ended = (async () => {
      const out: number[] = [];
      for await (const r of p.map('inc', stalls(), { signal: ac.signal })) {
        out.push(r);
        ac.abort();
      }
      return out;
    })();
    await expect(watchdog(ended, 'a map whose input stalls')).rejects.toBeInstanceOf(AbortError);
    await p.close();
  });

  test('leaving a map early (break, its signal) aborts its tasks in flight; a string is an iterable input', async () => {
    const p = pool({ size: 2 });
    // break after the first result: the three long tasks still in flight are aborted
    for await (const v of p.map('naps', [1, 60_000, 60_000, 60_000], { concurrency: 4 })) {
      expect(v).toBe(1);
      break;
    }
    await until(() => p.stats().running === 0 && p.stats().queued === 0, 'the tasks of a map left by break to end');
    expect(await watchdog(p.run('inc', 1), 'a task after the map')).toBe(2);
    const longs = (async () => {
      for await (const _ of p.map('naps', [60_000, 60_000], { concurrency: 2 })) void _;
    })().then(
      () => 'done',
      (e: unknown) => e,
    );
    // the program's own signal
    const stop = new AbortController();
    const stopped = (async () => {
      for await (const _ of p.map('naps', [60_000, 60_000], { concurrency: 2, signal: stop.signal })) void _;
    })();
    await until(() => p.stats().running === 4, 'four long tasks to run');
    stop.abort();
    await expect(watchdog(stopped, 'a map whose signal fired')).rejects.toBeInstanceOf(AbortError);
    await until(() => p.stats().running === 2, 'the two tasks of the aborted map to end');
    await watchdog(p.destroy(), 'destroy');
    expect(await longs).toBeInstanceOf(PoolClosedError);
    // many tasks in flight on the map's one signal: no listener-leak warning
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    const r = pool({ size: 2 });
    let n = 0;
    for await (const _ of r.map('inc', Array.from({ length: 64 }, (_, i) => i), { concurrency: 32 })) n++;
    // and one controller of the program's for many tasks
    const all = new AbortController();
    const many = await Promise.all(Array.from({ length: 24 }, (_, i) => r.runWith({ signal: all.signal }, 'inc', i)));
    await new Promise((resolve) => setImmediate(resolve)); // (warnings come on a later tick)
    process.off('warning', onWarning);
    expect(n).toBe(64);
    expect(many).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(warnings).toEqual([]);
    await r.close();
    // a string is an iterable input (of its characters)
    const q = pool({ size: 1 });
    const out: unknown[] = [];
    for await (const v of q.map('inc', '123' as unknown as number[])) out.push(v);
    expect(out).toEqual(['11', '21', '31']); // ('1' + 1: the items are the string's characters)
    await q.close();
  });

  test('an aborted task still in its worker\'s channel is taken back: the task running there goes on', async () => {
    const p = pool({ size: 1, abortGrace: 50 });
    await p.run('inc', 0); // the worker is up
    const running = p.run('busy', 600).then((v) => v, (e: unknown) => e);
    const behind = new AbortController();
    const queued = p.runWith({ signal: behind.signal }, 'inc', 1).then((v) => v, (e: unknown) => e);
    await until(() => p.stats().running === 2, 'both tasks to be sent to the one worker');
    behind.abort();
    expect(await watchdog(queued, 'the aborted task')).toBeInstanceOf(AbortError);
    expect(await watchdog(running, 'the running task')).toBe(600); // not stopped after abortGrace
    expect(await p.run('inc', 2)).toBe(3);
    await watchdog(p.close(), 'close');
  });

  test('close settles after a task that timed out ends in its worker', async () => {
    const p = pool({ size: 1, abortGrace: 5000 });
    await expect(p.runWith({ timeout: 50 }, 'busy', 300)).rejects.toBeInstanceOf(TimeoutError);
    await watchdog(p.close(), 'close after the timed-out task ends');
  });

  test('a process terminated before its worker took it leaves that worker usable', async () => {
    const p = pool({ size: 1 });
    for (let i = 0; i < 20; i++) {
      expect(await watchdog(p.run('inc', i), 'a task')).toBe(i + 1);
      const proc = p.spawn('summer', chan<number>().receiver());
      await proc.terminate();
      await proc.join().catch(() => undefined);
    }
    expect(p.stats().workers.every((w) => !w.hosting)).toBe(true);
    expect(await watchdog(p.run('inc', 41), 'a task after the terminated processes')).toBe(42);
    await watchdog(p.close(), 'close');
  });

  test('close finishes queued work and refuses new; cancelPending rejects what has not started', async () => {
    const p = pool({ size: 1, depth: 1 });
    await p.run('inc', 0);
    const a = p.run('later', 1, 50);
    const b = p.run('later', 2, 50);
    const closing = p.close();
    await expect(p.run('inc', 1)).rejects.toBeInstanceOf(PoolClosedError);
    expect(await watchdog(Promise.all([a, b]), 'queued work')).toEqual([2, 4]);
    await watchdog(closing, 'close');

    const q = pool({ size: 1, depth: 1 });
    const progress = chan<number>();
    const c = q.run('withProgress', 2, progress.sender());
    expect(await watchdog(progress.recvAsync(), 'c to start')).toBe(1); // c runs, and holds the worker
    const d = q.run('inc', 2).catch((e: unknown) => e);
    const cancelling = q.close({ cancelPending: true });
    expect(await d).toBeInstanceOf(PoolClosedError);
    expect(await progress.recvAsync()).toBe(2);
    expect(await watchdog(c, 'c')).toBe(2); // started: it finishes
    await watchdog(cancelling, 'close with cancelPending');
  });

  test('destroy stops at once: unfinished tasks are rejected and no worker is left running', async () => {
    const before = threadStats();
    const p = pool();
    const seen = chan<string>(4);
    const spinning = p.run('spinForever', seen.sender()).catch((e: unknown) => e);
    expect(await watchdog(seen.recvAsync(), 'the task to start')).toBe('started');
    await watchdog(p.destroy(), 'destroy');
    expect(await spinning).toBeInstanceOf(PoolClosedError);
    expect(threadStats().running).toBeLessThanOrEqual(before.running);
  });

  test('minSize and idleTimeout: the pool grows to size under load and retires idle workers', async () => {
    const p = pool({ size: 2, minSize: 1, idleTimeout: 100, depth: 1 });
    await p.run('inc', 0);
    expect(p.stats().workers.length).toBe(1);
    const load = [1, 2, 3, 4, 5, 6].map((x) => p.run('later', x, 100)); // more than one worker holds
    await until(() => p.stats().workers.length === 2, 'a second worker to start');
    expect(await watchdog(Promise.all(load), 'the load')).toEqual([2, 4, 6, 8, 10, 12]);
    await until(() => p.stats().workers.length === 1, 'the idle worker to retire', 5000);
    expect(await p.run('inc', 1)).toBe(2); // the one left still serves
    // Never below minSize: the worker serving is one of the first two, not a replacement.
    expect(p.stats().workers.map((w) => w.index).every((i) => i < 2)).toBe(true);
    await p.close();
  });

  test('close while the last worker dies with a task queued: the task runs on a replacement, then close resolves', async () => {
    const p = pool({ size: 1, depth: 1 });
    await p.run('inc', 0);
    const dying = p.run('exitsAfter', 30, 3);
    const queued = p.run('inc', 41); // (depth 1: it waits in the pool's queue)
    expect(p.stats().queued).toBe(1);
    const closed = p.close();
    await expect(watchdog(dying, 'the dying task')).rejects.toBeInstanceOf(WorkerDiedError);
    expect(await watchdog(queued, 'the queued task')).toBe(42);
    await watchdog(closed, 'close');
    expect(p.stats().queued).toBe(0);
  });

  test('close while the only worker is retiring: the task queued meanwhile still runs', async () => {
    const p = pool({ size: 1, minSize: 0, idleTimeout: 0 });
    expect(await p.run('inc', 0)).toBe(1);
    // Its idle timer (0 ms) fires on the next turn: the worker is told to end.
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setImmediate(r));
    const task = p.run('inc', 6);
    await watchdog(p.close(), 'close');
    expect(await watchdog(task, 'the task')).toBe(7);
  });

  test('tasks sent to a fresh pool, or one that grows, are shared out as workers become ready', async () => {
    for (const opts of [{ size: 2 }, { size: 3, minSize: 1 }]) {
      const p = pool(opts);
      const n = 3 * opts.size;
      await watchdog(Promise.all(Array.from({ length: n }, () => p.run('busy', 60))), 'the busy tasks');
      const per = p.stats().workers.map((w) => w.tasks);
      expect(per.length, JSON.stringify(opts)).toBe(opts.size);
      expect(Math.min(...per), `tasks per worker ${per.join(',')}`).toBeGreaterThan(0);
      await p.close();
    }
  });

  test('a task given to a worker still starting is taken back when another is ready first', async () => {
    // The first task goes to a worker still starting; one worker's start takes 5 s, the other's
    // none. Whichever holds the task, it runs on the quick one: three pools, as the task lands on
    // the slow one about half the time.
    for (let k = 0; k < 3; k++) {
      const delays = chan<number>(2);
      delays.trySend(5000);
      delays.trySend(0);
      const p = pool({ initializer: { name: 'delayedInit', args: [delays] } });
      expect(await watchdog(p.run('initDelayTaken'), 'the task')).toBe(0);
      await watchdog(p.destroy(), 'destroy');
    }
  });

  test('a task held by a worker still starting goes to a ready worker as soon as one has room', async () => {
    const delays = chan<number>(2);
    delays.trySend(0);
    delays.trySend(5000);
    const p = pool({ size: 2, minSize: 1, depth: 1, initializer: { name: 'delayedInit', args: [delays] } });
    expect(await watchdog(p.run('initDelayTaken'), 'the first worker')).toBe(0);
    const busy = p.run('naps', 100); // the ready worker is full (depth 1)
    const held = p.run('initDelayTaken'); // so a second worker starts (5 s), and holds this one
    const later = p.run('inc', 1);
    expect(await watchdog(Promise.all([busy, later]), 'the tasks on the ready worker')).toEqual([100, 2]);
    expect(await watchdog(held, 'the task held by the worker starting')).toBe(0);
    await watchdog(p.destroy(), 'destroy');
  });

  test('a worker started for a process waiting to be spawned is not given a task meanwhile', async () => {
    const p = pool({ size: 1 });
    await watchdog(p.run('inc', 0), 'the first worker');
    const hosting = p.spawn('naps', 300); // the one worker now hosts a process
    await until(() => p.stats().workers.some((w) => w.hosting), 'the process to start');
    const proc = p.spawn('inc', 1); // no idle worker: one starts for it
    const task = p.run('inc', 2); // no ready worker takes tasks: it waits
    expect(await watchdog(proc.join(), 'the process')).toBe(2);
    expect(await watchdog(task, 'the task')).toBe(3);
    expect(p.stats().workers.length, 'workers started').toBeLessThanOrEqual(2);
    expect(await watchdog(hosting.join(), 'the first process')).toBe(300);
    await watchdog(p.close(), 'close');
  });

  test('a task sent at once to a pool whose module cannot be loaded fails with the broken pool', async () => {
    for (const missing of ['no-such-module.mjs', 'no-such-module.ts']) {
      const p = new Pool({ module: new URL(`./fixtures/${missing}`, import.meta.url), size: 2 });
      const e = await watchdog(p.run('inc', 1), `a task on a pool of ${missing}`).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(PoolBrokenError);
      await watchdog(p.close(), 'close');
    }
  });

  test('async tasks running side by side in one worker do not make the pool start workers over and over', async () => {
    const p = pool({ size: 2, minSize: 1, idleTimeout: 10 });
    await p.run('inc', 0);
    const seen = new Set<number>();
    const tasks = Promise.all([1, 2, 3, 4].map((x) => p.run('later', x, 300)));
    const t0 = performance.now();
    while (performance.now() - t0 < 300) {
      for (const w of p.stats().workers) seen.add(w.index);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await watchdog(tasks, 'the async tasks')).toEqual([2, 4, 6, 8]);
    expect(seen.size, `workers seen: ${[...seen].join(',')}`).toBeLessThanOrEqual(2);
    await p.close();
  });

  test('a worker that never got a task is retired when idle, as any other', async () => {
    const p = pool({ size: 2, minSize: 0, idleTimeout: 50 });
    const ac = new AbortController();
    const t = p.runWith({ signal: ac.signal }, 'inc', 1); // starts a worker; gone before it is ready
    ac.abort();
    await expect(t).rejects.toBeInstanceOf(AbortError);
    await until(() => p.stats().workers.length === 0, 'the idle worker to retire', 5000);
    await p.close();
  });

  test('maxQueue counts what the workers starting will hold: a fresh pool takes its first tasks', async () => {
    const p = pool({ size: 2, minSize: 0, maxQueue: 0, depth: 1, idleTimeout: 20 });
    // Two workers may start, holding one task each: two accepted, the third refused.
    const first = [p.run('inc', 1), p.run('inc', 2)];
    await expect(p.run('inc', 3)).rejects.toBeInstanceOf(QueueFullError);
    expect(await watchdog(Promise.all(first), 'the first tasks')).toEqual([2, 3]);
    await until(() => p.stats().workers.length === 0, 'the workers to retire', 5000);
    expect(await watchdog(p.run('inc', 4), 'a task after they retired')).toBe(5);
    await p.close();
  });

  test('a task timeout must be a number ≥ 0; Infinity means none', async () => {
    const p = pool({ size: 1 });
    for (const timeout of [-1, Number.NaN, '10' as unknown as number]) {
      await expect(p.runWith({ timeout }, 'inc', 1)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
    expect(await watchdog(p.runWith({ timeout: Infinity }, 'later', 1, 20), 'no timeout')).toBe(2);
    expect(await watchdog(p.runWith({ timeout: 2 ** 31 }, 'later', 2, 20), 'a timeout past setTimeout’s range')).toBe(4);
    await expect(p.runWith({ timeout: 0 }, 'later', 3, 50)).rejects.toBeInstanceOf(TimeoutError);
    expect(p.stats().queued).toBe(0);
    await p.close();
  });

  test('bad options are refused with ERR_INVALID_ARGUMENT', () => {
    expect(() => new Pool({ module, size: 0 })).toThrow(/size must be a positive integer/);
    expect(() => new Pool({ module, depth: 1.5 })).toThrow(/depth/);
    expect(() => new Pool(undefined as never)).toThrow(/needs \{ module \}/);
  });

  test('a process can make a pool of its own (its workers are main\'s hosts, as every process\'s)', async () => {
    const { spawn } = await import('@occam/core');
    const p = spawn<number>(module, 'poolInside', []);
    expect(await watchdog(p.join(), 'the process with a pool of its own')).toBe(42);
  });

  describe('spawn: processes on the pool\'s workers', () => {
    test('a process runs on an idle worker already up (no new thread), and tasks go elsewhere meanwhile', async () => {
      const p = pool();
      await watchdog(Promise.all([p.run('inc', 0), p.run('inc', 1)]), 'the workers up');
      const before = p.stats().workers.map((w) => w.index);
      const hostsBefore = hostsStarted();
      const input = chan<number>();
      const output = chan<number>();
      const proc = p.spawn('squarer', input.receiver(), output.sender());
      input.close(); // nothing to square: the process ends once it has started
      // It ran on one of the two workers that were up: no worker and no thread was started.
      expect(await watchdog(proc.join(), 'the process')).toBe(0);
      expect(p.stats().workers.map((w) => w.index)).toEqual(before);
      expect(hostsStarted()).toBe(hostsBefore);

      // While a process holds a worker, every task goes to the other one.
      const in2 = chan<number>();
      const out2 = chan<number>();
      const stage = p.spawn('squarer', in2.receiver(), out2.sender());
      await until(() => p.stats().workers.some((w) => w.hosting), 'a worker hosting the process');
      const host = p.stats().workers.find((w) => w.hosting)!;
      const ys = await watchdog(Promise.all(Array.from({ length: 50 }, (_, i) => p.run('inc', i))), 'tasks beside the process');
      expect(ys).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(p.stats().workers.find((w) => w.index === host.index)!.tasks).toBe(host.tasks);
      await watchdog(in2.sendAsync(7), 'a value to the process');
      expect((await watchdog(out2.recvAsync(), 'its square'))).toBe(49);
      in2.close();
      expect(await watchdog(stage.join(), 'the stage')).toBe(1);
      await until(() => p.stats().workers.every((w) => !w.hosting), 'the worker released');
      await watchdog(p.close(), 'close');
    });

    test('processes joined by channels all run at once, past the pool size if need be', async () => {
      const p = pool({ size: 1 });
      const a = chan<number>(4);
      const b = chan<number>(4);
      const c = chan<number>(4);
      // Three processes that need each other on a pool of one: each gets a worker.
      const sum = p.spawn('summer', c.receiver());
      const sq2 = p.spawn('squarer', b.receiver(), c.sender());
      const sq1 = p.spawn('squarer', a.receiver(), b.sender());
      for (let i = 1; i <= 20; i++) await watchdog(a.sendAsync(i), 'the pipeline input');
      a.close();
      const [n1, n2, total] = await watchdog(Promise.all([sq1.join(), sq2.join(), sum.join()]), 'the pipeline');
      expect([n1, n2]).toEqual([20, 20]);
      let expected = 0;
      for (let i = 1; i <= 20; i++) expected += i ** 4;
      expect(total).toBe(expected);
      expect(p.stats().workers.length).toBeGreaterThanOrEqual(3);
      expect(await watchdog(p.run('inc', 1), 'a task after')).toBe(2);
      await watchdog(p.close(), 'close');
    });

    test('a process that throws rejects join with its class and code; its worker serves on', async () => {
      const p = pool({ size: 1 });
      const first = await watchdog(p.run('count'), 'count');
      const e = await watchdog(p.spawn('fails', 'start').join(), 'the failing process').catch((x: unknown) => x);
      expect((e as Error).name).toBe('TaskError');
      expect((e as { code: string }).code).toBe('E_TASK');
      expect(await watchdog(p.run('count'), 'count after')).toBe(first + 1); // the same worker
      await p.close();
    });

    test('terminate: a blocked process is woken and ends, its worker kept; one that ignores it loses its worker', async () => {
      const p = pool({ size: 1, abortGrace: 100 });
      const first = await watchdog(p.run('count'), 'count');
      const never = chan<number>();
      const seen = chan<string>(4);
      const blocked = p.spawn('waitOn', never.receiver(), seen.sender());
      expect(await watchdog(seen.recvAsync(), 'the process waiting')).toBe('waiting');
      await watchdog(blocked.terminate(), 'terminate');
      const e = await blocked.join().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ProcessFailedError);
      expect((e as Error).message).toContain('terminated');
      expect(await watchdog(seen.recvAsync(), 'how the wait ended')).toContain('ERR_ABORTED');
      expect(await watchdog(p.run('count'), 'count after')).toBe(first + 1); // its worker lives on

      const [kept] = p.stats().workers.map((w) => w.index);
      const spinning = p.spawn('spinForever', seen.sender());
      expect(await watchdog(seen.recvAsync(), 'the spinner')).toBe('started');
      await watchdog(spinning.terminate(), 'terminate the spinner');
      await expect(spinning.join()).rejects.toBeInstanceOf(ProcessFailedError);
      expect(await watchdog(p.run('inc', 1), 'a task on the new worker')).toBe(2);
      expect(p.stats().workers.map((w) => w.index)).not.toContain(kept); // stopped, and replaced
      await watchdog(p.close(), 'close');
    });

    test('close waits for processes; spawn after close fails with ERR_POOL_CLOSED', async () => {
      const p = pool({ size: 1 });
      const input = chan<number>(2);
      const proc = p.spawn('summer', input.receiver());
      const closing = p.close();
      await watchdog(input.sendAsync(5), 'input');
      input.close();
      expect(await watchdog(proc.join(), 'the process')).toBe(5);
      await watchdog(closing, 'close');
      await expect(p.spawn('summer', chan<number>().receiver()).join()).rejects.toBeInstanceOf(PoolClosedError);
    });
  });
});

describe('how long a pool keeps the program alive', () => {
  /** Runs fixtures/`fixture` with `mode` as a program of its own; killed if it hangs. */
  function program(mode: string, fixture = 'lifetime-main.mjs'): { out: string[]; status: number | null; stderr: string } {
    const file = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
    const r = spawnSync(process.execPath, [file, mode], { encoding: 'utf8', timeout: 20_000 });
    if (r.signal !== null) throw new Error(`watchdog: the ${mode} program did not exit within 20 s\n${r.stderr}`);
    return { out: r.stdout.trim().split('\n'), status: r.status, stderr: r.stderr };
  }

  test('a task blocked for good, with main waiting on it, fails with ERR_DEADLOCK; the pool goes on', () => {
    const r = program('', 'deadlock-main.mjs');
    expect(r.status, r.stderr).toBe(0);
    const seen = JSON.parse(r.out.at(-1)!) as { code: string; ms: number; message: string; after: number };
    expect(seen.code).toBe('ERR_DEADLOCK');
    expect(seen.message).toContain('recv on never-fed');
    expect(seen.ms).toBeLessThan(5000);
    expect(seen.after).toBe(2); // served by the worker that replaced the stuck one
  });

  test("a blocked task run with the program's AbortSignal.timeout() is aborted by it, not failed as a deadlock", () => {
    const r = program('', 'signal-timeout-main.mjs');
    expect(r.out, r.stderr).toEqual(['ERR_ABORTED']);
    expect(r.status).toBe(0);
  });

  test('a task and a close that can never finish (the worker blocks in its initializer) fail with ERR_DEADLOCK', () => {
    const r = program('', 'blocked-close-main.mjs');
    expect(r.out, r.stderr).toEqual([JSON.stringify(['ERR_DEADLOCK', 'ERR_DEADLOCK'])]);
    expect(r.status).toBe(0); // then main has finished, and the program exits
  });

  test('an idle pool that was never closed lets the program exit (its workers are not a deadlock)', () => {
    const r = program('idle');
    expect(r.out).toEqual(['task 42', 'main done']);
    expect(r.stderr).not.toMatch(/deadlock|blocked/i);
    expect(r.status).toBe(0);
  });

  test('a pool closed or destroyed after a while idle keeps the program alive until it is done', () => {
    const closed = program('sleep-close');
    expect(closed.out, closed.stderr).toEqual(['task 42', 'slept', 'closed', 'main done']);
    expect(closed.status).toBe(0);
    const destroyed = program('sleep-destroy');
    expect(destroyed.out, destroyed.stderr).toEqual(['task 42', 'slept', 'destroyed', 'main done']);
    expect(destroyed.status).toBe(0);
    const closedAtOnce = program('close');
    expect(closedAtOnce.out, closedAtOnce.stderr).toEqual(['task 42', 'closed', 'main done']);
    expect(closedAtOnce.status).toBe(0);
    // An unref()'d process still running when the pool is closed: the close waits for it.
    const withProcess = program('unref-close');
    expect(withProcess.out, withProcess.stderr).toEqual(['task 42', 'process ended, sum 6', 'closed', 'main done']);
    expect(withProcess.status).toBe(0);
  });

  test('destroy() right after new Pool (workers not started yet) settles', async () => {
    const p = new Pool({ module, size: 2 });
    const task = p.run('inc', 1).then(() => 'resolved', (e: unknown) => e);
    await watchdog(p.destroy(), 'destroy');
    expect(await task).toBeInstanceOf(PoolClosedError);
    expect(p.stats().workers).toEqual([]);
  });

  test("an unref()'d process does not keep the program alive", () => {
    const r = program('unref');
    expect(r.out).toEqual(['task 42', 'main done']); // it never got to say it ended
    expect(r.status).toBe(0);
  });

  test("unref() called while the pool is busy takes effect when it is idle again", () => {
    const r = program('unref-later');
    expect(r.out).toEqual(['task 42', 'main done']);
    expect(r.status).toBe(0);
  });

  test("ref() undoes unref(): the program waits for the process", () => {
    const r = program('ref-again');
    expect(r.out).toEqual(['task 42', 'main done', 'process ended, sum 6']);
    expect(r.status).toBe(0);
  });

  test("join() waits for an unref()'d process, and keeps the program alive meanwhile", () => {
    const r = program('join');
    expect(r.out).toEqual(['task 42', 'process ended, sum 6', 'joined 6', 'main done']);
    expect(r.status).toBe(0);
  });
});
