/**
 * Lesson 17 — a program that seems stuck, and the limits a program can hit.
 *
 * What it does: starts a process that starts a child and waits for it (`joinSync`) while the
 * child waits for a value, reads the wait-for report as you would when a program seems stuck
 * (who waits on what, and who waits for whom), then lets it finish. Then it reaches, one by one,
 * the limits that stop an operation before it does anything: a handle used after it was
 * released, a message too large, too many operations waiting on one channel, too many threads.
 * Each is refused with an error of its own, and leaves the channel or the runtime as it was.
 *
 * What it introduces:
 *   - `waitReport()` while processes wait: a process parked in `joinSync` has `joins` (the
 *     process it waits for) instead of channel operations; `formatWaitReport()`.
 *   - InvalidHandleError (ERR_INVALID_HANDLE): a handle used after `release()`.
 *   - MessageTooLargeError (ERR_MESSAGE_TOO_LARGE): a value past MAX_MESSAGE_BYTES, refused from
 *     its size before it is copied anywhere.
 *   - TooManyWaitersError (ERR_TOO_MANY_WAITERS): more operations waiting in one direction on a
 *     channel than MAX_WAITERS.
 *   - TooManyThreadsError (ERR_TOO_MANY_THREADS): a process whose worker finds every slot of the
 *     runtime's thread table taken (255 threads: main, workers and the supervisor).
 * The last two limits are large (65,536 waiting operations take ~2 s and ~350 MB here; 255
 * threads take gigabytes): the lesson lowers them with `@occam/core/testing`'s hooks, which
 * exist for tests of exactly this, and puts them back after.
 *
 * See also: deadlock detection, which turns a program blocked for good into an error by itself
 * (lesson 11), and what a process that dies takes with it (lesson 12).
 *
 * Run: occam run docs/17-stuck-programs-and-limits.ts
 */
import {
  chan,
  formatWaitReport,
  InvalidHandleError,
  main,
  MAX_MESSAGE_BYTES,
  MAX_WAITERS,
  MessageTooLargeError,
  spawn,
  TooManyThreadsError,
  TooManyWaitersError,
  waitReport,
  type Receiver,
} from '@occam/core';
import { retireIdleHosts, setMaxThreads, setMaxWaiters, threadStats } from '@occam/core/testing';

// ── processes ────────────────────────────────────────────────────────────────────────────────

/** Waits for one number and doubles it. */
export function child(input: Receiver<number>): number {
  return input.recv() * 2;
}

/** Starts `child` and waits for it to end (blocking this worker): its result plus one. */
export function parent(input: Receiver<number>): number {
  const c = spawn<number>(import.meta.url, 'child', [input], { name: 'child' });
  return c.joinSync() + 1;
}

// ── the program ──────────────────────────────────────────────────────────────────────────────

function check(what: string, ok: boolean): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) throw new Error(`lesson 17: ${what}`);
}

/** The error `f` throws or its promise rejects with (undefined if none). */
async function failure(f: () => unknown): Promise<Error | undefined> {
  try {
    await f();
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

/** Looks at the report every 10 ms until `ready` says yes (a diagnostic is read, not awaited). */
async function reportWhen(ready: (lines: string) => boolean): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const lines = formatWaitReport(waitReport());
    if (ready(lines)) return lines;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('lesson 17: the processes never showed up in the wait-for report');
}

main(async () => {
  // ── a program that seems stuck: who waits on what ──────────────────────────────────────────
  const input = chan<number>(0, { name: 'input' });
  const p = spawn<number>(import.meta.url, 'parent', [input.receiver()], { name: 'parent' });
  const lines = await reportWhen((l) => l.includes('child:') && l.includes('parent:'));
  console.log(`the wait-for report while both wait:\n${lines.replace(/^/gm, '  ')}`);
  const joining = waitReport().find((b) => b.process === 'parent');
  check(`parent waits for its child's end (joins: ${joining?.joins}), on no channel`, joining?.joins === 'child' && joining.waitsOn.length === 0);
  const waiting = waitReport().find((b) => b.process === 'child');
  check('the child waits to receive on input', waiting?.waitsOn[0]?.channel === 'input' && waiting.waitsOn[0].op === 'recv');
  await input.sendAsync(20); // what they were waiting for
  check('given its value, the child ends, then the parent: 20 * 2 + 1', (await p.join()) === 41);

  // ── a handle used after release() ──────────────────────────────────────────────────────────
  const out = input.sender();
  out.release(); // this handle's reference goes; the channel lives on through `input`
  const released = await failure(() => out.trySend(1));
  check(`a released handle is refused: ${released?.message}`, released instanceof InvalidHandleError);

  // ── a message too large ───────────────────────────────────────────────────────────────────
  // (A typed array of 256 MiB whose pages are never written costs no memory.)
  const bytes = chan<Uint8Array>(1, { name: 'bytes' });
  const tooLarge = await failure(() => bytes.sendAsync(new Uint8Array(MAX_MESSAGE_BYTES + 1)));
  check(`a value past MAX_MESSAGE_BYTES (${MAX_MESSAGE_BYTES}) is refused: ${tooLarge?.message}`, tooLarge instanceof MessageTooLargeError);
  check('nothing was buffered, and the channel takes the next value', bytes.len === 0 && bytes.trySend(new Uint8Array(8)).isOk());

  // ── too many operations waiting on one channel ────────────────────────────────────────────
  setMaxWaiters(100); // instead of MAX_WAITERS
  const crowd = chan<number>(0, { name: 'crowd' });
  const everyone = new AbortController();
  const waits = Array.from({ length: 100 }, () => crowd.recvAsync({ signal: everyone.signal }).catch((e: { code?: string }) => e.code));
  const oneMore = await failure(() => crowd.recvAsync());
  check(`the 101st receive is refused (${oneMore?.constructor.name}); MAX_WAITERS is ${MAX_WAITERS} by default`, oneMore instanceof TooManyWaitersError);
  check(`${crowd.waitingReceivers} receivers still wait`, crowd.waitingReceivers === 100);
  everyone.abort();
  const codes = new Set(await Promise.all(waits));
  check(`ended by their signal (${[...codes].join()}), none is left waiting`, codes.size === 1 && codes.has('ERR_ABORTED') && crowd.waitingReceivers === 0);
  setMaxWaiters(0); // the default again

  // ── too many threads ──────────────────────────────────────────────────────────────────────
  await retireIdleHosts(); // no idle worker left for a process to reuse: the next needs a new one
  setMaxThreads(threadStats().slots); // every slot in use now is all there is
  const noRoom = await failure(() => spawn<number>(import.meta.url, 'child', [input.receiver()], { name: 'no-room' }).join());
  setMaxThreads(0); // the default again
  check(`a process whose worker finds no free slot fails: ${noRoom?.message}`, noRoom instanceof TooManyThreadsError);
  const again = spawn<number>(import.meta.url, 'child', [input.receiver()], { name: 'room-again' });
  await input.sendAsync(5);
  check('with the limit back, the next process runs', (await again.join()) === 10);
});
