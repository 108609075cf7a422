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
 *   1. try every case (in a random order for a fair select, in the given order for priority);
 *      nothing of ours is visible to anyone yet;
 *   2. register each case (a channel case links a waiter, then re-checks readiness under the
 *      lock); if a case became ready, abort our own op and start again (or, if we were claimed
 *      meanwhile, take that);
 *   3. wait for the state word (spin, then park), at most until the nearest deadline of a case
 *      (a timer) or of the whole operation; a timer that comes due cancels the op and pass 1
 *      runs again, where the timer is ready;
 *   4. unregister every case.
 * Cases are `Selectable`s; a plain send or receive is a select of one channel case, and takes a
 * fused path (passes 1 and 2 under one lock hold) to the same state machine.
 */
import {
  C_CAP,
  C_LOCK,
  H_RUNNING,
  K_RECV,
  R_PEER_DIED,
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
  S_TAG,
  ST_CANCELLED,
  ST_CLAIMED,
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
  H_FAULT,
  FAULT_DIE_CONCLUDING,
  H_MAX_WAITERS,
  MAX_WAITERS,
  C_NSEND,
  C_NRECV,
  R_OVERFLOW,
} from './layout.js';
import { TooManyWaitersError } from '../errors.js';
import { link, queueHead, unlink } from './queue.js';
import { waitingSince } from './heap.js';
import { endsByItself, holdAlive, isInternalSignal, listOp, markRunningSlot, releaseAlive, setRunning, type Runtime } from './runtime.js';
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

/**
 * What a select needs from each of its cases. A channel case links a waiter into its channel's
 * queue, and a peer completes the select through it; a timer registers nothing and only has a
 * deadline; `never` (select-kit.ts) does nothing at all and is the reference implementation.
 */
