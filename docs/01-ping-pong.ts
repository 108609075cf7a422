/**
 * Lesson 1 — hello, ping-pong.
 *
 * What it does: the main thread and one process bat a counter back and forth over two
 * rendezvous channels, ten times, then the process returns how many balls it hit.
 *
 * What it introduces:
 *   - `chan()` with no capacity: a rendezvous. A send waits until the receiver has the value.
 *   - `spawn(module, export, args)`: a process is an exported function run in a worker of its
 *     own; channels passed as arguments arrive as working channels.
 *   - the two flavours: the process uses blocking `send`/`recv` (they park its worker); the main
 *     thread must never block, so it uses `sendAsync`/`recvAsync`.
 *   - `join()`: the process's return value.
 *   - `main()`: this file is both the program and the home of its process; `main` runs only on
 *     the main thread, so the worker that loads this file to find `player` skips it.
 *
 * Left for later: buffering (lesson 2), many processes on one channel (lesson 3).
 *
 * Run: occam run docs/01-ping-pong.ts
 */
import { chan, main, spawn, type Receiver, type Sender } from '@occam/core';

/** The process: hits every ball back one higher, until the ping channel closes. */
export function player(ping: Receiver<number>, pong: Sender<number>): number {
  let hits = 0;
  for (const ball of ping) {
    pong.send(ball + 1);
    hits++;
  }
  return hits;
}

main(async () => {
  const ping = chan<number>();
  const pong = chan<number>();
  const proc = spawn<number>(import.meta.url, 'player', [ping, pong]);

  let ball = 0;
  for (let i = 0; i < 10; i++) {
    await ping.sendAsync(ball);
    ball = (await pong.recvAsync()) + 1;
    console.log(`rally ${i + 1}: ball is at ${ball}`);
  }
  ping.close(); // ends the process's for-of loop
  const hits = await proc.join();
  console.log(`the process hit ${hits} balls; the ball ended at ${ball}`);
  if (hits !== 10 || ball !== 20) throw new Error('the rally went wrong');
});
