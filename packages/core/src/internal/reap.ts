/**
 * Death: what a dying process leaves behind is settled here, so that no peer waits for it for
 * ever. Two ways to die:
 *  - the process body throws (its thread lives on, and runs `endUses` itself);
 *  - its thread dies (exit, out of memory, terminate, a crash): the supervisor worker, told by
 *    the closing of a port the thread held, runs `reapThread` on the thread-table slot.
 *
 * Users of channel ends: a process uses an end from its first operation on it, or from its spawn
 * when it is given a typed end (`sender()` / `receiver()`: counted by the spawner until the
 * process has taken its arguments), or from receiving a typed end; main uses an end for good
 * once it has. Each channel counts the users of each end (C_SENDERS, C_RECEIVERS). When a process ends,
 * its counts are taken back; when it dies and an end has no user left, the end is disconnected:
 * F_SENDERS_GONE (receives that would wait fail with ERR_PEER_DIED) or F_RECEIVERS_GONE (sends
 * that would wait fail), and the parties waiting are failed now. A new user of the end clears the
 * flag. So a channel shared by many workers survives the death of one.
 *
 * A dead thread's locks: a channel whose lock it held is broken (LOCK_BROKEN, F_BROKEN and
 * F_POISONED): never repaired, since the thread may have stopped between any two stores of its
 * critical section; every op waiting on it, found through the thread table, fails with
 * ERR_PEER_DIED, and so does every later op. An op it had claimed (T_CLAIM_OP) is failed the
 * same way. The allocator's lock is only released: its critical sections leave the free lists
 * whole at every store (a block may leak).
 */
import {
  C_CAP,
  C_DIED,
  C_DIED_LEN,
  C_FLAGS,
  C_ID,
  C_LOCK,
  C_MAGIC,
  C_RECEIVERS,
  C_RECVQ_HEAD,
  C_SENDERS,
  C_SENDQ_HEAD,
  CHAN_MAGIC,
  F_BROKEN,
  F_POISONED,
  F_RECEIVERS_GONE,
  F_SENDERS_GONE,
  F_SHUT,
  H_ALLOC_LOCK,
  H_ORPHAN_VALUES,
  H_RUNNING,
  K_RECV,
  K_SEND,
  LOCK_BROKEN,
  LOCK_CONTENDED,
  MAX_THREADS,
  O_CASE,
  O_NCASES,
  O_PARKED,
  O_RESULT,
  O_SLOT,
  O_STATE,
  O_WORDS,
  R_PEER_DIED,
  R_VALUE,
  S_TAG,
  S_W2,
  S_W3,
  ST_CANCELLED,
  ST_DONE,
  ST_MASK,
  ST_WAITING,
  T_ALIVE,
  T_CLAIM_OP,
  T_CLAIM_STATE,
  T_DEAD,
  T_FREE,
  T_HOLDS,
  T_NAME,
  T_NAME_LEN,
  T_OPS,
  T_POISON_ON_DEATH,
  T_ROLE,
  T_ROLE_SUPERVISOR,
  T_RUNNING,
  T_STATE,
  T_THREAD_ID,
  T_USES,
  W_CHAN,
  W_KIND,
  W_LINKED,
  W_SLOT,
  W_WORDS,
  TAG_BLOCK,
} from './layout.js';
import { flushWakes } from './engine.js';
import { orphanHeld, pushRecord } from './held.js';
import { loadName, storeName } from './names.js';
import { unlink } from './queue.js';
import { ringClose } from './ring.js';
import { slotWord, type Runtime } from './runtime.js';
import { CLAIM_BUSY, claimedBy, failQueue, myClaimedState, ringAt, setClaimPatience, settledState } from './transfer.js';

// ── locks ────────────────────────────────────────────────────────────────────

/** Set on the supervisor's thread: it never waits long for a lock (see `lockFor`). */
let supervising = false;

/** How long (ms) the supervisor waits at a time for a lock, a claim or the allocator. */
const PATIENCE_MS = 20;

