// sab-ring (mpmc): 2 producers, 2 consumers on one 1024-int SAB ring under a futex mutex; parks when empty/full.
//
// Invariants (outside the lock): 0 <= M_TAIL - M_HEAD <= CAP; NE_WAIT/NF_WAIT count the parties
// that registered under the lock and have not yet re-taken it. A party parks only after
// registering, so whoever changes M_HEAD/M_TAIL under the lock sees it and notifies.
import { data, barrier, now, report } from '../lib/worker.mjs';
import { LOCK, M_HEAD, M_TAIL, NE_WAIT, NF_WAIT, M_DATA, CAP, MASK } from './layout.mjs';

const a = new Int32Array(data.sab);
const { ops, warmup } = data;
const SPIN = 100; // brief spin before parking on the mutex: the critical section is a few loads

function lock() {
  if (Atomics.compareExchange(a, LOCK, 0, 1) === 0) return;
  for (let i = 0; i < SPIN; i++) {
    if (Atomics.load(a, LOCK) === 0 && Atomics.compareExchange(a, LOCK, 0, 1) === 0) return;
  }
  // Mark "held, maybe waiters"; once we get it this way we keep 2, so unlock always notifies.
  while (Atomics.exchange(a, LOCK, 2) !== 0) Atomics.wait(a, LOCK, 2);
}

function unlock() {
  if (Atomics.exchange(a, LOCK, 0) === 2) Atomics.notify(a, LOCK, 1);
}

function send(v) {
  lock();
  let t = a[M_TAIL];
  while (((t - a[M_HEAD]) | 0) === CAP) {
    const h = a[M_HEAD];
    a[NF_WAIT]++;
    unlock();
    Atomics.wait(a, M_HEAD, h); // returns at once if a consumer moved M_HEAD since we unlocked
    lock();
    a[NF_WAIT]--;
    t = a[M_TAIL];
  }
  a[M_DATA + (t & MASK)] = v;
  Atomics.store(a, M_TAIL, (t + 1) | 0);
  const wake = a[NE_WAIT] > 0;
  unlock();
  if (wake) Atomics.notify(a, M_TAIL, 1); // outside the lock: the woken consumer needs it
}

function recv() {
  lock();
  let h = a[M_HEAD];
  while (h === a[M_TAIL]) {
    a[NE_WAIT]++;
    unlock();
    Atomics.wait(a, M_TAIL, h);
    lock();
    a[NE_WAIT]--;
    h = a[M_HEAD];
  }
  const v = a[M_DATA + (h & MASK)];
  Atomics.store(a, M_HEAD, (h + 1) | 0);
  const wake = a[NF_WAIT] > 0;
  unlock();
  if (wake) Atomics.notify(a, M_HEAD, 1);
  return v;
}

// Each of the 2 producers sends half of the items and each of the 2 consumers takes exactly
// half: the quotas add up to what is sent, so nobody waits for an item that never comes.
// Producer p sends 2i + p, so together the timed values are 0..ops-1 (checksum: their sum).
const half = ops / 2;
const warmHalf = warmup / 2;
if (data.role === 'producer') {
  for (let i = 0; i < warmHalf; i++) send(i);
  barrier();
  const t0 = now();
  for (let i = 0; i < half; i++) send(2 * i + data.index);
  report(t0, now());
} else {
  for (let i = 0; i < warmHalf; i++) recv();
  barrier();
  const t0 = now();
  let s = 0;
  for (let i = 0; i < half; i++) s = (s + recv()) | 0;
  report(t0, now(), s);
}
