import { getEventListeners } from 'node:events';
import { describe, expect, test } from 'vitest';
import {
  AbortError,
  ChannelClosedError,
  ChannelEmptyError,
  ChannelFullError,
  chan,
  InvalidArgumentError,
  InvalidCapacityError,
  InvalidHandleError,
  liveChannels,
  MAX_CAPACITY,
  MAX_MESSAGE_BYTES,
  MAX_WAITERS,
  MessageTooLargeError,
  NotSendableError,
  spawn,
  SyncOnMainError,
  TimeoutError,
  TooManyWaitersError,
  WrongDirectionError,
  type Channel,
} from '@occam/core';
import { recv, selectAsync, send } from '@occam/select';
import { heapUsage, setMaxWaiters } from '@occam/core/testing';
import { settled, settledLiveChannels, until, watchdog } from './helpers.js';

const procs = new URL('./fixtures/chan-procs.ts', import.meta.url);

describe('rendezvous and buffering', () => {
  test('a rendezvous send completes only when a receiver takes the value (main side)', async () => {
    const ch = chan<number>();
    const sent = ch.sendAsync(42);
    await until(() => ch.waitingSenders === 1, 'the sender to park');
    expect(await settled(sent)).toBe(false);
    expect(ch.len).toBe(0);
    expect(await watchdog(ch.recvAsync(), 'recv')).toBe(42);
    await watchdog(sent, 'send to complete');
    expect(ch.waitingSenders).toBe(0);
  });

  for (let cap = 0; cap <= 8; cap++) {
    test(`capacity ${cap}: a worker's sends block after exactly ${cap} buffered values`, async () => {
      const ch = chan<number>(cap);
      const values = Array.from({ length: cap + 1 }, (_, i) => i * 10);
      const p = spawn<number>(procs, 'sendAll', [ch, values]);
      await until(() => ch.len === cap && ch.waitingSenders === 1, `len ${cap} and one parked sender`);
      expect(ch.len).toBe(cap);
      const got: number[] = [];
      for (let i = 0; i <= cap; i++) got.push(await watchdog(ch.recvAsync(), `recv ${i}`));
      expect(got).toEqual(values);
      expect(await watchdog(p.join(), 'join')).toBe(cap + 1);
      expect(ch.len).toBe(0);
      expect(ch.waitingSenders).toBe(0);
    });
  }

  test('trySend fills exactly cap slots, then reports full with the value back', () => {
    for (let cap = 0; cap <= 8; cap++) {
      const ch = chan<string>(cap);
      for (let i = 0; i < cap; i++) expect(ch.trySend(`v${i}`).isOk()).toBe(true);
      const r = ch.trySend('extra');
      expect(r.isErr()).toBe(true);
      const e = r.isErr() ? r.error : undefined;
      expect(e).toBeInstanceOf(ChannelFullError);
      expect((e as ChannelFullError<string>).value).toBe('extra');
      expect(ch.len).toBe(cap);
      for (let i = 0; i < cap; i++) expect(ch.tryRecv().unwrap()).toBe(`v${i}`);
      const empty = ch.tryRecv();
      expect(empty.isErr() && empty.error).toBeInstanceOf(ChannelEmptyError);
      ch.release();
    }
  });

  test('the Err of an empty or full try behaves as any Err (it is made without a stack)', () => {
    const ch = chan<number>(1);
    const empty = ch.tryRecv();
    expect(empty.isErr()).toBe(true);
    expect(empty.isOk()).toBe(false);
    expect(empty.unwrapOr(5)).toBe(5);
    expect(() => empty.unwrap()).toThrow(/ERR_CHANNEL_EMPTY|channel is empty/);
    expect(empty.isErr() && empty.error.code).toBe('ERR_CHANNEL_EMPTY');
    expect(String(empty)).toContain('Err(');
    ch.trySend(1).unwrap();
    const full = ch.trySend(2);
    expect(full.isErr() && full.error).toBeInstanceOf(ChannelFullError);
    expect(full.isErr() && (full.error as ChannelFullError<number>).value).toBe(2);
    const code = full.mapErr((e) => e.code);
    expect(code.isErr() && code.error).toBe('ERR_CHANNEL_FULL');
    // Lock-free "empty" and "full" agree with the channel's state: closed is not empty.
    ch.close();
    expect(ch.tryRecv().unwrap()).toBe(1);
    const closed = ch.tryRecv();
    expect(closed.isErr() && closed.error.code).toBe('ERR_CHANNEL_CLOSED');
  });

  test('values of every kind, and one larger than any slot, arrive intact', async () => {
    const big = new Uint8Array(3_000_000).map((_, i) => (i * 7) & 0xff);
    const values = [0, -0, 1.5, NaN, 2 ** 40, 'text', '', true, false, null, undefined, { a: [1, { b: 'c' }] }, big];
    const ch = chan<unknown>(4);
    const p = spawn(procs, 'sendAll', [ch, values]);
    const got: unknown[] = [];
    for (let i = 0; i < values.length; i++) got.push(await watchdog(ch.recvAsync(), `recv ${i}`));
    await watchdog(p.join(), 'join');
    // Deep equality over 3 MB element by element is slow: compare the bytes directly.
    const gotBig = got.pop() as Uint8Array;
    expect(gotBig).toBeInstanceOf(Uint8Array);
    expect(Buffer.compare(Buffer.from(gotBig), Buffer.from(big))).toBe(0);
    expect(got).toStrictEqual(values.slice(0, -1));
    expect(Object.is(got[1], -0)).toBe(true);
  });

  test('values that take V8\'s path (Map, Set, Date, BigInt) arrive intact behind other messages', () => {
    const ch = chan<unknown>(8);
    const values = [{ pad: 'x'.repeat(100) }, new Map([[1, { a: [2n] }]]), 7, new Set(['s']), new Date(5), [1n, 'b']];
    for (const v of values) ch.trySend(v).unwrap();
    const got = values.map(() => ch.tryRecv().unwrap());
    expect(got).toStrictEqual(values.map((v) => structuredClone(v)));
  });
});

