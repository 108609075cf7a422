/**
 * Lesson 10 — shutting a network down with poison.
 *
 * What it does: a five-stage pipeline — a source of readings, three transforming stages and a
 * sink — runs until the source decides it has produced enough. The source does not close its
 * output (that would only say "no more values"); it poisons it. The poison travels: each stage,
 * finding its input poisoned, poisons its output on the way out, and the sink ends too. Every
 * process ends by itself, nothing is terminated, and the program exits with code 0.
 *
 * The protocol, in one paragraph. `ch.poison()` (or `poison(a, b, …)`) may be called from either
 * end; from then on every operation on the channel — pending or later, send or receive, plain
 * or in a select — throws ChannelPoisonedError (ERR_CHANNEL_POISONED), and values still buffered
 * are dropped. Poisoning twice is harmless. A process that ends by poison passes it on to every
 * channel it was given when spawned with `{ propagatePoison: true }` (or, inside a body, when
 * the code runs under `withPoison(channels, body)`), so one poison at any edge reaches the
 * whole connected network, upstream as well as downstream. `par` treats an end by poison as a
 * shutdown, not a failure: it lets every process end, then rejects with the poison error.
 * Close says "the stream is complete" and flows only downstream; poison says "stop now".
 *
 * What it introduces:
 *   - `poison()`, `{ propagatePoison: true }`, `withPoison`, and `par` with poison; a process
 *     that does not propagate (the sink) keeps its other channels usable.
 *   - the difference from close: a close lets the sink drain what is buffered; poison drops it.
 *   - `{ poisonOnDeath: true }`: a process that crashes poisons its channels, so its neighbours
 *     get an error instead of waiting for ever.
 *
 * Left for later: what happens when a process dies without `poisonOnDeath` (lesson 12).
 *
 * Run: occam run docs/10-poison-shutdown.ts [readings]
 */
import { ChannelPoisonedError, chan, main, par, spawn, withPoison, type Receiver, type Sender } from '@occam/core';

/** The source: `n` readings, then poison — the shutdown starts here. */
export function source(out: Sender<number>, n: number): number {
  for (let i = 1; i <= n; i++) out.send(i);
  out.poison();
  return n;
}

/** A stage: applies `op` to each reading until its input is poisoned (which ends it). */
export function stage(input: Receiver<number>, out: Sender<number>, op: 'double' | 'inc' | 'square'): never {
  for (;;) {
    const v = input.recv(); // throws ChannelPoisonedError once the poison arrives
    out.send(op === 'double' ? v * 2 : op === 'inc' ? v + 1 : v * v);
  }
}

/** A stage with a bug: it fails on its sixth reading. */
export function buggyStage(input: Receiver<number>, out: Sender<number>): never {
  for (let n = 1; ; n++) {
    const v = input.recv();
    if (n === 6) throw new RangeError(`cannot handle reading ${v}`);
    out.send(v);
  }
}

/** The same stage without the spawn option: `withPoison` hands the poison on for one block of code. */
export function guardedStage(input: Receiver<number>, out: Sender<number>, op: 'double' | 'inc' | 'square'): never {
  return withPoison([input, out], () => stage(input, out, op));
}

/** The sink: adds up what arrives, reporting its count and sum as it goes, until poisoned. */
export function sink(input: Receiver<number>, report: Sender<[number, number]>): never {
  let count = 0;
  let sum = 0;
  for (;;) {
    sum += input.recv();
    count++;
    report.send([count, sum]);
  }
}

main(async () => {
  const n = Number(process.argv[2] ?? 1000);
  const c = Array.from({ length: 4 }, (_, i) => chan<number>(i === 0 ? 0 : 16, { name: `c${i}` }));
  const report = chan<[number, number]>(4096, { name: 'report' });
  const poisonous = { propagatePoison: true };
  const procs = [
    spawn<number>(import.meta.url, 'source', [c[0]!.sender(), n], { name: 'source' }),
    spawn(import.meta.url, 'stage', [c[0]!.receiver(), c[1]!.sender(), 'double'], { name: 'double', ...poisonous }),
    spawn(import.meta.url, 'stage', [c[1]!.receiver(), c[2]!.sender(), 'inc'], { name: 'inc', ...poisonous }),
    spawn(import.meta.url, 'guardedStage', [c[2]!.receiver(), c[3]!.sender(), 'square'], { name: 'square' }),
    // The sink is not told to propagate: its report channel stays usable for main to read.
    spawn(import.meta.url, 'sink', [c[3]!.receiver(), report.sender()], { name: 'sink' }),
  ] as const;
  // Main takes the sink's reports as they come: with more readings than the report buffer
  // holds, a sink that waited for main to read only after par would never end.
  let last: [number, number] = [0, 0];
  const reading = (async () => {
    for await (const r of report) last = r;
  })();

  // Every process ends; par rejects with the poison once they all have.
  const outcome = await par(...procs).then(
    () => 'every process returned',
    (e: unknown) => (e instanceof ChannelPoisonedError ? 'shut down by poison' : `failed: ${String(e)}`),
  );
  console.log(`pipeline: ${outcome}`);
  if (outcome !== 'shut down by poison') throw new Error(outcome);
  for (const p of procs.slice(1)) {
    const e = await p.join().catch((x: unknown) => x);
    if (!(e instanceof ChannelPoisonedError)) throw new Error(`${p.name} did not end by poison: ${String(e)}`);
    console.log(`  ${p.name.padEnd(6)} ended by poison (${e.code}), not terminated`);
  }
  console.log(`  source sent ${await procs[0].join()} readings, then poisoned c0`);

  // The sink's reports up to the poison: what got through before the shutdown overtook the rest.
  report.close();
  await reading;
  const [count, sum] = last;
  let expected = 0;
  for (let i = 1; i <= count; i++) expected += (2 * i + 1) ** 2;
  console.log(`sink: ${count} of ${n} readings reached it (sum ${sum}); ${n - count} in buffers or in a stage's hands were dropped`);
  if (sum !== expected) throw new Error(`the sink's sum ${sum} is not that of the first ${count} readings (${expected})`);
  if (!c.every((ch) => ch.poisoned)) throw new Error('the poison did not reach every channel of the pipeline');
  if (report.poisoned) throw new Error('the sink passed the poison on without being asked to');
  console.log('every pipeline channel is poisoned, the report channel is not');

  // A stage that crashes: spawned with `poisonOnDeath`, its death poisons its channels, so the
  // source upstream and main downstream get ERR_CHANNEL_POISONED instead of waiting for ever.
  const up = chan<number>(0, { name: 'up' });
  const down = chan<number>(0, { name: 'down' });
  const src = spawn<number>(import.meta.url, 'source', [up.sender(), 1_000_000], { name: 'source2', propagatePoison: true });
  const buggy = spawn(import.meta.url, 'buggyStage', [up.receiver(), down.sender()], { name: 'buggy', poisonOnDeath: true });
  const got: number[] = [];
  const end = await (async () => {
    for (;;) got.push(await down.recvAsync());
  })().catch((e: unknown) => e);
  const crash = await buggy.join().catch((e: unknown) => e);
  const srcEnd = await src.join().catch((e: unknown) => e);
  console.log(`buggy stage died (${String(crash)}) after passing on ${got.length} readings;`);
  console.log(`  main then got ${(end as { code?: string }).code}, the source ${(srcEnd as { code?: string }).code}: nobody hangs`);
  if (!(end instanceof ChannelPoisonedError) || !(srcEnd instanceof ChannelPoisonedError) || got.length !== 5) {
    throw new Error('the crash did not reach both neighbours');
  }
  console.log('the program exits with code 0');
});
