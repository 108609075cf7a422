// The built-in scenarios: what one op is, and the checksum a correct run must produce for
// `ops` timed ops (the harness checks it; an impl cannot grade itself). Order = print order.
import { foldMix, sumTo, pong, mix } from './lib/checksum.mjs';

const pingPong = (ops) => foldMix(ops, pong); // the pinger mixes the replies pong(0..ops-1)
const inOrder = (ops) => foldMix(ops, (i) => i); // the consumer mixes 0..ops-1 in order

export const scenarios = [
  {
    name: 'pingpong-w2w',
    op: 'one worker↔worker round trip',
    expected: pingPong,
  },
  {
    name: 'pingpong-m2w',
    op: 'one main↔worker round trip; the main thread never blocks (waitAsync / events)',
    expected: pingPong,
  },
  {
    name: 'spsc-0-int',
    op: 'one int, 1 producer → 1 consumer worker, unbuffered: a send returns once received',
    expected: inOrder,
  },
  {
    name: 'spsc-1024-int',
    op: 'one int, 1 producer → 1 consumer worker, buffer 1024, each item published as sent',
    expected: inOrder,
  },
  {
    name: 'spsc-1024-obj',
    op: "one {id, name: 'item-'+id, tags} object, 1 → 1 worker, buffer 1024, rebuilt on receipt",
    expected: (ops) => {
      let s = 0;
      for (let i = 0; i < ops; i++) s = mix(mix(s, i), ('item-' + i).length);
      return s >>> 0;
    },
  },
  {
    name: 'mpmc-1024-int',
    op: 'one int, 2 producer → 2 consumer workers sharing one buffer of 1024 (checksum: sum)',
    expected: sumTo,
  },
  {
    name: 'pingpong-w2w-x2',
    op: 'one round trip of one pair while a 2nd pair runs (4 threads, 2 cores); ns/op = wall / round trips per pair',
    expected: (ops) => (2 * pingPong(ops)) >>> 0,
    hintOps: 200, // spinning pairs can take milliseconds a round trip here
  },
  // Pools: one task is `x => x + 1` on 2 workers (bench/baselines/pool-tasks.mjs, and the same
  // function in TypeScript for occam); the checksum is the sum of the results.
  {
    name: 'pool-throughput',
    op: 'one trivial task (x => x + 1) on a pool of 2 workers, 1,000 tasks in flight',
    expected: (ops) => (sumTo(ops) + ops) >>> 0,
  },
  {
    name: 'pool-latency',
    op: 'one trivial task, one at a time: the round trip main → worker → main',
    expected: (ops) => (sumTo(ops) + ops) >>> 0,
    hintOps: 2000,
  },
  {
    name: 'pool-idle-latency',
    op: 'one trivial task after 5 ms idle (only the task is timed): waking a parked worker',
    expected: (ops) => (sumTo(ops) + ops) >>> 0,
    hintOps: 20,
  },
  {
    name: 'pool-startup',
    op: 'a fresh process makes a pool of 2 and gets its first result (occam: a TypeScript module); ns from `new` to the result',
    expected: (ops) => ops >>> 0,
    hintOps: 2,
  },
];
