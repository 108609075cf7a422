import { afterEach, describe, expect, test } from 'vitest';
import { chan, liveChannels, PeerDiedError, spawn, waitReport, type Channel, type Process } from '@occam/core';
import { endUsers, lockState, setFault, threadStats } from '@occam/core/testing';
import { recv, selectAsync, send } from '@occam/select';
import type { Death, Ending } from './fixtures/death-procs.js';
import { runFixture, settledLiveChannels, until, watchdog } from './helpers.js';

const procs = new URL('./fixtures/death-procs.ts', import.meta.url);
const OOM = { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 };

/** Starts a process that dies as `how` says, holding `end`; ends it (terminate) if it must be killed. */
function dying(end: unknown, how: Death, sendFirst = 0): { proc: Process; kill: () => Promise<void> } {
  const gate = chan<number>();
  const proc = spawn(procs, 'die', [end, how, gate.receiver(), sendFirst], {
    name: `dies-by-${how}`,
    ...(how === 'oom' ? { resourceLimits: OOM } : {}),
  });
  return {
    proc,
    kill: async () => {
      if (how === 'terminate') {
        await until(() => gate.waitingReceivers === 1, 'the dying process to park');
        await proc.terminate();
      }
    },
  };
}

afterEach(() => setFault(null));

describe('a process that dies releases its peers with ERR_PEER_DIED', () => {
  const deaths: Death[] = ['throw', 'exit', 'oom', 'terminate', 'stack', 'rejection'];
  for (const how of deaths) {
    test(`a receiver parked in sync recv is woken when its only sender dies (${how})`, async () => {
      const ch = chan<number>(0, { name: 'work' });
      const receiver = spawn<Ending>(procs, 'recvOnce', [ch.receiver()]);
      await until(() => ch.waitingReceivers === 1, 'the receiver to park');
      const d = dying(ch.sender(), how);
      await d.kill();
      const died = Date.now();
      await expect(watchdog(d.proc.join(), 'the dying process')).rejects.toThrow();
      const r = await watchdog(receiver.join(), 'the parked receiver', 2000);
      expect(Date.now() - died).toBeLessThan(1000);
      expect(r.code).toBe('ERR_PEER_DIED');
      expect(r.message).toContain(`dies-by-${how}`);
      expect(r.message).toContain('work');
    });
  }

  test('a busy main thread does not delay it: the supervisor releases the peer meanwhile', async () => {
    const ch = chan<number>();
    const report = chan<string>(1);
    const receiver = spawn(procs, 'recvAndReport', [ch.receiver(), report.sender()]);
    await until(() => ch.waitingReceivers === 1, 'the receiver to park');
    const d = dying(ch.sender(), 'exit-later');
    // The receiver parked (not spinning), so a running thread is the dying one, in its last 150 ms.
    await until(() => waitReport().length === 1 && threadStats().running >= 1, 'the dying process to start');
    // Main now runs without yielding: no event of its own (exit, message) can be handled.
    const start = Date.now();
    while (report.len === 0 && Date.now() - start < 3000);
    const took = Date.now() - start;
    expect(report.len).toBe(1);
    expect(took).toBeLessThan(1000);
    expect(await report.recvAsync()).toBe('ERR_PEER_DIED');
    await watchdog(receiver.join(), 'the receiver');
    await expect(watchdog(d.proc.join(), 'the dying process')).rejects.toThrow(/exit code 4/);
  });

  test('a sender parked in sync send is woken when its only receiver dies', async () => {
    const ch = chan<number>(1);
    const sender = spawn<Ending>(procs, 'sendOnce', [ch.sender(), 2]);
    ch.trySend(1).unwrap(); // full: the sender parks
    await until(() => ch.waitingSenders === 1, 'the sender to park');
    const d = dying(ch.receiver(), 'throw');
    await expect(watchdog(d.proc.join(), 'the dying process')).rejects.toThrow('this stage fails');
    const r = await watchdog(sender.join(), 'the parked sender');
    expect(r.code).toBe('ERR_PEER_DIED');
    expect(r.message).toContain('dies-by-throw');
    // A disconnected end is not a closed channel: it can still be closed (once), and drained.
    expect(() => ch.close()).not.toThrow();
    expect(ch.closed).toBe(true);
    expect(() => ch.close()).toThrow(/already closed/);
    expect(await ch.recvAsync()).toBe(1);
  });

  test('a two-way handle makes a process a user of an end from its first use of it', async () => {
    const ch = chan<number>();
    const receiver = spawn<{ got: number[]; then: Ending }>(procs, 'recvThenOnce', [ch, 2]);
    const d = dying(ch, 'exit', 2); // sends 0 and 1 on its two-way handle, then exits
    await expect(watchdog(d.proc.join(), 'the dying process')).rejects.toThrow();
    const r = await watchdog(receiver.join(), 'the receiver');
    expect(r.got).toEqual([0, 1]);
    expect(r.then.code).toBe('ERR_PEER_DIED');
  });

  test('a select waiting on a channel whose only sender died throws ERR_PEER_DIED', async () => {
    const a = chan<number>();
    const b = chan<number>();
    const selecting = spawn<Ending>(procs, 'selectTwo', [a.receiver(), b.receiver()]);
    await until(() => a.waitingReceivers === 1 && b.waitingReceivers === 1, 'the select to park');
    const d = dying(a.sender(), 'terminate');
    await d.kill();
    const r = await watchdog(selecting.join(), 'the select');
    expect(r.code).toBe('ERR_PEER_DIED');
    expect(b.waitingReceivers).toBe(0); // its other case was withdrawn
  });

  test('a select serves its ready cases before failing for a case whose peer died', async () => {
    const gone = chan<number>(0, { name: 'gone-in' });
    const noReader = chan<number>(0, { name: 'gone-out' });
    const live = chan<number>(1);
    for (const [end, name] of [[gone.sender(), 'sender'], [noReader.receiver(), 'receiver']] as const) {
      const d = dying(end, 'throw');
      await expect(watchdog(d.proc.join(), `the dying ${name}`)).rejects.toThrow();
    }
    // The fair order tries the dead case first about half the time: it must never win.
    for (let i = 0; i < 40; i++) {
      await live.sendAsync(i);
      const r = await watchdog(selectAsync([recv(gone), send(noReader, i), recv(live)]), 'the select');
      expect(r).toMatchObject({ index: 2, value: i });
    }
    // Nothing else ready: the dead case fails the select, and says which it is.
    const err = await watchdog(selectAsync([recv(live), recv(gone)]).catch((e: unknown) => e), 'the failing select');
    expect(err).toBeInstanceOf(PeerDiedError);
    expect((err as PeerDiedError).caseIndex).toBe(1);
    expect((err as Error).message).toContain('gone-in');
    const sendErr = await watchdog(selectAsync([send(noReader, 1)], { priority: true }).catch((e: unknown) => e), 'the send');
    expect(sendErr).toMatchObject({ code: 'ERR_PEER_DIED', caseIndex: 0 });
  });

  test('main waiting in recvAsync is released too, and a new sender reconnects the end', async () => {
    const ch = chan<number>();
    const pending = ch.recvAsync().then(
      (v) => v,
      (e: unknown) => e,
    );
    await until(() => ch.waitingReceivers === 1, 'main to wait');
    const d = dying(ch.sender(), 'throw');
    await expect(watchdog(d.proc.join(), 'the dying process')).rejects.toThrow();
    expect(await watchdog(pending, 'main recv')).toBeInstanceOf(PeerDiedError);
    // Disconnected: a receive that would wait fails at once, until a sender turns up.
    await expect(watchdog(ch.recvAsync(), 'a later recv')).rejects.toBeInstanceOf(PeerDiedError);
    const go = chan<number>();
    const sender = spawn(procs, 'sendWhenTold', [ch.sender(), go.receiver(), 9]);
    await until(() => go.waitingReceivers === 1, 'the new sender to hold its end');
    await go.sendAsync(0);
    expect(await watchdog(ch.recvAsync(), 'recv from the new sender')).toBe(9);
    await watchdog(sender.join(), 'the new sender');
  });

  for (const how of ['throw', 'terminate'] as const) {
    test(`a channel shared by many senders survives the death of one (${how})`, async () => {
      const ch = chan<number>();
      const go = chan<number>();
      const survivor = spawn(procs, 'sendWhenTold', [ch.sender(), go.receiver(), 42]);
      await until(() => go.waitingReceivers === 1, 'the surviving sender to hold its end');
      const pending = ch.recvAsync();
      const before = threadStats().slots;
      const d = dying(ch.sender(), how);
      await d.kill();
      await expect(watchdog(d.proc.join(), 'the dying process')).rejects.toThrow();
      // A process that threw gave its ends back before its join failed (its host lives on, and
      // may be a new one); a terminated one's thread was cleaned up after before terminate() returned.
      if (how === 'terminate') expect(threadStats().slots).toBeLessThanOrEqual(before);
      await go.sendAsync(0);
      expect(await watchdog(pending, 'the pending recv')).toBe(42);
      await watchdog(survivor.join(), 'the survivor');
    });
  }
});

