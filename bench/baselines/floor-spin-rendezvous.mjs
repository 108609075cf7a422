// floor-spin: unbuffered (rendezvous) SPSC int channel on one SAB slot, spinning only: a send returns once the consumer took the value.
import { data, barrier, now, report } from '../lib/worker.mjs';
import { mix } from '../lib/checksum.mjs';
import { STATE, VALUE, EMPTY, FULL } from './layout.mjs';

const a = new Int32Array(data.sab);
const { ops, warmup } = data;

if (data.role === 'producer') {
  const send = (v) => {
    a[VALUE] = v;
    Atomics.store(a, STATE, FULL);
    while (Atomics.load(a, STATE) === FULL); // rendezvous: wait until received
  };
  for (let i = 0; i < warmup; i++) send(i);
  barrier();
  const t0 = now();
  for (let i = 0; i < ops; i++) send(i);
  report(t0, now());
} else {
  const recv = () => {
    while (Atomics.load(a, STATE) === EMPTY);
    const v = a[VALUE];
    Atomics.store(a, STATE, EMPTY);
    return v;
  };
  for (let i = 0; i < warmup; i++) recv();
  barrier();
  const t0 = now();
  let s = 0;
  for (let i = 0; i < ops; i++) s = mix(s, recv());
  report(t0, now(), s);
}
