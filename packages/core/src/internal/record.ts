/**
 * Process records in the shared heap: [state | id | claim table | taken | result slot |
 * arguments | preheld ends]. A record is settled exactly once; joiners wait on its state word.
 */
import { encodeError } from './errcodec.js';
import {
  P_ARGS,
  P_FAILED,
  P_ID,
  P_OK,
  P_PENDING,
  P_PREHELD,
  P_REFS,
  P_RUNNING,
  P_SETTLING,
  P_SLOT,
  P_STATE,
  S_TAG,
  S_W2,
  TAG_BLOCK,
} from './layout.js';
import { countUser, dropDeadUse, usersWord } from './reap.js';
import { runtime } from './runtime.js';
import { releaseChannelsIn } from '../channel.js';
import { decodeSlot, encodeSlot } from './values.js';

/**
 * Process records are settled exactly once: the first caller to move one out of PENDING/RUNNING
 * (`claimRecord`) writes the result (`publishResult`, or `encodeResult` then `storeResult`);
 * later callers do nothing, and so does a caller whose record has meanwhile been joined, freed
 * and reused by another process. Hosts settle with the return value or the thrown error; main
 * when a worker dies, or for a terminate.
 */

/**
 * Moves record `rec` to SETTLING, if it is still process `id`'s and unsettled; returns the state
 * it had (P_PENDING or P_RUNNING), else -1. Joiners wait on until the result is stored. A process
 * that never started drops its arguments here (main thread), with the users counted for its
 * typed ends; if it `died` (its name), an end it leaves with no user is disconnected.
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
        dropArgs(rec, died);
      } catch (e) {
        // (A bug: the record must still be published, or its joiners would wait for ever.)
        process.emitWarning(`occam: dropping the arguments of a process that never started failed: ${(e as Error).message}`);
      }
    }
    return s;
  }
}

/**
 * Gives back the references record `rec`'s encoded arguments carry, with the users counted for
 * their typed ends (those of a process that never started, or whose thread died before it took
 * them: see P_TAKEN); if it `died` (its name), an end it leaves with no user is disconnected. The
 * block stays, freed with the record.
 */
export function dropArgs(rec: number, died: string | undefined): void {
  const rt = runtime();
  const args = decodeSlot(rt, argsSlot(rec), true);
  dropPreheld(rec, died);
  releaseChannelsIn(args);
}

/**
 * The worker of process `rec`, its own use of its arguments' typed ends counted (as it adopted
 * them), gives back the spawner's count of them (see P_PREHELD).
 */
export function handOverEnds(rec: number): void {
  const h = runtime().heap;
  h.sync();
  const m = h.i32;
  const table = m[(rec >> 2) + P_PREHELD]!;
  if (table === 0) return;
  const t = table >> 2;
  for (let i = 0; i < m[t]!; i++) {
    const e = t + 1 + 4 * i;
    const users = usersWord(m[e]! >> 2, m[e + 2]!);
    // The token and the count in one step: no call between them (see P_PREHELD).
    if (Atomics.compareExchange(m, e + 3, 1, 0) === 1) Atomics.sub(m, users, 1);
  }
}

/**
 * Gives back the spawner's counts of process `rec`'s typed ends that its worker has not handed
 * over (main: a process that never started, or whose thread died first); if it `died` (its
 * name), an end left with no user is disconnected. Called while the references that keep those
 * channels alive are still held (the arguments', or the claim table's).
 */
export function dropPreheld(rec: number, died: string | undefined): void {
  const rt = runtime();
  const h = rt.heap;
  h.sync();
  const table = h.i32[(rec >> 2) + P_PREHELD]!;
  if (table === 0) return;
  const t = table >> 2;
  for (let i = 0; i < h.i32[t]!; i++) {
    const m = h.i32; // (a disconnection allocates: the views may change)
    const e = t + 1 + 4 * i;
    if (Atomics.compareExchange(m, e + 3, 1, 0) !== 1) continue;
    if (died !== undefined) dropDeadUse(rt, m[e]!, m[e + 1]!, m[e + 2]!, died);
    else countUser(rt, m[e]!, m[e + 2]!, -1);
  }
}

/** A copy of record `rec`'s arguments slot; their block stays with the record (see freeRecord). */
export function argsSlot(rec: number): Int32Array {
  const h = runtime().heap;
  h.sync();
  return h.i32.slice((rec >> 2) + P_ARGS, (rec >> 2) + P_ARGS + 4);
}

/** Writes the result of a record claimed by `claimRecord`, and wakes its joiners. */
export function publishResult(rec: number, state: typeof P_OK | typeof P_FAILED, value: unknown): void {
  storeResult(rec, encodeResult(state, value));
}

/** A result encoded for its record (`storeResult`): its state, and the slot. */
export interface EncodedResult {
  state: typeof P_OK | typeof P_FAILED;
  slot: Int32Array;
}

/** Encodes a result (a value that cannot be sent fails the process instead). */
export function encodeResult(state: typeof P_OK | typeof P_FAILED, value: unknown): EncodedResult {
  const rt = runtime();
  const slot = new Int32Array(4);
  try {
    encodeSlot(rt, state === P_OK ? value : encodeError(value), slot);
  } catch (e) {
    state = P_FAILED;
    encodeSlot(rt, encodeError(e), slot);
  }
  return { state, slot };
}

/** Writes an encoded result into claimed record `rec`, and wakes its joiners: the record is settled. */
export function storeResult(rec: number, { state, slot }: EncodedResult): void {
  const h = runtime().heap;
  h.sync();
  h.i32.set(slot, (rec >> 2) + P_SLOT);
  const st = (rec >> 2) + P_STATE;
  // seq-cst store publishes the slot to joiners.
  Atomics.store(h.i32, st, state);
  Atomics.notify(h.i32, st);
}

/**
 * Frees a settled record, with its claim table (whose entries nobody holds any more: see P_REFS)
 * and its arguments' block (whose references have been taken or given back).
 */
export function freeRecord(rec: number): void {
  const h = runtime().heap;
  h.sync();
  const table = h.i32[(rec >> 2) + P_REFS]!;
  if (table !== 0) h.free(table);
  const preheld = h.i32[(rec >> 2) + P_PREHELD]!;
  if (preheld !== 0) h.free(preheld);
  if (h.i32[(rec >> 2) + P_ARGS + S_TAG] === TAG_BLOCK) h.free(h.i32[(rec >> 2) + P_ARGS + S_W2]!);
  h.free(rec);
}