/** @internal The supervisor thread says who it is: it never waits long on another thread. */
export function becomeSupervisor(rt: Runtime): void {
  supervising = true;
  Atomics.store(rt.heap.i32, slotWord(rt.slot, T_ROLE), T_ROLE_SUPERVISOR);
  rt.heap.allocPatience = PATIENCE_MS;
  setClaimPatience(PATIENCE_MS);
}

/**
 * Work the supervisor could not do yet: a lock it needs, or a claim on an op it must settle, is
 * held by another thread that died too and whose death it has not handled yet (two deaths at
 * once), or by a live one that stayed slow. Each item returns true once done.
 */
const unfinished: (() => boolean)[] = [];

/**
 * Retries unfinished work; returns how many items are left. An item that throws (a bug) is
 * dropped and given to `onError`; the others still run.
 */
export function retryUnfinished(onError: (e: unknown) => void): number {
  const items = unfinished.splice(0);
  for (const item of items) {
    try {
      if (!item()) unfinished.push(item);
    } catch (e) {
      onError(e);
    }
  }
  return unfinished.length;
}

const BUSY = 0;
const LOCKED = 1;
const BROKEN = 2;

/**
 * Takes channel `c`'s lock: LOCKED, or BROKEN (then there is nothing to do on it), or, on the
 * supervisor only, BUSY when it stays held for a while (by a thread that died too).
 */
function lockFor(rt: Runtime, c: number): number {
  try {
    if (!supervising) rt.heap.lock(c + C_LOCK);
    else if (!rt.heap.tryLock(c + C_LOCK, PATIENCE_MS)) return BUSY;
    rt.heap.sync();
    return LOCKED;
  } catch {
    return BROKEN;
  }
}

// ── users of channel ends ────────────────────────────────────────────────────

/** Entry words of a uses list: channel byte offset, channel id, end (K_SEND / K_RECV). */
const U_WORDS = 3;

function goneFlag(end: number): number {
  return end === K_SEND ? F_SENDERS_GONE : F_RECEIVERS_GONE;
}

/** The word counting `end`'s users of the channel at word index `c`. */
export function usersWord(c: number, end: number): number {
  return c + (end === K_SEND ? C_SENDERS : C_RECEIVERS);
}

/**
 * This thread's current process (or main) starts using `end` of the channel at byte `off`.
 * Called once per end and process (the handle remembers; see Channel).
 *
 * Counted first, listed second: a thread that dies between the two leaves one user counted for
 * good (the end is then never disconnected), never a listed use that was not counted (whose
 * taking back would disconnect an end that a live process still uses). `endUses` and the list's
 * compaction keep the same rule: a use leaves the list before it is taken back, and the list
 * never holds an entry twice.
 */
export function noteUse(rt: Runtime, off: number, id: number, end: number): void {
  if (!rt.isMain) {
    const had = rt.uses.get(id) ?? 0;
    if ((had & end) !== 0) return; // another handle of ours on the same channel
    rt.uses.set(id, had | end);
    countUser(rt, off, end, 1);
    try {
      appendUse(rt, off, id, end);
    } catch (e) {
      // No room to list it (heap exhausted): not a user after all, and the next op tries again.
      countUser(rt, off, end, -1);
      rt.uses.set(id, had);
      throw e;
    }
    return;
  }
  // Main never ends before the program does: its use is for good (counted once per handle).
  countUser(rt, off, end, 1);
}

/**
 * Adds `delta` (±1) to the users of `end` of the channel at byte `off`. The first user since
 * the last one died reconnects the end. Taking a user away never disconnects: only a death does.
 */
export function countUser(rt: Runtime, off: number, end: number, delta: number): void {
  const h = rt.heap;
  h.sync();
  const m = h.i32;
  const c = off >> 2;
  if (Atomics.add(m, usersWord(c, end), delta) !== 0 || delta < 0) return;
  if ((Atomics.load(m, c + C_FLAGS) & goneFlag(end)) === 0) return;
  try {
    h.lock(c + C_LOCK);
  } catch {
    return; // broken: nothing to reconnect
  }
  m[c + C_FLAGS] = h.i32[c + C_FLAGS]! & ~goneFlag(end);
  h.unlock(c + C_LOCK);
}

