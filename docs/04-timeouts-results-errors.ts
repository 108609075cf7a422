/**
 * Lesson 4 — when things do not go to plan: timeouts, non-blocking ops, Results, errors.
 *
 * What it does: a "flaky service" process answers requests on a reply channel it is given with
 * each request (a channel sent over a channel), but is slow for some of them and throws a
 * registered error class for a bad one. The client gives each request a deadline, polls
 * without blocking, and finally sees the service's error arrive at `join` with its own class.
 *
 * What it introduces:
 *   - a channel per request: `chan()` for the reply, sent inside the request; `release()` drops
 *     a handle at once instead of waiting for garbage collection.
 *   - `{ timeout }` and `{ signal }` on blocking ops: a cancelled op has sent or taken nothing.
 *     (In a process, a sync op sees its signal only before it parks: a thread blocked in
 *     `Atomics.wait` runs no abort listener. Use `timeout` there, or the async twin.)
 *   - `trySend` / `tryRecv`: never block; they return a `Result` (ts-results-es) whose error
 *     says why (full, empty, closed), and a failed `trySend` gives the value back.
 *   - what cannot be sent (a function, a symbol, an instance of your own class) fails at the send
 *     with NotSendableError (ERR_NOT_SENDABLE), and nothing is enqueued.
 *   - `recvResult` / `recvResultAsync`: a blocking receive that returns its failure instead of
 *     throwing it; closed is reported as an error value, never as an in-band sentinel.
 *   - `registerError(MyError)`: a process's error crosses back with its own class, code, message
 *     and remote stack; `processModule<typeof import(...)>` type-checks a spawn;
 *     `processName()` names the running process; `joinSync` joins inside a process;
 *     `terminate()` stops a process that will never finish.
 *
 * Left for later: waiting on several channels at once (select), poison.
 *
 * Run: occam run docs/04-timeouts-results-errors.ts
 */
import {
  ChannelEmptyError,
  ChannelFullError,
  chan,
  main,
  NotSendableError,
  processModule,
  processName,
  registerError,
  spawn,
  TimeoutError,
  type Channel,
  type Receiver,
} from '@occam/core';

/** A domain error of this program; registered on both sides so its class survives the trip. */
export class BadRequestError extends Error {
  readonly code = 'E_BAD_REQUEST';
  override readonly name = 'BadRequestError';
}
registerError(BadRequestError);

export interface Request {
  n: number;
  reply: Channel<string>;
}

/** The service: squares numbers; sleeps (busy) on multiples of 3, throws on negatives. */
export function flakyService(requests: Receiver<Request>): number {
  let served = 0;
  for (const { n, reply } of requests) {
    if (n < 0) throw new BadRequestError(`${processName()} cannot square ${n}`);
    if (n % 3 === 0) {
      const until = Date.now() + 50; // a slow request: the client's deadline is shorter
      while (Date.now() < until);
    }
    // The client may have given up: trySend never blocks, and the reply channel's room for one
    // keeps the answer whether or not the client is still waiting.
    reply.trySend(`${n}² = ${n * n}`);
    reply.release();
    served++;
  }
  return served;
}

/** A process that spawns a helper and joins it synchronously. */
export function delegate(x: number): number {
  return spawn<number>(import.meta.url, 'double', [x]).joinSync() + 1;
}

export function double(x: number): number {
  return 2 * x;
}

/** A process that would wait forever. */
export function stuck(input: Receiver<number>): number {
  return input.recv();
}

main(async () => {
  const requests = chan<Request>(4, { name: 'requests' });
  const service = processModule<typeof import('./04-timeouts-results-errors.js')>(import.meta.url).spawn(
    'flakyService',
    [requests.receiver()],
  );

  for (const n of [1, 2, 3, 4]) {
    const reply = chan<string>(1);
    await requests.sendAsync({ n, reply });
    // The first request also waits for the process to start (a worker and a compile): no deadline.
    const answer = await reply.recvResultAsync(n === 1 ? {} : { timeout: 20 });
    if (answer.isOk()) console.log(`request ${n}: ${answer.value}`);
    else if (answer.error instanceof TimeoutError) console.log(`request ${n}: no answer within 20 ms (${answer.error.code})`);
    else throw answer.error;
    // Request 3 is always slower than its deadline (request 4 may queue behind it, or not).
    if (n === 1 && !answer.isOk()) throw new Error('the first request must be answered');
    if (n === 3 && answer.isOk()) throw new Error('the slow request cannot beat its deadline');
    reply.release();
  }

  // Non-blocking: a buffer of one takes one value; the second trySend gets its value back.
  const box = chan<string>(1);
  box.trySend('first').unwrap();
  const second = box.trySend('second');
  if (second.isErr() && second.error instanceof ChannelFullError) console.log(`full: got back "${second.error.value}"`);
  console.log(`tryRecv: ${box.tryRecv().unwrap()}`);
  const empty = box.tryRecv();
  console.log(`tryRecv again: ${empty.isErr() && empty.error instanceof ChannelEmptyError ? 'empty' : 'value?!'}`);

  // What cannot cross fails at the send, and nothing is enqueued: a function, a symbol, or an
  // instance of your own class (structuredClone would drop its prototype without a word; send
  // plain data, or an error you throw: see registerError).
  class Point {
    constructor(readonly x: number) {}
  }
  const odd = chan<unknown>(1).trySend(new Point(1));
  if (!(odd.isErr() && odd.error instanceof NotSendableError)) throw new Error('a class instance went through');
  console.log(`not sendable (${odd.error.code}): ${odd.error.message}`);

  // Aborting a wait: nothing is taken, nothing stays queued.
  const ac = new AbortController();
  const waiting = box.recvAsync({ signal: ac.signal });
  ac.abort();
  console.log(`aborted recv: ${await waiting.catch((e: { code: string }) => e.code)}`);

  // A bad request makes the service throw: join re-throws it with its class.
  await requests.sendAsync({ n: -1, reply: chan<string>(1) });
  const err = await service.join().catch((e: unknown) => e);
  console.log(`service failed with ${(err as Error).name} (${(err as BadRequestError).code}): ${(err as Error).message}`);
  if (!(err instanceof BadRequestError)) throw new Error('the error lost its class');

  console.log(`a process that spawns and joins another: ${await spawn<number>(import.meta.url, 'delegate', [20]).join()}`);

  const never = chan<number>();
  const hung = spawn(import.meta.url, 'stuck', [never.receiver()]);
  await hung.terminate();
  console.log(`terminated: ${await hung.join().catch((e: { code: string }) => e.code)}`);
});
