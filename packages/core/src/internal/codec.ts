/**
 * The value codec: every message and process argument crosses threads as these bytes.
 *
 * Invariants
 * - decode(encode(x)) deep-equals structuredClone(x) for every sendable x, except that
 *   channel handles come back through the hooks instead of as plain objects, and a byte
 *   array comes back over a buffer of its own (byteOffset 0) rather than over a copy of
 *   the whole buffer it viewed.
 * - encode either returns complete bytes or throws. It calls `encodeHandle` only once
 *   the whole value has been found sendable, and keeps no reference to the value after
 *   it returns or throws.
 * - The bytes encode returns alias this thread's scratch buffer: they stay valid until
 *   the next encode on this thread. Copy them out (into the shared heap) before that.
 *
 * The wire format is in codec-format.ts; the V8 slow path in codec-v8.ts; decoding in
 * codec-decode.ts.
 */
import { Buffer } from 'node:buffer';
import { types } from 'node:util';
import { InvalidArgumentError, InvalidHandleError, MessageTooLargeError, NotSendableError } from '../errors.js';
import {
  CODEC_MAX_BYTES, CODEC_MAX_DEPTH, HANDLE_BRAND, HANDLE_BYTES, HANDLE_WORDS, STEP_PROP, T_ARRAY, T_BYTES, T_FALSE, T_FLOAT64,
  T_HANDLE, T_HOLE, T_HOLEY, T_INT32, T_NULL, T_OBJECT, T_SMALL_INT, T_SPARSE, T_STRING, T_TRUE, T_UNDEFINED, T_V8,
  type HandleHooks,
} from './codec-format.js';
import {
  describeClass, describeFunction, formatPath, isDetached, isIndexKey, ownCount, serializeSlow, slowKind,
} from './codec-v8.js';

export { CODEC_MAX_BYTES, HANDLE_BRAND, HANDLE_WORDS, type HandleHooks } from './codec-format.js';
export { decode, decodeRange } from './codec-decode.js';
export { findUnsendable } from './codec-v8.js';

/** Strings at least this long are checked and copied by native code when encoding. */
const NATIVE_STRING = 48;
/** Scratch buffers above this size are dropped once messages stop needing them. */
const RETAIN_BYTES = 1 << 20;
const INITIAL_BYTES = 1 << 16;
/** Repeated-object detection scans this many objects linearly before switching to a Set. */
const LINEAR_SEEN = 16;

const OBJECT_PROTO = Object.prototype;
const ARRAY_PROTO = Array.prototype;
const BYTES_PROTO = Uint8Array.prototype;
const BUFFER_PROTO = Buffer.prototype;
const getPrototypeOf = Object.getPrototypeOf;
const hasOwn = Object.hasOwn;
const isProxy = types.isProxy;
const NOT_LATIN1 = /[^\u0000-\u00ff]/;

/** Thrown inside the fast path when the value needs V8; never escapes `encode`. */
const FALLBACK: unique symbol = Symbol('occam.codec.fallback');

// ---- encoder state (this thread only; `busy` guards against re-entry from getters) ----
let buf = new Uint8Array(INITIAL_BYTES);
let view = new DataView(buf.buffer);
let bufNode = Buffer.from(buf.buffer);
let pos = 0;
let lastSize = 0;
let lastView = buf.subarray(0, 0);
let busy = false;
/** Path of the part being written: property names and indices, `depth` of them valid. */
const segs: (string | number)[] = [];
let depth = 0;
/** Every object met so far, to find shared references and cycles (which need V8). */
const seenLog: (object | undefined)[] = [];
const seenSet = new Set<object>();
let nSeen = 0;
/** Handles met so far and where their words go; filled in once the whole value is written. */
const pendingHandles: (object | undefined)[] = [];
const pendingAt: number[] = [];
let nPending = 0;
/** Set when Object.prototype has enumerable properties: for-in then needs an own check. */
let checkOwn = false;
const PROBE = {};

/** The most bytes the encode under way may take (see `encode`). */
let maxBytes = CODEC_MAX_BYTES;

/**
 * Encodes `value`; the returned bytes are a view on a reusable scratch buffer, valid until
 * the next encode call on this thread. Throws NotSendableError (with a path like
 * `value.a[3]`) for values that cannot cross, and MessageTooLargeError for an encoding beyond
 * `max` bytes: as soon as a string or byte array is found to take it past, before the scratch
 * buffer grows for it (a value too large costs no copy of it).
 */
