/**
 * The buffer of a buffered channel: a bounded multi-producer multi-consumer ring in which every
 * entry carries a sequence number, so that a send or receive that neither fills nor empties the
 * buffer completes without the channel lock: producers touch only the enqueue word and the entry,
 * consumers only the dequeue word and the entry.
 *
 *  ring block:  [ enq | … 64 B … ][ deq | … 64 B … ][ entry 0 ][ entry 1 ] … [ entry cap-1 ]
 *  entry:       [ seq _ _ _ | slot(4) ]        (32 bytes; the slot's float64 stays 8-aligned)
 *
 * The ring has `size` = max(cap, 2) entries (the sequence scheme needs two; a capacity of 1 is
 * enforced by comparing positions). Positions count modulo `wrap`, a multiple of `size` below
 * 2^30; bit 30 of the enqueue word is the closed bit (set by close, so a send that races a close
 * either lands before it or fails). Entry e is free for the producer at position p when
 * seq == p, holds p's value when seq == p + 1, and is free again for p + size once consumed.
 *
 * Invariant: an entry's slot is written only by the producer that moved `enq` past its position,
 * and read only by the consumer that moved `deq` past it; seq publishes each hand-over.
 *
 * Death: a thread that died between claiming a position and publishing its entry would wedge the
 * ring for good. A worker is stopped (terminate, out of memory) only where V8 checks for
 * interrupts: at calls and loop back-edges. So the code from each claim to its publication has
 * neither: the slot is copied inline, and every value it stores is computed before the claim.
 */
import { FAULT_DROP, FAULT_PERIOD, FAULT_REORDER, H_FAULT, H_FAULT_COUNT } from './layout.js';

export const R_ENQ = 0;
export const R_DEQ = 16;
export const R_ENTRIES = 32;
export const ENTRY_WORDS = 8;
export const E_SLOT = 4;
export const CLOSED_BIT = 1 << 30;
const POS_MASK = CLOSED_BIT - 1;

export const RING_OK = 1;
export const RING_FULL = 0; // for enqueue; RING_EMPTY for dequeue
export const RING_EMPTY = 0;
export const RING_CLOSED = -1;

/** Copies a 4-word value slot from `from[fi..]` to `to[ti..]` (shared or local arrays alike). */
export function copy4(from: Int32Array, fi: number, to: Int32Array, ti: number): void {
  to[ti] = from[fi]!;
  to[ti + 1] = from[fi + 1]!;
  to[ti + 2] = from[fi + 2]!;
  to[ti + 3] = from[fi + 3]!;
}

/** A channel's ring: where it is and its fixed dimensions (cached by each handle). */
export interface Ring {
  /** Word index of the ring block. */
  r: number;
  cap: number;
  size: number;
  wrap: number;
}

export function ringOf(r: number, cap: number): Ring {
  const size = cap < 2 ? 2 : cap;
  return { r, cap, size, wrap: Math.floor(CLOSED_BIT / size) * size };
}

/** Bytes of a ring block for capacity `cap`. */
export function ringBytes(cap: number): number {
  return (R_ENTRIES + (cap < 2 ? 2 : cap) * ENTRY_WORDS) * 4;
}

/** Initialises a fresh, empty ring. */
export function ringInit(m: Int32Array, g: Ring): void {
  m[g.r + R_ENQ] = 0;
  m[g.r + R_DEQ] = 0;
  for (let e = 0; e < g.size; e++) m[g.r + R_ENTRIES + e * ENTRY_WORDS] = e;
}

/** (a - b) as a signed distance modulo `wrap`. */
function dist(a: number, b: number, wrap: number): number {
  let d = a - b;
  if (d > wrap >> 1) d -= wrap;
  else if (d < -(wrap >> 1)) d += wrap;
  return d;
}

function next(p: number, wrap: number): number {
  return p + 1 === wrap ? 0 : p + 1;
}

/** Enqueues `val` (4 words). Lock-free; safe with or without the channel lock held. */
export function ringEnqueue(m: Int32Array, g: Ring, val: Int32Array): number {
  const { r, wrap } = g;
  for (;;) {
    const word = Atomics.load(m, r + R_ENQ);
    if ((word & CLOSED_BIT) !== 0) return RING_CLOSED;
    const e = r + R_ENTRIES + (word % g.size) * ENTRY_WORDS;
    const d = dist(Atomics.load(m, e), word, wrap);
    if (d < 0) return RING_FULL; // the entry still holds a value from a lap ago
    if (g.cap === 1 && word !== Atomics.load(m, r + R_DEQ)) return RING_FULL;
    if (d > 0) continue; // another producer took this position: look again
    const after = next(word, wrap);
    // compareExchange is seq-cst: it claims the position (and fails if close set the bit).
    if (Atomics.compareExchange(m, r + R_ENQ, word, after) !== word) continue;
    if (m[H_FAULT] === FAULT_DROP && faultDue(m)) {
      m[e + E_SLOT] = 0; // test-only: tag 0, a hole the consumer skips: the value is lost
      Atomics.store(m, e, after);
      return RING_OK;
    }
    // From the claim to the publication: no call, no loop (see "Death" above).
    m[e + E_SLOT] = val[0]!;
    m[e + E_SLOT + 1] = val[1]!;
    m[e + E_SLOT + 2] = val[2]!;
    m[e + E_SLOT + 3] = val[3]!;
    // seq-cst store publishes the slot; a consumer reads seq with Atomics.load first.
    Atomics.store(m, e, after);
    return RING_OK;
  }
}

