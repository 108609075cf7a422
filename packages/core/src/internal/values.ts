/**
 * Values in slots: small scalars inline, everything else encoded (codec.ts) into a heap block that
 * the receiver frees after decoding. Encoding and allocation happen before any channel lock is
 * taken, so a bad value enqueues nothing and running out of heap never strikes inside a critical
 * section.
 *
 * Channel handles inside a value are counted references: encoding one adds a reference owned by
 * the block; decoding adopts it into the new handle; discarding an undelivered block drops it.
 */
import { decode, decodeRange, encode, type HandleHooks } from './codec.js';
import {
  MAX_MESSAGE_BYTES,
  S_LEN,
  S_TAG,
  S_W2,
  S_W3,
  TAG_BLOCK,
  TAG_F64,
  TAG_FALSE,
  TAG_INT,
  TAG_NULL,
  TAG_TRUE,
  TAG_UNDEFINED,
} from './layout.js';
import type { Runtime } from './runtime.js';

const f64 = new Float64Array(1);
const f64Words = new Int32Array(f64.buffer);

/** What the channel module supplies: how handles become words and back, and how refs are kept. */
export interface HandleSupport {
  /** Validates a handle and returns its words (without touching its reference count). */
  words(handle: object): ArrayLike<number>;
  /** Adds one reference to the channel at byte `offset`. */
  retain(offset: number): void;
  /** Drops one reference (freeing the channel at zero). */
  release(offset: number, id: number): void;
  /**
   * Builds a handle that adopts one existing reference; in a worker, listed among the thread's
   * held references (given back should it die) unless `held` is false.
   */
  adopt(words: Int32Array, held: boolean): unknown;
}

let support: HandleSupport | undefined;
/** While set, every handle a decode adopts is listed here (see `decodeSlotAdopting`). */
let adopting: unknown[] | undefined;
/** Channel ids of the handles met by the encode under way (`nPending` of them). */
const pending: number[] = [];
let nPending = 0;

/** Installed once by channel.ts (breaks the import cycle between values and channels). */
export function installHandleSupport(s: HandleSupport): void {
  support = s;
}

const encodeHooks: HandleHooks = {
  encodeHandle(handle) {
    const w = support!.words(handle);
    pending[nPending++] = w[0]!;
    return w;
  },
  decodeHandle(words) {
    // A process's arguments: their references are listed in its record's claim table, not among
    // the thread's held references (see decodeSlotAdopting).
    const h = support!.adopt(words, adopting === undefined);
    adopting?.push(h);
    return h;
  },
};

const discardHooks: HandleHooks = {
  encodeHandle() {
    throw new Error('unreachable');
  },
  decodeHandle(words) {
    support!.release(words[0]!, words[1]!);
    return null;
  },
};

/**
 * Encodes `v` into `slot` (4 words). Throws NotSendableError / MessageTooLargeError /
 * HeapExhaustedError with nothing allocated and no reference taken.
 */
export function encodeSlot(rt: Runtime, v: unknown, slot: Int32Array): void {
  switch (typeof v) {
    case 'number':
      if ((v | 0) === v && (v !== 0 || 1 / v > 0)) {
        slot[S_TAG] = TAG_INT;
        slot[S_W2] = v;
      } else {
        f64[0] = v;
        slot[S_TAG] = TAG_F64;
        slot[S_W2] = f64Words[0]!;
        slot[S_W3] = f64Words[1]!;
      }
      return;
    case 'boolean':
      slot[S_TAG] = v ? TAG_TRUE : TAG_FALSE;
      return;
    case 'undefined':
      slot[S_TAG] = TAG_UNDEFINED;
      return;
    default:
      if (v === null) {
        slot[S_TAG] = TAG_NULL;
        return;
      }
  }
  nPending = 0;
  const bytes = encode(v, encodeHooks, MAX_MESSAGE_BYTES);
  const h = rt.heap;
  const off = h.alloc(bytes.length);
  h.u8.set(bytes, off);
  // Only now, with nothing left to fail, do the block's handles take their references.
  for (let i = 0; i < nPending; i++) support!.retain(pending[i]!);
  slot[S_TAG] = TAG_BLOCK;
  slot[S_LEN] = bytes.length;
  slot[S_W2] = off;
  slot[S_W3] = nPending > 0 ? 1 : 0;
  nPending = 0;
}

/**
 * Decodes a process's arguments (in its worker), listing in `adopted` every handle it made (one
 * per reference it adopted). Their block stays (freed with the record): until the worker has
 * listed the references in the record's claim table (`listArgRefs`), they are the arguments', and
 * a death meanwhile gives them back from there (`releaseArgRefs`). The handles are not listed
 * among the thread's held references, which would give them back a second time.
 */
export function decodeSlotAdopting(rt: Runtime, slot: Int32Array, adopted: unknown[]): unknown {
  adopting = adopted;
  try {
    return decodeSlot(rt, slot, true);
  } finally {
    adopting = undefined;
  }
}

/** Decodes the value in `slot`, freeing its block (unless `keep`). */
export function decodeSlot(rt: Runtime, slot: Int32Array, keep = false): unknown {
  switch (slot[S_TAG]) {
    case TAG_INT:
      return slot[S_W2];
    case TAG_F64:
      f64Words[0] = slot[S_W2]!;
      f64Words[1] = slot[S_W3]!;
      return f64[0];
    case TAG_TRUE:
      return true;
    case TAG_FALSE:
      return false;
    case TAG_NULL:
      return null;
    case TAG_UNDEFINED:
      return undefined;
    case TAG_BLOCK: {
      const h = rt.heap;
      h.sync();
      const off = slot[S_W2]!;
      try {
        return decodeRange(h.u8, off, slot[S_LEN]!, encodeHooks);
      } finally {
        if (!keep) h.free(off);
      }
    }
    default:
      throw new Error(`occam: corrupt value slot (tag ${slot[S_TAG]})`);
  }
}

/** Drops an undelivered value: frees its block and the references its handles held. */
export function discardSlot(rt: Runtime, slot: Int32Array): void {
  if (slot[S_TAG] !== TAG_BLOCK) return;
  const h = rt.heap;
  h.sync();
  const off = slot[S_W2]!;
  if (slot[S_W3] !== 0) decode(h.u8.subarray(off, off + slot[S_LEN]!), discardHooks);
  h.free(off);
  slot[S_TAG] = 0;
}
