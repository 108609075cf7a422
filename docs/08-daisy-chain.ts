/**
 * Lesson 8 — a daisy chain: twenty processes in a row, and one quit for all of them.
 *
 * What it does: twenty relay processes stand in a row, joined by rendezvous channels; each
 * passes on what it gets, plus one. The main thread closes the chain into a ring through itself:
 * it sends a token in at the head, takes it out at the tail and sends it round again, ten laps.
 * Then it streams two hundred tokens through the chain at once. Last, it pushes three tokens in
 * that it never takes out and at once closes a single quit channel: every relay stops wherever
 * it is, waiting to receive or waiting to send, and the three tokens are found in their hands.
 *
 * What it introduces:
 *   - latency against throughput: one token pays a hand-over per relay on every lap; a stream
 *     puts many tokens in the chain at once, so hand-overs overlap (as far as there are cores to
 *     run them), and the tokens still come out in order.
 *   - quit in every wait: a relay that can be told to stop must include quit in each of its
 *     blocking steps, the send as well as the receive — `select([send(right, v + 1), recv(quit)])`.
 *     BUG (the classic): a relay that sends with a plain `right.send(v + 1)` never sees quit while
 *     nobody takes from its right; it hangs there, and so does whoever joins it.
 *   - conservation: on rendezvous channels a token is never "in" a channel; at every moment
 *     exactly one party holds it, so the relays that stop holding a token account for every
 *     token that went in and did not come out.
 *   - a watchdog on the main thread: one `deadline` per phase (lesson 5), shared by every wait
 *     in it, even two running at once, turns a lost token (a hang) into an error with a message.
 *   - `waitReport()`: which processes are parked with no deadline, on which channel operations
 *     (`formatWaitReport` prints it): the first look at a program that seems stuck.
 *
 * Left for later: poison (a quit that flows along the channels themselves).
 *
 * Run: occam run docs/08-daisy-chain.ts [relays]
 */
import { chan, formatWaitReport, main, par, spawn, waitReport, type Receiver, type Sender } from '@occam/core';
import { deadline, recv, select, selectAsync, send, type Timer } from '@occam/select';

export interface Relayed {
  /** Tokens passed on. */
  passed: number;
  /** Whether it was holding a token when quit came. */
  holding: boolean;
}

/** A relay: passes on each token plus one, until quit is closed. */
export function relay(left: Receiver<number>, right: Sender<number>, quit: Receiver<never>): Relayed {
  const take = [recv(left), recv(quit)] as const;
  let passed = 0;
  for (;;) {
    const r = select(take);
    if (r.index === 1 || !r.ok) return { passed, holding: false };
    // The send waits for the next relay; quit must be able to reach us while we wait here too.
    const s = select([send(right, r.value + 1), recv(quit)]);
    if (s.index === 1) return { passed, holding: true };
    passed++;
  }
}

/** Sends into the chain's head, or fails when the phase's watchdog fires first. */
async function toHead(head: Sender<number>, v: number, watchdog: Timer, phase: string): Promise<void> {
  const r = await selectAsync([send(head, v), watchdog]);
  if (r.index === 1) throw new Error(`${phase}: the chain's head stopped taking tokens (watchdog)`);
}

/** Receives from the chain's tail, or fails when the phase's watchdog fires first. */
async function fromTail(tail: Receiver<number>, watchdog: Timer, phase: string): Promise<number> {
  const r = await selectAsync([recv(tail), watchdog]);
  if (r.index === 1) throw new Error(`${phase}: a token was lost in the chain (watchdog)`);
  if (!r.ok) throw new Error(`${phase}: the chain's tail closed`);
  return r.value;
}

