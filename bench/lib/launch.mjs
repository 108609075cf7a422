// Main-side helpers for the baselines: start the parties of one run, wait for their reports,
// and turn them into ns/op. One run = fresh workers; the harness terminates them afterwards.
import { MessageChannel } from 'node:worker_threads';

export const now = () => Number(process.hrtime.bigint());

const baselineUrl = (file) => new URL(`../baselines/${file}`, import.meta.url);

/**
 * Starts one worker per party (`{ file, data, transfer }`, file relative to bench/baselines/),
 * plus an optional main-thread party `main({ barrier, parties })` that resolves to a report.
 * Every party gets `ops`, `warmup`, the barrier and the party count in its workerData.
 * Resolves to `{ ns_per_op, checksum }`: wall time from the first release of the start
 * barrier to the last party's end, over `opts.ops`; checksums summed as uint32.
 */
export async function runParties(opts, workers, main) {
  const parties = workers.length + (main ? 1 : 0);
  const barrier = new SharedArrayBuffer(4);
  const reports = workers.map(
    ({ file, data = {}, transfer = [] }) =>
      new Promise((resolve, reject) => {
        const w = opts.spawn(baselineUrl(file), {
          workerData: { ...data, ops: opts.ops, warmup: opts.warmup, barrier, parties },
          transferList: transfer,
        });
        w.on('message', (m) => m?.type === 'bench-result' && resolve(m));
        w.on('error', reject);
        w.on('exit', (code) => reject(new Error(`${file} exited (code ${code}) before reporting`)));
      }),
  );
  if (main) reports.push(main({ barrier, parties }));
  const all = await Promise.all(reports);
  const t0 = Math.min(...all.map((r) => r.t0));
  const t1 = Math.max(...all.map((r) => r.t1));
  const checksum = all.reduce((s, r) => (s + r.checksum) >>> 0, 0);
  return { ns_per_op: (t1 - t0) / opts.ops, checksum };
}

/** The barrier for a main-thread party: never blocks the main thread (Atomics.waitAsync). */
export async function barrierAsync(signal, barrier, parties) {
  const b = new Int32Array(barrier);
  Atomics.add(b, 0, 1);
  Atomics.notify(b, 0);
  for (;;) {
    const v = Atomics.load(b, 0);
    if (v >= parties) return;
    await waitWhile(signal, b, 0, v);
  }
}

/**
 * One `Atomics.waitAsync` while `arr[i] === v`, awaited only if it really parks.
 * The 1 s timeout exists only so an aborted run (watchdog) stops instead of waiting forever.
 */
export async function waitWhile(signal, arr, i, v) {
  const w = Atomics.waitAsync(arr, i, v, 1000);
  if (w.async && (await w.value) === 'timed-out' && signal.aborted) throw new Error('aborted');
}

/**
 * `count` independent pairs of workers running `file`, roles[0] and roles[1] in each pair;
 * `ends()` makes what one pair shares, as [first end, second end] of `{ data, transfer }`.
 */
export function pairs(opts, file, { count = 1, roles = ['ping', 'pong'], ends, data = {} }) {
  const workers = [];
  for (let p = 0; p < count; p++) {
    const pair = ends();
    roles.forEach((role, k) =>
      workers.push({ file, data: { ...data, ...pair[k].data, role }, transfer: pair[k].transfer }),
    );
  }
  return runParties(opts, workers);
}

/** Ends for SAB impls: one SharedArrayBuffer of `bytes`, seen by both ends as `data.sab`. */
export const sabEnds = (bytes) => () => {
  const sab = new SharedArrayBuffer(bytes);
  return [{ data: { sab }, transfer: [] }, { data: { sab }, transfer: [] }];
};

/** Ends for postMessage impls: one MessageChannel, one port to each end as `data.port`. */
export const portEnds = () => {
  const { port1, port2 } = new MessageChannel();
  return [
    { data: { port: port1 }, transfer: [port1] },
    { data: { port: port2 }, transfer: [port2] },
  ];
};