export interface Selectable {
  /**
   * Pass 1: completes the case now if it can, without blocking. Returns R_VALUE (it fired; a
   * received value is in `out`), R_CLOSED or R_POISONED (it fired with that result),
   * R_PEER_DIED (it would wait for a peer that died: it fires only if no other case is ready),
   * or NOT_READY. Called with no lock held.
   */
  try(out: Int32Array): number;
  /**
   * Pass 2: makes the waiting op record `op` completable by this case, as case `index`. Returns
   * true if the case turned out to be ready (having undone its registration): the select then
   * starts over from pass 1.
   */
  register(op: number, index: number): boolean;
  /** Pass 4: undoes `register`; harmless if the case fired or registered nothing. */
  unregister(op: number, index: number): void;
  /** Whether `try` would complete now: a snapshot, stale as soon as it is taken. */
  isReady(): boolean;
  /** When (ms, the runtime's clock) the case becomes ready by itself (a timer); Infinity if never. */
  readonly deadline: number;
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
  // Even a case that did not complete may have moved values to parked parties, or handed a
  // claim back: whoever was touched is woken.
  if (wakes.length !== 0) flushWakes(rt);
  if (r !== NOT_READY) progress(rt);
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
  listOp(rt, op);
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
 * Pass 2 for a channel case: links a waiter for case `i` of `op`, then looks at the channel under
 * the same lock hold (a lock-free peer that missed the waiter is seen here, see ring.ts). Returns
 * true, with the waiter unlinked again, if the case is ready after all.
 */
export function registerCase(rt: Runtime, op: number, i: number, cs: Case): boolean {
  const h = rt.heap;
  const c = cs.chan >> 2;
  h.lock(c + C_LOCK);
  h.sync();
  const m = h.i32;
  if (queueFull(m, c, cs.kind)) {
    h.unlock(c + C_LOCK);
    throw new TooManyWaitersError(maxWaiters(m));
  }
  const wi = fillWaiter(m, op, i, cs);
  link(m, c, queueHead(cs.kind), wi << 2);
  const ready = isReadyLocked(m, c, cs.kind, op);
  if (ready) unlink(m, c, queueHead(cs.kind), wi << 2);
  h.unlock(c + C_LOCK);
  return ready;
}

/** The most waiters a channel queue takes (MAX_WAITERS, unless a test lowered it). */
export function maxWaiters(m: Int32Array): number {
  return m[H_MAX_WAITERS] || MAX_WAITERS;
}

/** Whether channel `c`'s queue for `kind` already holds the most waiters it takes. Caller holds the lock. */
function queueFull(m: Int32Array, c: number, kind: number): boolean {
  return m[c + (kind === K_SEND ? C_NSEND : C_NRECV)]! >= maxWaiters(m);
}

/** Pass 4 for a channel case: unlinks waiter `i` of `op` if it is still queued. */
export function unregisterCase(rt: Runtime, op: number, i: number): void {
  const h = rt.heap;
  const wi = waiterAt(op, i) >> 2;
  if (Atomics.load(h.i32, wi + W_LINKED) === 0) return; // fired (its claimer unlinked it) or never linked
  const chan = h.i32[wi + W_CHAN]!;
  try {
    h.lock((chan >> 2) + C_LOCK);
  } catch {
    // Broken (a process died holding it, see reap.ts): its queue is never walked again.
    h.i32[wi + W_LINKED] = 0;
    return;
  }
  h.sync(); // our neighbours in the queue may lie beyond our views
  if (h.i32[wi + W_LINKED] !== 0) unlink(h.i32, chan >> 2, queueHead(h.i32[wi + W_KIND]!), wi << 2);
  h.unlock((chan >> 2) + C_LOCK);
}

/** Whether a channel case would complete now (under its lock: a snapshot). */
export function isCaseReady(rt: Runtime, cs: Case): boolean {
  const h = rt.heap;
  const c = cs.chan >> 2;
  h.lock(c + C_LOCK);
  h.sync();
  const ready = isReadyLocked(h.i32, c, cs.kind, 0);
  h.unlock(c + C_LOCK);
  return ready;
}

/**
 * Pass 2 for every case. Returns -1 when every case is registered, -2 when a case turned out
 * ready and our op was aborted (the caller starts again), or -3 when another party claimed our op
 * meanwhile (the caller waits for DONE).
 */
function registerAll(rt: Runtime, op: number, cases: readonly Selectable[]): number {
  for (let i = 0; i < cases.length; i++) {
    if (cases[i]!.register(op, i)) return abort(rt.heap.i32, op) ? -2 : -3;
    // Completed through a case registered earlier: the rest need no waiter. (A claim alone is
    // not enough to stop: a claimer that finds nothing to give hands the op back, WAITING.)
    if (isFinal(Atomics.load(rt.heap.i32, (op >> 2) + O_STATE))) return -3;
  }
  return -1;
}

/**
 * Cancels `op` to start a select over; true if cancelled, false if it completed instead. A claim
 * under way is waited out: its claimer holds a channel lock and is a few instructions from DONE,
 * or from handing the op back (WAITING again, see `unclaim` in transfer.ts), which we then cancel.
 */
function abort(m: Int32Array, op: number): boolean {
  const at = (op >> 2) + O_STATE;
  let stuck = 0;
  for (let i = 1; ; i++) {
    const s = Atomics.load(m, at);
    const st = s & ST_MASK;
    if (st === ST_WAITING) {
      if (Atomics.compareExchange(m, at, s, s + (ST_CANCELLED - ST_WAITING)) === s) return true;
    } else if (st !== ST_CLAIMED) return st === ST_CANCELLED;
    else if ((i & 1023) === 0) stuck = waitingSince(stuck, performance.now()); // a claimer that died?
  }
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

/** Pass 4 of a plain send or receive: unlinks its waiter if still queued. */
function unregister(rt: Runtime, op: number, n: number): void {
  for (let i = 0; i < n; i++) unregisterCase(rt, op, i);
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

/** A word nobody writes: a nap on it lasts its full time. */
const napWord = new Int32Array(new SharedArrayBuffer(4));

/**
 * Sleeps `ms`, not counted as running meanwhile: a timed nap that nobody has to wake (see
 * napRing in channel.ts). Worker threads only.
 */
export function nap(rt: Runtime, ms: number): void {
  parked(rt, rt.parker.now());
  rt.parker.wait(napWord, 0, 0, ms);
  unparked(rt);
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
    // Published only while parked with no deadline: a spinning or timed wait is not stuck.
    if (timeout === Infinity) Atomics.store(m, rt.parkedOnAt, op);
    rt.parker.wait(m, at, s, timeout);
    if (timeout === Infinity) Atomics.store(m, rt.parkedOnAt, 0);
    unparked(rt);
  }
  Atomics.store(m, (op >> 2) + O_PARKED, 0);
}

/**
 * Reads how `op` ended, copies a received value into `out`, unregisters what is left (through
 * `cases` for a select; a plain op's only waiter directly) and recycles the record.
 */
function conclude(rt: Runtime, op: number, n: number, out: Int32Array, cases?: readonly Selectable[]): Outcome {
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
    m[oi + O_SLOT + S_TAG] = 0; // taken: were this thread to die now, its reaper frees nothing of it
    progress(rt);
  }
  if (cases !== undefined) for (let i = 0; i < n; i++) cases[i]!.unregister(op, i);
  // A fired single-case op has nothing left to unlink: its claimer unlinked the only waiter.
  else if (outcome.index < 0) unregister(rt, op, n);
  releaseOp(rt, op);
  return outcome;
}

/** Outcomes of single-case ops that completed at once, by result; and of a cancelled op. Read-only. */
const READY: readonly Outcome[] = [0, 1, 2, 3, 4, 5].map((result) => Object.freeze({ index: 0, result }));
const CANCELLED: Outcome = Object.freeze({ index: -1, result: 0 });

/** Options of a blocking wait: an absolute deadline (parker clock, ms) and an optional abort test. */
export interface WaitLimits {
  deadline: number;
  /** Sync ops can only poll a signal between parks. */
  signal?: AbortSignal | undefined;
  /**
   * Async waits: false lets the program exit while this one waits, and leaves it out of what
   * deadlock detection counts as main waiting (see OpOptions.ref).
   */
  ref?: boolean | undefined;
}

function expired(rt: Runtime, limits: WaitLimits): boolean {
  return (limits.deadline !== Infinity && limits.deadline <= rt.parker.now()) || limits.signal?.aborted === true;
}

/**
 * Passes 1 and 2 of a plain send or receive, fused under a single lock hold: try, and if the case
 * would block, link the waiter before unlocking (no one can claim an op that is not yet linked).
 * Returns an outcome when done without waiting, else the op record to wait on.
 */
function begin(rt: Runtime, cs: Case, out: Int32Array, limits: WaitLimits): Outcome | number {
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
    if (wakes.length !== 0) flushWakes(rt);
    if (r === NOT_READY) return CANCELLED;
    progress(rt);
    return READY[r]!;
  }
  if (queueFull(m, c, cs.kind)) {
    h.unlock(c + C_LOCK);
    if (wakes.length !== 0) flushWakes(rt);
    return READY[R_OVERFLOW]!;
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
  if (wakes.length !== 0) flushWakes(rt);
  return op;
}

/**
 * A plain send or receive (one channel case), parking the thread. Returns the outcome (index -1
 * when the deadline passed); `out` receives a received value. Never call on the main thread.
 */
export function opSync(rt: Runtime, cs: Case, out: Int32Array, limits: WaitLimits): Outcome {
  if (interrupt !== undefined) return selectSync(rt, [asSelectable(rt, cs)], ONE, out, { ...limits, poll: false });
  const op = begin(rt, cs, out, limits);
  if (typeof op !== 'number') return op;
  waitSync(rt, op, limits.deadline);
  if (rt.heap.i32[H_FAULT] === FAULT_DIE_CONCLUDING && !rt.isMain) process.exit(72); // test-only
  return conclude(rt, op, 1, out);
}

/**
 * The same without blocking the thread: spins briefly, then parks with Atomics.waitAsync, holding
 * the event loop open meanwhile; `limits.signal` cancels. Give each call its own `out`. An op
 * that completes without parking (at once, or while it spins) returns its outcome, not a promise:
 * the promises of a chain of async calls cost an async ping-pong round trip on main ~a fifth.
 */
export function opAsync(rt: Runtime, cs: Case, out: Int32Array, limits: WaitLimits): Outcome | Promise<Outcome> {
  if (interrupt !== undefined) return selectAsync(rt, [asSelectable(rt, cs)], ONE, out, { ...limits, poll: false });
  const op = begin(rt, cs, out, limits);
  if (typeof op !== 'number') return op;
  if (isFinal(spin(rt, (op >> 2) + O_STATE))) return conclude(rt, op, 1, out);
  return parkAsync(rt, op, out, limits);
}

async function parkAsync(rt: Runtime, op: number, out: Int32Array, limits: WaitLimits): Promise<Outcome> {
  const failed = await waitAsync(rt, op, limits, true);
  const o = conclude(rt, op, 1, out);
  if (failed !== undefined) throw failed;
  return o;
}

/** Limits of a select: those of any wait, and `poll` for a select with a default (never waits). */
export interface SelectLimits extends WaitLimits {
  poll: boolean;
}

/**
 * Passes 1 and 2 of a select. `order` lists the case indices in the order pass 1 tries them.
 * Returns an outcome when done without waiting (index -1: no case ready and `poll`, or limits
 * expired), else the op record to wait on.
 */
function beginSelect(
  rt: Runtime,
  cases: readonly Selectable[],
  order: ArrayLike<number>,
  out: Int32Array,
  limits: SelectLimits,
): Outcome | number {
  // Aborted already: no case fires (as for a single op), however many are ready.
  if (limits.signal?.aborted === true) return CANCELLED;
  for (;;) {
    // A case whose peer died (or whose channel is broken) fails the select only if no other case
    // is ready: as for a single op, it is the waiting that cannot be.
    let dead = -1;
    for (let k = 0; k < order.length; k++) {
      const i = order[k]!;
      const r = cases[i]!.try(out);
      if (r === R_PEER_DIED) {
        if (dead < 0) dead = i;
      } else if (r !== NOT_READY) return { index: i, result: r };
    }
    if (dead >= 0) return { index: dead, result: R_PEER_DIED };
    if (limits.poll || expired(rt, limits)) return CANCELLED;
    const op = acquireOp(rt, cases.length);
    let r: number;
    try {
      r = registerAll(rt, op, cases);
    } catch (e) {
      // A case could not register (its queue is full): withdraw, unless another case completed
      // the select meanwhile, which then stands.
      if (!abort(rt.heap.i32, op)) return op;
      conclude(rt, op, cases.length, out, cases);
      throw e;
    }
    if (r !== -2) return op;
    conclude(rt, op, cases.length, out, cases); // a case turned out ready: start again
  }
}

/** The nearest deadline: the select's own, or a case's (a timer). */
function nearest(cases: readonly Selectable[], deadline: number): number {
  for (let i = 0; i < cases.length; i++) deadline = Math.min(deadline, cases[i]!.deadline);
  return deadline;
}

/**
 * A select over `cases`, parking the thread: exactly one case fires, or none when `limits` expire
 * (or, with `poll`, when none is ready now). Returns the outcome (index -1: none fired); `out`
 * receives the value of a receive case. Never call on the main thread.
 */
export function selectSync(
  rt: Runtime,
  cases: readonly Selectable[],
  order: ArrayLike<number>,
  out: Int32Array,
  limits: SelectLimits,
): Outcome {
  if (interrupt !== undefined) {
    const n = cases.length;
    return interrupted(n, selectSyncWith(rt, [...cases, interrupt], withInterrupt(order, n), out, limits));
  }
  return selectSyncWith(rt, cases, order, out, limits);
}

function selectSyncWith(
  rt: Runtime,
  cases: readonly Selectable[],
  order: ArrayLike<number>,
  out: Int32Array,
  limits: SelectLimits,
): Outcome {
  for (;;) {
    const op = beginSelect(rt, cases, order, out, limits);
    if (typeof op !== 'number') return op;
    waitSync(rt, op, nearest(cases, limits.deadline));
    const o = conclude(rt, op, cases.length, out, cases);
    // Cancelled by a case's deadline: pass 1 again, where that timer is ready.
    if (o.index >= 0 || expired(rt, limits)) return o;
  }
}

/** The same without blocking the thread; `limits.signal` cancels. Give each call its own `out`. */
export async function selectAsync(
  rt: Runtime,
  cases: readonly Selectable[],
  order: ArrayLike<number>,
  out: Int32Array,
  limits: SelectLimits,
): Promise<Outcome> {
  if (interrupt !== undefined) {
    const n = cases.length;
    return interrupted(n, await selectAsyncWith(rt, [...cases, interrupt], withInterrupt(order, n), out, limits));
  }
  return selectAsyncWith(rt, cases, order, out, limits);
}

async function selectAsyncWith(
  rt: Runtime,
  cases: readonly Selectable[],
  order: ArrayLike<number>,
  out: Int32Array,
  limits: SelectLimits,
): Promise<Outcome> {
  for (;;) {
    const op = beginSelect(rt, cases, order, out, limits);
    if (typeof op !== 'number') return op;
    const failed = await waitAsync(rt, op, { deadline: nearest(cases, limits.deadline), signal: limits.signal, ref: limits.ref });
    const o = conclude(rt, op, cases.length, out, cases);
    if (failed !== undefined) throw failed;
    if (o.index >= 0 || expired(rt, limits)) return o;
  }
}

/**
 * Calls `f` when `signal` aborts, until the returned function is called. All the callbacks on one
 * signal share one listener. A signal of occam's own (`markInternalSignal`: a pool's, that many
 * waits use one after another) keeps it while it lives: adding and removing a listener for each
 * wait cost ~10 µs on a path that had been idle (a pool's result after a pause). Any other loses
 * it with its last callback: Node keeps a signal with a listener alive (`AbortSignal.timeout()`
 * until it fires, `AbortSignal.any()` while its sources live). A callback that throws does not
 * keep the others from running (its error is reported as uncaught).
 */
const abortGroups = new WeakMap<AbortSignal, { fns: Set<() => void>; fire: () => void }>();
export function watchAbort(signal: AbortSignal, f: () => void): () => void {
  let group = abortGroups.get(signal);
  if (group === undefined) {
    const fns = new Set<() => void>();
    const fire = (): void => {
      abortGroups.delete(signal);
      for (const g of [...fns]) {
        try {
          g();
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    };
    group = { fns, fire };
    abortGroups.set(signal, group);
    signal.addEventListener('abort', fire, { once: true });
  }
  const { fns, fire } = group;
  fns.add(f);
  return () => {
    fns.delete(f);
    if (fns.size === 0 && !isInternalSignal(signal) && abortGroups.get(signal)?.fns === fns) {
      abortGroups.delete(signal);
      signal.removeEventListener('abort', fire);
    }
  };
}

/**
 * Waits for `op` without blocking the thread (after a spin, unless `spun`: the caller spun);
 * resolves to the deadlock error that failed it, if one did.
 */
async function waitAsync(rt: Runtime, op: number, limits: WaitLimits, spun = false): Promise<Error | undefined> {
  const m = rt.heap.i32;
  const at = (op >> 2) + O_STATE;
  let s = spun ? Atomics.load(m, at) : spin(rt, at);
  if (isFinal(s)) return undefined;
  const signal = limits.signal;
  // (A wait the program's own signal may end is not stuck either: see endsByItself.)
  const timed = limits.deadline !== Infinity || endsByItself(signal);
  const ref = limits.ref !== false;
  // The handlers below are made only where needed, and bound to no name: a named closure made on
  // every park would cost ~400 ns each (see keepNames in scripts/build.mjs).
  const unwatch =
    signal === undefined
      ? undefined
      : watchAbort(signal, () => {
          // A cancel that wins must wake our own waitAsync, which is parked on this word.
          if (cancel(m, op)) rt.parker.notify(m, at, 1);
        });
  // Deadlock detection (main thread) fails a pending wait the same way, with its error.
  let failedBy: Error | undefined;
  const onDeadlock =
    rt.isMain && ref
      ? (err: Error): void => {
          if (cancel(m, op)) {
            failedBy = err;
            rt.parker.notify(m, at, 1);
          }
        }
      : undefined;
  if (ref) holdAlive(rt);
  if (onDeadlock !== undefined) {
    rt.waits.add(onDeadlock);
    if (timed) rt.timedWaits++;
  }
  try {
    Atomics.store(m, (op >> 2) + O_PARKED, 1);
    for (;;) {
      s = Atomics.load(m, at);
      if (isFinal(s)) break;
      let timeout = Infinity;
      if ((s & ST_MASK) === ST_WAITING) {
        // An abort that met a claim in progress, which was then handed back, cancels now.
        if (signal?.aborted === true) {
          if (cancel(m, op)) break;
          continue;
        }
        if (limits.deadline !== Infinity) {
          timeout = limits.deadline - rt.parker.now();
          if (timeout <= 0) {
            if (cancel(m, op)) break;
            continue;
          }
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
    if (onDeadlock !== undefined) {
      rt.waits.delete(onDeadlock);
      if (timed) rt.timedWaits--;
    }
    if (ref) releaseAlive(rt);
    unwatch?.();
  }
  return failedBy;
}

// ── interruption ─────────────────────────────────────────────────────────────

/**
 * A case that every blocking operation of this thread also waits on while it is set: a pool
 * task's abort (see @occam/pool). When it fires, the operation ends with index INTERRUPTED and
 * nothing sent or received.
 */
let interrupt: Selectable | undefined;

/** The index of an operation that the thread's interrupt case ended. */
export const INTERRUPTED = -2;

/** @internal Sets (or clears, undefined) this thread's interrupt case. */
export function setInterrupt(s: Selectable | undefined): void {
  interrupt = s;
}

const ONE = Int32Array.of(0);

/** Pass 1 looks at the interrupt first: an aborted task does no more work. */
function withInterrupt(order: ArrayLike<number>, n: number): Int32Array {
  const o = new Int32Array(n + 1);
  o[0] = n;
  for (let k = 0; k < n; k++) o[k + 1] = order[k]!;
  return o;
}

function interrupted(n: number, o: Outcome): Outcome {
  return o.index === n ? { index: INTERRUPTED, result: 0 } : o;
}

/** A plain operation's case as a Selectable (when it must wait beside the interrupt). */
function asSelectable(rt: Runtime, cs: Case): Selectable {
  return new PlainCase(rt, { chan: cs.chan, kind: cs.kind, val: cs.val });
}

/**
 * See asSelectable. A class, not an object of four named closures made on every blocking op of a
 * pool task that has an abort signal (see keepNames in scripts/build.mjs).
 */
class PlainCase implements Selectable {
  readonly deadline = Infinity;
  readonly #rt: Runtime;
  readonly #c: Case;
  constructor(rt: Runtime, c: Case) {
    this.#rt = rt;
    this.#c = c;
  }
  try(out: Int32Array): number {
    return tryCase(this.#rt, this.#c, out);
  }
  register(op: number, index: number): boolean {
    return registerCase(this.#rt, op, index, this.#c);
  }
  unregister(op: number, index: number): void {
    unregisterCase(this.#rt, op, index);
  }
  isReady(): boolean {
    return isCaseReady(this.#rt, this.#c);
  }
}