/** Appends (off, id, end) to this thread's uses list in the heap, growing it as needed. */
function appendUse(rt: Runtime, off: number, id: number, end: number): void {
  const h = rt.heap;
  h.sync();
  const at = slotWord(rt.slot, T_USES);
  let list = h.i32[at]!;
  if (list === 0 || h.i32[list >> 2] === h.i32[(list >> 2) + 1]) list = relist(rt, list);
  const m = h.i32;
  const e = (list >> 2) + 2 + m[list >> 2]! * U_WORDS;
  m[e] = off;
  m[e + 1] = id;
  m[e + 2] = end;
  Atomics.store(m, list >> 2, m[list >> 2]! + 1);
}

/**
 * A full (or missing) uses list is replaced by a new one holding the entries of channels that
 * still exist (a long-lived process uses many), with room for as many again. The new list is
 * written whole before it is published: a death at any point leaves one list, each entry once.
 */
function relist(rt: Runtime, list: number): number {
  const h = rt.heap;
  let m = h.i32;
  const kept: number[] = [];
  if (list !== 0) {
    for (let k = 0, n = m[list >> 2]!; k < n; k++) {
      const e = (list >> 2) + 2 + k * U_WORDS;
      if (alive(m, m[e]!, m[e + 1]!)) kept.push(m[e]!, m[e + 1]!, m[e + 2]!);
      else rt.uses.delete(m[e + 1]!);
    }
  }
  const cap = Math.max(16, (kept.length / U_WORDS) * 2);
  const fresh = h.alloc((2 + cap * U_WORDS) * 4);
  h.sync();
  m = h.i32;
  m.set(kept, (fresh >> 2) + 2);
  m[fresh >> 2] = kept.length / U_WORDS;
  m[(fresh >> 2) + 1] = cap;
  Atomics.store(m, slotWord(rt.slot, T_USES), fresh); // the supervisor reads the list only once we are dead
  if (list !== 0) h.free(list);
  return fresh;
}

function alive(m: Int32Array, off: number, id: number): boolean {
  const c = off >> 2;
  return off > 0 && off < m.length * 4 && m[c + C_MAGIC] === CHAN_MAGIC && m[c + C_ID] === id;
}

/**
 * The process on thread `slot` has ended: its uses are taken back. If it `died` (named `who`),
 * an end left with no user is disconnected. Run by the thread itself, or by the supervisor for
 * a dead thread.
 */
export function endUses(rt: Runtime, slot: number, died: boolean, who: string): void {
  const h = rt.heap;
  h.sync();
  const at = slotWord(slot, T_USES);
  const list = h.i32[at]!;
  if (slot === rt.slot) {
    rt.uses.clear();
    rt.useEpoch++;
  }
  if (list === 0) return;
  const orphaned: number[] = [];
  // Last entry first, each dropped from the list before it is taken back (see noteUse).
  for (let k = Atomics.load(h.i32, list >> 2) - 1; k >= 0; k--) {
    const e = (list >> 2) + 2 + k * U_WORDS;
    const [off, id, end] = [h.i32[e]!, h.i32[e + 1]!, h.i32[e + 2]!];
    Atomics.store(h.i32, list >> 2, k);
    if (!alive(h.i32, off, id)) continue;
    if (Atomics.sub(h.i32, usersWord(off >> 2, end), 1) === 1 && died) orphaned.push(off, id, end);
  }
  if (slot !== rt.slot) {
    Atomics.store(h.i32, at, 0);
    h.free(list);
  }
  for (let k = 0; k < orphaned.length; k += 3) {
    const [off, id, end] = [orphaned[k]!, orphaned[k + 1]!, orphaned[k + 2]!];
    if (!disconnect(rt, off, id, end, who)) unfinished.push(() => disconnect(rt, off, id, end, who));
  }
}

