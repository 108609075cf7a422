/**
 * Lesson 9 — a case of your own: the select kit underneath @occam/select.
 *
 * What it does: a worker process sends a burst of urgent messages and then closes its channel.
 * The main thread serves them as they come, and in between spends tokens from a token bucket
 * (at most 3 at once, one more every 20 ms) on background chores. The bucket is a select case
 * written here, against the same small interface every case of @occam/select is built on. Then
 * a few lines of @occam/select show `never()` holding a place in a fixed case list, and
 * `stop()` switching a timer off for good.
 *
 * What it introduces:
 *   - `@occam/core/select-kit`: `Selectable` (try / register / unregister / isReady / deadline),
 *     `recvCase(ch)` (a channel's receive as a case), `selectAsync(cases, order, slot, limits)`
 *     (the engine: exactly one case fires), `now()` (the clock deadlines are on), `never` (the
 *     reference case: never ready, registers nothing), and FIRED / CLOSED / NOT_READY.
 *   - a case that becomes ready by itself in time: it has nothing to register; its `deadline`
 *     tells a waiting select when to look again, so the select sleeps without a timer thread.
 *   - `order`: the order in which the cases are tried when several are ready (here the channel
 *     first: urgent messages win over chores).
 *   - `never()` and `stop()` from @occam/select.
 *
 * Left for later: poison, and what happens when a process dies (the life-and-death lessons).
 *
 * Run: occam run docs/09-a-case-of-your-own.ts
 */
import { chan, main, spawn, type Sender } from '@occam/core';
import { CLOSED, FIRED, never as neverReady, NOT_READY, now, recvCase, selectAsync as engineSelect, type Selectable } from '@occam/core/select-kit';
import { after, never, selectAsync, tick } from '@occam/select';

/** The worker: a burst of urgent messages, then close. */
export function urgent(out: Sender<string>, n: number): number {
  for (let i = 0; i < n; i++) out.send(`urgent ${i}`);
  out.close();
  return n;
}

/** A token bucket as a select case: ready while it holds a token; firing spends one. */
class Bucket implements Selectable {
  #tokens: number;
  #last = now();
  constructor(
    readonly size: number,
    readonly every: number,
  ) {
    this.#tokens = size;
  }
  /** Tokens earned since the last look, up to the bucket's size. */
  #refill(): void {
    const t = now();
    const earned = Math.floor((t - this.#last) / this.every);
    if (earned > 0) {
      this.#tokens = Math.min(this.size, this.#tokens + earned);
      this.#last = this.#tokens === this.size ? t : this.#last + earned * this.every;
    }
  }
  try(): number {
    this.#refill();
    if (this.#tokens === 0) return NOT_READY;
    this.#tokens--;
    return FIRED;
  }
  register(): boolean {
    return this.isReady(); // nothing to link: if a token came meanwhile, the select starts over
  }
  unregister(): void {}
  isReady(): boolean {
    this.#refill();
    return this.#tokens > 0;
  }
  get deadline(): number {
    return this.#tokens > 0 ? -Infinity : this.#last + this.every; // now, or when the next token arrives
  }
}

main(async () => {
  const input = chan<string>(4, { name: 'urgent' });
  const worker = spawn<number>(import.meta.url, 'urgent', [input.sender(), 6]);

  const t0 = now(); // (before the bucket starts its clock: chores are timed from no later than that)
  const bucket = new Bucket(3, 20);
  const fromInput = recvCase(input);
  const cases: Selectable[] = [fromInput, bucket];
  const order = [0, 1]; // urgent messages first
  const slot = new Int32Array(4);
  const served: string[] = [];
  const chores: number[] = [];
  while (cases[0] !== neverReady || chores.length < 8) {
    // The list stays; a closed input is switched off by putting `never` in its place.
    const r = await engineSelect(cases, order, slot, { poll: false, deadline: Infinity });
    if (r.index === 0 && r.result === FIRED) served.push(fromInput.take(slot) as string);
    else if (r.index === 0 && r.result === CLOSED) cases[0] = neverReady; // the place stays, the case is off
    else chores.push(Math.round(now() - t0));
  }
  console.log(`served ${served.length} urgent messages: ${served.join(', ')}`);
  console.log(`chores at ms ${chores.join(', ')} (3 at once from a full bucket, then one every 20 ms)`);
  if (served.length !== 6 || served.some((s, i) => s !== `urgent ${i}`)) throw new Error('urgent messages lost');
  // Three tokens at the start; each later chore waited for its own token.
  for (let i = 3; i < chores.length; i++) {
    if (chores[i]! < (i - 2) * 20 - 1) throw new Error(`chore ${i} ran at ${chores[i]} ms, before its token`);
  }
  await worker.join();

  // The same ideas in @occam/select: `never()` holds a place; `stop()` switches a timer off.
  const beat = tick(5);
  const giveUp = after(100);
  let beats = 0;
  for (;;) {
    // The first place was the input's; it is closed, so never() keeps its place (and index).
    const r = await selectAsync([never(), beat, giveUp]);
    if (r.index === 2) throw new Error('the ticker should have been stopped long before');
    if (++beats === 3) break;
  }
  beat.stop();
  giveUp.stop();
  const none = await selectAsync([never(), beat, giveUp], { default: true });
  console.log(`3 beats, then both timers stopped: the next select takes its ${none.kind}`);
  if (none.kind !== 'default') throw new Error('a stopped timer fired');
});
