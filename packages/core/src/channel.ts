/**
 * Channels: typed handles onto channel records in the shared heap.
 *
 * A handle is a small value (heap offset, channel id, runtime id, direction). It can be passed to
 * a process as an argument or sent over another channel; the codec rebuilds it on the other side.
 * Every handle holds one reference; the channel is freed when the last one goes (`release()`, or
 * when the handle is garbage collected), after which stale handles fail with ERR_INVALID_HANDLE.
 */
import { Err, Ok, type Result } from 'ts-results-es';
import {
  AbortError,
  ChannelClosedError,
  ChannelEmptyError,
  ChannelFullError,
  ChannelPoisonedError,
  HeapExhaustedError,
  InvalidArgumentError,
  InvalidCapacityError,
  InvalidHandleError,
  MessageTooLargeError,
  NotSendableError,
  PeerDiedError,
  SyncOnMainError,
  TimeoutError,
  TooManyWaitersError,
  WrongDirectionError,
} from './errors.js';
import { HANDLE_BRAND } from './internal/codec.js';
import {
  INTERRUPTED,
  flushWakes,
  isCaseReady,
  maxWaiters,
  nap,
  opAsync,
  opSync,
  progress,
  registerCase,
  spinBudget,
  tryCase,
  unregisterCase,
  type Case,
  type Outcome,
  type Selectable,
} from './internal/engine.js';
import {
  RING_OK,
  ringBytes,
  ringDequeue,
  ringEnqueue,
  ringFillHint,
  ringInit,
  ringLength,
  ringOf,
  ringSurelyEmpty,
  type Ring,
} from './internal/ring.js';
import {
  C_BUF,
  C_CAP,
  C_DIED,
  C_FLAGS,
  C_ID,
  C_LOCK,
  C_MAGIC,
  C_NAME,
  C_NAME_LEN,
  C_NRECV,
  C_NSEND,
  C_REFS,
  C_RSIZE,
  C_RWRAP,
  C_WORDS,
  CHAN_MAGIC,
  F_BROKEN,
  F_CLOSED,
  F_POISONED,
  F_RECEIVERS_GONE,
  F_SENDERS_GONE,
  F_SHUT,
  H_LIVE_CHANNELS,
  R_OVERFLOW,
  K_RECV,
  K_SEND,
  MAX_CAPACITY,
  P_REFS,
  P_TAKEN,
  R_CLOSED,
  R_PEER_DIED,
  R_POISONED,
  R_VALUE,
} from './internal/layout.js';
import { setBrokenLockError } from './internal/heap.js';
import { loadName, storeName } from './internal/names.js';
import { dropHeld, holdRef, takeOrphans } from './internal/held.js';
import { countUser, diedOn, noteUse, setValueDiscarder, takeOrphanValues } from './internal/reap.js';
import { runtime, type Runtime } from './internal/runtime.js';
import { dropArgs, dropPreheld } from './internal/record.js';
import { NOT_READY, pumpReceiversLocked, pumpSendersLocked, ringAt, shutLocked } from './internal/transfer.js';
import { decodeSlot, discardSlot, encodeSlot, installHandleSupport } from './internal/values.js';

/** Options of a blocking operation. */
export interface OpOptions {
  /** Give up after this many milliseconds with TimeoutError; nothing is sent or received. */
  timeout?: number;
  /**
   * Give up when this signal aborts, with AbortError; nothing is sent or received. A sync op in a
   * worker checks the signal before it parks (the thread cannot run abort listeners while parked).
   */
  signal?: AbortSignal;
  /**
   * Async operations (`sendAsync`, `recvAsync`, ...): `false` lets the program exit while this
   * operation waits, as an unref'd timer does; deadlock detection then does not count it as main
   * waiting either. Default `true`: a pending async operation keeps the program alive.
   */
  ref?: boolean;
}

/** Why a blocking receive produced no value. */
export type RecvError =
  | ChannelClosedError
  | ChannelPoisonedError
  | PeerDiedError
  | TimeoutError
  | AbortError
  | TooManyWaitersError;
/** Why a blocking send delivered nothing. */
export type SendError =
  | ChannelClosedError
  | ChannelPoisonedError
  | PeerDiedError
  | TimeoutError
  | AbortError
  | NotSendableError
  | MessageTooLargeError
  | HeapExhaustedError
  | TooManyWaitersError;
/** Why `trySend` delivered nothing; full and closed carry the value back. */
export type TrySendError<T> =
  | ChannelFullError<T>
  | ChannelClosedError
  | ChannelPoisonedError
  | PeerDiedError
  | NotSendableError
  | MessageTooLargeError
  | HeapExhaustedError;
/** Why `tryRecv` produced no value. */
export type TryRecvError = ChannelEmptyError | ChannelClosedError | ChannelPoisonedError | PeerDiedError;

/**
 * The sending end of a channel (`ch.sender()`, or a process's typed argument): the Channel
 * methods of the same names, whose doc comments say more.
 */
export interface Sender<T> {
  /** The name given at creation, or `chan#<id>`. */
  readonly name: string;
  /** Values buffered now. */
  readonly len: number;
  /** The capacity (0: rendezvous). */
  readonly cap: number;
  /** Sends, blocking this worker until a receiver takes the value (or it is buffered). */
  send(value: T, opts?: OpOptions): void;
  /** Sends without blocking the thread (main thread, or a process that also does I/O). */
  sendAsync(value: T, opts?: OpOptions): Promise<void>;
  /** Sends only if a receiver is waiting or there is room; never blocks. */
  trySend(value: T): Result<void, TrySendError<T>>;
  /** Closes the channel: receivers drain what is buffered, then see closed. */
  close(): void;
  /** Poisons the channel: every pending and later operation on it, at both ends, fails. */
  poison(): void;
  /** Whether the channel is poisoned. */
  readonly poisoned: boolean;
  /** Whether a process died in the middle of an operation on it (see `Channel.broken`). */
  readonly broken: boolean;
  /** Gives this handle's reference back; the handle is unusable after. */
  release(): void;
}

/**
 * The receiving end of a channel (`ch.receiver()`, or a process's typed argument): the Channel
 * methods of the same names, whose doc comments say more. Iterating it receives until close.
 */
export interface Receiver<T> extends Iterable<T>, AsyncIterable<T> {
  /** The name given at creation, or `chan#<id>`. */
  readonly name: string;
  /** Values buffered now. */
  readonly len: number;
  /** The capacity (0: rendezvous). */
  readonly cap: number;
  /** Receives, blocking this worker until a value arrives; throws ChannelClosedError once closed and drained. */
  recv(opts?: OpOptions): T;
  /** Receives without blocking the thread; rejects with ChannelClosedError once closed and drained. */
  recvAsync(opts?: OpOptions): Promise<T>;
  /** `recv` that returns the failure instead of throwing it. */
  recvResult(opts?: OpOptions): Result<T, RecvError>;
  /** `recvAsync` that resolves to the failure instead of rejecting. */
  recvResultAsync(opts?: OpOptions): Promise<Result<T, RecvError>>;
  /** Receives only if a value is buffered or a sender is waiting; never blocks. */
  tryRecv(): Result<T, TryRecvError>;
  /** Poisons the channel: every pending and later operation on it, at both ends, fails. */
  poison(): void;
  /** Whether the channel is poisoned. */
  readonly poisoned: boolean;
  /** Whether a process died in the middle of an operation on it (see `Channel.broken`). */
  readonly broken: boolean;
  /** Gives this handle's reference back; the handle is unusable after. */
  release(): void;
}