export function encode(value: unknown, hooks: HandleHooks, max = CODEC_MAX_BYTES): Uint8Array {
  if (busy) {
    throw new InvalidArgumentError('a value was sent while another was being encoded (from a getter); send plain data');
  }
  busy = true;
  try {
    pos = 0;
    maxBytes = Math.min(max, CODEC_MAX_BYTES);
    if (buf.length > RETAIN_BYTES && lastSize < buf.length >>> 3) resize(INITIAL_BYTES);
    depth = 0;
    checkOwn = false;
    for (const _ in PROBE) checkOwn = true;
    try {
      writeValue(value);
      if (pos > maxBytes) throw new MessageTooLargeError(pos, maxBytes); // (before any hook runs)
      fillHandles(hooks);
    } catch (err) {
      if (err !== FALLBACK) throw err;
      forget();
      writeSlow(value, hooks);
    }
    lastSize = pos;
    // A fresh view costs about as much as encoding a small object: reuse the last one when it fits.
    if (lastView.buffer !== buf.buffer || lastView.length !== pos) lastView = buf.subarray(0, pos);
    return lastView;
  } finally {
    forget();
    busy = false;
  }
}

function forget(): void {
  for (let i = 0; i < nSeen && i < LINEAR_SEEN; i++) seenLog[i] = undefined;
  if (nSeen > LINEAR_SEEN) {
    seenLog.length = LINEAR_SEEN;
    seenSet.clear();
  }
  nSeen = 0;
  for (let i = 0; i < nPending; i++) pendingHandles[i] = undefined;
  nPending = 0;
}

function resize(size: number): void {
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, pos));
  buf = next;
  view = new DataView(next.buffer);
  bufNode = Buffer.from(next.buffer);
}

/** At least `end` bytes will be written (a string's or byte array's own): past `maxBytes`, fail now. */
function checkEnd(end: number): void {
  if (end > maxBytes) throw new MessageTooLargeError(end, maxBytes, true);
}

function grow(need: number): void {
  if (need > CODEC_MAX_BYTES) throw new MessageTooLargeError(need, CODEC_MAX_BYTES, true);
  let size = buf.length * 2;
  while (size < need) size *= 2;
  resize(Math.min(size, CODEC_MAX_BYTES));
}

function notSendable(what: string): NotSendableError {
  return new NotSendableError(formatPath(depth, segs), what);
}

function tooDeep(): NotSendableError {
  return notSendable(`nested more than ${CODEC_MAX_DEPTH} levels deep (the most a thread's stack is sure to decode)`);
}

function writeVarint(n: number): void {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
}

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** Small and not recursive, so that the container loops get it inlined. */
function writeNumber(v: number): void {
  if ((v | 0) === v && (v !== 0 || 1 / v > 0)) {
    if (pos + 5 > buf.length) grow(pos + 5);
    if (v >= 0 && v < 0x80) {
      buf[pos++] = T_SMALL_INT | v;
    } else {
      buf[pos] = T_INT32;
      view.setInt32(pos + 1, v, true);
      pos += 5;
    }
  } else {
    if (pos + 9 > buf.length) grow(pos + 9);
    buf[pos] = T_FLOAT64;
    view.setFloat64(pos + 1, v, true);
    pos += 9;
  }
}

function writeValue(v: unknown): void {
  switch (typeof v) {
    case 'number':
      writeNumber(v);
      return;
    case 'string':
      if (pos + 1 > buf.length) grow(pos + 1);
      buf[pos++] = T_STRING;
      writeStr(v);
      return;
    case 'object':
      if (v !== null) {
        writeObject(v);
        return;
      }
      writeTag(T_NULL);
      return;
    case 'boolean':
      writeTag(v ? T_TRUE : T_FALSE);
      return;
    case 'undefined':
      writeTag(T_UNDEFINED);
      return;
    case 'function':
      throw notSendable(describeFunction(v));
    case 'symbol':
      throw notSendable('a symbol');
    default: // bigint
      throw FALLBACK;
  }
}

function writeTag(t: number): void {
  if (pos + 1 > buf.length) grow(pos + 1);
  buf[pos++] = t;
}

/** Writes `str` (no tag). Short strings are copied by a JS loop, long ones natively. */
function writeStr(s: string): void {
  const n = s.length;
  const h = n < 0x40 ? 1 : varintSize(n * 2 + 1);
  if (pos + h + 2 * n > buf.length) {
    checkEnd(pos + h + n); // (a latin1 string takes n bytes, others 2n)
    grow(pos + h + 2 * n);
  }
  const start = pos + h;
  let wide = false;
  if (n < NATIVE_STRING) {
    let p = start;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) {
        wide = true;
        break;
      }
      buf[p++] = c;
    }
    if (wide) {
      p = start;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        buf[p++] = c;
        buf[p++] = c >>> 8;
      }
    }
  } else if (NOT_LATIN1.test(s)) {
    wide = true;
    bufNode.write(s, start, 'utf16le');
  } else {
    bufNode.write(s, start, 'latin1');
  }
  writeVarint(n * 2 + (wide ? 1 : 0));
  pos = start + (wide ? 2 * n : n);
}

