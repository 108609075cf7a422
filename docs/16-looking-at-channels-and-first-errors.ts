/**
 * Lesson 16 — looking at a channel, the errors you meet first, and the rest of select.
 *
 * What it does: starts the runtime with heap sizes of its own, looks at a channel as values go
 * in and a process waits on it, makes the mistakes every newcomer makes once (a blocking receive
 * on the main thread, a misspelt export, a channel too big) and shows the error each one gets,
 * drains a closed channel the non-throwing way, stops a process with a signal, and runs select
 * with what lessons 6–9 left out: a switched-off case, a select given a signal, a timer's
 * times, and one send case reused with a new value each time. Every outcome is checked.
 *
 * What it introduces:
 *   - `startRuntime({ initialHeapBytes, maxHeapBytes })`, and the limits MAX_CAPACITY,
 *     MAX_WAITERS, MAX_MESSAGE_BYTES.
 *   - A channel's `len`, `cap`, `closed`, `waitingSenders`, `waitingReceivers`; `liveChannels()`.
 *   - SyncOnMainError (ERR_SYNC_ON_MAIN), ProcessNotFoundError (ERR_PROCESS_NOT_FOUND),
 *     InvalidCapacityError (ERR_INVALID_CAPACITY), ChannelClosedError (ERR_CHANNEL_CLOSED),
 *     HeapExhaustedError (ERR_HEAP_EXHAUSTED), NotSendableError's `path` and `what`,
 *     WrongDirectionError (ERR_WRONG_DIRECTION), and RemoteError (an unregistered error class).
 *   - `recvResult()` in a process: `Err(ChannelClosedError)` once the channel is closed and drained.
 *   - `spawn(…, { signal })`, and `ref()` after `unref()`.
 *   - select: the `when(condition, case)` function, EmptySelectError (ERR_EMPTY_SELECT) when
 *     every case is switched off, the `signal` option, a timer's `deadline` and `firedAt` (and
 *     the `at` of the result), and a SendCase whose `value` changes between selects.
 *
 * Run: occam run docs/16-looking-at-channels-and-first-errors.ts
 */
import {
  chan,
  ChannelClosedError,
  InvalidArgumentError,
  InvalidCapacityError,
  HeapExhaustedError,
  liveChannels,
  main,
  MAX_CAPACITY,
  MAX_MESSAGE_BYTES,
  MAX_WAITERS,
  NotSendableError,
  ProcessNotFoundError,
  processModule,
  spawn,
  startRuntime,
  RemoteError,
  SyncOnMainError,
  WrongDirectionError,
  type Receiver,
  type Sender,
} from '@occam/core';
import { after, EmptySelectError, recv, selectAsync, send, when } from '@occam/select';

// ── processes ────────────────────────────────────────────────────────────────────────────────

/** Receives until the channel is closed and drained, without a try/catch: recvResult. */
export function drain(input: Receiver<number>): number[] {
  const got: number[] = [];
  for (;;) {
    const r = input.recvResult();
    if (r.isOk()) got.push(r.value);
    else if (r.error instanceof ChannelClosedError) return got;
    else throw r.error;
  }
}

/** An error class of this module's, which main never registers (see `registerError`). */
export class ParseError extends Error {
  readonly code = 'E_PARSE';
}

/** Fails with a ParseError. */
export function parse(text: string): never {
  throw new ParseError(`cannot parse ${JSON.stringify(text)}`);
}

/** Waits on a channel that nobody sends on: only a signal (or terminate) ends it. */
export function waitForever(input: Receiver<number>): number {
  return input.recv();
}

// ── the program ──────────────────────────────────────────────────────────────────────────────

function check(what: string, ok: boolean): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) throw new Error(`lesson 16: ${what}`);
}

/** What `f` throws (or what its promise rejects with). */
async function thrown(f: () => unknown): Promise<unknown> {
  try {
    await f();
    return undefined;
  } catch (e) {
    return e;
  }
}

