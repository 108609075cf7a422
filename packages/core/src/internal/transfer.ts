/**
 * The channel algorithm: what one case (a send or a receive) does on one channel, with the
 * channel lock held. The engine (engine.ts) wraps these into blocking operations and selects.
 *
 * Invariants, true whenever the channel lock is free and no lock-free buffer operation is under
 * way (checked by `checkInvariants`). A buffered channel's sends and receives that neither fill
 * nor empty its ring run without the lock (ring.ts); one that finds parties of the other kind
 * parked then pumps under the lock, which restores 1 and 2 before it returns.
 *  1. No WAITING sender and WAITING receiver of different operations are queued together
 *     (one select may wait on both ends of the same channel).
 *  2. A non-empty buffer means no WAITING receiver; a full buffer (or capacity 0) is the only
 *     state with WAITING senders.
 *  3. 0 <= count <= cap; C_NSEND / C_NRECV equal the lengths of the queues.
 *  4. A closed channel has no WAITING waiters of either kind.
 *
 * Claiming: a waiter is taken by compareExchange of its op's state WAITING -> CLAIMED; the claimer
 * unlinks it, copies the value, stores DONE, and wakes the owner only after unlocking. A claimer
 * that finds it cannot complete the claim after all (a buffer emptied or filled by a lock-free op
 * meanwhile) hands it back: WAITING again, and the owner woken. A claim in progress through
 * another channel is waited out (settledState), never skipped. A waiter whose op is settled in
 * another state (another case of its select fired, or it is being cancelled) is skipped, never
 * unlinked: its owner unlinks it.
 */
import {
  C_CAP,
  C_BUF,
  C_FLAGS,
  C_RECVQ_HEAD,
  C_RSIZE,
  C_RWRAP,
  C_SENDQ_HEAD,
  F_CLOSED,
  F_POISONED,
  F_RECEIVERS_GONE,
  F_SENDERS_GONE,
  F_SHUT,
  FAULT_DIE_CLAIMING,
  FAULT_DROP,
  FAULT_PERIOD,
  H_FAULT,
  H_FAULT_COUNT,
  O_CASE,
  O_RESULT,
  O_SLOT,
  O_STATE,
  R_CLOSED,
  R_PEER_DIED,
  R_POISONED,
  R_VALUE,
  ST_CLAIMED,
  ST_DONE,
  ST_MASK,
  ST_WAITING,
  W_CASE,
  W_NEXT,
  W_OP,
  W_SLOT,
} from './layout.js';
import { isMainThread } from 'node:worker_threads';
import { waitingSince } from './heap.js';
import { unlink } from './queue.js';
import { copy4, RING_CLOSED, RING_OK, ringClose, ringDequeue, ringEnqueue, ringLength, type Ring } from './ring.js';

/** Not ready: the case would block. */
export const NOT_READY = 0;

/** Ops to wake once the lock is released (never notify while holding it). */
export const wakes: number[] = [];

function faultDue(m: Int32Array): boolean {
  return Atomics.add(m, H_FAULT_COUNT, 1) % FAULT_PERIOD === FAULT_PERIOD - 1;
}

/**
 * How long (ms) a claim under way through another channel is waited out before `settledState`
 * gives up with CLAIM_BUSY. Infinite on every thread but the supervisor: there, the claimer may
 * be a thread that died too, whose claim only the supervisor itself can settle (reap.ts).
 */
let claimPatience = Infinity;

/** What `settledState` throws on the supervisor when a claim stays under way too long. */
export const CLAIM_BUSY = new Error('occam: a claim stayed under way');

/** @internal The supervisor waits for another thread's claim at most `ms` at a time. */
export function setClaimPatience(ms: number): void {
  claimPatience = ms;
}

/**
 * The state of the op whose state word is `at`, once no claim is in progress on it. A select's op
 * can be claimed through one channel while we look at it through another; that claimer holds
 * its own channel's lock and is a few instructions from DONE or from handing the claim back
 * (`unclaim`), and it takes no other claim or lock meanwhile, so waiting for it cannot deadlock.
 * Skipping a CLAIMED op instead would be wrong when it is handed back: we would have passed over
 * a party that is WAITING again (a value left in a buffer, a close that never reached it).
 */
