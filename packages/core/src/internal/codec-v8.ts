/**
 * The codec's slow path and its sendability rules. Values the binary fast path in
 * codec.ts does not cover (Date, Map, Set, RegExp, BigInt, boxed primitives, other typed
 * arrays, errors, shared references and cycles) travel through V8's own serializer, the
 * one structuredClone uses, so they come back exactly as structuredClone would give them.
 *
 * We use the base `v8.Serializer`, not `v8.serialize`: Node's DefaultSerializer writes
 * typed arrays as host objects, which come back as Buffers or as views *into the input
 * bytes* (here: the shared heap). The base class lets V8 copy them as structuredClone does.
 *
 * Channel handles may sit anywhere inside such a value. V8 would clone a handle into a
 * plain object, so a copy of the value is serialized instead, with every handle replaced
 * by an empty placeholder object, and each handle's route (the steps from the root to it)
 * is sent alongside; the decoder walks each route and puts the rebuilt handle back. The
 * caller's value is never mutated.
 */
import { Buffer } from 'node:buffer';
import { types } from 'node:util';
import { createRequire } from 'node:module';
import { NotSendableError } from '../errors.js';
import { CODEC_MAX_DEPTH, HANDLE_BRAND, STEP_INDEX, STEP_MAP_KEY, STEP_MAP_VALUE, STEP_PROP, STEP_SET } from './codec-format.js';

/**
 * node:v8, loaded on the first value that needs it: most programs send only what the fast path
 * encodes, and loading it costs every thread ~2.5 ms of its start (a pool's workers, on 2 cores).
 */
let v8Module: typeof import('node:v8') | undefined;
const v8 = (): typeof import('node:v8') => (v8Module ??= createRequire(import.meta.url)('node:v8') as typeof import('node:v8'));

const OBJECT_PROTO = Object.prototype;
const ARRAY_PROTO = Array.prototype;
const hasOwn = Object.hasOwn;

/** Prototypes of the built-in kinds V8 clones; instances of subclasses are refused. */
const V8_PROTOS: ReadonlySet<object> = new Set<object>([
  Map.prototype, Set.prototype, Date.prototype, RegExp.prototype,
  Number.prototype, String.prototype, Boolean.prototype, BigInt.prototype,
  ArrayBuffer.prototype, DataView.prototype, Buffer.prototype,
  Int8Array.prototype, Uint8Array.prototype, Uint8ClampedArray.prototype,
  Int16Array.prototype, Uint16Array.prototype, Int32Array.prototype, Uint32Array.prototype,
  Float32Array.prototype, Float64Array.prototype, BigInt64Array.prototype, BigUint64Array.prototype,
]);

/** What `slowKind` found. */
export const K_MAP = 1;
export const K_SET = 2;
export const K_ERROR = 3;
export const K_LEAF = 4; // cloned by V8 with nothing inside that could hold a handle
export const K_PLAIN = 5; // built-in prototype but not the real thing: V8 copies own props

/**
 * Classifies an object that is not a plain object, array, byte array or handle.
 * Returns a K_ constant when V8 can clone it, else what it is, for NotSendableError.
 */
export function slowKind(o: object, proto: object | null): number | string {
  if (types.isPromise(o)) return 'a Promise';
  if (types.isWeakMap(o)) return 'a WeakMap';
  if (types.isWeakSet(o)) return 'a WeakSet';
  if (o instanceof WeakRef) return 'a WeakRef';
  if (o instanceof FinalizationRegistry) return 'a FinalizationRegistry';
  if (types.isSharedArrayBuffer(o)) return 'a SharedArrayBuffer';
  if (types.isArrayBufferView(o) && types.isSharedArrayBuffer(o.buffer)) return 'a view on a SharedArrayBuffer';
  if (types.isNativeError(o)) return K_ERROR;
  if (proto === null || !V8_PROTOS.has(proto)) return describeClass(proto);
  if (types.isMap(o)) return K_MAP;
  if (types.isSet(o)) return K_SET;
  if (types.isDate(o) || types.isRegExp(o) || types.isBoxedPrimitive(o)) return K_LEAF;
  if (types.isAnyArrayBuffer(o)) return isDetached(o as ArrayBuffer) ? 'a detached ArrayBuffer' : K_LEAF;
  if (types.isArrayBufferView(o)) return isDetached(o.buffer as ArrayBuffer) ? 'a view on a detached ArrayBuffer' : K_LEAF;
  return K_PLAIN;
}