test('a process that dies before the supervisor is up still releases its peer', () => {
  const r = runFixture('early-death-main.mjs');
  expect(r.signal, `the program hung:\n${r.stderr}`).toBeNull();
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { died: string; receiver: Ending };
  expect(out.died).toMatch(/exit code 3/);
  expect(out.receiver.code).toBe('ERR_PEER_DIED');
  expect(out.receiver.message).toContain('dies-early');
});

test('a send after a peer was terminated, or after its join failed, fails: it is never lost', () => {
  const r = runFixture('dead-peer-main.mjs');
  expect(r.signal, `the program hung:\n${r.stderr}`).toBeNull();
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { terminated: string; died: string; exited: string };
  expect(out.died).toBe('ERR_PROCESS_FAILED');
  expect(out).toMatchObject({ terminated: 'ERR_PEER_DIED', exited: 'ERR_PEER_DIED' });
});

test('main blocked on a lock that a worker died holding, before the supervisor is up, is released', () => {
  const r = runFixture('stuck-main.mjs');
  expect(r.signal, `the program hung:\n${r.stderr}`).toBeNull();
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { outcome: string; lock: string; ms: number };
  expect(out.outcome).toBe('ERR_PEER_DIED');
  expect(out.lock).toBe('broken');
  expect(out.ms).toBeLessThan(5000);
});

