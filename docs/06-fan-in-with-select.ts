/**
 * Lesson 6 — fan-in with select: one reader, many channels, each closing in its own time.
 *
 * What it does: three producers, each with a channel of its own, send numbered messages at
 * different speeds and close their channels when done. One merger process reads all three with
 * a select, forwards every message onto one output channel, and closes the output once every
 * input is closed. The main thread reads the merged stream and checks that every message arrived
 * exactly once and, per producer, in order. Then a small experiment shows a fair select beside
 * a `priority` one.
 *
 * What it introduces:
 *   - a select over a list of cases made at run time, `ins.map((c) => recv(c))`, and kept:
 *     the same case objects serve every select of the loop.
 *   - `ok: false`: a receive case on a closed and drained channel is always ready, so a loop that
 *     kept it would spin on it. The loop switches the case off with its guard,
 *     `cases[i].when(false)`, and stops when no case is left on. (Go sets the channel variable to
 *     nil for this; `recv(null)` is the same idea here.)
 *   - unlike lesson 3, the merged channel has one sender, the merger, so it can be closed and the
 *     reader needs no count.
 *   - fair choice: a select takes a ready case uniformly at random, so a busy producer cannot
 *     starve a quiet one; `{ priority: true }` takes the first ready case in list order
 *     (occam's PRI ALT), which is what you want only when starving the later cases is the point.
 *
 * Left for later: a server loop with quit, a heartbeat and non-blocking selects (lesson 7).
 *
 * Run: occam run docs/06-fan-in-with-select.ts
 */
import { chan, main, par, spawn, type Receiver, type Sender } from '@occam/core';
import { after, recv, select } from '@occam/select';

/** A message: who sent it, and its number in that sender's sequence. */
export type Msg = [from: string, seq: number];

/** Sends `n` messages, pausing `pause` ms after each, then closes its channel. */
export function producer(name: string, n: number, pause: number, out: Sender<Msg>): number {
  for (let seq = 0; seq < n; seq++) {
    out.send([name, seq]);
    if (pause > 0) select([after(pause)]);
  }
  out.close();
  return n;
}

/** Forwards every message of every input onto `out`; closes `out` once all inputs are closed. */
export function merger(ins: Receiver<Msg>[], out: Sender<Msg>): string[] {
  const cases = ins.map((c) => recv(c));
  const closedInOrder: string[] = [];
  let open = cases.length;
  while (open > 0) {
    const r = select(cases);
    if (r.ok) {
      out.send(r.value);
    } else {
      cases[r.index]!.when(false); // disable this case: its channel is closed and drained
      closedInOrder.push(ins[r.index]!.name);
      open--;
    }
  }
  out.close();
  return closedInOrder;
}

/** Makes `rounds` selects between two channels that are never empty; counts which one each took. */
export function pick(a: Receiver<number>, b: Receiver<number>, rounds: number, priority: boolean): [number, number] {
  const counts: [number, number] = [0, 0];
  const cases = [recv(a), recv(b)] as const;
  for (let i = 0; i < rounds; i++) counts[select(cases, { priority }).index]++;
  return counts;
}

main(async () => {
  const plan = [
    { name: 'a', n: 400, pause: 0 }, // fast
    { name: 'b', n: 100, pause: 1 },
    { name: 'c', n: 20, pause: 5 }, // slow
  ];
  const inputs = plan.map((p) => chan<Msg>(8, { name: p.name }));
  const merged = chan<Msg>(8, { name: 'merged' });
  const producers = plan.map((p, i) =>
    spawn<number>(import.meta.url, 'producer', [p.name, p.n, p.pause, inputs[i]!.sender()]),
  );
  const merging = spawn<string[]>(import.meta.url, 'merger', [inputs.map((c) => c.receiver()), merged.sender()]);

  const seen = new Map<string, number[]>(plan.map((p) => [p.name, []]));
  let arrivals = '';
  for await (const [from, seq] of merged) {
    seen.get(from)!.push(seq);
    arrivals += from;
  }
  const [closedInOrder, ...sent] = await par(merging, ...producers);
  console.log(`first arrivals: ${arrivals.slice(0, 64)}…`);
  console.log(`inputs closed in the order ${closedInOrder.join(', ')}; ${arrivals.length} messages merged`);
  for (const p of plan) {
    const seqs = seen.get(p.name)!;
    console.log(`from ${p.name}: ${seqs.length} messages`);
    // Exactly once and in order: the sequence must be 0, 1, …, n-1.
    if (seqs.length !== p.n || seqs.some((s, i) => s !== i)) throw new Error(`messages from ${p.name} were lost, doubled or reordered`);
  }
  if (sent.join() !== plan.map((p) => p.n).join()) throw new Error('a producer sent the wrong number');

  // Fair versus priority: two channels that stay full for the whole experiment.
  const full = (): [Receiver<number>, Receiver<number>] => {
    const pair = [chan<number>(100), chan<number>(100)] as const;
    for (const c of pair) for (let i = 0; i < 100; i++) c.trySend(i).unwrap();
    return [pair[0].receiver(), pair[1].receiver()];
  };
  const fair = await spawn<[number, number]>(import.meta.url, 'pick', [...full(), 100, false]).join();
  const prio = await spawn<[number, number]>(import.meta.url, 'pick', [...full(), 100, true]).join();
  console.log(`both always ready, 100 selects: fair took ${fair.join(' / ')}, priority took ${prio.join(' / ')}`);
  // A fair split of 100 falls outside 20..80 about once in a billion runs.
  if (fair[0] < 20 || fair[1] < 20) throw new Error(`the fair select was not fair: ${fair.join(' / ')}`);
  if (prio[0] !== 100) throw new Error('priority must always take the first ready case');
});
