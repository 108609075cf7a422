/**
 * Lesson 12 — a worker that crashes, and peers that are told instead of hanging.
 *
 * What it does: first a farm — three workers take jobs from one shared channel and send results
 * back. One worker crashes (`process.exit`) on a job it cannot handle. The jobs channel is used
 * by the others too, so it carries on: the farm loses one worker and the one job it held, main
 * sees which job never came back and hands it out again. Then a pipeline whose middle stage runs
 * out of memory: the producer blocked sending to it and main waiting for its output both get
 * PeerDiedError (ERR_PEER_DIED) naming the dead stage, at once — without any spawn option.
 * Last, a server selecting over three sensors, one of which crashes: the select serves the live
 * sensors first, and fails for the dead one only when nothing else is ready, saying which case.
 *
 * The rule, in one paragraph. A process uses a channel end from its first operation on it, or
 * from the moment it receives a typed end (`ch.sender()`, `ch.receiver()`); main, once it has
 * used an end, uses it for good. When a process dies — it throws (anything but poison), its
 * promise rejects, it calls `process.exit`, runs out of memory, overflows its stack or is
 * terminated — and it was the last user of an end, that end is disconnected: whoever waits at
 * the other end fails with ERR_PEER_DIED, and so does every later operation that would wait
 * (values already buffered are still delivered; a new user reconnects the end). A channel that
 * other live processes use is left alone. A process killed in the middle of a channel
 * operation, holding the channel's lock, breaks that channel: every operation on it fails with
 * ERR_PEER_DIED from then on. A supervisor thread of occam's does this within milliseconds of
 * the death, however busy main is.
 *
 * What it introduces:
 *   - PeerDiedError and what "the last user of an end" means; a shared channel surviving a death.
 *   - giving a process typed ends, so that it is a user from the start.
 *   - re-issuing work lost with a dead worker (the job it held is gone: nothing is sent twice).
 *   - `ch.broken`: whether a death broke the channel itself (then make a new one; see above).
 *   - a select over many peers: PeerDiedError's `caseIndex` names the case to drop.
 *
 * Left for later: a pool that restarts dead workers for you (@occam/pool).
 *
 * Run: occam run docs/12-a-crashing-worker.ts
 */
import { chan, main, PeerDiedError, spawn, type Receiver, type Sender } from '@occam/core';
import { recv, selectAsync } from '@occam/select';

/** A farm worker: squares job numbers until the jobs channel closes; job 13 makes it crash. */
export function farmWorker(jobs: Receiver<number>, results: Sender<[number, number]>): number {
  let done = 0;
  for (const job of jobs) {
    if (job === 13) process.exit(1); // a bug: unlucky numbers end the whole worker thread
    results.send([job, job * job]);
    done++;
  }
  return done;
}

/** Produces readings for ever (until its consumer is gone). */
export function producer(out: Sender<number>): string {
  try {
    for (let i = 0; ; i++) out.send(i);
  } catch (e) {
    return `${(e as PeerDiedError).code}: ${(e as Error).message}`;
  }
}

/** A stage that keeps every reading it sees, and so runs out of memory under its limit. */
export function hoarder(input: Receiver<number>, out: Sender<number>): never {
  const kept: number[][] = [];
  for (;;) {
    const v = input.recv();
    kept.push(new Array(10_000).fill(v));
    if (kept.length % 100 === 0) out.send(kept.length);
  }
}

/** A sensor: sends readings 1..count, then closes its channel; at reading `crashAt` its worker ends instead. */
export function sensor(out: Sender<number>, count: number, crashAt: number): void {
  for (let i = 1; i <= count; i++) {
    if (i === crashAt) process.exit(1);
    out.send(i);
  }
  out.close();
}

