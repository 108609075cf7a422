/**
 * Lesson 7 — a server loop: requests, a quit channel, a heartbeat, and work for idle moments.
 *
 * What it does: a server process squares numbers for three client processes; each request
 * carries its own reply channel. Whenever no request is waiting, the server counts primes, a
 * small slice at a time, and on every tick of a heartbeat it reports its progress on a status
 * channel that the main thread prints. When the clients are done, the main thread closes the
 * quit channel; the server stops and returns its totals. Every answer, and the count of primes,
 * is checked.
 *
 * What it introduces:
 *   - the server loop: one select over everything the server waits for,
 *     `[recv(requests), recv(quit), tick(ms)]`, made once and reused, and a `switch (r.index)`
 *     with a branch per event.
 *   - quit by closing: a receive on a closed channel fires (with `ok: false`) for every receiver,
 *     now and later, so `close()` is a broadcast that carries no value and cannot block.
 *   - `tick(ms)`: a timer that fires again and again, on a fixed grid from its start; ticks
 *     missed while the server was busy are dropped, not queued up.
 *   - `{ default: true }`: a select that never waits; with nothing ready it returns index -1, and
 *     the server does a slice of its background work. Once that work is done the loop goes back
 *     to a select that waits: a default select in a loop with nothing to do burns a core.
 *   - reporting without stalling: status lines go out with `trySend` on a buffered channel, and a
 *     line nobody has room for is dropped rather than holding up the requests.
 *
 * Left for later: many processes in a chain, and stopping them all at once (lesson 8).
 *
 * Run: occam run docs/07-server-loop-with-quit.ts
 */
import { chan, main, par, spawn, type Receiver, type Sender } from '@occam/core';
import { after, recv, select, tick } from '@occam/select';

export interface Request {
  x: number;
  reply: Sender<number>;
}

export interface Totals {
  served: number;
  /** Slices of background work done in idle moments. */
  slices: number;
  beats: number;
  /** The background job has counted the primes below this. */
  countedTo: number;
  primes: number;
  /** Status lines dropped because the status channel was full. */
  dropped: number;
}

const SLICE = 10_000;

/** The primes in [from, to), by trial division: slow on purpose, it is the background job. */
function countPrimes(from: number, to: number): number {
  let count = 0;
  for (let n = Math.max(from, 2); n < to; n++) {
    let prime = n === 2 || n % 2 === 1;
    for (let d = 3; prime && d * d <= n; d += 2) if (n % d === 0) prime = false;
    if (prime) count++;
  }
  return count;
}

/** The server: squares for its clients, counts primes below `limit` when idle, stops on quit. */
export function server(requests: Receiver<Request>, quit: Receiver<never>, status: Sender<string>, limit: number, beat: number): Totals {
  const t: Totals = { served: 0, slices: 0, beats: 0, countedTo: 0, primes: 0, dropped: 0 };
  const report = (line: string): void => {
    if (status.trySend(line).isErr()) t.dropped++;
  };
  const cases = [recv(requests), recv(quit), tick(beat)] as const;
  for (;;) {
    // With background work left, do not wait for an event: take one if it is there, else work.
    const r = t.countedTo < limit ? select(cases, { default: true }) : select(cases);
    switch (r.index) {
      case -1: {
        const to = Math.min(t.countedTo + SLICE, limit);
        t.primes += countPrimes(t.countedTo, to);
        t.countedTo = to;
        t.slices++;
        if (to === limit) report(`background job done: ${t.primes} primes below ${limit}`);
        break;
      }
      case 0:
        if (!r.ok) {
          // (Defensive: in this program only quit ends the loop; nobody closes `requests`.)
          cases[0].when(false); // disable this case: no more requests, but wait for quit
          break;
        }
        r.value.reply.send(r.value.x * r.value.x); // a fresh reply channel with room for one: never blocks
        r.value.reply.release();
        t.served++;
        break;
      case 1: // quit is closed (nothing is ever sent on it)
        report(`quit: served ${t.served}, ${t.slices} slices of background work`);
        status.close();
        return t;
      case 2:
        t.beats++;
        report(`heartbeat ${t.beats}: served ${t.served}, primes counted below ${t.countedTo}`);
        break;
    }
  }
}

/** A client: asks for the square of each of `xs`, a few ms apart; returns the answers. */
export function client(requests: Sender<Request>, xs: number[]): number[] {
  return xs.map((x) => {
    const reply = chan<number>(1);
    requests.send({ x, reply });
    const y = reply.recv();
    reply.release();
    select([after(3)]); // think a little before the next request
    return y;
  });
}

main(async () => {
  const limit = 1_000_000;
  const beat = 100;
  const started = performance.now();
  const requests = chan<Request>(0, { name: 'requests' });
  const quit = chan<never>(0, { name: 'quit' });
  const status = chan<string>(16, { name: 'status' });
  const srv = spawn<Totals>(import.meta.url, 'server', [requests.receiver(), quit.receiver(), status.sender(), limit, beat]);
  const printing = (async () => {
    for await (const line of status) console.log(`[server] ${line}`);
  })();

  const work = [0, 1, 2].map((k) => Array.from({ length: 30 }, (_, i) => 100 * k + i));
  const answers = await par(...work.map((xs) => spawn<number[]>(import.meta.url, 'client', [requests.sender(), xs])));
  quit.close(); // every select on quit fires from now on
  const totals = await srv.join();
  await printing; // ends when the server closes status
  const elapsed = performance.now() - started;

  console.log(`served ${totals.served} requests; ${totals.beats} heartbeats; ${totals.dropped} status lines dropped`);
  for (const [k, xs] of work.entries()) {
    if (answers[k]!.some((y, i) => y !== xs[i]! * xs[i]!)) throw new Error(`client ${k} got a wrong answer`);
  }
  if (totals.served !== 90) throw new Error(`expected 90 requests served, not ${totals.served}`);
  if (totals.primes !== countPrimes(0, totals.countedTo)) throw new Error('the background count is wrong');
  // A tick never bunches up: at most one per period of the server's life.
  if (totals.beats > elapsed / beat + 1) throw new Error(`${totals.beats} heartbeats in ${elapsed} ms`);
});
