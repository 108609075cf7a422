/**
 * The wait-for report: processes parked with no deadline, named, with the channels and
 * operations they wait on.
 */
import { describe, expect, test } from 'vitest';
import { chan, ChannelPoisonedError, formatWaitReport, poison, spawn, waitReport } from '@occam/core';
import { hostTable, retireIdleHosts } from '@occam/core/testing';
import { runFixture as runNode, until, watchdog } from './helpers.js';

const procs = new URL('./fixtures/poison-procs.ts', import.meta.url);

describe('waitReport', () => {
  test('names two processes deadlocked on each other, with channel and operation', async () => {
    const a = chan<number>(0, { name: 'a' });
    const b = chan<number>(0, { name: 'b' });
    const left = spawn(procs, 'sendThenRecv', [a, b], { name: 'left' });
    const right = spawn(procs, 'sendThenRecv', [b, a], { name: 'right' });
    await until(() => waitReport().length === 2, 'both to appear in the report');
    const report = waitReport().sort((x, y) => x.process.localeCompare(y.process));
    expect(report).toEqual([
      { process: 'left', waitsOn: [{ channel: 'a', op: 'send' }] },
      { process: 'right', waitsOn: [{ channel: 'b', op: 'send' }] },
    ]);
    expect(formatWaitReport(report)).toBe('left: send on a\nright: send on b');
    poison(a, b);
    for (const p of [left, right]) await expect(watchdog(p.join(), p.name)).rejects.toBeInstanceOf(ChannelPoisonedError);
    expect(waitReport()).toEqual([]);
    expect(formatWaitReport([])).toBe('no process is blocked');
  });

  test('a select shows every case it waits on; a timed wait is not reported', async () => {
    const x = chan<number>(0, { name: 'x' });
    const y = chan<number>(2, { name: 'y' });
    const untimed = spawn(procs, 'blockOnce', [x, 'select'], { name: 'untimed' });
    const timed = spawn(procs, 'selectTimed', [x, y], { name: 'timed' });
    await until(() => waitReport().length === 1 && x.waitingReceivers === 2, 'the untimed select to be reported');
    expect(waitReport()).toEqual([{ process: 'untimed', waitsOn: [{ channel: 'x', op: 'recv' }] }]);
    x.poison();
    y.poison();
    expect(await watchdog(untimed.join(), 'untimed')).toBe('ERR_CHANNEL_POISONED');
    expect(await watchdog(timed.join(), 'timed')).toBe('ERR_CHANNEL_POISONED');
  });
});

describe('hosts and reused process records', () => {
  test('terminate stops the right worker even when the record was reused before the last host said it was idle', async () => {
    for (let round = 0; round < 5; round++) {
      const x = chan<number>(0, { name: 'x' });
      const first = spawn(procs, 'blockOnce', [x, 'recv']);
      await until(() => x.waitingReceivers === 1, 'first to park');
      await x.sendAsync(1);
      expect(await watchdog(first.join(), 'first')).toBe('completed');
      // At once: the same record is likely reused, possibly before first's host reported idle.
      const second = spawn(procs, 'blockOnce', [x, 'recv'], { name: 'second' });
      await until(() => waitReport().length === 1, 'second to park');
      expect(waitReport().map((p) => p.process)).toEqual(['second']);
      await second.terminate();
      // Its worker is gone: the reaper withdrew its waiter.
      await until(() => x.waitingReceivers === 0, "the terminated worker's waiter to be withdrawn");
    }
  });

  test('hostTable names the process each host runs and whether it holds the program open', async () => {
    const x = chan<number>(0, { name: 'x' });
    const p = spawn(procs, 'blockOnce', [x, 'recv'], { name: 'tabled' });
    await until(() => x.waitingReceivers === 1, 'tabled to park');
    const line = (): string | undefined => hostTable().find((l) => l.includes('tabled'));
    expect(line()).toMatch(/^thread \d+: running tabled \(id \d+\); holds the program open$/);
    p.unref(); // (applied once the host module is at hand: a turn later)
    await until(() => /; unref'd$/.test(line()!), 'its host to be unref\'d');
    p.ref();
    await until(() => /; holds the program open$/.test(line()!), 'its host to be ref\'d again');
    const thread = /^thread (\d+)/.exec(line()!)![1];
    await x.sendAsync(1);
    expect(await watchdog(p.join(), 'tabled')).toBe('completed');
    // Its host, idle now, waits for the next process without holding the program.
    await until(() => hostTable().some((l) => l === `thread ${thread}: idle, on the idle list; unref'd`), 'its host to go idle');
    await retireIdleHosts();
    await until(() => !hostTable().some((l) => l.startsWith(`thread ${thread}:`)), 'its host to end');
  });
});

