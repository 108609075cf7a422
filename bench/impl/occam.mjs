// impl `occam`: the benchmark scenarios on occam channels and processes (contract: ../run.mjs).
import { chan, spawn } from '@occam/core';
import { mix, sumTo } from '../lib/checksum.mjs';
import { poolScenarios } from '../lib/pool-load.mjs';
import { occamPool } from './occam.pool.mjs';

const procs = new URL('./occam.procs.mjs', import.meta.url);
const now = () => Number(process.hrtime.bigint());

/** Starts `parties` (spawn specs) plus an optional async main party; runs the start barrier. */
async function run(opts, parties, mainParty) {
  const ready = chan(0, { name: 'ready' });
  const go = chan(0, { name: 'go' });
  const ps = parties.map(([fn, args]) => spawn(procs, fn, [...args(ready, go)]));
  const onAbort = () => ps.forEach((p) => void p.terminate());
  opts.signal.addEventListener('abort', onAbort, { once: true });
  const mainReport = mainParty?.(ready, go);
  const total = ps.length + (mainParty ? 1 : 0);
  // The signal ends the main side's waits too, so an abandoned run leaves nothing holding Node open.
  for (let i = 0; i < total; i++) await ready.recvAsync({ signal: opts.signal });
  go.close();
  const reports = await Promise.all([...ps.map((p) => p.join()), ...(mainReport ? [mainReport] : [])]);
  opts.signal.removeEventListener('abort', onAbort);
  const t0 = Math.min(...reports.map((r) => r.t0));
  const t1 = Math.max(...reports.map((r) => r.t1));
  const checksum = reports.reduce((s, r) => (s + r.checksum) >>> 0, 0);
  return { ns_per_op: (t1 - t0) / opts.ops, checksum };
}

function pingPongPair(opts) {
  const a = chan(0);
  const b = chan(0);
  return [
    ['ping', (r, g) => [a, b, r, g, opts.ops, opts.warmup]],
    ['pongP', (r, g) => [a, b, r, g, opts.ops, opts.warmup]],
  ];
}

function stream(cap, obj) {
  return (opts) => {
    const ch = chan(cap);
    return run(opts, [
      ['producer', (r, g) => [ch, r, g, opts.ops, opts.warmup, obj]],
      ['consumer', (r, g) => [ch, r, g, opts.ops, opts.warmup, obj]],
    ]);
  };
}

/** Main is the pinger, with async ops; the worker answers with sync ones. */
function pingPongM2W(opts) {
  const a = chan(0);
  const b = chan(0);
  const mainParty = async (ready, go) => {
    const signal = { signal: opts.signal };
    for (let i = 0; i < opts.warmup; i++) {
      await a.sendAsync(i, signal);
      await b.recvAsync(signal);
    }
    await ready.sendAsync(1, signal);
    for await (const _ of go);
    const t0 = now();
    let s = 0;
    for (let i = 0; i < opts.ops; i++) {
      await a.sendAsync(i, signal);
      s = mix(s, await b.recvAsync(signal));
    }
    return { t0, t1: now(), checksum: s >>> 0 };
  };
  return run(opts, [['pongP', (r, g) => [a, b, r, g, opts.ops, opts.warmup]]], mainParty);
}

function mpmc(opts) {
  const ch = chan(1024);
  const half = opts.ops / 2;
  return run(opts, [
    ['mpmcProducer', (r, g) => [ch, r, g, 0, half, opts.warmup]],
    ['mpmcProducer', (r, g) => [ch, r, g, half, opts.ops, opts.warmup]],
    ['mpmcConsumer', (r, g) => [ch, r, g]],
    ['mpmcConsumer', (r, g) => [ch, r, g]],
  ]);
}

/**
 * Producers, one per channel of `chans` up to `fed`, each send their share of 0..ops-1; one
 * consumer takes them all by a select over every channel (or by recv, with one channel).
 */
function selectRun(caps, fed, consumer) {
  return (opts) => {
    const chans = caps.map((cap) => chan(cap));
    // Every producer warms up fully (the consumer then does `fed` times as many selects): with
    // five threads on two cores, V8's background compiler gets little CPU, and a short warm-up
    // leaves the first 100k or so timed messages on unoptimised code.
    const warmEach = caps[0] === 0 ? opts.warmup : Math.max(opts.warmup, SELECT_WARMUP);
    return run(opts, [
      ...chans.slice(0, fed).map((ch, k) => ['shareProducer', (r, g) => [ch, r, g, k, fed, opts.ops, warmEach]]),
      consumer === 'select'
        ? ['selectConsumer', (r, g) => [chans, r, g, opts.ops, warmEach * fed]]
        : ['recvConsumer', (r, g) => [chans[0], r, g, opts.ops, warmEach * fed]],
    ]);
  };
}

const SELECT_WARMUP = 50_000;

const selectScenario = (op, caps, fed, consumer, ratioTo) => ({
  run: warm(selectRun(caps, fed, consumer)),
  op,
  expected: sumTo,
  ratioTo,
});

/**
 * occam's code paths are longer than a baseline's few lines, and V8 needs more calls to optimise
 * them: every party warms up at least MIN_WARMUP ops (untimed, like all warm-up), so a short
 * calibrated run measures the steady state rather than the interpreter.
 */
const MIN_WARMUP = 10_000;
const warm = (run) => (opts) => run({ ...opts, warmup: Math.max(opts.warmup, MIN_WARMUP) });

export const scenarios = {
  ...poolScenarios(occamPool, new URL('./occam.pool-startup.mjs', import.meta.url)),
  'pingpong-w2w': warm((opts) => run(opts, pingPongPair(opts))),
  'pingpong-m2w': warm(pingPongM2W),
  'spsc-0-int': warm(stream(0, false)),
  'spsc-1024-int': warm(stream(1024, false)),
  'spsc-1024-obj': warm(stream(1024, true)),
  'mpmc-1024-int': warm(mpmc),
  'pingpong-w2w-x2': warm((opts) => run(opts, [...pingPongPair(opts), ...pingPongPair(opts)])),
  'select4-unbuffered': selectScenario(
    'one int received by a select over 4 unbuffered channels, each fed by its own producer worker',
    [0, 0, 0, 0],
    4,
    'select',
  ),
  'select4-buffered': selectScenario(
    'one int received by a select over 4 channels of capacity 1024, each fed by its own producer worker',
    [1024, 1024, 1024, 1024],
    4,
    'select',
  ),
  'select1-ready-1024': selectScenario(
    'one int received by a select over 4 channels of capacity 1024 of which one is fed (compare recv-1024-int)',
    [1024, 1024, 1024, 1024],
    1,
    'select',
    'recv-1024-int',
  ),
  'recv-1024-int': selectScenario(
    'one int received by a plain recv on a channel of capacity 1024 fed by one producer (the select1-ready-1024 baseline)',
    [1024],
    1,
    'recv',
  ),
};
