/**
 * The runtime-wide shared heap: one growable SharedArrayBuffer mapped by every thread, with a
 * size-class allocator and the spin-then-park lock used by channels.
 *
 * Invariants:
 *  - H_BYTES is the buffer's length; it only grows, under the allocator lock.
 *  - Every block starts with [sizeClass | BLOCK_MAGIC]; a free block is either on its class's
 *    free list (its first payload word links the next) or listed in a batch record (H_BATCHES),
 *    or in a thread's cache. Batch records are blocks of RECORD_CLASS that are never freed: they
 *    move between H_BATCHES and the spares (H_BATCH_RECORDS).
 *  - Views are fixed-length (length-tracking views on a growable buffer are several times slower);
 *    a thread remaps when it sees H_BYTES beyond its views (`sync()`).
 */
import { HeapExhaustedError } from '../errors.js';
import {
  BLOCK_HEADER,
  BLOCK_MAGIC,
  DEFAULT_HEAP_BYTES,
  DEFAULT_MAX_HEAP_BYTES,
  FIRST_BLOCK_BYTE,
  H_ALLOC_LOCK,
  H_BATCH_RECORDS,
  H_BATCHES,
  H_BUMP,
  H_BYTES,
  H_FREE,
  H_MAGIC,
  H_SPARE,
  H_MAX_BYTES,
  H_NCPU,
  H_NEXT_ID,
  H_RUNTIME_ID,
  H_THREADS,
  H_VERSION,
  HEAP_MAGIC,
  LAYOUT_VERSION,
  LOCK_BROKEN,
  LOCK_CONTENDED,
  MIN_BLOCK,
  N_CLASSES,
  THREAD_TABLE_BYTE,
} from './layout.js';

export interface HeapOptions {
  initialBytes?: number;
  maxBytes?: number;
}

/** Size classes up to this one (blocks of at most 1 KiB) go through per-thread caches. */
const SMALL_CLASSES = 6;
/** How long a contended lock is spun for before its waiter parks. */
const LOCK_SPIN_MS = 0.02;
const BATCH = 32;
/** Batch records ([next, count, block × BATCH], see H_BATCHES) are blocks of this class. */
const RECORD_CLASS = sizeClass(BLOCK_HEADER + (2 + BATCH) * 4);

/**
 * Called (once) when this thread has waited long for another thread — a lock, a claim — that
 * may have died, while the supervisor that would settle it has not started yet (it starts a
 * little after the first worker, from main's event loop, which such a wait blocks). Set by the
 * host module on the main thread; see internal/host.ts.
 */
let stuckHook: (() => void) | undefined;

/** @internal */
export function setStuckHook(hook: (() => void) | undefined): void {
  stuckHook = hook;
}

/** How long (ms) a wait on another thread goes on before `waitedLong` calls the hook. */
export const STUCK_MS = 10;

/** A wait on another thread has gone on for STUCK_MS: let the supervisor start, if it has not. */
export function waitedLong(): void {
  const hook = stuckHook;
  stuckHook = undefined;
  try {
    hook?.(); // (it may run under a channel lock: it must not throw through it)
  } catch (e) {
    process.emitWarning(`occam: could not start the supervisor: ${(e as Error | undefined)?.message ?? String(e)}`);
  }
}

/**
 * For a loop spinning on another thread, every so often: `since` is 0 the first time (it returns
 * `now`, when the wait began), then it is what it returned; once the wait has gone on for
 * STUCK_MS, `waitedLong`.
 */
export function waitingSince(since: number, now: number): number {
  if (since === 0) return now;
  if (now - since > STUCK_MS) waitedLong();
  return since;
}

/** What taking a broken lock throws (set by the channel module: it names the channel). */
let brokenLock: (at: number) => Error = () => new Error('occam: this lock was held by a thread that died');

/** @internal */
export function setBrokenLockError(make: (at: number) => Error): void {
  brokenLock = make;
}