/** `proc` dies by `how`: it exits by itself, or main terminates it once it parks on `gate`. Its join rejects. */
async function seeDie(proc: Process<unknown>, how: 'exit' | 'terminate', gate: Channel<number>): Promise<void> {
  if (how === 'terminate') {
    await until(() => gate.waitingReceivers === 1, 'the process to park');
    await proc.terminate();
  }
  await expect(watchdog(proc.join(), 'the dying process')).rejects.toThrow();
}

/**
 * Runs `round` `rounds` times for each way of dying; then every channel the rounds made is freed
 * (the live count comes back to where it was), or the wait for `what` fails.
 */
async function expectFreedAfterDeaths(rounds: number, what: string, round: (how: 'exit' | 'terminate') => Promise<void>): Promise<void> {
  const before = await settledLiveChannels();
  for (const how of ['exit', 'terminate'] as const) for (let i = 0; i < rounds; i++) await round(how);
  await until(() => liveChannels() === before, what, 5000);
}

describe('peers hear of a death before whoever awaits it', () => {
  test('a process whose thread crashes (a timer throws): join rejects, then a send to it fails', async () => {
    for (let i = 0; i < 5; i++) {
      const ch = chan<number>(0, { name: 'to-crasher' });
      const p = spawn(procs, 'crashesFromTimer', [ch.receiver()], { name: 'crasher' });
      await expect(watchdog(p.join(), 'the crashing process')).rejects.toThrow(/boom from a timer/);
      await expect(watchdog(ch.sendAsync(1), 'a send to it')).rejects.toBeInstanceOf(PeerDiedError);
    }
  });

  test('terminate() called twice at once, or from inside a process, returns once the process is dead', async () => {
    for (let i = 0; i < 5; i++) {
      const ch = chan<number>(0, { name: 'to-parked' });
      const p = spawn(procs, 'recvOnce', [ch.receiver()], { name: 'parked' });
      await until(() => ch.waitingReceivers === 1, 'the receiver to park');
      const first = p.terminate();
      await p.terminate();
      await expect(watchdog(ch.sendAsync(1), 'a send to it')).rejects.toBeInstanceOf(PeerDiedError);
      await first;
    }
    for (let i = 0; i < 3; i++) {
      expect(await watchdog(spawn<string>(procs, 'terminatesChild').join(), 'a process terminating its child')).toBe('ERR_PEER_DIED');
    }
  });

  test('the channels a dead process was given are freed with it', async () => {
    await expectFreedAfterDeaths(4, 'the dead processes\' channels to be freed', async (how) => {
      const ch = chan<number>(2);
      const gate = chan<number>();
      const [tx, rx] = [ch.sender(), gate.receiver()];
      const proc = spawn(procs, 'die', [tx, how, rx, 0]);
      tx.release(); // (the process holds references of its own: its arguments')
      rx.release();
      await seeDie(proc, how, gate);
      ch.release();
      gate.release();
    });
  });

  test('the channels a dead process received, made or derived (not its arguments) are freed with it', async () => {
    await expectFreedAfterDeaths(3, 'the channels the dead processes held to be freed', async (how) => {
      const inbox = chan<Channel<number>>(1);
      const gate = chan<number>();
      const passed = chan<number>(2);
      await inbox.sendAsync(passed);
      passed.release(); // the message holds a reference of its own, which the process adopts
      const [rx, grx] = [inbox.receiver(), gate.receiver()];
      const p = spawn(procs, 'receivesAndDies', [rx, how, grx]);
      rx.release();
      grx.release();
      await seeDie(p, how, gate);
      inbox.release();
      gate.release();
    });
  });

  test('each reference is given back once: not again for a handle the process released, not lost for a repeated one', async () => {
    for (const how of ['park', 'exit'] as const) {
      const ch = chan<number>(4, { name: 'kept-by-main' });
      const gate = chan<number>();
      const p = spawn(procs, 'releasesThenDies', [ch, how, gate.receiver()]);
      if (how === 'park') {
        await until(() => gate.waitingReceivers === 1, 'the process to park');
        await p.terminate();
      }
      await expect(watchdog(p.join(), 'the process')).rejects.toThrow();
      // Main's handle still names a live channel: given back twice, it would be freed under it.
      await ch.sendAsync(7);
      const other = chan<number>(4);
      expect([ch.len, other.len]).toEqual([1, 0]);
      expect(await ch.recvAsync()).toBe(7);
      other.release();
      gate.release();
      ch.release();
    }
    const before = await settledLiveChannels();
    for (const shape of ['array', 'object', 'map'] as const) {
      const ch = chan<number>(1);
      const gate = chan<number>();
      const held = shape === 'array' ? [ch, ch] : shape === 'object' ? { a: ch, b: ch } : new Map([[1, ch]]);
      const rx = gate.receiver();
      const p = spawn(procs, 'holdsAndParks', [held, rx]);
      rx.release();
      await until(() => gate.waitingReceivers === 1, 'the process to park');
      await p.terminate();
      await expect(p.join()).rejects.toThrow();
      ch.release();
      gate.release();
    }
    await until(() => liveChannels() === before, 'every reference the dead processes held to be given back', 5000);
    // A release still waiting for an async op when the thread dies: main gives that one back too.
    const ch = chan<number>();
    const gate = chan<number>();
    const [rx, grx] = [ch.receiver(), gate.receiver()];
    const p = spawn(procs, 'releasesWhileWaiting', [rx, grx]);
    rx.release();
    grx.release();
    await until(() => gate.waitingReceivers === 1 && ch.waitingReceivers === 1, 'the process to wait');
    await p.terminate();
    ch.release();
    gate.release();
    await until(() => liveChannels() === before, 'the reference of a release that waited to be given back', 5000);
    // The same, with the process over meanwhile (the receive outlives it) and its thread ended later.
    const late = chan<number>();
    const lrx = late.receiver();
    expect(await watchdog(spawn<string>(procs, 'releasesWhileWaitingAndReturns', [lrx]).join(), 'the process')).toBe('returned');
    lrx.release();
    await until(() => late.waitingReceivers === 1, 'the receive that outlived its process');
    late.release();
    expect(await settledLiveChannels(), 'live channels once its host has ended').toBe(before); // (it ends the idle hosts)
  });
});

