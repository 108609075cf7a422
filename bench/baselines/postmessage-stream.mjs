// postmessage: SPSC stream over a MessageChannel, one message per item, bounded by credits (window 0 = rendezvous: each send waits for its ack).
import { data, barrier, now, report } from '../lib/worker.mjs';
import { mix, makeItem, mixItem } from '../lib/checksum.mjs';

const { port, ops, warmup, window, objects } = data;
const total = warmup + ops;
// Items the producer may have sent but not seen acknowledged; the consumer acks in batches of
// a quarter window. Window 0 allows one in flight and the send completes at its ack.
const inFlight = window === 0 ? 1 : window;
const ackEvery = window === 0 ? 1 : Math.max(1, window >> 2);

if (data.role === 'producer') {
  let credits = inFlight;
  let sent = 0;
  let acked = 0;
  let t0 = 0;
  let started = false;
  const pump = () => {
    while (sent < total && credits > 0) {
      if (sent === warmup && !started) {
        if (window === 0 && acked < warmup) return; // the last warm-up send has not completed
        barrier();
        started = true;
        t0 = now();
      }
      const i = sent < warmup ? sent : sent - warmup;
      port.postMessage(objects ? makeItem(i) : i);
      sent++;
      credits--;
    }
    // A buffered send completes when posted; a rendezvous send when acknowledged.
    if (sent === total && (window !== 0 || acked === total)) {
      report(t0, now());
      port.off('message', onAck);
    }
  };
  const onAck = (n) => {
    credits += n;
    acked += n;
    pump();
  };
  port.on('message', onAck);
  pump();
} else {
  let got = 0;
  let unacked = 0;
  let s = 0;
  let t0 = 0;
  port.on('message', (v) => {
    if (got >= warmup) s = objects ? mixItem(s, v) : mix(s, v);
    got++;
    if (++unacked === ackEvery) {
      port.postMessage(unacked);
      unacked = 0;
    }
    if (got === warmup) {
      barrier();
      t0 = now();
    }
    if (got === total) report(t0, now(), s);
  });
}
