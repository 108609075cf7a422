/**
 * The error codec: errors cross through encodeError → codec → decodeError and come back as
 * their own class (occam's by code, registered user classes, built-ins) or as RemoteError,
 * keeping message, remote stack, code, own properties and cause.
 */
import { types } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  AbortError, ChannelClosedError, ChannelEmptyError, ChannelFullError, ChannelPoisonedError, HeapExhaustedError,
  InvalidArgumentError, InvalidCapacityError, InvalidHandleError, MessageTooLargeError, NotSendableError, OccamError,
  type OccamErrorCode, PeerDiedError, ProcessFailedError, ProcessNotFoundError, RemoteError, SyncOnMainError,
  TimeoutError, TooManyThreadsError, WrongDirectionError,
} from '../src/errors.js';
import { decode, encode, HANDLE_BRAND, type HandleHooks } from '../src/internal/codec.js';
import { decodeError, encodeError, registerError } from '../src/internal/errcodec.js';

class FakeHandle {
  constructor(readonly id: number) {}
  get [HANDLE_BRAND](): true {
    return true;
  }
}
const hooks: HandleHooks = {
  encodeHandle: (h) => [(h as FakeHandle).id, 0, 0, 0, 0, 0],
  decodeHandle: (w) => new FakeHandle(w[0]!),
};

/** What another process would see: the error encoded, sent as bytes, decoded. */
function cross(err: unknown): Error {
  const bytes = encode(encodeError(err), hooks).slice();
  return decodeError(decode(bytes, hooks));
}

/** True when `x` holds only plain objects, arrays, handles and primitives (what the codec fast-paths). */
function isPlainData(x: unknown): boolean {
  if (typeof x !== 'object' || x === null) return typeof x !== 'function' && typeof x !== 'symbol';
  if (x instanceof FakeHandle) return true;
  const proto: unknown = Object.getPrototypeOf(x);
  if (proto !== Object.prototype && proto !== Array.prototype) return false;
  return Object.values(x).every(isPlainData);
}

/** The checks every crossing must pass: class, message, stack, code, own props, real Error. */
function expectSame(back: Error, err: Error): void {
  expect(back.constructor).toBe(err.constructor);
  expect(back).toBeInstanceOf(err.constructor);
  expect(back.name).toBe(err.name);
  expect(back.message).toBe(err.message);
  expect(back.stack).toBe(err.stack);
  expect((back as { code?: unknown }).code).toStrictEqual((err as { code?: unknown }).code);
  expect(Object.keys(back)).toEqual(Object.keys(err));
  for (const k of Object.keys(err)) expect((back as never)[k]).toStrictEqual((err as never)[k]);
  expect(types.isNativeError(back)).toBe(true);
}

