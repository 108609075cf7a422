/**
 * The entry of every process worker: joins the runtime, then runs one process at a time as main
 * asks, settling each process record with the return value or the thrown error.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
// The whole API first: decoding arguments needs the channel module's handle support installed.
import './index.js';
import { channelsIn, detachArgs, listArgRefs, poison, releaseChannelsIn } from './channel.js';
import { ChannelPoisonedError, ProcessNotFoundError } from './errors.js';
import type { RunRequest } from './internal/host.js';
import { argsSlot, claimRecord, encodeResult, handOverEnds, storeResult } from './internal/record.js';
import { importModule } from './internal/import-module.js';
import {
  FAULT_DIE_ADOPTING,
  FAULT_DIE_HANDING_OVER,
  FAULT_DIE_SETTLING,
  H_FAULT,
  P_FAILED,
  P_ID,
  P_OK,
  P_PENDING,
  P_RUNNING,
  P_STATE,
  P_TAKEN,
  T_POISON_ON_DEATH,
} from './internal/layout.js';
import { endUses, publishProcess } from './internal/reap.js';
import { joinRuntime, runtime, setInProcess, slotWord } from './internal/runtime.js';
import { decodeSlotAdopting } from './internal/values.js';
import { POOL_WORKER_URL } from './pool-kit.js';
import * as poolWorkerModule from './pool-worker.js';
import { setCurrentProcess } from './process.js';

/** Makes this worker thread a process host: called once, by the worker's entry (dist/worker-host.cjs). */
export function startHost(): void {
  endStdinOnFirstUse();
  // Stacks from TypeScript process modules point at their .ts lines (the bundles carry source maps).
  process.setSourceMapsEnabled(true);
  const init = workerData as { sab: SharedArrayBuffer; watched: MessagePort };
  joinRuntime(init);
  // Held for the life of this thread, and never used: when the thread dies, the supervisor's end
  // closes (supervisor.ts). It must not keep an idle host alive.
  init.watched.unref();
  const port = parentPort!;
  port.on('message', (req: RunRequest) => {
    void run(req).then(() => port.postMessage({ type: 'occam:idle' }));
  });
}

