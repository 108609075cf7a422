/**
 * The entry of every process worker: joins the runtime, then runs one process at a time as main
 * asks, settling each process record with the return value or the thrown error.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
// The whole API first: decoding arguments needs the channel module's handle support installed.
import './index.js';
import { abandonChannelsIn, channelsIn, poison, preholdEnds, releaseChannelsIn } from './channel.js';
import { ChannelPoisonedError, ProcessNotFoundError } from './errors.js';
import type { RunRequest } from './internal/host.js';
import { settle } from './internal/record.js';
import { P_ARGS, P_FAILED, P_OK, P_PENDING, P_RUNNING, P_STATE } from './internal/layout.js';
import { endUses, publishProcess } from './internal/reap.js';
import { joinRuntime, runtime, setInProcess } from './internal/runtime.js';
import { decodeSlot } from './internal/values.js';
import { setCurrentProcess } from './process.js';

// Stacks from TypeScript process modules point at their .ts lines (the bundles carry source maps).
process.setSourceMapsEnabled(true);
const init = workerData as { sab: SharedArrayBuffer; watched: MessagePort; preload: string[] };
joinRuntime(init);
// Modules main expects this host's first process to need (warmHosts): loading starts now, and the
// process's own import() finds them loaded (or fails with the same error).
for (const url of init.preload) import(url).catch(() => undefined);
// Held for the life of this thread, and never used: when the thread dies, the supervisor's end
// closes (supervisor.ts). It must not keep an idle host alive.
init.watched.unref();
const port = parentPort!;

async function run(req: RunRequest): Promise<void> {
  const rt = runtime();
  rt.heap.sync(); // main may have grown the heap since this warm host last ran
  const m = rt.heap.i32;
  if (Atomics.compareExchange(m, (req.rec >> 2) + P_STATE, P_PENDING, P_RUNNING) !== P_PENDING) return;
  setCurrentProcess(req.name);
  publishProcess(rt, req.name);
  setInProcess(rt, true);
  let args: unknown[] = [];
  let state: typeof P_OK | typeof P_FAILED = P_OK;
  let value: unknown;
  // A process that calls process.exit() with poisonOnDeath poisons its channels on the way out,
  // before its death is cleaned up after: its peers see the poison. (Terminated: main does it.)
  const onExit = (): void => poison(...channelsIn(args));
  if (req.poisonOnDeath) process.once('exit', onExit);
  try {
    args = decodeSlot(rt, m.slice((req.rec >> 2) + P_ARGS, (req.rec >> 2) + P_ARGS + 4)) as unknown[];
    preholdEnds(args, -1); // the typed ends are ours now: the spawner's count of them is handed over
    const mod = (await import(req.url)) as Record<string, unknown>;
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
    if (poisoned ? req.propagatePoison : req.poisonOnDeath) poison(...channelsIn(args));
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
    // (Releasing a handle the process released already does nothing.) If main settled it first
    // (it terminated the process), main gives those references back.
    if (settle(req.rec, req.id, state, value, req.name) >= 0) releaseChannelsIn(args);
    else abandonChannelsIn(args);
  } finally {
    process.off('exit', onExit);
    // Blocks this thread cached go back to the shared lists: a host may be retired while idle.
    rt.heap.flushCaches();
    setInProcess(rt, false);
    setCurrentProcess(undefined);
  }
}

port.on('message', (req: RunRequest) => {
  void run(req).then(() => port.postMessage({ type: 'occam:idle' }));
});
