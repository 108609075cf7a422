/**
 * A worker pool on occam's channels. Tasks go to workers over channels and results come back
 * over one shared channel; each worker holds up to `depth` tasks at once (pipelined), and the
 * pool hands the next task to the least-loaded worker, so load balances as workers finish.
 *
 * Invariants:
 *  - A task is in exactly one place: the queue (not yet sent), or one worker's `owned` map
 *    (sent to that worker's channel, from the moment of sending: so a worker that dies leaves no
 *    task unaccounted for), or settled. It is settled once.
 *  - A dead worker's tasks still in its channel were never started: they go back to the front
 *    of the queue. Those it had taken fail with WorkerDiedError. A replacement is started.
 *  - The pool keeps the program alive only while it has tasks: idle workers are unref'd.
 */
import { availableParallelism } from 'node:os';
import {
  AbortError,
  chan,
  InvalidArgumentError,
  NotSendableError,
  PoolBrokenError,
  PoolClosedError,
  ProcessFailedError,
  QueueFullError,
  spawn,
  TimeoutError,
  WorkerDiedError,
  type Channel,
  type Process,
} from '@occam/core';
import {
  checkSignal,
  decodeError,
  holdForSignal,
  INIT_FAILED,
  markInternalSignal,
  POOL_WORKER_URL,
  prepareModule,
  READY,
  warmHosts,
  watchAbort,
  type ResultMessage,
  type TaskMessage,
} from '@occam/core/pool-kit';

/** Options of `new Pool`. */
export interface PoolOptions {
  /** The task module (JavaScript or TypeScript): its exports are the tasks. */
  module: string | URL;
  /** Most workers (default: the number of cores). */
  size?: number;
  /** Workers kept even when idle (default `size`): more start as work comes. */
  minSize?: number;
  /** A worker beyond `minSize` idle this long (ms) is retired (default 30 000). */
  idleTimeout?: number;
  /** Most tasks waiting to start; past it `run` fails at once with ERR_QUEUE_FULL (default: no limit). */
  maxQueue?: number;
  /** An export of the module each worker runs once before its first task, and its arguments. */
  initializer?: string | { name: string; args?: unknown[] };
  /** V8 heap limits of each worker. */
  resourceLimits?: import('node:worker_threads').ResourceLimits;
  /** Tasks a worker holds at once (default 64): tasks in flight are pipelined. */
  depth?: number;
  /** After an abort or timeout, how long (ms) a task may run on before its worker is stopped (default 1000). */
  abortGrace?: number;
}

/** Options of one task. */
export interface TaskOptions {
  /** Aborting rejects the task with AbortError; a running task sees `currentTask().signal.aborted`. */
  signal?: AbortSignal;
  /** Rejects the task with TimeoutError after this many ms, and aborts it. */
  timeout?: number;
}

/** Options of `map`. */
export interface MapOptions {
  /** Results in input order (default true), or as they finish. */
  ordered?: boolean;
  /** Most tasks in flight, and so most input read ahead (default: workers × 4). */
  concurrency?: number;
  /** Aborting ends the iteration with AbortError, and aborts its tasks still in flight. */
  signal?: AbortSignal;
}

/** `pool.stats()`. */
export interface PoolStats {
  /** Tasks waiting to be sent to a worker. */
  queued: number;
  /** Tasks sent to a worker and not yet finished. */
  running: number;
  /** Tasks (and processes) the pool took that ended with a result. */
  completed: number;
  /**
   * Those that ended otherwise: thrown, aborted, timed out, their worker died, cancelled by a
   * close or destroy. A call refused at once (pool closed or broken, queue full, its signal
   * already aborted) never became a task, and is not counted.
   */
  failed: number;
  /**
   * Workers started since the pool was made: its first ones, those it grew by, and replacements
   * of workers that died or retired (a figure that keeps climbing is a pool replacing crashes).
   */
  started: number;
  /** Per worker: tasks finished, tasks held now, the share of its life it held any, and whether it runs a process (`spawn`). */
  workers: { index: number; tasks: number; inFlight: number; utilisation: number; hosting: boolean }[];
  /** Task run times (dispatch to result): counts per bucket, bucket k holding times below `2^k` µs. */
  runTimeHistogram: number[];
}

type Exports<M> = { [K in keyof M]: M[K] extends (...a: any[]) => any ? K : never }[keyof M] & string;
type Args<M, K extends keyof M> = M[K] extends (...a: infer A) => any ? A : never;
type Ret<M, K extends keyof M> = M[K] extends (...a: any[]) => infer R ? Awaited<R> : never;

interface Task {
  id: number;
  name: string;
  args: unknown[];
  resolve(v: unknown): void;
  reject(e: Error): void;
  abort: Channel<never> | null;
  /** Undoes the signal listener and the timer. */
  cleanup(): void;
  settled: boolean;
  sentAt: number;
  /** A process (`spawn`): it has a worker to itself while it runs. */
  hosted: boolean;
  /** A process that does not keep the program alive (`PoolProcess.unref`, and no `join` waiting). */
  background: boolean;
}

interface Worker {
  index: number;
  /** Its process; undefined until the task module is ready (see #startWorker). */
  proc: Process<number> | undefined;
  tasks: Channel<TaskMessage>;
  owned: Map<number, Task>;
  ready: boolean;
  done: number;
  busySince: number;
  busyMs: number;
  startedAt: number;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  retiring: boolean;
  /** The pool stopped it on purpose: an end before READY is then not a failed start. */
  stopped: boolean;
  /** Runs a process (`spawn`): no task is sent to it meanwhile. */
  hosting: boolean;
}

const CORES = availableParallelism();
/** A task's cleanup until it has one: one function for all (see keepNames in scripts/build.mjs). */
const noCleanup = (): void => undefined;

/** Task id of the message main sends itself on the results channel (see the constructor). */
const NOOP = -3;
const BUCKETS = 24;
/** How long (ms) the pool keeps taking results after its last task, before it lets go. */
const LINGER_MS = 50;
/** How long (ms) main looks for a result on each turn of its event loop before it parks. */
const POLL_MS = 0.1;

