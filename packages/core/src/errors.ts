/**
 * occam's errors. Every error is a class with a stable `code`; test and branch on the
 * class or the code, never on the message. Messages say what to do next.
 */

/** Every code occam can raise. */
export type OccamErrorCode =
  | 'ERR_CHANNEL_CLOSED'
  | 'ERR_CHANNEL_POISONED'
  | 'ERR_CHANNEL_FULL'
  | 'ERR_CHANNEL_EMPTY'
  | 'ERR_TIMEOUT'
  | 'ERR_ABORTED'
  | 'ERR_NOT_SENDABLE'
  | 'ERR_SYNC_ON_MAIN'
  | 'ERR_WRONG_DIRECTION'
  | 'ERR_INVALID_CAPACITY'
  | 'ERR_INVALID_HANDLE'
  | 'ERR_MESSAGE_TOO_LARGE'
  | 'ERR_HEAP_EXHAUSTED'
  | 'ERR_TOO_MANY_THREADS'
  | 'ERR_PEER_DIED'
  | 'ERR_PROCESS_FAILED'
  | 'ERR_PROCESS_NOT_FOUND'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_EMPTY_SELECT'
  | 'ERR_TOO_MANY_WAITERS'
  | 'ERR_DEADLOCK'
  | 'ERR_POOL_CLOSED'
  | 'ERR_QUEUE_FULL'
  | 'ERR_POOL_BROKEN'
  | 'ERR_WORKER_DIED';

/** Base class of every error occam raises. */
export class OccamError extends Error {
  /** A stable identifier: match on this, not on the message. */
  readonly code: OccamErrorCode;
  /**
   * Set when a select failed because of one of its cases (poisoned, a send on a closed channel,
   * a peer that died): that case's index, as a result's `index` would be.
   */
  declare readonly caseIndex?: number;
  constructor(code: OccamErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Send on a closed channel, a second close, or receive on a closed and drained channel. */
export class ChannelClosedError extends OccamError {
  /** For a send on a closed channel (`trySend`'s Err), the value that was not sent. */
  declare readonly value?: unknown;
  /** `value`: the value a send did not send (also the `cause`'s `value`, as before). */
  constructor(message = 'channel is closed', options?: ErrorOptions, ...value: [unknown?]) {
    super('ERR_CHANNEL_CLOSED', message, options);
    if (value.length > 0) Object.defineProperty(this, 'value', { value: value[0], enumerable: true });
  }
}

/** Any operation on a poisoned channel, at either end (see `poison`). */
export class ChannelPoisonedError extends OccamError {
  constructor(message = 'channel is poisoned', options?: ErrorOptions) {
    super('ERR_CHANNEL_POISONED', message, options);
  }
}

/** `trySend` found no room and no waiting receiver. Carries the unsent value back. */
export class ChannelFullError<T = unknown> extends OccamError {
  /** The value that was not sent. */
  readonly value: T;
  constructor(value: T) {
    super('ERR_CHANNEL_FULL', 'channel is full and no receiver is waiting; retry, or use a blocking send');
    this.value = value;
  }
}

/** `tryRecv` found nothing buffered and no waiting sender. */
export class ChannelEmptyError extends OccamError {
  constructor() {
    super('ERR_CHANNEL_EMPTY', 'channel is empty and no sender is waiting; retry, or use a blocking recv');
  }
}

/** A blocking operation's `timeout` ran out; nothing was sent or received. */
export class TimeoutError extends OccamError {
  constructor(ms: number, message = `operation timed out after ${ms} ms; nothing was sent or received`) {
    super('ERR_TIMEOUT', message);
  }
}

/** A blocking operation's AbortSignal fired; nothing was sent or received. */
export class AbortError extends OccamError {
  constructor(reason?: unknown) {
    super('ERR_ABORTED', 'operation was aborted; nothing was sent or received', { cause: reason });
  }
}

/** A value cannot cross to another process (a function, symbol, Promise, WeakMap, ...). */
export class NotSendableError extends OccamError {
  /** Where in the value the offending part sits, e.g. `value.handlers[2]`. */
  readonly path: string;
  /** What sits there, e.g. `a function (handler)`. */
  readonly what: string;
  constructor(path: string, what: string) {
    super(
      'ERR_NOT_SENDABLE',
      `${path} is ${what}, which cannot be sent to another process; send plain data (numbers, strings, ` +
        `objects, arrays, byte arrays, channels) instead`,
    );
    this.path = path;
    this.what = what;
  }

  /** @internal The same error, its path's `prefix` named `root` instead (`value[2][0]` → `argument 0 of f`). */
  rebased(prefix: string, root: string): NotSendableError {
    return this.path.startsWith(prefix) ? new NotSendableError(root + this.path.slice(prefix.length), this.what) : this;
  }
}

/** A blocking (sync) operation was called on the main thread, which must never block. */
export class SyncOnMainError extends OccamError {
  constructor(op: string) {
    super(
      'ERR_SYNC_ON_MAIN',
      `${op}() would block the main thread; use ${op}Async() on the main thread, or run this code in a process`,
    );
  }
}

/** A send on a receive-only end, or a receive on a send-only end. */
export class WrongDirectionError extends OccamError {
  constructor(op: string, end: string) {
    super('ERR_WRONG_DIRECTION', `${op}() is not allowed on a ${end} end of a channel; pass the other end`);
  }
}

/** A channel capacity that is not an integer in 0..MAX_CAPACITY. */
export class InvalidCapacityError extends OccamError {
  constructor(capacity: unknown, max: number) {
    super('ERR_INVALID_CAPACITY', `channel capacity must be an integer from 0 to ${max}, got ${String(capacity)}`);
  }
}

/** A forged, stale (freed) or foreign (another runtime's) channel handle. */
export class InvalidHandleError extends OccamError {
  constructor(why: string) {
    super('ERR_INVALID_HANDLE', `invalid channel handle: ${why}`);
  }
}

/**
 * A message larger than MAX_MESSAGE_BYTES; nothing was sent. `atLeast`: the encoding stopped as
 * soon as it knew (`bytes` is where it would have got to by then, not its whole size).
 */
export class MessageTooLargeError extends OccamError {
  constructor(bytes: number, max: number, atLeast = false) {
    super('ERR_MESSAGE_TOO_LARGE', `message of ${atLeast ? 'at least ' : ''}${bytes} bytes exceeds the maximum of ${max} bytes; split it`);
  }
}

/** The shared heap cannot grow any further. */
export class HeapExhaustedError extends OccamError {
  constructor(wanted: number, max: number) {
    super(
      'ERR_HEAP_EXHAUSTED',
      `shared heap cannot allocate ${wanted} bytes (maximum heap ${max} bytes); release channels you no longer ` +
        `use, or start the runtime with a larger heap`,
    );
  }
}

/** More live threads than the thread table holds. */
export class TooManyThreadsError extends OccamError {
  constructor(max: number) {
    super('ERR_TOO_MANY_THREADS', `more than ${max} live occam threads; join processes before starting more`);
  }
}

/** A channel already has the most parties waiting in one direction that it takes (`MAX_WAITERS`). */
export class TooManyWaitersError extends OccamError {
  constructor(max: number) {
    super(
      'ERR_TOO_MANY_WAITERS',
      `${max} parties are already waiting on this channel in the same direction; give it a buffer, or bound how many operations wait on it at once (a pool, a semaphore channel)`,
    );
  }
}

/**
 * Every process is parked with no deadline and the main thread waits on them with nothing else
 * to do: nothing can ever move. `blocked` is the wait-for report (see `waitReport`).
 */
export class DeadlockError extends OccamError {
  /** Each parked process: the channel operations it waits on, or the process it joins. */
  readonly blocked: readonly { process: string; waitsOn: readonly { channel: string; op: 'send' | 'recv' }[]; joins?: string }[];
  /** `described`: the report as text, one process a line (`formatWaitReport`). */
  constructor(blocked: DeadlockError['blocked'] = [], described = '') {
    super(
      'ERR_DEADLOCK',
      `deadlock: every process is blocked and the main thread waits on them${blocked.length > 0 ? `:\n${described.replace(/^/gm, '  ')}` : ' (no process is running)'}`,
    );
    this.blocked = blocked;
  }
}

/** A peer process died while paired with this operation. */
export class PeerDiedError extends OccamError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PEER_DIED', message, options);
  }
}

