/**
 * Lesson 2 — a pipeline.
 *
 * What it does: three processes in a row — generate the numbers 1..n, square them, sum them —
 * each stage a process of its own, joined by buffered channels. The main thread just starts the
 * stages and collects the sum.
 *
 * What it introduces:
 *   - `chan(capacity)`: a buffered channel holds that many values before a send waits, so stages
 *     run ahead of each other by up to a buffer.
 *   - closing as "end of stream": each stage closes its output when its input is exhausted,
 *     and `for (const v of input)` ends when the input is closed and drained.
 *   - `par(...)` (occam's PAR): wait for a group of processes; if one fails, the rest stop.
 *   - typed ends: a stage gets a `Receiver` and a `Sender`, and cannot misuse them.
 *
 * Left for later: several workers sharing one stage (lesson 3).
 *
 * Run: occam run docs/02-pipeline.ts [n]
 */
import { chan, main, par, spawn, type Receiver, type Sender } from '@occam/core';

export function generate(out: Sender<number>, n: number): number {
  for (let i = 1; i <= n; i++) out.send(i);
  out.close();
  return n;
}

export function square(input: Receiver<number>, out: Sender<number>): number {
  let count = 0;
  for (const v of input) {
    out.send(v * v);
    count++;
  }
  out.close();
  return count;
}

export function sum(input: Receiver<number>): number {
  let total = 0;
  for (const v of input) total += v;
  return total;
}

main(async () => {
  const n = Number(process.argv[2] ?? 10_000);
  const numbers = chan<number>(64, { name: 'numbers' });
  const squares = chan<number>(64, { name: 'squares' });
  const [generated, squared, total] = await par(
    spawn<number>(import.meta.url, 'generate', [numbers.sender(), n]),
    spawn<number>(import.meta.url, 'square', [numbers.receiver(), squares.sender()]),
    spawn<number>(import.meta.url, 'sum', [squares.receiver()]),
  );
  const expected = (n * (n + 1) * (2 * n + 1)) / 6;
  console.log(`generated ${generated}, squared ${squared}, sum of squares 1..${n} = ${total}`);
  if (total !== expected) throw new Error(`expected ${expected}`);
});