describe('close', () => {
  test('receivers drain buffered values, then see closed; for-of ends', async () => {
    const ch = chan<number>(8);
    for (let i = 0; i < 5; i++) ch.trySend(i).unwrap();
    ch.close();
    expect(ch.closed).toBe(true);
    const p = spawn<number[]>(procs, 'drain', [ch]);
    expect(await watchdog(p.join(), 'drain')).toEqual([0, 1, 2, 3, 4]);
    await expect(ch.recvAsync()).rejects.toBeInstanceOf(ChannelClosedError);
  });

  test('send on a closed channel and a second close are errors with stable codes', async () => {
    const ch = chan<number>(2);
    ch.close();
    await expect(ch.sendAsync(1)).rejects.toMatchObject({ code: 'ERR_CHANNEL_CLOSED' });
    const r = ch.trySend(1);
    expect(r.isErr() && r.error.code).toBe('ERR_CHANNEL_CLOSED');
    expect(r.isErr() && r.error instanceof ChannelClosedError && r.error.value).toBe(1); // the value back, as when full
    expect(() => ch.close()).toThrow(ChannelClosedError);
    expect(ch.len).toBe(0);
  });

  test('close wakes a receiver parked in a worker and a sender parked in a worker', async () => {
    const r = chan<number>();
    const s = chan<number>();
    const pr = spawn<{ code?: string }>(procs, 'recvOnce', [r]);
    const ps = spawn<{ code?: string }>(procs, 'sendOnce', [s, 7]);
    await until(() => r.waitingReceivers === 1 && s.waitingSenders === 1, 'both to park');
    r.close();
    s.close();
    expect(await watchdog(pr.join(), 'receiver')).toEqual({ code: 'ERR_CHANNEL_CLOSED' });
    expect(await watchdog(ps.join(), 'sender')).toEqual({ code: 'ERR_CHANNEL_CLOSED' });
  });

  for (const cap of [1, 2, 16]) {
    test(`close racing a sender (capacity ${cap}): every send that succeeded is received, in order, and no other`, async () => {
      for (let round = 0; round < 5; round++) {
        const ch = chan<number>(cap);
        const p = spawn<number>(procs, 'sendUntilClosed', [ch]);
        const got: number[] = [];
        for (let i = 0; i < 200; i++) got.push(await watchdog(ch.recvAsync(), 'recv before close'));
        ch.close();
        for (;;) {
          const r = await watchdog(ch.recvResultAsync(), 'drain');
          if (r.isErr()) {
            expect(r.error).toBeInstanceOf(ChannelClosedError);
            break;
          }
          got.push(r.value);
        }
        const sent = await watchdog(p.join(), 'sender');
        expect(got).toEqual(Array.from({ length: sent }, (_, i) => i));
      }
    });
  }

  test('a worker sender facing a full buffer (napping, then parked) gets in after a single receive; close fails it', async () => {
    for (const cap of [1, 8, 64]) {
      const ch = chan<number>(cap);
      for (let i = 0; i < cap; i++) await ch.sendAsync(i);
      const p = spawn<number>(procs, 'sendAll', [ch, [999]]);
      expect(await settled(p.join())).toBe(false); // the buffer is full: it waits
      expect(await ch.recvAsync()).toBe(0);
      expect(await watchdog(p.join(), `sender after one receive (cap ${cap})`)).toBe(1);
      const rest: number[] = [];
      while (ch.len > 0) rest.push(await ch.recvAsync());
      expect(rest).toEqual([...Array.from({ length: cap - 1 }, (_, i) => i + 1), 999]);
      for (let i = 0; i < cap; i++) await ch.sendAsync(i);
      const q = spawn<{ code?: string }>(procs, 'sendOnce', [ch, 5]);
      expect(await settled(q.join())).toBe(false);
      ch.close();
      expect(await watchdog(q.join(), `closed sender (cap ${cap})`)).toEqual({ code: 'ERR_CHANNEL_CLOSED' });
    }
  });

  test('a sender closes after its values; a worker receiver gets them all then closed', async () => {
    const ch = chan<number>(0);
    const values = Array.from({ length: 200 }, (_, i) => i * 3);
    const sender = spawn(procs, 'sendAllThenClose', [ch, values]);
    const receiver = spawn<number[]>(procs, 'drain', [ch]);
    expect(await watchdog(receiver.join(), 'drain')).toEqual(values);
    await watchdog(sender.join(), 'sender');
  });
});