/**
 * A process that never started, and failed (terminated, or its module would not load), gives
 * back the use its spawner counted for a typed end (see `noteUse`): the end is disconnected if
 * that leaves it with no user, as for a process that died after it started.
 */
export function dropDeadUse(rt: Runtime, off: number, id: number, end: number, who: string): void {
  rt.heap.sync();
  if (Atomics.sub(rt.heap.i32, usersWord(off >> 2, end), 1) !== 1) return;
  if (!disconnect(rt, off, id, end, who)) unfinished.push(() => disconnect(rt, off, id, end, who));
}

/**
 * The last user of `end` died: unless a new user came meanwhile, mark the end gone and fail
 * the parties waiting at the other end. False if the lock was busy (try again later).
 */
function disconnect(rt: Runtime, off: number, id: number, end: number, who: string): boolean {
  const h = rt.heap;
  const name = storeNameIfCan(rt, who); // allocate before locking
  let old = name;
  const c = off >> 2;
  const got = lockFor(rt, c);
  if (got !== LOCKED) {
    freeIfCan(rt, name); // broken meanwhile (it fails everything already), or busy
    return got === BROKEN;
  }
  const m = h.i32;
  let done = true;
  if (alive(m, off, id) && Atomics.load(m, usersWord(c, end)) === 0 && (m[c + C_FLAGS]! & F_SHUT) === 0) {
    old = m[c + C_DIED]!;
    m[c + C_DIED] = name;
    m[c + C_DIED_LEN] = who.length;
    m[c + C_FLAGS] = m[c + C_FLAGS]! | goneFlag(end);
    // Receivers wait for senders and the other way round: the other end's parties fail.
    try {
      failQueue(m, c, end === K_SEND ? C_RECVQ_HEAD : C_SENDQ_HEAD, R_PEER_DIED);
    } catch (e) {
      // On the supervisor: a party claimed by a thread that died too. Its reaping settles it;
      // the rest of the queue is failed on a later try.
      if (e !== CLAIM_BUSY) throw e;
      done = false;
    }
  }
  h.unlock(c + C_LOCK);
  flushWakes(rt);
  if (old !== 0) freeIfCan(rt, old);
  return done;
}

/**
 * `who` stored in the heap for a channel to name its dead (0 if it cannot be: the heap is full,
 * or, on the supervisor, the allocator lock is held by a thread that died too). Never throws.
 */
function storeNameIfCan(rt: Runtime, who: string): number {
  try {
    return storeName(rt.heap, who);
  } catch {
    return 0;
  }
}

function freeIfCan(rt: Runtime, at: number): void {
  if (at === 0) return;
  try {
    rt.heap.free(at);
  } catch {
    // a block the reaper cannot give back now is left to leak, never to stop it
  }
}

// ── dead threads ─────────────────────────────────────────────────────────────

/** The name of the process thread `slot` was running, or undefined. */
function processOn(rt: Runtime, slot: number): string | undefined {
  const m = rt.heap.i32;
  const at = m[slotWord(slot, T_NAME)]!;
  return at === 0 ? undefined : loadName(rt.heap, at, m[slotWord(slot, T_NAME_LEN)]!);
}

/**
 * Cleans up after the worker thread `threadId`, which has died: its claim, its lock, its waiting
 * operations, its uses; then frees its slot. Whoever comes first does it, once. Returns the name
 * of the process it was running, if any. Each step stands alone: one that throws (a bug) does
 * not stop the others, and the slot is freed whatever happens; the errors are thrown together
 * at the end, for the caller to report.
 */
