import { chan, spawn } from '@occam/core';
import { checkInvariants } from '@occam/core/testing';
const procs = new URL('./impl/occam.procs.mjs', import.meta.url);
const ops = Number(process.argv[2] ?? 200000), warm = Number(process.argv[3] ?? 10000);
const chans = [0,1,2,3].map(() => chan(1024));
const ready = chan(0), go = chan(0);
const ps = chans.map((ch, k) => spawn(procs, 'shareProducer', [ch, ready, go, k, 4, ops, warm]));
const c = spawn(procs, 'selectConsumer', [chans, ready, go, ops, warm * 4]);
const timer = setTimeout(() => {
  console.log('STUCK', chans.map((ch) => [ch.len, ch.waitingSenders, ch.waitingReceivers, checkInvariants(ch)]));
  process.exit(1);
}, 8000);
for (let i = 0; i < 5; i++) await ready.recvAsync();
console.log('barrier');
go.close();
const r = await Promise.all([...ps, c].map((p) => p.join()));
clearTimeout(timer);
console.log('ok', r.at(-1).checksum, (r.at(-1).t1 - r.at(-1).t0) / ops, 'ns/op');
process.exit(0);
