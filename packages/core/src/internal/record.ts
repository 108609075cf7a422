/**
 * Process records in the shared heap: [state | result slot]. A record is settled exactly once;
 * joiners wait on its state word.
 */
import { encodeError } from './errcodec.js';
import { P_ARGS, P_FAILED, P_ID, P_OK, P_PENDING, P_RUNNING, P_SETTLING, P_SLOT, P_STATE } from './layout.js';
import { runtime } from './runtime.js';
import { preholdEnds, releaseChannelsIn } from '../channel.js';
import { decodeSlot, encodeSlot } from './values.js';

/**
 * Settles process record `rec` of process `id` once: the first caller to move it out of
 * PENDING/RUNNING writes the result slot (and gets the state it had); later callers do nothing (-1), and so does a caller whose
 * record has meanwhile been joined, freed and reused by another process. Used by hosts (return,
 * throw) and by main (worker died). `who` names the process (for the peers of one that failed
 * before it started).
 */
export function settle(rec: number, id: number, state: typeof P_OK | typeof P_FAILED, value: unknown, who: string): number {
  const was = claimRecord(rec, id, state === P_FAILED ? who : undefined);
  if (was >= 0) publishResult(rec, state, value);
  return was;
}

/**
 * The first half of `settle`: moves the record to SETTLING, if it is still process `id`'s and
 * unsettled; returns the state it had (P_PENDING or P_RUNNING), else -1. Joiners wait on until `publishResult`. A process that never started
 * drops its arguments here (main thread), with the users counted for its typed ends; if it
 * `died` (its name), an end it leaves with no user is disconnected.
 */
export function claimRecord(rec: number, id: number, died: string | undefined): number {
  const rt = runtime();
  const h = rt.heap;
  h.sync();
  const st = (rec >> 2) + P_STATE;
  for (;;) {
    if (Atomics.load(h.i32, (rec >> 2) + P_ID) !== id) return -1;
    const s = Atomics.load(h.i32, st);
    if (s !== P_PENDING && s !== P_RUNNING) return -1;
    if (Atomics.compareExchange(h.i32, st, s, P_SETTLING) !== s) continue;
    if (s === P_PENDING) {
      try {
        const args = decodeSlot(rt, h.i32.slice((rec >> 2) + P_ARGS, (rec >> 2) + P_ARGS + 4));
        preholdEnds(args, -1, died);
        releaseChannelsIn(args);
      } catch (e) {
        // (A bug: the record must still be published, or its joiners would wait for ever.)
        process.emitWarning(`occam: dropping the arguments of a process that never started failed: ${(e as Error).message}`);
      }
    }
    return s;
  }
}

/** The second half of `settle`: writes the result of a record claimed by `claimRecord`, and wakes its joiners. */
export function publishResult(rec: number, state: typeof P_OK | typeof P_FAILED, value: unknown): void {
  const rt = runtime();
  const h = rt.heap;
  const slot = new Int32Array(4);
  try {
    encodeSlot(rt, state === P_OK ? value : encodeError(value), slot);
  } catch (e) {
    state = P_FAILED;
    encodeSlot(rt, encodeError(e), slot);
  }
  h.sync();
  h.i32.set(slot, (rec >> 2) + P_SLOT);
  const st = (rec >> 2) + P_STATE;
  // seq-cst store publishes the slot to joiners.
  Atomics.store(h.i32, st, state);
  Atomics.notify(h.i32, st);
}
