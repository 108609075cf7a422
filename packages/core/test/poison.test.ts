/**
 * Poison: every pending and later op on a poisoned channel fails at once, at both ends and in
 * selects; processes can pass the poison on, so a network shuts down from one edge.
 */
import { describe, expect, test } from 'vitest';
import {
  ChannelClosedError,
  ChannelPoisonedError,
  chan,
  par,
  poison,
  ProcessFailedError,
  spawn,
  withPoison,
  type Channel,
} from '@occam/core';
import { checkInvariants, heapUsage } from '@occam/core/testing';
import { recv, selectAsync, send } from '@occam/select';
import { until, watchdog } from './helpers.js';

const procs = new URL('./fixtures/poison-procs.ts', import.meta.url);

describe('poison', () => {
  test('wakes workers parked in sync send, recv and select, each with ERR_CHANNEL_POISONED', async () => {
    for (const op of ['send', 'recv', 'select'] as const) {
      const ch = chan<number>();
      const p = spawn<string>(procs, 'blockOnce', [ch, op]);
      await until(() => ch.waitingSenders + ch.waitingReceivers === 1, `${op} to park`);
      ch.poison();
      expect(await watchdog(p.join(), `${op} after poison`)).toBe('ERR_CHANNEL_POISONED');
      expect(checkInvariants(ch)).toEqual([]);
    }
  });

  test('fails pending async ops and selects on main, at both ends, and every later op', async () => {
    const a = chan<number>();
    const b = chan<number>();
    const r = a.recvAsync();
    const s = b.sendAsync(1);
    const sel = selectAsync([recv(a), send(b, 2)]);
    await until(() => a.waitingReceivers === 2 && b.waitingSenders === 2, 'all to park');
    poison(a, b);
    await expect(watchdog(r, 'recv')).rejects.toBeInstanceOf(ChannelPoisonedError);
    await expect(watchdog(s, 'send')).rejects.toBeInstanceOf(ChannelPoisonedError);
    await expect(watchdog(sel, 'select')).rejects.toBeInstanceOf(ChannelPoisonedError);
    await expect(a.sendAsync(3)).rejects.toMatchObject({ code: 'ERR_CHANNEL_POISONED' });
    const tr = a.tryRecv();
    const ts = b.trySend(4);
    expect(tr.isErr() ? tr.error : tr.value).toBeInstanceOf(ChannelPoisonedError);
    expect(ts.isErr() ? ts.error : 'sent').toBeInstanceOf(ChannelPoisonedError);
    expect([a.poisoned, b.poisoned, a.closed]).toEqual([true, true, false]);
    expect([a.waitingReceivers, b.waitingSenders]).toEqual([0, 0]);
  });

  test('drops buffered values (freeing them), is harmless twice, and outranks close', async () => {
    const ch = chan<object>(64);
    const before = heapUsage().bump;
    for (let round = 0; round < 20; round++) {
      const c = round === 0 ? ch : chan<object>(64);
      for (let i = 0; i < 64; i++) await c.sendAsync({ blob: 'z'.repeat(2000), i });
      c.poison();
      c.poison(); // harmless, and never blocks
      expect(c.len).toBe(0);
      await expect(c.recvAsync()).rejects.toBeInstanceOf(ChannelPoisonedError);
      expect(() => c.close()).toThrow(ChannelPoisonedError);
      c.release();
    }
    // 20 × 64 × 2 kB stayed behind if dropped values were not freed.
    expect(heapUsage().bump - before).toBeLessThan(1_000_000);
    const closed = chan<number>(2);
    await closed.sendAsync(1);
    closed.close();
    closed.poison(); // a closed channel can still be poisoned: its buffer is dropped
    await expect(closed.recvAsync()).rejects.toBeInstanceOf(ChannelPoisonedError);
    expect(() => closed.close()).toThrow(ChannelPoisonedError);
    const fresh = chan<number>();
    fresh.close();
    expect(() => fresh.close()).toThrow(ChannelClosedError);
  });

  test('a for-of over a poisoned channel throws instead of ending', async () => {
    const ch = chan<number>(4);
    await ch.sendAsync(1);
    ch.poison();
    const seen: number[] = [];
    const err = await (async () => {
      for await (const v of ch) seen.push(v);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelPoisonedError);
    expect(seen).toEqual([]);
  });

  test('propagates through a 5-stage pipeline from its source: every stage ends by poison, none is terminated', async () => {
    const chans: Channel<number>[] = Array.from({ length: 6 }, (_, i) => chan<number>(i % 2 === 0 ? 0 : 8, { name: `c${i}` }));
    const stages = [0, 1, 2, 3, 4].map((i) =>
      spawn<number>(procs, 'stage', [chans[i]!.receiver(), chans[i + 1]!.sender()], { name: `stage${i}`, propagatePoison: true }),
    );
    const sink = spawn<number>(procs, 'sink', [chans[5]!.receiver()], { name: 'sink', propagatePoison: true });
    for (let i = 0; i < 100; i++) await watchdog(chans[0]!.sendAsync(i), 'feed the pipeline');
    chans[0]!.poison(); // the edge
    const err = await watchdog(par(...stages, sink), 'the pipeline to shut down').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelPoisonedError);
    for (const p of [...stages, sink]) {
      const e = await p.join().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ChannelPoisonedError); // ended by poison, not ProcessFailedError (terminated)
    }
    expect(chans.every((c) => c.poisoned)).toBe(true);
  });

  test('propagates upstream too: poisoning the sink end stops the source', async () => {
    const a = chan<number>();
    const b = chan<number>(4);
    const src = spawn(procs, 'source', [a.sender()], { propagatePoison: true });
    const mid = spawn(procs, 'stage', [a.receiver(), b.sender()], { propagatePoison: true });
    for (let i = 0; i < 10; i++) expect(await watchdog(b.recvAsync(), 'values')).toBe(i + 1);
    b.poison();
    await expect(watchdog(par(src, mid), 'shutdown')).rejects.toBeInstanceOf(ChannelPoisonedError);
    expect(a.poisoned).toBe(true);
  });

  test('without propagatePoison, a process ending by poison leaves its other channels alone', async () => {
    const a = chan<number>();
    const b = chan<number>(4);
    const mid = spawn(procs, 'stage', [a.receiver(), b.sender()]);
    a.poison();
    await expect(watchdog(mid.join(), 'stage')).rejects.toBeInstanceOf(ChannelPoisonedError);
    expect(b.poisoned).toBe(false);
  });

  test('withPoison passes poison on, and only poison', async () => {
    const input = chan<number>();
    const also = chan<number>();
    input.poison();
    await expect(watchdog(spawn(procs, 'guarded', [input, also, false]).join(), 'guarded')).rejects.toBeInstanceOf(ChannelPoisonedError);
    expect(also.poisoned).toBe(true);
    const other = chan<number>();
    await expect(watchdog(spawn(procs, 'guarded', [chan<number>(), other, true]).join(), 'guarded')).rejects.toBeInstanceOf(RangeError);
    expect(other.poisoned).toBe(false);
    // On main, with an async body.
    const x = chan<number>();
    const y = chan<number>();
    x.poison();
    await expect(withPoison([y], () => x.recvAsync())).rejects.toBeInstanceOf(ChannelPoisonedError);
    expect(y.poisoned).toBe(true);
  });

  test('par still terminates the rest on a real failure', async () => {
    const a = chan<number>();
    const stuck = spawn(procs, 'sink', [a.receiver()]);
    const failing = spawn(procs, 'guarded', [chan<number>(), chan<number>(), true]);
    await expect(watchdog(par(stuck, failing), 'par')).rejects.toBeInstanceOf(RangeError);
    await expect(watchdog(stuck.join(), 'terminated')).rejects.toBeInstanceOf(ProcessFailedError);
  });
});

