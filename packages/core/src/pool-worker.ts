/**
 * The inside of a pool worker (@occam/pool): an occam process that imports the task module, runs
 * its initializer, then takes tasks from its own channel and sends each result back on the pool's
 * shared results channel. Several tasks are in flight at once: a synchronous task runs to its
 * end; an asynchronous one runs alongside the next tasks taken.
 *
 * It lives in core, beside the worker host, so that a pool worker loads only core's own files
 * (one small entry, `pool-worker.js`, found by URL): a module of another package would cost each
 * worker the resolution of that package and of core's entries through it, about as much again as
 * core itself on a cold thread (the pool's start is the sum of its workers' starts on 2 cores).
 *
 * Task code reaches its task through `currentTask()` (its id and its abort signal), which
 * @occam/pool exports.
 */
// The whole API, as the host loaded it: this entry then shares the host's chunks (no module of
// core is split off into a file of its own for it).
import './index.js';
import { type Channel, channelCase, releaseChannelsIn, type Receiver, type Sender } from './channel.js';
import { AbortError, InvalidArgumentError, NotSendableError } from './errors.js';
import { setInterrupt } from './internal/engine.js';
import { encodeError } from './internal/errcodec.js';
import { importModule } from './internal/import-module.js';
import { K_RECV } from './internal/layout.js';

/** A task as it travels to a worker: [id, export name, arguments, abort channel or null]. */
export type TaskMessage = [number, string, unknown[], Channel<never> | null];

/**
 * A result as it travels back: [worker, task id, 1, value] or [worker, task id, 0, encoded
 * error]; task id READY or INIT_FAILED for the worker's start.
 */
export type ResultMessage = [number, number, 0 | 1, unknown];

/** Task id of the message a worker sends once its initializer has run. */
export const READY = -1;
/** Task id of the message a worker sends when its initializer failed (it then ends). */
export const INIT_FAILED = -2;

/**
 * A task's abort signal, as the task sees it: `aborted` reads shared memory each time, so a
 * synchronous task that never yields still sees an abort (a DOM AbortSignal could not change
 * while it runs).
 */
export interface TaskSignal {
  /** Whether the task was aborted (its signal fired, or its timeout passed). */
  readonly aborted: boolean;
  /** Throws AbortError (ERR_ABORTED) if the task was aborted. */
  throwIfAborted(): void;
  /**
   * A DOM AbortSignal that fires when the task is aborted: for asynchronous code (fetch, timers,
   * `recvAsync({ signal })`). (A synchronous task's blocking channel operations need none: an
   * abort wakes them with AbortError.)
   */
  toAbortSignal(): AbortSignal;
}

/** The task running now, as task code sees it. */
export interface TaskContext {
  /** The task's id in its pool. */
  readonly id: number;
  /** Its abort signal: `aborted`, `throwIfAborted()`, `toAbortSignal()`. */
  readonly signal: TaskSignal;
}

const NEVER_ABORTED: TaskSignal = Object.freeze({
  aborted: false,
  throwIfAborted: () => undefined,
  toAbortSignal: () => new AbortController().signal,
});

/** The pool aborts a task by poisoning its abort channel; the task reads that flag. */
class ChannelSignal implements TaskSignal {
  readonly #abort: Channel<never>;
  /** Ends the wait behind `toAbortSignal()` when the task ends. */
  #watching: AbortController | undefined;
  constructor(abort: Channel<never>) {
    this.#abort = abort;
  }
  get aborted(): boolean {
    return this.#abort.poisoned;
  }
  throwIfAborted(): void {
    if (this.aborted) throw abortError();
  }
  toAbortSignal(): AbortSignal {
    const fired = new AbortController();
    if (this.aborted) fired.abort(abortError());
    else {
      this.#watching ??= new AbortController();
      // Nothing is ever sent on it: the wait ends by poison (the abort), or when the task ends.
      this.#abort.recvAsync({ signal: this.#watching.signal }).catch((e: { code?: string }) => {
        if (e.code === 'ERR_CHANNEL_POISONED') fired.abort(abortError());
      });
    }
    return fired.signal;
  }
  /** The task ended: stop watching. */
  dispose(): void {
    this.#watching?.abort();
  }
}

function abortError(): AbortError {
  const e = new AbortError();
  e.message = 'the task was aborted';
  return e;
}

let current: TaskContext | undefined;

/**
 * The task this code runs in (inside a task function of a pool). In an asynchronous task, call
 * it before the first `await`: after that another task may be current.
 */