export function settledState(m: Int32Array, at: number): number {
  let end = 0;
  let stuck = 0;
  for (let i = 1; ; i++) {
    const s = Atomics.load(m, at);
    if ((s & ST_MASK) !== ST_CLAIMED) return s;
    if ((i & 1023) === 0) {
      const now = performance.now();
      if (claimPatience !== Infinity) {
        if (end === 0) end = now + claimPatience;
        else if (now > end) throw CLAIM_BUSY;
      }
      stuck = waitingSince(stuck, now); // a claimer this slow may have died: the supervisor settles it
    }
  }
}

/** Word index of this thread's T_CLAIM_OP (T_CLAIM_STATE follows); set when it joins the runtime. */
let claimAt = 0;

/** The CLAIMED state this thread writes: it names the claimer, so its death can be told apart. */
let claimedWord = ST_CLAIMED;

/** The CLAIMED state that thread-table slot `slot` writes into an op it claims. */
export function claimedBy(slot: number): number {
  return ((slot + 1) << 3) | ST_CLAIMED;
}

/** @internal This thread's claim record `at` (T_CLAIM_OP) and thread-table `slot`. */
export function setClaimWord(at: number, slot: number): void {
  claimAt = at;
  claimedWord = claimedBy(slot);
}

/** This thread's CLAIMED state (see `claimedBy`). */
export function myClaimedState(): number {
  return claimedWord;
}

/**
 * Tries to take waiter `w` (word index) for the caller; returns the WAITING state it took it
 * from, or -1. The claim is recorded in the thread table first (the op, and the state to restore
 * the sequence number from): if we die holding it, the supervisor finds the op in our CLAIMED
 * state, which no other thread writes, and fails it (reap.ts). A record left by a claim that
 * lost its CAS, or that has ended, never matches: the op's state is then someone else's.
 */
function claim(m: Int32Array, w: number, selfOp: number): number {
  const op = m[w + W_OP]!;
  if (op === selfOp) return -1; // a select never pairs with itself
  const at = (op >> 2) + O_STATE;
  for (;;) {
    const s = settledState(m, at);
    if ((s & ST_MASK) !== ST_WAITING) return -1;
    m[claimAt] = op;
    m[claimAt + 1] = s;
    if (Atomics.compareExchange(m, at, s, claimedWord) === s) {
      if (m[H_FAULT] === FAULT_DIE_CLAIMING && !isMainThread) process.exit(70); // test-only
      return s;
    }
  }
}

/**
 * Finishes a claimed waiter: records which case fired and how, publishes DONE (with the sequence
 * number of `claimed`, the WAITING state it was claimed from), queues the wake.
 */
export function finish(m: Int32Array, w: number, claimed: number, result: number): void {
  const op = m[w + W_OP]! >> 2;
  m[op + O_CASE] = m[w + W_CASE]!;
  m[op + O_RESULT] = result;
  // seq-cst store: the slot and case written above are visible to whoever sees DONE.
  Atomics.store(m, op + O_STATE, claimed + (ST_DONE - ST_WAITING));
  wakes.push(op << 2);
}


/** The ring of buffered channel `c` (a reused descriptor: read it before the next call). */
const scratchRing: Ring = { r: 0, cap: 0, size: 0, wrap: 0 };
export function ringAt(m: Int32Array, c: number): Ring {
  scratchRing.r = m[c + C_BUF]! >> 2;
  scratchRing.cap = m[c + C_CAP]!;
  scratchRing.size = m[c + C_RSIZE]!;
  scratchRing.wrap = m[c + C_RWRAP]!;
  return scratchRing;
}

const moved = new Int32Array(4);

/** Gives back a claim that could not be completed (WAITING `claimed` again); the owner is woken to look again. */
function unclaim(m: Int32Array, w: number, claimed: number): void {
  const op = m[w + W_OP]! >> 2;
  Atomics.store(m, op + O_STATE, claimed);
  wakes.push(op << 2);
}

