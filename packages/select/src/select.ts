/**
 * select: wait on several channel operations and timers at once; exactly one happens.
 *
 * Every case is tried in a random order (fair: each ready case is equally likely) or in the given
 * order (`priority`: the first ready case wins, occam's PRI ALT). If none is ready, the select
 * registers on all of them and waits; the first peer to complete one of its cases wins by one
 * compare-and-swap, and the others are withdrawn. With `default: true` it never waits.
 */
import {
  AbortError,
  ChannelClosedError,
  ChannelPoisonedError,
  EmptySelectError,
  InvalidArgumentError,
  TimeoutError,
} from '@occam/core';
import {
  checkOptions,
  CLOSED,
  deadlineAfter,
  FIRED,
  INTERRUPTED,
  never as neverReady,
  PEER_DIED,
  POISONED,
  selectAsync as kitAsync,
  selectSync as kitSync,
} from '@occam/core/select-kit';
import type { Outcome, Selectable, SelectLimits } from '@occam/core/select-kit';
import { RecvCase, SendCase, Timer, type Case } from './cases.js';

/** Options of a select. */
export interface SelectOptions {
  /** Never wait: with no case ready now, return `{ index: -1, kind: 'default' }` (Go's `default:`). */
  default?: boolean;
  /** Take the first ready case in the given order, instead of a uniformly random ready case. */
  priority?: boolean;
  /** Give up after this many milliseconds with TimeoutError; no case fires. */
  timeout?: number;
  /**
   * Give up when this signal aborts, with AbortError; no case fires. A sync select in a worker
   * sees the signal before it parks (the thread cannot run abort listeners while parked).
   */
  signal?: AbortSignal;
}

/** A receive case fired: with a value, or with `ok: false` when the channel is closed and drained. */
export type Received<T, I extends number = number> =
  | { readonly index: I; readonly kind: 'recv'; readonly ok: true; readonly value: T }
  | { readonly index: I; readonly kind: 'recv'; readonly ok: false; readonly value: undefined };
/** A send case fired: its value was delivered (or buffered). */
export interface Sent<I extends number = number> {
  readonly index: I;
  readonly kind: 'send';
}
/** A timer fired; `at` is its due time on this thread's clock, `performance.now()` (for a tick: start + k·period). */
export interface TimerFired<I extends number = number> {
  readonly index: I;
  readonly kind: 'timer';
  readonly at: number;
}
/** No case was ready and the select had `default: true`. */
export interface Defaulted {
  readonly index: -1;
  readonly kind: 'default';
}

type Fired<C, I extends number> =
  C extends RecvCase<infer T> ? Received<T, I> : C extends SendCase<any> ? Sent<I> : C extends Timer ? TimerFired<I> : never;

/** The result of a select over the cases `C`: which case fired (`index`, narrowing the rest), and how. */
export type Selected<C extends readonly Case[]> = {
  [K in keyof C]: Fired<C[K], K extends `${infer I extends number}` ? I : number>;
}[number];

// A sync select runs to completion before the next one on its thread: it shares these.
const syncSlot = new Int32Array(4);
const syncList: Selectable[] = [];
const syncLimits: SelectLimits = { poll: false, deadline: Infinity, signal: undefined };