/** A pool of worker processes that run the exported functions of one module as tasks. */
export class Pool<M = Record<string, (...args: any[]) => any>> {
  /** The most workers this pool runs (the `size` option; default: the number of cores). */
  readonly size: number;
  readonly #minSize: number;
  readonly #idleTimeout: number;
  readonly #maxQueue: number;
  readonly #depth: number;
  readonly #grace: number;
  readonly #opts: PoolOptions;
  readonly #module: Promise<string>;
  #results!: Channel<ResultMessage>; // (#newResults)
  readonly #queue: Task[] = [];
  /** Processes (`spawn`) waiting for a worker of their own. */
  readonly #spawnQueue: Task[] = [];
  readonly #workers = new Map<number, Worker>();
  #nextId = 1;
  #nextIndex = 0;
  #closing = false;
  #destroyed = false;
  #broken: PoolBrokenError | undefined;
  /** A worker's initializer failed, and its report has not come in yet (see #workerEnded). */
  #startFailed = false;
  #outstanding = 0;
  /** Outstanding tasks that are background processes: when they are all that is left, the pool lets the program exit. */
  #background = 0;
  /** While the pool takes results for background processes only: aborting it makes it look again. */
  #backgroundWait: AbortController | undefined;
  #driving: AbortController | undefined;
  /** The loop waits for a result (parked in its receive on the results channel). */
  #receiving = false;
  /** Workers whose end came while a result may have been on its way to the loop (see #workerEnded). */
  readonly #lateEnds: [Worker, Error | undefined][] = [];
  #completed = 0;
  #failed = 0;
  readonly #histogram = new Array<number>(BUCKETS).fill(0);
  #closed: Promise<void> | undefined;
  #allEnded: (() => void) | undefined;
  /** Fails the pending close (deadlock detection found its workers blocked for good). */
  #closeFailed: ((e: Error) => void) | undefined;

