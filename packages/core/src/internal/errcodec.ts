/**
 * Errors crossing between processes. `encodeError` turns anything thrown into plain data
 * (objects, arrays, strings) that the value codec sends on its fast path; `decodeError`
 * rebuilds an Error from it on the other side:
 *
 * - occam's own errors (subclasses of OccamError) come back as their own class, chosen by
 *   `code`;
 * - classes passed to `registerError` come back as themselves. Register a class in every
 *   thread that may throw or catch it (module top level is the place): classes are matched
 *   by `name`, which must therefore be unique among registered classes;
 * - built-in errors (Error, TypeError, RangeError, ..., AggregateError) as themselves;
 * - any other error as a RemoteError keeping its name, code and message;
 * - a thrown non-Error value (a string, a plain object) as a RemoteError named
 *   'RemoteError', without code, whose `cause` is the thrown value itself.
 *
 * Every error keeps its message, the remote `stack`, `code`, own enumerable properties
 * (`path`, `value`, `errno`, ...), `cause` (recursively; a cause that is not an Error
 * travels as a value) and an AggregateError's `errors`. A part that cannot be sent (a
 * function in a property, say) is replaced by a short description, so encoding an error
 * never fails.
 *
 * Rebuilding never runs the class's constructor, whose message logic would overwrite
 * fields: the object is made by `Reflect.construct(Error, [], Class)`, a real Error (so
 * util.inspect and structuredClone treat it as one) with the class's prototype, and its
 * fields are then defined as own properties.
 */
import { inspect, types } from 'node:util';
import {
  AbortError, ChannelClosedError, ChannelEmptyError, DeadlockError, EmptySelectError, ChannelFullError, ChannelPoisonedError, HeapExhaustedError,
  InvalidArgumentError, InvalidCapacityError, InvalidHandleError, MessageTooLargeError, NotSendableError, OccamError,
  PeerDiedError, ProcessFailedError, ProcessNotFoundError, RemoteError, SyncOnMainError, TimeoutError,
  TooManyThreadsError, TooManyWaitersError, WrongDirectionError, PoolClosedError, QueueFullError, PoolBrokenError,
  WorkerDiedError, type OccamErrorCode,
} from '../errors.js';
import { findUnsendable } from './codec-v8.js';

type ErrorClass = new (...args: never[]) => Error;

/** occam's error classes by code: a new code fails to compile until it is listed here. */
const OCCAM_CLASSES: Readonly<Record<OccamErrorCode, ErrorClass>> = {
  ERR_CHANNEL_CLOSED: ChannelClosedError,
  ERR_CHANNEL_POISONED: ChannelPoisonedError,
  ERR_CHANNEL_FULL: ChannelFullError,
  ERR_CHANNEL_EMPTY: ChannelEmptyError,
  ERR_TIMEOUT: TimeoutError,
  ERR_ABORTED: AbortError,
  ERR_NOT_SENDABLE: NotSendableError,
  ERR_SYNC_ON_MAIN: SyncOnMainError,
  ERR_WRONG_DIRECTION: WrongDirectionError,
  ERR_INVALID_CAPACITY: InvalidCapacityError,
  ERR_INVALID_HANDLE: InvalidHandleError,
  ERR_MESSAGE_TOO_LARGE: MessageTooLargeError,
  ERR_HEAP_EXHAUSTED: HeapExhaustedError,
  ERR_TOO_MANY_THREADS: TooManyThreadsError,
  ERR_PEER_DIED: PeerDiedError,
  ERR_PROCESS_FAILED: ProcessFailedError,
  ERR_PROCESS_NOT_FOUND: ProcessNotFoundError,
  ERR_INVALID_ARGUMENT: InvalidArgumentError,
  ERR_EMPTY_SELECT: EmptySelectError,
  ERR_TOO_MANY_WAITERS: TooManyWaitersError,
  ERR_DEADLOCK: DeadlockError,
  ERR_POOL_CLOSED: PoolClosedError,
  ERR_QUEUE_FULL: QueueFullError,
  ERR_POOL_BROKEN: PoolBrokenError,
  ERR_WORKER_DIED: WorkerDiedError,
};

const BUILTIN_CLASSES: ReadonlyMap<string, ErrorClass> = new Map(
  [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError].map((c) => [c.name, c]),
);

/** Names a user class may not take: they would shadow occam's or the built-in classes. */
const RESERVED = new Set<string>([
  ...BUILTIN_CLASSES.keys(),
  ...Object.values(OCCAM_CLASSES).map((c) => c.name),
  OccamError.name,
  RemoteError.name,
]);

/** This thread's registered user classes, by name. */
const registry = new Map<string, ErrorClass>();

