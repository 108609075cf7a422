/**
 * The channel algorithm: what one case (a send or a receive) does on one channel, with the
 * channel lock held. The engine (engine.ts) wraps these into blocking operations and selects.
 *
 * Invariants, true whenever the channel lock is free (checked by `checkInvariants`):
 *  1. No WAITING sender and WAITING receiver of different operations are queued together
 *     (one select may wait on both ends of the same channel).
 *  2. A non-empty buffer means no WAITING receiver; a full buffer (or capacity 0) is the only
 *     state with WAITING senders.
 *  3. 0 <= count <= cap; C_NSEND / C_NRECV equal the lengths of the queues.
 *  4. A closed channel has no WAITING waiters of either kind.
 *
 * Claiming: a waiter is taken by compareExchange of its op's state WAITING -> CLAIMED; the claimer
 * unlinks it, copies the value, stores DONE, and wakes the owner only after unlocking. A waiter
 * whose op is no longer WAITING (another case of its select fired, or it is being cancelled) is
 * skipped, never unlinked: its owner unlinks it.
 */
import {
  C_CAP,
  C_COUNT,
  C_BUF,
  C_FLAGS,
  C_HEAD,
  C_RECVQ_HEAD,
  C_SENDQ_HEAD,
  F_CLOSED,
  F_POISONED,
  FAULT_DROP,
  FAULT_PERIOD,
  FAULT_REORDER,
  H_FAULT,
  H_FAULT_COUNT,
  O_CASE,
  O_RESULT,
  O_SLOT,
  O_STATE,
  R_CLOSED,
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
import { unlink } from './queue.js';

/** Not ready: the case would block. */
export const NOT_READY = 0;

/** Ops to wake once the lock is released (never notify while holding it). */
export const wakes: number[] = [];

function faultDue(m: Int32Array): boolean {
  return Atomics.add(m, H_FAULT_COUNT, 1) % FAULT_PERIOD === FAULT_PERIOD - 1;
}

/** Tries to take waiter `w` (word index) for the caller; returns the claimed state, or -1. */
function claim(m: Int32Array, w: number, selfOp: number): number {
  const op = m[w + W_OP]!;
  if (op === selfOp) return -1; // a select never pairs with itself
  const at = (op >> 2) + O_STATE;
  const s = Atomics.load(m, at);
  if ((s & ST_MASK) !== ST_WAITING) return -1;
  return Atomics.compareExchange(m, at, s, s + (ST_CLAIMED - ST_WAITING)) === s ? s : -1;
}

/** Finishes a claimed waiter: records which case fired and how, publishes DONE, queues the wake. */
function finish(m: Int32Array, w: number, claimed: number, result: number): void {
  const op = m[w + W_OP]! >> 2;
  m[op + O_CASE] = m[w + W_CASE]!;
  m[op + O_RESULT] = result;
  // seq-cst store: the slot and case written above are visible to whoever sees DONE.
  Atomics.store(m, op + O_STATE, claimed + (ST_DONE - ST_WAITING));
  wakes.push(op << 2);
}

function copy4(from: Int32Array, fi: number, to: Int32Array, ti: number): void {
  to[ti] = from[fi]!;
  to[ti + 1] = from[fi + 1]!;
  to[ti + 2] = from[fi + 2]!;
  to[ti + 3] = from[fi + 3]!;
}

/**
 * Sends the value in `val[0..4]` on channel word index `c`. Caller holds the lock.
 * Returns R_VALUE (delivered or buffered), R_CLOSED, R_POISONED or NOT_READY.
 */
export function sendLocked(m: Int32Array, c: number, val: Int32Array, selfOp: number): number {
  const flags = m[c + C_FLAGS]!;
  if (flags !== 0) return (flags & F_POISONED) !== 0 ? R_POISONED : R_CLOSED;
  if (m[H_FAULT] === FAULT_DROP && faultDue(m)) return R_VALUE; // test-only: the value is lost
  for (let w = m[c + C_RECVQ_HEAD]! >> 2; w !== 0; w = m[w + W_NEXT]! >> 2) {
    const s = claim(m, w, selfOp);
    if (s < 0) continue;
    unlink(m, c, C_RECVQ_HEAD, w << 2);
    copy4(val, 0, m, (m[w + W_OP]! >> 2) + O_SLOT);
    finish(m, w, s, R_VALUE);
    return R_VALUE;
  }
  const count = m[c + C_COUNT]!;
  const cap = m[c + C_CAP]!;
  if (count < cap) {
    copy4(val, 0, m, (m[c + C_BUF]! >> 2) + ((m[c + C_HEAD]! + count) % cap) * 4);
    // Atomics: `len` reads the count without the lock.
    Atomics.store(m, c + C_COUNT, count + 1);
    return R_VALUE;
  }
  return NOT_READY;
}

/**
 * Receives from channel word index `c` into `out[0..4]`. Caller holds the lock.
 * Returns R_VALUE, R_CLOSED (closed and drained), R_POISONED or NOT_READY.
 */
export function recvLocked(m: Int32Array, c: number, out: Int32Array, selfOp: number): number {
  const flags = m[c + C_FLAGS]!;
  if ((flags & F_POISONED) !== 0) return R_POISONED;
  const count = m[c + C_COUNT]!;
  if (count > 0) {
    const cap = m[c + C_CAP]!;
    const buf = m[c + C_BUF]! >> 2;
    const head = m[c + C_HEAD]!;
    if (m[H_FAULT] === FAULT_REORDER && count > 1 && faultDue(m)) {
      // test-only: deliver the second buffered value first
      const second = buf + ((head + 1) % cap) * 4;
      copy4(m, second, out, 0);
      copy4(m, buf + head * 4, m, second);
    } else copy4(m, buf + head * 4, out, 0);
    const next = head + 1 === cap ? 0 : head + 1;
    m[c + C_HEAD] = next;
    let n = count - 1;
    // A slot came free: move the first waiting sender's value into it.
    for (let w = m[c + C_SENDQ_HEAD]! >> 2; w !== 0; w = m[w + W_NEXT]! >> 2) {
      const s = claim(m, w, selfOp);
      if (s < 0) continue;
      unlink(m, c, C_SENDQ_HEAD, w << 2);
      copy4(m, w + W_SLOT, m, buf + ((next + n) % cap) * 4);
      n++;
      finish(m, w, s, R_VALUE);
      break;
    }
    Atomics.store(m, c + C_COUNT, n);
    return R_VALUE;
  }
  for (let w = m[c + C_SENDQ_HEAD]! >> 2; w !== 0; w = m[w + W_NEXT]! >> 2) {
    const s = claim(m, w, selfOp);
    if (s < 0) continue;
    unlink(m, c, C_SENDQ_HEAD, w << 2);
    copy4(m, w + W_SLOT, out, 0);
    finish(m, w, s, R_VALUE);
    return R_VALUE;
  }
  return (flags & F_CLOSED) !== 0 ? R_CLOSED : NOT_READY;
}

function hasWaiting(m: Int32Array, first: number, selfOp: number): boolean {
  for (let w = first >> 2; w !== 0; w = m[w + W_NEXT]! >> 2) {
    const op = m[w + W_OP]!;
    if (op !== selfOp && (Atomics.load(m, (op >> 2) + O_STATE) & ST_MASK) === ST_WAITING) return true;
  }
  return false;
}

/** Whether a send (kind 1) or receive (kind 2) on `c` would complete now. Caller holds the lock. */
export function isReadyLocked(m: Int32Array, c: number, kind: number, selfOp: number): boolean {
  const flags = m[c + C_FLAGS]!;
  if (kind === 1) {
    if (flags !== 0 || m[c + C_COUNT]! < m[c + C_CAP]!) return true;
    return hasWaiting(m, m[c + C_RECVQ_HEAD]!, selfOp);
  }
  if (flags !== 0 || m[c + C_COUNT]! > 0) return true;
  return hasWaiting(m, m[c + C_SENDQ_HEAD]!, selfOp);
}

/**
 * Marks `c` closed (flag F_CLOSED) or poisoned (F_POISONED) and fails every waiting party with
 * `result`. Caller holds the lock. Buffered values stay for receivers to drain after a close.
 */
export function shutLocked(m: Int32Array, c: number, flag: number, result: number): void {
  m[c + C_FLAGS] = m[c + C_FLAGS]! | flag;
  failQueue(m, c, C_RECVQ_HEAD, result);
  failQueue(m, c, C_SENDQ_HEAD, result);
}

function failQueue(m: Int32Array, c: number, head: number, result: number): void {
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

/** A closed channel reports R_CLOSED to receivers once drained; a poisoned one R_POISONED at once. */
export { R_CLOSED, R_POISONED, R_VALUE };
