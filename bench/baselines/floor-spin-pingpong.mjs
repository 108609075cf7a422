// floor-spin: worker↔worker SAB ping-pong that only spins (Atomics.load loop, never parks) — the floor of a round trip.
import { data, barrier, now, report } from '../lib/worker.mjs';
import { mix, pong } from '../lib/checksum.mjs';
import { STATE, VALUE, PING, PONG } from './layout.mjs';

const a = new Int32Array(data.sab);
const { ops, warmup } = data;

if (data.role === 'ping') {
  const round = (v) => {
    a[VALUE] = v; // published by the store of STATE below
    Atomics.store(a, STATE, PING);
    while (Atomics.load(a, STATE) === PING);
    return a[VALUE]; // the load above saw PONG, so the reply written before it is visible
  };
  for (let i = 0; i < warmup; i++) round(i);
  barrier();
  const t0 = now();
  let s = 0;
  for (let i = 0; i < ops; i++) s = mix(s, round(i));
  report(t0, now(), s);
} else {
  const serve = () => {
    while (Atomics.load(a, STATE) !== PING);
    a[VALUE] = pong(a[VALUE]);
    Atomics.store(a, STATE, PONG);
  };
  for (let i = 0; i < warmup; i++) serve();
  barrier();
  const t0 = now();
  for (let i = 0; i < ops; i++) serve();
  report(t0, now());
}