/** Cause chains longer than this are cut (they are usually cycles through getters). */
const MAX_DEPTH = 32;

/** How an error travels: only plain objects, arrays and strings around user data. */
interface ErrorRep {
  k: 'occam' | 'builtin' | 'other';
  /** The sending side's class name. */
  cls: string;
  name: string;
  message: string;
  stack?: string;
  code?: unknown;
  /** Own enumerable properties. */
  props: Record<string, unknown>;
  cause?: PartRep;
  /** Set when `cause` was assigned (enumerable) rather than passed to the constructor. */
  causeEnumerable?: true;
  errors?: PartRep[];
}
interface ThrownRep {
  k: 'thrown';
  value: unknown;
  text: string;
}
type Rep = ErrorRep | ThrownRep;
/** A cause or an AggregateError member: an error, or any other value. */
type PartRep = { error: Rep } | { value: unknown };

/**
 * Registers a user error class, so that errors of that class thrown in another process
 * come back as that class (register it in both processes; matched by `ctor.name`).
 */
export function registerError(ctor: new (...args: any[]) => Error): void {
  if (typeof ctor !== 'function' || !(ctor.prototype instanceof Error)) {
    throw new InvalidArgumentError('registerError() takes a class that extends Error');
  }
  const name = ctor.name;
  if (name === '' || RESERVED.has(name)) {
    throw new InvalidArgumentError(
      `registerError() needs a class with a name of its own, got ${JSON.stringify(name)}; name the class`,
    );
  }
  const known = registry.get(name);
  // The same class defined twice is the same class: each TypeScript process module is bundled
  // with the files it imports, so two modules sharing an errors file each bring a copy of its
  // classes to a host that runs both. (The copy registered last is the one errors revive as.)
  if (known !== undefined && known !== ctor && String(known) !== String(ctor)) {
    throw new InvalidArgumentError(`two different error classes are named ${name}; rename one before registering it`);
  }
  registry.set(name, ctor);
}

/** Turns anything thrown into a plain value for the codec. Never throws. */
export function encodeError(err: unknown): unknown {
  try {
    return encodeAny(err, 0, new Set());
  } catch {
    return { k: 'thrown', value: undefined, text: 'a value that could not be read' } satisfies ThrownRep;
  }
}

function isError(x: unknown): x is Error {
  return x instanceof Error || types.isNativeError(x);
}

/** Reads a property, treating a throwing getter as absent. */
function read(o: object, key: string): unknown {
  try {
    return (o as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function describe(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : inspect(v, { depth: 1, breakLength: Infinity });
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}

/** `v` if it can be sent, else a description of it. */
function sendable(v: unknown): unknown {
  try {
    if (findUnsendable(v) === undefined) return v;
  } catch {
    // a throwing getter inside: describe it instead
  }
  return `[not sendable: ${describe(v)}]`;
}

/** `open` holds the errors whose causes are being encoded, to cut cycles. */
function encodeAny(x: unknown, depth: number, open: Set<object>): Rep {
  if (!isError(x)) return { k: 'thrown', value: sendable(x), text: describe(x) };
  const ctor = read(Object.getPrototypeOf(x) ?? {}, 'constructor');
  const cls = typeof ctor === 'function' ? ctor.name : '';
  const code = read(x, 'code');
  // A registered class wins over occam's and the built-in ones it may extend.
  const k: ErrorRep['k'] =
    typeof ctor === 'function' && registry.get(cls) === ctor ? 'other'
    : x instanceof OccamError && typeof code === 'string' && Object.hasOwn(OCCAM_CLASSES, code) ? 'occam'
    : BUILTIN_CLASSES.get(cls) === ctor ? 'builtin'
    : 'other';
  const message = read(x, 'message');
  const rep: ErrorRep = {
    k,
    cls,
    name: String(read(x, 'name') ?? 'Error'),
    message: message === undefined ? '' : String(message),
    props: {},
  };
  const stack = read(x, 'stack');
  if (typeof stack === 'string') rep.stack = stack;
  if (code !== undefined) rep.code = sendable(code);
  const errors = x instanceof AggregateError ? read(x, 'errors') : undefined;
  for (const key of Object.keys(x)) {
    // cause and errors travel below, as errors where they are errors.
    if (key === 'cause' || (key === 'errors' && Array.isArray(errors))) continue;
    Object.defineProperty(rep.props, key, { value: sendable(read(x, key)), writable: true, enumerable: true, configurable: true });
  }
  open.add(x);
  if (Object.hasOwn(x, 'cause')) {
    rep.cause = encodePart(read(x, 'cause'), depth, open);
    if (Object.getOwnPropertyDescriptor(x, 'cause')?.enumerable === true) rep.causeEnumerable = true;
  }
  if (Array.isArray(errors)) rep.errors = errors.map((e) => encodePart(e, depth, open));
  open.delete(x);
  return rep;
}

function encodePart(v: unknown, depth: number, open: Set<object>): PartRep {
  if (!isError(v)) return { value: sendable(v) };
  if (open.has(v)) return { value: '[circular: an error inside its own cause]' };
  if (depth >= MAX_DEPTH) return { value: `[cause chain cut after ${MAX_DEPTH} errors]` };
  return { error: encodeAny(v, depth + 1, open) };
}

/**
 * An error that reached this thread outside occam's codec — a worker's crash, as Node passes it
 * on: a plain Error that still has occam's code and class name — rebuilt as that occam class.
 * Anything else is returned as it is.
 */
export function reviveOccamError(err: Error): Error {
  const code = (err as { code?: unknown }).code;
  if (err instanceof OccamError || typeof code !== 'string' || !Object.hasOwn(OCCAM_CLASSES, code)) return err;
  const ctor = OCCAM_CLASSES[code as OccamErrorCode];
  if (err.name !== ctor.name) return err;
  const e = Reflect.construct(Error, [], ctor) as Error;
  define(e, 'message', err.message, false);
  define(e, 'stack', err.stack, false);
  define(e, 'code', code, true);
  return e;
}

/** Rebuilds the error `encodeError` described. Anything unreadable becomes a RemoteError. */
export function decodeError(rep: unknown): Error {
  return decodeAny(rep, 0);
}

function define(o: object, key: string, value: unknown, enumerable: boolean): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable, configurable: true });
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null;
}

