/**
 * The value codec: decode(encode(x)) must equal structuredClone(x) for everything sendable,
 * channel handles must survive anywhere, and everything unsendable must fail with a path.
 */
import { fc, test } from '@fast-check/vitest';
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidHandleError, MessageTooLargeError, NotSendableError } from '../src/errors.js';
import { decode, decodeRange, encode, findUnsendable, HANDLE_BRAND, HANDLE_WORDS, type HandleHooks } from '../src/internal/codec.js';

/** A stand-in for a channel handle: branded on its prototype, as the real one is. */
class FakeHandle {
  constructor(readonly id: number) {}
  get [HANDLE_BRAND](): true {
    return true;
  }
}

/** Hooks that count their calls and check the words they get back. */
function makeHooks(): HandleHooks & { encoded: number; decoded: number } {
  return {
    encoded: 0,
    decoded: 0,
    encodeHandle(h) {
      this.encoded++;
      const id = (h as FakeHandle).id;
      return [id, -1, 2 ** 31 - 1, -(2 ** 31), id ^ 0x5a5a, 6];
    },
    decodeHandle(w) {
      this.decoded++;
      expect([...w.slice(1)]).toEqual([-1, 2 ** 31 - 1, -(2 ** 31), w[0]! ^ 0x5a5a, 6]);
      return new FakeHandle(w[0]!);
    },
  };
}

const hooks = makeHooks();
const roundTrip = (x: unknown, h: HandleHooks = hooks): unknown => decode(encode(x, h), h);

/** Encodes `x` expecting NotSendableError; returns it. */
function refusal(x: unknown): NotSendableError {
  try {
    encode(x, hooks);
  } catch (e) {
    expect(e).toBeInstanceOf(NotSendableError);
    expect((e as NotSendableError).code).toBe('ERR_NOT_SENDABLE');
    return e as NotSendableError;
  }
  throw new Error('expected encode to throw NotSendableError');
}

const rich = {
  withBoxedValues: true, withMap: true, withSet: true, withObjectString: true, withNullPrototype: true,
  withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true, withUnicodeString: true,
} as const;

describe('matches structuredClone', () => {
  test.prop([fc.anything()], { numRuns: 1000 })('for fc.anything()', (x) => {
    expect(roundTrip(x)).toStrictEqual(structuredClone(x));
  });

  test.prop([fc.anything(rich)], { numRuns: 1000 })('for fc.anything() with every option', (x) => {
    const before = structuredClone(x);
    expect(roundTrip(x)).toStrictEqual(structuredClone(x));
    expect(structuredClone(x)).toStrictEqual(before); // the caller's value is untouched
  });

  test.prop([fc.anything(rich), fc.nat(300)], { numRuns: 500 })(
    'decoded in place from a larger buffer (a block in the shared heap), at any offset',
    (x, offset) => {
      const bytes = encode(x, hooks).slice();
      const heap = new Uint8Array(offset + bytes.length + 64).fill(0xab); // garbage around it
      heap.set(bytes, offset);
      expect(decodeRange(heap, offset, bytes.length, hooks)).toStrictEqual(structuredClone(x));
    },
  );

  test.prop([fc.anything(rich)], { numRuns: 500 })('with handles around and inside the value', (x) => {
    const value = { x, h: new FakeHandle(1), list: [x, new FakeHandle(2)], m: new Map([[new FakeHandle(3), x]]) };
    const want = {
      x: structuredClone(x),
      h: new FakeHandle(1),
      list: [structuredClone(x), new FakeHandle(2)],
      m: new Map([[new FakeHandle(3), structuredClone(x)]]),
    };
    expect(roundTrip(value)).toStrictEqual(want);
  });
});