main(async () => {
  // ── a farm that survives one dead worker ──────────────────────────────────
  const jobs = chan<number>(0, { name: 'jobs' });
  const results = chan<[number, number]>(64, { name: 'results' });
  const workers = [1, 2, 3].map((k) =>
    spawn<number>(import.meta.url, 'farmWorker', [jobs.receiver(), results.sender()], { name: `worker${k}` }),
  );
  const n = 30;
  const squares = new Map<number, number>();
  for (let job = 1; job <= n; job++) await jobs.sendAsync(job); // each send returns once a worker took it
  // The first worker to end is the one that crashed: the others wait on the open jobs channel.
  const crash = await Promise.race(workers.map((w) => w.join().then(() => 'returned', (e: Error) => e.message)));
  // A worker holds one job at a time, so at most one went down with it: take all the others
  // (the results buffer holds them all meanwhile).
  for (let i = 0; i < n - 1; i++) {
    const [job, sq] = await results.recvAsync();
    squares.set(job, sq);
  }
  const lost = Array.from({ length: n }, (_, i) => i + 1).filter((job) => !squares.has(job));
  console.log(`farm: ${squares.size} of ${n} results; crashed: ${crash}`);
  console.log(`  lost with the dead worker: job ${lost.join(', ')} — handed out again (with the bug worked around)`);
  if (lost.length !== 1 || lost[0] !== 13) throw new Error(`expected exactly job 13 to be lost, got ${lost.join(', ')}`);
  squares.set(13, 13 * 13); // computed here, where 13 is not unlucky
  // The worker died between operations, not inside one holding the lock: the channels are whole
  // (a channel a death broke would say so here, and would have to be replaced).
  console.log(`  jobs channel broken by the death: ${jobs.broken}; results channel: ${results.broken}`);
  if (jobs.broken || results.broken) throw new Error('a death between operations broke a channel');
  jobs.close();
  const done = (await Promise.all(workers.map((w) => w.join().catch(() => 0)))).reduce((a, b) => a + b, 0);
  results.close();
  let ok = true;
  for (let job = 1; job <= n; job++) ok &&= squares.get(job) === job * job;
  console.log(`  the two live workers did ${done} jobs, the dead one ${n - 1 - done} before job 13; all ${n} squares right: ${ok}`);
  if (!ok || done > n - 1) throw new Error('the farm did not finish its work');

  // ── a pipeline whose middle stage dies ────────────────────────────────────
  const a = chan<number>(0, { name: 'a' });
  const b = chan<number>(0, { name: 'b' });
  const prod = spawn<string>(import.meta.url, 'producer', [a.sender()], { name: 'producer' });
  const stage = spawn(import.meta.url, 'hoarder', [a.receiver(), b.sender()], {
    name: 'hoarder',
    resourceLimits: { maxOldGenerationSizeMb: 32 },
  });
  let outputs = 0;
  const mainSaw = await (async () => {
    for (;;) {
      await b.recvAsync();
      outputs++;
    }
  })().catch((e: unknown) => e);
  const stageDied = await stage.join().catch((e: Error) => e.message);
  console.log(`pipeline: hoarder died (${stageDied}) after ${outputs} reports`);
  console.log(`  main, waiting on b, got ${(mainSaw as PeerDiedError).code}: ${(mainSaw as Error).message}`);
  const prodSaw = await prod.join();
  console.log(`  the producer, sending on a, got ${prodSaw}`);
  if (!(mainSaw instanceof PeerDiedError) || !prodSaw.startsWith('ERR_PEER_DIED') || !prodSaw.includes('hoarder')) {
    throw new Error('a neighbour of the dead stage was not told');
  }

  // ── a server selecting over sensors, one of which dies ─────────────────────
  let feeds = ['north', 'south', 'east'].map((name) => ({ name, ch: chan<number>(0, { name }), readings: 0 }));
  const all = [...feeds];
  const sensors = feeds.map((f) =>
    spawn(import.meta.url, 'sensor', [f.ch.sender(), 5, f.name === 'south' ? 3 : 0], { name: `sensor-${f.name}` }),
  );
  while (feeds.length > 0) {
    try {
      const r = await selectAsync(feeds.map((f) => recv(f.ch)));
      if (r.ok) feeds[r.index]!.readings++;
      else feeds = feeds.filter((_, i) => i !== r.index); // closed: that sensor is done
    } catch (e) {
      if (!(e instanceof PeerDiedError) || e.caseIndex === undefined) throw e;
      console.log(`server: case ${e.caseIndex} failed: ${e.message}`);
      feeds = feeds.filter((_, i) => i !== e.caseIndex); // its sensor is dead: stop listening to it
    }
  }
  console.log(`  readings: ${all.map((f) => `${f.name} ${f.readings}`).join(', ')}`);
  if (all.map((f) => f.readings).join() !== '5,2,5') throw new Error('the server lost or invented readings');
  await Promise.all(sensors.map((p) => p.join().catch(() => undefined)));
  console.log('nobody hangs; the program exits with code 0');
});

