/**
 * The references a worker's channel handles hold, listed in shared memory, so that a thread that
 * dies gives them back: a handle is an object in the worker's own heap, and its reference (the
 * channel's count, in the shared heap) would otherwise stay taken for good, and its channel never
 * be freed. (A process's arguments are listed in its record's claim table instead: see
 * `listArgRefs` in channel.ts.)
 *
 *  table (T_HELD):  [ next | count | capacity ][ off id ][ off id ] …      (word pairs)
 *
 * Invariants
 * - Only the thread writes its table while it lives; the reaper reads it only once it is dead,
 *   and hands it to main (H_ORPHAN_REFS), which gives back every entry whose `off` is not 0.
 * - An entry is written (id, then off) before `count` covers it, and its `off` is cleared before
 *   the handle gives its reference back: a thread that dies in between leaks that reference,
 *   never gives one back twice, and the reaper never reads an entry that was not written.
 */
import { H_ORPHAN_REFS, T_HELD } from './layout.js';
import { slotWord, type Runtime } from './runtime.js';

const NEXT = 0;
const COUNT = 1;
const CAPACITY = 2;
const HEADER = 3;

/** This thread's table (byte offset, 0: none yet), its entries ever used, and those free again. */
let table = 0;
let used = 0;
const free: number[] = [];

/**
 * Lists the reference to the channel at byte `off` (id `id`) that a new handle holds in this
 * worker; returns its entry, or -1 when the heap has no room for the table (that reference then
 * leaks only if the thread dies).
 */
export function holdRef(rt: Runtime, off: number, id: number): number {
  const h = rt.heap;
  let e = free.pop();
  if (e === undefined) {
    h.sync();
    if (table === 0 || used === h.i32[(table >> 2) + CAPACITY]) {
      try {
        grow(rt, table === 0 ? 16 : 2 * h.i32[(table >> 2) + CAPACITY]!);
      } catch {
        return -1;
      }
    }
    e = used++;
  }
  h.sync();
  const m = h.i32;
  const at = (table >> 2) + HEADER + 2 * e;
  m[at + 1] = id;
  Atomics.store(m, at, off);
  Atomics.store(m, (table >> 2) + COUNT, used);
  return e;
}

/** A table twice as large, with the entries so far; published, then the old one freed. */
function grow(rt: Runtime, capacity: number): void {
  const h = rt.heap;
  const next = h.alloc((HEADER + 2 * capacity) * 4);
  h.sync();
  const m = h.i32;
  const n = next >> 2;
  m[n + NEXT] = 0;
  m[n + COUNT] = used;
  m[n + CAPACITY] = capacity;
  for (let i = 0; i < 2 * used; i++) m[n + HEADER + i] = m[(table >> 2) + HEADER + i]!;
  const old = table;
  table = next;
  Atomics.store(m, slotWord(rt.slot, T_HELD), next);
  if (old !== 0) h.free(old);
}

/**
 * Takes entry `e` (from `holdRef`) off the list, before its handle gives its reference back:
 * false if it was taken off already (the handle must then give nothing back). -1: never listed.
 */
export function dropHeld(rt: Runtime, e: number): boolean {
  if (e < 0) return true;
  free.push(e); // (first: running out of memory after the entry is cleared would lose the entry)
  rt.heap.sync();
  if (Atomics.exchange(rt.heap.i32, (table >> 2) + HEADER + 2 * e, 0) !== 0) return true;
  free.pop();
  return false;
}

/** The reaper: hands dead thread `slot`'s table to main (H_ORPHAN_REFS), which gives its references back. */
export function orphanHeld(rt: Runtime, slot: number): void {
  const m = rt.heap.i32;
  const t = Atomics.exchange(m, slotWord(slot, T_HELD), 0);
  if (t !== 0) pushRecord(m, H_ORPHAN_REFS, t);
}

/**
 * Pushes heap record `rec` (byte offset) on the stack whose top is header word `head`, linked
 * through the record's first word: for main to take later (Atomics.exchange of the head).
 */
export function pushRecord(m: Int32Array, head: number, rec: number): void {
  for (;;) {
    const top = Atomics.load(m, head);
    m[(rec >> 2) + NEXT] = top; // (published by the exchange below)
    if (Atomics.compareExchange(m, head, top, rec) === top) return;
  }
}

/** Main: calls `giveBack` for every reference the tables of dead threads still list, and frees the tables. */
export function takeOrphans(rt: Runtime, giveBack: (off: number, id: number) => void): void {
  const h = rt.heap;
  h.sync();
  let t = Atomics.exchange(h.i32, H_ORPHAN_REFS, 0);
  while (t !== 0) {
    const w = t >> 2;
    for (let i = 0, n = h.i32[w + COUNT]!; i < n; i++) {
      h.sync(); // (a give-back may free, and another thread grow the heap)
      const at = w + HEADER + 2 * i;
      const off = Atomics.exchange(h.i32, at, 0);
      if (off !== 0) giveBack(off, h.i32[at + 1]!);
    }
    h.sync();
    const next = h.i32[w + NEXT]!;
    h.free(t);
    t = next;
  }
}