describe('numbers, strings and other primitives', () => {
  it('keeps -0, NaN, infinities and int32 edges', () => {
    const xs = [0, -0, NaN, Infinity, -Infinity, 1, 127, 128, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1,
      1.5, Number.MAX_VALUE, Number.MIN_VALUE, Number.MAX_SAFE_INTEGER, -Number.EPSILON];
    for (const x of xs) expect(Object.is(roundTrip(x), x)).toBe(true);
    const nested = roundTrip({ a: -0, b: [-0, NaN] }) as { a: number; b: number[] };
    expect(Object.is(nested.a, -0)).toBe(true);
    expect(Object.is(nested.b[0], -0)).toBe(true);
    expect(nested.b[1]).toBeNaN();
  });

  it('writes int32s compactly and other numbers as float64', () => {
    expect(encode(5, hooks).length).toBeLessThanOrEqual(2);
    expect(encode(-123456, hooks).length).toBeLessThanOrEqual(5);
    expect(encode(0.1, hooks).length).toBeLessThanOrEqual(9);
  });

  it('keeps lone surrogates and every UTF-16 code unit, short and long', () => {
    const all = Array.from({ length: 0x10000 }, (_, i) => String.fromCharCode(i)).join('');
    const xs = ['', '\u0000', '\ud800', '\udc00', 'a\ud800b', '\udc00\ud800', '😀', 'é', 'ÿ\u0100', all,
      `${'x'.repeat(100)}\ud83d`, `${'é'.repeat(100)}\udfff${'y'.repeat(100)}`];
    for (const s of xs) {
      const back = roundTrip(s) as string;
      expect(back.length).toBe(s.length);
      expect(back === s).toBe(true);
    }
  });

  it('sends latin1 text at one byte per character', () => {
    expect(encode('é'.repeat(1000), hooks).length).toBeLessThan(1010);
    expect(encode('ж'.repeat(1000), hooks).length).toBeLessThan(2010);
  });

  it('keeps booleans, null and undefined, also as object values', () => {
    expect(roundTrip([true, false, null, undefined])).toStrictEqual([true, false, null, undefined]);
    const o = roundTrip({ u: undefined }) as object;
    expect(Object.hasOwn(o, 'u')).toBe(true);
  });
});

describe('arrays and objects', () => {
  it('keeps holes, length and extra properties of arrays', () => {
    const huge: unknown[] = [];
    huge[4294967294] = 'last';
    const balanced = [1, , 3] as unknown[] & { x?: number }; // a hole and one extra: Object.keys has 3 entries
    balanced.x = 9;
    const cases: unknown[] = [
      [1, , 3], new Array(5), Object.assign([1, 2], { foo: 'x', 4294967295: 'not an index' }),
      Object.assign(new Array(1000), { 500: 'mid' }), huge, balanced, [, undefined, , null],
    ];
    for (const a of cases) {
      const back = roundTrip(a) as unknown[];
      expect(back).toStrictEqual(structuredClone(a));
      expect(Object.keys(back)).toEqual(Object.keys(a as object));
      expect(back.length).toBe((a as unknown[]).length);
    }
  });

  it('turns null-prototype objects into plain objects, as structuredClone does', () => {
    const o = Object.assign(Object.create(null) as object, { a: 1 });
    const back = roundTrip(o) as object;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(back).toStrictEqual({ a: 1 });
  });

  it('makes __proto__, constructor and prototype own properties without polluting prototypes', () => {
    const json = '{"__proto__": {"polluted": 1}, "constructor": {"prototype": {"polluted": 2}}, "prototype": 3}';
    const own = { value: { polluted: 4 }, enumerable: true, writable: true, configurable: true };
    const plain = JSON.parse(json) as object;
    const viaV8 = Object.assign(JSON.parse(json) as object, { when: new Date(0) });
    const arr = Object.defineProperty([1], '__proto__', own);
    const backs = [plain, viaV8, arr, [plain]].map((x) => {
      const back = roundTrip(x) as object;
      // Not toStrictEqual: it compares `.constructor`, here an own property holding distinct copies.
      expect(back).toEqual(structuredClone(x));
      return back;
    });
    const [p, v, a, n] = backs as [object, object, object, object[]];
    for (const o of [p, v, n[0]!]) {
      expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(o, '__proto__')?.value).toStrictEqual({ polluted: 1 });
      expect(Object.getOwnPropertyDescriptor(o, 'constructor')?.value).toStrictEqual({ prototype: { polluted: 2 } });
    }
    expect(Object.getPrototypeOf(a)).toBe(Array.prototype);
    expect(Object.getOwnPropertyDescriptor(a, '__proto__')?.value).toStrictEqual({ polluted: 4 });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(([] as unknown as Record<string, unknown>)['polluted']).toBeUndefined();
    expect('polluted' in Object.prototype).toBe(false);
  });

  it('reads getters as structuredClone does and skips symbol keys', () => {
    const o = { get x() { return 5; }, [Symbol('s')]: 1 };
    expect(roundTrip(o)).toStrictEqual(structuredClone(o));
  });

  it('keeps shared references and cycles (through V8)', () => {
    const shared = { n: 1 };
    const back = roundTrip({ a: shared, b: [shared] }) as { a: object; b: object[] };
    expect(back.a).toBe(back.b[0]);
    const cyc: Record<string, unknown> = { name: 'self' };
    cyc['self'] = cyc;
    const c = roundTrip(cyc) as Record<string, unknown>;
    expect(c['self']).toBe(c);
  });

  it('handles objects with many keys', () => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < 20_000; i++) o[`k${i}`] = i;
    o['k150'] = new FakeHandle(150); // its words sit after the widened key count
    const back = roundTrip(o) as Record<string, unknown>;
    expect(Object.keys(back)).toHaveLength(20_000);
    expect(back['k19999']).toBe(19_999);
    expect(back['k150']).toStrictEqual(new FakeHandle(150));
  });
});