const BOTH = 0;
const SEND_ONLY = 1;
const RECV_ONLY = 2;
const END_NAMES = ['', 'send-only', 'receive-only'];

/** The outcome of a receive that the lock-free buffer path completed. */
const RECEIVED: Outcome = Object.freeze({ index: 0, result: R_VALUE });

// Sync ops run one at a time per thread: they share these scratch records.
const sendVal = new Int32Array(4);
const recvOut = new Int32Array(4);
const oneCase: Case = { chan: 0, kind: 0, val: undefined };
/** Where an async send's op puts what it receives: nothing it reads, so every send shares it. */
const sendOut = new Int32Array(4);

// Keys of the handle methods that only select cases (below) use.
const ENTER = Symbol('enter');
const LEAVE = Symbol('leave');
const CASE = Symbol('case');
const CHECK = Symbol('check');
const HOLD = Symbol('hold');
const END = Symbol('end');
const REF = Symbol('ref');
const ARG_ENTRY = Symbol('argEntry');
const DETACH = Symbol('detach');

const names = new Map<number, string>(); // channel id → name, cached from the heap
const registry = new FinalizationRegistry<{ off: number; id: number; argAt?: number; held?: number }>((h) => {
  if (h.argAt !== undefined ? claimEntry(h.argAt) : dropHeld(runtime(), h.held ?? -1)) releaseRef(runtime(), h.off, h.id);
});

/** Claims entry `at` of a claim table (see `listArgRefs`): true for the one caller that may give its reference back. */
function claimEntry(at: number): boolean {
  return Atomics.exchange(runtime().heap.i32, at, 0) !== 0;
}

/** A channel handle. Create one with `chan()`. */
export class Channel<T> implements Sender<T>, Receiver<T> {
  readonly #off: number;
  readonly #id: number;
  readonly #dir: number;
  #released = false;
  /** Its entry in a process's claim table (word index), or 0: see ARG_ENTRY. */
  #argAt = 0;
  /** Its entry in this worker's table of held references (internal/held.ts), or -1 (main; an argument's). */
  #held = -1;
  /** Async ops of this handle still in flight: `release()` waits for them to end. */
  #inFlight = 0;
  #releaseLater = false;

