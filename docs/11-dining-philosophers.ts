/**
 * Lesson 11 — the dining philosophers: a deadlock detected, then avoided.
 *
 * What it does: five philosophers sit at a round table with a fork between each pair. To eat, a
 * philosopher needs both neighbouring forks. A fork is a channel holding one token: picking it
 * up is a receive, putting it down a send. First every philosopher picks up the left fork, then
 * the right: all five hold a left fork and wait for ever for a right one. occam notices — every
 * process parked with no deadline, the main thread waiting on them and nothing else to do — and
 * main's wait fails with DeadlockError, whose report names each philosopher and the fork it waits
 * for. Then the classic fix: a butler lets at most four sit down at once, and all eat in peace.
 *
 * What it introduces:
 *   - deadlock detection: DeadlockError (ERR_DEADLOCK) and its `blocked` report, the same as
 *     `waitReport()` gives at any moment.
 *   - a channel as a resource: a buffered channel of capacity 1 holding a token is a fork (a
 *     lock); of capacity 4, a butler (a counting semaphore).
 *   - cleaning up a stuck network: `par` terminates the others at the first failure (here a
 *     join that deadlock detection failed); poison frees the one it leaves, still parked.
 *
 * Left for later: what happens when a process dies instead of blocking.
 *
 * Run: occam run docs/11-dining-philosophers.ts
 */
import { ChannelPoisonedError, chan, DeadlockError, main, par, poison, spawn, type Channel, type Receiver } from '@occam/core';
import { after, select } from '@occam/select';

type Fork = Channel<'fork'>;

/**
 * A philosopher: waits for the start, then eats `meals` times, each time picking up the left fork,
 * pausing (long enough for every neighbour to pick up theirs), then the right one. With a butler,
 * takes a seat first and gives it back after the meal.
 */
export function philosopher(start: Receiver<never>, left: Fork, right: Fork, meals: number, butler: Channel<'seat'> | null): number {
  for (const _ of start); // the start barrier: ends when main closes `start`
  for (let meal = 0; meal < meals; meal++) {
    butler?.send('seat');
    left.recv();
    select([after(150)]); // a pause while holding one fork: the others reach for theirs
    right.recv();
    left.send('fork'); // eat, then put both forks down
    right.send('fork');
    butler?.recv();
  }
  return meals;
}

async function dinner(meals: number, withButler: boolean): Promise<number[]> {
  const n = 5;
  const forks: Fork[] = Array.from({ length: n }, (_, i) => chan<'fork'>(1, { name: `fork${i}` }));
  for (const f of forks) await f.sendAsync('fork'); // every fork on the table
  const butler = withButler ? chan<'seat'>(n - 1, { name: 'butler' }) : null;
  const start = chan<never>(0, { name: 'start' });
  const diners = forks.map((_, i) =>
    spawn<number>(import.meta.url, 'philosopher', [start.receiver(), forks[i]!, forks[(i + 1) % n]!, meals, butler], {
      name: `philosopher${i}`,
    }),
  );
  start.close();
  try {
    return await par(...diners);
  } finally {
    // Stuck: par has terminated all but the philosopher whose join failed first, which still
    // waits for a fork; the poison frees it. A table that finished does not mind.
    poison(...forks, butler);
  }
}

main(async () => {
  // 1. Everyone reaches for the left fork first.
  const err = await dinner(3, false).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof DeadlockError)) throw new Error(`expected a deadlock, got ${String(err)}`);
  console.log(`without a butler: ${err.code}`);
  for (const p of [...err.blocked].sort((a, b) => a.process.localeCompare(b.process))) {
    console.log(`  ${p.process} waits: ${p.waitsOn.map((w) => `${w.op} on ${w.channel}`).join(' | ')}`);
  }
  // Each philosopher i holds fork i and waits for fork i+1: a cycle, reported in full.
  if (err.blocked.length !== 5) throw new Error('every philosopher should be named');
  for (const p of err.blocked) {
    const i = Number(p.process.replace('philosopher', ''));
    const w = p.waitsOn[0];
    if (w?.op !== 'recv' || w.channel !== `fork${(i + 1) % 5}`) throw new Error(`${p.process} waits on the wrong thing`);
  }

  // 2. A butler seats at most four: someone always gets both forks.
  const meals = await dinner(3, true).catch((e: unknown) => {
    throw e instanceof ChannelPoisonedError ? new Error('the butler table was poisoned early') : e;
  });
  console.log(`with a butler: every philosopher ate ${meals.join(', ')} meals`);
  if (meals.some((m) => m !== 3)) throw new Error('someone went hungry');
});
