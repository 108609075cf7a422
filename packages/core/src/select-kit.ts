/**
 * @occam/core/select-kit — the small interface that a select is built on, for @occam/select and
 * for anyone adding a new kind of case. Channel internals stay in core: a channel case is made
 * here from a handle, and the select engine (the same one every plain send and receive runs on)
 * is reached through `selectSync` / `selectAsync`.
 *
 * A select over cases runs in passes: 1. `try` each case in the caller's order, and the first
 * that completes wins; 2. `register` each case (a channel case links a waiter that a peer can
 * complete by one compare-and-swap on the select's state word; a case that turns out ready makes
 * the select start over); 3. wait, at most until the nearest `deadline`; 4. `unregister` all.
 * `never` below is the reference implementation of a case: it is never ready and registers
 * nothing. A timer is a case whose `deadline` is its due time and whose `try` fires once due.
 */
import { channelCase, deadlineAfter as channelDeadline, type ChannelCase, type Receiver, type Sender } from './channel.js';
import { SyncOnMainError } from './errors.js';
import { selectAsync as engineAsync, selectSync as engineSync, type Outcome, type Selectable } from './internal/engine.js';
export { INTERRUPTED } from './internal/engine.js';
import { K_RECV, K_SEND, R_CLOSED, R_PEER_DIED, R_POISONED, R_VALUE } from './internal/layout.js';
import { runtime } from './internal/runtime.js';
import { NOT_READY } from './internal/transfer.js';

export type { ChannelCase, Outcome, Selectable };

/** What `Selectable.try` returns when the case cannot complete now. */
export { NOT_READY };
/** The case fired normally (a receive got a value, a send delivered, a timer came due). */
export const FIRED = R_VALUE;
/** A receive case found its channel closed and drained; a send case found it closed. */
export const CLOSED = R_CLOSED;
/** The case's channel is poisoned. */
export const POISONED = R_POISONED;
/**
 * The case's channel is broken, or the other end's last user died (ERR_PEER_DIED; a channel
 * case's `peerDied()` makes the error).
 */
export const PEER_DIED = R_PEER_DIED;

/** The case that is never ready: the reference implementation of `Selectable`. */
export const never: Selectable = Object.freeze({
  try: () => NOT_READY,
  register: () => false,
  unregister: () => undefined,
  isReady: () => false,
  deadline: Infinity,
});

/** A receive on `ch` as a select case. Throws WrongDirectionError on a send-only handle. */
export function recvCase<T>(ch: Receiver<T>): ChannelCase {
  return channelCase(ch, K_RECV);
}

/** A send on `ch` as a select case; `prepare(value)` encodes the value before each select. */
export function sendCase<T>(ch: Sender<T>): ChannelCase {
  return channelCase(ch, K_SEND);
}

/** The runtime's clock (ms, monotonic): deadlines of cases are on it. */
export function now(): number {
  return runtime().parker.now();
}

/** Refuses a select's options that are not what they say: a timeout not a number, a signal not an AbortSignal (ERR_INVALID_ARGUMENT). */
export { checkOptions } from './channel.js';

/** The deadline on `now()`'s clock of a select with `timeout` ms (Infinity for none); NaN is ERR_INVALID_ARGUMENT. */
export function deadlineAfter(timeout: number | undefined): number {
  return channelDeadline(runtime(), timeout);
}

/** Limits of one select. */
export interface SelectLimits {
  /** Do not wait: with no case ready now, return index -1 (a select with a default). */
  poll: boolean;
  /** Absolute deadline on `now()`'s clock (Infinity: none); index -1 once it passes. */
  deadline: number;
  /** Aborting ends the select with index -1 (a sync select sees it only before it parks). */
  signal?: AbortSignal | undefined;
}

/**
 * Runs a select over `cases`, blocking this worker thread until exactly one case fires, trying
 * them in pass 1 in `order` (indices into `cases`). Returns the index that fired and its result
 * (FIRED / CLOSED / POISONED / PEER_DIED), or index -1. A received value is left in `slot` (4 words).
 * Throws SyncOnMainError on the main thread.
 */
export function selectSync(
  cases: readonly Selectable[],
  order: ArrayLike<number>,
  slot: Int32Array,
  limits: SelectLimits,
): Outcome {
  const rt = runtime();
  if (rt.isMain) throw new SyncOnMainError('select');
  return engineSync(rt, cases, order, slot, limits);
}

/** `selectSync` without blocking the thread (the main thread, or a process that also does I/O). */
export function selectAsync(
  cases: readonly Selectable[],
  order: ArrayLike<number>,
  slot: Int32Array,
  limits: SelectLimits,
): Promise<Outcome> {
  return engineAsync(runtime(), cases, order, slot, limits);
}
