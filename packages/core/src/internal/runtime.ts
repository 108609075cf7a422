/**
 * Per-thread runtime state: the mapped heap, this thread's slot in the thread table, the parker.
 *
 * The state lives on globalThis under a registered symbol, so that two copies of this module in
 * one thread (a process module bundled with its own copy of occam) still share one runtime.
 */
import { availableParallelism } from 'node:os';
import { isMainThread, threadId } from 'node:worker_threads';
import { TooManyThreadsError } from '../errors.js';
import { Heap, type HeapOptions } from './heap.js';
import {
  H_MAX_THREADS,
  H_RUNNING,
  MAX_THREADS,
  T_ALIVE,
  T_CLAIM_OP,
  T_ROLE,
  T_FREE,
  T_GEN,
  T_HOLDS,
  T_NAME,
  T_OPS,
  T_PROGRESS,
  T_PARKED_ON,
  T_RUNNING,
  T_STATE,
  T_THREAD_ID,
  T_USES,
  T_HELD,
  T_POISON_ON_DEATH,
  T_WORDS,
  THREAD_TABLE_BYTE,
} from './layout.js';
import { setClaimWord } from './transfer.js';
import { atomicsParker, type Parker } from './park.js';

export interface Runtime {
  readonly heap: Heap;
  /** This thread's index in the thread table. */
  readonly slot: number;
  /** True on Node's main thread, which must never block. */
  readonly isMain: boolean;
  parker: Parker;
  /** Op records free for reuse, by case count (only this thread uses its records). */
  readonly opCache: Map<number, number[]>;
  /** Spin budget in ms, adapted to how often spinning pays off. */
  spinBudget: number;
  readonly maxSpin: number;
  /** When this thread last parked (parker clock). */
  parkStart: number;
  /** Word index of this thread's T_PROGRESS, and the count it holds. */
  readonly progressAt: number;
  /** Word index of this thread's T_PARKED_ON. */
  readonly parkedOnAt: number;
  progress: number;
  /** Async operations pending on this thread (they hold the keep-alive handle). */
  pendingAsync: number;
  keepAlive: ReturnType<typeof setInterval> | undefined;
  /**
   * Main thread: how each pending async wait is failed when a deadlock is found, and how many of
   * them have a deadline (a timed wait is not stuck: no deadlock while one is pending).
   */
  readonly waits: Set<(err: Error) => void>;
  timedWaits: number;
  /**
   * The channel ends the current process has used (channel id → K_SEND | K_RECV bits), listed
   * in the shared heap too (T_USES) for its death; `useEpoch` changes with every process a
   * worker runs. See reap.ts.
   */
  readonly uses: Map<number, number>;
  useEpoch: number;
}

/** Starts deadlock detection on the main thread (set by deadlock.ts when it loads). */
let startDetector: ((rt: Runtime) => void) | undefined;

/** @internal */
export function setDetector(start: (rt: Runtime) => void): void {
  startDetector = start;
}

const KEY = Symbol.for('occam.runtime.v1');
type Global = { [KEY]?: Runtime };

/** Data a worker needs to join the runtime. */
export interface RuntimeInit {
  sab: SharedArrayBuffer;
}

/**
 * Takes a free thread-table slot. The supervisor is never refused one: the last slot is kept
 * for it (it joins after the first hosts), and the test-only bound does not apply to it.
 */
function claimSlot(heap: Heap, supervisor: boolean): number {
  const m = heap.i32;
  const max = Math.min(Atomics.load(m, H_MAX_THREADS) || MAX_THREADS, MAX_THREADS - 1);
  let inUse = 0;
  for (let i = 0; i < MAX_THREADS; i++) if (Atomics.load(m, slotWord(i, T_STATE)) !== T_FREE) inUse++;
  if (!supervisor && inUse >= max) throw new TooManyThreadsError(max);
  for (let i = 0; i < MAX_THREADS; i++) {
    const at = slotWord(i, 0);
    if (Atomics.compareExchange(m, at + T_STATE, T_FREE, T_ALIVE) === T_FREE) {
      Atomics.add(m, at + T_GEN, 1);
      Atomics.store(m, at + T_THREAD_ID, threadId);
      // A dead thread's last park, lock, claim, uses and name are not ours.
      for (const f of [T_PARKED_ON, T_HOLDS, T_CLAIM_OP, T_USES, T_NAME, T_ROLE, T_HELD, T_POISON_ON_DEATH]) Atomics.store(m, at + f, 0);
      return i;
    }
  }
  throw new TooManyThreadsError(MAX_THREADS);
}