describe("occam's own errors", () => {
  const samples: OccamError[] = [
    new ChannelClosedError(),
    new ChannelPoisonedError('poisoned by the source', { cause: new TypeError('root') }),
    new ChannelFullError({ item: [1, 2], h: new FakeHandle(9) }),
    new ChannelEmptyError(),
    new TimeoutError(250),
    new AbortError('user pressed stop'),
    new NotSendableError('value.a[3]', 'a function'),
    new SyncOnMainError('recv'),
    new WrongDirectionError('send', 'receive-only'),
    new InvalidCapacityError(-1, 1024),
    new InvalidHandleError('stale generation'),
    new MessageTooLargeError(10, 5),
    new HeapExhaustedError(100, 50),
    new TooManyThreadsError(64),
    new PeerDiedError('peer #3 died'),
    new ProcessFailedError('exit code 1'),
    new ProcessNotFoundError('no export named main'),
    new InvalidArgumentError('bad'),
  ];

  it('covers every code', () => {
    const codes = new Set(samples.map((e) => e.code));
    const all: OccamErrorCode[] = [
      'ERR_CHANNEL_CLOSED', 'ERR_CHANNEL_POISONED', 'ERR_CHANNEL_FULL', 'ERR_CHANNEL_EMPTY', 'ERR_TIMEOUT', 'ERR_ABORTED',
      'ERR_NOT_SENDABLE', 'ERR_SYNC_ON_MAIN', 'ERR_WRONG_DIRECTION', 'ERR_INVALID_CAPACITY', 'ERR_INVALID_HANDLE',
      'ERR_MESSAGE_TOO_LARGE', 'ERR_HEAP_EXHAUSTED', 'ERR_TOO_MANY_THREADS', 'ERR_PEER_DIED', 'ERR_PROCESS_FAILED',
      'ERR_PROCESS_NOT_FOUND', 'ERR_INVALID_ARGUMENT',
    ];
    expect([...codes].sort()).toEqual([...all].sort());
  });

  for (const err of samples) {
    it(`${err.constructor.name} comes back as itself with its fields`, () => {
      expectSame(cross(err), err);
    });
  }

  it('keeps fields the constructor would have rebuilt differently', () => {
    const back = cross(new NotSendableError('value.x.y', 'a symbol')) as NotSendableError;
    expect(back.path).toBe('value.x.y');
    const full = cross(new ChannelFullError({ item: [1, 2], h: new FakeHandle(9) })) as ChannelFullError;
    expect(full.value).toStrictEqual({ item: [1, 2], h: new FakeHandle(9) });
  });

  it('keeps causes, recursively, Error or not', () => {
    const err = new ChannelPoisonedError('poisoned', { cause: new TypeError('inner', { cause: 'root reason' }) });
    const back = cross(err);
    expect(back).toBeInstanceOf(ChannelPoisonedError);
    const inner = back.cause as TypeError;
    expect(inner).toBeInstanceOf(TypeError);
    expectSame(inner, err.cause as TypeError);
    expect(inner.cause).toBe('root reason');
    const abort = cross(new AbortError({ reason: 'stop', at: 3 }));
    expect(abort.cause).toStrictEqual({ reason: 'stop', at: 3 });
    expect(Object.hasOwn(cross(new ChannelClosedError()), 'cause')).toBe(false);
    expect(Object.hasOwn(cross(new Error('x', { cause: undefined })), 'cause')).toBe(true);
  });

  it('travels as plain data', () => {
    for (const err of samples) expect(isPlainData(encodeError(err)), err.constructor.name).toBe(true);
  });
});

describe('user classes', () => {
  let constructed = 0;
  class QuotaError extends Error {
    readonly limit: number;
    constructor(limit: number) {
      super(`over the quota of ${limit}`);
      constructed++;
      this.name = 'QuotaError';
      this.limit = limit;
    }
    describe(): string {
      return `${this.name}/${this.limit}`;
    }
  }
  class NotRegistered extends RangeError {
    readonly code = 'E_NOPE';
    detail = { why: 'because' };
  }
  registerError(QuotaError);

  it('a registered class comes back as itself, without running its constructor', () => {
    const err = new QuotaError(42);
    const before = constructed;
    const back = cross(err) as QuotaError;
    expect(constructed).toBe(before);
    expectSame(back, err);
    expect(back.describe()).toBe('QuotaError/42');
  });

  it('an unregistered class comes back as RemoteError with name, code, message, stack and props', () => {
    const err = new NotRegistered('out of range', { cause: new QuotaError(1) });
    const back = cross(err) as RemoteError;
    expect(back).toBeInstanceOf(RemoteError);
    expect(back.name).toBe('RangeError'); // inherited from RangeError.prototype, as on the original
    expect(back.code).toBe('E_NOPE');
    expect(back.message).toBe('out of range');
    expect(back.stack).toBe(err.stack);
    expect((back as unknown as NotRegistered).detail).toStrictEqual({ why: 'because' });
    expect(back.cause).toBeInstanceOf(QuotaError);
  });

  it('registerError refuses what it cannot match', () => {
    const code = (f: () => void): unknown => {
      try {
        f();
      } catch (e) {
        return (e as InvalidArgumentError).code;
      }
      return 'no error';
    };
    expect(code(() => registerError(class NotAnError {} as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => registerError(class TypeError extends Error {}))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => registerError(class extends Error {}))).toBe('ERR_INVALID_ARGUMENT');
    const Twin = class QuotaError extends Error {};
    expect(code(() => registerError(Twin))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => registerError(QuotaError))).toBe('no error'); // again: harmless
  });

  it('registerError takes the same class defined twice (two bundles sharing an errors file)', () => {
    const define = () =>
      class LedgerError extends Error {
        readonly code = 'E_LEDGER';
      };
    const first = define();
    const second = define(); // the same source evaluated again: another class object
    expect(first).not.toBe(second);
    registerError(first);
    registerError(second);
    const back = cross(new first('unbalanced'));
    expect(back).toBeInstanceOf(second); // revived as the copy registered last
    expect((back as Error).message).toBe('unbalanced');
  });
});

