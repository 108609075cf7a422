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
 * Wire format: a message is one value; a value is a tag byte, then its payload.
 * Integers are little-endian; `var` is an unsigned LEB128 varint; `str` is
 * var(length << 1 | wide), then `length` latin1 bytes (wide = 0) or `length` UTF-16LE
 * code units (wide = 1), so lone surrogates survive.
 *
 *   0x80 | n   the integer n, 0..127             (no payload)
 *   UNDEFINED NULL FALSE TRUE                      (no payload)
 *   INT32      i32                                 other int32s (never -0)
 *   FLOAT64    f64                                 every other number
 *   STRING     str
 *   BYTES      var(n) n bytes                      Uint8Array and Buffer → fresh Uint8Array
 *   HANDLE     HANDLE_WORDS × i32                  hooks.encodeHandle / decodeHandle
 *   OBJECT     var(n) n × (str key, value)         plain object, null prototype included
 *   ARRAY      var(len) len × value extras         array without holes
 *   HOLEY      var(len) len × (value | HOLE) extras
 *   SPARSE     var(len) var(n) n × (var index, value) extras   mostly holes
 *              extras = var(m) m × (str key, value): an array's non-index properties
 *   V8         first byte only: var(n) n × (HANDLE_WORDS × i32, route), then a node:v8
 *              Serializer stream (header included) of the value with each handle
 *              replaced by a placeholder; route = var(steps) steps × (u8 kind, key),
 *              key = str for STEP_PROP, else var (see codec-v8.ts).
 */
import { Buffer } from 'node:buffer';
import { types } from 'node:util';
import { InvalidArgumentError, InvalidHandleError, MessageTooLargeError, NotSendableError } from '../errors.js';
import {
  STEP_PROP, deserializeSlow, describeClass, describeFunction, formatPath, isIndexKey, ownCount,
  serializeSlow, setOwn, slowKind,
} from './codec-v8.js';

export { findUnsendable } from './codec-v8.js';

/** Objects with `[HANDLE_BRAND] === true` are channel handles. */
export const HANDLE_BRAND: unique symbol = Symbol.for('occam.handle');

/** How many int32 words identify a channel handle on the wire. */
export const HANDLE_WORDS = 6;

export interface HandleHooks {
  /** Called for each channel handle met while encoding; returns exactly HANDLE_WORDS int32 words that identify it. */
  encodeHandle(handle: object): ArrayLike<number>;
  /** Rebuilds a handle from its words while decoding (`words` is a fresh array the hook may keep). */
  decodeHandle(words: Int32Array): unknown;
}

/** The largest encoding the scratch buffer will grow to; the channel layer may set a lower limit. */
export const CODEC_MAX_BYTES = 2 ** 30;

// Tags (one place; the layout is in the header comment).
const T_UNDEFINED = 0x00;
const T_NULL = 0x01;
const T_FALSE = 0x02;
const T_TRUE = 0x03;
const T_INT32 = 0x04;
const T_FLOAT64 = 0x05;
const T_STRING = 0x06;
const T_BYTES = 0x07;
const T_HANDLE = 0x08;
const T_OBJECT = 0x09;
const T_ARRAY = 0x0a;
const T_HOLEY = 0x0b;
const T_SPARSE = 0x0c;
const T_HOLE = 0x0d;
const T_V8 = 0x0e;
const T_SMALL_INT = 0x80;

const HANDLE_BYTES = HANDLE_WORDS * 4;
/** Strings at least this long are checked and copied by native code when encoding. */
const NATIVE_STRING = 48;
/** Decoding builds latin1 strings up to this long with one String.fromCharCode call. */
const SHORT_STRING = 12;
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

interface NativeStrings {
  latin1Slice(this: Uint8Array, start: number, end: number): string;
  ucs2Slice(this: Uint8Array, start: number, end: number): string;
}
const native = BUFFER_PROTO as unknown as NativeStrings;

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

/**
 * Encodes `value`; the returned bytes are a view on a reusable scratch buffer, valid until
 * the next encode call on this thread. Throws NotSendableError (with a path like
 * `value.a[3]`) for values that cannot cross.
 */