export function reapThread(rt: Runtime, threadId: number): string | undefined {
  const h = rt.heap;
  h.sync();
  const m = h.i32;
  for (let slot = 0; slot < MAX_THREADS; slot++) {
    const at = slotWord(slot, 0);
    if (Atomics.load(m, at + T_STATE) !== T_ALIVE || Atomics.load(m, at + T_THREAD_ID) !== threadId) continue;
    if (Atomics.compareExchange(m, at + T_STATE, T_ALIVE, T_DEAD) !== T_ALIVE) return undefined;
    const errors: unknown[] = [];
    const step = (work: () => void): void => {
      try {
        h.sync();
        work();
      } catch (e) {
        errors.push(e);
      }
    };
    let name: string | undefined;
    step(() => (name = processOn(rt, slot)));
    const who = name ?? `thread ${threadId}`;
    // First what needs no lock: the channel whose lock it held broken, its claim settled.
    // (Marked broken before any op is failed: a failed party reads why from the channel.)
    let held = 0;
    step(() => {
      held = heldChannel(rt, slot);
      if (held !== 0) breakChannel(rt, held, who);
    });
    step(() => failClaim(rt, slot, held));
    if (held !== 0) step(() => failWaitersOn(rt, held, slot));
    step(() => withdrawOps(rt, slot));
    step(() => endUses(rt, slot, true, who));
    step(() => orphanHeld(rt, slot)); // (main gives them back: see releaseOrphanedRefs)
    step(() => {
      const nameAt = h.i32[at + T_NAME]!;
      Atomics.store(h.i32, at + T_NAME, 0);
      freeIfCan(rt, nameAt);
    });
    h.sync();
    if (Atomics.exchange(h.i32, at + T_RUNNING, -1) === 1) Atomics.sub(h.i32, H_RUNNING, 1);
    Atomics.store(h.i32, at + T_THREAD_ID, 0);
    Atomics.store(h.i32, at + T_STATE, T_FREE);
    if (errors.length > 0) throw new AggregateError(errors, `occam: cleaning up after ${who} failed`);
    return name;
  }
  return undefined;
}

/** Whether thread `threadId` is alive in the thread table and runs a process with `poisonOnDeath`. */
export function poisonsOnDeath(rt: Runtime, threadId: number): boolean {
  const slot = slotOf(rt.heap.i32, threadId, T_ALIVE);
  return slot >= 0 && Atomics.load(rt.heap.i32, slotWord(slot, T_POISON_ON_DEATH)) === 1;
}

/** The thread-table slot of thread `threadId` in `state` (T_ALIVE, T_DEAD), or -1. */
function slotOf(m: Int32Array, threadId: number, state: number): number {
  for (let slot = 0; slot < MAX_THREADS; slot++) {
    const at = slotWord(slot, 0);
    if (Atomics.load(m, at + T_STATE) === state && Atomics.load(m, at + T_THREAD_ID) === threadId) return slot;
  }
  return -1;
}

/** Whether a thread-table slot of thread `threadId` is being cleaned up after now (by another thread). */
export function beingReaped(rt: Runtime, threadId: number): boolean {
  return slotOf(rt.heap.i32, threadId, T_DEAD) >= 0;
}

/**
 * If dead thread `slot` held a lock: the allocator's is released now; a channel's is to be
 * broken (returns the channel's word index), else 0.
 */
function heldChannel(rt: Runtime, slot: number): number {
  const m = rt.heap.i32;
  const at = m[slotWord(slot, T_HOLDS)]!;
  if (at === 0 || (Atomics.load(m, at) & ~LOCK_CONTENDED) !== slot + 1) return 0;
  if (at === H_ALLOC_LOCK) {
    Atomics.store(m, at, 0);
    Atomics.notify(m, at);
    return 0;
  }
  // T_HOLDS outlives the lock: a long-released lock's channel may be gone, its memory reused.
  const c = at - C_LOCK;
  return m[c + C_MAGIC] === CHAN_MAGIC ? c : 0;
}

/** Breaks channel `c` (word index), whose lock a dead thread held (see above). */
function breakChannel(rt: Runtime, c: number, who: string): void {
  const h = rt.heap;
  const at = c + C_LOCK;
  // The name first (those woken below read it), but nothing may stop the breaking: without it.
  const name = storeNameIfCan(rt, who);
  h.sync();
  const mm = h.i32;
  // Nobody else can be in the critical section: its holder is dead. Those parked on the lock
  // wake and throw (Heap.lock), and every later taker throws.
  mm[c + C_DIED] = name;
  mm[c + C_DIED_LEN] = who.length;
  Atomics.or(mm, c + C_FLAGS, F_BROKEN | F_POISONED);
  if (mm[c + C_CAP] !== 0) ringClose(mm, ringAt(mm, c)); // lock-free sends stop too
  Atomics.store(mm, at, LOCK_BROKEN);
  Atomics.notify(mm, at);
}

