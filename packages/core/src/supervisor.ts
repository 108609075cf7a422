/**
 * The supervisor: a worker of its own that cleans up after dead process threads, so that a busy
 * (or blocked) main thread cannot delay it. Every worker host holds one end of a message channel
 * whose other end is here; when the host's thread dies, for whatever reason, its end closes and
 * this thread hears of it at once, and reaps the thread (internal/reap.ts): its lock, its claim,
 * its waiting operations, the channel ends only it used.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
// Only the runtime and the reaper: the supervisor starts beside the first worker hosts and must
// not compete with them for long (it never encodes, decodes or names anything).
import { becomeSupervisor, poisonsOnDeath, reapThread, retryUnfinished } from './internal/reap.js';
import { joinRuntime } from './internal/runtime.js';

/**
 * What main sends for each new host: the watching end, and the host thread's id; without the
 * end, the host has died already (before this thread was up).
 */
export interface WatchRequest {
  port?: MessagePort;
  threadId: number;
}

const rt = joinRuntime(workerData as { sab: SharedArrayBuffer }, true);
becomeSupervisor(rt);

/** A fault in the cleaning up is a bug in occam: it is reported, and the supervisor goes on. */
function report(e: unknown): void {
  const errors = e instanceof AggregateError ? e.errors : [e];
  console.error(`${(e as Error | undefined)?.message ?? String(e)}\n${errors.map((x) => (x as Error | undefined)?.stack ?? String(x)).join('\n')}`);
}

let timer: ReturnType<typeof setTimeout> | undefined;

/** Retries what a reaping left unfinished (a lock or claim of another thread that died too). */
function retry(): void {
  if (retryUnfinished(report) > 0 && timer === undefined) {
    timer = setTimeout(() => {
      timer = undefined;
      retry();
    }, 5);
  }
}

/**
 * How long a dead thread whose process has `poisonOnDeath` is left to main: main poisons its
 * channels (its worker could not: out of memory) and cleans up after it as it hears of the exit;
 * a main too busy to do that within this is done for by the supervisor (its peers then see the
 * disconnection, ERR_PEER_DIED, not the poison).
 */
const POISON_WAIT_MS = 250;

function reap(threadId: number, since = performance.now()): void {
  if (poisonsOnDeath(rt, threadId) && performance.now() - since < POISON_WAIT_MS) {
    setTimeout(() => reap(threadId, since), 2);
    return;
  }
  try {
    reapThread(rt, threadId);
  } catch (e) {
    report(e);
  }
  retry();
}

parentPort!.on('message', ({ port, threadId }: WatchRequest) => {
  if (port === undefined) return reap(threadId);
  port.on('close', () => reap(threadId));
  port.start();
});