/** A send to `ch`, whose receiving end a dead process left with no user, fails naming it. */
async function expectSendFailsNaming(ch: Channel<number>, name: string): Promise<void> {
  const sent = await watchdog(ch.sendAsync(1).catch((e: unknown) => e), 'a send to the dead end');
  expect(sent).toBeInstanceOf(PeerDiedError);
  expect((sent as Error).message).toContain(name);
}

describe('users of channel ends', () => {
  test('a typed end counts as used by its process from the spawn, until the process ends', async () => {
    const ch = chan<number>(1);
    const go = chan<number>();
    const p = spawn(procs, 'sendWhenTold', [ch.sender(), go.receiver(), 3]);
    expect(endUsers(ch)).toEqual({ senders: 1, receivers: 0 }); // not started yet, already counted
    await until(() => go.waitingReceivers === 1, 'the process to start');
    expect(endUsers(ch)).toEqual({ senders: 1, receivers: 0 }); // handed over, not counted twice
    await go.sendAsync(0);
    await watchdog(p.join(), 'the process');
    expect(endUsers(ch)).toEqual({ senders: 0, receivers: 0 });
    expect(await ch.recvAsync()).toBe(3);
    expect(endUsers(ch).receivers).toBe(1); // main, for good
  });

  test('a worker that dies while it takes its arguments gives their references and typed ends back', async () => {
    const before = await settledLiveChannels();
    const ch = chan<number>(0, { name: 'taken' });
    const carrier = chan<Channel<number>>(1, { name: 'carrier' });
    const carried = chan<number>(1, { name: 'carried' });
    await carrier.sendAsync(carried); // a handle inside an argument's channel too
    carried.release();
    const [rx, crx] = [ch.receiver(), carrier.receiver()];
    setFault('die-adopting');
    const p = spawn(procs, 'recvOnce', [rx, crx], { name: 'taker' });
    rx.release();
    crx.release();
    await expect(watchdog(p.join(), 'the process that died taking its arguments')).rejects.toThrow(/exit code 73/);
    setFault(null);
    // Its end given back, and disconnected: it died having used it no more than one never started.
    expect(endUsers(ch).receivers).toBe(0);
    await expectSendFailsNaming(ch, 'taker');
    ch.release();
    carrier.release();
    await until(() => liveChannels() === before, "its arguments' references to come back", 5000);
  });

  test('a worker that dies after taking its arguments, before it hands over their typed ends, leaves no count behind', async () => {
    const before = await settledLiveChannels();
    const ch = chan<number>(0, { name: 'handed' });
    const rx = ch.receiver();
    setFault('die-handing-over');
    const p = spawn(procs, 'recvOnce', [rx], { name: 'hander' });
    rx.release();
    await expect(watchdog(p.join(), 'the process that died handing over its ends')).rejects.toThrow(/exit code 74/);
    setFault(null);
    // Its own use (counted as it adopted the end) and its spawner's count both given back.
    expect(endUsers(ch).receivers).toBe(0);
    await expectSendFailsNaming(ch, 'hander');
    ch.release();
    await until(() => liveChannels() === before, "its arguments' references to come back", 5000);
  });

  test('a process terminated before it starts gives its typed ends back', async () => {
    const ch = chan<number>();
    const p = spawn(procs, 'recvOnce', [ch.receiver()]);
    expect(endUsers(ch).receivers).toBe(1);
    await p.terminate();
    // Given back, and the end disconnected, before terminate() returns: it died unused.
    expect(endUsers(ch).receivers).toBe(0);
    await expect(watchdog(p.join(), 'the terminated process')).rejects.toThrow(/terminated/);
    await expectSendFailsNaming(ch, p.name);
  });

  test('a two-way handle counts only the ends a process uses', async () => {
    const ch = chan<number>();
    const receiver = spawn<Ending>(procs, 'recvOnce', [ch]);
    await until(() => ch.waitingReceivers === 1, 'the receiver to park');
    expect(endUsers(ch)).toEqual({ senders: 0, receivers: 1 });
    await ch.sendAsync(1);
    expect((await watchdog(receiver.join(), 'the receiver')).value).toBe(1);
    expect(endUsers(ch)).toEqual({ senders: 1, receivers: 0 });
  });
});