describe('built-in errors', () => {
  const samples: Error[] = [
    new Error('plain'),
    new TypeError('type'),
    new RangeError('range'),
    new SyntaxError('syntax'),
    new ReferenceError('reference'),
    new EvalError('eval'),
    new URIError('uri'),
    Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), {
      errno: -2, code: 'ENOENT', syscall: 'open', path: 'x',
    }),
  ];
  for (const err of samples) {
    it(`${err.constructor.name}(${err.message.slice(0, 12)}) comes back as itself`, () => {
      expectSame(cross(err), err);
    });
  }

  it('AggregateError keeps its errors', () => {
    const err = new AggregateError([new TypeError('one'), 'two', new ChannelClosedError()], 'several');
    const back = cross(err) as AggregateError;
    expectSame(back, err);
    expect(back.errors).toHaveLength(3);
    expectSame(back.errors[0] as Error, err.errors[0] as Error);
    expect(back.errors[1]).toBe('two');
    expect(back.errors[2]).toBeInstanceOf(ChannelClosedError);
    const same = new RangeError('twice');
    const twice = cross(new AggregateError([same, same], 'same error twice')) as AggregateError;
    for (const e of twice.errors) expectSame(e as Error, same);
  });

  it('a part that cannot be sent becomes a description, and encoding never fails', () => {
    const err = Object.assign(new Error('with a callback'), { callback: () => 1, ok: 1 });
    const back = cross(err) as Error & { callback: unknown; ok: number };
    expect(typeof back.callback).toBe('string');
    expect(back.ok).toBe(1);
    const cyclic = new Error('its own cause');
    cyclic.cause = cyclic;
    const c = cross(cyclic);
    expect(typeof c.cause).toBe('string');
    expect(Object.keys(c)).toEqual(['cause']); // assigned, so enumerable, as on the original
    const holder: Record<string, unknown> = {};
    const loop = new Error('cause leads back', { cause: holder });
    holder['err'] = loop; // a non-Error cause leading back: sent as a value, by V8
    const l = cross(loop);
    expect(l.message).toBe('cause leads back');
    const back2 = (l.cause as { err: Error }).err;
    expect(back2.message).toBe('cause leads back');
    expect(back2.cause).toBe(l.cause);
  });
});

describe('codes', () => {
  it('a code set without enumerating it (defineProperty) comes back, on built-in and registered classes', () => {
    class QuietError extends Error {
      constructor(message: string) {
        super(message);
        this.name = 'QuietError';
        Object.defineProperty(this, 'code', { value: 'E_QUIET', writable: true, configurable: true });
      }
    }
    registerError(QuietError);
    const builtin = new TypeError('bad input');
    Object.defineProperty(builtin, 'code', { value: 'E_INPUT', configurable: true });
    for (const [thrown, cls, code] of [[new QuietError('hush'), QuietError, 'E_QUIET'], [builtin, TypeError, 'E_INPUT']] as const) {
      const back = cross(thrown);
      expect(back).toBeInstanceOf(cls);
      expect((back as { code?: string }).code).toBe(code);
      expectSame(back, thrown); // (its keys too: the code is still not enumerated)
    }
  });
});

describe('thrown values that are not errors', () => {
  const thrown: unknown[] = ['a string', 42, null, undefined, { reason: 'object', list: [1] }, [1, 2]];
  for (const t of thrown) {
    it(`${JSON.stringify(t) ?? 'undefined'} comes back as the cause of a RemoteError`, () => {
      const back = cross(t);
      expect(back).toBeInstanceOf(RemoteError);
      expect(back.name).toBe('RemoteError');
      expect((back as RemoteError).code).toBeUndefined();
      expect(Object.hasOwn(back, 'cause')).toBe(true);
      expect(back.cause).toStrictEqual(t);
    });
  }

  it('an unsendable thrown value comes back described', () => {
    const back = cross(function secret() {});
    expect(back).toBeInstanceOf(RemoteError);
    expect(typeof back.cause).toBe('string');
  });

  it('an unreadable representation becomes a RemoteError', () => {
    for (const junk of [null, 'text', { k: 'occam', code: 'ERR_NO_SUCH' }]) {
      expect(decodeError(junk)).toBeInstanceOf(RemoteError);
    }
  });
});