/** xorshift32, seeded per thread: the fair choice needs speed, not cryptography. */
let seed = (Math.random() * 0x7fff_ffff) | 1;
function random(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

/** Up to this many cases, a fair order is one of the precomputed permutations, picked at random. */
const SMALL = 5;
/** Every permutation of 0..n-1, for n <= SMALL; and the identity (priority order) for any n. */
const permutations: Int32Array[][] = [];
const identities: Int32Array[] = [];
for (let n = 0; n <= SMALL; n++) permutations.push(permute(n).map((p) => Int32Array.from(p)));

function permute(n: number): number[][] {
  if (n === 0) return [[]];
  return permute(n - 1).flatMap((p) => Array.from({ length: n }, (_, at) => [...p.slice(0, at), n - 1, ...p.slice(at)]));
}

/** The order pass 1 tries the cases in: a uniformly random permutation (fair), or 0..n-1 (priority). */
function orderOf(n: number, priority: boolean, own: boolean): Int32Array {
  if (priority) return (identities[n] ??= Int32Array.from({ length: n }, (_, i) => i));
  if (n <= SMALL) {
    const all = permutations[n]!;
    return all[random(all.length)]!;
  }
  const order = own ? new Int32Array(n) : (scratch[n] ??= new Int32Array(n));
  // Fisher–Yates: a uniform permutation, so the first ready case in it is uniform among the ready.
  for (let i = 0; i < n; i++) {
    const j = random(i + 1);
    order[i] = order[j]!;
    order[j] = i;
  }
  return order;
}
const scratch: Int32Array[] = [];

/** Send cases among the engine's list get their values encoded (flag 1 in the result). */
const HAS_SENDS = 1;

/**
 * Validates the cases and options and fills `list`, the engine's cases (a switched-off case is
 * `never`); encodes the values of send cases, outside every lock. Returns HAS_SENDS or 0.
 */
function prepare(cases: readonly Case[], opts: SelectOptions | undefined, list: Selectable[]): number {
  if (!Array.isArray(cases)) throw new TypeError('select takes an array of cases: select([recv(a), after(100)])');
  if (list.length !== cases.length) list.length = cases.length; // (setting it costs, even unchanged)
  let live = false;
  let flags = 0;
  let i = 0;
  try {
    for (; i < cases.length; i++) {
      const c = cases[i]!;
      if (typeof (c as Partial<Case> | null)?.selectable !== 'function') {
        throw new InvalidArgumentError(`select case ${i} is not a case (recv, send, after, tick, deadline, never): ${String(c)}`);
      }
      const s = c.selectable();
      list[i] = s;
      if (s === neverReady) continue;
      live = true;
      if (c.kind === 'send') {
        c.impl!.prepare(c.value);
        flags = HAS_SENDS;
      } else if (c.kind === 'recv') c.impl!.prepare();
    }
  } catch (e) {
    if (flags !== 0) discardSends(cases, list, i, -1);
    throw e;
  }
  if (!live && opts?.default !== true && opts?.timeout === undefined && opts?.signal === undefined) {
    if (flags !== 0) discardSends(cases, list, cases.length, -1);
    throw new EmptySelectError(
      cases.length === 0
        ? 'select has no cases; give it at least one case, a default, a timeout or a signal'
        : 'every case of this select is switched off (guard false, or a null channel), and it has no default, timeout or signal: it would wait forever',
    );
  }
  return flags;
}

/**
 * Settles the send cases [0, end): `delivered` (the index of a send that delivered, or -1) hands
 * its value over; the others drop their encoded values (a case prepared twice by mistake is
 * dropped once: `discard` is idempotent).
 */
function discardSends(cases: readonly Case[], list: readonly Selectable[], end: number, delivered: number): void {
  for (let i = 0; i < end; i++) {
    const c = cases[i]!;
    if (list[i] === neverReady || !(c instanceof SendCase)) continue;
    if (i === delivered) c.impl!.delivered();
    else c.impl!.discard();
  }
}

function deadlineOf(opts: SelectOptions | undefined): number {
  return deadlineAfter(opts?.timeout);
}

/** Turns the engine's outcome into the caller's result (or error). */
function finish(
  cases: readonly Case[],
  list: readonly Selectable[],
  flags: number,
  o: Outcome,
  slot: Int32Array,
  opts: SelectOptions | undefined,
): unknown {
  const i = o.index;
  if (flags !== 0) discardSends(cases, list, cases.length, o.result === FIRED ? i : -1);
  if (i < 0) {
    if (i === INTERRUPTED) throw Object.assign(new AbortError(), { message: 'the task was aborted while it waited in a select' });
    if (opts?.signal?.aborted) throw new AbortError(opts.signal.reason);
    if (opts?.default === true) return DEFAULTED;
    throw new TimeoutError(opts?.timeout ?? 0);
  }
  const c = cases[i]!;
  if (o.result === POISONED) throw ofCase(new ChannelPoisonedError(), i);
  if (o.result === PEER_DIED && (c.kind === 'recv' || c.kind === 'send')) throw ofCase(c.impl!.peerDied(), i);
  if (c.kind === 'recv') {
    if (o.result === CLOSED) return { index: i, kind: 'recv', ok: false, value: undefined };
    return { index: i, kind: 'recv', ok: true, value: c.impl!.take(slot) };
  }
  if (c.kind === 'send') {
    if (o.result === CLOSED) throw ofCase(new ChannelClosedError(`send on a closed channel (select case ${i}); the value was not sent`), i);
    return { index: i, kind: 'send' };
  }
  return { index: i, kind: 'timer', at: (c as Timer).firedAt };
}

/** `err`, marked as the failure of case `i` (`caseIndex`): a loop can drop that case and go on. */
function ofCase(err: Error, i: number): Error {
  Object.defineProperty(err, 'caseIndex', { value: i, enumerable: true });
  return err;
}

const DEFAULTED: Defaulted = Object.freeze({ index: -1, kind: 'default' });

/**
 * Waits until exactly one of `cases` happens, blocking this worker thread, and returns which and
 * how. A receive on a closed channel fires with `ok: false`; a send on a closed channel throws
 * ChannelClosedError; a poisoned channel throws ChannelPoisonedError; a case whose peer died
 * (its other end's last user, see PeerDiedError) throws PeerDiedError, but only when no other
 * case is ready. Such an error's `caseIndex` is the case's index. Throws SyncOnMainError on
 * the main thread (use `selectAsync` there). The result narrows on `r.index` when the cases are
 * written inline or kept `as const`.
 *
 * ```ts
 * const r = select([recv(replies), after(100)]);
 * if (r.index === 0 && r.ok) use(r.value);
 * ```
 */
export function select<const C extends readonly Case[]>(cases: C, opts: SelectOptions & { default: false }): Selected<C>;
export function select<const C extends readonly Case[]>(cases: C, opts: SelectOptions & { default: boolean }): Selected<C> | Defaulted;
export function select<const C extends readonly Case[]>(cases: C, opts?: SelectOptions): Selected<C>;
export function select(cases: readonly Case[], opts?: SelectOptions): unknown {
  checkOptions(opts);
  const list = syncList;
  const flags = prepare(cases, opts, list);
  let o: Outcome;
  try {
    const limits = syncLimits;
    limits.poll = opts?.default === true;
    limits.deadline = deadlineOf(opts);
    limits.signal = opts?.signal;
    o = kitSync(list, orderOf(list.length, opts?.priority === true, false), syncSlot, limits);
  } catch (e) {
    if (flags !== 0) discardSends(cases, list, cases.length, -1);
    throw e;
  }
  return finish(cases, list, flags, o, syncSlot, opts);
}

/**
 * `select` without blocking the thread: for the main thread, and for processes that also do I/O.
 * An AbortSignal in `opts` cancels the whole select, and no case fires.
 */
export function selectAsync<const C extends readonly Case[]>(cases: C, opts: SelectOptions & { default: false }): Promise<Selected<C>>;
export function selectAsync<const C extends readonly Case[]>(
  cases: C,
  opts: SelectOptions & { default: boolean },
): Promise<Selected<C> | Defaulted>;
export function selectAsync<const C extends readonly Case[]>(cases: C, opts?: SelectOptions): Promise<Selected<C>>;
export async function selectAsync(cases: readonly Case[], opts?: SelectOptions): Promise<unknown> {
  checkOptions(opts);
  const list: Selectable[] = [];
  const flags = prepare(cases, opts, list);
  const slot = new Int32Array(4);
  // The handles stay usable while we wait: a release() meanwhile takes effect when we finish.
  for (const c of cases) if (c instanceof RecvCase || c instanceof SendCase) c.impl?.enter();
  let o: Outcome;
  try {
    o = await kitAsync(list, orderOf(list.length, opts?.priority === true, true), slot, {
      poll: opts?.default === true,
      deadline: deadlineOf(opts),
      signal: opts?.signal,
    });
  } catch (e) {
    if (flags !== 0) discardSends(cases, list, cases.length, -1);
    throw e;
  } finally {
    for (const c of cases) if (c instanceof RecvCase || c instanceof SendCase) c.impl?.leave();
  }
  return finish(cases, list, flags, o, slot, opts);
}