describe('byte arrays', () => {
  it('decodes a Buffer or a view as a fresh Uint8Array, as structuredClone does', () => {
    const pooled = Buffer.from('hello'); // a slice of Node's shared pool
    const view = new Uint8Array(new ArrayBuffer(16), 4, 3).fill(9);
    for (const b of [pooled, view, new Uint8Array(0)]) {
      const back = roundTrip(b) as Uint8Array;
      expect(back.constructor).toBe(Uint8Array);
      expect(back).toStrictEqual(structuredClone(b));
      expect(back.buffer).not.toBe(b.buffer);
    }
  });

  it('round-trips a 10 MB Uint8Array and a 1M-element array', () => {
    // Compared by hand: toStrictEqual takes minutes on ten million elements.
    const big = new Uint8Array(10 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4093) big[i] = (i * 31) & 0xff;
    const bigBack = roundTrip(big) as Uint8Array;
    expect(bigBack.constructor).toBe(Uint8Array);
    expect(Buffer.compare(bigBack, big)).toBe(0);
    const arr = Array.from({ length: 1_000_000 }, (_, i) => (i % 3 === 0 ? i : i % 3 === 1 ? -i - 0.5 : `s${i}`));
    const arrBack = roundTrip(arr) as unknown[];
    expect(arrBack.length).toBe(arr.length);
    let same = 0;
    for (let i = 0; i < arr.length; i++) if (Object.is(arrBack[i], arr[i])) same++;
    expect(same).toBe(arr.length);
  });

  it('does not let a decoded value alias the message bytes or the scratch buffer', () => {
    const first = { bytes: new Uint8Array([1, 2, 3]), s: 'first', n: [1, 2] };
    const msg = encode(first, hooks);
    const copy = msg.slice();
    const back = decode(msg, hooks);
    encode({ bytes: new Uint8Array([7, 7, 7]), s: 'later', n: [9, 9] }, hooks); // reuses the scratch
    expect(back).toStrictEqual(first);
    copy.fill(0xff); // the bytes a decode read from
    const again = decode(encode(first, hooks).slice(), hooks);
    expect(again).toStrictEqual(first);
    const typed = { t: new Uint16Array([1, 2]), d: new Date(1) };
    const slow = encode(typed, hooks).slice();
    const viaV8 = decode(slow, hooks) as { t: Uint16Array };
    slow.fill(0);
    expect(viaV8.t).toStrictEqual(new Uint16Array([1, 2]));
  });

  it('decodes from a view on a SharedArrayBuffer, as the channel heap does', () => {
    for (const x of [{ a: 'x', b: new Uint8Array([5]) }, { when: new Date(3), m: new Map([[1, new FakeHandle(4)]]) }]) {
      const bytes = encode(x, hooks);
      const heap = new Uint8Array(new SharedArrayBuffer(bytes.length + 10), 10, bytes.length);
      heap.set(bytes);
      expect(decode(heap, hooks)).toStrictEqual(x);
      expect(decode(Buffer.from(bytes), hooks)).toStrictEqual(x);
    }
  });
});