async function run(req: RunRequest): Promise<void> {
  const rt = runtime();
  rt.heap.sync(); // main may have grown the heap since this warm host last ran
  const m = rt.heap.i32;
  if (Atomics.load(m, (req.rec >> 2) + P_ID) !== req.id) return; // (see below)
  if (Atomics.compareExchange(m, (req.rec >> 2) + P_STATE, P_PENDING, P_RUNNING) !== P_PENDING) return;
  // The record was terminated, freed and reused by another process before this start came: its
  // new owner's start is its own, and this one is void.
  if (Atomics.load(m, (req.rec >> 2) + P_ID) !== req.id) {
    Atomics.compareExchange(m, (req.rec >> 2) + P_STATE, P_RUNNING, P_PENDING);
    return;
  }
  setCurrentProcess(req.name);
  publishProcess(rt, req.name);
  setInProcess(rt, true);
  // Dying where it cannot poison its channels itself (out of memory), main does: see supervisor.ts.
  if (req.poisonOnDeath) Atomics.store(m, slotWord(rt.slot, T_POISON_ON_DEATH), 1);
  let args: unknown[] = [];
  /** Every handle its arguments brought (one per reference they adopted, wherever it sits in them). */
  const adopted: unknown[] = [];
  let state: typeof P_OK | typeof P_FAILED = P_OK;
  let value: unknown;
  // A process that calls process.exit() with poisonOnDeath poisons its channels on the way out,
  // before its death is cleaned up after: its peers see the poison. (Terminated: main does it.)
  const onExit = (): void => poisonAll(args);
  if (req.poisonOnDeath) process.once('exit', onExit);
  try {
    if (Atomics.load(m, H_FAULT) === FAULT_DIE_ADOPTING) process.exit(73); // test-only
    try {
      args = decodeSlotAdopting(rt, argsSlot(req.rec), adopted) as unknown[];
      // If this thread dies, main gives back the references its handles still hold (claim table).
      listArgRefs(req.rec, adopted);
    } finally {
      // The references are the handles' now (listed, or else held by them alone: a decode or a
      // listing that failed). Not run if the thread dies before: main gives back what the
      // arguments carry (a terminated or exiting worker runs no `finally`).
      Atomics.store(rt.heap.i32, (req.rec >> 2) + P_TAKEN, 1);
    }
    if (Atomics.load(rt.heap.i32, H_FAULT) === FAULT_DIE_HANDING_OVER) process.exit(74); // test-only
    handOverEnds(req.rec); // the typed ends are ours now (counted as we adopted them): the spawner's count goes
    // The pool's worker process (dist/pool-worker.js) is taken from the core this thread has
    // loaded, not imported as an ES module (the ES loader's start and a module load, 3-6 ms of
    // each pool worker's start): the same exports, the entry being a view of the one bundle.
    const mod = (req.url === POOL_WORKER_URL ? poolWorkerModule : await importModule(req.url)) as Record<string, unknown>;
    const fn = mod[req.exportName];
    if (typeof fn !== 'function') {
      throw new ProcessNotFoundError(
        `${req.url} has no exported function ${JSON.stringify(req.exportName)}; export it, or check the name`,
      );
    }
    value = await (fn as (...a: unknown[]) => unknown)(...args);
  } catch (err) {
    // Ended by poison: pass it on to every channel the process was given (the protocol). Died
    // otherwise: poison them if asked to, before its peers hear of the death another way.
    const poisoned = err instanceof ChannelPoisonedError;
    if (poisoned ? req.propagatePoison : req.poisonOnDeath) poisonAll(args);
    state = P_FAILED;
    value = err;
  }
  try {
    // A process that died (anything but poison) leaves the channel ends only it used
    // disconnected (internal/reap.ts): before its joiner hears of it.
    endUses(rt, rt.slot, state === P_FAILED && !(value instanceof ChannelPoisonedError), req.name);
    publishProcess(rt, undefined);
    // The handles its arguments brought hold a reference each: let go of them now (a host may
    // idle for long, and its garbage collector would not free the channels for shared memory
    // it does not see). A process is over when its function returns: later use is an error.
    // (Releasing a handle the process released already does nothing; each claims its entry of
    // the claim table, so main, terminating it meanwhile, gives back only the others.) After the
    // result is encoded (it may hold one of them), before it is published (the joiner frees the
    // table with the record).
    const was = claimRecord(req.rec, req.id, state === P_FAILED ? req.name : undefined);
    const result = was >= 0 ? encodeResult(state, value) : undefined;
    if (Atomics.load(rt.heap.i32, H_FAULT) === FAULT_DIE_SETTLING) process.exit(71); // test-only
    releaseChannelsIn(adopted);
    detachArgs(adopted); // (a release waiting for an async op must not touch the table later)
    if (result !== undefined) storeResult(req.rec, result);
  } finally {
    process.off('exit', onExit);
    // Blocks this thread cached go back to the shared lists: a host may be retired while idle.
    rt.heap.flushCaches();
    Atomics.store(rt.heap.i32, slotWord(rt.slot, T_POISON_ON_DEATH), 0);
    setInProcess(rt, false);
    setCurrentProcess(undefined);
  }
}

/**
 * Hosts are started with `stdin: true` (host.ts), so Node leaves this worker's stdin open where
 * it would end it at the worker's start: a process that reads `process.stdin` must still find it
 * ended, as in any worker started without stdin. Ended on first use, which makes the stream then.
 */
function endStdinOnFirstUse(): void {
  const own = Object.getOwnPropertyDescriptor(process, 'stdin');
  const get = own?.get;
  if (get === undefined || own!.configurable !== true) return;
  Object.defineProperty(process, 'stdin', {
    configurable: true,
    enumerable: own!.enumerable ?? true,
    get() {
      Object.defineProperty(process, 'stdin', own!);
      const stdin = get.call(process) as NodeJS.ReadStream;
      stdin.push(null);
      return stdin;
    },
  });
}

/** Poisons every channel in `args` the process still holds (one it released is skipped). */
function poisonAll(args: unknown): void {
  for (const ch of channelsIn(args)) {
    try {
      poison(ch);
    } catch {
      // released by the process: not its to poison any more
    }
  }
}
