import { describe, expect, test } from 'vitest';
import {
  ChannelClosedError,
  PeerDiedError,
  chan,
  InvalidArgumentError,
  InvalidHandleError,
  liveChannels,
  NotSendableError,
  par,
  ProcessFailedError,
  ProcessNotFoundError,
  processModule,
  RemoteError,
  spawn,
  TooManyThreadsError,
  waitReport,
  type Process,
} from '@occam/core';
import { heapUsage, setMaxThreads, threadStats } from '@occam/core/testing';
import { collectGarbage, until, watchdog } from './helpers.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { getEventListeners } from 'node:events';
import { join } from 'node:path';

/**
 * Resolves once `p` is parked (in the wait-for report), not merely queued: a process seen in a
 * channel's queue may still hold the channel's lock, and terminated there it would break it.
 */
function parked(p: Process<unknown>, what: string): Promise<void> {
  return until(() => waitReport().some((b) => b.process === p.name), what);
}

const fails = new URL('./fixtures/fail-procs.ts', import.meta.url);

describe('spawn and join', () => {
  test('join gives the return value; a typed helper checks names and arguments', async () => {
    const mod = processModule<typeof import('./fixtures/fail-procs.js')>(fails);
    const p = mod.spawn('add', [2, 3]);
    const sum: number = await watchdog(p.join(), 'add');
    expect(sum).toBe(5);
    expect(await p.join()).toBe(5); // a second join gives the same result
  });

  test('a thrown built-in error reaches join with its class, message and the remote stack', async () => {
    const err = await watchdog(spawn(fails, 'throwsTypeError').join(), 'join').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toBe('not a number: x');
    expect((err as Error).stack).toMatch(/throwsTypeError/);
  });

  test('a process module with top-level await runs (it is imported, where others are required)', async () => {
    const p = spawn<number>(new URL('./fixtures/tla-procs.ts', import.meta.url), 'theAnswer');
    expect(await watchdog(p.join(), 'join')).toBe(42);
  });

  test('a TypeScript process\'s stack names the line and column it was written at, on line 1 too', async () => {
    const src = new URL('./fixtures/line-one.ts', import.meta.url);
    const err = await watchdog(spawn(src, 'throwsOnLineOne').join(), 'join').catch((e: unknown) => e);
    const line = readFileSync(src, 'utf8').split('\n')[0]!;
    const column = line.indexOf('new Error') + 1;
    expect((err as Error).stack).toContain(`line-one.ts:1:${column})`);
  });

  test('an unregistered user error arrives as RemoteError with its name, code, stack and cause', async () => {
    const err = (await spawn(fails, 'throwsCustom').join().catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.name).toBe('BadInput');
    expect(err.code).toBe('E_BAD_INPUT');
    expect(err.stack).toMatch(/throwsCustom/);
    expect(err.cause).toBeInstanceOf(RangeError);
  });

  test("occam's own errors keep their class and code across processes", async () => {
    const ch = chan<number>();
    const err = await spawn(fails, 'throwsOccam', [ch]).join().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidHandleError);
    expect((err as InvalidHandleError).code).toBe('ERR_INVALID_HANDLE');
    const rej = await spawn(fails, 'rejects').join().catch((e: unknown) => e);
    expect(rej).toBeInstanceOf(ChannelClosedError);
  });

  test('a missing export fails with ERR_PROCESS_NOT_FOUND', async () => {
    const err = await spawn(fails, 'noSuchExport').join().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessNotFoundError);
  });

  test('process.exit in a process fails its join with ERR_PROCESS_FAILED, and spawning still works', async () => {
    const err = await watchdog(spawn(fails, 'exits', [3]).join(), 'exit').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessFailedError);
    expect(String((err as Error).message)).toMatch(/exit code 3/);
    expect(await spawn(fails, 'add', [1, 1]).join()).toBe(2);
  });

  test("a process's stdin is ended, as in any worker (on a fresh host and on a warm one)", async () => {
    expect(await watchdog(spawn(fails, 'readsStdin').join(), 'reading stdin (fresh host)')).toBe(0);
    expect(await watchdog(spawn(fails, 'readsStdin').join(), 'reading stdin again (warm host)')).toBe(0);
  });

  test('a return value that cannot be sent fails the join with ERR_NOT_SENDABLE', async () => {
    const err = await spawn(fails, 'returnsFunction').join().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotSendableError);
  });

  test('unsendable arguments fail at spawn, before anything starts', () => {
    expect(() => spawn(fails, 'add', [() => 1])).toThrow(NotSendableError);
  });

  test('a process spawned just after a terminate that met its end never lands on the dying worker', async () => {
    // The terminated process is returning as it is stopped: its host's "idle" report crosses the
    // terminate. That host must not be handed the next process.
    let failed = 0;
    for (let i = 0; i < 150; i++) {
      const p = spawn(fails, 'spin', [5]);
      await new Promise((r) => setTimeout(r, 4 + (i % 5) * 0.5));
      const stopping = p.terminate();
      await new Promise((r) => setImmediate(r));
      const q = spawn<number>(fails, 'add', [i, 1]);
      if ((await watchdog(q.join(), 'a fresh process').catch(() => -1)) !== i + 1) failed++;
      await watchdog(stopping, `terminate ${i}`);
      await watchdog(p.join().catch(() => undefined), `the join of the process terminated in round ${i}`);
    }
    expect(failed).toBe(0);
  });

  test('terminate stops a process blocked in recv; join rejects', async () => {
    const ch = chan<number>();
    const p = spawn(fails, 'blockForever', [ch]);
    await until(() => ch.waitingReceivers === 1, 'the process to block');
    await watchdog(p.terminate(), 'terminate');
    await expect(watchdog(p.join(), 'join')).rejects.toBeInstanceOf(ProcessFailedError);
  });

  test('a terminated worker gives back its thread slot and its running count', async () => {
    // Nothing runs between tests, but a thread the last test terminated counts (it may have died
    // spinning) until the supervisor has reaped it: wait for that first.
    await until(() => threadStats().running === 0, 'the last test’s threads to be reaped');
    await spawn(fails, 'add', [1, 2]).join(); // the supervisor's slot is taken by now
    await until(() => threadStats().running === 0, 'the host to finish its process');
    const before = threadStats();
    const ch = chan<number>();
    const p = spawn(fails, 'blockForever', [ch]);
    await parked(p, 'the process to block');
    await watchdog(p.terminate(), 'terminate');
    await until(() => threadStats().slots <= before.slots, 'the dead worker slot to be freed');
    expect(threadStats().running).toBe(before.running);
  });

  for (const cap of [0, 4]) {
    test(`a terminated process's parked receive is withdrawn: no later send is lost to it (capacity ${cap})`, async () => {
      const ch = chan<number>(cap);
      const p = spawn(fails, 'blockForever', [ch]);
      await parked(p, 'the process to park in recv');
      await watchdog(p.terminate(), 'terminate');
      await until(() => ch.waitingReceivers === 0, 'the dead receiver to be withdrawn');
      if (cap === 0) {
        // Nobody there to take it, and its only receiver died: the end is disconnected.
        const r = ch.trySend(1);
        expect(r.isErr() && r.error).toBeInstanceOf(PeerDiedError);
        expect(r.isErr() && r.error.message).toContain(p.name);
      } else {
        await ch.sendAsync(7);
        expect(ch.len).toBe(1); // buffered, not handed to the dead receiver
        expect(await ch.recvAsync()).toBe(7);
      }
    });
  }

  test('a worker that finds every thread slot taken fails its process with ERR_TOO_MANY_THREADS', async () => {
    // A host of its own kind (other resource limits): a new worker must join the runtime.
    const own = { resourceLimits: { maxOldGenerationSizeMb: 96 } };
    setMaxThreads(threadStats().slots); // the slots in use now are all there are
    try {
      const e = await watchdog(spawn(fails, 'add', [1, 2], own).join(), 'the process without a slot').catch((x: unknown) => x);
      expect(e).toBeInstanceOf(TooManyThreadsError);
      expect((e as TooManyThreadsError).code).toBe('ERR_TOO_MANY_THREADS');
    } finally {
      setMaxThreads(0);
    }
    expect(await watchdog(spawn(fails, 'add', [1, 2], own).join(), 'the same spawn with slots to spare')).toBe(3);
  });

  test('processes spawn processes (joined synchronously inside a worker)', async () => {
    expect(await watchdog(spawn(fails, 'spawnsChild', [5]).join(), 'nested spawn')).toBe(106);
  });

  test('an AbortSignal given to spawn terminates the process', async () => {
    const ch = chan<number>();
    const ac = new AbortController();
    const p = spawn(fails, 'blockForever', [ch], { signal: ac.signal });
    await until(() => ch.waitingReceivers === 1, 'the process to block');
    ac.abort();
    await expect(watchdog(p.join(), 'join')).rejects.toBeInstanceOf(ProcessFailedError);
  });
});

