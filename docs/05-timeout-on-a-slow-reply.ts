/**
 * Lesson 5 — giving up on a slow reply: select with a timer.
 *
 * What it does: a server process answers requests, some at once and some only after a long
 * think. A client process asks it a round of questions in two ways: first with a timer per
 * request (every answer gets the same patience, however long the round takes), then with one
 * deadline for the whole round (as many answers as fit, and not a millisecond more). Last, the
 * main thread asks once with the `timeout` option and then collects the late answer anyway.
 *
 * What it introduces:
 *   - `select([recv(reply), after(ms)])` from @occam/select: wait for whichever happens first;
 *     exactly one case happens, and `r.index` says which (checking it narrows `r`, so `r.value`
 *     is typed in the branch of the receive).
 *   - `after(ms)`: a timer case. It starts when it is made and fires once. Made per request, it
 *     is a per-request timeout. Alone in a select it is a sleep that uses no CPU.
 *   - `deadline(ms)`: made once and put in every select of a round, a deadline for the round;
 *     unlike `after`, it stays ready once due, so every select after it gives up too.
 *   - a send as a case: `select([send(requests, req), deadline])` gives up on a busy server too.
 *   - the `timeout` option: the select throws TimeoutError (ERR_TIMEOUT) and no case happens;
 *     use it where giving up is exceptional, and a timer case where it is an ordinary outcome.
 *   - `selectAsync`: the same select on the main thread, as a promise.
 *
 * Left for later: selecting over many channels as they close (lesson 6), a server loop with
 * a quit channel (lesson 7).
 *
 * Run: occam run docs/05-timeout-on-a-slow-reply.ts
 */
import { chan, main, spawn, TimeoutError, type Receiver, type Sender } from '@occam/core';
import { after, deadline, recv, select, selectAsync, send } from '@occam/select';

export interface Request {
  id: number;
  /** How long the server thinks about it (ms). */
  work: number;
  reply: Sender<string>;
}

/** The server: takes `work` ms over each request, then answers on the request's own channel. */
export function server(requests: Receiver<Request>): number {
  let served = 0;
  for (const { id, work, reply } of requests) {
    if (work > 0) select([after(work)]); // a lone timer: a sleep that parks the thread
    // The client may have given up: trySend never blocks, and the reply channel's room for one
    // keeps the answer whether or not the client is still waiting.
    reply.trySend(`answer ${id}`);
    reply.release();
    served++;
  }
  return served;
}

export interface Outcome {
  id: number;
  answer: string | null;
  /** How long the client waited for it (ms). */
  waited: number;
}

/** A timer per request: each reply gets `patience` ms, counted from when the server took the request. */
export function perRequest(requests: Sender<Request>, works: number[], patience: number): { outcomes: Outcome[]; took: number } {
  const start = performance.now();
  const outcomes = works.map((work, id): Outcome => {
    const reply = chan<string>(1);
    // `requests` is a rendezvous, so this returns once the server has the request (even the first,
    // which waits for the server's worker to start): the clock below measures only the server.
    requests.send({ id, work, reply });
    const t0 = performance.now();
    const r = select([recv(reply), after(patience)]);
    const waited = Math.round(performance.now() - t0);
    reply.release();
    if (r.index === 0) return { id, answer: r.ok ? r.value : null, waited };
    return { id, answer: null, waited }; // r.index === 1: the timer fired first
  });
  return { outcomes, took: Math.round(performance.now() - start) };
}

/** One deadline for the round: the same `deadline` in every select, for the sends as well as the replies. */
export function withDeadline(requests: Sender<Request>, works: number[], budget: number): { answers: string[]; sent: number; took: number } {
  const t0 = performance.now();
  const due = deadline(budget);
  const answers: string[] = [];
  let sent = 0;
  for (const [id, work] of works.entries()) {
    const reply = chan<string>(1);
    // While the server is still busy with the previous request, this send waits too.
    const s = select([send(requests, { id, work, reply }), due]);
    if (s.index === 1) {
      reply.release();
      break;
    }
    sent++;
    const r = select([recv(reply), due]);
    reply.release();
    if (r.index === 1) break; // past the deadline: every later select would give up at once too
    if (r.ok) answers.push(r.value);
  }
  return { answers, sent, took: Math.round(performance.now() - t0) };
}

main(async () => {
  const requests = chan<Request>(0, { name: 'requests' });
  const srv = spawn<number>(import.meta.url, 'server', [requests.receiver()]);

  // Round 1: requests 2 and 4 take the server 250 ms; the client's patience is 100 ms each.
  const works = [0, 0, 250, 0, 250, 0];
  const patience = 100;
  const { outcomes, took } = await spawn<{ outcomes: Outcome[]; took: number }>(import.meta.url, 'perRequest', [
    requests.sender(),
    works,
    patience,
  ]).join();
  for (const o of outcomes) console.log(`request ${o.id}: ${o.answer ?? `gave up after ${o.waited} ms`}`);
  console.log(`round 1 took ${took} ms: a timer per request bounds each wait, not the round`);
  for (const o of outcomes) {
    // A slow reply cannot beat the timer; a quick one has 100 ms to spare.
    const slow = works[o.id]! > patience;
    if (slow && o.answer !== null) throw new Error(`request ${o.id} beat a timer it cannot beat`);
    if (!slow && o.answer !== `answer ${o.id}`) throw new Error(`request ${o.id} got ${o.answer}`);
  }

  // Round 2: eight requests of 60 ms each, but only 200 ms for all of them.
  const budget = 200;
  const round = await spawn<{ answers: string[]; sent: number; took: number }>(import.meta.url, 'withDeadline', [
    requests.sender(),
    [60, 60, 60, 60, 60, 60, 60, 60],
    budget,
  ]).join();
  console.log(`round 2: ${round.answers.length} of 8 answered (${round.answers.join(', ')}); gave up after ${round.took} ms`);
  if (round.took < budget || round.answers.length >= 8) throw new Error('the deadline did not hold');
  if (round.answers.some((a, i) => a !== `answer ${i}`)) throw new Error('an answer went astray');

  // The `timeout` option, on the main thread: the select throws instead of returning a case.
  const reply = chan<string>(1);
  await requests.sendAsync({ id: 99, work: 250, reply });
  const err = await selectAsync([recv(reply)], { timeout: 50 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof TimeoutError)) throw new Error('the slow reply beat its timeout');
  console.log(`request 99: no reply within 50 ms (${err.code})`);
  // The late answer is not lost: it waits in the request's own reply channel, where no other
  // request can mistake it for its own answer (as it could on one reply channel shared by all).
  const late = await selectAsync([recv(reply)]);
  console.log(`request 99, collected later: ${late.ok ? late.value : 'closed?'}`);
  if (!late.ok || late.value !== 'answer 99') throw new Error('the late answer was lost');
  reply.release();

  requests.close();
  const served = await srv.join();
  console.log(`the server served ${served} requests`);
  if (served !== works.length + round.sent + 1) throw new Error(`expected ${works.length + round.sent + 1} served`);
});
