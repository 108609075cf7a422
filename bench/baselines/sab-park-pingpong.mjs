// sab-park: worker↔worker SAB ping-pong that always parks (Atomics.wait / Atomics.notify: a futex wake each hop).
// The 'pong' role is also the worker side of pingpong-m2w (the main side is in m2w-main.mjs).
import { data, barrier, now, report } from '../lib/worker.mjs';
import { mix, pong } from '../lib/checksum.mjs';
import { STATE, VALUE, PING, PONG } from './layout.mjs';

const a = new Int32Array(data.sab);
const { ops, warmup } = data;

if (data.role === 'ping') {
  const round = (v) => {
    a[VALUE] = v;
    Atomics.store(a, STATE, PING);
    Atomics.notify(a, STATE);
    // Atomics.wait compares STATE under the waiter lock, so a PONG stored before it returns at once.
    while (Atomics.load(a, STATE) === PING) Atomics.wait(a, STATE, PING);
    return a[VALUE];
  };
  for (let i = 0; i < warmup; i++) round(i);
  barrier();
  const t0 = now();
  let s = 0;
  for (let i = 0; i < ops; i++) s = mix(s, round(i));
  report(t0, now(), s);
} else {
  const serve = () => {
    while (Atomics.load(a, STATE) !== PING) Atomics.wait(a, STATE, PONG);
    a[VALUE] = pong(a[VALUE]);
    Atomics.store(a, STATE, PONG);
    Atomics.notify(a, STATE);
  };
  for (let i = 0; i < warmup; i++) serve();
  barrier();
  const t0 = now();
  for (let i = 0; i < ops; i++) serve();
  report(t0, now());
}