main(async () => {
  const n = Number(process.argv[2] ?? 20);
  const t0 = performance.now();
  const links = Array.from({ length: n + 1 }, (_, i) => chan<number>(0, { name: `link${i}` }));
  const quit = chan<never>(0, { name: 'quit' });
  const relays = Array.from({ length: n }, (_, i) =>
    spawn<Relayed>(import.meta.url, 'relay', [links[i]!.receiver(), links[i + 1]!.sender(), quit.receiver()], {
      name: `relay${i}`,
    }),
  );
  const head = links[0]!;
  const tail = links[n]!;

  // A ring through the main thread: one token, ten laps. The first lap also waits for every
  // relay's worker to start, so the watchdog is generous.
  const laps = 10;
  let watchdog = deadline(10_000);
  let token = 0;
  const lapTimes: number[] = [];
  for (let lap = 0; lap < laps; lap++) {
    const t = performance.now();
    await toHead(head, token, watchdog, 'ring');
    token = await fromTail(tail, watchdog, 'ring');
    lapTimes.push(performance.now() - t);
  }
  console.log(`${n} relays started and the token went round ${laps} times in ${Math.round(performance.now() - t0)} ms`);
  const lastLaps = lapTimes.slice(1);
  const perLap = lastLaps.reduce((a, b) => a + b, 0) / lastLaps.length;
  console.log(`one token: ${perLap.toFixed(2)} ms a lap once running (${((perLap * 1000) / n).toFixed(0)} µs a hand-over); it reads ${token}`);
  if (token !== laps * n) throw new Error(`the token should read ${laps * n}, not ${token}`);

  // A stream: two hundred tokens in flight together, each coming out n higher, in order.
  const count = 200;
  watchdog = deadline(5_000);
  const t1 = performance.now();
  const feeding = (async () => {
    // The same deadline: unlike a one-shot `after`, it is ready at every select once it is due.
    for (let i = 0; i < count; i++) await toHead(head, 1000 * i, watchdog, 'stream');
  })();
  for (let i = 0; i < count; i++) {
    const v = await fromTail(tail, watchdog, 'stream');
    if (v !== 1000 * i + n) throw new Error(`token ${i} came out as ${v}`);
  }
  await feeding;
  const streamMs = performance.now() - t1;
  console.log(`a stream of ${count} tokens: ${streamMs.toFixed(0)} ms, ${((streamMs * 1000) / count).toFixed(0)} µs a token`);

  // Three tokens go in and are never taken out; quit follows them at once, catching them mid-chain.
  const stuck = 3;
  watchdog = deadline(5_000);
  for (let i = 0; i < stuck; i++) await toHead(head, -1, watchdog, 'stuck'); // done once the first relay has it
  // Before quitting, look: waitReport() lists every process parked with no deadline and what it
  // waits on. The tokens drift to the end of the chain, where each holder waits to send.
  const sending = (): string[] =>
    waitReport()
      .filter((p) => p.waitsOn.some((w) => w.op === 'send'))
      .map((p) => formatWaitReport([p]))
      .sort();
  // The tokens come to rest in the last three relays (on the way, a report can catch a token
  // between two relays, so look until it settles).
  const ends = [n - 3, n - 2, n - 1].map((i) => `relay${i}: send on link${i + 1} | recv on quit`).sort();
  const lookUntil = performance.now() + 5_000;
  let holders = sending();
  while (holders.join() !== ends.join() && performance.now() < lookUntil) {
    await new Promise((r) => setTimeout(r, 5));
    holders = sending();
  }
  console.log(`parked holding a token:\n  ${holders.join('\n  ')}`);
  if (holders.join() !== ends.join()) throw new Error(`expected the last ${stuck} relays to hold the tokens`);
  quit.close();
  // Watchdog for the joins: a relay that missed quit would keep par waiting for ever; stopping
  // it makes par fail instead.
  const stopper = setTimeout(() => relays.forEach((r) => void r.terminate()), 5_000);
  const results = await par(...relays);
  clearTimeout(stopper);
  const holding = results.filter((r) => r.holding).length;
  const passed = results.reduce((a, r) => a + r.passed, 0);
  console.log(`quit: all ${n} relays stopped; ${holding} were holding a token; ${passed} hand-overs in all`);
  if (holding !== stuck) throw new Error(`${stuck} tokens went in and never came out, but ${holding} relays held one`);
  if (results.some((r) => r.passed < laps + count)) throw new Error('a relay passed on fewer tokens than went through it');
});
