// occam's side of the benchmark: the process bodies (each runs in an occam worker process).
// Every party does its warm-up, meets the others at a start barrier made of occam channels,
// then times its part; the harness takes max(end) - min(start).
import { recv, select } from '@occam/select';
import { mix, pong, makeItem, mixItem } from '../lib/checksum.mjs';

const now = () => Number(process.hrtime.bigint());

/** The start barrier: announce readiness, then wait until main closes `go`. Not timed. */
export function barrier(ready, go) {
  ready.send(1);
  for (const _ of go); // ends when main closes `go`
}

export function ping(a, b, ready, go, ops, warmup) {
  for (let i = 0; i < warmup; i++) {
    a.send(i);
    b.recv();
  }
  barrier(ready, go);
  const t0 = now();
  let s = 0;
  for (let i = 0; i < ops; i++) {
    a.send(i);
    s = mix(s, b.recv());
  }
  return { t0, t1: now(), checksum: s >>> 0 };
}

export function pongP(a, b, ready, go, ops, warmup) {
  for (let i = 0; i < warmup; i++) b.send(pong(a.recv()));
  barrier(ready, go);
  const t0 = now();
  for (let i = 0; i < ops; i++) b.send(pong(a.recv()));
  return { t0, t1: now(), checksum: 0 };
}

export function producer(out, ready, go, ops, warmup, obj) {
  for (let i = 0; i < warmup; i++) out.send(obj ? makeItem(i) : i);
  barrier(ready, go);
  const t0 = now();
  if (obj) for (let i = 0; i < ops; i++) out.send(makeItem(i));
  else for (let i = 0; i < ops; i++) out.send(i);
  return { t0, t1: now(), checksum: 0 };
}

export function consumer(input, ready, go, ops, warmup, obj) {
  for (let i = 0; i < warmup; i++) input.recv();
  barrier(ready, go);
  const t0 = now();
  let s = 0;
  if (obj) for (let i = 0; i < ops; i++) s = mixItem(s, input.recv());
  else for (let i = 0; i < ops; i++) s = mix(s, input.recv());
  return { t0, t1: now(), checksum: s >>> 0 };
}

/** mpmc: values [from, to) then one -1 sentinel per phase (a consumer stops at its first). */
export function mpmcProducer(out, ready, go, from, to, warmup) {
  for (let i = 0; i < warmup; i++) out.send(0);
  out.send(-1);
  barrier(ready, go);
  const t0 = now();
  for (let i = from; i < to; i++) out.send(i);
  out.send(-1);
  return { t0, t1: now(), checksum: 0 };
}

export function mpmcConsumer(input, ready, go) {
  while (input.recv() !== -1);
  barrier(ready, go);
  const t0 = now();
  let s = 0;
  for (let v = input.recv(); v !== -1; v = input.recv()) s = (s + v) | 0;
  return { t0, t1: now(), checksum: s >>> 0 };
}

/**
 * select scenarios: producer `k` of `n` sends its share of 0..ops-1 (after `warmup` zeros) on
 * its own channel; a consumer takes everything with a select (or, for the plain-recv
 * comparison, with recv on the one fed channel).
 */
export function shareProducer(out, ready, go, k, n, ops, warmup) {
  for (let i = 0; i < warmup; i++) out.send(0);
  barrier(ready, go);
  const t0 = now();
  for (let i = Math.floor((ops * k) / n), end = Math.floor((ops * (k + 1)) / n); i < end; i++) out.send(i);
  return { t0, t1: now(), checksum: 0 };
}

export function selectConsumer(ins, ready, go, ops, warmup) {
  const cases = ins.map((c) => recv(c));
  for (let i = 0; i < warmup; i++) select(cases);
  barrier(ready, go);
  const t0 = now();
  let s = 0;
  for (let i = 0; i < ops; i++) {
    const r = select(cases);
    s = (s + r.value) | 0;
  }
  return { t0, t1: now(), checksum: s >>> 0 };
}

export function recvConsumer(input, ready, go, ops, warmup) {
  for (let i = 0; i < warmup; i++) input.recv();
  barrier(ready, go);
  const t0 = now();
  let s = 0;
  for (let i = 0; i < ops; i++) s = (s + input.recv()) | 0;
  return { t0, t1: now(), checksum: s >>> 0 };
}