/**
 * Fails `op` (word index, which we hold CLAIMED) with ERR_PEER_DIED as case `i`; `waiting` is
 * the WAITING state it was claimed from (its sequence number). Wakes its owner.
 */
function failOp(m: Int32Array, op: number, i: number, waiting: number): void {
  m[op + O_CASE] = i;
  m[op + O_RESULT] = R_PEER_DIED;
  Atomics.store(m, op + O_STATE, waiting + (ST_DONE - ST_WAITING));
  if (Atomics.load(m, op + O_PARKED) !== 0) Atomics.notify(m, op + O_STATE);
}

/**
 * The state of `op` (word index) once no claim is under way on it, or -1 if one stays under way
 * past the supervisor's patience (its claimer died too, or is slow): then it is tried again later.
 * A live claimer is a few instructions from done, or from handing the op back (WAITING again).
 */
function unclaimedState(m: Int32Array, op: number): number {
  try {
    return settledState(m, op + O_STATE);
  } catch (e) {
    if (e !== CLAIM_BUSY) throw e;
    return -1;
  }
}

/**
 * Every op still waiting on broken channel `c` (word index) fails: found through the thread
 * table, not the channel's queues (which the dead thread may have left half changed).
 */
function failWaitersOn(rt: Runtime, c: number, dead: number): void {
  // Live threads allocate as we go (ops, lists): each read starts with views that cover them.
  const mem = (): Int32Array => {
    rt.heap.sync();
    return rt.heap.i32;
  };
  const id = mem()[c + C_ID]!;
  // A retry acts only on the same channel, still broken (not freed and made anew meanwhile).
  const same = (): boolean => mem()[c + C_ID] === id && (Atomics.load(mem(), c + C_FLAGS) & F_BROKEN) !== 0;
  for (let slot = 0; slot < MAX_THREADS; slot++) {
    if (slot === dead || Atomics.load(mem(), slotWord(slot, T_STATE)) !== T_ALIVE) continue;
    const list = Atomics.load(mem(), slotWord(slot, T_OPS));
    if (list === 0) continue;
    for (let k = 0, n = Atomics.load(mem(), list >> 2); k < n; k++) {
      const op = mem()[(list >> 2) + 2 + k]! >> 2;
      for (let i = 0; i < mem()[op + O_NCASES]!; i++) {
        if (failWaiterOn(mem(), op, i, c) === WAIT_CLAIMED) {
          unfinished.push(() => !same() || failWaiterOn(mem(), op, i, c) !== WAIT_CLAIMED);
        }
      }
    }
  }
}

const WAIT_CLAIMED = 2;

/**
 * Fails waiter `i` of `op` if it waits, linked, on broken channel `c`: 1 if it did, 0 if it
 * does not wait there, WAIT_CLAIMED if another thread's claim on the op stayed under way. The
 * state is read first and the fields after, and the claim is a CAS from that state: an op
 * reused meanwhile (another sequence number) is never taken for the one we looked at.
 */
