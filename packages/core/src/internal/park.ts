/**
 * Parking and the clock, behind one small interface, so a deterministic single-thread scheduler
 * can later replace `Atomics.wait` and the wall clock without touching the channel code.
 */

export type WaitResult = 'ok' | 'not-equal' | 'timed-out';

export interface Parker {
  /** Monotonic milliseconds. */
  now(): number;
  /** Blocks the thread while `m[index] === expected`, at most `timeoutMs` (Infinity: untimed). */
  wait(m: Int32Array, index: number, expected: number, timeoutMs: number): WaitResult;
  /** The same without blocking the thread; resolves synchronously when the value already differs. */
  waitAsync(m: Int32Array, index: number, expected: number, timeoutMs: number): WaitResult | Promise<WaitResult>;
  /** Wakes up to `count` threads parked on `m[index]`. */
  notify(m: Int32Array, index: number, count: number): void;
}

type WaitAsync = (
  m: Int32Array,
  index: number,
  expected: number,
  timeout?: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };

const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** The real thing: futex waits on shared memory and `performance.now()`. */
export const atomicsParker: Parker = {
  now: () => performance.now(),
  wait: (m, index, expected, timeoutMs) => Atomics.wait(m, index, expected, timeoutMs),
  waitAsync(m, index, expected, timeoutMs) {
    const r = waitAsync(m, index, expected, timeoutMs);
    return r.async ? r.value : r.value;
  },
  notify(m, index, count) {
    Atomics.notify(m, index, count);
  },
};
