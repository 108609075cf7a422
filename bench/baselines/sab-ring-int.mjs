// sab-ring: SPSC ring of 1024 ints in a SAB, publish per item, parks when empty/full, notifies only a peer that may be parked.
import { data, barrier, now, report } from '../lib/worker.mjs';
import { mix } from '../lib/checksum.mjs';
import { ringProducer, ringConsumer } from './ring.mjs';
import { CAP, RING_HEADER_BYTES } from './layout.mjs';

const park = data.park ?? true; // floor-spin-ring.mjs reuses this file with park = false
const slots = new Int32Array(data.sab, RING_HEADER_BYTES, CAP);
const { ops, warmup } = data;

if (data.role === 'producer') {
  const p = ringProducer(data.sab, park);
  const send = (v) => {
    slots[p.reserve()] = v;
    p.publish();
  };
  for (let i = 0; i < warmup; i++) send(i);
  barrier();
  const t0 = now();
  for (let i = 0; i < ops; i++) send(i);
  report(t0, now());
} else {
  const c = ringConsumer(data.sab, park);
  const recv = () => {
    const v = slots[c.peek()];
    c.release();
    return v;
  };
  for (let i = 0; i < warmup; i++) recv();
  barrier();
  const t0 = now();
  let s = 0;
  for (let i = 0; i < ops; i++) s = mix(s, recv());
  report(t0, now(), s);
}