/** Remembers `o`; false when it was met before (a shared reference or a cycle). */
function remember(o: object): boolean {
  if (nSeen < LINEAR_SEEN) {
    for (let i = 0; i < nSeen; i++) if (seenLog[i] === o) return false;
  } else {
    if (nSeen === LINEAR_SEEN) for (let i = 0; i < LINEAR_SEEN; i++) seenSet.add(seenLog[i]!);
    if (seenSet.has(o)) return false;
    seenSet.add(o);
  }
  seenLog[nSeen++] = o;
  return true;
}

/** Forgets the objects remembered after the first `n` (to rewrite a part of the value). */
function forgetSince(n: number): void {
  for (let i = n; i < nSeen; i++) {
    if (nSeen > LINEAR_SEEN) seenSet.delete(seenLog[i]!);
    seenLog[i] = undefined;
  }
  if (n <= LINEAR_SEEN) seenSet.clear();
  nSeen = n;
}

function writeObject(o: object): void {
  if (isProxy(o)) throw notSendable('a Proxy');
  if ((o as Record<symbol, unknown>)[HANDLE_BRAND] === true) {
    if (pos + 1 + HANDLE_BYTES > buf.length) grow(pos + 1 + HANDLE_BYTES);
    buf[pos++] = T_HANDLE;
    pendingHandles[nPending] = o;
    pendingAt[nPending++] = pos;
    pos += HANDLE_BYTES;
    return;
  }
  if (!remember(o)) throw FALLBACK;
  const proto: object | null = getPrototypeOf(o);
  if (proto === OBJECT_PROTO || proto === null) return writePlain(o as Record<string, unknown>);
  if (Array.isArray(o)) {
    if (proto !== ARRAY_PROTO) throw notSendable(describeClass(proto));
    return writeArray(o);
  }
  if (proto === BYTES_PROTO || proto === BUFFER_PROTO) return writeBytes(o as Uint8Array);
  const kind = slowKind(o, proto);
  if (typeof kind === 'string') throw notSendable(kind);
  throw FALLBACK;
}

function writePlain(o: Record<string, unknown>): void {
  if (pos + 2 > buf.length) grow(pos + 2);
  buf[pos++] = T_OBJECT;
  const countAt = pos++;
  const d = depth;
  if (d >= CODEC_MAX_DEPTH) throw tooDeep();
  depth = d + 1;
  let n = 0;
  for (const k in o) {
    if (checkOwn && !hasOwn(o, k)) continue;
    segs[d] = k;
    writeStr(k);
    const v = o[k];
    if (typeof v === 'number') writeNumber(v);
    else writeValue(v);
    n++;
  }
  depth = d;
  if (n < 0x80) buf[countAt] = n;
  else widenCount(countAt, n);
}

/** The count byte reserved at `at` is too small for `n`: shift what follows to make room. */
function widenCount(at: number, n: number): void {
  const extra = varintSize(n) - 1;
  if (pos + extra > buf.length) grow(pos + extra);
  buf.copyWithin(at + 1 + extra, at + 1, pos);
  for (let i = 0; i < nPending; i++) if (pendingAt[i]! > at) pendingAt[i] = pendingAt[i]! + extra;
  const end = pos + extra;
  pos = at;
  writeVarint(n);
  pos = end;
}

function writeArray(a: unknown[]): void {
  const len = a.length;
  const count = ownCount(a);
  if (count < len && len - count > 16 && len > 2 * count) return writeSparse(a, len);
  const start = pos;
  const seenBefore = nSeen;
  const pendingBefore = nPending;
  if (pos + 6 > buf.length) grow(pos + 6);
  buf[pos++] = T_ARRAY;
  writeVarint(len);
  const d = depth;
  if (d >= CODEC_MAX_DEPTH) throw tooDeep();
  depth = d + 1;
  let holes = 0;
  for (let i = 0; i < len; i++) {
    const v = a[i];
    if (typeof v === 'number') {
      writeNumber(v);
    } else if (v === undefined && !hasOwn(a, i)) {
      holes++;
      writeTag(T_HOLE);
    } else {
      segs[d] = i;
      writeValue(v);
    }
  }
  depth = d;
  if (holes > 0) {
    if (count === len) {
      // Holes balanced by extra properties: rewrite from the keys.
      pos = start;
      forgetSince(seenBefore);
      for (let i = pendingBefore; i < nPending; i++) pendingHandles[i] = undefined;
      nPending = pendingBefore;
      return writeSparse(a, len);
    }
    buf[start] = T_HOLEY;
  }
  writeExtras(a, count > len - holes ? Object.keys(a) : undefined, 0);
}

