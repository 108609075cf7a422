/**
 * The value codec's decoder (see codec-format.ts for the layout). Strings are rebuilt
 * exactly, code unit for code unit; objects get their keys as own data properties, so a
 * `__proto__` key never reaches a prototype.
 */
import { Buffer } from 'node:buffer';
import { InvalidArgumentError } from '../errors.js';
import {
  HANDLE_BYTES, HANDLE_WORDS, STEP_PROP, T_ARRAY, T_BYTES, T_FALSE, T_FLOAT64, T_HANDLE, T_HOLE, T_HOLEY, T_INT32,
  T_NULL, T_OBJECT, T_SMALL_INT, T_SPARSE, T_STRING, T_TRUE, T_UNDEFINED, T_V8, type HandleHooks,
} from './codec-format.js';
import { deserializeSlow, setOwn } from './codec-v8.js';

/** Latin1 strings up to this long are built with one String.fromCharCode call; longer natively. */
const SHORT_STRING = 12;

interface NativeStrings {
  latin1Slice(this: Uint8Array, start: number, end: number): string;
  ucs2Slice(this: Uint8Array, start: number, end: number): string;
}
const native = Buffer.prototype as unknown as NativeStrings;

// Decoder state, saved and restored around each call so that a hook may decode too.
let src: Uint8Array = new Uint8Array(0);
let at = 0;
/** Where the bytes being decoded end in `src` (its length, or the end of a range in the heap). */
let end = 0;
let hooksIn: HandleHooks | undefined;
const f64 = new Float64Array(1);
const KEY_CACHE_SIZE = 512;
const keyCache: string[] = new Array<string>(KEY_CACHE_SIZE).fill('\u0000');
const f64Bytes = new Uint8Array(f64.buffer);

/** Decodes bytes made by `encode` (on any thread); handles are rebuilt by `hooks.decodeHandle`. */
export function decode(bytes: Uint8Array, hooks: HandleHooks): unknown {
  const u8 = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return decodeRange(u8, 0, u8.length, hooks);
}

/**
 * Decodes the `length` bytes at `start` in `u8`, made by `encode` (a block in the shared heap:
 * no view of its own to make). Reading past the range is not guarded as it is past the end of
 * an array: the range must hold what `encode` wrote.
 */
export function decodeRange(u8: Uint8Array, start: number, length: number, hooks: HandleHooks): unknown {
  const saved = src;
  const savedAt = at;
  const savedEnd = end;
  const savedHooks = hooksIn;
  src = u8;
  at = start;
  end = start + length;
  hooksIn = hooks;
  try {
    if (length === 0) throw corrupt('it is empty');
    const v = src[at] === T_V8 ? readSlow() : readValue();
    if (at !== end) throw corrupt(`${end - at} bytes are left over`);
    return v;
  } finally {
    src = saved;
    at = savedAt;
    end = savedEnd;
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
  if (n > end - at) throw corrupt('it ends too early');
}

/** Returned by readScalar when the next value is a container (left unread). */
const CONTAINER: unique symbol = Symbol('container');

/** Reads a value that holds no other values; small and not recursive, so loops inline it. */
function readScalar(): unknown {
  const t = src[at];
  if (t === undefined) throw corrupt('it ends too early');
  if (t >= T_SMALL_INT) {
    at++;
    return t - T_SMALL_INT;
  }
  switch (t) {
    case T_STRING:
      at++;
      return readStr();
    case T_INT32: {
      need(5);
      const p = at + 1;
      at += 5;
      return src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24);
    }
    case T_FLOAT64: {
      need(9);
      for (let i = 0; i < 8; i++) f64Bytes[i] = src[at + 1 + i]!;
      at += 9;
      return f64[0];
    }
    case T_TRUE:
      at++;
      return true;
    case T_FALSE:
      at++;
      return false;
    case T_NULL:
      at++;
      return null;
    case T_UNDEFINED:
      at++;
      return undefined;
    default:
      return CONTAINER;
  }
}

function readValue(): unknown {
  const v = readScalar();
  if (v !== CONTAINER) return v;
  const t = src[at++]!;
  switch (t) {
    case T_OBJECT:
      return readObject();
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
    let v = readScalar();
    if (v === CONTAINER) v = readValue();
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
    for (let i = 0; i < len; i++) {
      const v = readScalar();
      a.push(v !== CONTAINER ? v : readValue());
    }
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
  at++; // the T_V8 tag
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
  const v = deserializeSlow(src.subarray(at, end), handles, routes);
  at = end;
  return v;
}