function failWaiterOn(m: Int32Array, op: number, i: number, c: number): number {
  const w = op + O_WORDS + i * W_WORDS;
  for (;;) {
    // A claimer that died too is settled when its own death is handled (failClaim).
    const s = unclaimedState(m, op);
    if (s < 0) return WAIT_CLAIMED;
    if ((s & ST_MASK) !== ST_WAITING) return 0; // settled otherwise: its owner unregisters (and skips c)
    // Linked into c's queue: c is broken, so nothing links or unlinks there but its owner. The
    // owner of an op armed anew publishes WAITING before it fills and links its waiters: linked
    // first, then the channel, so that a linked waiter's channel is its new one...
    const linkedOn = (): boolean => Atomics.load(m, w + W_LINKED) !== 0 && m[w + W_CHAN] === c << 2;
    if (!linkedOn()) return 0;
    if (Atomics.compareExchange(m, op + O_STATE, s, myClaimedState()) !== s) continue;
    if (!linkedOn()) {
      Atomics.store(m, op + O_STATE, s); // ...and, the claim taken, once more: else it goes back
      Atomics.notify(m, op + O_STATE); // (its owner may have parked on our claim)
      return 0;
    }
    m[w + W_LINKED] = 0; // its owner must not unlink it from a broken queue
    failOp(m, op, i, s);
    return 1;
  }
}

/**
 * An op the dead thread had claimed and not finished fails with ERR_PEER_DIED: its value (if
 * any) went with the dead thread. Only the dead thread wrote its CLAIMED state (`claimedBy`),
 * so finding it there means the claim was its own and under way. Claims happen under the lock
 * of the waiter's channel, which is then `broken`.
 */
function failClaim(rt: Runtime, slot: number, broken: number): void {
  const m = rt.heap.i32;
  const op = m[slotWord(slot, T_CLAIM_OP)]! >> 2;
  const waiting = m[slotWord(slot, T_CLAIM_STATE)]!;
  if (op === 0 || Atomics.load(m, op + O_STATE) !== claimedBy(slot)) return;
  let i = 0;
  while (i < m[op + O_NCASES]! && m[op + O_WORDS + i * W_WORDS + W_CHAN] !== broken << 2) i++;
  if (i < m[op + O_NCASES]!) m[op + O_WORDS + i * W_WORDS + W_LINKED] = 0; // a broken queue is not walked again
  else i = 0;
  failOp(m, op, i, waiting);
}

/**
 * A dead thread's blocked operations are withdrawn: each op still WAITING is cancelled, and the
 * waiters of every settled op that are still linked are unlinked (a select whose other case
 * fired after its owner died has no owner left to unregister them), so no one later "delivers"
 * a value to a thread that cannot take it and no queue keeps a dead party.
 */
function withdrawOps(rt: Runtime, slot: number): void {
  const h = rt.heap;
  const m = h.i32;
  const list = m[slotWord(slot, T_OPS)]!;
  if (list === 0) return;
  for (let k = 0, n = m[list >> 2]!; k < n; k++) {
    const op = m[(list >> 2) + 2 + k]! >> 2;
    if (!withdrawOp(rt, op)) unfinished.push(() => withdrawOp(rt, op));
  }
  Atomics.store(m, slotWord(slot, T_OPS), 0);
  // The list and the op records stay allocated: unfinished work may still read them.
}

/**
 * Withdraws dead op `op` (word index); false if a claim on it or a lock stayed busy (try again
 * later). The values it held that no one will take are dropped: those its send cases offered, if
 * it was still waiting (cancelled here: no one took them), and one handed to it that it had not
 * taken yet (its op still holds it: `conclude` clears the slot it takes a value from).
 */
function withdrawOp(rt: Runtime, op: number): boolean {
  const h = rt.heap;
  h.sync();
  const m = h.i32;
  for (;;) {
    const s = unclaimedState(m, op);
    if (s < 0) return false;
    if ((s & ST_MASK) === ST_WAITING) {
      if (Atomics.compareExchange(m, op + O_STATE, s, s + (ST_CANCELLED - ST_WAITING)) !== s) continue;
      for (let i = 0; i < m[op + O_NCASES]!; i++) {
        const w = op + O_WORDS + i * W_WORDS;
        if (m[w + W_KIND] === K_SEND) dropDeadValue(rt, w + W_SLOT);
      }
    } else if ((s & ST_MASK) === ST_DONE && m[op + O_RESULT] === R_VALUE) {
      const fired = op + O_WORDS + m[op + O_CASE]! * W_WORDS;
      if (m[fired + W_KIND] === K_RECV) dropDeadValue(rt, op + O_SLOT);
    }
    break;
  }
  let done = true;
  for (let i = 0; i < m[op + O_NCASES]!; i++) {
    const w = op + O_WORDS + i * W_WORDS;
    if (Atomics.load(m, w + W_LINKED) !== 0 && !withdraw(rt, w)) done = false;
  }
  return done;
}