  /**
   * @internal Use `chan()`; a handle adopts one reference. In a worker it is listed among the
   * thread's held references, unless `held` is false (a process's argument: see listArgRefs).
   */
  constructor(off: number, id: number, dir: number, held = true) {
    this.#off = off;
    this.#id = id;
    this.#dir = dir;
    // In a worker, its reference is listed: should the thread die, main gives it back.
    const rt = runtime();
    if (!rt.isMain && held) this.#held = holdRef(rt, off, id);
    registry.register(this, { off, id, held: this.#held }, this);
    const m = this.#mem();
    const c = off >> 2;
    // The ring's place and shape never change: cache them for the lock-free paths.
    if (m[c + C_CAP] !== 0) this.#ring = { ...ringAt(m, c) }; // a copy: ringAt's descriptor is reused
  }

  readonly #ring: Ring | undefined;
  /** Whether this handle's last buffer op completed at its first look (see pollRing). */
  #streak = false;

  /**
   * A send that finds room in the buffer completes without the channel lock. Then, if receivers
   * are parked (they looked before this value landed), it hands buffered values to them.
   */
  #fastSend(rt: Runtime, val: Int32Array, wait = NO_WAIT): boolean {
    const g = this.#ring;
    if (g === undefined) return false;
    const m = rt.heap.i32;
    if (ringEnqueue(m, g, val) !== RING_OK) {
      const attempt = (): number => ringEnqueue(m, g, val);
      const streak = this.#streak;
      this.#streak = false;
      if (wait === NO_WAIT || !(pollRing(rt, attempt, streak) || (wait === NAP && napRing(rt, m, g, attempt)))) return false;
    } else this.#streak = true;
    letParkedIn(rt, this.#off >> 2, g, C_NRECV, pumpReceiversLocked);
    return true;
  }

  /**
   * Whether a try that missed the buffer (full for a send, empty for a receive) may say so without
   * the lock: a buffered channel, the buffer still full or empty (`waiting` C_NRECV: a send),
   * nobody of the other kind parked, neither shut nor disconnected (`gone`). The buffer is looked
   * at first and the flags last: close only ever sets its flag, so at the first look the channel
   * was open too, and that is when the try took effect. Else the locked path decides. Spares
   * polling code (a worker taking tasks, a loop) the lock that the other side's operations need.
   */
  #plainly(m: Int32Array, waiting: number, gone: number): boolean {
    const g = this.#ring;
    if (g === undefined) return false;
    const c = this.#off >> 2;
    // Full: the enqueue position read first (ringLength); empty: the dequeue position first.
    if (waiting === C_NRECV ? ringLength(m, g) !== g.cap : !ringSurelyEmpty(m, g)) return false;
    return Atomics.load(m, c + waiting) === 0 && (Atomics.load(m, c + C_FLAGS) & (F_SHUT | gone)) === 0;
  }

  /** A receive that finds a buffered value completes without the lock; then it lets parked senders in. */
  #fastRecv(rt: Runtime, out: Int32Array, wait = NO_WAIT): boolean {
    const g = this.#ring;
    if (g === undefined) return false;
    const m = rt.heap.i32;
    if ((m[(this.#off >> 2) + C_FLAGS]! & F_POISONED) !== 0) return false; // poison drops what is buffered
    if (ringDequeue(m, g, out, false) === RING_OK) this.#streak = true;
    else {
      const streak = this.#streak;
      this.#streak = false;
      if (wait === NO_WAIT || !pollRing(rt, () => ringDequeue(m, g, out, false), streak)) return false;
    }
    letParkedIn(rt, this.#off >> 2, g, C_NSEND, pumpSendersLocked);
    return true;
  }

  /** The name given at creation, or `chan#<id>`. */
  get name(): string {
    let n = names.get(this.#id);
    if (n === undefined) {
      const rt = runtime();
      rt.heap.sync();
      n = channelNameAt(rt, this.#off);
      names.set(this.#id, n);
    }
    return n;
  }
  /** Values buffered now. */
  get len(): number {
    return this.#ring === undefined ? 0 : ringLength(this.#mem(), this.#ring);
  }
  /** The capacity (0: rendezvous). */
  get cap(): number {
    return this.#mem()[(this.#off >> 2) + C_CAP]!;
  }
  /** Senders parked on this channel now (tests synchronise on it). */
  get waitingSenders(): number {
    return Atomics.load(this.#mem(), (this.#off >> 2) + C_NSEND);
  }
  /** Receivers parked on this channel now. */
  get waitingReceivers(): number {
    return Atomics.load(this.#mem(), (this.#off >> 2) + C_NRECV);
  }
  /** Whether `close()` has been called. */
  get closed(): boolean {
    return (Atomics.load(this.#mem(), (this.#off >> 2) + C_FLAGS) & F_CLOSED) !== 0;
  }
  /** Whether the channel is poisoned. */
  get poisoned(): boolean {
    return (Atomics.load(this.#mem(), (this.#off >> 2) + C_FLAGS) & F_POISONED) !== 0;
  }

  /**
   * Whether the channel is broken: a process died in the middle of an operation on it, holding
   * its lock. Every operation on a broken channel fails with PeerDiedError (ERR_PEER_DIED); it is
   * never repaired — make a new one. (It also reads as poisoned.)
   */
  get broken(): boolean {
    return (Atomics.load(this.#mem(), (this.#off >> 2) + C_FLAGS) & F_BROKEN) !== 0;
  }

  /** A send-only handle on the same channel (its own reference). */
  sender(): Sender<T> {
    return this.#derive(SEND_ONLY);
  }
  /** A receive-only handle on the same channel (its own reference). */
  receiver(): Receiver<T> {
    return this.#derive(RECV_ONLY);
  }

  /** Sends, blocking this worker until a receiver takes the value (or it is buffered). */
  send(value: T, opts?: OpOptions): void {
    const rt = this.#check('send', SEND_ONLY, true);
    checkOptions(opts);
    encodeSlot(rt, value, sendVal);
    // With no limits, a full buffer is waited out by polling, then napping: a receiver that makes
    // room then need not wake us (see napRing).
    const wait = opts === undefined || (opts.timeout === undefined && opts.signal === undefined) ? NAP : POLL;
    if (opts?.signal?.aborted !== true && this.#fastSend(rt, sendVal, wait)) return;
    let o: Outcome;
    try {
      o = this.#blockSync(rt, K_SEND, sendVal, opts);
    } catch (e) {
      discardSlot(rt, sendVal); // a broken channel (PeerDiedError): nothing was sent
      throw e;
    }
    if (o.result !== R_VALUE) failSend(rt, sendVal, o, opts, this.#off);
  }

  /** Receives, blocking this worker until a value arrives; throws ChannelClosedError once closed and drained. */
  recv(opts?: OpOptions): T {
    const rt = this.#check('recv', RECV_ONLY, true);
    const o = this.#recvSync(rt, opts);
    if (o.result !== R_VALUE) throw recvError(o, opts, this.#off);
    return decodeSlot(rt, recvOut) as T;
  }

  /** `recv` that returns the failure instead of throwing it. */
  recvResult(opts?: OpOptions): Result<T, RecvError> {
    const rt = this.#check('recv', RECV_ONLY, true);
    const o = this.#recvSync(rt, opts);
    return o.result === R_VALUE ? Ok(decodeSlot(rt, recvOut) as T) : Err(recvError(o, opts, this.#off));
  }

  /** Sends without blocking the thread (main thread, or a process that also does I/O). */
  async sendAsync(value: T, opts?: OpOptions): Promise<void> {
    const rt = this.#check('send', SEND_ONLY, false);
    checkOptions(opts);
    const val = new Int32Array(4);
    encodeSlot(rt, value, val);
    if (opts?.signal?.aborted !== true && this.#fastSend(rt, val)) return;
    let o: Outcome;
    try {
      // (An op completed without parking is no promise: not awaited, it costs no turn.)
      const r = this.#blockAsync(rt, K_SEND, val, sendOut, opts);
      o = r instanceof Promise ? await r : r;
    } catch (e) {
      discardSlot(rt, val); // failed by deadlock detection: nothing was sent
      throw e;
    }
    if (o.result !== R_VALUE) failSend(rt, val, o, opts, this.#off);
  }

  /** Receives without blocking the thread; rejects with ChannelClosedError once closed and drained. */
  async recvAsync(opts?: OpOptions): Promise<T> {
    const rt = this.#check('recv', RECV_ONLY, false);
    const out = new Int32Array(4);
    const r = this.#recvAsync(rt, out, opts);
    const o = r instanceof Promise ? await r : r;
    if (o.result !== R_VALUE) throw recvError(o, opts, this.#off);
    return decodeSlot(rt, out) as T;
  }

  /** `recvAsync` that resolves to the failure instead of rejecting. */
  async recvResultAsync(opts?: OpOptions): Promise<Result<T, RecvError>> {
    const rt = this.#check('recv', RECV_ONLY, false);
    const out = new Int32Array(4);
    const r = this.#recvAsync(rt, out, opts);
    const o = r instanceof Promise ? await r : r;
    return o.result === R_VALUE ? Ok(decodeSlot(rt, out) as T) : Err(recvError(o, opts, this.#off));
  }

  /** Sends only if a receiver is waiting or there is room; never blocks. Full and closed give the value back. */
  trySend(value: T): Result<void, TrySendError<T>> {
    const rt = this.#check('trySend', SEND_ONLY, false);
    const val = new Int32Array(4);
    try {
      encodeSlot(rt, value, val);
    } catch (e) {
      if (e instanceof NotSendableError || e instanceof MessageTooLargeError || e instanceof HeapExhaustedError) {
        return Err(e);
      }
      throw e;
    }
    if (this.#fastSend(rt, val)) return Ok(undefined);
    const r = this.#plainly(rt.heap.i32, C_NRECV, F_RECEIVERS_GONE) ? NOT_READY : tryOnce(rt, { chan: this.#off, kind: K_SEND, val }, recvOut);
    if (r === R_VALUE) return Ok(undefined);
    discardSlot(rt, val);
    if (r === NOT_READY) return quietly(() => new ChannelFullError(value));
    if (r === R_PEER_DIED) return Err(peerDied(this.#off, K_SEND));
    return Err(r === R_POISONED ? new ChannelPoisonedError() : closedSend(value));
  }

  /**
   * Receives only if a value is buffered or a sender is waiting; never blocks. Nothing there is
   * `Err(ChannelEmptyError)`: one shared, frozen error with no stack (polling makes many), so
   * do not add properties to it or tell one empty result from another by its identity.
   */
  tryRecv(): Result<T, TryRecvError> {
    const rt = this.#check('tryRecv', RECV_ONLY, false);
    const out = new Int32Array(4);
    if (this.#fastRecv(rt, out)) return Ok(decodeSlot(rt, out) as T);
    const r = this.#plainly(rt.heap.i32, C_NSEND, F_SENDERS_GONE) ? NOT_READY : tryOnce(rt, { chan: this.#off, kind: K_RECV, val: undefined }, out);
    if (r === R_VALUE) return Ok(decodeSlot(rt, out) as T);
    if (r === NOT_READY) return quietly(emptyError);
    if (r === R_PEER_DIED) return Err(peerDied(this.#off, K_RECV));
    return Err(r === R_POISONED ? new ChannelPoisonedError() : new ChannelClosedError());
  }

  /**
   * Closes the channel: no more sends; receivers drain what is buffered, then see closed. Parked
   * senders fail with ChannelClosedError. Closing twice throws ChannelClosedError.
   */
  close(): void {
    const rt = this.#check('close', SEND_ONLY, false, false);
    // (A disconnected end, F_*_GONE, does not stop a close.)
    const flags = this.#shut(rt, F_CLOSED, R_CLOSED, (f) => (f & F_SHUT) === 0);
    if ((flags & F_POISONED) !== 0) throw new ChannelPoisonedError(`${this.name} is poisoned`);
    if ((flags & F_CLOSED) !== 0) throw new ChannelClosedError(`${this.name} is already closed; close a channel once, from its sender`);
  }

  /**
   * Poisons the channel, from either end: every op on it, pending or later, at both ends and in
   * selects, fails at once with ChannelPoisonedError (ERR_CHANNEL_POISONED); values still
   * buffered are dropped. Unlike close, it says "stop", not "no more values", and it travels:
   * a process that ends by poison can poison its other channels (`spawn(..., {
   * propagatePoison: true })`, or `withPoison`), and so a whole network shuts down. Poisoning a
   * poisoned channel does nothing.
   */
  poison(): void {
    const rt = this.#check('poison', BOTH, false);
    let first: boolean;
    try {
      first = (this.#shut(rt, F_POISONED, R_POISONED, (f) => (f & F_POISONED) === 0) & F_POISONED) === 0;
    } catch (e) {
      if (e instanceof PeerDiedError) return; // broken: it fails every op already
      throw e;
    }
    // The ring is closed to sends, and receivers check the flag before their lock-free path:
    // what is still buffered is ours to drop (outside the lock: dropping frees heap blocks).
    const g = this.#ring;
    if (first && g !== undefined) {
      const slot = new Int32Array(4);
      while (ringDequeue(rt.heap.i32, g, slot) === RING_OK) discardSlot(rt, slot);
    }
  }

  /** Drops this handle's reference now (instead of at garbage collection). Later use throws ERR_INVALID_HANDLE. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    registry.unregister(this);
    // A pending async op still has a waiter linked in the channel: free only after it ends. (An
    // argument's entry is claimed then too: should the thread die first, main gives it back.)
    if (this.#inFlight > 0) this.#releaseLater = true;
    else this.#giveBack();
  }

  /** Gives this handle's reference back, unless it is an argument's whose entry someone else claimed. */
  #giveBack(): void {
    if (this.#argAt !== 0 && !claimEntry(this.#argAt)) return; // given back already (main, for a dead thread)
    if (!dropHeld(runtime(), this.#held)) return;
    this.#held = -1;
    releaseRef(runtime(), this.#off, this.#id);
  }

  /**
   * @internal The process this argument handle came with is over: a release still waiting for an
   * async op claims its entry now (the table goes with the record); the give-back follows later.
   */
  [DETACH](): void {
    if (this.#argAt === 0) return;
    if (this.#releaseLater) {
      // Its reference is this handle's to give back when the op ends, listed among the thread's
      // own meanwhile (should the thread die first); unless main gave it back already.
      if (claimEntry(this.#argAt)) this.#held = holdRef(runtime(), this.#off, this.#id);
      else this.#releaseLater = false;
    }
    this.#argAt = 0;
  }

  /** Receives until the channel is closed and drained (sync, in a worker). */
  *[Symbol.iterator](): Iterator<T> {
    for (;;) {
      const r = this.recvResult();
      if (r.isOk()) yield r.value;
      else if (r.error instanceof ChannelClosedError) return;
      else throw r.error;
    }
  }

  /** Receives until the channel is closed and drained, without blocking the thread. */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const r = await this.recvResultAsync();
      if (r.isOk()) yield r.value;
      else if (r.error instanceof ChannelClosedError) return;
      else throw r.error;
    }
  }

  /** @internal The words the codec writes for this handle. */
  get [HANDLE_BRAND](): true {
    return true;
  }
  /** @internal */
  handleWords(): number[] {
    if (this.#released) throw new InvalidHandleError(`${this.name} was released`);
    return [this.#off, this.#id, runtime().heap.runtimeId, this.#dir, CHAN_MAGIC, 0];
  }

  /** `Channel(<name>, cap <n>)`: for logs and messages. */
  toString(): string {
    return `Channel(${this.name}, cap ${this.cap})`;
  }

  #mem(): Int32Array {
    const h = runtime().heap;
    h.sync();
    return h.i32;
  }

  #derive(dir: number): Channel<T> {
    const rt = this.#check('derive', BOTH, false);
    retainRef(rt, this.#off);
    return new Channel<T>(this.#off, this.#id, this.#dir === BOTH ? dir : this.#dir);
  }

  /**
   * Validates an op on this handle; returns the runtime. An op that sends or receives (`use`)
   * makes this process a user of that end, once (see internal/reap.ts).
   */
  #check(op: string, needs: number, sync: boolean, use = true): Runtime {
    const rt = runtime();
    if (this.#released) throw new InvalidHandleError(`${this.name} was released`);
    if (needs !== BOTH && this.#dir !== BOTH && this.#dir !== needs) throw new WrongDirectionError(op, END_NAMES[this.#dir]!);
    if (sync && rt.isMain) throw new SyncOnMainError(op);
    if (needs !== BOTH && use && (this.#usedIn !== rt.useEpoch || (this.#usedEnds & needs) === 0)) this.#use(rt, needs);
    return rt;
  }

  /** In which process (`Runtime.useEpoch`) this handle last used ends, and which (SEND_ONLY | RECV_ONLY). */
  #usedIn = 0;
  #usedEnds = 0;

  /** @internal This process starts using end `dir` (SEND_ONLY / RECV_ONLY) through this handle. */
  #use(rt: Runtime, dir: number): void {
    if (this.#usedIn !== rt.useEpoch) {
      this.#usedIn = rt.useEpoch;
      this.#usedEnds = 0;
    }
    this.#usedEnds |= dir;
    noteUse(rt, this.#off, this.#id, dir === SEND_ONLY ? K_SEND : K_RECV);
  }

  /** @internal This handle's end: K_SEND or K_RECV for a typed end, 0 for a two-way handle. */
  [END](): number {
    return this.#dir === BOTH ? 0 : this.#dir === SEND_ONLY ? K_SEND : K_RECV;
  }

  /** @internal The channel this handle holds a reference to: byte offset and id. */
  [REF](): [number, number] {
    return [this.#off, this.#id];
  }

  /**
   * @internal This handle's reference is entry `at` (word index) of its process's claim table
   * (see `listArgRefs`): it is given back only by whoever claims the entry first.
   */
  [ARG_ENTRY](at: number): void {
    // Listed in the claim table from now on (an argument's handle is never among the thread's
    // held references: see decodeSlotAdopting).
    this.#argAt = at;
    registry.unregister(this);
    registry.register(this, { off: this.#off, id: this.#id, argAt: at }, this);
  }

  /** @internal A typed end arriving in a process makes it a user of that end at once. */
  [HOLD](): void {
    if (this.#dir !== BOTH) this.#use(runtime(), this.#dir);
  }

  /**
   * Sets `flag` and fails every waiting party with `result` (shutLocked), if `when` holds for
   * the flags found under the lock; wakes them after unlocking. Returns the flags found.
   */
  #shut(rt: Runtime, flag: number, result: number, when: (flags: number) => boolean): number {
    const h = rt.heap;
    const c = this.#off >> 2;
    h.lock(c + C_LOCK);
    h.sync();
    const flags = h.i32[c + C_FLAGS]!;
    if (when(flags)) shutLocked(h.i32, c, flag, result);
    h.unlock(c + C_LOCK);
    flushWakes(rt);
    return flags;
  }

  /** A blocking receive into `recvOut`: the lock-free buffer path first (not once aborted), then the engine. */
  #recvSync(rt: Runtime, opts: OpOptions | undefined): Outcome {
    checkOptions(opts);
    if (opts?.signal?.aborted !== true && this.#fastRecv(rt, recvOut, POLL)) return RECEIVED;
    return this.#blockSync(rt, K_RECV, undefined, opts);
  }

  /** The same without blocking the thread, into `out`. */
  #recvAsync(rt: Runtime, out: Int32Array, opts: OpOptions | undefined): Outcome | Promise<Outcome> {
    checkOptions(opts);
    if (opts?.signal?.aborted !== true && this.#fastRecv(rt, out)) return RECEIVED;
    return this.#blockAsync(rt, K_RECV, undefined, out, opts);
  }

  #blockSync(rt: Runtime, kind: number, val: Int32Array | undefined, opts: OpOptions | undefined): Outcome {
    if (opts?.signal?.aborted) return { index: -1, result: 0 };
    oneCase.chan = this.#off;
    oneCase.kind = kind;
    oneCase.val = val;
    return opSync(rt, oneCase, recvOut, { deadline: deadlineOf(rt, opts), signal: opts?.signal });
  }

  #blockAsync(
    rt: Runtime,
    kind: number,
    val: Int32Array | undefined,
    out: Int32Array,
    opts: OpOptions | undefined,
  ): Outcome | Promise<Outcome> {
    if (opts?.signal?.aborted) return { index: -1, result: 0 };
    this[ENTER]();
    let o: Outcome | Promise<Outcome>;
    try {
      o = opAsync(rt, { chan: this.#off, kind, val }, out, {
        deadline: deadlineOf(rt, opts),
        signal: opts?.signal,
        ref: opts?.ref,
      });
    } catch (e) {
      this[LEAVE]();
      throw e;
    }
    if (!(o instanceof Promise)) {
      this[LEAVE]();
      return o;
    }
    return o.finally(() => this[LEAVE]());
  }

  /** @internal An async op (or select) on this handle begins: `release()` waits for its end. */
  [ENTER](): void {
    this.#inFlight++;
  }

  /** @internal The async op ended; a release that waited for it happens now. */
  [LEAVE](): void {
    if (--this.#inFlight === 0 && this.#releaseLater) {
      this.#releaseLater = false;
      this.#giveBack();
    }
  }

  /** @internal A send (K_SEND) or receive (K_RECV) on this handle, as a case of a select. */
  [CASE](kind: number): ChannelCase {
    const rt = this.#check(kind === K_SEND ? 'send' : 'recv', kind === K_SEND ? SEND_ONLY : RECV_ONLY, false);
    return new ChannelCase(rt, this, this.#off, kind, this.#ring);
  }

  /** @internal Throws unless this handle can still be used (not released). */
  [CHECK](): void {
    if (this.#released) throw new InvalidHandleError(`${this.name} was released`);
  }
}

/**
 * After a lock-free buffer op on channel word index `c`: if parties of the other kind are parked
 * (count word `waiting`; they looked at the buffer before this op changed it), pump under the
 * lock and wake them.
 */
function letParkedIn(rt: Runtime, c: number, g: Ring, waiting: number, pump: typeof pumpSendersLocked): void {
  if (Atomics.load(rt.heap.i32, c + waiting) !== 0) {
    rt.heap.lock(c + C_LOCK);
    rt.heap.sync(); // the parked parties' records may lie beyond our views
    pump(rt.heap.i32, c, g, 0);
    rt.heap.unlock(c + C_LOCK);
    flushWakes(rt);
  }
  progress(rt);
}

/**
 * A send or a receive on one channel as a case of a select (select-kit.ts). Its `try` takes the
 * lock-free buffer path when it can, and looks at the channel without the lock when nothing can
 * be ready (no flags, no parked peer, and a buffer with nothing to give or no room); otherwise the
 * engine's locked paths decide.
 */
export class ChannelCase implements Case, Selectable {
  readonly chan: number;
  readonly kind: number;
  /** A send's encoded value (set by `prepare`). */
  readonly val: Int32Array | undefined;
  readonly deadline = Infinity;
  readonly #rt: Runtime;
  readonly #handle: Channel<unknown>;
  readonly #ring: Ring | undefined;

  /** @internal Made by a handle (`recvCase` / `sendCase` in select-kit.ts). */
  constructor(rt: Runtime, handle: Channel<any>, chan: number, kind: number, ring: Ring | undefined) {
    this.#rt = rt;
    this.#handle = handle;
    this.chan = chan;
    this.kind = kind;
    this.#ring = ring;
    this.val = kind === K_SEND ? new Int32Array(4) : undefined;
  }

  /** The channel's handle. */
  get channel(): Channel<unknown> {
    return this.#handle;
  }

  /** A send case's encoded value belongs to a select in progress. */
  #offered = false;

  /**
   * Before each select: checks the handle, and encodes the value a send case offers. A send case
   * offers one value at a time: the same case twice in one select, or in two selects at once,
   * is refused (ERR_INVALID_ARGUMENT) before anything is encoded.
   */
  prepare(value?: unknown): void {
    this.#handle[CHECK]();
    if (this.val === undefined) return;
    if (this.#offered) {
      throw new InvalidArgumentError('this send case is already offered by a select in progress (or twice in one select): make one case per offer');
    }
    encodeSlot(this.#rt, value, this.val);
    this.#offered = true;
  }

  /** A send case that did not deliver drops its encoded value. */
  discard(): void {
    if (this.val === undefined || !this.#offered) return;
    discardSlot(this.#rt, this.val);
    this.#offered = false;
  }

  /** A send case that delivered: its value now belongs to the receiver. */
  delivered(): void {
    this.#offered = false;
  }

  /** The error of this case ending with PEER_DIED (select-kit.ts). */
  peerDied(): PeerDiedError {
    return peerDied(this.chan, this.kind);
  }

  /** Decodes the value a receive case got into `slot`. */
  take(slot: Int32Array): unknown {
    return decodeSlot(this.#rt, slot);
  }

  /** An async select holds the handle: `release()` during it waits for its end. */
  enter(): void {
    this.#handle[ENTER]();
  }

  leave(): void {
    this.#handle[LEAVE]();
  }

  try(out: Int32Array): number {
    const rt = this.#rt;
    const m = rt.heap.i32;
    const c = this.chan >> 2;
    const g = this.#ring;
    // A quick look first: an empty channel (the common case among a select's cases) costs a few
    // loads. Nothing buffered or on its way, no sender parked, neither closed nor poisoned: not
    // ready. Likewise for a send: a full buffer, no receiver parked.
    if (this.kind === K_RECV) {
      if (g === undefined || ringFillHint(m, g) <= 0 || (m[c + C_FLAGS]! & F_POISONED) !== 0) {
        if (idle(m, c, C_NSEND)) return NOT_READY;
      } else if (ringDequeue(m, g, out, false) === RING_OK) {
        letParkedIn(rt, c, g, C_NSEND, pumpSendersLocked);
        return R_VALUE;
      }
    } else {
      if (g === undefined || ringFillHint(m, g) >= g.cap) {
        if (idle(m, c, C_NRECV)) return NOT_READY;
      } else if (ringEnqueue(m, g, this.val!) === RING_OK) {
        letParkedIn(rt, c, g, C_NRECV, pumpReceiversLocked);
        return R_VALUE;
      }
    }
    return tryOnce(rt, this, out); // (a broken channel: R_PEER_DIED, for the select to weigh)
  }

  register(op: number, index: number): boolean {
    return registerCase(this.#rt, op, index, this);
  }

  unregister(op: number, index: number): void {
    unregisterCase(this.#rt, op, index);
  }

  isReady(): boolean {
    return isCaseReady(this.#rt, this);
  }
}

/**
 * Neither closed nor poisoned, and no party parked in the queue counted by word `waiting`: a
 * hint read with plain loads, like ringFillHint.
 */
function idle(m: Int32Array, c: number, waiting: number): boolean {
  // One Atomics.load per look, so that a loop of selects with a default keeps reading memory.
  return m[c + C_FLAGS] === 0 && Atomics.load(m, c + waiting) === 0;
}

/** @internal Makes the select case of a handle (see select-kit.ts). */
export function channelCase(handle: unknown, kind: number): ChannelCase {
  if (!(handle instanceof Channel)) {
    throw new InvalidArgumentError(`a select case needs a channel handle made by chan(), not ${describe(handle)}`);
  }
  return (handle as Channel<unknown>)[CASE](kind);
}

function describe(v: unknown): string {
  return v === null ? 'null' : typeof v === 'object' ? (v.constructor?.name ?? 'an object') : typeof v;
}

/**
 * A full or empty buffer is usually a moment's state while a peer is running: poll it (in time,
 * within the thread's spin budget) before paying for a waiter and a park. True once `attempt`
 * succeeds. Gated like all spinning: only while every running process thread has a core.
 *
 * `streak`: the handle's previous op on the buffer completed at its first look, so this one is
 * part of a stream that has caught up with its peer (a consumer with the producer, or a producer
 * with the consumer). Then each look waits STREAM_PAUSE first: every look reads the entry the
 * peer is about to write, and a look right behind the peer takes that cache line from it on
 * every value, which slowed both sides (scratch probe, a `spsc-1024-int` stream in its steady
 * state: ~165 → ~145 ns per value). A stream loses nothing by it: the peer runs meanwhile. A
 * request and its reply over buffered channels are no streak (their receive looks before the
 * value is sent) and keep the tight poll.
 */
function pollRing(rt: Runtime, attempt: () => number, streak: boolean): boolean {
  const end = rt.parker.now() + spinBudget(rt);
  for (let i = 1; ; i++) {
    if (streak) {
      const until = rt.parker.now() + STREAM_PAUSE;
      while (rt.parker.now() < until);
    }
    if (attempt() === RING_OK) return true;
    if ((i & 15) === 0 && rt.parker.now() > end) return false;
  }
}

/** How long (ms) a caught-up stream waits before each look at the buffer (see pollRing). */
const STREAM_PAUSE = 0.001;

/** How a lock-free buffer op waits for room or a value: not at all, by polling, or polling then napping. */
const NO_WAIT = 0;
const POLL = 1;
const NAP = 2;

/** Naps (ms) of a sender that still finds the buffer full after polling: under 1 ms in all. */
const NAPS = [0.05, 0.1, 0.2, 0.4];

/**
 * A sender facing a full buffer naps a few times before it parks as a waiter, and comes back
 * for a run of free entries (a quarter of the buffer), not for the first one. A parked sender
 * has to be woken by the receiver that makes room, and that wake (a futex call, tens of µs here)
 * would fall on the receiver every few values when several producers outrun one consumer; a
 * napping sender costs the receiver nothing. Not a change of meaning: a napping send has not
 * completed, like a parked one; it only may start a little later than it could have.
 */
function napRing(rt: Runtime, m: Int32Array, g: Ring, attempt: () => number): boolean {
  const want = Math.max(1, g.cap >> 2);
  for (const ms of NAPS) {
    nap(rt, ms);
    if (g.cap - ringLength(m, g) >= want && attempt() === RING_OK) return true;
  }
  return attempt() === RING_OK;
}

function deadlineOf(rt: Runtime, opts: OpOptions | undefined): number {
  return deadlineAfter(rt, opts?.timeout);
}

/**
 * Refuses options that are not what they say (InvalidArgumentError), before the operation does
 * anything: a `timeout` that is not a number (NaN included), a `signal` that is not an
 * AbortSignal. Channel ops and selects alike.
 */
export function checkOptions(opts: { timeout?: unknown; signal?: unknown } | undefined): void {
  if (opts === undefined) return;
  if (typeof opts !== 'object' || opts === null) throw new InvalidArgumentError(`options must be an object, got ${String(opts)}`);
  if (opts.timeout !== undefined && (typeof opts.timeout !== 'number' || Number.isNaN(opts.timeout))) {
    throw new InvalidArgumentError(`timeout must be a number of milliseconds, got ${String(opts.timeout)}`);
  }
  checkSignal(opts.signal);
}

/** @internal Refuses a `signal` option that is not an AbortSignal (`null` included): ERR_INVALID_ARGUMENT. */
export function checkSignal(signal: unknown): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError(`signal must be an AbortSignal, not ${String(signal)}`);
  }
}

/**
 * The deadline (the runtime's clock, ms) of a wait of `timeout` ms: Infinity for none, now for a
 * negative one. Not a number (NaN) is InvalidArgumentError. Channel ops and selects alike.
 */
export function deadlineAfter(rt: Runtime, timeout: number | undefined): number {
  if (timeout === undefined) return Infinity;
  if (typeof timeout !== 'number' || Number.isNaN(timeout)) {
    throw new InvalidArgumentError(`timeout must be a number of milliseconds, got ${String(timeout)}`);
  }
  return rt.parker.now() + Math.max(0, timeout);
}

function cancelError(opts: OpOptions | undefined, o: Outcome): TimeoutError | AbortError {
  if (o.index === INTERRUPTED) return interruptedError();
  return opts?.signal?.aborted ? new AbortError(opts.signal.reason) : new TimeoutError(opts?.timeout ?? 0);
}

/** What an operation that the thread's interrupt ended (a pool task's abort) fails with. */
function interruptedError(): AbortError {
  const e = new AbortError();
  e.message = 'the task was aborted while it waited; nothing was sent or received';
  return e;
}

function recvError(o: Outcome, opts: OpOptions | undefined, off: number): RecvError {
  if (o.index < 0) return cancelError(opts, o);
  if (o.result === R_POISONED) return new ChannelPoisonedError();
  if (o.result === R_PEER_DIED) return peerDied(off, K_RECV);
  if (o.result === R_OVERFLOW) return new TooManyWaitersError(maxWaiters(runtime().heap.i32));
  return new ChannelClosedError('channel is closed and drained');
}

/**
 * The error of an op on the channel at byte `off` that a death ended: the channel is broken (a
 * process died holding it), or the other end's last user died (an op of `kind` would wait for
 * ever).
 */
function peerDied(off: number, kind: number): PeerDiedError {
  const rt = runtime();
  rt.heap.sync();
  const c = off >> 2;
  const chan = channelNameAt(rt, off);
  const name = diedOn(rt, c);
  const who = name ?? 'a process';
  if ((Atomics.load(rt.heap.i32, c + C_FLAGS) & F_BROKEN) !== 0) {
    const dead = name === undefined ? 'a process' : `process ${name}`;
    return new PeerDiedError(`${chan} is broken: ${dead} died while operating on it; it cannot be used any more`);
  }
  const gone = kind === K_RECV ? 'send on it' : 'receive from it';
  return new PeerDiedError(`${chan}: no process is left to ${gone}; the last one, ${who}, died`);
}

setBrokenLockError((at) => peerDied((at - C_LOCK) << 2, 0));

let empty: ChannelEmptyError | undefined;

/**
 * The error of every empty `tryRecv`: one, frozen (it carries nothing of its own, and polling
 * makes many; an error, even with no stack, costs ~0.4 µs to make).
 */
function emptyError(): ChannelEmptyError {
  return (empty ??= Object.freeze(new ChannelEmptyError()));
}

/** ts-results-es's Err class (its prototype: what `isErr`, `unwrap`, `instanceof` go by). */
const ERR_PROTO = Object.getPrototypeOf(Err(undefined)) as object;

/**
 * `Err(make())` without capturing stack traces, for "empty" and "full", the expected outcomes of
 * polling — control flow, not failures. The error is made with no stack, and the Err without
 * its constructor: ts-results-es's formats a stack of its own for every Err (`new Error().stack`,
 * ~1 µs even with no frames), so an empty `tryRecv` cost 1.5 µs. Its fields are those the
 * constructor sets (`error`, and `_stack` for its messages); tests check the result behaves as
 * an Err (channel.test.ts).
 */
function quietly<E>(make: () => E): Err<E> {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const r = Object.create(ERR_PROTO) as { error: E; _stack: string };
    r.error = make();
    r._stack = '';
    return r as unknown as Err<E>;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** `tryCase`, with a broken channel reported as R_PEER_DIED instead of thrown. */
function tryOnce(rt: Runtime, cs: Case, out: Int32Array): number {
  try {
    return tryCase(rt, cs, out);
  } catch (e) {
    if (e instanceof PeerDiedError) return R_PEER_DIED;
    throw e;
  }
}

function closedSend(value: unknown): ChannelClosedError {
  return new ChannelClosedError('send on a closed channel; the value was not sent', { cause: { value } }, value);
}

/** A send that did not deliver: drop its value and throw why. */
function failSend(rt: Runtime, val: Int32Array, o: Outcome, opts: OpOptions | undefined, off: number): never {
  discardSlot(rt, val);
  if (o.index < 0) throw cancelError(opts, o);
  if (o.result === R_POISONED) throw new ChannelPoisonedError();
  if (o.result === R_PEER_DIED) throw peerDied(off, K_SEND);
  if (o.result === R_OVERFLOW) throw new TooManyWaitersError(maxWaiters(runtime().heap.i32));
  throw new ChannelClosedError('send on a closed channel; the value was not sent');
}

/**
 * Makes a channel. `capacity` 0 (the default) is a rendezvous: a send returns only once a
 * receiver has taken the value. Capacity N buffers exactly N values.
 */
export function chan<T>(capacity = 0, opts: { name?: string } = {}): Channel<T> {
  if (!Number.isInteger(capacity) || capacity < 0 || capacity > MAX_CAPACITY) {
    throw new InvalidCapacityError(capacity, MAX_CAPACITY);
  }
  if (typeof opts !== 'object' || opts === null) throw new InvalidArgumentError(`chan() options must be an object, not ${describe(opts)}`);
  const name = opts.name;
  if (name !== undefined && typeof name !== 'string') {
    throw new InvalidArgumentError(`a channel's name must be a string, not ${describe(name)}`);
  }
  const rt = runtime();
  const h = rt.heap;
  // Everything allocated before anything is counted: a heap that cannot hold it all keeps nothing.
  const nameAt = name === undefined ? 0 : storeName(h, name);
  let off = 0;
  let buf = 0;
  try {
    off = h.alloc(C_WORDS * 4);
    buf = capacity > 0 ? h.alloc(ringBytes(capacity)) : 0;
  } catch (e) {
    if (off !== 0) h.free(off);
    if (nameAt !== 0) h.free(nameAt);
    throw e;
  }
  h.sync();
  const m = h.i32;
  const c = off >> 2;
  m.fill(0, c, c + C_WORDS);
  const id = h.nextId();
  m[c + C_CAP] = capacity;
  m[c + C_BUF] = buf;
  if (capacity > 0) {
    const g = ringOf(buf >> 2, capacity);
    ringInit(m, g);
    m[c + C_RSIZE] = g.size;
    m[c + C_RWRAP] = g.wrap;
  }
  m[c + C_REFS] = 1;
  m[c + C_ID] = id;
  Atomics.store(m, c + C_MAGIC, CHAN_MAGIC);
  Atomics.add(m, H_LIVE_CHANNELS, 1);
  if (name !== undefined) {
    h.i32[c + C_NAME] = nameAt;
    h.i32[c + C_NAME_LEN] = name.length;
  }
  return new Channel<T>(off, id, BOTH);
}

/** @internal The name of the channel at byte `off` (as `Channel.name` gives it). */
export function channelNameAt(rt: Runtime, off: number): string {
  const m = rt.heap.i32;
  const c = off >> 2;
  const at = m[c + C_NAME]!;
  return at === 0 ? `chan#${m[c + C_ID]!}` : loadName(rt.heap, at, m[c + C_NAME_LEN]!);
}

function retainRef(rt: Runtime, off: number): void {
  Atomics.add(rt.heap.i32, (off >> 2) + C_REFS, 1);
}

/** Drops one reference; the last one frees the channel and whatever is still buffered. */
function releaseRef(rt: Runtime, off: number, id: number): void {
  const h = rt.heap;
  h.sync();
  const m = h.i32;
  const c = off >> 2;
  if (m[c + C_ID] !== id || m[c + C_MAGIC] !== CHAN_MAGIC) return; // already freed
  if (Atomics.sub(m, c + C_REFS, 1) !== 1) return;
  // No handle is left anywhere: nobody else can touch the channel now.
  Atomics.store(m, c + C_MAGIC, 0);
  m[c + C_ID] = 0;
  if (m[c + C_DIED] !== 0) h.free(m[c + C_DIED]!);
  if ((m[c + C_FLAGS]! & F_BROKEN) !== 0) {
    // Never reused (its queues and ring are as a dead thread left them); its values leak.
    if (m[c + C_NAME] !== 0) h.free(m[c + C_NAME]!);
    Atomics.sub(h.i32, H_LIVE_CHANNELS, 1);
    names.delete(id);
    return;
  }
  const cap = m[c + C_CAP]!;
  const buf = m[c + C_BUF]!;
  const slot = new Int32Array(4);
  if (cap !== 0) {
    const g = ringOf(buf >> 2, cap);
    while (ringDequeue(h.i32, g, slot) === RING_OK) discardSlot(rt, slot);
  }
  if (buf !== 0) h.free(buf);
  if (m[c + C_NAME] !== 0) h.free(m[c + C_NAME]!);
  h.free(off);
  Atomics.sub(h.i32, H_LIVE_CHANNELS, 1);
  names.delete(id);
}

// A dead thread's values that no one will take go with their references (reap.ts).
setValueDiscarder(discardSlot);

installHandleSupport({
  words(handle) {
    // Only a handle made by this runtime's chan() travels: a look-alike object could name any
    // heap offset, and encoding takes a reference on what it names.
    if (!(handle instanceof Channel)) {
      throw new InvalidHandleError('a value claims to be a channel handle but was not made by chan() here');
    }
    return handle.handleWords();
  },
  retain(off) {
    retainRef(runtime(), off);
  },
  release(off, id) {
    releaseRef(runtime(), off, id);
  },
  adopt(w, held) {
    const rt = runtime();
    const h = rt.heap;
    h.sync();
    const [off, id, rid, dir, magic] = [w[0]!, w[1]!, w[2]!, w[3]!, w[4]!];
    if (magic !== CHAN_MAGIC || rid !== h.runtimeId) throw new InvalidHandleError('it belongs to another runtime');
    if (off <= 0 || off + C_WORDS * 4 > h.bytes || h.i32[(off >> 2) + C_ID] !== id) {
      throw new InvalidHandleError('the channel no longer exists');
    }
    const ch = new Channel(off, id, dir, held);
    if (!rt.isMain) ch[HOLD]();
    return ch;
  },
});

/** Live channels in this runtime (for tests: a leak shows as a count that keeps growing). */
export function liveChannels(): number {
  return Atomics.load(runtime().heap.i32, H_LIVE_CHANNELS);
}


/** Poisons each channel given (null and undefined are skipped): see `Channel.poison`. */
export function poison(...channels: ({ poison(): void } | null | undefined)[]): void {
  for (const ch of channels) ch?.poison();
}

/**
 * Runs `body`; if it ends by poison (throws ChannelPoisonedError, or its promise rejects with
 * one), poisons `channels` too and re-throws: one line that passes a shutdown on. The same as
 * the `propagatePoison` spawn option, for code that is not a whole process.
 */
export function withPoison<R>(channels: readonly ({ poison(): void } | null | undefined)[], body: () => R): R {
  const pass = (e: unknown): never => {
    if (e instanceof ChannelPoisonedError) poison(...channels);
    throw e;
  };
  let r: R;
  try {
    r = body();
  } catch (e) {
    return pass(e);
  }
  return (r instanceof Promise ? r.catch(pass) : r) as R;
}

/**
 * @internal The typed ends among a process's arguments count as used by it from its spawn (by
 * the spawner) until it has counted its own use of them: a process that has not started yet
 * still counts (see internal/reap.ts). Returns the table of them (0 if none) that the process
 * record keeps for their hand-over (P_PREHELD: `handOverEnds`, `dropPreheld` in record.ts).
 */
export function preholdEnds(args: unknown): number {
  const typed = channelsIn(args)
    .map((ch) => [ch, ch[END]()] as const)
    .filter(([, end]) => end !== 0);
  if (typed.length === 0) return 0;
  const rt = runtime();
  const h = rt.heap;
  const table = h.alloc((1 + 4 * typed.length) * 4); // first: out of memory counts nothing
  h.sync();
  const m = h.i32;
  m[table >> 2] = typed.length;
  typed.forEach(([ch, end], i) => {
    const [off, id] = ch[REF]();
    const e = (table >> 2) + 1 + 4 * i;
    m[e] = off;
    m[e + 1] = id;
    m[e + 2] = end;
    m[e + 3] = 1;
    countUser(rt, off, end, 1);
  });
  return table;
}

/**
 * @internal The worker of a process lists the references its argument handles adopted (`handles`,
 * as `decodeSlotAdopting` gave them) in a claim table, published in record `rec` (P_REFS): each
 * handle's release claims its entry, and main gives back those left when the thread dies.
 */
export function listArgRefs(rec: number, handles: readonly unknown[]): void {
  const chans = handles.filter((x): x is Channel<unknown> => x instanceof Channel);
  if (chans.length === 0) return;
  const rt = runtime();
  const h = rt.heap;
  const table = h.alloc((1 + 2 * chans.length) * 4);
  h.sync();
  const m = h.i32;
  const t = table >> 2;
  m[t] = chans.length;
  chans.forEach((ch, k) => {
    const [off, id] = ch[REF]();
    m[t + 1 + 2 * k] = off;
    m[t + 2 + 2 * k] = id;
    ch[ARG_ENTRY](t + 1 + 2 * k);
  });
  Atomics.store(m, (rec >> 2) + P_REFS, table); // written whole first: main reads it only after
}

/** @internal The process of `handles` (its arguments', see `listArgRefs`) is over: each lets go of its claim-table entry. */
export function detachArgs(handles: readonly unknown[]): void {
  for (const h of handles) if (h instanceof Channel) h[DETACH]();
}

/**
 * Calls `each` with the word index of every entry of record `rec`'s claim table (see
 * `listArgRefs`), and the heap's current view (a call may grow the heap).
 */
function forEachArgEntry(rec: number, each: (m: Int32Array, at: number) => void): void {
  const rt = runtime();
  rt.heap.sync();
  const table = Atomics.load(rt.heap.i32, (rec >> 2) + P_REFS);
  if (table === 0) return;
  const t = table >> 2;
  for (let k = 0, n = rt.heap.i32[t]!; k < n; k++) {
    rt.heap.sync();
    each(rt.heap.i32, t + 1 + 2 * k);
  }
}

/**
 * @internal Main, once a thread has died: gives back the references its handles held
 * (internal/held.ts), and drops the values of its ops that the supervisor handed over.
 */
export function releaseOrphanedRefs(): void {
  const rt = runtime();
  const errors: unknown[] = [];
  takeOrphans(rt, (off, id) => {
    try {
      releaseRef(rt, off, id);
    } catch (e) {
      errors.push(e); // (the others are still given back)
    }
  });
  // Values of its ops no one will take, which hold references too (internal/reap.ts).
  takeOrphanValues(rt, (r, slot) => {
    try {
      discardSlot(r, slot);
    } catch (e) {
      errors.push(e);
    }
  });
  if (errors.length > 0) throw new AggregateError(errors, 'occam: giving back the references of a dead thread failed');
}

/**
 * @internal Main, for a process whose thread died running: gives back the entries of its claim
 * table still unclaimed; or, had the thread not taken its arguments' references yet (P_TAKEN),
 * those the arguments carry, with the users counted for their typed ends.
 */
export function releaseArgRefs(rec: number, died: string): void {
  const rt = runtime();
  rt.heap.sync();
  if (Atomics.load(rt.heap.i32, (rec >> 2) + P_TAKEN) === 0) return dropArgs(rec, died);
  dropPreheld(rec, died); // (a death before the hand-over: while the claim table's references hold)
  forEachArgEntry(rec, (m, at) => {
    const off = Atomics.exchange(m, at, 0);
    if (off !== 0) releaseRef(runtime(), off, m[at + 1]!);
  });
}

/**
 * @internal Poisons the channels of record `rec`'s claim table still held (main, for a process
 * that died with `poisonOnDeath`: before its death is cleaned up after, so its peers see the poison).
 */
export function poisonArgRefs(rec: number): void {
  forEachArgEntry(rec, (m, at) => {
    const [off, id] = [Atomics.load(m, at), m[at + 1]!];
    if (off === 0 || m[(off >> 2) + C_MAGIC] !== CHAN_MAGIC || m[(off >> 2) + C_ID] !== id) return;
    // A handle of our own for the moment. (The process may give its own reference back meanwhile,
    // but not the last one: spawn's poisonOnDeath watcher holds one of its own until it ends.)
    retainRef(runtime(), off);
    const ch = new Channel<unknown>(off, id, BOTH);
    try {
      ch.poison();
    } catch {
      // broken meanwhile: it fails every op already
    } finally {
      ch.release();
    }
  });
}

/** Releases every channel handle inside `values` (see `channelsIn`): each gives back its reference. */
export function releaseChannelsIn(...values: unknown[]): void {
  for (const ch of channelsIn(values)) ch.release();
}

/** Every channel handle inside `v` (arrays and plain objects, walked once each). */
export function channelsIn(v: unknown, found: Channel<unknown>[] = [], seen = new Set<object>()): Channel<unknown>[] {
  if (typeof v !== 'object' || v === null || seen.has(v)) return found;
  seen.add(v);
  if (v instanceof Channel) found.push(v);
  else if (Array.isArray(v)) for (const x of v) channelsIn(x, found, seen);
  else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
    for (const x of Object.values(v)) channelsIn(x, found, seen);
  }
  return found;
}
