import { chan, main, spawn, par, type Receiver, type Sender } from '@occam/core';
import { select, selectAsync, recv, send, after, tick } from '@occam/select';

export function relay(inp: Receiver<number>, out: Sender<number>, quit: Receiver<never>): number {
  let n = 0;
  const fromLeft = recv(inp), q = recv(quit);
  for (;;) {
    const r = select([fromLeft, q]);
    if (r.index === 1) return n;
    if (!r.ok) return n;
    const s = select([send(out, r.value + 1), q]);
    if (s.index === 1) return n;
    n++;
  }
}
export function mk(reqs: Receiver<{ n: number; reply: Sender<number> }>): number {
  let c = 0;
  for (const { n, reply } of reqs) { reply.send(n * 2); c++; }
  return c;
}
export function client(reqs: Sender<{ n: number; reply: Sender<number> }>): number {
  let t = 0;
  for (let i = 0; i < 5; i++) { const rc = chan<number>(1); reqs.send({ n: i, reply: rc.sender() }); t += rc.recv(); rc.release(); }
  return t;
}

main(async () => {
  const N = Number(process.argv[2] ?? 24);
  const t0 = performance.now();
  const quit = chan<never>();
  const links = Array.from({ length: N + 1 }, () => chan<number>());
  const procs = links.slice(0, N).map((l, i) => spawn<number>(import.meta.url, 'relay', [l.receiver(), links[i + 1]!.sender(), quit.receiver()]));
  await links[0]!.sendAsync(0);
  console.log('first', await links[N]!.recvAsync(), (performance.now() - t0).toFixed(0));
  const t1 = performance.now();
  const K = 200;
  const feeding = (async () => { for (let i = 0; i < K; i++) await links[0]!.sendAsync(i); })();
  let ok = 0;
  for (let i = 0; i < K; i++) if ((await links[N]!.recvAsync()) === i + N) ok++;
  await feeding;
  console.log('ok', ok, (performance.now() - t1).toFixed(0));
  quit.close();
  console.log(await par(...procs));
  const reqs = chan<{ n: number; reply: Sender<number> }>();
  const s = spawn<number>(import.meta.url, 'mk', [reqs.receiver()]);
  console.log(await spawn<number>(import.meta.url, 'client', [reqs.sender()]).join());
  reqs.close();
  console.log(await s.join(), (performance.now() - t0).toFixed(0));
});
