/**
 * The waiter engine: every blocking operation is a select over one or more cases. A blocked
 * operation owns one op record whose state word decides, by one compareExchange, which case won;
 * each case has a waiter record linked into its channel's queue.
 *
 *   state:  WAITING ──claim──▶ CLAIMED ──▶ DONE(case, result)      (claimer copies, then DONE)
 *              └───────cancel (timeout, abort, select abort)───▶ CANCELLED
 *
 * A waiter enqueues first, then spins on its own state word, then parks on that same word; a wake
 * is only a hint and the word is re-checked. A waiter whose cancel loses waits for DONE and takes
 * the value. Passes of a blocking operation:
 *   1. try every case under its channel lock (no record visible to anyone);
 *   2. register a waiter per case; on each channel re-check readiness first, and if a case became
 *      ready, abort our own op and start again (or, if we were claimed meanwhile, take that);
 *   3. wait for the state word (spin, then park);
 *   4. unregister every waiter still linked.
 */
import {
  C_CAP,
  C_LOCK,
  H_RUNNING,
  K_RECV,
  R_VALUE,
  K_SEND,
  O_CASE,
  O_NCASES,
  O_OWNER,
  O_PARKED,
  O_RESULT,
  O_SLOT,
  O_STATE,
  O_WORDS,
  ST_CANCELLED,
  ST_DONE,
  ST_MASK,
  ST_WAITING,
  W_CASE,
  W_CHAN,
  W_KIND,
  W_LINKED,
  W_OP,
  W_SLOT,
  W_WORDS,
  H_NCPU,
} from './layout.js';
import { link, queueHead, unlink } from './queue.js';
import { holdAlive, listOp, markRunningSlot, releaseAlive, setRunning, type Runtime } from './runtime.js';
import { copy4, RING_OK, ringDequeue, ringEnqueue } from './ring.js';
import {
  isReadyLocked,
  NOT_READY,
  pumpReceiversLocked,
  pumpSendersLocked,
  recvLocked,
  ringAt,
  sendLocked,
  wakes,
} from './transfer.js';

/** One case of a blocking operation: a send of `val` or a receive, on the channel at byte `chan`. */
export interface Case {
  chan: number;
  kind: number; // K_SEND | K_RECV
  /** For sends: the encoded value (4 words). */
  val: Int32Array | undefined;
}

/** How a blocking operation ended. */
export interface Outcome {
  /** Index of the case that fired, or -1 when cancelled. */
  index: number;
  /** R_VALUE / R_CLOSED / R_POISONED / R_PEER_DIED, or 0 when cancelled. */
  result: number;
}

/** Wakes every op queued in `wakes` by a call that has released its lock. */
export function flushWakes(rt: Runtime): void {
  const m = rt.heap.i32;
  for (let i = 0; i < wakes.length; i++) {
    const op = wakes[i]! >> 2;
    // seq-cst load after the claimer's seq-cst DONE store: if the owner set PARKED before we read
    // it, we notify; otherwise it will see DONE before it parks.
    if (Atomics.load(m, op + O_PARKED) !== 0) {
      markRunningSlot(m, m[op + O_OWNER]!);
      rt.parker.notify(m, op + O_STATE, 1);
    }
  }
  wakes.length = 0;
}

/**
 * Pass 1 for a single case: performs it if it can complete now. `out` receives a received value.
 * Returns R_VALUE / R_CLOSED / R_POISONED, or NOT_READY.
 */
export function tryCase(rt: Runtime, cs: Case, out: Int32Array): number {
  const h = rt.heap;
  const c = cs.chan >> 2;
  h.lock(c + C_LOCK);
  h.sync();
  const m = h.i32;
  const r = cs.kind === K_SEND ? sendLocked(m, c, cs.val!, 0) : recvLocked(m, c, out, 0);
  h.unlock(c + C_LOCK);
  if (r !== NOT_READY) {
    if (wakes.length !== 0) flushWakes(rt);
    progress(rt);
  }
  return r;
}