/**
 * Hands buffered values to waiting receivers, oldest first. Caller holds the lock. Needed because
 * lock-free sends only enqueue: a sender that sees waiting receivers after enqueueing calls this.
 */
export function pumpReceiversLocked(m: Int32Array, c: number, g: Ring, selfOp: number): void {
  let w = m[c + C_RECVQ_HEAD]! >> 2;
  while (w !== 0) {
    if (ringLength(m, g) === 0) return; // nothing to hand over: claim no one
    const next = m[w + W_NEXT]! >> 2;
    const s = claim(m, w, selfOp);
    if (s >= 0) {
      if (ringDequeue(m, g, moved) !== RING_OK) {
        unclaim(m, w, s);
        return;
      }
      unlink(m, c, C_RECVQ_HEAD, w << 2);
      copy4(moved, 0, m, (m[w + W_OP]! >> 2) + O_SLOT);
      finish(m, w, s, R_VALUE);
    }
    w = next;
  }
}

/** Moves waiting senders' values into free buffer entries, oldest first. Caller holds the lock. */
export function pumpSendersLocked(m: Int32Array, c: number, g: Ring, selfOp: number): void {
  let w = m[c + C_SENDQ_HEAD]! >> 2;
  while (w !== 0) {
    if (ringLength(m, g) === g.cap) return; // no room: claim no one
    const next = m[w + W_NEXT]! >> 2;
    const s = claim(m, w, selfOp);
    if (s >= 0) {
      copy4(m, w + W_SLOT, moved, 0);
      if (ringEnqueue(m, g, moved) !== RING_OK) {
        unclaim(m, w, s);
        return;
      }
      unlink(m, c, C_SENDQ_HEAD, w << 2);
      finish(m, w, s, R_VALUE);
    }
    w = next;
  }
}

/** Gives `val` to the first claimable waiting receiver; true if one took it. Caller holds the lock. */
function handToReceiver(m: Int32Array, c: number, val: Int32Array, selfOp: number): boolean {
  for (let w = m[c + C_RECVQ_HEAD]! >> 2; w !== 0; w = m[w + W_NEXT]! >> 2) {
    const s = claim(m, w, selfOp);
    if (s < 0) continue;
    unlink(m, c, C_RECVQ_HEAD, w << 2);
    copy4(val, 0, m, (m[w + W_OP]! >> 2) + O_SLOT);
    finish(m, w, s, R_VALUE);
    return true;
  }
  return false;
}

/** Takes the value of the first claimable waiting sender into `out`; true if one gave it. Caller holds the lock. */
function takeFromSender(m: Int32Array, c: number, out: Int32Array, selfOp: number): boolean {
  for (let w = m[c + C_SENDQ_HEAD]! >> 2; w !== 0; w = m[w + W_NEXT]! >> 2) {
    const s = claim(m, w, selfOp);
    if (s < 0) continue;
    unlink(m, c, C_SENDQ_HEAD, w << 2);
    copy4(m, w + W_SLOT, out, 0);
    finish(m, w, s, R_VALUE);
    return true;
  }
  return false;
}

/**
 * Sends the value in `val[0..4]` on channel word index `c`. Caller holds the lock.
 * Returns R_VALUE (delivered or buffered), R_CLOSED, R_POISONED or NOT_READY.
 */
export function sendLocked(m: Int32Array, c: number, val: Int32Array, selfOp: number): number {
  const flags = m[c + C_FLAGS]!;
  if ((flags & F_SHUT) !== 0) return (flags & F_POISONED) !== 0 ? R_POISONED : R_CLOSED;
  if (m[c + C_CAP] === 0) {
    if (m[H_FAULT] === FAULT_DROP && faultDue(m)) return R_VALUE; // test-only: the value is lost
    if (handToReceiver(m, c, val, selfOp)) return R_VALUE;
    return (flags & F_RECEIVERS_GONE) !== 0 ? R_PEER_DIED : NOT_READY;
  }
  const g = ringAt(m, c);
  // Buffered values go first (FIFO); a receiver still waiting after that means an empty buffer.
  pumpReceiversLocked(m, c, g, selfOp);
  if (handToReceiver(m, c, val, selfOp)) return R_VALUE;
  const r = ringEnqueue(m, g, val);
  if (r === RING_OK) return R_VALUE;
  if (r === RING_CLOSED) return R_CLOSED;
  return (flags & F_RECEIVERS_GONE) !== 0 ? R_PEER_DIED : NOT_READY;
}