describe('joins and options', () => {
  const deathProcs = new URL('./fixtures/death-procs.ts', import.meta.url);
  test('join() left pending while joinSync() settles the same process: both give its result, once', async () => {
    const r = await watchdog(spawn<number[][]>(deathProcs, 'joinBoth', [4]).join(), 'the joining process');
    expect(r).toEqual([0, 1, 2, 3].map((i) => [i, i]));
  });

  test('a start that comes after its process was terminated, and its record reused, does nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'occam-stale-'));
    try {
      for (let i = 0; i < 3; i++) {
        const file = join(dir, `slow${i}.ts`); // compiled on first spawn: the start comes late
        writeFileSync(file, 'export function first(): string {\n  return "first ran";\n}\n');
        const p = spawn(file, 'first');
        await p.terminate();
        await expect(p.join()).rejects.toThrow(/terminated/);
        const q = spawn<number>(fails, 'add', [i, 1]); // likely on p's record
        expect(await watchdog(q.join(), 'the next process')).toBe(i + 1);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('spawn options that are not what they say are refused before anything starts', () => {
    const live = liveChannels();
    const ch = chan<number>();
    for (const opts of [{ signal: null }, { signal: 'soon' }, { name: 5 }, { resourceLimits: 1 }, null]) {
      expect(() => spawn(fails, 'add', [ch, 1], opts as never)).toThrow(InvalidArgumentError);
    }
    ch.release();
    expect(liveChannels()).toBe(live);
  });

  test('a process nobody joins has its record and result freed once its handle is gone', async () => {
    const done = chan<number>(64);
    const batch = async (): Promise<number> => {
      for (let i = 0; i < 40; i++) spawn(fails, 'bigResult', [done.sender(), 20_000]); // handles dropped
      for (let i = 0; i < 40; i++) await watchdog(done.recvAsync(), 'a process to run');
      await new Promise((r) => setTimeout(r, 20)); // (they return just after telling us)
      collectGarbage();
      await new Promise((r) => setTimeout(r, 20)); // finalizers run
      return heapUsage().bump;
    };
    const first = await batch();
    for (let k = 0; k < 3; k++) await batch();
    // Unfreed, three more batches would take 3 × 40 × 40 kB of results (UTF-16) more.
    expect(heapUsage().bump - first).toBeLessThan(1_000_000);
  });

  test('a signal that outlives its processes keeps no listener for them', async () => {
    const ac = new AbortController();
    for (let i = 0; i < 20; i++) await watchdog(spawn<number>(fails, 'add', [i, 1], { signal: ac.signal }).join(), 'a process');
    await until(() => getEventListeners(ac.signal, 'abort').length === 0, 'the listeners to go');
  });
});

describe('module paths', () => {
  test('an absolute path with characters a URL escapes (#, %, a space) names that file', async () => {
    const root = mkdtempSync(join(tmpdir(), 'occam-paths-'));
    try {
      const dirs = ['C#', '100%', 'a b', 'a%20b'];
      for (const d of dirs) {
        mkdirSync(join(root, d));
        writeFileSync(join(root, d, 'proc.mjs'), `export function where() { return ${JSON.stringify(d)}; }\n`);
      }
      for (const d of dirs) {
        expect(await watchdog(spawn<string>(join(root, d, 'proc.mjs'), 'where').join(), `the process in ${d}`)).toBe(d);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('process records', () => {
  test('concurrent joins share one result (the record is decoded and freed once)', async () => {
    const p = spawn<number>(fails, 'add', [20, 22]);
    expect(await watchdog(Promise.all([p.join(), p.join(), par(p)]), 'joins')).toEqual([42, 42, [42]]);
  });

  test('arguments of a process that never started are released (their channels are freed)', async () => {
    const before = liveChannels();
    const ch = chan<number>();
    const p = spawn(new URL('./fixtures/no-such-module.ts', import.meta.url), 'f', [ch]);
    ch.release();
    await expect(watchdog(p.join(), 'join')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(liveChannels()).toBe(before);
  });

  test('a process lets go of the channels its arguments brought when it ends (a host may never collect garbage)', async () => {
    const before = liveChannels();
    const chanProcs = new URL('./fixtures/chan-procs.ts', import.meta.url);
    for (let i = 0; i < 5; i++) {
      const ch = chan<number>(4);
      const rx = ch.receiver();
      ch.trySend(i).unwrap();
      expect(await watchdog(spawn<unknown[]>(chanProcs, 'recvN', [rx, 1]).join(), 'a process given a channel')).toEqual([i]);
      rx.release();
      ch.release();
    }
    await until(() => liveChannels() === before, 'the channels of ended processes to be freed', 5000);
  });

  test('a warm host runs a new process after the heap has grown', async () => {
    expect(await spawn<number>(fails, 'add', [1, 1]).join()).toBe(2);
    const grown = heapUsage().bytes;
    const big = chan<number>(200_000); // a 3 MB buffer: the heap grows past what the warm host mapped
    for (let i = 0; i < 10; i++) big.trySend(i).unwrap();
    expect(heapUsage().bytes).toBeGreaterThan(grown);
    expect(await watchdog(spawn<number>(fails, 'add', [2, 2]).join(), 'spawn after growth')).toBe(4);
    big.release();
  });
});

describe('par', () => {
  test('joins a group and gives results in order', async () => {
    const res = await watchdog(
      par(spawn<number>(fails, 'add', [1, 2]), spawn<number>(fails, 'add', [3, 4])),
      'par',
    );
    expect(res).toEqual([3, 7]);
  });

  test('on the first failure it stops the rest and rejects with that failure', async () => {
    const ch = chan<number>();
    const blocked = spawn(fails, 'blockForever', [ch]);
    await until(() => ch.waitingReceivers === 1, 'the blocked process to park');
    const err = await watchdog(par(blocked, spawn(fails, 'throwsTypeError')), 'par').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    await expect(watchdog(blocked.join(), 'blocked join')).rejects.toBeInstanceOf(ProcessFailedError);
  });
});