/** Takes an op record with room for `n` waiters, armed WAITING with a fresh sequence number. */
function acquireOp(rt: Runtime, n: number): number {
  const free = rt.opCache.get(n);
  const op = free !== undefined && free.length > 0 ? free.pop()! : newOp(rt, n);
  armOp(rt.heap.i32, op);
  return op;
}

/** Allocates a zeroed op record for `n` waiters (its free list is made on first use). */
function newOp(rt: Runtime, n: number): number {
  const words = O_WORDS + n * W_WORDS;
  const op = rt.heap.alloc(words * 4);
  rt.heap.sync();
  const m = rt.heap.i32;
  m.fill(0, op >> 2, (op >> 2) + words); // recycled blocks hold old bytes: no stale W_LINKED
  m[(op >> 2) + O_OWNER] = rt.slot;
  m[(op >> 2) + O_NCASES] = n;
  if (!rt.opCache.has(n)) rt.opCache.set(n, []);
  if (!rt.isMain) listOp(rt, op);
  return op;
}

function armOp(m: Int32Array, op: number): void {
  const oi = op >> 2;
  m[oi + O_PARKED] = 0;
  m[oi + O_CASE] = -1;
  m[oi + O_RESULT] = 0;
  const seq = ((m[oi + O_STATE]! >>> 3) + 1) & 0x0fff_ffff;
  Atomics.store(m, oi + O_STATE, (seq << 3) | ST_WAITING);
}

function releaseOp(rt: Runtime, op: number): void {
  rt.opCache.get(rt.heap.i32[(op >> 2) + O_NCASES]!)!.push(op);
}

/** Writes case `i` of op `op` into its waiter (not yet linked); returns the waiter's word index. */
function fillWaiter(m: Int32Array, op: number, i: number, cs: Case): number {
  const wi = waiterAt(op, i) >> 2;
  m[wi + W_CHAN] = cs.chan;
  m[wi + W_KIND] = cs.kind;
  m[wi + W_CASE] = i;
  m[wi + W_OP] = op;
  if (cs.val !== undefined) copy4(cs.val, 0, m, wi + W_SLOT);
  return wi;
}

/** Byte offset of waiter `i` of op `op`. */
export function waiterAt(op: number, i: number): number {
  return op + (O_WORDS + i * W_WORDS) * 4;
}

/**
 * Pass 2: links one waiter per case. Returns -1 when every case is registered, -2 when a case
 * became ready and our op was aborted (the caller starts again), or -3 when another party claimed
 * our op meanwhile (the caller waits for DONE).
 */
function register(rt: Runtime, op: number, cases: readonly Case[]): number {
  const h = rt.heap;
  for (let i = 0; i < cases.length; i++) {
    const cs = cases[i]!;
    const c = cs.chan >> 2;
    h.lock(c + C_LOCK);
    h.sync();
    const m = h.i32;
    const wi = fillWaiter(m, op, i, cs);
    // Link first, then look: a lock-free peer that missed the waiter is then seen here (ring.ts).
    link(m, c, queueHead(cs.kind), wi << 2);
    if (isReadyLocked(m, c, cs.kind, op)) {
      unlink(m, c, queueHead(cs.kind), wi << 2);
      const s = Atomics.load(m, (op >> 2) + O_STATE);
      const won =
        (s & ST_MASK) === ST_WAITING &&
        Atomics.compareExchange(m, (op >> 2) + O_STATE, s, s + (ST_CANCELLED - ST_WAITING)) === s;
      h.unlock(c + C_LOCK);
      return won ? -2 : -3;
    }
    h.unlock(c + C_LOCK);
  }
  return -1;
}