describe('channel handles', () => {
  it('survive at top level, nested, repeated and inside V8-path values', () => {
    const h = new FakeHandle(7);
    expect(roundTrip(h)).toStrictEqual(new FakeHandle(7));
    expect(roundTrip({ a: [1, { h }], b: h })).toStrictEqual({ a: [1, { h: new FakeHandle(7) }], b: new FakeHandle(7) });
    const key = new FakeHandle(1);
    const value = {
      m: new Map<unknown, unknown>([['k', new FakeHandle(2)], [key, 'v'], [3, [new FakeHandle(3)]]]),
      s: new Set([new FakeHandle(4), 'x']),
      when: new Date(0),
      deep: { list: [, new FakeHandle(5)], ['__proto__']: 0 },
      err: new Error('e', { cause: new FakeHandle(6) }),
    };
    const back = roundTrip(value) as typeof value;
    expect([...back.m]).toStrictEqual([['k', new FakeHandle(2)], [new FakeHandle(1), 'v'], [3, [new FakeHandle(3)]]]);
    expect([...back.s]).toStrictEqual([new FakeHandle(4), 'x']);
    expect(back.deep.list).toStrictEqual([, new FakeHandle(5)]);
    expect(back.err.cause).toStrictEqual(new FakeHandle(6));
    expect(back.when).toStrictEqual(new Date(0));
    // The caller's value still holds its own handles.
    expect(value.m.get('k')).toBeInstanceOf(FakeHandle);
    expect(value.m.has(key)).toBe(true);
    expect(value.err.cause).toBeInstanceOf(FakeHandle);
  });

  it('asks the hook once per occurrence, and only once the value is known sendable', () => {
    const h = makeHooks();
    const one = new FakeHandle(1);
    roundTrip([one, one, { one }], h);
    expect([h.encoded, h.decoded]).toEqual([3, 3]);
    const h2 = makeHooks();
    expect(() => encode({ one, f: () => 1 }, h2)).toThrow(NotSendableError);
    expect(() => encode({ one, when: new Date(), f: () => 1 }, h2)).toThrow(NotSendableError);
    expect(h2.encoded).toBe(0);
  });

  it('refuses a hook that returns the wrong number of words', () => {
    const bad: HandleHooks = { encodeHandle: () => new Array(HANDLE_WORDS - 1).fill(0), decodeHandle: () => null };
    expect(() => encode([new FakeHandle(1)], bad)).toThrow(InvalidHandleError);
  });
});

describe('values that cannot be sent', () => {
  class Foo {
    x = 1;
    m(): number {
      return this.x;
    }
  }
  class MyArray extends Array<number> {}
  const selfCaused: Error = new Error('loop', { cause: { back: null as unknown } });
  (selfCaused.cause as { back: unknown }).back = selfCaused; // structuredClone cannot decode this either
  const cases: [string, unknown, string][] = [
    ['a function', () => 1, 'value'],
    ['a function deep inside', { a: [1, 2, { f() {} }] }, 'value.a[2].f'],
    ['a symbol', { s: Symbol('s') }, 'value.s'],
    ['a Promise', { p: Promise.resolve(1) }, 'value.p'],
    ['a WeakMap', [new WeakMap()], 'value[0]'],
    ['a WeakSet', { w: new WeakSet() }, 'value.w'],
    ['a WeakRef', { r: new WeakRef({}) }, 'value.r'],
    ['a Proxy', { x: new Proxy({}, {}) }, 'value.x'],
    ['an array Proxy', [new Proxy([], {})], 'value[0]'],
    ['a class instance', { item: new Foo() }, 'value.item'],
    ['an Array subclass', { a: MyArray.from([1]) }, 'value.a'],
    ['a SharedArrayBuffer', { sab: new SharedArrayBuffer(8) }, 'value.sab'],
    ['a view on a SharedArrayBuffer', { v: new Uint8Array(new SharedArrayBuffer(8)) }, 'value.v'],
    ['a function under an odd key', { 'odd key': () => 1 }, 'value["odd key"]'],
    ['a symbol in a sparse array', Object.assign(new Array(100), { 50: Symbol('x') }), 'value[50]'],
    ['a function as an array extra', Object.assign([1], { fn: () => 1 }), 'value.fn'],
    ['a function as a Map value (V8 path)', { m: new Map([['k', () => 1]]) }, 'value.m.get("k")'],
    ['a symbol as a Map key (V8 path)', { m: new Map([[Symbol('k'), 1]]) }, 'value.m.keys()[0]'],
    ['a symbol in a Set (V8 path)', { s: new Set([1, Symbol('x')]) }, 'value.s.values()[1]'],
    ['a Promise beside a Date (V8 path)', { d: new Date(), x: { y: [Promise.resolve()] } }, 'value.x.y[0]'],
    ['a function as an error cause (V8 path)', { e: new Error('x', { cause: () => 1 }) }, 'value.e.cause'],
    ['an error inside its own cause', { e: selfCaused }, 'value.e.cause.back'],
  ];
  for (const [what, value, path] of cases) {
    it(`refuses ${what} with its path`, () => {
      expect(refusal(value).path).toBe(path);
      expect(findUnsendable(value)?.path).toBe(path);
    });
  }

  it('leaves no state behind after a refusal', () => {
    const ok = { a: [1, 'two', { three: 3 }], b: new Uint8Array([4]) };
    for (const [, value] of cases) {
      expect(() => encode(value, hooks)).toThrow(NotSendableError);
      expect(roundTrip(ok)).toStrictEqual(ok);
    }
  });

  it('refuses to encode again from inside a getter, and recovers', () => {
    const sneaky = { get x() { return encode(1, hooks).length; } };
    expect(() => encode(sneaky, hooks)).toThrow(InvalidArgumentError);
    expect(roundTrip({ y: 1 })).toStrictEqual({ y: 1 });
  });

  it('findUnsendable finds nothing wrong in sendable values', () => {
    expect(findUnsendable({ a: [1, new Map([[1, new Date()]])], h: new FakeHandle(1) })).toBeUndefined();
  });
});