/** Writes an array from its keys: indices with values, then the extras. */
function writeSparse(a: unknown[], len: number): void {
  const keys = Object.keys(a);
  let n = 0;
  while (n < keys.length && isIndexKey(keys[n]!)) n++;
  if (pos + 11 > buf.length) grow(pos + 11);
  buf[pos++] = T_SPARSE;
  writeVarint(len);
  writeVarint(n);
  const d = depth;
  if (d >= CODEC_MAX_DEPTH) throw tooDeep();
  depth = d + 1;
  for (let j = 0; j < n; j++) {
    const i = +keys[j]!;
    if (pos + 5 > buf.length) grow(pos + 5);
    writeVarint(i);
    segs[d] = i;
    writeValue(a[i]);
  }
  depth = d;
  writeExtras(a, keys, n);
}

/** Writes the non-index keys among `keys` (from `from` on) with their values. */
function writeExtras(a: unknown[], keys: readonly string[] | undefined, from: number): void {
  let m = 0;
  if (keys !== undefined) for (let j = from; j < keys.length; j++) if (!isIndexKey(keys[j]!)) m++;
  if (pos + 5 > buf.length) grow(pos + 5);
  writeVarint(m);
  if (m === 0 || keys === undefined) return;
  const d = depth;
  if (d >= CODEC_MAX_DEPTH) throw tooDeep();
  depth = d + 1;
  for (let j = from; j < keys.length; j++) {
    const k = keys[j]!;
    if (isIndexKey(k)) continue;
    segs[d] = k;
    writeStr(k);
    writeValue((a as unknown as Record<string, unknown>)[k]);
  }
  depth = d;
}

function writeBytes(u: Uint8Array): void {
  if (types.isSharedArrayBuffer(u.buffer)) throw notSendable('a view on a SharedArrayBuffer');
  const n = u.length;
  if (n === 0 && isDetached(u.buffer as ArrayBuffer)) throw notSendable('a view on a detached ArrayBuffer');
  if (pos + 6 + n > buf.length) {
    checkEnd(pos + 1 + varintSize(n) + n);
    grow(pos + 6 + n);
  }
  buf[pos++] = T_BYTES;
  writeVarint(n);
  buf.set(u, pos);
  pos += n;
}

function writeWords(at: number, words: ArrayLike<number>): void {
  if (words.length !== HANDLE_WORDS) {
    throw new InvalidHandleError(`encodeHandle returned ${words.length} words, expected ${HANDLE_WORDS}`);
  }
  for (let j = 0; j < HANDLE_WORDS; j++) view.setInt32(at + 4 * j, words[j]!, true);
}

function fillHandles(hooks: HandleHooks): void {
  for (let i = 0; i < nPending; i++) writeWords(pendingAt[i]!, hooks.encodeHandle(pendingHandles[i]!));
}

function writeSlow(value: unknown, hooks: HandleHooks): void {
  const slow = serializeSlow(value); // throws NotSendableError before any hook runs
  // (Its handles take HANDLE_BYTES and a route each besides: the final check below sees those.)
  checkEnd(1 + slow.bytes.length);
  pos = 0;
  writeTag(T_V8);
  if (pos + 5 > buf.length) grow(pos + 5);
  writeVarint(slow.handles.length);
  for (let i = 0; i < slow.handles.length; i++) {
    if (pos + HANDLE_BYTES + 5 > buf.length) grow(pos + HANDLE_BYTES + 5);
    writeWords(pos, hooks.encodeHandle(slow.handles[i]!));
    pos += HANDLE_BYTES;
    const route = slow.routes[i]!;
    writeVarint(route.length / 2);
    for (let j = 0; j < route.length; j += 2) {
      const kind = route[j] as number;
      writeTag(kind);
      if (kind === STEP_PROP) {
        writeStr(String(route[j + 1]));
      } else {
        if (pos + 5 > buf.length) grow(pos + 5);
        writeVarint(route[j + 1] as number);
      }
    }
  }
  const n = slow.bytes.length;
  if (pos + n > buf.length) {
    checkEnd(pos + n);
    grow(pos + n);
  }
  buf.set(slow.bytes, pos);
  pos += n;
  if (pos > maxBytes) throw new MessageTooLargeError(pos, maxBytes);
}
