/**
 * The main job (`pnpm demo`): a producer → N workers → collector pipeline that counts the primes
 * below a bound, block by block. The main thread produces blocks and collects counts with async
 * channel operations; each worker process blocks on its channels with sync ones. At the end it
 * compares with the same computation on one thread.
 *
 * Run: npx --yes pnpm@10.34.9 demo            (or: occam run docs/demo.ts [limit] [workers])
 */
import { availableParallelism } from 'node:os';
import { chan, main, par, spawn, type Receiver, type Sender } from '@occam/core';

/** One unit of work: the numbers in [from, to). */
export interface Block {
  from: number;
  to: number;
}

/** Counts the primes in [from, to) by trial division (deliberately CPU-bound). */
export function countPrimes({ from, to }: Block): number {
  let count = 0;
  for (let n = Math.max(from, 2); n < to; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return count;
}

/** A worker process: takes blocks until the channel closes, sends back [block index, count]. */
export function sieveWorker(blocks: Receiver<[number, Block]>, counts: Sender<[number, number]>): number {
  let done = 0;
  for (const [index, block] of blocks) {
    counts.send([index, countPrimes(block)]);
    done++;
  }
  return done;
}

function bar(fraction: number): string {
  const width = 30;
  const full = Math.round(fraction * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
}

main(async () => {
  const limit = Number(process.argv[2] ?? 6_000_000);
  const workers = Number(process.argv[3] ?? availableParallelism());
  const blockSize = 50_000;
  const nBlocks = Math.ceil(limit / blockSize);
  const block = (i: number): Block => ({ from: i * blockSize, to: Math.min(limit, (i + 1) * blockSize) });

  console.log(`occam demo: primes below ${limit.toLocaleString('en')} in ${nBlocks} blocks, ${workers} worker processes`);
  const blocks = chan<[number, Block]>(2 * workers, { name: 'blocks' });
  const counts = chan<[number, number]>(2 * workers, { name: 'counts' });

  const t0 = performance.now();
  const procs = Array.from({ length: workers }, (_, i) =>
    spawn<number>(import.meta.url, 'sieveWorker', [blocks.receiver(), counts.sender()], { name: `sieve-${i}` }),
  );
  const producer = (async () => {
    for (let i = 0; i < nBlocks; i++) await blocks.sendAsync([i, block(i)]);
    blocks.close();
  })();

  let total = 0;
  let lastShown = -1;
  for (let got = 0; got < nBlocks; got++) {
    const [, count] = await counts.recvAsync();
    total += count;
    const tenth = Math.floor(((got + 1) / nBlocks) * 10);
    if (tenth !== lastShown) {
      lastShown = tenth;
      console.log(`  ${bar((got + 1) / nBlocks)}  ${got + 1}/${nBlocks} blocks, ${total.toLocaleString('en')} primes so far`);
    }
  }
  await producer;
  const perWorker = await par(...procs);
  const parallelMs = performance.now() - t0;

  console.log('  the same computation on one thread ...');
  const t1 = performance.now();
  let single = 0;
  for (let i = 0; i < nBlocks; i++) single += countPrimes(block(i));
  const singleMs = performance.now() - t1;

  if (single !== total) throw new Error(`pipeline counted ${total} primes, one thread counted ${single}`);
  console.log('');
  console.log('summary');
  console.log(`  items processed : ${nBlocks} blocks (${perWorker.join(' + ')} per worker), ${total.toLocaleString('en')} primes`);
  console.log(`  wall time       : ${parallelMs.toFixed(0)} ms with ${workers} workers, ${singleMs.toFixed(0)} ms on one thread`);
  console.log(`  speed-up        : ${(singleMs / parallelMs).toFixed(2)}x (results agree)`);
});