export function currentTask(): TaskContext {
  if (current === undefined) throw new InvalidArgumentError('currentTask() is for code that a pool runs as a task (and, in an async one, before its first await)');
  return current;
}

type Fn = (...args: unknown[]) => unknown;

/**
 * The pool worker process. `moduleUrl` is the task module (already loadable); `init` its
 * initializer export and arguments, if any. Ends when `tasks` is closed and every task taken has
 * finished; returns how many tasks it ran.
 */
export async function poolWorker(
  moduleUrl: string,
  init: [string, unknown[]] | null,
  tasks: Receiver<TaskMessage>,
  results: Sender<ResultMessage>,
  index: number,
): Promise<number> {
  let mod: Record<string, unknown>;
  try {
    mod = (await importModule(moduleUrl)) as Record<string, unknown>;
    if (init !== null) {
      const fn = mod[init[0]];
      if (typeof fn !== 'function') throw new TypeError(`the task module has no initializer function ${JSON.stringify(init[0])}`);
      await (fn as Fn)(...init[1]);
    }
  } catch (e) {
    results.send([index, INIT_FAILED, 0, encodeError(e)]);
    return 0;
  }
  results.send([index, READY, 1, null]);

  let ran = 0;
  const pending = new Set<Promise<void>>();
  const finish = (id: number, ok: 0 | 1, value: unknown): void => {
    try {
      results.send([index, id, ok, ok === 1 ? value : encodeError(value)]);
    } catch (e) {
      // A result that cannot be sent (a function, a symbol…) fails its task instead; its path
      // names the result, not the message's slot ("the result[1]", not "value[3][1]").
      const err = e instanceof NotSendableError ? e.rebased('value[3]', 'the result') : e;
      results.send([index, id, 0, encodeError(err)]);
    }
  };
  // Its result sent, the task's channels (its abort channel, those among its arguments) are
  // let go of: a worker may not collect garbage for long, and shared memory is no pressure. (One
  // function for all tasks, bound to each: no closure named per task, see keepNames in
  // scripts/build.mjs.)
  const endTask = (id: number, abort: Channel<never> | null, args: unknown[], ok: 0 | 1, value: unknown): void => {
    finish(id, ok, value);
    releaseChannelsIn(abort, args);
  };
  const start = ([id, name, args, abort]: TaskMessage): void => {
    const end = endTask.bind(undefined, id, abort, args);
    ran++;
    const signal = abort === null ? undefined : new ChannelSignal(abort);
    if (signal?.aborted === true) return end(0, abortError());
    const fn = mod[name];
    if (typeof fn !== 'function') return end(0, new TypeError(`the task module has no exported function ${JSON.stringify(name)}`));
    current = { id, signal: signal ?? NEVER_ABORTED };
    // While the task runs synchronously, every blocking channel operation also waits on its abort.
    if (abort !== null) setInterrupt(channelCase(abort, K_RECV));
    let out: unknown;
    try {
      out = (fn as Fn)(...args);
    } catch (e) {
      signal?.dispose();
      return end(0, e);
    } finally {
      current = undefined;
      if (abort !== null) setInterrupt(undefined);
    }
    if (!(out instanceof Promise)) {
      signal?.dispose();
      return end(1, out);
    }
    const p: Promise<void> = out.then(
      (v) => end(1, v),
      (e: unknown) => end(0, e),
    );
    void p.finally(() => signal?.dispose());
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  for (;;) {
    // (`len` first: it costs less than a try, and the channel is often empty.)
    if (tasks.len > 0) {
      const r = tasks.tryRecv();
      if (r.isOk()) {
        start(r.value);
        continue;
      }
      if (r.error.code !== 'ERR_CHANNEL_EMPTY') break; // closed: the pool is done with this worker
    }
    if (pending.size === 0) {
      // Nothing else to do: block this thread until a task comes.
      const next = tasks.recvResult();
      if (next.isErr()) break;
      start(next.value);
      continue;
    }
    // Asynchronous tasks are running: wait for a task or for one of them, whichever is first.
    const stop = new AbortController();
    const next = tasks.recvResultAsync({ signal: stop.signal });
    const first = await Promise.race([next, Promise.race(pending).then(() => undefined)]);
    if (first === undefined) {
      stop.abort();
      const late = await next; // taken before the abort landed: run it, it is ours
      if (late.isOk()) start(late.value);
      continue;
    }
    if (first.isErr()) break;
    start(first.value);
  }
  await Promise.all(pending);
  return ran;
}