/**
 * A waiter on a buffered channel has just been linked (its count stored, seq-cst): look at the
 * buffer once more, since a lock-free send or receive may have changed it after our first look
 * without seeing the waiter. If the case can complete now, complete it and unlink the waiter.
 * Caller holds the lock. See ring.ts.
 */
function recheckBuffered(m: Int32Array, c: number, cs: Case, out: Int32Array, w: number): boolean {
  const g = ringAt(m, c);
  if (cs.kind === K_SEND) {
    if (ringEnqueue(m, g, cs.val!) !== RING_OK) return false;
    unlink(m, c, queueHead(K_SEND), w);
    pumpReceiversLocked(m, c, g, 0);
  } else {
    if (ringDequeue(m, g, out) !== RING_OK) return false;
    unlink(m, c, queueHead(K_RECV), w);
    pumpSendersLocked(m, c, g, 0);
  }
  return true;
}

/** Pass 4: unlinks every waiter of `op` still queued (the fired one was unlinked by its claimer). */
function unregister(rt: Runtime, op: number, n: number): void {
  const h = rt.heap;
  for (let i = 0; i < n; i++) {
    const wi = waiterAt(op, i) >> 2;
    if (Atomics.load(h.i32, wi + W_LINKED) === 0) continue;
    const chan = h.i32[wi + W_CHAN]!;
    h.lock((chan >> 2) + C_LOCK);
    if (h.i32[wi + W_LINKED] !== 0) unlink(h.i32, chan >> 2, queueHead(h.i32[wi + W_KIND]!), wi << 2);
    h.unlock((chan >> 2) + C_LOCK);
  }
}

/** Tries to cancel `op`; true if the cancel won (no case fired). */
function cancel(m: Int32Array, op: number): boolean {
  const at = (op >> 2) + O_STATE;
  const s = Atomics.load(m, at);
  if ((s & ST_MASK) !== ST_WAITING) return (s & ST_MASK) === ST_CANCELLED;
  return Atomics.compareExchange(m, at, s, s + (ST_CANCELLED - ST_WAITING)) === s;
}

function isFinal(s: number): boolean {
  return (s & ST_MASK) >= ST_DONE;
}

/** Counts a completed operation in this thread's slot (its own cache line: a plain store). */
export function progress(rt: Runtime): void {
  // A plain store: readers (deadlock detection) only compare snapshots taken far apart.
  rt.heap.i32[rt.progressAt] = ++rt.progress;
}

/** Spin budget (ms) while more process threads run than there are cores. */
const GATED_SPIN = 0.005;

/** More process threads run than there are cores (main, not counted in H_RUNNING, needs one too). */
function crowded(rt: Runtime): boolean {
  const m = rt.heap.i32;
  return Atomics.load(m, H_RUNNING) + (rt.isMain ? 1 : 0) > m[H_NCPU]!;
}

/** How long (ms) this thread may spin now: its budget, or a token spin when crowded. */
export function spinBudget(rt: Runtime): number {
  return crowded(rt) ? GATED_SPIN : rt.spinBudget;
}

/**
 * Spins on the op's state word for at most the thread's budget; returns the last state seen.
 * Spinning pays only while every running process thread has a core: the peer that will complete
 * us must be running; when crowded, only a token spin. Budget adapts: a spin that fails halves it
 * (to a floor), and a success, or a park that ended within a few budgets, restores it.
 */
function spin(rt: Runtime, at: number): number {
  const m = rt.heap.i32;
  let s = Atomics.load(m, at);
  if (isFinal(s)) return s;
  const tight = crowded(rt);
  const end = rt.parker.now() + (tight ? GATED_SPIN : rt.spinBudget);
  for (let i = 1; ; i++) {
    s = Atomics.load(m, at);
    if (isFinal(s)) {
      rt.spinBudget = rt.maxSpin;
      return s;
    }
    if ((i & 63) === 0 && rt.parker.now() > end) break;
  }
  if (tight) return s;
  rt.spinBudget = Math.max(rt.spinBudget / 2, rt.maxSpin / 2);
  return s;
}