describe('a process that dies inside a channel operation', () => {
  test('a worker terminated while holding a channel lock breaks that channel: nothing is left wedged', async () => {
    const ch = chan<number>(2, { name: 'wedged' });
    const parked = spawn<Ending>(procs, 'recvOnce', [ch.receiver()]);
    await until(() => ch.waitingReceivers === 1, 'a receiver to park first');
    const holder = spawn(procs, 'holdLockForever', [ch.receiver()], { name: 'lock-holder' });
    await until(() => lockState(ch) === 'held', 'the holder to take the lock');
    const late = spawn<Ending>(procs, 'recvOnce', [ch.receiver()]); // spins or parks on the held lock
    await holder.terminate();
    const [a, b] = await watchdog(Promise.all([parked.join(), late.join()]), 'the peers of the dead holder', 2000);
    for (const r of [a, b]) {
      expect(r.code).toBe('ERR_PEER_DIED');
      expect(r.message).toContain('lock-holder');
      expect(r.message).toContain('wedged is broken');
    }
    expect(lockState(ch)).toBe('broken');
    await expect(ch.sendAsync(1)).rejects.toBeInstanceOf(PeerDiedError);
    const tried = ch.trySend(1);
    expect(tried.isErr() && tried.error).toBeInstanceOf(PeerDiedError);
    await expect(selectAsync([recv(ch)])).rejects.toBeInstanceOf(PeerDiedError);
    expect(() => ch.poison()).not.toThrow(); // harmless, as poisoning twice is
    // In a select, the broken case fails it only when no other case is ready, and says which.
    const live = chan<number>(1);
    for (let i = 0; i < 20; i++) {
      await live.sendAsync(i);
      expect(await selectAsync([recv(ch), recv(live)])).toMatchObject({ index: 1, value: i });
    }
    await expect(selectAsync([recv(live), recv(ch)])).rejects.toMatchObject({ code: 'ERR_PEER_DIED', caseIndex: 1 });
  });

  test('a worker that dies while it settles its process (claimed, result not stored): join still fails, references come back', async () => {
    const before = await settledLiveChannels();
    const ch = chan<number>(1);
    const tx = ch.sender();
    setFault('die-settling');
    const p = spawn<Ending>(procs, 'sendOnce', [tx, 5], { name: 'settler' });
    tx.release();
    await expect(watchdog(p.join(), 'the process that died settling')).rejects.toThrow(/exit code 71/);
    setFault(null);
    expect(await ch.recvAsync()).toBe(5); // (what it did before stays done)
    ch.release();
    await until(() => liveChannels() === before, 'its argument\'s reference to come back', 5000);
  });

  test('a worker that dies holding a claim on a parked receiver fails that receive', async () => {
    const ch = chan<number>(0, { name: 'handoff' });
    const parked = spawn<Ending>(procs, 'recvOnce', [ch.receiver()]);
    await until(() => ch.waitingReceivers === 1, 'the receiver to park');
    setFault('die-claiming');
    const sender = spawn<Ending>(procs, 'sendOnce', [ch.sender(), 5], { name: 'claimer' });
    await expect(watchdog(sender.join(), 'the claiming sender')).rejects.toThrow(/exit code 70/);
    setFault(null);
    const r = await watchdog(parked.join(), 'the claimed receiver', 2000);
    expect(r.code).toBe('ERR_PEER_DIED');
    expect(r.message, r.message).toContain('claimer');
  });

  test('a value handed to a receiver that dies before taking it is freed, and the channel reference in it given back', async () => {
    const before = await settledLiveChannels();
    const carrier = chan<{ inner: Channel<number> }>(0, { name: 'carrier' });
    const inner = chan<number>(0, { name: 'inner' });
    const rx = carrier.receiver();
    const taker = spawn<Ending>(procs, 'recvOnce', [rx], { name: 'taker' });
    rx.release();
    await until(() => carrier.waitingReceivers === 1, 'the receiver to park');
    setFault('die-concluding');
    // Handed to the parked receiver (the send is done), which dies before it takes the value.
    await watchdog(carrier.sendAsync({ inner }), 'the hand-over');
    await expect(watchdog(taker.join(), 'the receiver that died')).rejects.toThrow(/exit code 72/);
    setFault(null);
    inner.release();
    carrier.release();
    await until(() => liveChannels() === before, "the value's reference to inner to be given back", 5000);
  });

  test('a value offered by a sender that dies parked is freed, and the channel reference in it given back', async () => {
    const before = await settledLiveChannels();
    const ch = chan<unknown>(0, { name: 'offers' });
    const inner = chan<number>(0, { name: 'inner' });
    const tx = ch.sender();
    const offerer = spawn<Ending>(procs, 'sendOnce', [tx, { inner }], { name: 'offerer' });
    tx.release();
    await until(() => ch.waitingSenders === 1, 'the sender to park');
    await watchdog(offerer.terminate(), 'terminate');
    await expect(offerer.join()).rejects.toThrow(/terminated/);
    expect(ch.waitingSenders).toBe(0);
    inner.release();
    ch.release();
    await until(() => liveChannels() === before, "the offered value's reference to inner to be given back", 5000);
  });
});