  constructor(opts: PoolOptions) {
    if (opts === null || typeof opts !== 'object' || opts.module === undefined) {
      throw new InvalidArgumentError('new Pool() needs { module }: the URL of the task module');
    }
    this.#opts = opts;
    this.size = positive(opts.size ?? availableParallelism(), 'size');
    this.#minSize = Math.min(this.size, nonNegative(opts.minSize ?? this.size, 'minSize'));
    this.#idleTimeout = nonNegative(opts.idleTimeout ?? 30_000, 'idleTimeout');
    this.#maxQueue = opts.maxQueue === undefined ? Infinity : nonNegative(opts.maxQueue, 'maxQueue');
    this.#depth = positive(opts.depth ?? 64, 'depth');
    this.#grace = nonNegative(opts.abortGrace ?? 1000, 'abortGrace');
    // The workers' threads start first, and boot while the pool makes its channel and compiles
    // its module. (Starting one first and the rest once it is ready gave the first result ~3 ms
    // sooner on 2 cores, and a batch sent at once finished ~45 ms later: all start together.)
    warmHosts(this.#minSize, opts.resourceLimits);
    this.#newResults();
    this.#module = prepareModule(opts.module instanceof URL ? opts.module.href : opts.module);
    this.#module.catch(() => undefined); // reported by the tasks that need it
    for (let i = 0; i < this.#minSize; i++) this.#startWorker();
  }

  /** Runs export `name` of the module with `args` in a worker; resolves to its result, or rejects with its error. */
  run<K extends Exports<M>>(name: K, ...args: Args<M, K>): Promise<Ret<M, K>> {
    return this.runWith({}, name, ...args);
  }

  /** `run` with options: an AbortSignal and a timeout for this task. */
  runWith<K extends Exports<M>>(opts: TaskOptions, name: K, ...args: Args<M, K>): Promise<Ret<M, K>> {
    return new Promise<Ret<M, K>>((resolve, reject) => {
      if (this.#broken !== undefined) return reject(this.#broken);
      if (this.#closing) return reject(new PoolClosedError());
      if (typeof name !== 'string') return reject(new InvalidArgumentError('run() needs the name of an exported function'));
      try {
        checkSignal(opts.signal);
      } catch (e) {
        return reject(e as Error);
      }
      if (opts.timeout !== undefined && !(typeof opts.timeout === 'number' && opts.timeout >= 0)) {
        return reject(new InvalidArgumentError(`timeout must be a number of ms ≥ 0 (Infinity: none), not ${String(opts.timeout)}`));
      }
      if (opts.signal?.aborted) return reject(abortError(opts.signal.reason));
      const task = this.#task(name, args, resolve as (v: unknown) => void, reject, false);
      // (Its abort channel, if it has one, must exist before the task is sent.)
      if (opts.signal !== undefined || opts.timeout !== undefined) this.#watch(task, opts);
      this.#outstanding++;
      this.#queue.push(task);
      this.#pump();
      // Past maxQueue (tasks still waiting once every worker holds all it can, counting those
      // starting or that may start): refused at once.
      if (this.#queue.length > this.#maxQueue + this.#startingRoom()) {
        this.#queue.pop();
        this.#outstanding--;
        task.settled = true;
        task.cleanup();
        return reject(new QueueFullError(this.#maxQueue));
      }
      this.#drive();
    });
  }

  /**
   * Starts export `name` of the module as a process on a worker of its own: one that is idle now
   * (no worker start to wait for), or else a new one, beyond `size` if need be, so that processes
   * that talk to each other over channels all run at once. No task goes to that worker until the
   * process ends; then it serves tasks again. `maxQueue` does not apply. A process sees
   * `currentTask()` as a task does; `terminate()` aborts it (its blocked channel operations fail
   * with AbortError) and stops its worker if it has not ended within `abortGrace`.
   */
  spawn<K extends Exports<M>>(name: K, ...args: Args<M, K>): PoolProcess<Ret<M, K>> {
    let resolve!: (v: unknown) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<Ret<M, K>>((res, rej) => {
      resolve = res as (v: unknown) => void;
      reject = rej;
    });
    done.catch(() => undefined); // reported by join()
    const task = this.#task(name, args, resolve, reject, true);
    const stop = new AbortController();
    let unrefd = false;
    let joined = false;
    const control: ProcessControl = {
      stop: async () => {
        if (task.settled) return;
        stop.abort();
        await this.#released(task);
      },
      ref: (ref) => {
        unrefd = !ref;
        this.#setBackground(task, unrefd && !joined);
      },
      joined: () => {
        joined = true;
        this.#setBackground(task, false);
      },
    };
    const proc = new PoolProcess<Ret<M, K>>(`${name}#${task.id}`, done, control);
    if (this.#broken !== undefined) reject(this.#broken);
    else if (this.#closing) reject(new PoolClosedError());
    else if (typeof name !== 'string') reject(new InvalidArgumentError('spawn() needs the name of an exported function'));
    else {
      markInternalSignal(stop.signal); // (what terminate() fires: not a signal of the program's)
      this.#watch(task, { signal: stop.signal }, () => new ProcessFailedError(`process ${proc.name} was terminated`));
      this.#outstanding++;
      this.#spawnQueue.push(task);
      this.#pump();
      this.#drive();
    }
    return proc;
  }

  /**
   * Runs `name` on every item of `input` (each item is the task's one argument), at most
   * `concurrency` at a time: the input is read no further ahead than that. Yields the results,
   * in input order unless `ordered: false`. A failed task ends the iteration with its error.
   * However the iteration ends early (a `break`, a failed task, the input throwing, `signal`),
   * its tasks still in flight are aborted: their workers are free again at once (or, for a task
   * that ignores its signal, after `abortGrace`), and no input is read further.
   */
  async *map<K extends Exports<M>>(
    name: K,
    input: Iterable<Args<M, K>[0]> | AsyncIterable<Args<M, K>[0]>,
    opts: MapOptions = {},
  ): AsyncGenerator<Ret<M, K>> {
    checkSignal(opts.signal);
    const ordered = opts.ordered ?? true;
    const limit = positive(opts.concurrency ?? this.size * 4, 'concurrency');
    const asyncInput = (input as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] !== undefined; // (a string input too)
    const it = asyncInput ? (input as AsyncIterable<Args<M, K>[0]>)[Symbol.asyncIterator]() : (input as Iterable<Args<M, K>[0]>)[Symbol.iterator]();
    // Ends the tasks still in flight once the iteration is over; a program's signal may too.
    const over = new AbortController();
    markInternalSignal(over.signal);
    const signal = opts.signal === undefined ? over.signal : AbortSignal.any([over.signal, opts.signal]);
    type Slot = { done: boolean; value?: Ret<M, K>; error?: unknown; p: Promise<unknown> };
    const window: Slot[] = []; // in input order
    let inputDone = false;
    const add = (item: Args<M, K>[0]): void => {
      const slot: Slot = { done: false, p: Promise.resolve() };
      slot.p = this.runWith({ signal }, name, ...([item] as Args<M, K>)).then(
        (v) => ((slot.done = true), (slot.value = v)),
        (e: unknown) => ((slot.done = true), (slot.error = e)),
      );
      window.push(slot);
    };
    // An async input is read one item at a time, while finished results are yielded and the
    // signal is watched: a slow input holds back neither. A sync one is read at once.
    let next: Promise<IteratorResult<Args<M, K>[0]>> | undefined;
    const stopped = new Promise<'stopped'>((resolve) => {
      if (opts.signal?.aborted === true) resolve('stopped');
      else opts.signal?.addEventListener('abort', () => resolve('stopped'), { once: true, signal: over.signal });
    });
    try {
      for (;;) {
        while (!inputDone && next === undefined && window.length < limit) {
          if (!asyncInput) {
            const n = (it as Iterator<Args<M, K>[0]>).next();
            if (n.done === true) inputDone = true;
            else add(n.value);
          } else next = Promise.resolve((it as AsyncIterator<Args<M, K>[0]>).next()); // (a plain result too, as for await takes)
        }
        if (window.length === 0 && next === undefined) break;
        const head = window.length === 0 ? undefined : ordered ? window[0]!.p : Promise.race(window.map((x) => x.p));
        const first = await Promise.race([
          stopped,
          ...(head === undefined ? [] : [head.then(() => 'result' as const)]),
          ...(next === undefined ? [] : [next.then(() => 'input' as const)]),
        ]);
        if (first === 'stopped') throw abortError(opts.signal?.reason);
        if (first === 'input') {
          const n = await next!;
          next = undefined;
          if (n.done === true) inputDone = true;
          else add(n.value);
          continue;
        }
        const k = ordered ? 0 : window.findIndex((x) => x.done);
        const [slot] = window.splice(k, 1);
        if (slot!.error !== undefined) throw slot!.error;
        yield slot!.value!;
      }
    } finally {
      over.abort(new Error('the iteration of pool.map ended before this task'));
      if (!inputDone) {
        // An input still producing its next item is not waited for (an async generator would
        // finish that first): it is told to stop once it has.
        const closing = next === undefined ? it.return?.() : next.then(() => it.return?.());
        if (next === undefined) await closing;
        else void Promise.resolve(closing).catch(() => undefined);
      }
    }
  }

  /**
   * Closes the pool: it takes no new task; queued and running tasks finish, then the workers end.
   * With `cancelPending`, tasks not yet started are rejected with PoolClosedError instead.
   * Resolves once every worker has ended.
   */
  close(opts: { cancelPending?: boolean } = {}): Promise<void> {
    this.#closing = true;
    if (opts.cancelPending === true) {
      for (const task of this.#queue.splice(0)) this.#settle(task, new PoolClosedError('the pool was closed before this task started'));
      for (const task of this.#spawnQueue.splice(0)) this.#settle(task, new PoolClosedError('the pool was closed before this process started'));
      for (const w of this.#workers.values()) this.#takeBack(w, new PoolClosedError('the pool was closed before this task started'));
    }
    this.#closed ??= this.#whenAllEnded();
    this.#maybeFinish();
    this.#drive(); // (holds the program until the workers have ended)
    return this.#closed;
  }

  /** The promise close() and destroy() return: settled once every worker has ended (#maybeFinish). */
  #whenAllEnded(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#allEnded = resolve;
      this.#closeFailed = reject;
    });
  }

  /** A new task (or process, `hosted`), not yet queued. */
  #task(name: string, args: unknown[], resolve: (v: unknown) => void, reject: (e: Error) => void, hosted: boolean): Task {
    return { id: this.#nextId++, name, args, resolve, reject, abort: null, cleanup: noCleanup, settled: false, sentAt: 0, hosted, background: false };
  }

  /** Resolves once no worker holds `task` (it ended, or its worker was stopped). */
  async #released(task: Task): Promise<void> {
    const w = [...this.#workers.values()].find((x) => x.owned.has(task.id));
    if (w === undefined) return;
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (!w.owned.has(task.id) || this.#workers.get(w.index) !== w) resolve();
        else setTimeout(check, 1);
      };
      check();
    });
  }

  /** Stops every worker now; tasks not finished are rejected with PoolClosedError. */
  async destroy(): Promise<void> {
    this.#closing = true;
    this.#destroyed = true;
    const why = (): PoolClosedError => new PoolClosedError('the pool was destroyed before this task finished');
    for (const task of this.#queue.splice(0)) this.#settle(task, why());
    for (const task of this.#spawnQueue.splice(0)) this.#settle(task, why());
    const ending = [...this.#workers.values()].map(async (w) => {
      for (const task of w.owned.values()) this.#settle(task, why());
      w.owned.clear();
      // (A worker whose process has not started yet ends as its module is ready: #startWorker.)
      await w.proc?.terminate();
      await w.proc?.join().catch(() => undefined);
    });
    this.#closed ??= this.#whenAllEnded();
    await Promise.all(ending);
    this.#maybeFinish();
    return this.#closed;
  }

  /** Queue length, tasks running, completed and failed, per-worker figures, and a run-time histogram. */
  stats(): PoolStats {
    const now = performance.now();
    let running = 0;
    const workers = [...this.#workers.values()].map((w) => {
      running += w.owned.size;
      const busy = w.busyMs + (w.owned.size > 0 ? now - w.busySince : 0);
      return { index: w.index, tasks: w.done, inFlight: w.owned.size, utilisation: busy / Math.max(1, now - w.startedAt), hosting: w.hosting };
    });
    return { queued: this.#queue.length + this.#spawnQueue.length, running, completed: this.#completed, failed: this.#failed, started: this.#nextIndex, workers, runTimeHistogram: [...this.#histogram] };
  }

  // ── workers ────────────────────────────────────────────────────────────────

  #startWorker(): void {
    const index = this.#nextIndex++;
    const tasks = chan<TaskMessage>(this.#depth, { name: `pool-tasks-${index}` });
    const init = this.#opts.initializer;
    const initArgs: [string, unknown[]] | null =
      init === undefined ? null : typeof init === 'string' ? [init, []] : [init.name, init.args ?? []];
    const w: Worker = {
      index,
      proc: undefined,
      tasks,
      owned: new Map(),
      ready: false,
      done: 0,
      busySince: 0,
      busyMs: 0,
      startedAt: performance.now(),
      idleTimer: undefined,
      retiring: false,
      stopped: false,
      hosting: false,
    };
    this.#workers.set(index, w);
    void this.#module.then(
      (url) => {
        if (this.#destroyed) return this.#workerEnded(w, undefined);
        const proc = spawn<number>(POOL_WORKER_URL, 'poolWorker', [url, initArgs, tasks.receiver(), this.#results.sender(), index], {
          name: `pool-worker-${index}`,
          ...(this.#opts.resourceLimits !== undefined ? { resourceLimits: this.#opts.resourceLimits } : {}),
        });
        w.proc = proc;
        if (this.#outstanding === this.#background) proc.unref();
        // Watching only: an idle pool neither holds the program nor looks like main waiting on it.
        proc.join({ ref: false }).then(
          () => this.#workerEnded(w, undefined),
          (e: unknown) => this.#workerEnded(w, e instanceof Error ? e : new Error(String(e))),
        );
        this.#drive();
      },
      (e: unknown) => {
        this.#breakPool(e); // (with the task this worker may hold, if the pool was not broken already)
        this.#workers.delete(index);
        this.#maybeFinish();
      },
    );
  }

  /** A worker ended: by closing (`error` undefined), or by dying. */
  #workerEnded(w: Worker, error: Error | undefined): void {
    // What it sent before it ended comes first: results of tasks it finished (not failed as
    // lost with it), or the report that it is ready or that its initializer failed. One of them
    // may have completed the loop's receive (nobody waits on the channel any more) and not be
    // delivered yet: the receive's promise may settle on a later turn than the one this end is
    // heard of. The loop handles this end once it has taken that (a worker that ran a task that
    // exits as soon as it was ready was taken for one that died starting: the pool broke).
    if (this.#receiving && this.#results.waitingReceivers === 0) {
      this.#lateEnds.push([w, error]);
      return;
    }
    while (this.#takeNow());
    // Ended by itself before it was ready: its start failed (its INIT_FAILED report may still be
    // on its way), and it never took the task it was given while starting: back to the queue.
    if (error === undefined && !w.ready) this.#takeBack(w, undefined);
    // Its report is then already taken by the loop, on its way to #takeResult, which breaks the
    // pool: no worker is started meanwhile (for its task taken back, or a process) to fail alike.
    if (error === undefined && !w.ready && !w.stopped && !this.#destroyed) this.#startFailed = true;
    this.#workers.delete(w.index);
    clearTimeout(w.idleTimer);
    if (error !== undefined && !w.ready && !w.stopped && !this.#destroyed && this.#broken === undefined) {
      // It died before its start was done (its module or initializer ended the thread: exit, out
      // of memory): a failed start, as a failing initializer is. A replacement would die alike.
      this.#breakPool(new WorkerDiedError(`a pool worker died while starting: ${error.message}`, { cause: error }));
      for (const task of w.owned.values()) this.#settle(task, this.#broken!);
      w.owned.clear();
    }
    if (error !== undefined && !this.#destroyed && this.#broken === undefined) {
      const died = new WorkerDiedError(`the pool worker running this task died: ${error.message}`, { cause: error });
      // Tasks it never took go back to the front of the queue; those it had taken fail.
      this.#takeBack(w, undefined);
      for (const task of w.owned.values()) this.#settle(task, died);
      w.owned.clear();
      if (!this.#closing || this.#queue.length > 0) this.#startWorker();
    }
    this.#pump();
    this.#maybeFinish();
  }

  /**
   * Takes the tasks still waiting in `w`'s channel back from it: re-queued at the front, or, with
   * `fail`, rejected. A channel the worker broke by dying in it holds what it holds for good.
   */
  #takeBack(w: Worker, fail: Error | undefined): void {
    const back: Task[] = [];
    for (;;) {
      const r = w.tasks.tryRecv();
      if (r.isErr()) break;
      const task = w.owned.get(r.value[0]);
      if (task === undefined) continue;
      this.#letGo(w, task);
      if (task.settled) continue; // settled already (aborted, timed out): not to run again
      if (fail !== undefined) this.#settle(task, fail);
      else back.push(task);
    }
    this.#queue.unshift(...back.filter((t) => !t.hosted));
    this.#spawnQueue.unshift(...back.filter((t) => t.hosted));
  }

  /** The initializer failed, or the module could not be prepared: the pool runs nothing. */
  #breakPool(cause: unknown): void {
    if (this.#broken !== undefined) return;
    this.#broken = new PoolBrokenError(`the pool cannot start its workers: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    for (const task of this.#queue.splice(0)) this.#settle(task, this.#broken);
    for (const task of this.#spawnQueue.splice(0)) this.#settle(task, this.#broken);
    for (const w of this.#workers.values()) {
      for (const task of w.owned.values()) this.#settle(task, this.#broken);
      w.owned.clear();
      closeOnce(w.tasks);
    }
    this.#closing = true;
    this.#maybeFinish();
  }

  // ── tasks ──────────────────────────────────────────────────────────────────

  /**
   * Sends each waiting process to an idle worker of its own, then queued tasks to the
   * least-loaded ready workers (not those running a process); starts workers up to `size` if all
   * are full, and beyond it for processes that found no idle worker.
   */
  #pump(): void {
    while (this.#spawnQueue.length > 0) {
      const idle = [...this.#workers.values()].find((w) => this.#takesWork(w) && w.owned.size === 0);
      if (idle === undefined) break;
      const sent = this.#dispatch(this.#spawnQueue, idle);
      if (sent === 'full') break;
      if (sent === 'sent') idle.hosting = true;
    }
    // A worker still starting holds a task only while no ready worker has room for it (below).
    if (this.#readyRoom()) for (const w of this.#workers.values()) if (!w.ready && w.owned.size > 0) this.#takeBack(w, undefined);
    while (this.#queue.length > 0) {
      let best: Worker | undefined;
      for (const w of this.#workers.values()) {
        if (this.#hasRoom(w) && (best === undefined || w.owned.size < best.owned.size)) best = w;
      }
      // No ready worker has room: a worker still starting takes one task, to run as soon as its
      // module is loaded (not a round trip to main later). Not while a process waits for a
      // worker: the one starting for it must come up idle.
      if (best === undefined && this.#spawnQueue.length === 0) best = this.#idleStarter();
      if (best === undefined || this.#dispatch(this.#queue, best) === 'full') break;
    }
    let starting = 0;
    let takers = 0;
    // Tasks waiting: queued, in a worker's channel behind another task, or held by one starting.
    let backlog = this.#queue.length;
    for (const w of this.#workers.values()) {
      if (!w.ready) {
        starting++;
        backlog += w.owned.size;
      } else if (!w.retiring) {
        takers++; // (one hosting a process takes tasks again when it ends)
        // Tasks still in its channel: not started (async tasks it has taken run side by side).
        if (!w.hosting && w.owned.size > 1) backlog += w.tasks.len;
      }
    }
    if (this.#destroyed || this.#broken !== undefined || this.#startFailed) return;
    // A process waits for no other: each gets a worker, even past `size`.
    for (; starting < this.#spawnQueue.length; starting++) this.#startWorker();
    // Below `size`, a worker starts for each task that waits (not counting those starting); the
    // tasks are shared out again when it is ready. A closing pool grows no more, but a task
    // queued with no worker left to take it (they all retired, or died) gets one.
    let more = this.#closing ? 0 : Math.min(this.size - this.#workers.size, backlog - starting);
    if (more <= 0 && this.#queue.length > 0 && takers === 0 && starting === 0) more = 1;
    for (; more > 0; more--) this.#startWorker();
  }

  /** Tasks the workers starting, or that may still start (up to `size`), will hold once ready. */
  #startingRoom(): number {
    let n = Math.max(0, this.size - this.#workers.size) * this.#depth;
    for (const w of this.#workers.values()) if (!w.ready && !w.retiring) n += this.#depth - w.owned.size; // (it may hold one already)
    return n;
  }

  /** A worker still starting that holds no task, if any. */
  #idleStarter(): Worker | undefined {
    for (const w of this.#workers.values()) if (!w.ready && !w.retiring && !w.stopped && w.owned.size === 0) return w;
    return undefined;
  }

  /** Whether a ready worker has room for a task. */
  #readyRoom(): boolean {
    for (const w of this.#workers.values()) if (this.#hasRoom(w)) return true;
    return false;
  }

  /** `w` is ready, takes tasks, and holds fewer than `depth`. */
  #hasRoom(w: Worker): boolean {
    return this.#takesWork(w) && w.owned.size < this.#depth;
  }

  #takesWork(w: Worker): boolean {
    return w.ready && !w.retiring && !w.hosting;
  }

  /**
   * Sends the first task of `queue` to `w`, recording it as w's: 'sent'. Else the task stays
   * first in the queue: 'full' if `w` cannot take it now (not expected: it holds at most depth),
   * 'dead' if w's worker died (it is skipped until replaced); or, 'failed', the task could not be
   * sent (a value that cannot travel) and fails alone.
   */
  #dispatch(queue: Task[], w: Worker): 'sent' | 'full' | 'dead' | 'failed' {
    const task = queue.shift()!;
    const r = w.tasks.trySend([task.id, task.name, task.args, task.abort]);
    if (r.isErr()) {
      const code = r.error.code;
      if (code === 'ERR_CHANNEL_FULL' || code === 'ERR_PEER_DIED' || code === 'ERR_CHANNEL_CLOSED') {
        queue.unshift(task);
        if (code === 'ERR_CHANNEL_FULL') return 'full';
        w.retiring = true; // dead, or told to end (its channel closed): another worker takes it
        return 'dead';
      }
      // (The task message is [id, name, args, abort]: say "argument 1 of f", not "value[2][1]".)
      const arg = r.error instanceof NotSendableError ? /^value\[2\]\[(\d+)\]/.exec(r.error.path) : null;
      this.#settle(task, arg !== null ? (r.error as NotSendableError).rebased(arg[0], `argument ${arg[1]} of ${task.name}`) : r.error);
      return 'failed';
    }
    if (w.owned.size === 0) {
      w.busySince = performance.now();
      clearTimeout(w.idleTimer);
    }
    task.sentAt = performance.now();
    w.owned.set(task.id, task);
    return 'sent';
  }

  /**
   * Takes results in while tasks are outstanding, holding the program alive meanwhile, and for
   * a moment (LINGER_MS) after the last: a pool that is used again soon finds its loop running
   * and its workers ref'd. While tasks are outstanding its wait has no deadline, so deadlock
   * detection sees main waiting on them (tasks blocked for good fail with ERR_DEADLOCK); a task
   * settled otherwise than by its result wakes it (`#wake`). The lingering wait is timed, so an
   * idle pool is never taken for a deadlock.
   */
  #drive(): void {
    // (A loop told to stop that has not reached its end yet does not count: a new one starts.)
    if (this.#driving !== undefined && !this.#driving.signal.aborted) {
      // Taking results for background processes only, without holding the program: no longer.
      if (this.#backgroundWait !== undefined && (this.#outstanding > this.#background || this.#allEnded !== undefined)) {
        for (const w of this.#workers.values()) w.proc?.ref();
        this.#backgroundWait.abort();
      }
      return;
    }
    if (this.#workers.size === 0) return;
    const stop = new AbortController();
    markInternalSignal(stop.signal);
    this.#driving = stop;
    for (const w of this.#workers.values()) w.proc?.ref();
    void (async () => {
      try {
        let yielded = false;
        let pollUntil = 0;
        while (!stop.signal.aborted) {
          for (const [w, error] of this.#lateEnds.splice(0)) this.#workerEnded(w, error);
          if (this.#takeNow()) {
            yielded = false;
            continue;
          }
          if (this.#results.broken) {
            this.#replaceResults();
            continue;
          }
          if (!yielded) {
            // Let the code waiting on the results just settled run first (it may send the next
            // task at once), rather than spinning and parking in front of it.
            yielded = true;
            pollUntil = performance.now() + POLL_MS;
            await new Promise((resume) => setImmediate(resume));
            continue;
          }
          if (performance.now() < pollUntil && this.#pollable()) {
            // A result due within microseconds: look again on the next turn of the event loop
            // (which meanwhile runs everything else) rather than park, as waking main from a
            // park costs 50-200 µs.
            await new Promise((resume) => setImmediate(resume));
            continue;
          }
          yielded = false;
          let next;
          // (A close awaited is foreground work too: the workers' ends, which come to main as
          // their joins settle, must find the program still running.)
          const foreground = this.#outstanding > this.#background || this.#allEnded !== undefined;
          const background = this.#outstanding > 0 && !foreground;
          let wait: AbortController | undefined;
          if (background) {
            // Only processes that must not keep the program alive: wait for their results, but
            // unref'd (as their workers are); new work, or a `ref()` or `join()`, ends this wait.
            for (const w of this.#workers.values()) w.proc?.unref();
            wait = this.#backgroundWait = new AbortController();
          }
          this.#receiving = true;
          try {
            next = await this.#results.recvResultAsync(
              wait !== undefined
                ? { signal: AbortSignal.any([stop.signal, wait.signal]), ref: false }
                : foreground
                  ? { signal: stop.signal }
                  : { signal: stop.signal, timeout: LINGER_MS },
            );
          } catch (e) {
            if (this.#results.broken) continue; // replaced at the top of the loop
            if ((e as { code?: unknown }).code !== 'ERR_DEADLOCK') throw e;
            this.#deadlocked(e as Error);
            continue;
          } finally {
            this.#receiving = false;
            if (this.#backgroundWait === wait) this.#backgroundWait = undefined;
          }
          if (next.isOk()) {
            this.#onResult(next.value);
            // The caller it settled runs first (it may be waiting to send its next task), before
            // this loop looks for more: after a park, main's code is cold and each step costs.
            await undefined;
          } else if (this.#results.broken) continue;
          else if (wait?.signal.aborted === true && !stop.signal.aborted) continue;
          else if (next.error.code !== 'ERR_TIMEOUT' || (this.#allEnded === undefined && this.#idle())) break;
        }
      } finally {
        if (this.#driving === stop) this.#driving = undefined;
        for (const [w, error] of this.#lateEnds.splice(0)) this.#workerEnded(w, error);
      }
    })();
  }

  /**
   * Whether main may poll for results: tasks are out, and a core is left for main by the workers
   * running them (polling beside busy workers on every core would slow them down).
   */
  #pollable(): boolean {
    let busy = 0;
    for (const w of this.#workers.values()) if (w.owned.size > 0) busy++;
    return busy > 0 && busy < CORES;
  }

  /** Makes the channel the workers send their results on. */
  #newResults(): void {
    this.#results = chan<ResultMessage>(4096, { name: 'pool-results' });
    // Main counts as a sender on it, for good: the death of every worker at once must not
    // disconnect it (the pool learns of deaths from `join`, and replaces them).
    this.#results.trySend([-1, NOOP, 1, null]);
  }

  /**
   * A worker died in the middle of sending on the shared results channel, which is broken for
   * good: a new one replaces it, and so is every worker (they all hold the old one). Their tasks
   * not yet taken go back to the queue; those they held fail with ERR_WORKER_DIED.
   */
  #replaceResults(): void {
    this.#newResults();
    this.#waking = false; // a wake sent on the old channel is lost with it
    for (const w of this.#workers.values()) {
      w.stopped = true;
      void w.proc?.terminate();
    }
  }

  /**
   * Whether the pool is idle (nothing outstanding or held, no worker starting): then its workers stop
   * holding the program alive, and the caller stops taking results.
   */
  #idle(): boolean {
    if (this.#outstanding > 0) return false;
    // (A task settled early — aborted, timed out — is still held by its worker until it ends.)
    for (const w of this.#workers.values()) if (!w.ready || w.owned.size > 0) return false;
    for (const w of this.#workers.values()) w.proc?.unref();
    return true;
  }

  /**
   * Takes in a result that is there now, if there is one (never waits; a results channel broken
   * by a death gives none: the drive loop replaces it). `len` first: it costs less than a try.
   */
  #takeNow(): boolean {
    const r = this.#results.len > 0 ? this.#results.tryRecv() : undefined;
    if (r?.isOk() !== true) return false;
    this.#onResult(r.value);
    return true;
  }

  /** Set while a result is taken in: its task's settling needs no wake of the loop, which runs. */
  #takingResult = false;

  /**
   * Wakes the loop from a wait with no deadline (a task was settled by an abort, a timeout, a
   * death...): it looks again at what is outstanding. A message to itself, as results are.
   */
  #wake(): void {
    // (A broken channel wakes it by itself; one wake on its way is enough for any number of settles.)
    if (this.#driving === undefined || this.#results.broken || this.#waking) return;
    try {
      this.#waking = this.#results.trySend([-1, NOOP, 1, null]).isOk();
    } catch {
      // broken meanwhile: its waiters fail, and the loop replaces it
    }
  }

  /** A wake (`#wake`) is on its way to the loop. */
  #waking = false;

  /**
   * Deadlock detection found every process blocked for good and main waiting on tasks: the tasks
   * that workers hold fail with its error (and its wait-for report), and those workers, stuck in
   * them, are replaced. Processes (`spawn`) fail the same way; queued tasks wait for new workers.
   */
  #deadlocked(err: Error): void {
    let settled = false;
    for (const w of this.#workers.values()) {
      // Tasks still in its channel never started: they go back to the queue, for other workers.
      if (w.owned.size > 0) this.#takeBack(w, undefined);
      let stuck = false;
      for (const task of w.owned.values()) {
        if (task.background) continue;
        stuck = true;
        this.#settle(task, err);
      }
      if (stuck) void w.proc?.terminate();
      settled ||= stuck;
    }
    if (!settled) {
      // No task was stuck in a worker, yet main waits for good: on queued tasks no worker will
      // ever take (every one blocked, in an initializer or a background process), or on a close
      // whose workers will never end. Those waits fail with the report; the workers are left.
      for (const task of this.#queue.splice(0)) this.#settle(task, err);
      for (const task of this.#spawnQueue.splice(0)) this.#settle(task, err);
      if (this.#allEnded !== undefined) {
        this.#closeFailed?.(err);
        this.#allEnded = undefined;
        this.#closeFailed = undefined;
      }
      // Nothing left to wait for: the loop stops, and the blocked workers hold nothing open.
      for (const w of this.#workers.values()) w.proc?.unref();
      this.#driving?.abort();
    }
    this.#pump(); // the tasks taken back go out again
  }

  #onResult(message: ResultMessage): void {
    this.#takingResult = true;
    try {
      this.#takeResult(message);
    } finally {
      this.#takingResult = false;
    }
  }

  #takeResult([index, id, ok, value]: ResultMessage): void {
    if (id === NOOP) {
      this.#waking = false;
      return;
    }
    const w = this.#workers.get(index);
    if (id === READY) {
      if (w === undefined) return;
      w.ready = true;
      if (w.owned.size > 0) w.busySince = performance.now(); // (its task waited for the start)
      // Tasks that went to the workers ready before it, and wait there behind others, are shared
      // out again: a worker that starts late (the pool grew, or one was replaced) gets its part.
      // (A task held by a worker still starting comes back in #pump.)
      for (const x of this.#workers.values()) if (x !== w && x.ready && !x.hosting && x.owned.size > 1) this.#takeBack(x, undefined);
      this.#pump();
      if (w.owned.size === 0 && this.#workers.get(w.index) === w) this.#armIdle(w);
      return;
    }
    if (id === INIT_FAILED) return this.#breakPool(decodeError(value));
    const task = w?.owned.get(id);
    if (w === undefined || task === undefined) return; // taken back (see #takeBack)
    this.#letGo(w, task);
    w.done++;
    const us = (performance.now() - task.sentAt) * 1000;
    this.#histogram[Math.min(BUCKETS - 1, Math.max(0, Math.ceil(Math.log2(Math.max(1, us)))))]!++;
    if (ok === 1) this.#settle(task, undefined, value);
    else this.#settle(task, decodeError(value));
    this.#pump();
    this.#maybeFinish(); // (a task settled before, by its abort or timeout, settles nothing now)
  }

  /** `w` no longer holds `task` (it ended, or was taken back before it started). */
  #letGo(w: Worker, task: Task): void {
    w.owned.delete(task.id);
    if (task.hosted) w.hosting = false;
    // (A task taken back from a worker still starting: it was not busy, nor is it idle yet.)
    if (w.owned.size === 0 && w.ready) {
      w.busyMs += performance.now() - w.busySince;
      if (this.#workers.get(w.index) === w) this.#armIdle(w); // (not one that has ended)
    }
  }

  /** A worker beyond minSize that stays idle for idleTimeout is retired. */
  #armIdle(w: Worker): void {
    if (this.#workers.size <= this.#minSize || this.#closing) return;
    clearTimeout(w.idleTimer);
    w.idleTimer = setTimeout(() => {
      let staying = 0;
      for (const x of this.#workers.values()) if (!x.retiring) staying++;
      if (w.owned.size !== 0 || w.retiring || staying <= this.#minSize) return;
      w.retiring = true;
      closeOnce(w.tasks);
    }, this.#idleTimeout);
    w.idleTimer.unref();
  }

  /** Makes `task` (a process) a background one, or not; a task that is no longer is driven as any other. */
  #setBackground(task: Task, background: boolean): void {
    if (task.settled || task.background === background) return;
    task.background = background;
    this.#background += background ? 1 : -1;
    if (background) this.#wake(); // a loop waiting for it in the foreground looks again
    else this.#drive();
  }

  /** Settles `task` once: with `error`, or with `value`. */
  #settle(task: Task, error: Error | undefined, value?: unknown): void {
    if (task.settled) return;
    task.settled = true;
    task.cleanup();
    this.#outstanding--;
    if (task.background) this.#background--;
    if (!this.#takingResult) this.#wake();
    if (error === undefined) {
      this.#completed++;
      task.resolve(value);
    } else {
      this.#failed++;
      task.reject(error);
    }
    this.#maybeFinish();
  }

  /** A task's signal and timeout: settle it at once, abort it in its worker, stop the worker if it runs on. */
  #watch(task: Task, opts: TaskOptions, aborted = (reason: unknown): Error => abortError(reason)): void {
    const abort = chan<never>(0, { name: `pool-abort-${task.id}` });
    task.abort = abort;
    // (Unnamed arrows: see keepNames in scripts/build.mjs.)
    const unwatch = opts.signal === undefined ? undefined : watchAbort(opts.signal, () => this.#fire(task, aborted(opts.signal?.reason)));
    const ms = opts.timeout ?? Infinity;
    const stopTimer =
      ms === Infinity ? undefined : timeoutAfter(ms, () => this.#fire(task, new TimeoutError(ms, `the task did not finish within its timeout of ${ms} ms`)));
    const release = holdForSignal(opts.signal);
    task.cleanup = () => {
      unwatch?.();
      stopTimer?.();
      release();
    };
  }

  /** Ends `task` (which has an abort channel: #watch) with `error`: its signal fired, or its timeout passed. */
  #fire(task: Task, error: Error): void {
    if (task.settled) return;
    task.abort!.poison();
    const queue = task.hosted ? this.#spawnQueue : this.#queue;
    const i = queue.indexOf(task);
    if (i >= 0) queue.splice(i, 1);
    this.#settle(task, error);
    // Still held by a worker. Not started yet (still in its channel, behind a running task):
    // taken back (with what waits beside it, sent out again), so the worker goes on. Started:
    // it has `abortGrace` to let go of it, then the worker is stopped.
    const w = [...this.#workers.values()].find((x) => x.owned.has(task.id));
    if (w !== undefined) {
      this.#takeBack(w, undefined);
      this.#pump();
      this.#maybeFinish();
    }
    if (w !== undefined && w.owned.has(task.id)) {
      setTimeout(() => {
        if (w.owned.has(task.id) && this.#workers.get(w.index) === w) void w.proc?.terminate();
      }, this.#grace).unref();
    }
  }

  /** Once closing and nothing is left to run: close the workers' channels; once they have ended, resolve close(). */
  #maybeFinish(): void {
    if (!this.#closing) return;
    if (!this.#destroyed && this.#queue.length === 0 && this.#spawnQueue.length === 0) {
      for (const w of this.#workers.values()) if (w.owned.size === 0) closeOnce(w.tasks);
    }
    // (Tasks still queued need a worker first: see #pump.)
    const queued = !this.#destroyed && (this.#queue.length > 0 || this.#spawnQueue.length > 0);
    if (this.#workers.size === 0 && !queued && this.#allEnded !== undefined) {
      this.#driving?.abort();
      this.#allEnded();
      this.#allEnded = undefined;
      this.#closeFailed = undefined;
    }
  }
}

/** A process that runs on a pool's worker (`pool.spawn`). */
export class PoolProcess<R> {
  /** `<export name>#<task id>`, as errors name it. */
  readonly name: string;
  readonly #done: Promise<R>;
  readonly #control: ProcessControl;
  /** @internal (made by `pool.spawn`) */
  constructor(name: string, done: Promise<R>, control: ProcessControl) {
    this.name = name;
    this.#done = done;
    this.#control = control;
  }
  /**
   * Resolves to what the process returned; rejects with what it threw (class, code, message,
   * stack). Waiting for it keeps the program alive, even for a process that was `unref()`'d.
   */
  join(): Promise<R> {
    this.#control.joined();
    return this.#done;
  }
  /**
   * Whether the running process keeps the program alive (it does, by default, until it ends, as
   * a task does). `unref()` lets the program exit while it still runs, as an unref'd timer would:
   * for a process that only serves others. `ref()` undoes it.
   */
  ref(): void {
    this.#control.ref(true);
  }
  /** See `ref()`. */
  unref(): void {
    this.#control.ref(false);
  }
  /**
   * Stops the process: `join` rejects with ProcessFailedError (ERR_PROCESS_FAILED) at once, its
   * blocked channel operations fail with AbortError, and its worker is stopped (and replaced) if
   * it has not returned within the pool's `abortGrace`. Resolves once it has let go of its worker.
   */
  terminate(): Promise<void> {
    return this.#control.stop();
  }
}

/** @internal What a PoolProcess asks of its pool. */
interface ProcessControl {
  stop(): Promise<void>;
  ref(ref: boolean): void;
  joined(): void;
}

function abortError(reason: unknown): AbortError {
  const e = new AbortError(reason);
  e.message = 'the task was aborted';
  return e;
}

/** Closes a worker's task channel, unless it is closed already, or broken by a death in it. */
function closeOnce(ch: Channel<TaskMessage>): void {
  if (ch.closed || ch.broken) return;
  try {
    ch.close();
  } catch (e) {
    // A worker stopped in the middle of an operation on it (destroy, a death) may leave its
    // lock held until the supervisor marks the channel broken: nothing is left to close then.
    const code = (e as { code?: unknown }).code;
    if (code !== 'ERR_PEER_DIED' && code !== 'ERR_CHANNEL_CLOSED') throw e;
  }
}

/** Longest delay setTimeout takes (ms): a longer one would fire at once. */
const MAX_DELAY = 2 ** 31 - 1;

/** Calls `fire` after `ms` (any length: a long wait is re-armed in steps); returns what cancels it. */
function timeoutAfter(ms: number, fire: () => void): () => void {
  let timer: ReturnType<typeof setTimeout>;
  const arm = (left: number): void => {
    timer = left > MAX_DELAY ? setTimeout(() => arm(left - MAX_DELAY), MAX_DELAY) : setTimeout(fire, left);
  };
  arm(ms);
  return () => clearTimeout(timer);
}

function positive(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer, not ${n}`);
  return n;
}

function nonNegative(n: number, what: string): number {
  if (!(n >= 0) || Number.isNaN(n)) throw new InvalidArgumentError(`${what} must be a number ≥ 0, not ${n}`);
  return n;
}