function make(heap: Heap, supervisor = false): Runtime {
  const slot = claimSlot(heap, supervisor);
  heap.lockId = slot + 1;
  heap.holdsAt = slotWord(slot, T_HOLDS);
  setClaimWord(slotWord(slot, T_CLAIM_OP), slot);
  // The main thread never counts among running process threads (see markRunningSlot). A slot
  // reused after a dead thread may still be counted (a late waker marked it): undo that.
  const running = slotWord(slot, T_RUNNING);
  if (Atomics.exchange(heap.i32, running, -1) === 1) Atomics.sub(heap.i32, H_RUNNING, 1);
  heap.canPark = !isMainThread;
  return {
    heap,
    slot,
    isMain: isMainThread,
    parker: atomicsParker,
    opCache: new Map(),
    // Spin in time, not iterations: a futex wake costs ~10 µs here; main spins least.
    spinBudget: isMainThread ? 0.01 : 0.05,
    maxSpin: isMainThread ? 0.01 : 0.05,
    parkStart: 0,
    progressAt: slotWord(slot, T_PROGRESS),
    parkedOnAt: slotWord(slot, T_PARKED_ON),
    progress: 0,
    pendingAsync: 0,
    keepAlive: undefined,
    waits: new Set(),
    timedWaits: 0,
    uses: new Map(),
    useEpoch: 1,
  };
}

/** Word index of field `field` (T_STATE, T_RUNNING, ...) of thread-table slot `slot`. */
export function slotWord(slot: number, field: number): number {
  return (THREAD_TABLE_BYTE >> 2) + slot * T_WORDS + field;
}

let cached: Runtime | undefined;

/** This thread's runtime; on the main thread the first call creates the heap. */
export function runtime(): Runtime {
  if (cached !== undefined) return cached;
  const g = globalThis as Global;
  let rt = g[KEY];
  if (rt === undefined) {
    if (!isMainThread) {
      throw new Error('occam is not started in this worker: start processes with spawn(), not new Worker()');
    }
    rt = make(Heap.create((Math.random() * 0x7fffffff) | 1, availableParallelism()));
    g[KEY] = rt;
  }
  cached = rt;
  return rt;
}

/** Starts the runtime on the main thread with explicit heap options (before any channel exists). */
export function startRuntime(opts: HeapOptions): Runtime {
  const g = globalThis as Global;
  if (g[KEY] !== undefined) throw new Error('the occam runtime is already started on this thread');
  const rt = make(Heap.create((Math.random() * 0x7fffffff) | 1, availableParallelism(), opts));
  g[KEY] = rt;
  cached = rt;
  return rt;
}

/** Joins a worker thread to the runtime whose heap is `init.sab`. */
export function joinRuntime(init: RuntimeInit, supervisor = false): Runtime {
  const g = globalThis as Global;
  const existing = g[KEY];
  if (existing !== undefined) return (cached = existing);
  const rt = make(Heap.attach(init.sab), supervisor);
  g[KEY] = rt;
  cached = rt;
  return rt;
}

/** Whether this thread has a runtime yet (without creating one). */
export function hasRuntime(): boolean {
  return cached !== undefined || (globalThis as Global)[KEY] !== undefined;
}

/** Signals made by occam's own code (a pool's loop): their waits do not end by themselves. */
const internalSignals = new WeakSet<AbortSignal>();

/** @internal Marks `signal` as occam's own (see `endsByItself`). */
export function markInternalSignal(signal: AbortSignal): void {
  internalSignals.add(signal);
}

/**
 * Whether a wait with `signal` may end by itself, as a timed one does: the program's signal may
 * be fired by a timer deadlock detection cannot see (`AbortSignal.timeout()` is unref'd) or by
 * anything else the program does.
 */
export function endsByItself(signal: AbortSignal | undefined): boolean {
  return signal != null && !isInternalSignal(signal); // (null: no signal, as undefined)
}

/** Whether `signal` is occam's own (`markInternalSignal`). */
export function isInternalSignal(signal: AbortSignal): boolean {
  return internalSignals.has(signal);
}

