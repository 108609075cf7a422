/**
 * Worker hosts, owned by the main thread: warm workers that run one process at a time and are
 * reused, so a spawn does not pay a worker start (~55 ms) each time.
 *
 * Invariants:
 *  - A busy host is ref'd (its process keeps Node alive); an idle host is unref'd.
 *  - A process record is settled exactly once: by its host (return or throw), or here when the
 *    host's worker dies first (exit, crash, out of memory, terminate).
 */
import { isMainThread, MessageChannel, Worker, type ResourceLimits } from 'node:worker_threads';
import { ProcessFailedError } from '../errors.js';
import { P_FAILED, P_ID, P_PENDING, P_RUNNING, P_SETTLING, P_STATE } from './layout.js';
import { poisonArgRefs, releaseArgRefs, releaseOrphanedRefs } from '../channel.js';
import { reviveOccamError } from './errcodec.js';
import { claimRecord, publishResult } from './record.js';
import { beingReaped, reapThread } from './reap.js';
import { setStuckHook } from './heap.js';
import { runtime } from './runtime.js';
import type { WatchRequest } from '../supervisor.js';
import { ownWorkers, setHostInfo } from '../report.js';
import { watchProgram } from './deadlock.js';

/** A request to run one process. */
export interface RunRequest {
  type: 'occam:spawn';
  /** Byte offset of the process record. */
  rec: number;
  url: string;
  exportName: string;
  name: string;
  /** The process id stored in the record (P_ID). */
  id: number;
  resourceLimits: ResourceLimits | undefined;
  /** On ending by poison, poison every channel in the arguments. */
  propagatePoison: boolean;
  /** On dying (a throw of anything but poison), poison every channel in the arguments. */
  poisonOnDeath: boolean;
}

/** Messages a host sends to main. */
export type HostMessage = RunRequest | { type: 'occam:idle' } | { type: 'occam:terminate'; rec: number; id: number; name: string };

interface Host {
  worker: Worker;
  /** The worker's threadId, recorded at start (it reads -1 after exit). */
  threadId: number;
  key: string;
  current: RunRequest | undefined;
  /** Being terminated: never idle again (a spawn must not land on it). */
  dying: boolean;
  /** What crashed its thread ('error' comes before 'exit'): the process fails with it at exit. */
  crash?: Error;
  /** Whether its worker holds the program open (see `hold`). */
  held: boolean;
}

/** Lets `host`'s worker hold the program open, or not (and records which, for `describeHosts`). */
function hold(host: Host, on: boolean): void {
  host.held = on;
  if (on) host.worker.ref();
  else host.worker.unref();
}

const MAX_IDLE = 8;
const idle = new Map<string, Host[]>();
const running = new Map<number, Host>(); // process record → its host

function hostUrl(): URL {
  return new URL('./worker-host.cjs', import.meta.url); // dist/ (core's code is dist/core.cjs)
}

/** Whether record `rec` is process `id`'s, in `state` (P_RUNNING: not settled by the process itself). */
function recordIn(rec: number, id: number, state: number): boolean {
  const h = runtime().heap;
  h.sync();
  return Atomics.load(h.i32, (rec >> 2) + P_ID) === id && Atomics.load(h.i32, (rec >> 2) + P_STATE) === state;
}

function settleFailed(req: RunRequest, err: Error, died = false): void {
  let was = claimRecord(req.rec, req.id, req.name);
  // Its thread died in the middle of settling the record itself (claimed, result not stored):
  // nobody else will finish it (a terminate claims only after taking the host's process away).
  if (was < 0 && died && recordIn(req.rec, req.id, P_SETTLING)) was = P_RUNNING;
  if (was < 0) return;
  // Failed while it ran (its thread died): the references its arguments' handles held in that
  // thread are given back here, before the record is (the joiner frees its claim table with
  // it). (Not started: claimRecord dropped its arguments.)
  if (was === P_RUNNING) releaseArgRefs(req.rec, req.name);
  publishResult(req.rec, P_FAILED, err);
}

/**
 * Cleans up after host thread `threadId`, which has ended (internal/reap.ts), here and now: the
 * supervisor would too, but a peer must not hear of the death first (a send after `join()`
 * rejected, or after `terminate()`, could hand its value to the dead thread). Whoever comes
 * first does it; the other finds nothing to do.
 */
