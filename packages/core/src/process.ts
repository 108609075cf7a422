/**
 * Processes: functions exported from a module, each run in a worker of its own, sharing nothing
 * but the channels passed to them. `spawn` starts one, `join` waits for its result, `par` runs a
 * group and stops the rest on the first failure (occam's PAR).
 */
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, type ResourceLimits } from 'node:worker_threads';
import { ChannelPoisonedError, InvalidArgumentError, ProcessFailedError, SyncOnMainError } from './errors.js';
import { channelsIn, checkSignal, poison, preholdEnds } from './channel.js';
import { decodeError } from './internal/errcodec.js';
import type { RunRequest } from './internal/host.js';
import { P_ARGS, P_FAILED, P_ID, P_OK, P_PREHELD, P_SLOT, P_STATE, P_WORDS } from './internal/layout.js';
import { holdAlive, holdForSignal, releaseAlive, runtime, setRunning } from './internal/runtime.js';
import { decodeSlot, discardSlot, encodeSlot } from './internal/values.js';
import { freeRecord } from './internal/record.js';

/** Options of `spawn`. */
export interface SpawnOptions {
  /** A name for errors and diagnostics (default `<export>#<id>`). */
  name?: string;
  /** V8 heap limits for the process's worker (it gets a worker of its own kind). */
  resourceLimits?: ResourceLimits;
  /** Aborting terminates the process. */
  signal?: AbortSignal;
  /**
   * When the process ends by poison (its body throws ChannelPoisonedError), poison every channel
   * among its arguments too, so that a shutdown spreads through a network (see `poison`).
   */
  propagatePoison?: boolean;
  /**
   * When the process dies — throws (anything but poison), rejects, exits, runs out of memory,
   * is terminated — poison every channel among its arguments, so that its peers get
   * ERR_CHANNEL_POISONED instead of waiting for it for ever.
   */
  poisonOnDeath?: boolean;
}

let current: string | undefined;

/**
 * Processes nobody joined (their handle was dropped): the record, and the result in it, are
 * freed once the process has ended, as a join would.
 */
const unjoined = new FinalizationRegistry<{ rec: number; id: number }>(({ rec, id }) => {
  freeWhenEnded(rec, id).catch((e: unknown) => process.emitWarning(`occam: freeing an unjoined process's record failed: ${String(e)}`));
});

async function freeWhenEnded(rec: number, id: number): Promise<void> {
  const rt = runtime();
  if (!(await settledWhile(rec, () => Atomics.load(rt.heap.i32, (rec >> 2) + P_ID) === id))) return;
  const m = rt.heap.i32;
  discardSlot(rt, m.slice((rec >> 2) + P_SLOT, (rec >> 2) + P_SLOT + 4));
  freeRecord(rec);
}

/**
 * Waits, without blocking the thread (and holding nothing open), until record `rec` is settled:
 * true; false as soon as `still()` no longer holds (it is looked at before every read).
 */
async function settledWhile(rec: number, still: () => boolean): Promise<boolean> {
  const rt = runtime();
  const at = (rec >> 2) + P_STATE;
  while (still()) {
    rt.heap.sync();
    const m = rt.heap.i32;
    const s = Atomics.load(m, at);
    if (s === P_OK || s === P_FAILED) return true;
    const r = rt.parker.waitAsync(m, at, s, Infinity);
    if (typeof r !== 'string') await r;
  }
  return false;
}

/** @internal Set by the worker host while a process body runs. */
export function setCurrentProcess(name: string | undefined): void {
  current = name;
}

/** The name of the process running on this thread, or `main`. */
export function processName(): string {
  return current ?? (isMainThread ? 'main' : 'worker');
}

/** The host module, loaded on first use (main thread only). */
let hostModule: Promise<typeof import('./internal/host.js')> | undefined;

type Settled<R> = { ok: true; value: R } | { ok: false; error: Error };

/** Options of `Process.join`. */
export interface JoinOptions {
  /** `false`: the wait does not keep the program alive, nor count as main waiting (deadlock detection). Default `true`. */
  ref?: boolean;
}