/** Whether `b` was transferred away (Node 20 has no `detached`: only an empty buffer can be, and one that is cannot be viewed). */
export function isDetached(b: ArrayBuffer): boolean {
  if (b.byteLength !== 0) return false;
  try {
    new Uint8Array(b);
    return false;
  } catch {
    return true;
  }
}

export function describeClass(proto: object | null): string {
  let ctor: unknown;
  try {
    ctor = proto === null ? undefined : (proto as { constructor?: unknown }).constructor;
  } catch {
    // a throwing getter: fall through to the generic description
  }
  if (typeof ctor === 'function' && ctor.name !== '' && ctor.name !== 'Object') {
    return `an instance of class ${ctor.name}`;
  }
  return 'an object with a custom prototype';
}

export function describeFunction(f: unknown): string {
  const name = typeof f === 'function' ? f.name : '';
  return name === '' ? 'a function' : `a function (${name})`;
}

const IDENT = /^[A-Za-z_$][\w$]*$/;
/** Steps kept at each end of a long path. */
const PATH_ENDS = 8;

/**
 * Formats a path such as `value.a[3]` from `n` segments. A segment without a kind (or
 * kind STEP_PROP/STEP_INDEX) is a property name (string) or an index (number).
 */
export function formatPath(
  n: number,
  keys: readonly (string | number)[],
  kinds?: readonly number[],
  mapKeys?: readonly unknown[],
): string {
  let s = 'value';
  for (let i = 0; i < n; i++) {
    // A deep path keeps its first and last steps (a value too deep to send has a thousand).
    if (n > 2 * PATH_ENDS && i === PATH_ENDS) {
      s += `…(${n - 2 * PATH_ENDS} more)…`;
      i = n - PATH_ENDS;
    }
    const k = keys[i]!;
    switch (kinds?.[i]) {
      case STEP_MAP_KEY:
        s += `.keys()[${k}]`;
        break;
      case STEP_MAP_VALUE:
        s += `.get(${describeMapKey(mapKeys?.[i], k)})`;
        break;
      case STEP_SET:
        s += `.values()[${k}]`;
        break;
      default:
        s += typeof k === 'number' ? `[${k}]` : IDENT.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
    }
  }
  return s;
}

function describeMapKey(key: unknown, entry: string | number): string {
  if (typeof key === 'string') return JSON.stringify(key);
  if (typeof key === 'number' || typeof key === 'boolean' || key == null) return String(key);
  return `<key of entry ${entry}>`;
}

/** True when `k` is a canonical array index ("0" .. "4294967294"). */
export function isIndexKey(k: string): boolean {
  const n = +k;
  return n >>> 0 === n && n !== 4294967295 && String(n) === k;
}

/**
 * How many own enumerable string-keyed properties `a` has (indices and names). Object.keys
 * runs no accessor (Object.values would run an indexed getter once more than structuredClone
 * does) and is the cheaper for the small arrays most messages hold (2 elements: ~45 ns against
 * ~54 ns here), though it builds a string per index (1,000 elements: ~6 µs against ~1.4 µs).
 */
export function ownCount(a: unknown[]): number {
  return Object.keys(a).length;
}

/** Calls `f` for each own enumerable string-keyed property of an array, in V8's order. */
function forEachArrayEntry(a: unknown[], f: (key: string | number) => void): void {
  const len = a.length;
  if (ownCount(a) === len) {
    let dense = true;
    for (let i = 0; i < len && dense; i++) dense = a[i] !== undefined || hasOwn(a, i);
    if (dense) {
      for (let i = 0; i < len; i++) f(i);
      return;
    }
  }
  for (const k of Object.keys(a)) f(isIndexKey(k) ? +k : k);
}

/** Defines an own, enumerable data property: never runs a `__proto__` setter. */
export function setOwn(o: object, key: string | number, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    (o as Record<string | number, unknown>)[key] = value;
  }
}

/**
 * Walks a value the way V8 will serialize it. Throws NotSendableError at the first part
 * that cannot cross. In copy mode it returns a copy of the containers with each handle
 * replaced by a fresh placeholder, and records each handle with its route.
 */
class Walk {
  private readonly kinds: number[] = [];
  private readonly keys: (string | number)[] = [];
  private readonly mapKeys: unknown[] = [];
  private depth = 0;
  /** original → its copy (copy mode) or itself: cycles and shared parts are walked once. */
  private readonly memo = new Map<object, unknown>();
  /** Errors whose cause is being walked. */
  private readonly openErrors = new Set<object>();
  readonly handles: object[] = [];
  /** Per handle: step kind, key, step kind, key, ... from the root. */
  readonly routes: (number | string)[][] = [];