describe('deadlock detection', () => {
  test('two processes each sending to the other: main fails with ERR_DEADLOCK naming both, within 2 s', () => {
    const r = runNode('deadlock-main.mjs');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { code: string; blocked: unknown; ms: number; message: string };
    expect(out.code).toBe('ERR_DEADLOCK');
    expect(out.blocked).toEqual([
      { process: 'left', waitsOn: [{ channel: 'a', op: 'send' }] },
      { process: 'right', waitsOn: [{ channel: 'b', op: 'send' }] },
    ]);
    expect(out.message).toContain('left: send on a');
    expect(out.ms).toBeLessThan(2000);
  });

  test("no false alarm for waits that the program's AbortSignal.timeout() ends", () => {
    const r = runNode('signal-timeout-main.mjs');
    expect(r.stderr).not.toContain('ERR_DEADLOCK');
    expect(JSON.parse(r.stdout)).toEqual(['ERR_ABORTED', 'ERR_PROCESS_FAILED']);
    expect(r.status).toBe(0);
  });

  test('a process parked in joinSync on a blocked child is blocked too: ERR_DEADLOCK naming the join', () => {
    const r = runNode('nested-deadlock-main.mjs');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { code: string; blocked: unknown[]; message: string };
    expect(out.code).toBe('ERR_DEADLOCK');
    expect(out.blocked).toEqual([
      { process: 'child', waitsOn: [{ channel: 'never', op: 'recv' }] },
      { process: 'parent', waitsOn: [], joins: 'child' },
    ]);
    expect(out.message).toContain('parent: join of child');
  });

  test('no false alarm while a select timer or a main-thread timer is pending', () => {
    const r = runNode('no-deadlock-main.mjs');
    expect(r.stderr).not.toContain('ERR_DEADLOCK');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ select: 'timer', joined: 'completed' });
  });
});

describe('a program whose main has finished', () => {
  test('exits with a warning naming what was left blocked, instead of hanging', () => {
    const t0 = performance.now();
    const r = runNode('forgotten-main.mjs');
    expect(r.stdout.trim()).toBe('main is done');
    expect(r.stderr).toContain('forgotten: recv on requests');
    expect(r.status).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  test('is not ended while main sleeps on a timer of its own', () => {
    const r = runNode('timer-main.mjs');
    expect(r.stdout.trim().split('\n')).toEqual(['main sleeps', 'main woke']);
    expect(r.stderr).toContain('forgotten: recv on requests'); // once main had finished
    expect(r.status).toBe(0);
  });

  test("is neither a deadlock nor finished while a worker thread of the program's own runs", () => {
    const r = runNode('own-worker-main.mjs');
    expect(r.stdout.trim()).toBe('worker exit code 0');
    expect(r.stderr).not.toContain('ERR_DEADLOCK');
    expect(r.stderr).toContain('forgotten: recv on requests'); // once main had finished
    expect(r.status).toBe(0);
  });

  test("exits quietly when the process it left running was unref()'d", () => {
    const r = runNode('unref-main.mjs');
    expect(r.stdout.trim()).toBe('it runs; main is done');
    expect(r.stderr).not.toContain('still blocked'); // not the detector's exit: Node's own
    expect(r.status).toBe(0);
  });

  test("an unref'd join (join({ ref: false })) neither keeps it alive nor counts as main waiting", () => {
    const r = runNode('unref-main.mjs', 'watched');
    expect(r.stdout.trim()).toBe('it runs; main is done'); // no "join failed: ERR_DEADLOCK"
    expect(r.stderr).not.toContain('still blocked');
    expect(r.status).toBe(0);
  });
});