const stash = new Map<number, Int32Array>(); // test-only REORDER fault: a value held back

/**
 * Dequeues into `out` (4 words). Lock-free. Returns RING_OK or RING_EMPTY.
 *
 * The oldest entry may be claimed by a producer that has not published it yet, while later
 * entries are published. `exact` (the locked paths) then waits for that producer (a few
 * instructions), so that RING_EMPTY means no value at all: they rely on it to hand a waiting
 * sender's value over directly without passing older buffered values. The lock-free fast path
 * passes false and takes the locked path instead.
 */
export function ringDequeue(m: Int32Array, g: Ring, out: Int32Array, exact = true): number {
  const { r, wrap } = g;
  for (;;) {
    const pos = Atomics.load(m, r + R_DEQ);
    const e = r + R_ENTRIES + (pos % g.size) * ENTRY_WORDS;
    const d = dist(Atomics.load(m, e), next(pos, wrap), wrap);
    if (d < 0) {
      if (exact && (Atomics.load(m, r + R_ENQ) & POS_MASK) !== pos) continue; // claimed, not yet published
      if (stash.size === 0) return RING_EMPTY;
      const held = stash.get(r);
      if (held === undefined) return RING_EMPTY;
      stash.delete(r);
      out.set(held);
      return RING_OK;
    }
    if (d > 0) continue;
    // The entry's sequence number one lap later: free for the producer at that position.
    const lap = pos + g.size >= wrap ? pos + g.size - wrap : pos + g.size;
    if (Atomics.compareExchange(m, r + R_DEQ, pos, next(pos, wrap)) !== pos) continue;
    // From the claim to the release: no call, no loop (see "Death" above).
    const tag = (out[0] = m[e + E_SLOT]!);
    out[1] = m[e + E_SLOT + 1]!;
    out[2] = m[e + E_SLOT + 2]!;
    out[3] = m[e + E_SLOT + 3]!;
    Atomics.store(m, e, lap);
    if (tag === 0) continue; // test-only DROP fault left a hole
    if (m[H_FAULT] === FAULT_REORDER && !stash.has(r) && faultDue(m)) {
      stash.set(r, Int32Array.from(out)); // test-only: deliver the next value first
      continue;
    }
    return RING_OK;
  }
}

/**
 * The ring's fill (values in it or on their way in) read with plain loads, which cost a fraction
 * of Atomics.load here: for a select's first look. Every write that happens-before the look is
 * seen (the memory model's guarantee for plain reads too), so a select with a default never
 * misses a value that was sent before it; a write racing with the look may be missed, as it may
 * be by any check, and a waiting select finds it in its locked, seq-cst re-check (engine.ts).
 */
export function ringFillHint(m: Int32Array, g: Ring): number {
  return dist(m[g.r + R_ENQ]! & POS_MASK, m[g.r + R_DEQ]!, g.wrap);
}

/**
 * Whether the ring was empty at one instant during the call: no value in it, none on its way.
 * The dequeue position is read first: positions only grow, so an enqueue position equal to it,
 * read after, was equal then too. (`ringLength` reads them the other way round, which is the
 * order that proves "full".)
 */
export function ringSurelyEmpty(m: Int32Array, g: Ring): boolean {
  const deq = Atomics.load(m, g.r + R_DEQ);
  return (Atomics.load(m, g.r + R_ENQ) & POS_MASK) === deq;
}

/** Values in the ring now (an instant's view; exact when no one else is operating). */
export function ringLength(m: Int32Array, g: Ring): number {
  const n = dist(Atomics.load(m, g.r + R_ENQ) & POS_MASK, Atomics.load(m, g.r + R_DEQ), g.wrap);
  return n < 0 ? 0 : n > g.cap ? g.cap : n;
}

/**
 * Sets the closed bit, then waits until every send that claimed a position before it has
 * published its value, so that receivers never see "closed" while a value is still on its way.
 */
export function ringClose(m: Int32Array, g: Ring): void {
  const end = Atomics.or(m, g.r + R_ENQ, CLOSED_BIT) & POS_MASK;
  for (let p = Atomics.load(m, g.r + R_DEQ); p !== end; p = next(p, g.wrap)) {
    // Claimed but not yet published: its producer is a few instructions from done.
    while (Atomics.load(m, g.r + R_ENTRIES + (p % g.size) * ENTRY_WORDS) === p);
  }
}

function faultDue(m: Int32Array): boolean {
  return Atomics.add(m, H_FAULT_COUNT, 1) % FAULT_PERIOD === FAULT_PERIOD - 1;
}
