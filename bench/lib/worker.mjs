// Worker-side helpers for the baseline worker files: the start barrier, the clock, the report.
//
// Every party of a run (each worker, and the main thread in the m2w scenarios) does its
// warm-up, then arrives at one shared barrier, then times from its release to its last op.
// The harness takes max(t1) - min(t0) over the parties, so the start-up of the workers and
// the warm-up are outside the measurement.
import { workerData, parentPort } from 'node:worker_threads';

export const data = workerData;

/** Monotonic nanoseconds; process.hrtime reads one clock for all threads of the process. */
export const now = () => Number(process.hrtime.bigint());

/** Blocks until all `data.parties` parties have arrived. Parks: the barrier is not timed. */
export function barrier() {
  const b = new Int32Array(data.barrier);
  Atomics.add(b, 0, 1);
  Atomics.notify(b, 0);
  for (;;) {
    const v = Atomics.load(b, 0);
    if (v >= data.parties) return;
    Atomics.wait(b, 0, v); // returns at once if another party arrived since the load
  }
}

/** Sends this party's timing and checksum (uint32) to the harness; the harness sums checksums. */
export function report(t0, t1, checksum = 0) {
  parentPort.postMessage({ type: 'bench-result', t0, t1, checksum: checksum >>> 0 });
}
