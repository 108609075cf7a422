// The SPSC ring protocol under sab-ring (parks when empty/full) and floor-spin's ring (spins).
// Publish per item: each publish() is one Atomics.store of TAIL, so an item is visible to the
// consumer when its send returns. Layout and invariants: RING in layout.mjs.
//
// Invariants (between calls): 0 <= TAIL - HEAD <= CAP; slots HEAD..TAIL-1 hold published
// items; only the producer writes TAIL and slot contents, only the consumer writes HEAD.
import { HEAD, TAIL, C_WAIT, P_WAIT, CAP, MASK, RING_HEADER_BYTES } from './layout.mjs';

/** Producer end: `reserve()` waits for a free slot and returns its index, then `publish()`. */
export function ringProducer(sab, park) {
  const a = new Int32Array(sab, 0, RING_HEADER_BYTES / 4);
  let tail = 0;
  let head = 0; // last HEAD seen; refreshed only when the ring looks full
  const full = () => ((tail - head) | 0) === CAP;
  return {
    reserve() {
      if (full()) {
        head = Atomics.load(a, HEAD);
        while (full()) {
          if (park) {
            Atomics.store(a, P_WAIT, 1);
            // We store P_WAIT then load HEAD; the consumer stores HEAD then loads P_WAIT (all
            // seq-cst), so either it sees our flag and notifies, or we see its HEAD here.
            head = Atomics.load(a, HEAD);
            if (full()) Atomics.wait(a, HEAD, head);
            Atomics.store(a, P_WAIT, 0);
          }
          head = Atomics.load(a, HEAD);
        }
      }
      return tail & MASK;
    },
    publish() {
      tail = (tail + 1) | 0;
      Atomics.store(a, TAIL, tail); // releases the slot contents written before it
      if (park && Atomics.load(a, C_WAIT) !== 0) Atomics.notify(a, TAIL);
    },
  };
}

/** Consumer end: `peek()` waits for an item and returns its slot index, then `release()`. */
export function ringConsumer(sab, park) {
  const a = new Int32Array(sab, 0, RING_HEADER_BYTES / 4);
  let head = 0;
  let tail = 0; // last TAIL seen (an Atomics.load, so the slots below it are visible)
  return {
    peek() {
      if (head === tail) {
        tail = Atomics.load(a, TAIL);
        while (head === tail) {
          if (park) {
            Atomics.store(a, C_WAIT, 1);
            tail = Atomics.load(a, TAIL); // same handshake as the producer's, mirrored
            if (head === tail) Atomics.wait(a, TAIL, tail);
            Atomics.store(a, C_WAIT, 0);
          }
          tail = Atomics.load(a, TAIL);
        }
      }
      return head & MASK;
    },
    release() {
      head = (head + 1) | 0;
      Atomics.store(a, HEAD, head);
      if (park && Atomics.load(a, P_WAIT) !== 0) Atomics.notify(a, HEAD);
    },
  };
}