/** Waits (never long) until `cond` holds, looking once per turn of the event loop. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = performance.now() + 10_000;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`lesson 16: waited 10 s for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

main(async () => {
  const here = new URL(import.meta.url);

  // ── the runtime and its limits ─────────────────────────────────────────────────────────────
  // Optional: the first channel or spawn starts it with the defaults (4 MiB, growing to 1 GiB).
  startRuntime({ initialHeapBytes: 8 << 20, maxHeapBytes: 64 << 20 });
  const again = await thrown(() => startRuntime());
  check('a second startRuntime() is refused with InvalidArgumentError', again instanceof InvalidArgumentError);
  console.log(`limits: capacity ≤ ${MAX_CAPACITY}, ${MAX_WAITERS} waiters a channel, ${MAX_MESSAGE_BYTES} bytes a message`);
  const tooBig = await thrown(() => chan(MAX_CAPACITY + 1));
  check('a channel past MAX_CAPACITY is refused with InvalidCapacityError', tooBig instanceof InvalidCapacityError);

  // ── looking at a channel ───────────────────────────────────────────────────────────────────
  const before = liveChannels();
  const jobs = chan<number>(3, { name: 'jobs' });
  jobs.trySend(1);
  jobs.trySend(2);
  check(`jobs: len ${jobs.len} of cap ${jobs.cap}, closed ${jobs.closed}; ${liveChannels() - before} more live channel`, jobs.len === 2 && jobs.cap === 3 && !jobs.closed && liveChannels() === before + 1);

  // A blocking receive on the main thread would freeze its event loop: refused, nothing taken.
  const onMain = await thrown(() => jobs.recv());
  check(`recv() on the main thread: SyncOnMainError (${(onMain as Error).message.slice(0, 40)}…), len still ${jobs.len}`, onMain instanceof SyncOnMainError && jobs.len === 2);

  // A process drains it the non-throwing way, once it is closed.
  jobs.close();
  check(`after close(): closed ${jobs.closed}, still ${jobs.len} buffered`, jobs.closed && jobs.len === 2);
  const end = jobs.receiver(); // (a handle of main's, with a reference of its own: released below)
  const drained = await processModule<typeof import('./16-looking-at-channels-and-first-errors.js')>(here).spawn('drain', [end]).join();
  check(`a process drained [${drained.join(', ')}] and saw ChannelClosedError as a value`, drained.join() === '1,2');
  const late = await thrown(() => jobs.recvAsync());
  check('recvAsync() on a closed, drained channel rejects with ChannelClosedError', late instanceof ChannelClosedError);
  end.release();
  jobs.release();
  check(`released: live channels back to ${liveChannels()}`, liveChannels() === before);

  // A misspelt export name fails the process, not the program.
  const misspelt = await thrown(() => spawn(here, 'drian', []).join());
  check(`spawn of an export that is not there: ProcessNotFoundError`, misspelt instanceof ProcessNotFoundError);

  // A process waiting: the channel counts it; a signal stops it.
  const idle = chan<number>();
  const stop = new AbortController();
  const waiter = spawn(here, 'waitForever', [idle.receiver()], { signal: stop.signal, name: 'waiter' });
  waiter.unref(); // (would let the program exit while it waits)…
  waiter.ref(); // …but main waits for it below anyway: ref() undoes unref()
  await until(() => idle.waitingReceivers === 1, 'the waiter to park');
  check(`idle: ${idle.waitingReceivers} waiting receiver, ${idle.waitingSenders} waiting senders`, idle.waitingReceivers === 1 && idle.waitingSenders === 0);
  stop.abort();
  const stopped = await thrown(() => waiter.join());
  check(`a spawn's signal, aborted, terminates the process: ${(stopped as { code?: string }).code}`, (stopped as { code?: string }).code === 'ERR_PROCESS_FAILED');

  // ── select, the rest of it ─────────────────────────────────────────────────────────────────
  // when(condition, case): a case switched off is as if absent; with every case off, nothing
  // could ever fire, and the select says so instead of waiting for ever.
  const none = await thrown(() => selectAsync([when(false, recv(idle)), when(false, after(10))]));
  check('a select whose cases are all switched off: EmptySelectError', none instanceof EmptySelectError);

  // A select given a signal gives up when it aborts; no case fires.
  const giveUp = new AbortController();
  setTimeout(() => giveUp.abort(), 20);
  const abandoned = await thrown(() => selectAsync([recv(idle)], { signal: giveUp.signal }));
  check(`a select's signal: ${(abandoned as { code?: string }).code}, nothing taken`, (abandoned as { code?: string }).code === 'ERR_ABORTED');

  // A timer's due time, and when it fired.
  const timer = after(15);
  const due = timer.deadline;
  const fired = await selectAsync([recv(idle), timer]);
  check(`the timer fired at its deadline (${fired.kind} at ${fired.kind === 'timer' ? fired.at.toFixed(1) : '?'}, firedAt ${timer.firedAt.toFixed(1)}); spent now: deadline ${timer.deadline}`, fired.kind === 'timer' && fired.at === due && timer.firedAt === due && timer.deadline === Infinity);

  // One send case, its value changed between selects.
  const out = chan<number>(3);
  const sending = send(out, 0);
  for (const v of [10, 20, 30]) {
    sending.value = v;
    await selectAsync([sending]);
  }
  const sent = [await out.recvAsync(), await out.recvAsync(), await out.recvAsync()];
  check(`one SendCase sent ${sent.join(', ')}`, sent.join() === '10,20,30');
  idle.release();
  out.release();

  // ── limits reached, and values refused: a failed send enqueues nothing ─────────────────────
  // The heap was capped at 64 MiB above: blocks of 8 MiB fill it.
  const big = chan<Uint8Array>(16, { name: 'big' });
  let stored = 0;
  let refusal: unknown;
  for (;;) {
    const r = big.trySend(new Uint8Array(8 << 20));
    if (r.isErr()) {
      refusal = r.error;
      break;
    }
    stored++;
  }
  check(`${stored} blocks of 8 MiB buffered, then HeapExhaustedError; still ${big.len} buffered`, refusal instanceof HeapExhaustedError && big.len === stored && stored > 0);
  big.release(); // its values' memory goes back to the heap
  const again2 = chan<Uint8Array>(1);
  check('with the channel released, 8 MiB fit again', again2.trySend(new Uint8Array(8 << 20)).isOk());
  again2.release();

  const jobs2 = chan<unknown>(1, { name: 'jobs2' });
  const notSendable = jobs2.trySend({ name: 'job', onDone: () => 'done' });
  const why2 = notSendable.isErr() ? notSendable.error : undefined;
  check(
    `a function in a value: NotSendableError at ${why2 instanceof NotSendableError ? why2.path : '?'} (${why2 instanceof NotSendableError ? why2.what : '?'}); nothing enqueued`,
    why2 instanceof NotSendableError && why2.path === 'value.onDone' && jobs2.len === 0,
  );
  const readOnly = jobs2.receiver() as unknown as Sender<unknown>; // (as a mistaken cast would)
  const wrongWay = await thrown(() => readOnly.trySend('job'));
  check('a send on a receive-only end: WrongDirectionError', wrongWay instanceof WrongDirectionError && jobs2.len === 0);
  readOnly.release();
  jobs2.release();

  // An error of a class main has not registered keeps its name, code, message and stack.
  const remote = await thrown(() => processModule<typeof import('./16-looking-at-channels-and-first-errors.js')>(here).spawn('parse', ['{oops']).join());
  check(
    `an unregistered error class arrives as RemoteError: ${(remote as Error).name} ${(remote as RemoteError).code}: ${(remote as Error).message}`,
    remote instanceof RemoteError && (remote as Error).name === 'ParseError' && (remote as RemoteError).code === 'E_PARSE',
  );
  console.log('done');
});
