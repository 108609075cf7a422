/**
 * Property test over real workers: random networks of selecting processes on channels of random
 * capacities. Each node sends to some channels and receives from others, every step a select
 * over its next send and all its open receives. Every message is delivered exactly once, and
 * each receiver sees each sender's messages on a channel in the order they were sent.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { chan, spawn } from '@occam/core';
import { checkInvariants, setFault } from '@occam/core/testing';
import { watchdog } from '../../core/test/helpers.js';

const procs = new URL('./fixtures/select-procs.ts', import.meta.url);
type Msg = [number, number];
type Got = [chan: number, sender: number, seq: number][];

interface Net {
  caps: number[];
  /** For each channel, the nodes that receive from it (at least one). */
  receivers: number[][];
  /** For each node, the channels it sends to, in order. */
  sends: number[][];
}

/** Runs one network; returns what went wrong, or null. */
async function runNetwork(net: Net): Promise<string | null> {
  const nodes = net.sends.length;
  const chans = net.caps.map((cap, i) => chan<Msg>(cap, { name: `c${i}` }));
  const done = chan<number>(nodes);
  const from = net.sends.map((_, id) => net.receivers.flatMap((rs, c) => (rs.includes(id) ? [c] : [])));
  const ps = net.sends.map((sends, id) => spawn<Got>(procs, 'networkNode', [chans, done, id, sends, from[id]]));
  // A node that only sends ends after its sends; one that also receives reports on `done`.
  await watchdog(Promise.all(ps.filter((_, id) => from[id]!.length === 0).map((p) => p.join())), 'sending nodes', 30_000);
  const pending = new Set(from.flatMap((f, id) => (f.length > 0 ? [id] : [])));
  while (pending.size > 0) pending.delete(await watchdog(done.recvAsync(), `nodes ${[...pending].join(', ')} to finish sending`, 30_000));
  for (const c of chans) c.close();
  const got = await watchdog(Promise.all(ps.map((p) => p.join())), 'nodes', 30_000);
  for (const c of chans) {
    const inv = checkInvariants(c);
    if (inv.length > 0) return `${c.name}: ${inv.join('; ')}`;
  }
  return problemOf(net, got);
}

/** What is wrong with what the nodes received (`got`, one list per node), or null. */
function problemOf(net: Net, got: Got[]): string | null {
  const seen = new Map<string, number>();
  for (const list of got) {
    const last = new Map<string, number>();
    for (const [c, s, q] of list) {
      const key = `${s}:${q}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      if (net.sends[s]![q] !== c) return `message ${key} arrived on c${c}, sent to c${net.sends[s]![q]}`;
      const order = `${c}/${s}`;
      if ((last.get(order) ?? -1) >= q) return `sender ${s}'s message ${q} on c${c} arrived out of order`;
      last.set(order, q);
    }
  }
  for (const [s, sends] of net.sends.entries()) {
    for (let q = 0; q < sends.length; q++) {
      const k = seen.get(`${s}:${q}`) ?? 0;
      if (k !== 1) return `sender ${s}'s message ${q} was received ${k} times`;
    }
  }
  return null;
}

/**
 * A network: channels with random capacities and receivers; each node sends only to channels
 * that some other node receives from (a select never pairs with itself, so a node alone on a
 * rendezvous channel would wait for ever; that is deadlock, not a delivery bug).
 */
const network: fc.Arbitrary<Net> = fc
  .record({
    nodes: fc.integer({ min: 2, max: 4 }),
    chans: fc.integer({ min: 1, max: 3 }),
  })
  .chain(({ nodes, chans }) =>
    fc.record({
      caps: fc.array(fc.constantFrom(0, 0, 1, 2, 5), { minLength: chans, maxLength: chans }),
      receivers: fc.array(fc.uniqueArray(fc.integer({ min: 0, max: nodes - 1 }), { minLength: 1, maxLength: nodes }), {
        minLength: chans,
        maxLength: chans,
      }),
      sends: fc.array(fc.array(fc.integer({ min: 0, max: chans - 1 }), { maxLength: 60 }), {
        minLength: nodes,
        maxLength: nodes,
      }),
    }),
  )
  .map((net) => ({
    ...net,
    sends: net.sends.map((list, id) => list.filter((c) => net.receivers[c]!.some((r) => r !== id))),
  }));

describe('random networks of selecting processes', () => {
  test('deliver every message exactly once, in per-sender order on each channel', async () => {
    await fc.assert(
      fc.asyncProperty(network, async (net) => {
        const problem = await runNetwork(net);
        expect(problem, JSON.stringify(net)).toBeNull();
      }),
      { numRuns: 40 },
    );
  });

  test('the check catches a lost message (test-only fault on real workers) and a reordered one', async () => {
    // Only sending and only receiving nodes: the run then needs no `done` message, which the
    // fault could lose too.
    const net: Net = { caps: [0, 4, 1], receivers: [[2, 3], [2], [3]], sends: [[0, 1, 2, 0, 1, 2, 2], [1, 1, 0, 0, 2, 2, 1], [], []] };
    net.sends = net.sends.map((l) => [...l, ...l, ...l, ...l, ...l, ...l]);
    expect(await runNetwork(net)).toBeNull();
    setFault('drop');
    try {
      expect(await runNetwork(net)).toMatch(/received 0 times/);
    } finally {
      setFault(null);
    }
    const small: Net = { caps: [2], receivers: [[1]], sends: [[0, 0, 0], []] };
    expect(problemOf(small, [[], [[0, 0, 0], [0, 0, 1], [0, 0, 2]]])).toBeNull();
    expect(problemOf(small, [[], [[0, 0, 0], [0, 0, 2], [0, 0, 1]]])).toMatch(/out of order/);
    expect(problemOf(small, [[], [[0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 2]]])).toMatch(/out of order|received 2 times/);
  });
});