function reapHere(threadId: number): void {
  const rt = runtime();
  try {
    reapThread(rt, threadId);
  } catch (e) {
    process.emitWarning(`occam: ${(e as Error).message}: ${(e as Error).stack ?? ''}`);
  }
  // The supervisor came first and is still at it: its work takes milliseconds (a lock it must
  // wait for is retried later, with the slot freed). Wait for it, within reason.
  const until = performance.now() + REAP_WAIT_MS;
  while (beingReaped(rt, threadId) && performance.now() < until) Atomics.wait(napWord, 0, 0, 1);
  // The references its handles held (the reaper handed them over: see internal/held.ts).
  try {
    releaseOrphanedRefs();
  } catch (e) {
    process.emitWarning(`occam: ${(e as Error).message}: ${(e as Error).stack ?? ''}`);
  }
}

/**
 * Ends every idle host (main thread); resolves once each has been cleaned up after, the
 * references its handles held given back. For tests: a channel a warm host still holds (its
 * garbage, or a module's state) then no longer counts as live.
 */
export async function retireIdleHosts(): Promise<void> {
  const ending: Promise<unknown>[] = [];
  for (const list of idle.values()) {
    for (const host of list.splice(0)) {
      host.dying = true;
      // (After the 'exit' listener newHost added, which cleans up.)
      ending.push(new Promise((resolve) => host.worker.once('exit', resolve)));
      void host.worker.terminate();
    }
  }
  await Promise.all(ending);
}

/** How long (ms) main waits for the supervisor's cleaning up after a thread, at most. */
const REAP_WAIT_MS = 1000;
const napWord = new Int32Array(new SharedArrayBuffer(4));

let supervisor: Worker | undefined;

/**
 * How long (ms) after the first host the supervisor starts. A worker's start costs tens of ms of
 * CPU: on 2 cores, starting it beside the first hosts made them (and a pool's first result) ~30
 * ms later. Until it is up, the hosts' watching ends wait here; one whose host died meanwhile is
 * handed over as dead, and reaped at once.
 */
const SUPERVISOR_DELAY_MS = 100;
const unwatched: WatchRequest[] = [];
/**
 * Test-only: while true, the supervisor is not started by its timer (see `holdSupervisor` in
 * testing.ts); main getting stuck on a worker still starts it.
 */
let held = false;

/** @internal Holds the supervisor's start back (true), or lets it start now if it is due (false). */
export function holdSupervisor(hold: boolean): void {
  held = hold;
  if (!hold && supervisor === undefined && unwatched.length > 0) startSupervisor();
}

/** Has the supervisor watch a host's thread (main thread only); it never keeps the program alive. */
function watch(watcher: WatchRequest): void {
  if (supervisor !== undefined) {
    handOver(supervisor, watcher);
    return;
  }
  unwatched.push(watcher);
  if (unwatched.length === 1) {
    setTimeout(startSupervisor, SUPERVISOR_DELAY_MS).unref();
    // Main blocked waiting on a worker (a lock, a claim) before the timer fires: that worker may
    // have died holding it, and only the supervisor can settle that. It starts at once then.
    setStuckHook(() => startSupervisor(true));
  }
}

/** Starts the supervisor (main thread); `urgent`: main is stuck, and the test-only hold gives way. */
function startSupervisor(urgent = false): void {
  if ((held && !urgent) || supervisor !== undefined) return;
  setStuckHook(undefined);
  const sup = new Worker(new URL('./supervisor.cjs', import.meta.url), { workerData: { sab: runtime().heap.sab } });
  ownWorkers.add(sup);
  sup.unref();
  // It catches its own faults; should it still die, the user's program must not: the hosts
  // it watched are no longer watched, and the next host starts a new supervisor.
  sup.on('error', (err) => {
    process.emitWarning(`occam: the supervisor stopped (${err.message}); deaths of running processes may go unnoticed`);
  });
  sup.on('exit', () => {
    if (supervisor === sup) supervisor = undefined;
  });
  supervisor = sup;
  for (const w of unwatched.splice(0)) handOver(sup, w);
}

function handOver(sup: Worker, watcher: WatchRequest): void {
  try {
    sup.postMessage(watcher, [watcher.port!]);
  } catch {
    // The host died before the supervisor was up: its end closed here, and cannot move.
    sup.postMessage({ threadId: watcher.threadId });
  }
}

/** Worker hosts started so far (main thread): for tests. */
let hostsStarted = 0;
/** Every host whose thread has not ended. */
const hosts = new Set<Host>();