/** Marks this thread parked (not running) around a park; a short park restores the spin budget. */
function parked(rt: Runtime, start: number): void {
  if (!rt.isMain) setRunning(rt, false);
  rt.parkStart = start;
}

function unparked(rt: Runtime): void {
  if (!rt.isMain) setRunning(rt, true);
  if (rt.parker.now() - rt.parkStart < 4 * rt.maxSpin) rt.spinBudget = rt.maxSpin;
}

/** Pass 3, blocking the thread: waits until DONE, or until `deadline` (then cancels). */
function waitSync(rt: Runtime, op: number, deadline: number): void {
  const m = rt.heap.i32;
  const at = (op >> 2) + O_STATE;
  let s = spin(rt, at);
  if (isFinal(s)) return;
  Atomics.store(m, (op >> 2) + O_PARKED, 1);
  for (;;) {
    s = Atomics.load(m, at);
    if (isFinal(s)) break;
    let timeout = Infinity;
    if (deadline !== Infinity && (s & ST_MASK) === ST_WAITING) {
      timeout = deadline - rt.parker.now();
      if (timeout <= 0) {
        if (cancel(m, op)) break;
        continue; // claimed meanwhile: wait for DONE
      }
    }
    parked(rt, rt.parker.now());
    rt.parker.wait(m, at, s, timeout);
    unparked(rt);
  }
  Atomics.store(m, (op >> 2) + O_PARKED, 0);
}

/** Reads how `op` ended, copies a received value into `out`, and recycles the record. */
function conclude(rt: Runtime, op: number, n: number, out: Int32Array): Outcome {
  const h = rt.heap;
  h.sync();
  const m = h.i32;
  const oi = op >> 2;
  const s = Atomics.load(m, oi + O_STATE);
  let outcome: Outcome;
  if ((s & ST_MASK) === ST_CANCELLED) outcome = CANCELLED;
  else {
    outcome = { index: m[oi + O_CASE]!, result: m[oi + O_RESULT]! };
    copy4(m, oi + O_SLOT, out, 0);
    progress(rt);
  }
  // A fired single-case op has nothing left to unlink: its claimer unlinked the only waiter.
  if (n > 1 || outcome.index < 0) unregister(rt, op, n);
  releaseOp(rt, op);
  return outcome;
}

/** Outcomes of single-case ops that completed at once, by result; and of a cancelled op. Read-only. */
const READY: readonly Outcome[] = [0, 1, 2, 3, 4].map((result) => Object.freeze({ index: 0, result }));
const CANCELLED: Outcome = Object.freeze({ index: -1, result: 0 });

/** Options of a blocking wait: an absolute deadline (parker clock, ms) and an optional abort test. */
export interface WaitLimits {
  deadline: number;
  /** Sync ops can only poll a signal between parks. */
  signal?: AbortSignal | undefined;
}

function expired(rt: Runtime, limits: WaitLimits): boolean {
  return (limits.deadline !== Infinity && limits.deadline <= rt.parker.now()) || limits.signal?.aborted === true;
}

/**
 * Passes 1 and 2. For one case they are fused under a single lock hold: try, and if the case
 * would block, link the waiter before unlocking (no one can claim an op that is not yet linked).
 * Returns an outcome when done without waiting, else the op record to wait on.
 */
