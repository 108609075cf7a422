import { chan, main, spawn, type Receiver } from '@occam/core';
import { select, selectAsync, recv, after } from '@occam/select';

export function forever(): string {
  const t = after(1);
  select([t]);
  select([t]);
  return 'returned';
}
export function typeHole(ch: Receiver<number>, flag: boolean): string {
  const r = select([recv(ch)], { default: flag });
  if (r.index === -1) return 'default';
  return 'recv';
}
export function plainBlocked(ch: Receiver<number>): number { return ch.recv(); }
main(async () => {
  const p = spawn<string>(import.meta.url, 'forever', []);
  const r = await Promise.race([p.join().catch((e) => `rejected ${e.code}`), new Promise((res) => setTimeout(() => res('still waiting after 1 s'), 1000))]);
  console.log('spent timer:', r);
  await p.terminate();
  const ch = chan<number>();
  const q = spawn<number>(import.meta.url, 'plainBlocked', [ch.receiver()]);
  const r2 = await Promise.race([q.join().catch((e) => `rejected ${e.code}`), new Promise((res) => setTimeout(() => res('still waiting after 1 s'), 1000))]);
  console.log('plain recv nobody sends:', r2);
  await q.terminate();
  // main thread
  const t = after(1);
  await selectAsync([t]);
  const r3 = await Promise.race([selectAsync([t]).then(() => 'fired', (e) => `rejected ${e.code}`), new Promise((res) => setTimeout(() => res('still waiting after 1 s'), 1000))]);
  console.log('main spent timer:', r3);
  process.exit(0);
});