function decodeAny(rep: unknown, depth: number): Error {
  if (!isRecord(rep) || depth > MAX_DEPTH + 1) {
    return new RemoteError('RemoteError', 'an error arrived in a form occam cannot read', undefined, { cause: rep });
  }
  if (rep['k'] === 'thrown') {
    const message = `a non-Error value was thrown: ${String(rep['text'])}`;
    const e = new RemoteError('RemoteError', message, undefined, { cause: rep['value'] });
    define(e, 'stack', `RemoteError: ${message}\n    (a thrown non-Error value has no stack)`, false);
    return e;
  }
  const name = String(rep['name']);
  const message = String(rep['message']);
  const code = rep['code'];
  const props = isRecord(rep['props']) ? rep['props'] : {};
  const ctor = classFor(rep);
  let e: Error;
  if (ctor === undefined) {
    const codeText = code === undefined ? undefined : typeof code === 'string' ? code : String(code);
    // A user class that never set `name` still reads "Error": its class name says more.
    const cls = typeof rep['cls'] === 'string' ? rep['cls'] : '';
    e = new RemoteError(name === 'Error' && cls !== '' && !BUILTIN_CLASSES.has(cls) ? cls : name, message, codeText);
  } else {
    e = Reflect.construct(Error, [], ctor) as Error;
    define(e, 'message', message, false);
  }
  const stack = rep['stack'];
  if (typeof stack === 'string') define(e, 'stack', stack, false);
  else delete (e as { stack?: string }).stack;
  for (const key of Object.keys(props)) {
    // RemoteError's own name and code are already set (its code always a string).
    if (ctor === undefined && (key === 'name' || key === 'code')) continue;
    define(e, key, props[key], true);
  }
  // A code the error held but did not enumerate (set with defineProperty): kept, unenumerated.
  if (ctor !== undefined && code !== undefined && !(Object.hasOwn(e, 'code') || (e as { code?: unknown }).code === code)) {
    define(e, 'code', code, false);
  }
  const cause = rep['cause'];
  if (isRecord(cause)) define(e, 'cause', decodePart(cause, depth), rep['causeEnumerable'] === true);
  const errors = rep['errors'];
  if (Array.isArray(errors)) define(e, 'errors', errors.map((p: unknown) => decodePart(p, depth)), false);
  return e;
}

function decodePart(part: unknown, depth: number): unknown {
  if (isRecord(part) && 'error' in part) return decodeAny(part['error'], depth + 1);
  return isRecord(part) ? part['value'] : undefined;
}

function classFor(rep: Record<string, unknown>): ErrorClass | undefined {
  const code = rep['code'];
  const cls = String(rep['cls']);
  if (rep['k'] === 'occam' && typeof code === 'string' && Object.hasOwn(OCCAM_CLASSES, code)) {
    return OCCAM_CLASSES[code as OccamErrorCode];
  }
  if (rep['k'] === 'builtin' && BUILTIN_CLASSES.has(cls)) return BUILTIN_CLASSES.get(cls);
  return registry.get(cls);
}