/** @internal One line per host whose thread has not ended: what it runs, whether it holds the program. */
export function describeHosts(): string[] {
  return [...hosts].map((h) => {
    const what = h.current !== undefined ? `running ${h.current.name} (id ${h.current.id})` : h.dying ? 'being terminated' : 'idle';
    const listed = idle.get(h.key)?.includes(h) === true ? ', on the idle list' : '';
    return `thread ${h.threadId}: ${what}${listed}; ${h.held ? 'holds the program open' : 'unref\'d'}${h.crash !== undefined ? `; crashed: ${h.crash.message}` : ''}`;
  });
}

/** @internal How many worker hosts main has started. */
export function startedHosts(): number {
  return hostsStarted;
}

function newHost(key: string, limits: ResourceLimits | undefined): Host {
  const rt = runtime();
  hostsStarted++;
  // The host holds one end; when its thread dies the other end, at the supervisor, closes.
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(hostUrl(), {
    // (coreCache: the code cache file main checked, which the worker need not hash again: load.ts.)
    workerData: { sab: rt.heap.sab, watched: port1, coreCache: (globalThis as Record<symbol, unknown>)[Symbol.for('occam.coreCache')] },
    transferList: [port1],
    // A worker started without stdin ends its stdin stream as it starts, which makes all three
    // of its stdio streams then and there (0.6-0.9 ms of every worker's start, scratch probe).
    // With stdin, none is made until used; the host ends stdin on its first use instead
    // (worker-host.ts), so a process reads what it always did.
    stdin: true,
    ...(limits !== undefined ? { resourceLimits: limits } : {}),
  });
  ownWorkers.add(worker);
  const threadId = worker.threadId; // reads -1 after exit: record it now
  watch({ port: port2, threadId });
  const host: Host = { worker, threadId, key, current: undefined, dying: false, held: true };
  hosts.add(host);
  worker.on('message', (msg: HostMessage) => onMessage(host, msg));
  // A worker error must never crash the host process: it fails the process instead, once the
  // thread has ended and been cleaned up after ('exit' follows), so its peers hear of it first.
  worker.on('error', (err) => {
    host.crash = err;
  });
  worker.on('exit', (code) => {
    hosts.delete(host);
    const cur = host.current;
    host.current = undefined;
    dropIdle(host);
    // Died running, with poisonOnDeath: its peers see the poison, not the disconnection.
    if (cur?.poisonOnDeath === true && recordIn(cur.rec, cur.id, P_RUNNING)) poisonArgRefs(cur.rec);
    reapHere(threadId);
    if (cur !== undefined) {
      unrefd.delete(cur.id);
      forget(cur.rec, host);
      settleFailed(
        cur,
        host.crash !== undefined
          ? wrapCrash(cur, host.crash)
          : new ProcessFailedError(`process ${cur.name} ended its worker (exit code ${code}) before returning`),
        true,
      );
    }
  });
  return host;
}

function wrapCrash(req: RunRequest, err: Error): Error {
  const code = (err as { code?: unknown }).code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return new ProcessFailedError(`process ${req.name} ran out of memory (resourceLimits)`, { cause: err });
  }
  return reviveOccamError(err); // e.g. ERR_TOO_MANY_THREADS from a worker that could not join
}

/** Drops the record → host entry of `rec`, if it is still `host`'s (records are reused). */
function forget(rec: number, host: Host): void {
  if (running.get(rec) === host) running.delete(rec);
}

function dropIdle(host: Host): void {
  const list = idle.get(host.key);
  const i = list?.indexOf(host) ?? -1;
  if (i >= 0) list!.splice(i, 1);
}

function onMessage(host: Host, msg: HostMessage): void {
  switch (msg.type) {
    case 'occam:spawn':
      void startProcess(msg);
      return;
    case 'occam:terminate':
      void terminateProcess(msg.rec, msg.id, msg.name);
      return;
    case 'occam:idle': {
      // The record may already be joined, freed and reused by a process on another host.
      if (host.current !== undefined) {
        forget(host.current.rec, host);
        unrefd.delete(host.current.id);
      }
      host.current = undefined;
      if (host.dying) return; // its idle report crossed the terminate: it is ending, not idle
      const list = idle.get(host.key) ?? [];
      if (list.length >= MAX_IDLE) {
        void host.worker.terminate();
        return;
      }
      hold(host, false);
      list.push(host);
      idle.set(host.key, list);
    }
  }
}

/**
 * Makes `n` hosts idle now (starting those missing), for processes with `limits` that will be
 * spawned soon (main thread only): a worker's start (tens of ms) then overlaps whatever the
 * caller does before spawning. Idle hosts never keep the program alive.
 */