export class Heap {
  readonly sab: SharedArrayBuffer;
  i32!: Int32Array;
  u8!: Uint8Array;
  f64!: Float64Array;
  /** Length our views cover. */
  bytes = 0;
  /** This thread's slot + 1: the value it writes into lock words. */
  lockId = 0;
  /** Word index of this thread's T_HOLDS (a spare header word until the thread has a slot). */
  holdsAt = H_SPARE;
  /** Atomics.wait is refused on the main thread in browsers and freezes Node's main thread: spin there. */
  canPark = true;
  /**
   * How long (ms) this thread waits for the allocator lock before an allocation fails with
   * ALLOC_BUSY. Infinite but on the supervisor, which must not wait for a lock held by a thread
   * that died too and that only it can release (reap.ts).
   */
  allocPatience = Infinity;
  /** Blocks (class, payload) whose free found the allocator lock busy: freed under the next one. */
  private readonly deferred: number[] = [];

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.remap();
  }

  /** Creates a new heap (on the thread that starts the runtime). */
  static create(runtimeId: number, ncpu: number, opts: HeapOptions = {}): Heap {
    const max = opts.maxBytes ?? DEFAULT_MAX_HEAP_BYTES;
    const initial = Math.min(max, Math.max(opts.initialBytes ?? DEFAULT_HEAP_BYTES, FIRST_BLOCK_BYTE * 2));
    const Growable = SharedArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => SharedArrayBuffer;
    const heap = new Heap(new Growable(initial, { maxByteLength: max }));
    const m = heap.i32;
    m[H_VERSION] = LAYOUT_VERSION;
    m[H_RUNTIME_ID] = runtimeId;
    m[H_BYTES] = initial;
    m[H_MAX_BYTES] = max;
    m[H_BUMP] = FIRST_BLOCK_BYTE;
    m[H_NEXT_ID] = 1;
    m[H_NCPU] = ncpu;
    m[H_THREADS] = THREAD_TABLE_BYTE;
    Atomics.store(m, H_MAGIC, HEAP_MAGIC); // last: publishes the header
    return heap;
  }

  /** Maps a heap created by another thread. */
  static attach(sab: SharedArrayBuffer): Heap {
    const heap = new Heap(sab);
    if (Atomics.load(heap.i32, H_MAGIC) !== HEAP_MAGIC) throw new Error('not an occam heap');
    return heap;
  }

  /** Remaps the views if another thread grew the heap. Call after any acquire that may reveal new offsets. */
  sync(): void {
    if (this.i32[H_BYTES] !== this.bytes) this.remap();
  }

  private remap(): void {
    const n = this.sab.byteLength;
    this.i32 = new Int32Array(this.sab, 0, n >> 2);
    this.u8 = new Uint8Array(this.sab, 0, n);
    this.f64 = new Float64Array(this.sab, 0, n >> 3);
    this.bytes = n;
  }

  get runtimeId(): number {
    return this.i32[H_RUNTIME_ID]!;
  }

  nextId(): number {
    return Atomics.add(this.i32, H_NEXT_ID, 1);
  }

  // ── locks ────────────────────────────────────────────────────────────────────

  /**
   * Takes the lock at word `at`. Critical sections are short leaf code: spin first, then park.
   * Throws if the lock is broken (its holder died in the critical section, see reap.ts).
   */
  lock(at: number): void {
    // Recorded before taking it: a thread that dies holding a lock leaves its name on it.
    this.i32[this.holdsAt] = at;
    // compareExchange is seq-cst: it orders everything the previous holder wrote before its unlock.
    if (Atomics.compareExchange(this.i32, at, 0, this.lockId) !== 0) this.lockSlow(at);
  }

  private lockSlow(at: number): void {
    const m = this.i32;
    // Critical sections are a few hundred ns: spin (in time, not iterations) well past that before
    // paying a futex sleep and wake (tens of µs here). A holder that was descheduled is what the
    // park is for.
    const end = performance.now() + LOCK_SPIN_MS;
    for (let i = 1; ; i++) {
      const v = Atomics.load(m, at);
      if (v === 0 && Atomics.compareExchange(m, at, 0, this.lockId) === 0) return;
      if ((v & LOCK_BROKEN) !== 0) throw brokenLock(at);
      if ((i & 63) === 0 && performance.now() > end) break;
    }
    const mine = this.lockId | LOCK_CONTENDED;
    const stuckAt = performance.now() + STUCK_MS;
    for (;;) {
      const v = Atomics.load(m, at);
      if (v === 0) {
        // Take it marked contended: another thread may still be parked behind us.
        if (Atomics.compareExchange(m, at, 0, mine) === 0) return;
        continue;
      }
      if (stuckHook !== undefined && performance.now() > stuckAt) waitedLong(); // its holder may have died
      // A holder that died is never waited for: the supervisor broke its lock (reap.ts).
      if ((v & LOCK_BROKEN) !== 0) throw brokenLock(at);
      if ((v & LOCK_CONTENDED) === 0 && Atomics.compareExchange(m, at, v, v | LOCK_CONTENDED) !== v) continue;
      // On the main thread park only briefly: it must stay responsive even if a holder is slow.
      Atomics.wait(m, at, v | LOCK_CONTENDED, this.canPark ? 50 : 1);
    }
  }

  /**
   * Takes the lock at word `at` if it comes free within `ms`; false if it does not. Throws if
   * it is broken. For the supervisor, which must not wait for a lock that a thread it has not yet
   * reaped holds.
   */
  tryLock(at: number, ms: number): boolean {
    const m = this.i32;
    m[this.holdsAt] = at;
    const end = performance.now() + ms;
    const mine = this.lockId | LOCK_CONTENDED;
    for (;;) {
      const v = Atomics.load(m, at);
      if (v === 0) {
        if (Atomics.compareExchange(m, at, 0, mine) === 0) return true;
        continue;
      }
      if ((v & LOCK_BROKEN) !== 0) throw brokenLock(at);
      if (performance.now() > end) return false;
      if ((v & LOCK_CONTENDED) === 0 && Atomics.compareExchange(m, at, v, v | LOCK_CONTENDED) !== v) continue;
      Atomics.wait(m, at, v | LOCK_CONTENDED, 1);
    }
  }

  /** Releases the lock at word `at`; wakes one parked contender if any. */
  unlock(at: number): void {
    // exchange is seq-cst: publishes the critical section's writes before the word reads 0.
    if ((Atomics.exchange(this.i32, at, 0) & LOCK_CONTENDED) !== 0) Atomics.notify(this.i32, at, 1);
  }

  // ── allocation ───────────────────────────────────────────────────────────────

  /**
   * This thread's cache of free small blocks, per size class. Producers allocate and consumers
   * free the same blocks; batching moves them through the global free lists BATCH at a time, so
   * the allocator lock is taken once per BATCH messages instead of twice per message.
   */
  private readonly cache: number[][] = Array.from({ length: SMALL_CLASSES + 1 }, () => []);

  /** Allocates a block with at least `size` payload bytes; returns the payload's byte offset (8-aligned). */
  alloc(size: number): number {
    const cls = sizeClass(size + BLOCK_HEADER);
    if (cls <= SMALL_CLASSES) {
      const c = this.cache[cls]!;
      if (c.length === 0) this.refill(cls, c);
      const p = c.pop()!;
      this.i32[(p - BLOCK_HEADER) >> 2] = cls | BLOCK_MAGIC;
      return p;
    }
    this.lockAlloc();
    try {
      this.sync();
      const p = this.takeLocked(cls);
      this.i32[(p - BLOCK_HEADER) >> 2] = cls | BLOCK_MAGIC;
      return p;
    } finally {
      this.unlock(H_ALLOC_LOCK);
    }
  }

  /** Returns a block from `alloc` to its free list. */
  free(payload: number): void {
    this.sync();
    const m = this.i32;
    const hdr = m[(payload - BLOCK_HEADER) >> 2]!;
    if ((hdr & ~0xff) !== BLOCK_MAGIC) throw new Error(`occam heap corruption: free of a non-block at ${payload}`);
    const cls = hdr & 0xff;
    m[(payload - BLOCK_HEADER) >> 2] = cls; // no longer a live block: a double free is caught above
    if (cls <= SMALL_CLASSES) {
      const c = this.cache[cls]!;
      c.push(payload);
      if (c.length >= 2 * BATCH) this.flush(cls, c);
      return;
    }
    if (!this.lockAlloc(false)) {
      this.deferred.push(cls, payload);
      return;
    }
    this.pushFreeLocked(cls, payload);
    this.unlock(H_ALLOC_LOCK);
  }

  /**
   * Takes the allocator lock, within `allocPatience`; if it stays busy, throws ALLOC_BUSY, or with
   * `must` false returns false. Frees deferred meanwhile are done first.
   */
  private lockAlloc(must = true): boolean {
    if (this.allocPatience === Infinity) this.lock(H_ALLOC_LOCK);
    else if (!this.tryLock(H_ALLOC_LOCK, this.allocPatience)) {
      if (must) throw ALLOC_BUSY;
      return false;
    }
    while (this.deferred.length > 0) {
      const p = this.deferred.pop()!;
      this.pushFreeLocked(this.deferred.pop()!, p);
    }
    return true;
  }

  /** Caller holds the allocator lock: puts block `p` on the free list of class `cls`. */
  private pushFreeLocked(cls: number, p: number): void {
    const m = this.i32;
    m[p >> 2] = m[H_FREE + cls]!;
    m[H_FREE + cls] = p;
  }

  /** Caller holds the allocator lock: a free block of class `cls`, from its list or fresh. */
  private takeLocked(cls: number): number {
    const m = this.i32;
    const head = m[H_FREE + cls]!;
    if (head !== 0) {
      m[H_FREE + cls] = m[head >> 2]!;
      return head;
    }
    const start = m[H_BUMP]!;
    const end = start + (MIN_BLOCK << cls);
    if (end > this.bytes) this.grow(end);
    this.i32[H_BUMP] = end;
    return start + BLOCK_HEADER;
  }

  private refill(cls: number, c: number[]): void {
    this.lockAlloc();
    try {
      this.sync();
      const m = this.i32;
      const r = m[H_BATCHES + cls]!;
      if (r !== 0) {
        // A batch another thread freed: its blocks from one record, the record back to the spares.
        const w = r >> 2;
        m[H_BATCHES + cls] = m[w]!;
        for (let i = 0, n = m[w + 1]!; i < n; i++) c.push(m[w + 2 + i]!);
        m[w] = m[H_BATCH_RECORDS]!;
        m[H_BATCH_RECORDS] = r;
        return;
      }
      c.push(this.takeLocked(cls)); // throws HeapExhaustedError only if not even one block fits
      for (let i = 1; i < BATCH && (this.i32[H_FREE + cls] !== 0 || this.roomFor(cls)); i++) c.push(this.takeLocked(cls));
    } finally {
      this.unlock(H_ALLOC_LOCK);
    }
  }

  private roomFor(cls: number): boolean {
    return this.i32[H_BUMP]! + (MIN_BLOCK << cls) <= this.bytes;
  }

  /** Gives every cached block back to the shared free lists (before a thread may be retired). */
  flushCaches(): void {
    this.lock(H_ALLOC_LOCK);
    this.sync();
    this.cache.forEach((c, cls) => {
      while (c.length > 0) this.pushFreeLocked(cls, c.pop()!);
    });
    this.unlock(H_ALLOC_LOCK);
  }

  /** Hands BATCH of the blocks cached for class `cls` back to the allocator, listed in one batch record. */
  private flush(cls: number, c: number[]): void {
    if (!this.lockAlloc(false)) return; // the cache keeps them until the lock comes free
    try {
      this.sync();
      const m = this.i32;
      let r = m[H_BATCH_RECORDS]!;
      if (r !== 0) m[H_BATCH_RECORDS] = m[r >> 2]!;
      else if (m[H_FREE + RECORD_CLASS] !== 0 || this.roomFor(RECORD_CLASS)) r = this.takeLocked(RECORD_CLASS);
      if (r === 0) {
        // No room for a record: one by one, on the class's free list.
        for (let i = 0; i < BATCH; i++) this.pushFreeLocked(cls, c.pop()!);
        return;
      }
      const w = r >> 2;
      m[w + 1] = BATCH;
      for (let i = 0; i < BATCH; i++) m[w + 2 + i] = c.pop()!;
      m[w] = m[H_BATCHES + cls]!;
      m[H_BATCHES + cls] = r;
    } finally {
      this.unlock(H_ALLOC_LOCK);
    }
  }

  /** Caller holds the allocator lock. */
  private grow(needed: number): void {
    const max = this.i32[H_MAX_BYTES]!;
    if (needed > max) throw new HeapExhaustedError(needed - this.i32[H_BUMP]!, max);
    const target = Math.min(max, Math.max(needed, this.bytes * 2));
    const g = this.sab as unknown as { grow(n: number): void };
    if (this.sab.byteLength < target) g.grow(target);
    this.remap();
    // Readers compare this with their views; the allocator unlock publishes it.
    Atomics.store(this.i32, H_BYTES, this.sab.byteLength);
    this.bytes = this.sab.byteLength;
  }

  /** Heap usage figures, for tests and diagnostics. */
  usage(): { bytes: number; bump: number } {
    return { bytes: Atomics.load(this.i32, H_BYTES), bump: Atomics.load(this.i32, H_BUMP) };
  }
}

/** What an allocation throws on a thread with finite `allocPatience` when the allocator lock stays busy. */
export const ALLOC_BUSY = new Error('occam: the allocator lock stayed busy');

/** The size class whose blocks hold `bytes` (block size MIN_BLOCK << class). */
export function sizeClass(bytes: number): number {
  let cls = 0;
  while (MIN_BLOCK << cls < bytes) {
    cls++;
    if (cls >= N_CLASSES) throw new HeapExhaustedError(bytes, MIN_BLOCK << (N_CLASSES - 1));
  }
  return cls;
}