  constructor(private readonly copy: boolean) {}

  /** Visits `v` as the child reached by one more step. */
  private step(kind: number, key: string | number, v: unknown, mapKey?: unknown): unknown {
    const d = this.depth;
    if (d >= CODEC_MAX_DEPTH) throw this.fail(`nested more than ${CODEC_MAX_DEPTH} levels deep (the most a thread's stack is sure to decode)`);
    this.kinds[d] = kind;
    this.keys[d] = key;
    this.mapKeys[d] = mapKey;
    this.depth = d + 1;
    const out = this.visit(v);
    this.depth = d;
    return out;
  }

  private fail(what: string): NotSendableError {
    return new NotSendableError(formatPath(this.depth, this.keys, this.kinds, this.mapKeys), what);
  }

  visit(v: unknown): unknown {
    if (typeof v === 'function') throw this.fail(describeFunction(v));
    if (typeof v === 'symbol') throw this.fail('a symbol');
    if (typeof v !== 'object' || v === null) return v;
    if (types.isProxy(v)) throw this.fail('a Proxy');
    if ((v as Record<symbol, unknown>)[HANDLE_BRAND] === true) {
      // Every occurrence gets its own placeholder and route, as in the fast path.
      this.handles.push(v);
      const route: (number | string)[] = [];
      for (let i = 0; i < this.depth; i++) route.push(this.kinds[i]!, this.keys[i]!);
      this.routes.push(route);
      return this.copy ? {} : v;
    }
    const seen = this.memo.get(v);
    if (seen !== undefined) {
      // V8 creates an error only after reading its cause, so it cannot rebuild this.
      if (this.openErrors.has(v)) throw this.fail('an Error inside its own cause, which V8 cannot clone');
      return seen;
    }
    const proto: object | null = Object.getPrototypeOf(v);
    if (Array.isArray(v)) {
      if (proto !== ARRAY_PROTO) throw this.fail(describeClass(proto));
      return this.visitArray(v);
    }
    if (proto === OBJECT_PROTO || proto === null) return this.visitPlain(v);
    const kind = slowKind(v, proto);
    switch (kind) {
      case K_MAP:
        return this.visitMap(v as Map<unknown, unknown>);
      case K_SET:
        return this.visitSet(v as Set<unknown>);
      case K_ERROR:
        return this.visitError(v as Error, proto);
      case K_LEAF:
        this.memo.set(v, v);
        return v;
      case K_PLAIN:
        return this.visitPlain(v);
      default:
        throw this.fail(kind as string);
    }
  }

  private visitArray(a: unknown[]): unknown {
    const out = this.copy ? new Array<unknown>(a.length) : undefined;
    this.memo.set(a, out ?? a);
    forEachArrayEntry(a, (k) => {
      const c = this.step(typeof k === 'number' ? STEP_INDEX : STEP_PROP, k, a[k as number]);
      if (out !== undefined) setOwn(out, k, c);
    });
    return out ?? a;
  }

  private visitPlain(o: object): unknown {
    const out = this.copy ? {} : undefined;
    this.memo.set(o, out ?? o);
    for (const k of Object.keys(o)) {
      const c = this.step(STEP_PROP, k, (o as Record<string, unknown>)[k]);
      if (out !== undefined) setOwn(out, k, c);
    }
    return out ?? o;
  }

  private visitMap(m: Map<unknown, unknown>): unknown {
    const out = this.copy ? new Map<unknown, unknown>() : undefined;
    this.memo.set(m, out ?? m);
    let i = 0;
    for (const [k, val] of m) {
      const ck = this.step(STEP_MAP_KEY, i, k);
      const cv = this.step(STEP_MAP_VALUE, i, val, k);
      out?.set(ck, cv);
      i++;
    }
    return out ?? m;
  }

  private visitSet(s: Set<unknown>): unknown {
    const out = this.copy ? new Set<unknown>() : undefined;
    this.memo.set(s, out ?? s);
    let i = 0;
    for (const el of s) {
      const c = this.step(STEP_SET, i++, el);
      out?.add(c);
    }
    return out ?? s;
  }