/**
 * Main thread: counts work that may end by itself (a task or process the program's signal will
 * stop) among timed waits, until the returned function is called (once; later calls do nothing).
 * Deadlock detection looks no further while any is pending.
 */
export function holdTimed(rt: Runtime): () => void {
  rt.timedWaits++;
  let held = true;
  return () => {
    if (held) rt.timedWaits--;
    held = false;
  };
}

/**
 * Work (a pool task, a spawned process) that `signal` may stop: held as timed (`holdTimed`) if
 * it is the program's own signal, until the returned function is called; else nothing held.
 */
export function holdForSignal(signal: AbortSignal | undefined): () => void {
  return endsByItself(signal) ? holdTimed(runtime()) : () => undefined;
}

/** Holds the event loop open while an async op is pending: Atomics.waitAsync alone does not. */
export function holdAlive(rt: Runtime): void {
  if (rt.pendingAsync++ === 0) {
    if (rt.keepAlive === undefined) {
      rt.keepAlive = setInterval(() => {}, 1 << 30);
      if (rt.isMain) startDetector?.(rt);
    } else rt.keepAlive.ref();
  }
}

export function releaseAlive(rt: Runtime): void {
  if (--rt.pendingAsync === 0) rt.keepAlive?.unref();
}

/**
 * This worker starts (true) or stops (false) counting among running threads: a process body
 * starts or ends, or the thread unparks or parks. The slot's T_RUNNING lets `reapThread` undo
 * the count of a thread that died.
 */
export function setRunning(rt: Runtime, running: boolean): void {
  const at = slotWord(rt.slot, T_RUNNING);
  if (running) markRunning(rt.heap.i32, at);
  else if (Atomics.compareExchange(rt.heap.i32, at, 1, 0) === 1) Atomics.sub(rt.heap.i32, H_RUNNING, 1);
}

/**
 * A process body starts (true) or ends (false) on this worker. Between bodies the slot reads -1,
 * so that a late waker of the last op cannot count an idle host as running.
 */
export function setInProcess(rt: Runtime, inProcess: boolean): void {
  const m = rt.heap.i32;
  const at = slotWord(rt.slot, T_RUNNING);
  const was = Atomics.exchange(m, at, inProcess ? 1 : -1);
  if (inProcess && was !== 1) Atomics.add(m, H_RUNNING, 1);
  if (!inProcess && was === 1) Atomics.sub(m, H_RUNNING, 1);
}

/**
 * Counts thread `slot` as running if it is not counted yet. A waker calls this for the thread it
 * wakes, so a thread that is woken but not yet scheduled already counts: spinners then leave the
 * core to it. The main thread's T_RUNNING is -1: it is never counted.
 */
export function markRunningSlot(m: Int32Array, slot: number): void {
  markRunning(m, slotWord(slot, T_RUNNING));
}

function markRunning(m: Int32Array, at: number): void {
  if (Atomics.compareExchange(m, at, 0, 1) === 0) Atomics.add(m, H_RUNNING, 1);
}

/**
 * Records op record `op` in this thread's op list: its death withdraws them, and a broken
 * channel fails the ones waiting on it (reap.ts).
 */
export function listOp(rt: Runtime, op: number): void {
  const h = rt.heap;
  const at = slotWord(rt.slot, T_OPS);
  let list = h.i32[at]!;
  if (list === 0 || h.i32[list >> 2] === h.i32[(list >> 2) + 1]) {
    const cap = list === 0 ? 8 : h.i32[(list >> 2) + 1]! * 2;
    const grown = h.alloc((cap + 2) * 4);
    h.sync();
    const count = list === 0 ? 0 : h.i32[list >> 2]!;
    if (list !== 0) h.i32.copyWithin(grown >> 2, list >> 2, (list >> 2) + 2 + count);
    h.i32[grown >> 2] = count;
    h.i32[(grown >> 2) + 1] = cap;
    // The old list is not freed: the supervisor may be reading it (a broken channel's waiters
    // are found through every live thread's list). It is at most as big as all the lists before.
    Atomics.store(h.i32, at, grown);
    list = grown;
  }
  const m = h.i32;
  m[(list >> 2) + 2 + m[list >> 2]!] = op;
  m[list >> 2] = m[list >> 2]! + 1;
}
