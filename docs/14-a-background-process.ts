/**
 * Lesson 14 — a background process that does not keep the program alive.
 *
 * What it does: a metrics process counts events that the main thread sends it, for ever; on a
 * request (which carries its own reply channel) it answers with a snapshot. Main sends some
 * events, reads a snapshot and checks it, and then simply finishes: the metrics process is still
 * waiting for events, but it was `unref()`'d, so the program exits, as it would with an unref'd
 * timer. Without the `unref()` the program would stay up as long as the process runs (that is
 * the default: a running process keeps the program alive, as a ref'd timer does).
 *
 * What it introduces:
 *   - `Process.unref()` and `Process.ref()` (main thread): whether a running process keeps the
 *     program alive. A pool's idle workers are unref'd this way.
 *   - a select over an event stream and a request channel, in a process that never returns,
 *     with `priority` so that a request sees every event sent before it.
 *
 * Run: occam run docs/14-a-background-process.ts
 */
import { chan, main, spawn, type Receiver, type Sender } from '@occam/core';
import { recv, select } from '@occam/select';

/** A snapshot of the counts, by event name. */
export type Snapshot = Record<string, number>;

/** Counts events by name until the program ends; answers snapshot requests. */
export function metrics(events: Receiver<string>, requests: Receiver<Sender<Snapshot>>): never {
  const counts: Snapshot = {};
  for (;;) {
    // Events first (PRI ALT): a request is answered only once the events sent before it are in.
    const r = select([recv(events), recv(requests)], { priority: true });
    if (r.index === 0 && r.ok) counts[r.value] = (counts[r.value] ?? 0) + 1;
    else if (r.index === 1 && r.ok) r.value.send({ ...counts });
  }
}

main(async () => {
  const events = chan<string>(64, { name: 'events' });
  const requests = chan<Sender<Snapshot>>(0, { name: 'requests' });
  const proc = spawn(import.meta.url, 'metrics', [events.receiver(), requests.receiver()], { name: 'metrics' });
  proc.unref(); // it serves; it need not keep the program alive

  const sent: Snapshot = {};
  for (let i = 0; i < 300; i++) {
    const name = ['hit', 'miss', 'evict'][i % 7 === 0 ? 2 : i % 3 === 0 ? 1 : 0]!;
    sent[name] = (sent[name] ?? 0) + 1;
    await events.sendAsync(name);
  }
  const reply = chan<Snapshot>(0, { name: 'reply' });
  await requests.sendAsync(reply.sender()); // answered after every event sent before it
  const got = await reply.recvAsync();
  console.log('metrics snapshot:', got);
  for (const name of Object.keys(sent)) {
    if (got[name] !== sent[name]) throw new Error(`metrics counted ${got[name]} ${name}, main sent ${sent[name]}`);
  }
  console.log('main is done; the metrics process is still waiting for events, and the program exits anyway');
});
