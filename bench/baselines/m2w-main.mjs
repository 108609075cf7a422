// The main-thread side of pingpong-m2w: the main thread pings, a worker pongs. The main side
// never blocks: it awaits Atomics.waitAsync (sab-park) or handles port events (postmessage).
import { now, barrierAsync, waitWhile, runParties, portEnds } from '../lib/launch.mjs';
import { mix } from '../lib/checksum.mjs';
import { STATE, VALUE, PING, SLOT_BYTES } from './layout.mjs';

/** sab-park: main `Atomics.waitAsync` ↔ worker `Atomics.wait`, a notify each hop. */
export function sabParkM2W(opts) {
  const sab = new SharedArrayBuffer(SLOT_BYTES);
  const a = new Int32Array(sab);
  const round = async (v) => {
    a[VALUE] = v;
    Atomics.store(a, STATE, PING);
    Atomics.notify(a, STATE);
    while (Atomics.load(a, STATE) === PING) await waitWhile(opts.signal, a, STATE, PING);
    return a[VALUE];
  };
  const main = async ({ barrier, parties }) => {
    for (let i = 0; i < opts.warmup; i++) await round(i);
    await barrierAsync(opts.signal, barrier, parties);
    const t0 = now();
    let s = 0;
    for (let i = 0; i < opts.ops; i++) s = mix(s, await round(i));
    return { t0, t1: now(), checksum: s >>> 0 };
  };
  return runParties(opts, [{ file: 'sab-park-pingpong.mjs', data: { sab, role: 'pong' } }], main);
}

/** postmessage: main port ↔ worker port of one MessageChannel, one message each way. */
export function postMessageM2W(opts) {
  const [mine, theirs] = portEnds();
  const port = mine.data.port;
  const { ops, warmup } = opts;
  const total = warmup + ops;
  const main = ({ barrier, parties }) =>
    new Promise((resolve, reject) => {
      let n = 0;
      let s = 0;
      let t0 = 0;
      port.on('message', (reply) => {
        n++;
        if (n > warmup) s = mix(s, reply);
        if (n === total) {
          const t1 = now();
          port.close();
          return resolve({ t0, t1, checksum: s >>> 0 });
        }
        if (n === warmup) {
          // The worker waits in the barrier too, so no message arrives before the next ping.
          return barrierAsync(opts.signal, barrier, parties).then(() => {
            t0 = now();
            port.postMessage(0);
          }, reject);
        }
        port.postMessage(n < warmup ? n : n - warmup);
      });
      port.postMessage(0);
    });
  const worker = { file: 'postmessage-pingpong.mjs', data: { ...theirs.data, role: 'pong' } };
  return runParties(opts, [{ ...worker, transfer: theirs.transfer }], main);
}