/** A process failed without an error object of its own (it exited, or its worker crashed). */
export class ProcessFailedError extends OccamError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROCESS_FAILED', message, options);
  }
}

/** `spawn` named a module export that does not exist or is not a function. */
export class ProcessNotFoundError extends OccamError {
  constructor(message: string) {
    super('ERR_PROCESS_NOT_FOUND', message);
  }
}

/** A bad argument to an occam API (wrong type or out of range). */
export class InvalidArgumentError extends OccamError {
  constructor(message: string) {
    super('ERR_INVALID_ARGUMENT', message);
  }
}

/** A select that could never complete: no case (or every case switched off), no default, no timeout, no signal. */
export class EmptySelectError extends OccamError {
  constructor(message = 'select has no case that could fire, and no default, timeout or signal: it would wait forever') {
    super('ERR_EMPTY_SELECT', message);
  }
}

/**
 * An error from another process whose class is not registered here (see `registerError`):
 * keeps the original name, code, message, stack and cause.
 */
export class RemoteError extends Error {
  /** The original error's `code`, if it had one. */
  readonly code: string | undefined;
  constructor(name: string, message: string, code: string | undefined, options?: ErrorOptions) {
    super(message, options);
    this.name = name;
    this.code = code;
  }
}

/** A pool that is closed (or destroyed) takes no new task; with `cancelPending`, queued ones end with it. */
export class PoolClosedError extends OccamError {
  constructor(message = 'the pool is closed: it takes no new tasks') {
    super('ERR_POOL_CLOSED', message);
  }
}

/** A pool's queue of tasks not yet started is at its `maxQueue`: the task is refused at once. */
export class QueueFullError extends OccamError {
  constructor(maxQueue: number) {
    super('ERR_QUEUE_FULL', `the pool's queue holds its maximum of ${maxQueue} tasks; wait for some to finish, or raise maxQueue`);
  }
}

/** A pool whose workers cannot start (its initializer fails): it runs nothing, and says why in `cause`. */
export class PoolBrokenError extends OccamError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_POOL_BROKEN', message, options);
  }
}

/** The worker running a task died (exit, out of memory, terminate); `cause` says how. */
export class WorkerDiedError extends OccamError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_WORKER_DIED', message, options);
  }
}