export function encode(value: unknown, hooks: HandleHooks): Uint8Array {
  if (busy) {
    throw new InvalidArgumentError('a value was sent while another was being encoded (from a getter); send plain data');
  }
  busy = true;
  try {
    pos = 0;
    if (buf.length > RETAIN_BYTES && lastSize < buf.length >>> 3) resize(INITIAL_BYTES);
    depth = 0;
    checkOwn = false;
    for (const _ in PROBE) checkOwn = true;
    try {
      writeValue(value);
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

function grow(need: number): void {
  if (need > CODEC_MAX_BYTES) throw new MessageTooLargeError(need, CODEC_MAX_BYTES);
  let size = buf.length * 2;
  while (size < need) size *= 2;
  resize(Math.min(size, CODEC_MAX_BYTES));
}

function notSendable(what: string): NotSendableError {
  return new NotSendableError(formatPath(depth, segs), what);
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

function writeValue(v: unknown): void {
  switch (typeof v) {
    case 'number':
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
  if (pos + h + 2 * n > buf.length) grow(pos + h + 2 * n);
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
  depth = d + 1;
  let n = 0;
  for (const k in o) {
    if (checkOwn && !hasOwn(o, k)) continue;
    segs[d] = k;
    writeStr(k);
    writeValue(o[k]);
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
  depth = d + 1;
  let holes = 0;
  for (let i = 0; i < len; i++) {
    const v = a[i];
    if (v === undefined && !hasOwn(a, i)) {
      holes++;
      writeTag(T_HOLE);
      continue;
    }
    segs[d] = i;
    writeValue(v);
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
  if (pos + 6 + n > buf.length) grow(pos + 6 + n);
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
  if (pos + n > buf.length) grow(pos + n);
  buf.set(slow.bytes, pos);
  pos += n;
}

// ---- decoder state (saved and restored around each call, so hooks may decode too) ----
let src: Uint8Array = new Uint8Array(0);
let at = 0;
let hooksIn: HandleHooks | undefined;
const f64 = new Float64Array(1);
const KEY_CACHE_SIZE = 512;
const keyCache: string[] = new Array<string>(KEY_CACHE_SIZE).fill('\u0000');
const f64Bytes = new Uint8Array(f64.buffer);

export function decode(bytes: Uint8Array, hooks: HandleHooks): unknown {
  const saved = src;
  const savedAt = at;
  const savedHooks = hooksIn;
  src = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  at = 0;
  hooksIn = hooks;
  try {
    if (src.length === 0) throw corrupt('it is empty');
    const v = src[0] === T_V8 ? readSlow() : readValue();
    if (at !== src.length) throw corrupt(`${src.length - at} bytes are left over`);
    return v;
  } finally {
    src = saved;
    at = savedAt;
    hooksIn = savedHooks;
  }
}

function corrupt(why: string): InvalidArgumentError {
  return new InvalidArgumentError(`cannot decode a message: ${why} (byte ${at}); the bytes were not made by encode()`);
}

function readVarint(): number {
  let b = src[at++]!;
  if (b < 0x80) return b;
  let n = b & 0x7f;
  let scale = 0x80;
  do {
    b = src[at++]!;
    if (b === undefined || scale > 2 ** 28) throw corrupt('a length is malformed');
    n += (b & 0x7f) * scale;
    scale *= 0x80;
  } while (b >= 0x80);
  return n;
}

/** Checks that `n` more bytes are there. */
function need(n: number): void {
  if (n > src.length - at) throw corrupt('it ends too early');
}

function readValue(): unknown {
  const t = src[at++];
  if (t === undefined) throw corrupt('it ends too early');
  if (t >= T_SMALL_INT) return t - T_SMALL_INT;
  switch (t) {
    case T_STRING:
      return readStr();
    case T_OBJECT:
      return readObject();
    case T_INT32: {
      need(4);
      const p = at;
      at += 4;
      return src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24);
    }
    case T_FLOAT64: {
      need(8);
      for (let i = 0; i < 8; i++) f64Bytes[i] = src[at + i]!;
      at += 8;
      return f64[0];
    }
    case T_TRUE:
      return true;
    case T_FALSE:
      return false;
    case T_NULL:
      return null;
    case T_UNDEFINED:
      return undefined;
    case T_ARRAY:
    case T_HOLEY:
      return readArray(t === T_HOLEY);
    case T_SPARSE:
      return readSparse();
    case T_BYTES: {
      const n = readVarint();
      need(n);
      const out = src.slice(at, at + n);
      at += n;
      return out;
    }
    case T_HANDLE:
      return hooksIn!.decodeHandle(readWords());
    default:
      throw corrupt(`tag 0x${t.toString(16)} is unknown here`);
  }
}

function readStr(): string {
  const h = readVarint();
  const n = h >>> 1;
  if (h & 1) {
    need(2 * n);
    const p = at;
    at += 2 * n;
    if (n >= SHORT_STRING) return native.ucs2Slice.call(src, p, p + 2 * n);
    let s = '';
    for (let i = p; i < p + 2 * n; i += 2) s += String.fromCharCode(src[i]! | (src[i + 1]! << 8));
    return s;
  }
  need(n);
  const p = at;
  at += n;
  return latin1(p, n);
}

function latin1(p: number, n: number): string {
  if (n > 2 * SHORT_STRING) return native.latin1Slice.call(src, p, p + n);
  if (n > SHORT_STRING) return latin1(p, SHORT_STRING) + latin1(p + SHORT_STRING, n - SHORT_STRING);
  // One call with n arguments builds the string at once, with no intermediate strings.
  const b = src;
  const c = String.fromCharCode;
  switch (n) {
    case 0: return '';
    case 1: return c(b[p]!);
    case 2: return c(b[p]!, b[p + 1]!);
    case 3: return c(b[p]!, b[p + 1]!, b[p + 2]!);
    case 4: return c(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!);
    case 5: return c(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!);
    case 6: return c(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!);
    case 7: return c(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!);
    case 8: return c(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    default: {
      let s = c(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
      for (let i = p + 8; i < p + n; i++) s += c(b[i]!);
      return s;
    }
  }
}

/**
 * Reads an object key. Keys repeat from message to message, so short latin1 keys are
 * looked up in a small direct-mapped cache: a hit costs no allocation, and the cached
 * string is already internalized by V8 from its earlier use as a key.
 */
function readKey(): string {
  const h = src[at]!;
  if (h >= 0x80 || h & 1) return readStr(); // long or UTF-16: not cached
  const n = h >>> 1;
  const p = at + 1;
  need(n + 1);
  let hash = n;
  for (let i = p; i < p + n; i++) hash = (Math.imul(hash, 31) + src[i]!) | 0;
  const slot = hash & (KEY_CACHE_SIZE - 1);
  const cached = keyCache[slot]!;
  at = p + n;
  if (cached.length === n) {
    let i = 0;
    while (i < n && cached.charCodeAt(i) === src[p + i]) i++;
    if (i === n) return cached;
  }
  const s = latin1(p, n);
  keyCache[slot] = s;
  return s;
}

function readObject(): Record<string, unknown> {
  const n = readVarint();
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = readKey();
    const v = readValue();
    if (k === '__proto__') setOwn(o, k, v);
    else o[k] = v;
  }
  return o;
}

function readArray(holey: boolean): unknown[] {
  const len = readVarint();
  need(len); // every slot takes at least one byte
  let a: unknown[];
  if (holey) {
    a = new Array<unknown>(len);
    for (let i = 0; i < len; i++) {
      if (src[at] === T_HOLE) at++;
      else a[i] = readValue();
    }
  } else {
    a = [];
    for (let i = 0; i < len; i++) a.push(readValue());
  }
  readExtras(a);
  return a;
}

function readSparse(): unknown[] {
  const len = readVarint();
  const n = readVarint();
  need(n);
  if (len > 4294967295) throw corrupt('an array length is too large');
  const a = new Array<unknown>(len);
  for (let j = 0; j < n; j++) {
    const i = readVarint();
    a[i] = readValue();
  }
  readExtras(a);
  return a;
}

function readExtras(a: unknown[]): void {
  const m = readVarint();
  for (let j = 0; j < m; j++) setOwn(a, readKey(), readValue());
}

function readWords(): Int32Array {
  need(HANDLE_BYTES);
  const words = new Int32Array(HANDLE_WORDS);
  for (let j = 0; j < HANDLE_WORDS; j++, at += 4) {
    words[j] = src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24);
  }
  return words;
}

function readSlow(): unknown {
  at = 1;
  const n = readVarint();
  const handles: unknown[] = [];
  const routes: (number | string)[][] = [];
  for (let i = 0; i < n; i++) {
    handles.push(hooksIn!.decodeHandle(readWords()));
    const steps = readVarint();
    const route: (number | string)[] = [];
    for (let j = 0; j < steps; j++) {
      const kind = src[at++]!;
      route.push(kind, kind === STEP_PROP ? readStr() : readVarint());
    }
    routes.push(route);
  }
  const v = deserializeSlow(src.subarray(at), handles, routes);
  at = src.length;
  return v;
}
