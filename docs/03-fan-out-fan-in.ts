/**
 * Lesson 3 — fan-out, fan-in.
 *
 * What it does: one channel of jobs is shared by four worker processes (fan-out: whichever
 * worker is free takes the next job, so the load balances itself), and all of them send their
 * results into one channel (fan-in) that the main thread reads.
 *
 * What it introduces:
 *   - many senders and many receivers on one channel: every value goes to exactly one receiver.
 *   - results arriving in completion order, not job order: each result carries its job id.
 *   - knowing when fan-in is finished: the workers cannot close the shared results channel (the
 *     first to finish would cut off the others), so main counts results instead; the jobs
 *     channel is closed by its only sender, main.
 *
 * Left for later: waiting on several channels at once (select).
 *
 * Run: occam run docs/03-fan-out-fan-in.ts
 */
import { chan, main, spawn, type Receiver, type Sender } from '@occam/core';

export interface Job {
  id: number;
  text: string;
}

/** Stands in for real work: each job takes this long (ms) in its worker. */
const JOB_MS = 20;
const pause = new Int32Array(new SharedArrayBuffer(4));

/** A worker: counts the vowels of each job's text. */
export function worker(name: string, jobs: Receiver<Job>, results: Sender<[number, number, string]>): number {
  let done = 0;
  for (const job of jobs) {
    const vowels = (job.text.match(/[aeiou]/g) ?? []).length;
    Atomics.wait(pause, 0, 0, JOB_MS); // (blocks this worker only: the others take the next jobs)
    results.send([job.id, vowels, name]);
    done++;
  }
  return done;
}

main(async () => {
  const words = 'communicating sequential processes share nothing but the channels between them'.split(' ');
  const jobs = chan<Job>(4, { name: 'jobs' });
  const results = chan<[number, number, string]>(4, { name: 'results' });
  const workers = ['w1', 'w2', 'w3', 'w4'].map((name) =>
    spawn<number>(import.meta.url, 'worker', [name, jobs.receiver(), results.sender()]),
  );

  const feeding = (async () => {
    for (const [id, text] of words.entries()) await jobs.sendAsync({ id, text });
    jobs.close();
  })();

  const vowels = new Array<number>(words.length);
  const byWorker = new Map<string, number>();
  for (let i = 0; i < words.length; i++) {
    const [id, count, who] = await results.recvAsync();
    vowels[id] = count;
    byWorker.set(who, (byWorker.get(who) ?? 0) + 1);
  }
  await feeding;
  const perWorker = await Promise.all(workers.map((w) => w.join()));

  words.forEach((w, i) => console.log(`${w.padEnd(14)} ${vowels[i]} vowels`));
  // Every worker took a share (with jobs of no cost at all, the first worker up could take them
  // all before the others had started), and its results came back tagged with its name.
  console.log(`jobs per worker: ${perWorker.join(', ')} (total ${perWorker.reduce((a, b) => a + b, 0)})`);
  console.log(`results by sender tag: ${[...byWorker].map(([w, k]) => `${w} ${k}`).join(', ')}`);
  const expected = words.map((w) => (w.match(/[aeiou]/g) ?? []).length);
  if (vowels.join() !== expected.join()) throw new Error('a result went missing or astray');
});
