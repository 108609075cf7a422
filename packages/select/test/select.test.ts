/**
 * select over real workers and on the main thread. Every wait has a watchdog; nothing sleeps to
 * synchronise (tests wait on observable channel state instead).
 */
import { describe, expect, test } from 'vitest';
import {
  ChannelClosedError,
  chan,
  EmptySelectError,
  InvalidArgumentError,
  InvalidHandleError,
  NotSendableError,
  spawn,
  SyncOnMainError,
  TimeoutError,
  AbortError,
  WrongDirectionError,
  liveChannels,
} from '@occam/core';
import { checkInvariants, heapUsage } from '@occam/core/testing';
import { after, deadline, never, recv, select, selectAsync, send, tick, when } from '@occam/select';
import { until, watchdog } from '../../core/test/helpers.js';

const procs = new URL('./fixtures/select-procs.ts', import.meta.url);
type Msg = [number, number];

describe('select on the main thread (async)', () => {
  test('a ready receive fires with its value; a closed channel fires with ok: false', async () => {
    const a = chan<number>(1);
    const b = chan<string>();
    await a.sendAsync(7);
    const r = await selectAsync([recv(a), recv(b)]);
    expect(r).toEqual({ index: 0, kind: 'recv', ok: true, value: 7 });
    b.close();
    const c = await selectAsync([recv(a), recv(b)]);
    expect(c).toEqual({ index: 1, kind: 'recv', ok: false, value: undefined });
  });

  test('a parked select is completed by a peer on any of its channels, and withdraws the rest', async () => {
    const a = chan<number>();
    const b = chan<number>();
    const p = selectAsync([recv(a), recv(b)]);
    await until(() => a.waitingReceivers === 1 && b.waitingReceivers === 1, 'the select to register on both');
    await watchdog(b.sendAsync(42), 'send to the parked select');
    expect(await watchdog(p, 'select')).toEqual({ index: 1, kind: 'recv', ok: true, value: 42 });
    expect([a.waitingReceivers, b.waitingReceivers]).toEqual([0, 0]);
    expect(a.trySend(1).isErr()).toBe(true); // nobody is left waiting on a
  });

  test('a send case delivers to a parked receiver; the losing send values are freed', async () => {
    const a = chan<object>();
    const b = chan<object>();
    const got = b.recvAsync();
    await until(() => b.waitingReceivers === 1, 'receiver to park');
    const before = heapUsage().bump;
    for (let i = 0; i < 200; i++) {
      const r = await selectAsync([send(a, { big: 'x'.repeat(10_000) }), send(b, { i })], { default: true });
      if (i === 0) expect(r).toEqual({ index: 1, kind: 'send' });
      else expect(r.kind).toBe('default');
    }
    expect(await got).toEqual({ i: 0 });
    // 200 × 10 kB of losing send values would show in the heap if they were not freed.
    expect(heapUsage().bump - before).toBeLessThan(200_000);
  });

  test('a send case on a closed channel throws ChannelClosedError, as in Go', async () => {
    const a = chan<number>();
    a.close();
    await expect(selectAsync([send(a, 1)])).rejects.toBeInstanceOf(ChannelClosedError);
  });

  test('default is taken only when nothing is ready', async () => {
    const a = chan<number>(2);
    expect(await selectAsync([recv(a)], { default: true })).toEqual({ index: -1, kind: 'default' });
    const flag: boolean = a.len === 0; // a default chosen at run time: the result type includes it
    const maybe = await selectAsync([recv(a)], { default: flag });
    if (maybe.index === -1) expect(maybe.kind).toBe('default');
    else throw new Error('nothing was ready');
    await a.sendAsync(1);
    expect(await selectAsync([recv(a)], { default: true })).toMatchObject({ index: 0, value: 1 });
  });

  test('guards and null channels switch cases off without rebuilding the list', async () => {
    const a = chan<number>(4);
    const b = chan<number>(4);
    for (let i = 0; i < 4; i++) await a.sendAsync(i), await b.sendAsync(10 + i);
    const cases = [recv(a), recv(b)] as const;
    cases[0].when(false);
    for (let i = 0; i < 3; i++) expect((await selectAsync(cases)).index).toBe(1);
    when(true, cases[0]).when(true);
    cases[1].when(false);
    expect(await selectAsync(cases)).toMatchObject({ index: 0, value: 0 });
    expect((await selectAsync([recv(null), recv(b).when(true)])).index).toBe(1);
    expect(await selectAsync([recv(a).when(false), send(null, 1)], { default: true })).toEqual({ index: -1, kind: 'default' });
  });

  test('priority takes the first ready case; fair would not always', async () => {
    const chans = [chan<number>(1), chan<number>(1), chan<number>(1)];
    for (const c of chans) await c.sendAsync(1);
    const cases = chans.map((c) => recv(c));
    for (let i = 0; i < 200; i++) {
      const r = await selectAsync(cases, { priority: true });
      expect(r.index).toBe(0);
      await chans[0]!.sendAsync(1);
    }
    cases[0]!.when(false);
    expect((await selectAsync(cases, { priority: true })).index).toBe(1);
  });

  test('timeout and abort end a select with nothing left registered', async () => {
    const a = chan<number>();
    await expect(selectAsync([recv(a)], { timeout: 20 })).rejects.toBeInstanceOf(TimeoutError);
    expect(a.waitingReceivers).toBe(0);
    const ctl = new AbortController();
    const p = selectAsync([recv(a), send(a, 5)], { signal: ctl.signal });
    await until(() => a.waitingReceivers === 1 && a.waitingSenders === 1, 'select to park');
    ctl.abort(new Error('stop'));
    const err = await watchdog(p, 'aborted select').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect([a.waitingReceivers, a.waitingSenders]).toEqual([0, 0]);
    expect(checkInvariants(a)).toEqual([]);
  });

  test('a signal aborted already: no case fires, however many are ready', async () => {
    const ch = chan<number>(1);
    const out = chan<string>(1);
    await ch.sendAsync(7);
    const signal = AbortSignal.abort('stop');
    await expect(selectAsync([recv(ch), send(out, 'x')], { signal })).rejects.toBeInstanceOf(AbortError);
    await expect(selectAsync([recv(ch)], { signal, default: true })).rejects.toBeInstanceOf(AbortError);
    expect([ch.len, out.len]).toEqual([1, 0]); // nothing taken, nothing sent
    expect(await ch.recvAsync()).toBe(7);
  });

  test('options that are not what they say are refused before anything is offered or taken', async () => {
    const ch = chan<number>(1);
    const bogus = [{ signal: { aborted: false } }, { signal: null }, { timeout: 'x' }, { timeout: Number.NaN }] as never[];
    for (const opts of bogus) {
      await expect(selectAsync([recv(ch), send(ch, 1)], opts)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(ch.sendAsync(1, opts)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(ch.recvAsync(opts)).rejects.toBeInstanceOf(InvalidArgumentError);
      expect([ch.len, ch.waitingReceivers, ch.waitingSenders]).toEqual([0, 0, 0]); // (room for the value: not sent)
    }
    expect(checkInvariants(ch)).toEqual([]);
    // Something that is not a case, among cases: refused as such, and the send case's value freed.
    const out = chan<number>(1);
    await expect(selectAsync([send(out, 1), { kind: 'recv' } as never])).rejects.toThrow(/select case 1 is not a case/);
    await expect(selectAsync([send(out, 1), null as never])).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(out.len).toBe(0);
  });

  test('bad input: an empty select, a select that can never fire, a bad timer, a wrong end, a released handle', async () => {
    await expect(selectAsync([])).rejects.toBeInstanceOf(EmptySelectError);
    await expect(selectAsync([recv(chan()).when(false), never()])).rejects.toMatchObject({ code: 'ERR_EMPTY_SELECT' });
    expect(await selectAsync([], { default: true })).toEqual({ index: -1, kind: 'default' });
    expect(() => after(-1)).toThrow(InvalidArgumentError);
    expect(() => tick(0)).toThrow(InvalidArgumentError);
    expect(() => recv(chan<number>().sender() as never)).toThrow(WrongDirectionError);
    expect(() => recv({} as never)).toThrow(InvalidArgumentError);
    const c = chan<number>(1);
    const cases = [recv(c)];
    c.release();
    await expect(selectAsync(cases, { default: true })).rejects.toBeInstanceOf(InvalidHandleError);
    expect(() => select([recv(chan<number>(1))])).toThrow(SyncOnMainError);
  });

  test('a send case with an unsendable value fails before anything is offered, and frees the other cases values', async () => {
    const a = chan<unknown>(1);
    const b = chan<unknown>(1);
    const before = heapUsage().bump;
    for (let i = 0; i < 50; i++) {
      await expect(selectAsync([send(a, { s: 'y'.repeat(10_000) }), send(b, () => 1)])).rejects.toBeInstanceOf(NotSendableError);
    }
    expect(a.len + b.len).toBe(0);
    expect(heapUsage().bump - before).toBeLessThan(100_000);
  });

  test('a send case offers one value at a time: twice in one select, or in two selects at once, is refused', async () => {
    const c = chan<object>(1);
    const s = send(c, { v: 'x'.repeat(100) });
    await expect(selectAsync([s, s])).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(c.len).toBe(0);
    const d = chan<object>();
    const s2 = send(d, { w: 1 });
    const first = selectAsync([s2]);
    await until(() => d.waitingSenders === 1, 'first select to park');
    await expect(selectAsync([s2])).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await watchdog(d.recvAsync(), 'receive the first offer')).toEqual({ w: 1 });
    expect(await first).toEqual({ index: 0, kind: 'send' });
    // Reusable once settled, and the delivered value was not freed under the receiver.
    expect(await selectAsync([s], { default: true })).toEqual({ index: 0, kind: 'send' });
    expect(await c.recvAsync()).toEqual({ v: 'x'.repeat(100) });
  });

  test('a handle released during an async select stays usable until the select ends', async () => {
    const base = liveChannels();
    const a = chan<number>();
    const other = a.sender();
    const p = selectAsync([recv(a)]);
    await until(() => a.waitingReceivers === 1, 'select to park');
    a.release();
    await watchdog(other.sendAsync(3), 'send');
    expect(await p).toMatchObject({ value: 3 });
    other.release();
    expect(liveChannels()).toBe(base);
  });
});

describe('exactly one case commits (real workers)', () => {
  test('doubleselect: selecting senders and receivers over shared rendezvous channels lose and duplicate nothing', async () => {
    const nChans = 3;
    const chans = Array.from({ length: nChans }, () => chan<Msg>());
    const senders = 3;
    const n = 400;
    const rx = [0, 1, 2].map(() => spawn<[number, number, number][]>(procs, 'selectReceiver', [chans]));
    const tx = Array.from({ length: senders }, (_, id) => spawn<number[]>(procs, 'selectSender', [chans, id, n, id === 0]));
    const used = await watchdog(Promise.all(tx.map((p) => p.join())), 'senders', 30_000);
    for (const c of chans) c.close();
    const got = (await watchdog(Promise.all(rx.map((p) => p.join())), 'receivers', 30_000)).flat();
    expect(got.length).toBe(senders * n);
    expect(new Set(got.map(([, s, q]) => `${s}:${q}`)).size).toBe(senders * n);
    // Each sender's select counted where its messages went; the receivers saw the same.
    for (let id = 0; id < senders; id++) {
      for (let k = 0; k < nChans; k++) {
        expect(got.filter(([c, s]) => c === k && s === id).length).toBe(used[id]![k]);
      }
    }
    for (const c of chans) expect(checkInvariants(c)).toEqual([]);
  });

  test('N processes each selecting {send c, recv c} on one rendezvous channel pair up; nobody gets its own value', async () => {
    for (let round = 0; round < 8; round++) {
      const c = chan<number>();
      const N = 6;
      const ps = Array.from({ length: N }, (_, id) => spawn<{ sent: boolean; got?: number }>(procs, 'sendOrRecv', [c, id]));
      const res = await watchdog(Promise.all(ps.map((p) => p.join())), `round ${round}`, 20_000);
      const senders = res.flatMap((r, id) => (r.sent ? [id] : []));
      const received = res.flatMap((r, id) => (r.sent ? [] : [[id, r.got!] as const]));
      expect(senders.length).toBe(N / 2);
      expect(received.map(([, v]) => v).sort()).toEqual(senders);
      for (const [id, v] of received) expect(v).not.toBe(id);
      expect([c.waitingSenders, c.waitingReceivers, c.len]).toEqual([0, 0, 0]);
      expect(checkInvariants(c)).toEqual([]);
    }
  });

  test('a select with a send and a receive on the same channel never pairs with itself', async () => {
    const c = chan<number>();
    const err = await selectAsync([send(c, 1), recv(c)], { timeout: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect([c.waitingSenders, c.waitingReceivers]).toEqual([0, 0]);
    // Buffered: room makes the send ready; a full buffer makes the receive ready.
    const b = chan<number>(1);
    expect(await selectAsync([send(b, 9), recv(b)])).toEqual({ index: 0, kind: 'send' });
    expect(await selectAsync([send(b, 10), recv(b)])).toEqual({ index: 1, kind: 'recv', ok: true, value: 9 });
  });

  test('a non-blocking select racing producers never takes default while a case was ready', async () => {
    for (const cap of [0, 1, 8]) {
      const chans = [chan<number>(cap), chan<number>(cap)];
      const n = 3000;
      const poller = spawn<{ wrongDefaults: number; got: number[][]; defaults: number }>(procs, 'pollAgainstProducer', [chans, cap === 0]);
      const prods = chans.map((c) => spawn(procs, 'produce', [c, n]));
      await watchdog(Promise.all(prods.map((p) => p.join())), `producers cap ${cap}`, 30_000);
      const r = await watchdog(poller.join(), `poller cap ${cap}`, 30_000);
      expect(r.wrongDefaults).toBe(0);
      const want = Array.from({ length: n }, (_, i) => i);
      expect(r.got).toEqual([want, want]);
    }
  });
});

/** The Hoeffding bound: |count − n·p| above this has probability below `delta`. */
function bound(n: number, delta: number): number {
  return Math.sqrt((n * Math.log(2 / delta)) / 2);
}

/** Checks that a sequence of choices among k always-ready cases looks uniform and independent. */
function uniformityProblems(seq: number[], k: number): string[] {
  const n = seq.length;
  const problems: string[] = [];
  const delta = 1e-6 / (k + 1); // p < 1e-6 for the whole check (union bound)
  const counts = new Array<number>(k).fill(0);
  for (const i of seq) counts[i]!++;
  counts.forEach((c, i) => {
    if (Math.abs(c - n / k) > bound(n, delta)) problems.push(`case ${i} fired ${c} times of ${n}`);
  });
  // With a uniform independent choice the same case repeats with probability 1/k; round-robin never repeats.
  let repeats = 0;
  for (let i = 1; i < n; i++) if (seq[i] === seq[i - 1]) repeats++;
  if (Math.abs(repeats - (n - 1) / k) > bound(n - 1, delta)) problems.push(`${repeats} repeats in ${n - 1} pairs`);
  return problems;
}

describe('choice policy', () => {
  test('the uniformity check rejects round-robin and a first-ready choice', () => {
    const k = 4;
    const n = 20_000;
    expect(uniformityProblems(Array.from({ length: n }, (_, i) => i % k), k).length).toBeGreaterThan(0);
    expect(uniformityProblems(new Array<number>(n).fill(0), k).length).toBeGreaterThan(0);
  });

  test('fair: with every case always ready, the choices are uniform and independent (p < 1e-6)', async () => {
    const k = 4;
    const chans = Array.from({ length: k }, () => chan<number>(1));
    for (const c of chans) await c.sendAsync(0);
    const cases = chans.map((c) => recv(c));
    const seq: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const r = await selectAsync(cases);
      seq.push(r.index);
      chans[r.index]!.trySend(0); // ready again
    }
    expect(uniformityProblems(seq, k)).toEqual([]);
  });
});

describe('timers', () => {
  test('after fires once; a select that gets a message first does not consume it', async () => {
    const c = chan<string>(1);
    await c.sendAsync('msg');
    const t = after(30);
    const t0 = performance.now();
    expect(await selectAsync([recv(c), t])).toMatchObject({ index: 0, value: 'msg' });
    const fired = await watchdog(selectAsync([recv(c), t]), 'after');
    expect(fired).toEqual({ index: 1, kind: 'timer', at: t.firedAt });
    if (fired.index !== 1) throw new Error('the timer should have fired'); // narrows the result type
    expect(performance.now()).toBeGreaterThanOrEqual(fired.at);
    expect(fired.at - t0).toBeGreaterThanOrEqual(29);
    expect(await selectAsync([t], { default: true })).toEqual({ index: -1, kind: 'default' });
    const s = after(5);
    s.stop();
    expect(await selectAsync([s], { timeout: 20 }).catch((e: unknown) => e)).toBeInstanceOf(TimeoutError);
  });

  test('a spent or stopped timer counts as switched off; a deadline stays ready once due', async () => {
    const t = after(1);
    expect((await watchdog(selectAsync([t]), 'after')).kind).toBe('timer');
    await expect(selectAsync([t])).rejects.toBeInstanceOf(EmptySelectError);
    const k = tick(5);
    k.stop();
    await expect(selectAsync([k, never()])).rejects.toBeInstanceOf(EmptySelectError);
    const d = deadline(10);
    const c = chan<number>(1);
    expect(await selectAsync([recv(c), d], { default: true })).toEqual({ index: -1, kind: 'default' });
    for (let i = 0; i < 3; i++) expect(await watchdog(selectAsync([recv(c), d]), 'deadline')).toMatchObject({ index: 1, at: d.deadline });
  });

  test('tick stays on its grid: late selects skip ticks but never shift the ones after', async () => {
    const period = 10;
    const t0 = performance.now();
    const t = tick(period);
    const at: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await watchdog(selectAsync([t]), 'tick');
      expect(performance.now()).toBeGreaterThanOrEqual(r.at);
      at.push(r.at);
      if (i === 5) {
        const until = performance.now() + 3.5 * period; // a slow body: misses three ticks
        while (performance.now() < until);
      }
    }
    const first = at[0]!;
    expect(first - t0).toBeGreaterThanOrEqual(period);
    for (const a of at) {
      const k = (a - first) / period;
      expect(Math.abs(k - Math.round(k))).toBeLessThan(1e-6); // on the grid start + k·period
    }
    for (let i = 1; i < at.length; i++) expect(at[i]!).toBeGreaterThan(at[i - 1]!);
    // The tick that came due during the slow body is delivered late (on its grid point, as Go's
    // one-slot ticker channel holds it); the ones missed after it are dropped.
    expect(Math.round((at[6]! - at[5]!) / period)).toBe(1);
    expect(Math.round((at[7]! - at[6]!) / period)).toBeGreaterThanOrEqual(3);
  });

  test('timers in a worker (sync select): after loses to a message, then fires; ticks stay on the grid', async () => {
    const c = chan<string>(1);
    await c.sendAsync('first');
    const r = await watchdog(
      spawn<{ first: string; later: string; spent: string; ticks: number[]; lateBy: number[] }>(procs, 'timersInWorker', [c, 10, 8]).join(),
      'timers in a worker',
    );
    expect([r.first, r.later, r.spent]).toEqual(['recv', 'timer', 'default']);
    for (let i = 1; i < r.ticks.length; i++) {
      const k = (r.ticks[i]! - r.ticks[0]!) / 10;
      expect(Math.abs(k - Math.round(k))).toBeLessThan(1e-6);
      expect(Math.round(k)).toBeGreaterThanOrEqual(i);
    }
    for (const late of r.lateBy) expect(late).toBeGreaterThanOrEqual(0);
  });

  test('a select sleeping on a timer uses no CPU meanwhile', async () => {
    const cpu = await watchdog(spawn<number>(procs, 'sleepInSelect', [300]).join(), 'sleep');
    // Spinning for the whole wait would cost about 300 ms of CPU.
    expect(cpu).toBeLessThan(100);
  });

  test('a sync select in a worker honours timeout and an aborted signal', async () => {
    const c = chan<number>();
    expect(await spawn(procs, 'selectWithTimeout', [c, 20]).join()).toBe('ERR_TIMEOUT');
    expect(await spawn(procs, 'selectAborted', [c]).join()).toBe('ERR_ABORTED');
    expect(c.waitingReceivers).toBe(0);
  });
});
