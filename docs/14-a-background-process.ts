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
 * Main also listens for alerts from the metrics process (the first eviction) while it works, and
 * watches the process for a failure, both without holding the program open. Last, a second
 * metrics process runs on a pool, unref'd too: a pool that is never closed lets the program exit
 * once it is idle, and an unref'd process on it does not count.
 *
 * What it introduces:
 *   - `Process.unref()` and `Process.ref()` (main thread): whether a running process keeps the
 *     program alive. A pool's idle workers are unref'd this way.
 *   - `join({ ref: false })`: watching a process (here, to report a failure) without holding the
 *     program alive for it, or counting as main waiting on it for deadlock detection.
 *   - `{ ref: false }` on an async channel operation (`recvResultAsync`): a wait that does not
 *     hold the program alive, like an unref'd timer.
 *   - `PoolProcess.unref()` / `ref()`: the same for a process on a pool (`pool.spawn`).
 *   - a select over an event stream and a request channel, in a process that never returns,
 *     with `priority` so that a request sees every event sent before it.
 *
 * Run: occam run docs/14-a-background-process.ts
 */
import { chan, main, spawn, type Receiver, type Sender } from '@occam/core';
import { Pool } from '@occam/pool';
import { recv, select } from '@occam/select';

/** A snapshot of the counts, by event name. */
export type Snapshot = Record<string, number>;

/**
 * Counts events by name until the program ends; answers snapshot requests; says on `alerts`
 * (if given) when it sees the first eviction.
 */
export function metrics(events: Receiver<string>, requests: Receiver<Sender<Snapshot>>, alerts?: Sender<string>): never {
  const counts: Snapshot = {};
  for (;;) {
    // Events first (PRI ALT): a request is answered only once the events sent before it are in.
    const r = select([recv(events), recv(requests)], { priority: true });
    if (r.index === 0 && r.ok) {
      counts[r.value] = (counts[r.value] ?? 0) + 1;
      if (r.value === 'evict' && counts[r.value] === 1) alerts?.trySend('first eviction');
    } else if (r.index === 1 && r.ok) r.value.send({ ...counts });
  }
}

main(async () => {
  const events = chan<string>(64, { name: 'events' });
  const requests = chan<Sender<Snapshot>>(0, { name: 'requests' });
  const alerts = chan<string>(1, { name: 'alerts' });
  const proc = spawn(import.meta.url, 'metrics', [events.receiver(), requests.receiver(), alerts.sender()], {
    name: 'metrics',
  });
  proc.unref(); // it serves; it need not keep the program alive
  // Watching it (a failure is reported) must not hold the program for it either.
  proc.join({ ref: false }).catch((e: Error) => console.error(`metrics failed: ${e.message}`));
  // Alerts are read while main works; the wait for the next one never ends, and need not hold
  // the program: an unref'd receive, as an unref'd timer.
  const alerted: string[] = [];
  void (async () => {
    for (;;) {
      const a = await alerts.recvResultAsync({ ref: false });
      if (a.isErr()) return;
      alerted.push(a.value);
      console.log(`alert from metrics: ${a.value}`);
    }
  })();

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
  // The alert was sent before the snapshot (the first event was an eviction), so it is in.
  if (alerted[0] !== 'first eviction') throw new Error(`expected the eviction alert, got ${alerted.join(', ')}`);

  // The same on a pool: its process unref'd, the pool never closed. An idle pool lets the
  // program exit, and an unref'd process on it does not count as work.
  const pool = new Pool({ module: import.meta.url, size: 1 });
  const more = chan<string>(8, { name: 'more-events' });
  const asks = chan<Sender<Snapshot>>(0, { name: 'more-requests' });
  const onPool = pool.spawn('metrics', more.receiver(), asks.receiver());
  onPool.unref();
  for (const name of ['hit', 'hit', 'miss']) await more.sendAsync(name);
  const reply2 = chan<Snapshot>(0, { name: 'reply-2' });
  // While main waits for its answer, the process holds the program again (ref), as a timer
  // ref'd again would; once answered it is let go (unref).
  onPool.ref();
  await asks.sendAsync(reply2.sender());
  const got2 = await reply2.recvAsync();
  onPool.unref();
  console.log(`metrics on the pool (process ${onPool.name}):`, got2);
  if (got2['hit'] !== 2 || got2['miss'] !== 1) throw new Error('the metrics on the pool miscounted');
  console.log('main is done; both metrics processes still wait for events, and the program exits anyway');
});