  /** V8 clones an error's name, message, stack and cause; only the cause can hold more. */
  private visitError(e: Error, proto: object | null): unknown {
    if (!hasOwn(e, 'cause')) {
      this.memo.set(e, e);
      return e;
    }
    let out: Error | undefined;
    if (this.copy) {
      out = new Error();
      delete (out as { stack?: string }).stack;
      Object.setPrototypeOf(out, proto);
      for (const k of ['name', 'message', 'stack']) {
        const d = Object.getOwnPropertyDescriptor(e, k);
        if (d !== undefined) Object.defineProperty(out, k, d);
      }
    }
    this.memo.set(e, out ?? e);
    this.openErrors.add(e);
    const c = this.step(STEP_PROP, 'cause', e.cause);
    this.openErrors.delete(e);
    if (out !== undefined) {
      const d = Object.getOwnPropertyDescriptor(e, 'cause')!;
      Object.defineProperty(out, 'cause', { ...d, value: c });
    }
    return out ?? e;
  }
}

/** The slow-path payload: V8's bytes plus the handles pulled out of the value. */
export interface SlowValue {
  readonly bytes: Uint8Array;
  readonly handles: readonly object[];
  readonly routes: readonly (readonly (number | string)[])[];
}

/** Serializes `value` with V8. Throws NotSendableError before anything is written. */
export function serializeSlow(value: unknown): SlowValue {
  const check = new Walk(false);
  check.visit(value);
  let target = value;
  let handles: readonly object[] = [];
  let routes: readonly (readonly (number | string)[])[] = [];
  if (check.handles.length > 0) {
    const w = new Walk(true);
    target = w.visit(value);
    handles = w.handles;
    routes = w.routes;
  }
  const ser = new (v8().Serializer)();
  ser.writeHeader();
  try {
    ser.writeValue(target);
  } catch (err) {
    // The walk refuses what we know V8 refuses; this catches the rest (host objects).
    if (err instanceof Error && err.name === 'DataCloneError') {
      throw new NotSendableError('value', `something V8 cannot clone (${err.message})`);
    }
    throw err;
  }
  return { bytes: ser.releaseBuffer(), handles, routes };
}

/** Returns the NotSendableError that sending `value` would raise, or undefined. */
export function findUnsendable(value: unknown): NotSendableError | undefined {
  try {
    new Walk(false).visit(value);
    return undefined;
  } catch (err) {
    if (err instanceof NotSendableError) return err;
    throw err;
  }
}

/** Reads a V8 payload and puts each rebuilt handle back at its route. */
export function deserializeSlow(
  bytes: Uint8Array,
  handles: readonly unknown[],
  routes: readonly (readonly (number | string)[])[],
): unknown {
  const des = new (v8().Deserializer)(bytes);
  des.readHeader();
  let root: unknown = des.readValue();
  for (let i = 0; i < handles.length; i++) root = place(root, routes[i]!, handles[i]);
  return root;
}

function nth<T>(it: Iterable<T>, n: number): T {
  let i = 0;
  for (const x of it) if (i++ === n) return x;
  throw new RangeError(`route step ${n} is out of range`);
}

/** Replaces the placeholder at the end of `route` by `h`; returns the (possibly new) root. */
function place(root: unknown, route: readonly (number | string)[], h: unknown): unknown {
  if (route.length === 0) return h;
  let parent = root as object;
  const last = route.length - 2;
  for (let i = 0; i < last; i += 2) parent = follow(parent, route[i] as number, route[i + 1]!) as object;
  const kind = route[last] as number;
  const key = route[last + 1]!;
  if (kind === STEP_PROP || kind === STEP_INDEX) {
    const d = Object.getOwnPropertyDescriptor(parent, key);
    Object.defineProperty(parent, key, {
      value: h,
      writable: true,
      enumerable: d?.enumerable ?? true,
      configurable: true,
    });
  } else if (kind === STEP_MAP_VALUE) {
    const m = parent as Map<unknown, unknown>;
    m.set(nth(m.keys(), key as number), h);
  } else if (kind === STEP_MAP_KEY) {
    // Rebuild so that the entry keeps its place in iteration order.
    const m = parent as Map<unknown, unknown>;
    const entries = [...m];
    entries[key as number]![0] = h;
    m.clear();
    for (const [k, v] of entries) m.set(k, v);
  } else {
    const s = parent as Set<unknown>;
    const els = [...s];
    els[key as number] = h;
    s.clear();
    for (const el of els) s.add(el);
  }
  return root;
}

function follow(parent: object, kind: number, key: number | string): unknown {
  switch (kind) {
    case STEP_MAP_KEY:
      return nth((parent as Map<unknown, unknown>).keys(), key as number);
    case STEP_MAP_VALUE:
      return nth((parent as Map<unknown, unknown>).values(), key as number);
    case STEP_SET:
      return nth((parent as Set<unknown>).values(), key as number);
    default:
      return (parent as Record<string | number, unknown>)[key];
  }
}
