// postmessage: ping-pong over a MessageChannel, one message each way per round trip (worker↔worker; the 'pong' role also serves pingpong-m2w).
import { data, barrier, now, report } from '../lib/worker.mjs';
import { mix, pong } from '../lib/checksum.mjs';

const { port, ops, warmup } = data;
const total = warmup + ops;
let n = 0; // replies received (ping) or pings answered (pong)
let t0 = 0;

if (data.role === 'ping') {
  let s = 0;
  // Ping k carries k during warm-up and k - warmup after, so the timed replies are pong(0..ops-1).
  port.on('message', (reply) => {
    n++;
    if (n > warmup) s = mix(s, reply);
    if (n === warmup) {
      barrier();
      t0 = now();
    }
    if (n === total) return report(t0, now(), s);
    port.postMessage(n < warmup ? n : n - warmup);
  });
  port.postMessage(0);
} else {
  port.on('message', (v) => {
    port.postMessage(pong(v));
    n++;
    if (n === warmup) {
      barrier();
      t0 = now();
    }
    if (n === total) report(t0, now());
  });
}