describe('limits every thread can take', () => {
  const list = (n: number, leaf: unknown): unknown => {
    let h = leaf;
    for (let i = 0; i < n; i++) h = { v: i, next: h };
    return h;
  };
  const depthOf = (x: unknown): number => {
    let n = 0;
    for (let h = x as { next?: unknown }; typeof h === 'object' && h !== null && 'next' in h; h = h.next as { next?: unknown }) n++;
    return n;
  };
  it('values nested up to 1000 levels travel, deeper ones are refused at the send (a small stack could not decode them)', () => {
    for (const leaf of [1, new Date(0)]) {
      expect(depthOf(roundTrip(list(1000, leaf)))).toBe(1000);
      const e = refusal(list(1001, leaf));
      expect(e.message).toMatch(/nested more than 1000 levels/);
      expect(e.path.length).toBeLessThan(200); // a long path keeps its ends only
    }
    let arr: unknown = 0;
    for (let i = 0; i < 1001; i++) arr = [arr];
    expect(refusal(arr).message).toMatch(/nested more than 1000 levels/);
  });

  it('a detached buffer, or a view on one, is refused like any value that cannot cross', () => {
    const ab = new ArrayBuffer(8);
    const views = [new Uint8Array(ab), new Float64Array(ab), Buffer.from(ab)];
    structuredClone(ab, { transfer: [ab] });
    expect(refusal({ ab }).message).toMatch(/value\.ab is a detached ArrayBuffer/);
    for (const v of views) expect(refusal([v]).message).toMatch(/value\[0\] is a view on a detached ArrayBuffer/);
    expect(roundTrip([new Uint8Array(0), new ArrayBuffer(0)])).toEqual([new Uint8Array(0), new ArrayBuffer(0)]); // empty, not detached
  });

  it('an encoding past `max` fails with MessageTooLargeError before any hook runs; one of exactly `max` bytes passes', () => {
    const h = makeHooks();
    const exact = encode({ s: 'x'.repeat(100), h: new FakeHandle(1) }, h).length;
    expect(h.encoded).toBe(1);
    expect(encode({ s: 'x'.repeat(100), h: new FakeHandle(1) }, h, exact).length).toBe(exact);
    const before = h.encoded;
    for (const v of [
      { s: 'x'.repeat(100), h: new FakeHandle(1) }, // the whole is one byte too many
      [new FakeHandle(2), new Uint8Array(exact)], // a byte array alone takes it past
      [new FakeHandle(3), 'y'.repeat(exact)], // a string alone
      [new FakeHandle(4), new Date(0), 'z'.repeat(exact)], // the V8 path
    ]) {
      expect(() => encode(v, h, exact - 1)).toThrow(MessageTooLargeError);
    }
    expect(h.encoded).toBe(before); // no hook ran for any of them
    // A large byte array or string is refused from its length, before the scratch buffer grows to it.
    const big = new Uint8Array(64 << 20);
    const e = (() => {
      try {
        encode(['a', big], h, 1 << 20);
      } catch (x) {
        return x as Error;
      }
      throw new Error('not refused');
    })();
    expect(e).toBeInstanceOf(MessageTooLargeError);
    expect(e.message).toMatch(/^message of at least \d+ bytes exceeds the maximum of 1048576 bytes/);
    expect(encode(1, h).buffer.byteLength).toBeLessThan(64 << 20); // the scratch never grew for it
  });
});

describe('malformed bytes', () => {
  it('fail with ERR_INVALID_ARGUMENT', () => {
    const good = encode({ a: 'text', b: [1, 2, 3] }, hooks).slice();
    const bads = [new Uint8Array(0), new Uint8Array([0x7f]), good.subarray(0, good.length - 2), new Uint8Array([...good, 0])];
    for (const b of bads) {
      expect(() => decode(b, hooks)).toThrow(InvalidArgumentError);
    }
  });
});
