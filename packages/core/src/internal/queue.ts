/**
 * A channel's waiter queues: doubly linked lists of waiter records, one for senders and one for
 * receivers. Every function here runs with the channel lock held (the caller's precondition).
 */
import { C_NRECV, C_NSEND, C_RECVQ_HEAD, C_SENDQ_HEAD, W_LINKED, W_NEXT, W_PREV } from './layout.js';

/** Which queue: its head word (tail is head + 1) and its waiter-count word. */
export function queueHead(kind: number): number {
  return kind === 1 ? C_SENDQ_HEAD : C_RECVQ_HEAD;
}

function countWord(head: number): number {
  return head === C_SENDQ_HEAD ? C_NSEND : C_NRECV;
}

/** Appends waiter `w` (byte offset) to the queue at `c + head` (c: channel word index). Caller holds the lock. */
export function link(m: Int32Array, c: number, head: number, w: number): void {
  const wi = w >> 2;
  const tail = m[c + head + 1]!;
  m[wi + W_NEXT] = 0;
  m[wi + W_PREV] = tail;
  if (tail === 0) m[c + head] = w;
  else m[(tail >> 2) + W_NEXT] = w;
  m[c + head + 1] = w;
  m[wi + W_LINKED] = 1;
  // seq-cst: a lock-free send or receive stores into the buffer, then loads this count; a waiter
  // stores this count, then looks at the buffer. Each side sees the other (see ring.ts).
  Atomics.store(m, c + countWord(head), m[c + countWord(head)]! + 1);
}

/** Removes waiter `w` from the queue at `c + head`. Caller holds the lock; `w` is linked there. */
export function unlink(m: Int32Array, c: number, head: number, w: number): void {
  const wi = w >> 2;
  const next = m[wi + W_NEXT]!;
  const prev = m[wi + W_PREV]!;
  if (prev === 0) m[c + head] = next;
  else m[(prev >> 2) + W_NEXT] = next;
  if (next === 0) m[c + head + 1] = prev;
  else m[(next >> 2) + W_PREV] = prev;
  m[wi + W_NEXT] = 0;
  m[wi + W_PREV] = 0;
  // A plain store: the seq-cst unlock publishes it to the owner's lock-free W_LINKED check.
  m[wi + W_LINKED] = 0;
  Atomics.store(m, c + countWord(head), m[c + countWord(head)]! - 1);
}