export function warmHosts(n: number, limits: ResourceLimits | undefined): void {
  // Hosts are main's (a process's spawns go through main): elsewhere, warming is main's to do.
  if (!isMainThread) return;
  const key = JSON.stringify(limits ?? null);
  const list = idle.get(key) ?? [];
  idle.set(key, list);
  for (let i = list.length; i < n && list.length < MAX_IDLE; i++) {
    const host = newHost(key, limits);
    hold(host, false);
    list.push(host);
  }
}

/** Runs a process on a warm host (main thread only). */
export async function startProcess(req: RunRequest): Promise<void> {
  let url: string;
  try {
    // The compiler's module is loaded on first use: warming hosts must not wait for it.
    url = await (await import('./compile.js')).loadableModuleUrl(req.url);
  } catch (e) {
    settleFailed(req, e instanceof Error ? e : new ProcessFailedError(String(e)));
    return;
  }
  const h = runtime().heap;
  h.sync();
  // Terminated before start (its record may even be freed and reused by another process: the id).
  if (Atomics.load(h.i32, (req.rec >> 2) + P_ID) !== req.id || Atomics.load(h.i32, (req.rec >> 2) + P_STATE) !== P_PENDING) return;
  const key = JSON.stringify(req.resourceLimits ?? null);
  watchProgram(runtime()); // a program whose processes end up blocked must not hang
  const host = idle.get(key)?.pop() ?? newHost(key, req.resourceLimits);
  host.current = req;
  running.set(req.rec, host);
  hold(host, !unrefd.has(req.id)); // (a new worker starts ref'd)
  host.worker.postMessage({ ...req, url });
}

/** Processes (by id) that must not keep the program alive (`Process.unref`). */
const unrefd = new Set<number>();

/** Lets process `id` (record `rec`) keep the program alive, or not (main thread only). */
export function refProcess(rec: number, id: number, ref: boolean): void {
  if (ref) unrefd.delete(id);
  else unrefd.add(id);
  const host = running.get(rec);
  if (host?.current?.id !== id) return; // not started yet (startProcess applies it), or ended
  hold(host, ref);
}

/**
 * Stops a process's worker now; its record fails with ERR_PROCESS_FAILED once the worker has
 * ended and been cleaned up after, so that its peers (and whoever awaits this) find it dead.
 * `name`: the process's.
 */
export async function terminateProcess(rec: number, id: number, name: string): Promise<void> {
  // A second terminate while the first is under way returns when the first does.
  const under = terminating.get(rec);
  if (under?.id === id) return under.done;
  const host = running.get(rec);
  // Settling races the process's own end: if that won, its result stands, and its worker (in the
  // middle of writing it) must not be stopped, or the record would stay half-settled for good.
  // (The record may also be joined, freed and reused by another process: the claim checks the id.)
  const was = claimRecord(rec, id, name);
  if (was < 0) return;
  const req = host?.current?.id === id ? host.current : undefined;
  // With poisonOnDeath, its channels are poisoned first: its peers see the poison.
  if (req?.poisonOnDeath === true) poisonArgRefs(rec);
  const done = stop(rec, id, name, host, was === P_RUNNING);
  terminating.set(rec, { id, done });
  try {
    await done;
  } finally {
    if (terminating.get(rec)?.id === id) terminating.delete(rec);
  }
}

/** Terminations under way: process record → the process's id, and the end of its termination. */
const terminating = new Map<number, { id: number; done: Promise<void> }>();

/** The rest of `terminateProcess`, the record claimed: the worker stopped, cleaned up after, the record failed. */
async function stop(rec: number, id: number, name: string, host: Host | undefined, ran: boolean): Promise<void> {
  unrefd.delete(id);
  try {
    if (host !== undefined) {
      running.delete(rec);
      host.current = undefined;
      host.dying = true;
      dropIdle(host);
      // Held until it has ended: whoever awaits this (par, a pool) must find the program running.
      hold(host, true);
      await host.worker.terminate();
      reapHere(host.threadId);
    }
    if (ran) releaseArgRefs(rec, name); // (see settleFailed)
  } finally {
    publishResult(rec, P_FAILED, new ProcessFailedError(`process ${name} was terminated`));
  }
}

// The wait-for report names processes by the worker they run on.
setHostInfo(
  (threadId) => {
    for (const host of running.values()) if (host.threadId === threadId) return host.current?.name;
    return undefined;
  },
  () => running.size,
  () => {
    let n = 0;
    for (const host of running.values()) if (host.current !== undefined && !unrefd.has(host.current.id)) n++;
    return n;
  },
  (rec) => running.get(rec)?.current?.name,
);
