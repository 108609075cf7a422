/**
 * Property tests over real workers: P producers and C consumers on one channel of random
 * capacity. Every value is received exactly once, and each consumer sees each producer's values
 * in send order. The same property is shown to fail when a test-only fault is switched on.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, test } from 'vitest';
import { chan, spawn } from '@occam/core';
import { checkInvariants, setFault } from '@occam/core/testing';
import { watchdog } from './helpers.js';

const procs = new URL('./fixtures/chan-procs.ts', import.meta.url);

type Msg = [number, number];

/** Runs one network; returns what went wrong, or null. */
async function runNetwork(producers: number, consumers: number, cap: number, n: number): Promise<string | null> {
  const ch = chan<Msg>(cap);
  const cons = Array.from({ length: consumers }, () => spawn<Msg[]>(procs, 'consume', [ch]));
  const prods = Array.from({ length: producers }, (_, id) => spawn<number>(procs, 'produce', [ch, id, n]));
  await watchdog(Promise.all(prods.map((p) => p.join())), `${producers} producers`, 30_000);
  ch.close();
  const got = await watchdog(Promise.all(cons.map((p) => p.join())), `${consumers} consumers`, 30_000);
  const inv = checkInvariants(ch);
  if (inv.length > 0) return `invariants: ${inv.join('; ')}`;
  const seen = new Map<string, number>();
  for (const list of got) {
    const last = new Map<number, number>();
    for (const [id, seq] of list) {
      const key = `${id}:${seq}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      if ((last.get(id) ?? -1) >= seq) return `producer ${id}'s value ${seq} arrived out of order`;
      last.set(id, seq);
    }
  }
  for (let id = 0; id < producers; id++) {
    for (let seq = 0; seq < n; seq++) {
      const k = seen.get(`${id}:${seq}`) ?? 0;
      if (k !== 1) return `producer ${id}'s value ${seq} was received ${k} times`;
    }
  }
  if (seen.size !== producers * n) return `received ${seen.size} distinct values, expected ${producers * n}`;
  return null;
}

/** The message of the property's own failure (fast-check puts it in `cause`), or 'passed'. */
async function failureOf(run: Promise<void>): Promise<string> {
  try {
    await run;
    return 'passed';
  } catch (e) {
    return String(((e as Error).cause as Error | undefined)?.message ?? (e as Error).message);
  }
}

const network = fc.record({
  producers: fc.integer({ min: 1, max: 4 }),
  consumers: fc.integer({ min: 1, max: 4 }),
  cap: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(1024)),
  n: fc.integer({ min: 100, max: 250 }),
});

const deliversExactlyOnceInOrder = fc.asyncProperty(network, async ({ producers, consumers, cap, n }) => {
  const problem = await runNetwork(producers, consumers, cap, n);
  if (problem !== null) throw new Error(problem);
});

describe('exactly once, per-producer FIFO, over real workers', () => {
  afterEach(() => setFault(null));

  test('holds for random producers × consumers × capacities', async () => {
    await fc.assert(deliversExactlyOnceInOrder, { numRuns: 100 });
  });

  test('fails when a test-only fault drops a value', async () => {
    setFault('drop');
    expect(await failureOf(fc.assert(deliversExactlyOnceInOrder, { numRuns: 5, endOnFailure: true }))).toMatch(
      /received 0 times/,
    );
  });

  test('fails when a test-only fault reorders two buffered values', async () => {
    setFault('reorder');
    const buffered = fc.record({
      producers: fc.constant(1),
      consumers: fc.constant(1),
      cap: fc.integer({ min: 4, max: 1024 }),
      n: fc.integer({ min: 200, max: 250 }),
    });
    const prop = fc.asyncProperty(buffered, async ({ producers, consumers, cap, n }) => {
      const problem = await runNetwork(producers, consumers, cap, n);
      if (problem !== null) throw new Error(problem);
    });
    expect(await failureOf(fc.assert(prop, { numRuns: 10, endOnFailure: true }))).toMatch(/out of order/);
  });
});