describe('cancellation enqueues nothing', () => {
  test('a timed-out send in a worker leaves the channel empty, and the value is never received', async () => {
    const ch = chan<number>();
    const p = spawn<{ code?: string }>(procs, 'sendOnce', [ch, 99, 30]);
    expect(await watchdog(p.join(), 'timed send')).toEqual({ code: 'ERR_TIMEOUT' });
    expect(ch.waitingSenders).toBe(0);
    const r = ch.tryRecv();
    expect(r.isErr() && r.error).toBeInstanceOf(ChannelEmptyError);
  });

  test('a timeout that is not a number (NaN) is refused with ERR_INVALID_ARGUMENT; nothing is sent or left waiting', async () => {
    const ch = chan<number>();
    await expect(ch.recvAsync({ timeout: NaN })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(ch.sendAsync(5, { timeout: NaN })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(selectAsync([recv(ch)], { timeout: NaN })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(ch.waitingReceivers + ch.waitingSenders).toBe(0);
    expect(ch.tryRecv().isErr()).toBe(true);
  });

  test('a timed-out async recv leaves no waiting receiver behind', async () => {
    const ch = chan<number>();
    await expect(ch.recvAsync({ timeout: 20 })).rejects.toBeInstanceOf(TimeoutError);
    expect(ch.waitingReceivers).toBe(0);
    // A later sender must not be paired with the dead receiver.
    const r = ch.trySend(1);
    expect(r.isErr() && r.error).toBeInstanceOf(ChannelFullError);
  });

  test('an aborted async send is never received, and nothing stays queued', async () => {
    const ch = chan<string>();
    const ac = new AbortController();
    const sent = ch.sendAsync('never', { signal: ac.signal });
    await until(() => ch.waitingSenders === 1, 'the sender to park');
    ac.abort();
    await expect(watchdog(sent, 'aborted send')).rejects.toBeInstanceOf(AbortError);
    expect(ch.waitingSenders).toBe(0);
    expect(ch.tryRecv().isErr()).toBe(true);
  });

  test('a wait that ended leaves no listener on its signal (Node keeps a timeout or any() signal alive while it has one)', async () => {
    const ch = chan<number>();
    const ac = new AbortController();
    const signals = [AbortSignal.timeout(60_000), AbortSignal.any([ac.signal]), ac.signal];
    for (const signal of signals) {
      const got = ch.recvAsync({ signal });
      await until(() => ch.waitingReceivers === 1, 'the receiver to park');
      expect(getEventListeners(signal, 'abort').length).toBe(1);
      await watchdog(ch.sendAsync(7), 'the send');
      expect(await watchdog(got, 'the receive')).toBe(7);
      expect(getEventListeners(signal, 'abort').length).toBe(0);
    }
    // Many waits on one signal at once: one listener, gone with the last of them.
    const many = [1, 2, 3].map(() => ch.recvAsync({ signal: ac.signal }));
    await until(() => ch.waitingReceivers === 3, 'the receivers to park');
    expect(getEventListeners(ac.signal, 'abort').length).toBe(1);
    for (const v of [1, 2, 3]) await watchdog(ch.sendAsync(v), 'a send');
    expect((await watchdog(Promise.all(many), 'the receives')).sort()).toEqual([1, 2, 3]);
    expect(getEventListeners(ac.signal, 'abort').length).toBe(0);
  });

  test('an already-aborted signal fails at once', async () => {
    const ch = chan<number>(1);
    await expect(ch.sendAsync(1, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(ch.len).toBe(0);
  });

  test('racing timed sends and timed receives: exactly the sends reported successful arrive', async () => {
    const ch = chan<number>();
    const n = 3000;
    const s = spawn<number[]>(procs, 'sendWithTimeouts', [ch, n, 0.05]);
    const r = spawn<number[]>(procs, 'recvWithTimeouts', [ch, 0.05]);
    const [ok, got] = await watchdog(Promise.all([s.join(), r.join()]), 'timed send/recv race', 30_000);
    expect(got).toEqual(ok);
    expect(ch.waitingSenders + ch.waitingReceivers).toBe(0);
  });
});

describe('values, handles and bad input', () => {
  test('a non-sendable value throws ERR_NOT_SENDABLE and leaves the channel usable and empty', async () => {
    const ch = chan<unknown>(4);
    await expect(ch.sendAsync(() => 1)).rejects.toBeInstanceOf(NotSendableError);
    const r = ch.trySend({ f: Symbol('s') });
    expect(r.isErr() && r.error.code).toBe('ERR_NOT_SENDABLE');
    expect(ch.len).toBe(0);
    ch.trySend('good').unwrap();
    expect(ch.tryRecv().unwrap()).toBe('good');
    // Same in a worker with the sync op: the good value after the bad one arrives.
    const p = spawn<string>(procs, 'sendBadThenGood', [ch, 5]);
    expect(await watchdog(ch.recvAsync(), 'good value')).toBe(5);
    expect(await watchdog(p.join(), 'join')).toBe('ERR_NOT_SENDABLE');
  });

  test('a message past MAX_MESSAGE_BYTES fails with ERR_MESSAGE_TOO_LARGE, takes no heap, and leaves the channel usable', async () => {
    const ch = chan<unknown>(4);
    const before = heapUsage().bump;
    const big = new Uint8Array(MAX_MESSAGE_BYTES + 1); // (pages never touched: no real memory)
    await expect(ch.sendAsync({ big })).rejects.toBeInstanceOf(MessageTooLargeError);
    const r = ch.trySend([big]);
    expect(r.isErr() && r.error.code).toBe('ERR_MESSAGE_TOO_LARGE');
    expect(r.isErr() && r.error.message).toMatch(/^message of at least \d+ bytes exceeds the maximum of 268435456 bytes/);
    expect(ch.len).toBe(0);
    expect(heapUsage().bump).toBe(before);
    ch.trySend('good').unwrap();
    expect(ch.tryRecv().unwrap()).toBe('good');
  });

  test('every non-sendable kind fails with ERR_NOT_SENDABLE, enqueues nothing, and the next good value goes through', async () => {
    class WithMethods {
      x = 1;
      get double(): number {
        return this.x * 2;
      }
      bump(): void {
        this.x++;
      }
    }
    const kinds: [string, unknown][] = [
      ['a function', () => 1],
      ['a symbol', Symbol('s')],
      ['a Promise', Promise.resolve(1)],
      ['a WeakMap', new WeakMap()],
      ['a Proxy', new Proxy({}, {})],
      ['an object with methods', new WithMethods()],
      ['one nested in a plain object', { deep: [{ f: () => 2 }] }],
    ];
    for (const cap of [0, 4]) {
      const ch = chan<unknown>(cap);
      for (const [what, bad] of kinds) {
        const err = await ch.sendAsync(bad).catch((e: unknown) => e);
        expect(err, `${what} (cap ${cap})`).toBeInstanceOf(NotSendableError);
        expect((err as NotSendableError).code).toBe('ERR_NOT_SENDABLE');
        const r = ch.trySend(bad);
        expect(r.isErr() && r.error.code, what).toBe('ERR_NOT_SENDABLE');
        expect([ch.len, ch.waitingSenders], what).toEqual([0, 0]);
      }
      const got = ch.recvAsync();
      await ch.sendAsync({ good: true });
      expect(await watchdog(got, 'the good value')).toEqual({ good: true });
    }
  });

  test('a forged handle is refused before it touches the heap; a stale one fails with ERR_INVALID_HANDLE', async () => {
    const victim = chan<number>(1);
    const [off, id, runtimeId] = victim.handleWords();
    const forged = {
      get [Symbol.for('occam.handle')]() {
        return true;
      },
      handleWords: () => [off, id, runtimeId, 0, 0x0c4a4e00, 0],
    };
    const ch = chan<unknown>(2);
    const before = heapUsage().bump;
    await expect(ch.sendAsync({ forged })).rejects.toBeInstanceOf(InvalidHandleError);
    expect(() => ch.trySend([forged])).toThrow(InvalidHandleError);
    expect(ch.len).toBe(0);
    expect(heapUsage().bump).toBe(before);
    // The victim's reference count was not touched: releasing its only handle frees it.
    const live = liveChannels();
    victim.release();
    expect(liveChannels()).toBe(live - 1);
    expect(() => victim.handleWords()).toThrow(InvalidHandleError);
    await ch.sendAsync('still works');
    expect(await ch.recvAsync()).toBe('still works');
  });

  test('waiter queues are bounded: past the bound an op fails with ERR_TOO_MANY_WAITERS and nothing is queued', async () => {
    expect(MAX_WAITERS).toBe(65536);
    setMaxWaiters(4);
    try {
      const ch = chan<number>();
      const receivers = Array.from({ length: 4 }, () => ch.recvAsync());
      await expect(ch.recvAsync()).rejects.toBeInstanceOf(TooManyWaitersError);
      expect(ch.waitingReceivers).toBe(4);
      const other = chan<number>();
      // A select with one case on the full queue withdraws its other case too.
      await expect(selectAsync([recv(other), recv(ch)])).rejects.toMatchObject({ code: 'ERR_TOO_MANY_WAITERS' });
      expect([other.waitingReceivers, ch.waitingReceivers]).toEqual([0, 4]);
      for (let i = 0; i < 4; i++) await ch.sendAsync(i);
      expect(await watchdog(Promise.all(receivers), 'receivers')).toEqual([0, 1, 2, 3]);
      // The send side, with a value that must not be delivered.
      const senders = Array.from({ length: 4 }, (_, i) => ch.sendAsync(i));
      await expect(ch.sendAsync(99)).rejects.toBeInstanceOf(TooManyWaitersError);
      await expect(selectAsync([send(ch, 98)])).rejects.toBeInstanceOf(TooManyWaitersError);
      const got = [];
      for (let i = 0; i < 4; i++) got.push(await watchdog(ch.recvAsync(), 'recv'));
      await watchdog(Promise.all(senders), 'senders');
      expect(got).toEqual([0, 1, 2, 3]);
      expect([ch.waitingSenders, ch.tryRecv().isErr()]).toEqual([0, true]);
    } finally {
      setMaxWaiters(0);
    }
  });

  test('a channel sent over a channel works in the receiving process', async () => {
    const carrier = chan<Channel<number>>();
    const inner = chan<number>(0, { name: 'inner' });
    const p = spawn<string>(procs, 'useReceivedChannel', [carrier, 21]);
    await watchdog(carrier.sendAsync(inner), 'send the channel');
    expect(await watchdog(inner.recvAsync(), 'value on the received channel')).toBe(42);
    expect(await watchdog(p.join(), 'join')).toBe('inner');
  });

  test('sync ops on the main thread fail with ERR_SYNC_ON_MAIN instead of freezing', () => {
    const ch = chan<number>();
    expect(() => ch.send(1)).toThrow(SyncOnMainError);
    expect(() => ch.recv()).toThrow(SyncOnMainError);
    expect(ch.waitingSenders + ch.waitingReceivers).toBe(0);
  });

  test('send-only and receive-only ends are checked at run time', async () => {
    const ch = chan<number>(1);
    const tx = ch.sender();
    const rx = ch.receiver();
    expect(() => (tx as unknown as Channel<number>).tryRecv()).toThrow(WrongDirectionError);
    expect(() => (rx as unknown as Channel<number>).trySend(1)).toThrow(WrongDirectionError);
    await tx.sendAsync(3);
    expect(await rx.recvAsync()).toBe(3);
  });

  test('invalid capacities are refused with ERR_INVALID_CAPACITY', () => {
    for (const cap of [-1, 1.5, NaN, Infinity, MAX_CAPACITY + 1, '3' as unknown as number]) {
      expect(() => chan(cap)).toThrow(InvalidCapacityError);
    }
  });

  test('releasing a handle with an async op in flight frees the channel only after the op ends', async () => {
    // (Settled: handles earlier tests dropped must not be collected in the middle of this one.)
    const before = await settledLiveChannels();
    const ch = chan<number>();
    const got = ch.recvAsync({ timeout: 30 });
    await until(() => ch.waitingReceivers === 1, 'the receiver to park');
    ch.release(); // the last handle, but its own receive still has a waiter linked in the channel
    expect(liveChannels()).toBe(before + 1);
    await expect(watchdog(got, 'recv')).rejects.toBeInstanceOf(TimeoutError);
    expect(liveChannels()).toBe(before);
  });

  test('a released handle fails with ERR_INVALID_HANDLE', () => {
    const ch = chan<number>(1);
    ch.release();
    expect(() => ch.trySend(1)).toThrow(InvalidHandleError);
  });

  test('a long stream of object messages reuses heap blocks instead of growing the heap', async () => {
    const ch = chan<{ id: number; name: string }>(64);
    const round = async (): Promise<void> => {
      for (let i = 0; i < 5000; i++) {
        ch.trySend({ id: i, name: `item-${i}` }).unwrap();
        if (ch.len === 64) while (ch.tryRecv().isOk());
      }
      while (ch.tryRecv().isOk());
    };
    await round();
    const before = heapUsage().bump;
    for (let r = 0; r < 10; r++) await round();
    expect(heapUsage().bump).toBe(before);
    expect(ch.len).toBe(0);
  });

  test('blocks a consumer frees on one thread are reused by a producer on another: the heap stops growing', async () => {
    // The consumer's frees go back in batches (heap.ts); the producer's thread takes them again.
    const round = async (): Promise<number> => {
      const ch = chan<{ id: number; name: string }>(64);
      const n = 20_000;
      const producer = spawn(procs, 'produceObjects', [ch.sender(), n]);
      const consumer = spawn(procs, 'sumIds', [ch.receiver()]);
      expect(await watchdog(consumer.join(), 'the consumer')).toEqual([n, (n * (n - 1)) / 2]);
      expect(await watchdog(producer.join(), 'the producer')).toBe(n);
      ch.release();
      return heapUsage().bump;
    };
    await round();
    const after = await round();
    for (let r = 0; r < 3; r++) await round();
    // Each round moves ~1.3 MB of blocks through the channel; reused, they take no new memory.
    expect(heapUsage().bump - after).toBeLessThan(64 * 1024);
  });

  test('channels are freed when their last holder releases them (a reply channel per request)', async () => {
    const before = liveChannels();
    for (let i = 0; i < 20_000; i++) {
      const reply = chan<number>(1);
      reply.trySend(i).unwrap();
      reply.release();
    }
    expect(liveChannels()).toBe(before);
    // A handle inside an undelivered buffered message is released with its channel.
    const carrier = chan<Channel<number>>(1);
    const inner = chan<number>();
    carrier.trySend(inner).unwrap();
    inner.release();
    expect(liveChannels()).toBe(before + 2);
    carrier.release();
    expect(liveChannels()).toBe(before);
  });
});

describe('chan() keeps nothing it cannot finish', () => {
  test('a name that is not a string is refused before anything is made', () => {
    const live = liveChannels();
    for (const name of [null, 42, { toString: () => 'x' }]) {
      expect(() => chan(8, { name: name as never })).toThrow(InvalidArgumentError);
    }
    expect(() => chan(0, null as never)).toThrow(InvalidArgumentError);
    expect(liveChannels()).toBe(live);
  });
});

describe('async flavour', () => {
  test('many async processes on the main thread talk over rendezvous channels', async () => {
    const a = chan<number>();
    const b = chan<number>();
    const n = 2000;
    const ping = (async () => {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        await a.sendAsync(i);
        sum += await b.recvAsync();
      }
      return sum;
    })();
    const pong = (async () => {
      for (let i = 0; i < n; i++) await b.sendAsync((await a.recvAsync()) * 2);
    })();
    const [sum] = await watchdog(Promise.all([ping, pong]), 'main-thread ping-pong');
    expect(sum).toBe(n * (n - 1));
  });

  test('sync and async flavours interoperate on one channel (worker echo with async ops)', async () => {
    const input = chan<number>();
    const output = chan<number>();
    const p = spawn<number>(procs, 'echoAsync', [input, output]);
    for (let i = 0; i < 500; i++) {
      await input.sendAsync(i);
      expect(await output.recvAsync()).toBe(i + 1);
    }
    input.close();
    expect(await watchdog(p.join(), 'echo')).toBe(500);
    await expect(output.recvAsync()).rejects.toBeInstanceOf(ChannelClosedError);
  });
});