/** A started process. `join()` gives its return value, or re-throws its error. */
export class Process<R = unknown> {
  /** The name used in errors and diagnostics. */
  readonly name: string;
  readonly #rec: number;
  readonly #id: number;
  #settled: Settled<R> | undefined;
  #joining: Promise<R> | undefined;

  /** @internal Use `spawn()`. */
  constructor(rec: number, id: number, name: string) {
    this.#rec = rec;
    this.#id = id;
    this.name = name;
    unjoined.register(this, { rec, id }, this);
  }

  /**
   * Waits for the process to end; resolves to its return value or rejects with its error (class,
   * code, stack). Waiting keeps the program alive, and on the main thread counts as main waiting
   * for deadlock detection; with `{ ref: false }` it does neither: for code that only watches a
   * process (a pool watching its workers), as an unref'd timer would.
   */
  join(opts?: JoinOptions): Promise<R> {
    // One wait per process, however many joiners: the record is decoded and freed once.
    this.#joining ??= this.#join();
    if (opts?.ref === false || this.#settled !== undefined) return this.#joining;
    return this.#held(this.#joining);
  }

  /** `p`, while it is pending holding the program alive and (on main) counted as main waiting. */
  #held(p: Promise<R>): Promise<R> {
    const rt = runtime();
    return new Promise<R>((resolve, reject) => {
      let over = false;
      const end = (settle: () => void): void => {
        if (over) return;
        over = true;
        if (rt.isMain) rt.waits.delete(onDeadlock);
        releaseAlive(rt);
        settle();
      };
      // Deadlock detection fails this join; the process's own wait goes on, for a later join.
      const onDeadlock = (err: Error): void => end(() => reject(err));
      holdAlive(rt);
      if (rt.isMain) rt.waits.add(onDeadlock);
      p.then(
        (v) => end(() => resolve(v)),
        (e: unknown) => end(() => reject(e)),
      );
    });
  }