/**
 * Receives from channel word index `c` into `out[0..4]`. Caller holds the lock.
 * Returns R_VALUE, R_CLOSED (closed and drained), R_POISONED or NOT_READY.
 */
export function recvLocked(m: Int32Array, c: number, out: Int32Array, selfOp: number): number {
  const flags = m[c + C_FLAGS]!;
  if ((flags & F_POISONED) !== 0) return R_POISONED;
  if (m[c + C_CAP] !== 0) {
    const g = ringAt(m, c);
    if (ringDequeue(m, g, out) === RING_OK) {
      pumpSendersLocked(m, c, g, selfOp); // an entry came free
      return R_VALUE;
    }
  }
  // Unbuffered, or a buffer that drained before its waiting senders were moved in.
  if (takeFromSender(m, c, out, selfOp)) return R_VALUE;
  if ((flags & F_CLOSED) !== 0) return R_CLOSED;
  return (flags & F_SENDERS_GONE) !== 0 ? R_PEER_DIED : NOT_READY;
}

function hasWaiting(m: Int32Array, first: number, selfOp: number): boolean {
  for (let w = first >> 2; w !== 0; w = m[w + W_NEXT]! >> 2) {
    const op = m[w + W_OP]!;
    if (op !== selfOp && (settledState(m, (op >> 2) + O_STATE) & ST_MASK) === ST_WAITING) return true;
  }
  return false;
}

/** Whether a send (kind 1) or receive (kind 2) on `c` would complete now. Caller holds the lock. */
export function isReadyLocked(m: Int32Array, c: number, kind: number, selfOp: number): boolean {
  const flags = m[c + C_FLAGS]!;
  // Shut, or the other end's last user died: the op completes at once (with an error).
  if ((flags & (F_SHUT | (kind === 1 ? F_RECEIVERS_GONE : F_SENDERS_GONE))) !== 0) return true;
  const n = m[c + C_CAP] === 0 ? -1 : ringLength(m, ringAt(m, c));
  if (kind === 1) {
    if (n >= 0 && n < m[c + C_CAP]!) return true;
    return hasWaiting(m, m[c + C_RECVQ_HEAD]!, selfOp);
  }
  if (n > 0) return true;
  return hasWaiting(m, m[c + C_SENDQ_HEAD]!, selfOp);
}

/**
 * Marks `c` closed (flag F_CLOSED) or poisoned (F_POISONED) and fails every waiting party with
 * `result`. Caller holds the lock. Buffered values stay for receivers to drain after a close.
 */
export function shutLocked(m: Int32Array, c: number, flag: number, result: number): void {
  if (m[c + C_CAP] !== 0) {
    const g = ringAt(m, c);
    ringClose(m, g); // no send lands after this; sends already under way have landed
    if (flag === F_CLOSED) pumpReceiversLocked(m, c, g, 0); // waiting receivers get what is buffered
  }
  m[c + C_FLAGS] = m[c + C_FLAGS]! | flag;
  failQueue(m, c, C_RECVQ_HEAD, result);
  failQueue(m, c, C_SENDQ_HEAD, result);
}

/** Fails every waiting party in the queue at `c + head` with `result`. Caller holds the lock. */
export function failQueue(m: Int32Array, c: number, head: number, result: number): void {
  let w = m[c + head]! >> 2;
  while (w !== 0) {
    const next = m[w + W_NEXT]! >> 2;
    const s = claim(m, w, 0);
    if (s >= 0) {
      unlink(m, c, head, w << 2);
      finish(m, w, s, result);
    }
    w = next;
  }
}