function begin(rt: Runtime, cases: readonly Case[], out: Int32Array, limits: WaitLimits): Outcome | number {
  if (cases.length === 1) {
    const cs = cases[0]!;
    const h = rt.heap;
    const c = cs.chan >> 2;
    // An op record is needed only if the case blocks; keep one ready so that it can be taken
    // from the cache under the lock (allocating there is not allowed).
    let free = rt.opCache.get(1);
    if (free === undefined || free.length === 0) {
      const fresh = newOp(rt, 1);
      free = rt.opCache.get(1)!;
      free.push(fresh);
    }
    h.lock(c + C_LOCK);
    h.sync();
    const m = h.i32;
    const r = cs.kind === K_SEND ? sendLocked(m, c, cs.val!, 0) : recvLocked(m, c, out, 0);
    if (r !== NOT_READY || expired(rt, limits)) {
      h.unlock(c + C_LOCK);
      if (r === NOT_READY) return CANCELLED;
      if (wakes.length !== 0) flushWakes(rt);
      progress(rt);
      return READY[r]!;
    }
    const op = free.pop()!;
    armOp(m, op);
    const wi = fillWaiter(m, op, 0, cs);
    link(m, c, queueHead(cs.kind), wi << 2);
    if (m[c + C_CAP] !== 0 && recheckBuffered(m, c, cs, out, wi << 2)) {
      h.unlock(c + C_LOCK);
      releaseOp(rt, op);
      if (wakes.length !== 0) flushWakes(rt);
      progress(rt);
      return READY[R_VALUE]!;
    }
    h.unlock(c + C_LOCK);
    return op;
  }
  for (;;) {
    for (let i = 0; i < cases.length; i++) {
      const r = tryCase(rt, cases[i]!, out);
      if (r !== NOT_READY) return { index: i, result: r };
    }
    if (expired(rt, limits)) return { index: -1, result: 0 };
    const op = acquireOp(rt, cases.length);
    if (register(rt, op, cases) !== -2) return op;
    conclude(rt, op, cases.length, out); // a case became ready while registering: start again
  }
}

/**
 * A blocking operation over `cases`, parking the thread. Returns the outcome (index -1 when the
 * deadline passed); `out` receives the value of a receive case. Never call on the main thread.
 */
export function selectSync(rt: Runtime, cases: readonly Case[], out: Int32Array, limits: WaitLimits): Outcome {
  const op = begin(rt, cases, out, limits);
  if (typeof op !== 'number') return op;
  waitSync(rt, op, limits.deadline);
  return conclude(rt, op, cases.length, out);
}

/**
 * The same without blocking the thread: spins briefly, then parks with Atomics.waitAsync, holding
 * the event loop open meanwhile; `limits.signal` cancels. Give each call its own `out`.
 */
export async function selectAsync(
  rt: Runtime,
  cases: readonly Case[],
  out: Int32Array,
  limits: WaitLimits,
): Promise<Outcome> {
  const op = begin(rt, cases, out, limits);
  if (typeof op !== 'number') return op;
  await waitAsync(rt, op, limits);
  return conclude(rt, op, cases.length, out);
}

async function waitAsync(rt: Runtime, op: number, limits: WaitLimits): Promise<void> {
  const m = rt.heap.i32;
  const at = (op >> 2) + O_STATE;
  let s = spin(rt, at);
  if (isFinal(s)) return;
  const signal = limits.signal;
  const onAbort = (): void => {
    // A cancel that wins must wake our own waitAsync, which is parked on this word.
    if (cancel(m, op)) rt.parker.notify(m, at, 1);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  holdAlive(rt);
  try {
    Atomics.store(m, (op >> 2) + O_PARKED, 1);
    for (;;) {
      s = Atomics.load(m, at);
      if (isFinal(s)) break;
      let timeout = Infinity;
      if (limits.deadline !== Infinity && (s & ST_MASK) === ST_WAITING) {
        timeout = limits.deadline - rt.parker.now();
        if (timeout <= 0) {
          if (cancel(m, op)) break;
          continue;
        }
      }
      const r = rt.parker.waitAsync(m, at, s, timeout);
      if (typeof r !== 'string') {
        parked(rt, rt.parker.now());
        await r;
        unparked(rt);
      }
    }
  } finally {
    Atomics.store(m, (op >> 2) + O_PARKED, 0);
    releaseAlive(rt);
    signal?.removeEventListener('abort', onAbort);
  }
}