  /** The wait itself: it neither holds the program alive nor counts as main waiting (see `join`). */
  async #join(): Promise<R> {
    // (joinSync may settle it meanwhile, and free the record.)
    if (await settledWhile(this.#rec, () => this.#settled === undefined)) this.#settle();
    return this.#result();
  }

  /** Waits for the process to end, blocking this worker (not allowed on the main thread). */
  joinSync(): R {
    if (this.#settled === undefined) {
      const rt = runtime();
      if (rt.isMain) throw new SyncOnMainError('joinSync');
      const m = rt.heap.i32;
      const at = (this.#rec >> 2) + P_STATE;
      // Parked with no deadline, as a blocked channel operation is (deadlock detection, the
      // wait-for report): T_PARKED_ON holds the joined record, negated (an op's offset is positive).
      setRunning(rt, false);
      Atomics.store(m, rt.parkedOnAt, -this.#rec);
      try {
        for (;;) {
          const s = Atomics.load(m, at);
          if (s === P_OK || s === P_FAILED) break;
          rt.parker.wait(m, at, s, Infinity);
        }
      } finally {
        Atomics.store(m, rt.parkedOnAt, 0);
        setRunning(rt, true);
      }
      this.#settle();
    }
    return this.#result();
  }

  /**
   * Whether the running process keeps the program alive (it does, by default, until it ends).
   * `unref()` lets the program exit while it still runs — for a process that only serves others,
   * such as an idle pool worker; `ref()` undoes it. Main thread only.
   */
  ref(): void {
    this.#setRef(true);
  }

  /** See `ref()`. */
  unref(): void {
    this.#setRef(false);
  }

  #setRef(ref: boolean): void {
    if (!isMainThread) throw new InvalidArgumentError('ref() and unref() work on the main thread, where the workers are owned');
    if (this.#settled !== undefined) return;
    hostModule ??= import('./internal/host.js');
    void hostModule.then((host) => host.refProcess(this.#rec, this.#id, ref));
  }

  /**
   * Stops the process now; `join` then rejects with ERR_PROCESS_FAILED. Resolves once its worker
   * has stopped and its peers have been released (a send to it then fails); at once if it has
   * ended already.
   */
  async terminate(): Promise<void> {
    if (this.#settled !== undefined) return;
    if (isMainThread) {
      const { terminateProcess } = await import('./internal/host.js');
      await terminateProcess(this.#rec, this.#id, this.name);
    } else {
      parentPort!.postMessage({ type: 'occam:terminate', rec: this.#rec, id: this.#id, name: this.name });
      // Main stops it, cleans up after it, then fails its record: returns once that is done.
      await this.join({ ref: false }).catch(() => undefined);
    }
  }

  #settle(): void {
    if (this.#settled !== undefined) return; // once: the record is freed here
    unjoined.unregister(this);
    const rt = runtime();
    rt.heap.sync();
    const m = rt.heap.i32;
    const ok = Atomics.load(m, (this.#rec >> 2) + P_STATE) === P_OK;
    const value = decodeSlot(rt, m.slice((this.#rec >> 2) + P_SLOT, (this.#rec >> 2) + P_SLOT + 4));
    this.#settled = ok ? { ok: true, value: value as R } : { ok: false, error: decodeError(value) };
    // A join's async wait on this thread, if one is pending (joinSync settled it): it looks again.
    Atomics.notify(m, (this.#rec >> 2) + P_STATE);
    freeRecord(this.#rec);
  }

  #result(): R {
    const s = this.#settled!;
    if (s.ok) return s.value;
    throw s.error;
  }
}

/** Refuses options that are not what they say, before anything is started (ERR_INVALID_ARGUMENT). */
function checkSpawnOptions(opts: SpawnOptions): void {
  if (typeof opts !== 'object' || opts === null) throw new InvalidArgumentError(`spawn() options must be an object, not ${String(opts)}`);
  if (opts.name !== undefined && typeof opts.name !== 'string') throw new InvalidArgumentError(`a process's name must be a string, not ${String(opts.name)}`);
  checkSignal(opts.signal);
  if (opts.resourceLimits !== undefined && (typeof opts.resourceLimits !== 'object' || opts.resourceLimits === null)) {
    throw new InvalidArgumentError(`resourceLimits must be an object (Node's ResourceLimits), not ${String(opts.resourceLimits)}`);
  }
}

function urlString(moduleUrl: string | URL): string {
  if (moduleUrl instanceof URL) return moduleUrl.href;
  if (typeof moduleUrl !== 'string' || moduleUrl === '') {
    throw new InvalidArgumentError('spawn() needs a module URL, e.g. new URL("./worker.ts", import.meta.url)');
  }
  // An absolute path may hold characters a URL escapes (`#`, `%`, `?`, spaces).
  return moduleUrl.startsWith('/') ? pathToFileURL(moduleUrl).href : moduleUrl;
}

/**
 * Starts `exportName` from the module at `moduleUrl` (JavaScript or TypeScript) in a worker,
 * called with `args` (channels inside them arrive as working handles). Returns at once.
 */
export function spawn<R = unknown>(
  moduleUrl: string | URL,
  exportName: string,
  args: readonly unknown[] = [],
  opts: SpawnOptions = {},
): Process<R> {
  const url = urlString(moduleUrl);
  if (typeof exportName !== 'string') throw new InvalidArgumentError('spawn() needs the name of an exported function');
  if (!Array.isArray(args)) throw new InvalidArgumentError('spawn() takes the process arguments as an array');
  checkSpawnOptions(opts);
  const rt = runtime();
  const slot = new Int32Array(4);
  encodeSlot(rt, args, slot); // throws NotSendableError before anything is started
  const preheld = preholdEnds(args);
  const h = rt.heap;
  const rec = h.alloc(P_WORDS * 4);
  h.sync();
  h.i32.fill(0, rec >> 2, (rec >> 2) + P_WORDS);
  const id = h.nextId();
  h.i32[(rec >> 2) + P_ID] = id;
  h.i32.set(slot, (rec >> 2) + P_ARGS);
  h.i32[(rec >> 2) + P_PREHELD] = preheld;
  const name = opts.name ?? `${exportName}#${id}`;
  const req: RunRequest = {
    type: 'occam:spawn',
    rec,
    id,
    url,
    exportName,
    name,
    resourceLimits: opts.resourceLimits,
    propagatePoison: opts.propagatePoison === true,
    poisonOnDeath: opts.poisonOnDeath === true,
  };
  if (isMainThread) {
    void import('./internal/host.js').then((host) => host.startProcess(req));
  } else {
    parentPort!.postMessage(req);
  }
  const proc = new Process<R>(rec, id, name);
  if (opts.poisonOnDeath === true) poisonOnDeath(proc, args);
  const signal = opts.signal;
  if (signal !== undefined) {
    if (signal.aborted) void proc.terminate();
    else {
      const onAbort = (): void => void proc.terminate();
      signal.addEventListener('abort', onAbort, { once: true });
      // Until it ends, the signal may stop it: a join of it is not a deadlock. Once it has ended,
      // the signal (which may outlive many processes) lets go of it.
      const release = isMainThread ? holdForSignal(signal) : (): void => undefined;
      const ended = (): void => {
        release();
        signal.removeEventListener('abort', onAbort);
      };
      proc.join({ ref: false }).then(ended, ended);
    }
  }
  return proc;
}

/**
 * Holds a reference to every channel in `args` until `proc` ends; if it ends by dying (any
 * failure but poison, which has already been passed on or not as the process chose), poisons
 * them all. Our own references: the caller may release its handles meanwhile. (A process that
 * throws has poisoned them itself before it ended, see worker-host.ts; this is for a worker that
 * dies.)
 */
function poisonOnDeath(proc: Process<unknown>, args: readonly unknown[]): void {
  const held = channelsIn(args).map((ch) => ch.sender());
  const release = (): void => held.forEach((ch) => ch.release());
  proc.join({ ref: false }).then(release, (e: unknown) => {
    if (!(e instanceof ChannelPoisonedError)) poison(...held);
    release();
  });
}

type ExportFn<M, K extends keyof M> = M[K] extends (...a: infer A) => infer R ? { args: A; result: Awaited<R> } : never;

/** Typed spawning from one module: `processModule<typeof import('./stages.js')>(url).spawn('square', [a, b])`. */
export function processModule<M>(moduleUrl: string | URL): {
  spawn<K extends keyof M & string>(
    exportName: K,
    args: ExportFn<M, K>['args'],
    opts?: SpawnOptions,
  ): Process<ExportFn<M, K>['result']>;
} {
  return {
    spawn: (exportName, args, opts) => spawn(moduleUrl, exportName, args as readonly unknown[], opts),
  };
}

type Results<T extends readonly Process<unknown>[]> = { -readonly [K in keyof T]: T[K] extends Process<infer R> ? R : never };

/**
 * occam's PAR: waits for every process; on the first failure terminates the others and rejects
 * with that failure. Resolves to the results in order. A process that ends by poison
 * (ChannelPoisonedError) is shutting down, not failing: the others are left to see the poison
 * and end too, and once all have ended, `par` rejects with the first poison error.
 */
export function par<T extends readonly Process<unknown>[]>(...procs: T): Promise<Results<T>> {
  return new Promise((resolve, reject) => {
    const results: unknown[] = new Array(procs.length);
    let left = procs.length;
    let failed = false;
    let poisoned: Error | undefined;
    const ended = (): void => {
      if (--left !== 0 || failed) return;
      if (poisoned !== undefined) reject(poisoned);
      else resolve(results as Results<T>);
    };
    if (left === 0) resolve(results as Results<T>);
    procs.forEach((p, i) => {
      p.join().then(
        (v) => {
          results[i] = v;
          ended();
        },
        (e: unknown) => {
          if (failed) return;
          if (e instanceof ChannelPoisonedError) {
            poisoned ??= e;
            ended();
            return;
          }
          failed = true;
          void Promise.all(procs.map((q) => (q === p ? undefined : q.terminate()))).then(() =>
            reject(e instanceof Error ? e : new ProcessFailedError(String(e))),
          );
        },
      );
    });
  });
}

/**
 * Runs `fn` as the program's main body, on the main thread only: a module that is both a program
 * and the home of its processes skips it when loaded in a worker. A failure is printed and ends
 * the program with exit code 1, whatever its processes are doing (a process left blocked on a
 * channel that main no longer serves would otherwise hold the program open).
 */
export function main(fn: () => unknown): void {
  if (!isMainThread) return;
  Promise.resolve()
    .then(fn)
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