/** Frees the rest of a value (its handles' references): installed by the channel module. */
let discardValue: ((rt: Runtime, slot: Int32Array) => void) | undefined;

/** @internal */
export function setValueDiscarder(discard: (rt: Runtime, slot: Int32Array) => void): void {
  discardValue = discard;
}

/**
 * Drops the value in the 4-word slot at word `at` of a dead thread's op, if it is a block: the
 * block is freed, and the references its channel handles hold are given back where the channel
 * module is loaded (main); the supervisor, which has not loaded it, hands such a value to main
 * (H_ORPHAN_VALUES: see `takeOrphanValues`). Idempotent: the slot is cleared.
 */
function dropDeadValue(rt: Runtime, at: number): void {
  const h = rt.heap;
  const m = h.i32;
  if (m[at + S_TAG] !== TAG_BLOCK) return;
  if (m[at + S_W3] === 0) {
    m[at + S_TAG] = 0;
    h.free(m[at + S_W2]!);
  } else if (discardValue !== undefined) {
    discardValue(rt, m.subarray(at, at + 4));
  } else {
    let rec: number;
    try {
      rec = h.alloc(5 * 4);
    } catch {
      return; // out of heap: it stays where it is, a leak but no harm
    }
    h.sync();
    const r = rec >> 2;
    for (let i = 0; i < 4; i++) h.i32[r + 1 + i] = h.i32[at + i]!;
    h.i32[at + S_TAG] = 0;
    pushRecord(h.i32, H_ORPHAN_VALUES, rec);
  }
}

/** Main: drops (`discard`) every value the supervisor handed over (see `dropDeadValue`). */
export function takeOrphanValues(rt: Runtime, discard: (rt: Runtime, slot: Int32Array) => void): void {
  const h = rt.heap;
  h.sync();
  let rec = Atomics.exchange(h.i32, H_ORPHAN_VALUES, 0);
  while (rec !== 0) {
    h.sync();
    const next = h.i32[rec >> 2]!;
    discard(rt, h.i32.subarray((rec >> 2) + 1, (rec >> 2) + 5));
    h.free(rec);
    rec = next;
  }
}

/** Unlinks waiter `w` (word index) of a dead thread's settled op; false if the lock was busy. */
function withdraw(rt: Runtime, w: number): boolean {
  const h = rt.heap;
  const c = h.i32[w + W_CHAN]! >> 2;
  const got = lockFor(rt, c);
  if (got !== LOCKED) return got === BROKEN; // a broken queue is never walked again
  if (h.i32[w + W_LINKED] !== 0) unlink(h.i32, c, h.i32[w + W_KIND] === K_SEND ? C_SENDQ_HEAD : C_RECVQ_HEAD, w << 2);
  h.unlock(c + C_LOCK);
  return true;
}

/** Publishes the name of the process this thread now runs (undefined: none), for its death. */
export function publishProcess(rt: Runtime, name: string | undefined): void {
  const h = rt.heap;
  const at = slotWord(rt.slot, T_NAME);
  const old = h.i32[at]!;
  const fresh = name === undefined ? 0 : storeName(h, name);
  h.sync();
  h.i32[slotWord(rt.slot, T_NAME_LEN)] = name?.length ?? 0;
  Atomics.store(h.i32, at, fresh);
  if (old !== 0) h.free(old);
}

/** The name of the process whose death broke or disconnected channel word index `c`, if known. */
export function diedOn(rt: Runtime, c: number): string | undefined {
  const m = rt.heap.i32;
  const at = m[c + C_DIED]!;
  return at === 0 ? undefined : loadName(rt.heap, at, m[c + C_DIED_LEN]!);
}
