import { chan, spawn } from '@occam/core';
const procs = new URL('./impl/occam.procs.mjs', import.meta.url);
for (let round = 0; round < Number(process.argv[2] ?? 100); round++) {
  const ops = 40 + (round % 7) * 300, warm = 50;
  const chans = [0,1,2,3].map(() => chan(round % 3 === 0 ? 4 : 1024));
  const ready = chan(0), go = chan(0);
  const ps = chans.map((ch, k) => spawn(procs, 'shareProducer', [ch, ready, go, k, 4, ops, warm]));
  const c = spawn(procs, 'selectConsumer', [chans, ready, go, ops, warm * 4]);
  const timer = setTimeout(() => { console.log('STUCK round', round, chans.map((ch) => [ch.len, ch.waitingSenders, ch.waitingReceivers])); process.exit(1); }, 10000);
  for (let i = 0; i < 5; i++) await ready.recvAsync();
  go.close();
  await Promise.all([...ps, c].map((p) => p.join()));
  clearTimeout(timer);
}
console.log('ok');
process.exit(0);