describe('poisonOnDeath', () => {
  test('a process that throws, rejects, exits or is terminated poisons its channels; its peers fail instead of hanging', async () => {
    for (const how of ['throw', 'reject', 'exit', 'block', 'exit', 'block'] as const) {
      const input = chan<number>();
      const out = chan<number>(0, { name: `out-${how}` });
      // (Its output a typed end: it is the end's only user, so its death also disconnects the end;
      // the poison must come first, whichever way it dies.)
      const p = spawn(procs, 'dies', [input, out.sender(), how], { poisonOnDeath: true, name: `dies-${how}` });
      // A peer waiting for the dying process's output.
      const peer = spawn<string>(procs, 'blockOnce', [out, 'recv']);
      await until(() => out.waitingReceivers === 1, `${how}: peer to park`);
      await input.sendAsync(1);
      if (how === 'block') {
        await until(() => input.waitingReceivers === 1, 'dying process to block');
        await p.terminate();
      }
      await expect(watchdog(p.join(), `${how}: join`)).rejects.toBeTruthy();
      expect(await watchdog(peer.join(), `${how}: peer`)).toBe('ERR_CHANNEL_POISONED');
      expect(out.poisoned).toBe(true);
    }
  });

  test('a process that runs out of memory poisons its channels too (its worker cannot: main does, before the supervisor disconnects them)', async () => {
    for (let round = 0; round < 4; round++) {
      const input = chan<number>();
      const out = chan<number>(0, { name: `out-oom-${round}` });
      const p = spawn(procs, 'dies', [input, out.sender(), 'oom'], {
        poisonOnDeath: true,
        name: `dies-oom-${round}`,
        resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
      });
      const peer = spawn<string>(procs, 'blockOnce', [out, 'recv']);
      await until(() => out.waitingReceivers === 1, 'peer to park');
      await input.sendAsync(1);
      await expect(watchdog(p.join(), 'join')).rejects.toBeTruthy();
      expect(await watchdog(peer.join(), 'peer')).toBe('ERR_CHANNEL_POISONED');
      expect(out.poisoned).toBe(true);
    }
  });

  test('a process that returns normally leaves its channels alone', async () => {
    const c = chan<number>(2);
    const p = spawn(procs, 'source', [c], { poisonOnDeath: true });
    expect(await watchdog(c.recvAsync(), 'a value')).toBe(0);
    c.poison(); // ends by poison: passed on or not as the process chose, not poisoned again
    await expect(watchdog(p.join(), 'join')).rejects.toBeInstanceOf(ChannelPoisonedError);
    const d = chan<number>(1);
    const q = spawn(procs, 'blockOnce', [d, 'send'], { poisonOnDeath: true });
    expect(await watchdog(q.join(), 'join')).toBe('completed');
    expect(d.poisoned).toBe(false);
    expect(await d.recvAsync()).toBe(1);
  });
});
